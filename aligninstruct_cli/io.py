"""The one owner of file I/O for every stage.

Readers: TSV (`src<TAB>tgt`), fast_align style (`src ||| tgt`) and JSONL; `-` is stdin; `.gz` is
decompressed. Input is read as bytes and decoded line by line so an invalid byte names its line.
Every problem becomes an `InputError` naming file, line and field; with `on_error="skip"` the
`ErrorPolicy` counts and reports skips instead.

Writers: JSONL (orjson) or plain lines to `-` (stdout) or a file. Files are written atomically: a
temporary file beside the target is renamed over it only when writing finished without error, so a
failed run never leaves a partial output. A reader that closes the pipe (`| head`) ends the run
quietly: the CLI catches `BrokenPipeError` (see cli.py).
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterable, Iterator

import orjson

from aligninstruct_cli.errors import AitError, InputError, RecordError, display_path
from aligninstruct_cli.records import VALIDATORS, Record

STDIO = "-"
FORMATS = ("auto", "jsonl", "tsv", "fast_align")
ON_ERROR = ("fail", "skip")


# ----------------------------------------------------------------------------------------------- policy
@dataclass
class ErrorPolicy:
    """What to do with a bad input record: `fail` (raise, the default) or `skip` (count and report)."""

    on_error: str = "fail"
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise AitError(f"--on-error must be one of {', '.join(ON_ERROR)}, not {self.on_error!r}")

    def handle(self, error: InputError) -> None:
        if self.on_error == "fail":
            raise error
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(error.message)

    def report(self) -> str | None:
        """A one-paragraph summary of skips for stderr, or None when nothing was skipped."""
        if not self.skipped:
            return None
        lines = [f"skipped {self.skipped} bad record(s) (--on-error skip); first ones:"]
        lines += [f"  {m}" for m in self.examples]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- input
def open_binary_input(path: str) -> BinaryIO:
    """Open `path` for reading bytes: `-` is stdin, `*.gz` is decompressed."""
    if path == STDIO:
        return sys.stdin.buffer
    p = Path(path)
    if not p.exists():
        raise AitError(f"{path}: no such file")
    if p.is_dir():
        raise AitError(f"{path}: is a directory, expected a file")
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb")


def iter_lines(path: str, *, skip_blank: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of `path`, newline removed, strictly UTF-8, LF only.

    CRLF endings are rejected rather than stripped: a silent `\\r` would end up inside target sentences
    of TSV input, and a file that mixes endings is usually damaged."""
    stream = open_binary_input(path)
    try:
        for line_no, raw in enumerate(stream, 1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raise InputError(path, line_no, "line ends in CRLF (Windows line ending)",
                                 hint="convert the file first, e.g. `sed -i 's/\\r$//' FILE` or dos2unix")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, line_no, f"invalid UTF-8 at byte {exc.start}") from None
            if skip_blank and not text.strip():
                continue
            yield line_no, text
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise AitError(f"{display_path(path)}: cannot read: {exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def detect_format(path: str, first_line: str | None) -> str:
    """jsonl / tsv / fast_align from the file name, else from the first line."""
    name = path.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".tsv"):
        return "tsv"
    if first_line is None:
        return "jsonl"
    if first_line.lstrip().startswith("{"):
        return "jsonl"
    if " ||| " in first_line:
        return "fast_align"
    if "\t" in first_line:
        return "tsv"
    raise InputError(path, 1, "cannot tell the input format (not JSON, no tab, no ' ||| ')",
                     hint="pass --input-format jsonl|tsv|fast_align")


def _parse_jsonl(path: str, line_no: int, text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(path, line_no, f"malformed JSON: {exc}") from None


def _parse_pair(path: str, line_no: int, text: str, fmt: str, src_lang: str, tgt_lang: str,
                id_prefix: str) -> Record:
    sep = "\t" if fmt == "tsv" else " ||| "
    parts = text.split(sep)
    if len(parts) != 2:
        what = "tab" if fmt == "tsv" else "' ||| '"
        raise InputError(path, line_no, f"expected 2 columns (source {what} target), found {len(parts)}")
    src, tgt = parts
    if not src.strip():
        raise InputError(path, line_no, "empty", field="src")
    if not tgt.strip():
        raise InputError(path, line_no, "empty", field="tgt")
    return {"id": f"{id_prefix}{line_no}", "src_lang": src_lang, "tgt_lang": tgt_lang, "src": src, "tgt": tgt}


def read_records(path: str, kind: str = "any", *, fmt: str = "auto", src_lang: str | None = None,
                 tgt_lang: str | None = None, policy: ErrorPolicy | None = None,
                 id_prefix: str = "", with_location: bool = False) -> Iterator[Any]:
    """Stream validated records of `kind` (see records.VALIDATORS) from `path`.

    TSV and fast_align input makes parallel records whose id is `id_prefix` + line number; those
    formats need `src_lang` and `tgt_lang`. With `with_location`, yields (line number, record)."""
    if fmt not in FORMATS:
        raise AitError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    validate = VALIDATORS[kind]
    policy = policy or ErrorPolicy()
    lines = iter_lines(path)
    detected: str | None = None if fmt == "auto" else fmt
    for line_no, text in lines:
        if detected is None:
            detected = detect_format(path, text)
            if detected != "jsonl" and not (src_lang and tgt_lang):
                raise AitError(f"{display_path(path)}: {detected} input needs --src-lang and --tgt-lang")
        try:
            if detected == "jsonl":
                if not text.strip():
                    continue  # blank lines in JSONL carry no record
                rec = _parse_jsonl(path, line_no, text)
            else:
                rec = _parse_pair(path, line_no, text, detected, src_lang, tgt_lang, id_prefix)  # type: ignore[arg-type]
            try:
                rec = validate(rec)
            except RecordError as exc:
                raise InputError(path, line_no, exc.message, field=exc.field, hint=exc.hint) from None
        except InputError as exc:
            policy.handle(exc)
            continue
        yield (line_no, rec) if with_location else rec


# ----------------------------------------------------------------------------------------------- output
class RecordWriter:
    """Write JSONL records (`write`) or raw lines (`write_line`) to stdout (`-`) or atomically to a file.

    Use as a context manager; the file appears under its name only if the block ends without error."""

    def __init__(self, path: str = STDIO):
        self.path = path
        self.count = 0
        self._tmp: str | None = None
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes]

    def __enter__(self) -> "RecordWriter":
        if self.path == STDIO:
            self._out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout  # type: ignore[assignment]
            return self
        target = Path(self.path)
        if not target.parent.exists():
            raise AitError(f"{self.path}: directory {target.parent} does not exist")
        fd, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self._raw = os.fdopen(fd, "wb", buffering=1 << 20)
        self._out = gzip.open(self._raw, "wb", compresslevel=6) if target.suffix == ".gz" else self._raw  # type: ignore[assignment]
        return self

    def write(self, record: Record) -> None:
        self._out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def write_many(self, records: Iterable[Record]) -> int:
        dumps, opt, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, self._out.write
        n = 0
        for rec in records:
            write(dumps(rec, option=opt))
            n += 1
        self.count += n
        return n

    def write_line(self, line: str) -> None:
        self._out.write(line.encode("utf-8") + b"\n")
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.path == STDIO:
            if exc_type is None:
                self._out.flush()
            return
        try:
            if self._out is not self._raw:
                self._out.close()
            assert self._raw is not None
            self._raw.close()
        finally:
            if exc_type is None:
                os.replace(self._tmp, self.path)  # type: ignore[arg-type]
            elif self._tmp and os.path.exists(self._tmp):
                os.unlink(self._tmp)


def write_records(path: str, records: Iterable[Record]) -> int:
    with RecordWriter(path) as out:
        return out.write_many(records)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` that is renamed onto it if the block succeeds (for files written by
    other libraries: plots, JSON summaries)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write one JSON document (indented, sorted keys) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise AitError(f"{path}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise AitError(f"{path}: malformed JSON: {exc}") from None

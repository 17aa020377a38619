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
from typing import IO, Any, BinaryIO, Iterable, Iterator, Literal, Optional

import orjson

from aligninstruct_cli.errors import AitError, InputError, RecordError, display_path
from aligninstruct_cli.languages import LanguagesOption, get_language
from aligninstruct_cli.options import OptionError, check_options, coerce, option, option_ref
from aligninstruct_cli.records import VALIDATORS, Record

STDIO = "-"
FORMATS = ("auto", "jsonl", "tsv", "fast_align", "text")  # text: one source sentence a line (never auto-detected)
PAIR_FORMATS = ("auto", "jsonl", "tsv", "fast_align")
ON_ERROR = ("fail", "skip")
INPUT_PANEL = "Input"


def known_language(code: str) -> str:
    """`code` unchanged once `languages` knows it (an unknown one is an error suggesting near matches)."""
    get_language(code)
    return code


@dataclass(kw_only=True)
class OnErrorOptions(LanguagesOption):
    """What a record-reading stage does with a bad record (and which user languages it knows)."""

    on_error: Literal[ON_ERROR] = option(  # type: ignore[valid-type]
        "fail", panel=INPUT_PANEL,
        help="fail: stop at the first bad record; skip: count bad records, report them on stderr and go on.")

    def __post_init__(self) -> None:
        check_options(self)

    def policy(self) -> "ErrorPolicy":
        return ErrorPolicy(self.on_error)


@dataclass(kw_only=True)
class ReadOptions(OnErrorOptions):
    """How a stage reads its records: the options every record-reading command shares."""

    input_format: Literal[PAIR_FORMATS] = option(  # type: ignore[valid-type]
        "auto", panel=INPUT_PANEL, help="Input format; auto: by file name, else by the first line.",
        details="Formats: [formats.md](formats.md).")
    src_lang: Optional[str] = option(None, parse=known_language, panel=INPUT_PANEL,
                                     help="Source language (ISO 639-1 or FLORES code) for TSV / ||| input.")
    tgt_lang: Optional[str] = option(None, parse=known_language, panel=INPUT_PANEL,
                                     help="Target language for TSV / ||| input.")


# ----------------------------------------------------------------------------------------------- policy
@dataclass
class ErrorPolicy:
    """What to do with a bad input record: `fail` (raise, the default) or `skip` (count and report)."""

    on_error: Literal[ON_ERROR] = "fail"  # type: ignore[valid-type]
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        coerce(self.on_error, Literal[ON_ERROR], "on_error")  # type: ignore[valid-type]

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


def _raw_lines(path: str, name: str | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line bytes INCLUDING its LF, if any) for each line of `path`.

    The newline is kept so that JSONL lines go to orjson without a copy (JSON ignores it); `_decode`
    drops it. CRLF endings are rejected rather than stripped: a silent `\\r` would end up inside
    target sentences of TSV input, and a file that mixes endings is usually damaged. The offset counts
    bytes of the (decompressed) stream, so a plain file can be re-read at a line with `seek`."""
    stream = open_binary_input(path)
    where = path if name is None else name
    try:
        offset = 0
        for line_no, raw in enumerate(stream, 1):
            start = offset
            offset += len(raw)
            if raw.endswith(b"\r\n") or raw.endswith(b"\r"):
                raise InputError(where, line_no, "line ends in CRLF (Windows line ending)",
                                 hint="convert the file first, e.g. `sed -i 's/\\r$//' FILE` or dos2unix")
            yield line_no, start, raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise AitError(f"{display_path(where)}: cannot read: {exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _decode(path: str, line_no: int, raw: bytes) -> str:
    """The text of a line from `_raw_lines` (strict UTF-8, trailing LF removed)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, line_no, f"invalid UTF-8 at byte {exc.start}") from None
    return text[:-1] if text.endswith("\n") else text


def iter_lines(path: str, *, skip_blank: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of `path`, newline removed, strictly UTF-8, LF only (CRLF is
    an error, see `_raw_lines`)."""
    for line_no, _, raw in _raw_lines(path):
        text = _decode(path, line_no, raw)
        if skip_blank and not text.strip():
            continue
        yield line_no, text


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


def _parse_jsonl(path: str, line_no: int, raw: bytes | str) -> Any:
    """One JSON value; `raw` may be bytes (orjson checks UTF-8 itself, faster than decoding first)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if isinstance(raw, bytes):
            _decode(path, line_no, raw)  # name a UTF-8 problem as such
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
                 id_prefix: str = "", with_location: bool = False,
                 with_offset: bool = False, name: str | None = None) -> Iterator[Any]:
    """Stream validated records of `kind` (see records.VALIDATORS) from `path`.

    TSV and fast_align input makes parallel records whose id is `id_prefix` + line number; those
    formats need `src_lang` and `tgt_lang`. Blank lines carry no record. With `with_location`, yields
    (line number, record); with `with_offset`, (byte offset of the line, record); with both,
    (line number, offset, record). `fmt="text"` (one source sentence a line, never detected
    automatically) makes source records like TSV does, without `tgt`. Invalid UTF-8 and malformed lines follow `policy`; CRLF line endings
    always stop the read (the whole file needs converting). `name` is the file name messages use
    instead of `path` (e.g. the original of a spooled copy)."""
    if fmt not in FORMATS:
        raise AitError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    validate = VALIDATORS[kind]
    where = path if name is None else name
    policy = policy or ErrorPolicy()
    detected: str | None = None if fmt == "auto" else fmt
    if detected not in (None, "jsonl") and not (src_lang and tgt_lang):
        raise OptionError(f"{display_path(where)}: {detected} input needs {option_ref('src_lang')} and "
                          f"{option_ref('tgt_lang')}")
    for line_no, offset, raw in _raw_lines(path, where):
        try:
            if raw.isspace() or not raw:
                continue  # blank lines carry no record
            if detected is None:
                detected = detect_format(where, _decode(where, line_no, raw))
                if detected != "jsonl" and not (src_lang and tgt_lang):
                    raise OptionError(f"{display_path(where)}: {detected} input needs {option_ref('src_lang')} "
                                      f"and {option_ref('tgt_lang')}")
            if detected == "jsonl":
                rec = _parse_jsonl(where, line_no, raw)
            elif detected == "text":
                rec = {"id": f"{id_prefix}{line_no}", "src_lang": src_lang, "tgt_lang": tgt_lang,
                       "src": _decode(where, line_no, raw)}
            else:
                rec = _parse_pair(where, line_no, _decode(where, line_no, raw), detected, src_lang,  # type: ignore[arg-type]
                                  tgt_lang, id_prefix)  # type: ignore[arg-type]
            try:
                rec = validate(rec)
            except RecordError as exc:
                raise InputError(where, line_no, exc.message, field=exc.field, hint=exc.hint) from None
        except InputError as exc:
            policy.handle(exc)
            continue
        if with_location:
            yield (line_no, offset, rec) if with_offset else (line_no, rec)
        else:
            yield (offset, rec) if with_offset else rec


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

    def write_raw(self, line: bytes) -> None:
        """Write one already-serialised record line (bytes ending in a newline) unchanged."""
        self._out.write(line)
        self.count += 1

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


class AppendRecordWriter:
    """Append JSONL records to an existing (or new) file, for runs that resume (`ait translate --resume`).

    Unlike `RecordWriter` this is NOT atomic: each `sync()` makes the records written so far durable, so
    an interrupted run keeps its finished work. An unterminated last line (a write cut off by a crash) is
    removed first: `trimmed_bytes` says how much. Plain files only (no stdout, no .gz)."""

    def __init__(self, path: str):
        if path == STDIO or path.endswith(".gz"):
            raise AitError(f"{path}: appending needs a plain file (not stdout, not .gz)")
        self.path = path
        self.count = 0
        self.trimmed_bytes = 0
        self._out: IO[bytes] | None = None

    @staticmethod
    def trim_partial_line(path: str) -> int:
        """Cut `path` after its last newline; returns the number of bytes removed (0 if none/no file)."""
        if not os.path.exists(path):
            return 0
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            end, block = size, 1 << 16
            while end > 0:
                start = max(0, end - block)
                fh.seek(start)
                newline = fh.read(end - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            else:
                keep = 0
            if keep < size:
                fh.truncate(keep)
            return size - keep

    def __enter__(self) -> "AppendRecordWriter":
        target = Path(self.path)
        if not target.parent.exists():
            raise AitError(f"{self.path}: directory {target.parent} does not exist")
        self.trimmed_bytes = self.trim_partial_line(self.path)
        self._out = open(self.path, "ab")
        return self

    def write(self, record: Record) -> None:
        assert self._out is not None
        self._out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def sync(self) -> None:
        assert self._out is not None
        self._out.flush()
        os.fsync(self._out.fileno())

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._out is not None:
            try:
                self.sync()
            finally:
                self._out.close()


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


def file_stem(path: str) -> str:
    """A short name for an input file: its name without .gz/.jsonl/.ndjson/.json (`stdin` for -)."""
    if path == STDIO:
        return "stdin"
    name = Path(path).name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json"):
        name = name.removesuffix(suffix)
    return name or path


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise AitError(f"{path}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise AitError(f"{path}: malformed JSON: {exc}") from None

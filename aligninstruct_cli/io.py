"""The one owner of file I/O for every stage.

Readers: TSV (`src<TAB>tgt`), fast_align style (`src ||| tgt`) and JSONL; `-` is stdin; `.gz` is
decompressed. Input is read as bytes and decoded line by line so an invalid byte names its line.
Every problem becomes an `InputError` naming file, line and field; with `on_error="skip"` the
`ErrorPolicy` counts and reports skips instead.

Writers: JSONL (orjson) or plain lines to `-` (stdout) or a file. Files are written atomically: a
temporary file beside the target is renamed over it only when writing finished without error, so a
failed run never leaves a partial output; SIGTERM and SIGHUP remove it as SIGINT does
(`install_termination_handlers`). A new file gets the umask's permissions, a replaced file keeps its
mode. A full disk is an `OutputError` (exit 1) naming the file and the free space. A reader that closes
the pipe (`| head`) ends the run quietly: the CLI catches `BrokenPipeError` (see cli.py).

Safety: `check_outputs_are_not_inputs` stops a command whose output is one of its inputs before anything
is read; ids must be unique in a file of id-keyed records (`read_records(unique_ids=...)`); `max_chars`
rejects a huge field before any tokenizer sees it; `AppendRecordWriter` holds an exclusive lock.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import gzip
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Literal, Optional

import orjson

from aligninstruct_cli.errors import AitError, InputError, RecordError, display_path
from aligninstruct_cli.languages import LanguagesOption, get_language
from aligninstruct_cli.options import OptionError, check_options, coerce, option, option_ref
from aligninstruct_cli.records import MAX_CHARS_PER_TOKEN, VALIDATORS, Record
from aligninstruct_cli.textfile import STDIO, crlf_error, decode_line, open_binary_input, raw_lines

FORMATS = ("auto", "jsonl", "tsv", "fast_align", "text")  # text: one source sentence a line (never auto-detected)
PAIR_FORMATS = ("auto", "jsonl", "tsv", "fast_align")
ON_ERROR = ("fail", "skip")
ID_KINDS = ("source", "parallel", "aligned", "instruction")  # kinds whose ids later stages key on
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


class OutputError(AitError):
    """An output could not be written (disk full, file too large): not a usage error."""

    exit_code = 1


class Terminated(BaseException):
    """SIGTERM or SIGHUP: raised in the main thread like KeyboardInterrupt, so every `with` block (temporary
    files) cleans up; the CLI exits 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def install_termination_handlers() -> None:
    """SIGTERM and SIGHUP raise `Terminated` (default: the process dies at once, leaving temporary files)."""
    def terminate(signum, _frame):
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, terminate)
        except (ValueError, OSError):  # not the main thread, or no such signal here
            pass


# ----------------------------------------------------------------------------------------------- safety
def _input_path(value: str) -> str | None:
    """The file an input argument names (`NAME=PATH` too, as `ait mix` takes them); None for stdin."""
    if value == STDIO:
        return None
    if not os.path.exists(value) and "=" in value:
        value = value.split("=", 1)[1]
    return value


def _file_identity(path: str) -> tuple[str, tuple[int, int] | None]:
    """(resolved path, (device, inode)) of a file, the inode None when it is not there: two names are one
    file when either part is equal (symlinks resolve to one path; hard links share an inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path), None
    return os.path.realpath(path), (st.st_dev, st.st_ino)


def check_outputs_are_not_inputs(inputs: Iterable[str], outputs: Iterable[tuple[str, str]]) -> None:
    """Refuse (exit 2, before anything is read) an output file that is one of the command's inputs: same
    file by device and inode (hard links, symlinks) or by resolved path. `outputs`: (how the command line
    names it, e.g. "-o", path)."""
    files = []
    for value in inputs:
        path = _input_path(value)
        if path and os.path.exists(path):
            files.append((value, *_file_identity(path)))
    for flag, out in outputs:
        if not out or out == STDIO:
            continue
        real, ident = _file_identity(out)
        for value, in_real, in_ident in files:
            if (ident is not None and ident == in_ident) or real == in_real:
                raise AitError(f"{flag} {out} is also an input of this command ({value}); ait never writes over "
                               "its inputs", hint="write to another file (and rename it afterwards if you must)")


def check_distinct_outputs(outputs: Iterable[tuple[str, str]], folders: Iterable[tuple[str, str]] = ()) -> None:
    """Refuse (exit 2, before any work) two outputs of one command that are one file (by resolved path or
    inode), or one that is (or lies inside) an input folder that must stay as it is (`folders`: a base model)
    or inside another output. `outputs`, `folders`: (how the command line names it, path)."""
    named = [(flag, path, *_file_identity(path)) for flag, path in outputs if path and path != STDIO]
    for k, item in enumerate(named):
        for other in named[:k]:
            if item[2] == other[2] or (item[3] is not None and item[3] == other[3]):
                raise AitError(f"{other[0]} and {item[0]} name one file ({item[1]}): each output needs its own",
                               hint="give them different file names")
            for inner, outer in ((item, other), (other, item)):
                if Path(outer[2]) in Path(inner[2]).parents:
                    raise AitError(f"{inner[0]} {inner[1]} lies inside {outer[0]} {outer[1]}: each output needs "
                                   "a place of its own")
    for folder_flag, folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        root = Path(os.path.realpath(folder))
        for flag, path, real, _ in named:
            if Path(real) == root or root in Path(real).parents:
                raise AitError(f"{flag} {path} is {'' if Path(real) == root else 'inside '}the folder of "
                               f"{folder_flag} {folder}; ait never writes into what it reads",
                               hint="write to a folder of its own")


def char_budget(max_tokens: int) -> int:
    """The most characters a text of `max_tokens` tokens plausibly spans (records.MAX_CHARS_PER_TOKEN each):
    a longer field is rejected or cut before a tokenizer sees it, so one huge line cannot exhaust memory."""
    return max_tokens * MAX_CHARS_PER_TOKEN


def _file_mode_for(target: Path) -> int:
    """A replaced file's mode, else what the umask gives a new file (mkstemp's files are 0600)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def output_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """A clear message for a failed write: which file, why, and how much room is left."""
    where = Path(path).parent
    try:
        free = f"{shutil.disk_usage(where).free / 1e6:,.1f} MB free on {where}"
    except OSError:
        free = "free space unknown"
    why = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file too large (a file-system or `ulimit -f` limit)"}.get(exc.errno, exc.strerror)
    return OutputError(f"{path}: cannot write: {why} ({free}); nothing was written there")


def _check_output_target(path: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise AitError(f"{path}: is a directory; give a file name for the output")
    if not target.parent.exists():
        raise AitError(f"{path}: directory {target.parent} does not exist")
    return target


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
            decode_line(path, line_no, raw)  # name a UTF-8 problem as such
        raise InputError(path, line_no, f"malformed JSON: {exc}") from None


def _starts_json_array(path: str) -> bool:
    """Whether the file's first non-blank character is `[`: one JSON array of records (alpaca's
    alpaca_data.json), not JSON lines. stdin is never taken for one."""
    if path == STDIO:
        return False
    try:
        with open_binary_input(path) as stream:
            while True:
                chunk = stream.read(1 << 12)
                if not chunk:
                    return False
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[:1] == b"["
    except (OSError, EOFError, gzip.BadGzipFile):
        return False  # the line reader reports it


def _json_array_items(path: str, where: str) -> Iterator[tuple[int, int, Any]]:
    """(line number, character offset, value) of each element of a file holding one JSON array. The file is
    read whole (such files are what fits in memory, e.g. alpaca's 52k records in 22 MB); each element's
    line is where it starts, so errors name FILE:LINE as for JSON lines."""
    with open_binary_input(path) as stream:
        raw = stream.read()
    text = decode_line(where, 1, raw) if raw else ""
    if "\r" in text:
        line_no = text.count("\n", 0, text.index("\r")) + 1
        raise crlf_error(where, line_no)
    newlines = [m.start() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def skip_space(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\n":
            pos += 1
        return pos

    pos = skip_space(0) + 1  # past the '['
    pos = skip_space(pos)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InputError(where, line_of(exc.pos), f"malformed JSON: {exc.msg}") from None
        yield line_of(pos), pos, value
        pos = skip_space(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_space(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]" and not text[skip_space(pos + 1):].strip():
            return
        raise InputError(where, line_of(pos), "malformed JSON: expected ',' or a final ']' after an element of "
                         "the array")


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


def _needs_languages(where: str, fmt: str) -> OptionError:
    return OptionError(f"{display_path(where)}: {fmt} input needs {option_ref('src_lang')} and "
                       f"{option_ref('tgt_lang')}")


def _input_format(path: str, where: str, fmt: str, has_languages: bool, with_offset: bool) -> tuple[str | None, bool]:
    """`read_records`' input format (None: detected from the first line) and whether the file is one JSON
    array, checked before the first line is read."""
    if fmt not in FORMATS:
        raise AitError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    detected: str | None = None if fmt == "auto" else fmt
    if detected not in (None, "jsonl") and not has_languages:
        raise _needs_languages(where, detected)
    array = detected in (None, "jsonl") and _starts_json_array(path)
    if array and with_offset:  # the stage re-reads records at their byte offsets: lines only
        raise AitError(f"{display_path(where)}: one JSON array; this stage reads JSON lines (one record a line)",
                       hint="convert it, e.g. jq -c '.[]' FILE > FILE.jsonl")
    return ("jsonl" if array else detected), array


def read_records(path: str, kind: str = "any", *, fmt: str = "auto", src_lang: str | None = None,
                 tgt_lang: str | None = None, policy: ErrorPolicy | None = None,
                 id_prefix: str = "", with_location: bool = False,
                 with_offset: bool = False, name: str | None = None, unique_ids: bool | None = None,
                 max_chars: dict[str, int] | None = None,
                 convert: Callable[[Any, int], Any] | None = None) -> Iterator[Any]:
    """Stream validated records of `kind` (see records.VALIDATORS) from `path`.

    TSV and fast_align input makes parallel records whose id is `id_prefix` + line number; those
    formats need `src_lang` and `tgt_lang`. Blank lines carry no record. With `with_location`, yields
    (line number, record); with `with_offset`, (byte offset of the line, record); with both,
    (line number, offset, record). `fmt="text"` (one source sentence a line, never detected
    automatically) makes source records like TSV does, without `tgt`. Invalid UTF-8 and malformed lines follow `policy`; CRLF line endings
    always stop the read (the whole file needs converting). `name` is the file name messages use
    instead of `path` (e.g. the original of a spooled copy).

    `unique_ids` (default: on for the id-keyed kinds, `ID_KINDS`): a record whose id an earlier record of
    the file has is a bad record (`policy`; FILE:LINE of the second one). Ids are compared as text
    (`1` and `"1"` are the same id, as in the instruction ids `ait build` makes from them) through their
    64-bit hashes: about 60 bytes a record. `max_chars` ({field: most characters}, e.g. from `char_budget`):
    a longer field is a bad record, before anything tokenizes it.

    JSON input may also be one JSON array of records (a file whose first character is `[`, as alpaca's
    data files are): read whole, each element's line is where it starts. `convert(value, ordinal)` turns
    each parsed value (the `ordinal`-th, from 1) into the record that is validated (another tool's format
    into ait's, `records.instruction_from`); its `RecordError` is a bad record at that line."""
    validate = VALIDATORS[kind]
    where = path if name is None else name
    policy = policy or ErrorPolicy()
    detected, array = _input_format(path, where, fmt, bool(src_lang and tgt_lang), with_offset)
    seen: set[int] | None = set() if (kind in ID_KINDS if unique_ids is None else unique_ids) else None
    limits = list((max_chars or {}).items())
    ordinal = 0
    for line_no, offset, raw in (_json_array_items(path, where) if array else raw_lines(path, where)):
        try:
            if not array and (raw.isspace() or not raw):
                continue  # blank lines carry no record
            ordinal += 1
            if detected is None:
                detected = detect_format(where, decode_line(where, line_no, raw))
                if detected != "jsonl" and not (src_lang and tgt_lang):
                    raise _needs_languages(where, detected)
            if array:
                rec = raw  # parsed already
            elif detected == "jsonl":
                rec = _parse_jsonl(where, line_no, raw)
            elif detected == "text":
                rec = {"id": f"{id_prefix}{line_no}", "src_lang": src_lang, "tgt_lang": tgt_lang,
                       "src": decode_line(where, line_no, raw)}
            else:
                rec = _parse_pair(where, line_no, decode_line(where, line_no, raw), detected, src_lang,  # type: ignore[arg-type]
                                  tgt_lang, id_prefix)  # type: ignore[arg-type]
            try:
                rec = validate(rec if convert is None else convert(rec, ordinal))
            except RecordError as exc:
                raise InputError(where, line_no, exc.message, field=exc.field, hint=exc.hint) from None
            for field_name, most in limits:
                value = rec.get(field_name) if isinstance(rec, dict) else None
                if isinstance(value, str) and len(value) > most:
                    raise InputError(where, line_no, f"{len(value):,} characters, more than the {most:,} its "
                                     "token limit allows", field=field_name,
                                     hint="split the text, or raise the token limit")
            if seen is not None:
                key = hash(str(rec["id"]))
                if key in seen:
                    raise InputError(where, line_no, f"duplicate id {rec['id']!r}: an earlier record has it",
                                     field="id", hint="ids must be unique in a file")
                seen.add(key)
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
        target = _check_output_target(self.path)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, _file_mode_for(target))
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
        failed = exc
        try:
            if self._out is not self._raw:
                self._out.close()
            assert self._raw is not None
            self._raw.close()
        except OSError as close_exc:  # the last buffered bytes: a full disk shows here
            failed = failed or close_exc
            if not disk_full(close_exc):
                raise
        finally:
            if failed is None:
                os.replace(self._tmp, self.path)  # type: ignore[arg-type]
            elif self._tmp and os.path.exists(self._tmp):
                os.unlink(self._tmp)
        if disk_full(failed):
            raise output_error(self.path, failed) from None  # type: ignore[arg-type]


class AppendRecordWriter:
    """Append JSONL records to an existing (or new) file, for runs that resume (`ait translate --resume`).

    Unlike `RecordWriter` this is NOT atomic: each `sync()` makes the records written so far durable, so
    an interrupted run keeps its finished work. An unterminated last line (a write cut off by a crash) is
    removed first: `trimmed_bytes` says how much. Plain files only (no stdout, no .gz). The writer holds an
    exclusive lock (`flock`) on the file while it is open; another writer, or `trim_partial_line` from
    another process, stops with an error instead of writing every record a second time."""

    def __init__(self, path: str):
        if path == STDIO or path.endswith(".gz"):
            raise AitError(f"{path}: appending needs a plain file (not stdout, not .gz)")
        self.path = path
        self.count = 0
        self.trimmed_bytes = 0
        self._out: IO[bytes] | None = None

    @staticmethod
    def _lock(fh: IO[bytes], path: str) -> None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise AitError(f"{path}: another ait process is appending to this file (--resume)",
                           hint="wait for it to finish, or write to another file") from None

    @classmethod
    def trim_partial_line(cls, path: str, fh: IO[bytes] | None = None) -> int:
        """Cut `path` after its last newline; returns the number of bytes removed (0 if none/no file). Refuses
        a file another process is appending to (its last line may be half written)."""
        if fh is None:
            if not os.path.exists(path):
                return 0
            with open(path, "rb+") as own:
                cls._lock(own, path)
                return cls.trim_partial_line(path, own)
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
        _check_output_target(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies to a new file
        self._out = os.fdopen(fd, "rb+")
        self._lock(self._out, self.path)
        self.trimmed_bytes = self.trim_partial_line(self.path, self._out)
        self._out.seek(0, os.SEEK_END)
        return self

    def write(self, record: Record) -> None:
        assert self._out is not None
        self._out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def sync(self) -> None:
        assert self._out is not None
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
        except OSError as exc:
            if disk_full(exc):
                raise output_error(self.path, exc) from None
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._out is not None:
            try:
                self.sync()
            finally:
                self._out.close()  # drops the lock
                self._out = None
        if disk_full(exc):
            raise output_error(self.path, exc) from None


def write_records(path: str, records: Iterable[Record]) -> int:
    with RecordWriter(path) as out:
        return out.write_many(records)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` that is renamed onto it if the block succeeds (for files written by
    other libraries: plots, JSON summaries)."""
    target = _check_output_target(str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.fchmod(fd, _file_mode_for(target))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        if disk_full(exc):
            raise output_error(target, exc) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def concat_files(paths: Iterable[str], output: str, *, head: int | None = None) -> int:
    """The lines of `paths` (each cut to its first `head` lines), one after the other, written atomically to
    `output` (what a study's test file and probe pairs are made of; no shell); the number of lines."""
    count = 0
    with atomic_path(output) as tmp, open(tmp, "wb") as out:
        for path in paths:
            for line_no, _, raw in raw_lines(path):
                if head is not None and line_no > head:
                    break
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                count += 1
    return count


@contextmanager
def regular_files(paths: Iterable[str | None]) -> Iterator[dict[str, str]]:
    """path -> a regular file with its content, for inputs a command reads more than once (a format check, then
    the records): a pipe (a FIFO, /dev/stdin, `<(cmd)`) is read once into a temporary folder (under the same
    file name) and removed afterwards; a regular file, `-` (peeked at, not reread) or a missing path is itself."""
    mapping: dict[str, str] = {}
    folder: str | None = None
    try:
        for path in paths:
            if not path or path == STDIO or path in mapping:
                continue
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                regular = True  # the reader names the problem
            if regular:
                continue
            folder = folder or tempfile.mkdtemp(prefix="ait-pipe-")
            os.mkdir(os.path.join(folder, str(len(mapping))))
            copy = os.path.join(folder, str(len(mapping)), os.path.basename(path) or "pipe")
            with open(path, "rb") as src, open(copy, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mapping[path] = copy
        yield mapping
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def umask_permissions(folder: Path) -> None:
    """Files the libraries wrote with their own modes (safetensors' 0600, mkdtemp's 0700 folder) get what the
    umask gives a new file or folder, like their siblings."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


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

"""Text files read strictly, line by line: `-` is stdin, `*.gz` is decompressed, UTF-8 only, LF endings only.
The lowest layer of reading (io.py's records, languages.py's language files and the test sets' plain-text
references all read through it), so that a bad byte or a CRLF is the same error wherever it is met."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from aligninstruct_cli.errors import AitError, InputError, display_path

STDIO = "-"


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


def raw_lines(path: str, name: str | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line bytes INCLUDING its LF, if any) for each line of `path`.

    The newline is kept so that JSONL lines go to orjson without a copy (JSON ignores it); `decode_line`
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
                raise crlf_error(where, line_no)
            yield line_no, start, raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise AitError(f"{display_path(where)}: cannot read: {exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def crlf_error(where: str, line_no: int) -> InputError:
    """The error for a line of `where` ending in CRLF (or a lone CR): rejected wherever it is met, see
    `raw_lines`."""
    return InputError(where, line_no, "line ends in CRLF (Windows line ending)",
                      hint="convert the file first, e.g. `sed -i 's/\\r$//' FILE` or dos2unix")


def decode_line(path: str, line_no: int, raw: bytes) -> str:
    """The text of a line from `raw_lines` (strict UTF-8, trailing LF removed)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, line_no, f"invalid UTF-8 at byte {exc.start}") from None
    return text[:-1] if text.endswith("\n") else text


def iter_lines(path: str, *, skip_blank: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of `path`, newline removed, strictly UTF-8, LF only (CRLF is
    an error, see `raw_lines`)."""
    for line_no, _, raw in raw_lines(path):
        text = decode_line(path, line_no, raw)
        if skip_blank and not text.strip():
            continue
        yield line_no, text

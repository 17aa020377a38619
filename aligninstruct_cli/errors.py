"""The user-facing error types. The CLI turns any `AitError` into one clean message and an exit code;
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class AitError(Exception):
    """A problem the user can fix (bad option, bad input, missing file). Never shown with a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class RecordError(AitError):
    """A record (or input line) that fails validation, before its location is known.

    Library code raises this with the offending field; the reader that knows the file and line turns it
    into an `InputError`."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.field = field


class InputError(AitError):
    """Bad input at a known place: `FILE:LINE: field 'F': message`."""

    def __init__(self, path: str, line: int | None, message: str, *, field: str | None = None,
                 hint: str | None = None):
        self.path = path
        self.line = line
        self.field = field
        where = display_path(path) + (f":{line}" if line is not None else "")
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}", hint=hint)


def display_path(path: str) -> str:
    return "<stdin>" if path in ("-", "") else str(path)

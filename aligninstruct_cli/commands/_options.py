"""Option bundles shared by several commands (one definition each, as sqlite-utils does)."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.io import ErrorPolicy

InputArg = Annotated[str, typer.Argument(help="Input file (JSONL, TSV or `src ||| tgt`; .gz ok); - for stdin.",
                                         show_default=True)]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output file (written atomically; .gz ok); - for stdout.")]
InputFormatOpt = Annotated[str, typer.Option("--input-format", help="auto|jsonl|tsv|fast_align (auto: by file "
                                             "name, else by the first line).")]
SrcLangOpt = Annotated[Optional[str], typer.Option("--src-lang", help="Source language (ISO 639-1 or FLORES "
                                                   "code) for TSV / ||| input.")]
TgtLangOpt = Annotated[Optional[str], typer.Option("--tgt-lang", help="Target language for TSV / ||| input.")]
OnErrorOpt = Annotated[str, typer.Option("--on-error", help="fail: stop at the first bad record; skip: count "
                                         "bad records, report them on stderr and go on.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same output bytes.")]


def finish(policy: ErrorPolicy) -> None:
    """Report skipped records (if any) on stderr at the end of a command."""
    report = policy.report()
    if report:
        console.warn(report)

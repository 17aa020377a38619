"""`ait languages`: every language ait knows (codes, FLORES-200 code, English name, seen in BLOOM, source)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from aligninstruct_cli.commands.command_factory import stage_command
from aligninstruct_cli.languages import ListOptions, bloom_seen, list_languages

HELP = ("List the languages ait knows: canonical code, FLORES-200 code, English name (as in prompts), seen in "
        "BLOOM's pre-training, and where it comes from (built-in, langcodes, or your --languages file).")


def languages_command(options: ListOptions) -> None:
    rows = list_languages(options)
    seen = bloom_seen().codes
    cells = [(lang.code, flores, lang.name, "yes" if lang.code in seen else "no", lang.source) for lang, flores in rows]
    header = ("code", "flores", "name", "seen in BLOOM", "source")
    if options.format == "tsv":
        sys.stdout.write("\t".join(header) + "\n" + "".join("\t".join(row) + "\n" for row in cells))
        return
    table = Table(*header, caption=f"{len(cells)} language(s)")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def register(app: typer.Typer) -> None:
    stage_command(app, "languages", ListOptions, languages_command, help=HELP)

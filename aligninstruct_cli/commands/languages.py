"""`ait languages`: the language table (codes, FLORES-200 codes, names, seen in BLOOM)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from aligninstruct_cli.languages import LANGUAGES


def languages(
    seen: bool = typer.Option(False, "--seen", help="Only languages seen in BLOOM's pre-training."),
    unseen: bool = typer.Option(False, "--unseen", help="Only languages unseen in BLOOM's pre-training."),
) -> None:
    """List the languages ait knows: ISO code, FLORES-200 code, English name, seen in BLOOM."""
    table = Table("code", "flores", "name", "seen in BLOOM")
    for lang in LANGUAGES:
        if (seen and not lang.seen) or (unseen and lang.seen):
            continue
        table.add_row(lang.code, lang.flores, lang.name, "yes" if lang.seen else "no")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("languages")(languages)

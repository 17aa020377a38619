"""`ait mix`: combine instruction files into one training set (bounded memory, deterministic)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, OutputOpt, finish, stage_command
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions.mixing import MixOptions, apply_weights, mix, parse_inputs, summary_json
from aligninstruct_cli.io import write_json

HELP = (
    "Mix instruction files (from `ait build`) into one training set, e.g. MT+Align.\n\n"
    "Inputs are NAME=PATH or PATH (the name is then the file name without .jsonl/.gz). Per-language caps "
    "sample source pairs, weights up/down-sample each input, and --mode interleave shuffles everything "
    "with --seed; only byte offsets are held in memory (under 70 bytes a record at peak). A summary table "
    "(records per direction and objective) goes to stderr."
)


def mix_command(options: MixOptions, inputs: list[str], output: str = "-", summary: str | None = None) -> None:
    sources = parse_inputs(inputs)
    apply_weights(sources, options.weight)
    if summary and not Path(summary).resolve().parent.is_dir():
        raise AitError(f"--summary {summary}: directory {Path(summary).parent} does not exist")
    policy = options.policy()
    start = time.perf_counter()
    plan = mix(sources, output, options, policy=policy)
    elapsed = time.perf_counter() - start
    finish(policy)
    report = summary_json(plan)
    for row in report["inputs"]:
        if not row["records"]:
            console.warn(f"{row['path']}: no records")
    if summary:
        write_json(summary, report)
    _print_summary(report, elapsed)


def _print_summary(report: dict, elapsed: float) -> None:
    if console.is_quiet():
        return
    inputs = Table("input", "path", "records", "skipped", "after cap", "weight", "written",
                   title="ait mix: inputs", title_justify="left")
    for col in inputs.columns[2:]:
        col.justify = "right"
    for row in report["inputs"]:
        inputs.add_row(row["name"], row["path"], f"{row['records']:,}", f"{row['skipped']:,}",
                       f"{row['after_cap']:,}", row["weight"], f"{row['written']:,}")
    console.stderr.print(inputs)
    if report["pairs_per_language"]:
        langs = Table("language", "source pairs", "kept", title="--max-per-lang", title_justify="left")
        langs.columns[1].justify = langs.columns[2].justify = "right"
        for lang, row in sorted(report["pairs_per_language"].items()):
            langs.add_row(lang, f"{row['available']:,}", f"{row['kept']:,}")
        console.stderr.print(langs)
    objectives = sorted({r["objective"] for r in report["records"]})
    directions = sorted({r["direction"] for r in report["records"]})
    cells = {(r["direction"], r["objective"]): r["count"] for r in report["records"]}
    table = Table("direction", *objectives, "total", title="records written", title_justify="left",
                  show_footer=True)
    for col, obj in zip(table.columns[1:], objectives):
        col.footer = f"{sum(c for (d, o), c in cells.items() if o == obj):,}"
        col.justify = "right"
    table.columns[0].footer = "total"
    table.columns[-1].footer = f"{report['total']:,}"
    table.columns[-1].justify = "right"
    for d in directions:
        row = [cells.get((d, o), 0) for o in objectives]
        table.add_row(d, *(f"{c:,}" for c in row), f"{sum(row):,}")
    console.stderr.print(table)
    console.info(f"mix: {report['total']:,} records in {elapsed:.1f}s")


def register(app: typer.Typer) -> None:
    stage_command(app, "mix", MixOptions, mix_command, help=HELP, extras=(
        Extra("inputs", Annotated[List[str], typer.Argument(
            help="Instruction files (JSONL; .gz or - ok) as NAME=PATH or PATH.", show_default=False)]),
        Extra("output", OutputOpt, "-"),
        Extra("summary", Annotated[Optional[str], typer.Option(
            "--summary", metavar="FILE", help="Also write the summary (inputs, pairs per language, records per "
            "direction and objective) as JSON to this file.")], None)))

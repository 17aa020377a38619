"""`ait mix`: combine instruction files into one training set (bounded memory, deterministic)."""

from __future__ import annotations

import time
from typing import List, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import OnErrorOpt, OutputOpt, SeedOpt, finish
from aligninstruct_cli.io import ErrorPolicy, write_json

HELP = (
    "Mix instruction files (from `ait build`) into one training set, e.g. MT+Align.\n\n"
    "Inputs are NAME=PATH or PATH (the name is then the file name without .jsonl/.gz). Per-language caps "
    "sample source pairs, weights up/down-sample each input, and --mode interleave shuffles everything "
    "with --seed; only byte offsets are held in memory (under 60 bytes a record at peak). A summary table "
    "(records per direction and objective) goes to stderr."
)


def mix_command(
    inputs: Annotated[List[str], typer.Argument(
        help="Instruction files (JSONL; .gz or - ok) as NAME=PATH or PATH.", show_default=False)],
    output: OutputOpt = "-",
    mode: Annotated[str, typer.Option(
        "--mode", help="interleave: one seeded shuffle of all chosen records (multi-task, as MT+Align); "
                       "concat: inputs one after another, each in file order.")] = "interleave",
    weight: Annotated[Optional[List[str]], typer.Option(
        "--weight", help="NAME=W: up/down-sample input NAME to floor(W·n + 1/2) records (e.g. 2, 0.5, 1/3); "
                         "every record appears floor(W) or floor(W)+1 times. Repeat per input.",
        show_default=False)] = None,
    max_per_lang: Annotated[Optional[int], typer.Option(
        "--max-per-lang", help="Keep at most N source pairs per language (a seeded sample of source_ids, "
                               "the same pairs in every input; the paper used 200000).")] = None,
    seed: SeedOpt = 0,
    tmp_dir: Annotated[Optional[str], typer.Option(
        "--tmp-dir", help="Where stdin / .gz inputs are decompressed for random access (default: the "
                          "system temporary directory).")] = None,
    summary: Annotated[Optional[str], typer.Option(
        "--summary", help="Also write the summary (inputs, pairs per language, records per direction and "
                          "objective) as JSON to this file.")] = None,
    on_error: OnErrorOpt = "fail",
) -> None:
    from aligninstruct_cli.instructions.mixing import apply_weights, mix, parse_inputs, summary_json

    sources = parse_inputs(inputs)
    apply_weights(sources, weight or [])
    policy = ErrorPolicy(on_error)
    start = time.perf_counter()
    plan = mix(sources, output, mode=mode, seed=seed, max_per_lang=max_per_lang, policy=policy,
               tmp_dir=tmp_dir)
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
    from rich.table import Table

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
    app.command("mix", help=HELP)(mix_command)

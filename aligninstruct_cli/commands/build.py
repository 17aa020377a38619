"""`ait build-instructions` (alias `ait build`): parallel/aligned records → instruction records."""

from __future__ import annotations

import time
from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import (InputArg, InputFormatOpt, OnErrorOpt, OutputOpt, SeedOpt,
                                                 SrcLangOpt, TgtLangOpt, finish)
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions import templates
from aligninstruct_cli.instructions.objectives import (DEFAULT_NEGATIVES, DEFAULT_REVISE_POOL, DIRECTIONS,
                                                       INPUT_KIND, BuildStats, build_instructions)
from aligninstruct_cli.io import ErrorPolicy, RecordWriter, read_records
from aligninstruct_cli.languages import get_language
from aligninstruct_cli.records import OBJECTIVES

HELP = (
    "Turn parallel or aligned records into the paper's instruction records (JSONL on stdout or -o).\n\n"
    "mt, mono-full and mono-half read parallel records (JSONL, TSV or `src ||| tgt`); align, hint and "
    "revise read aligned records (the output of `ait align`). Each pair gives an en→xx and an xx→en "
    "record unless --direction says otherwise. Records that give nothing (no gold pair, too short, ...) "
    "are counted and reported on stderr. Same input and --seed: same bytes out."
)


def build_instructions_command(
    input: InputArg = "-",
    output: OutputOpt = "-",
    objective: Annotated[str, typer.Option(
        "--objective", help=f"Instruction type: {'|'.join(OBJECTIVES)} (mt = MTInstruct, the baseline).")] = "mt",
    direction: Annotated[str, typer.Option(
        "--direction", help="both: each pair gives en→xx and xx→en records (the paper's default); en-xx or "
                            "xx-en: one of them. Without English in a pair, its src side plays English. "
                            "Ignored by mono-*.")] = "both",
    seed: SeedOpt = 0,
    negatives: Annotated[float, typer.Option(
        "--negatives", help="align: False records per True record (fractions are realised exactly over the "
                            "stream, e.g. 0.5 = one False for every other True).")] = DEFAULT_NEGATIVES,
    pairs_per_sentence: Annotated[Optional[int], typer.Option(
        "--pairs-per-sentence", help="align/hint/revise: use at most this many gold pairs per sentence "
                                     "(the highest-scoring); default: all.")] = None,
    max_hints: Annotated[int, typer.Option(
        "--max-hints", help="hint: at most this many alignment hints per record (the paper's S).")]
    = templates.MAX_HINTS,
    revise_pool: Annotated[int, typer.Option(
        "--revise-pool", help="revise: word groups kept per language to draw replacements from (a uniform "
                              "reservoir over the stream so far).")] = DEFAULT_REVISE_POOL,
    input_format: InputFormatOpt = "auto",
    src_lang: SrcLangOpt = None,
    tgt_lang: TgtLangOpt = None,
    on_error: OnErrorOpt = "fail",
) -> None:
    if objective not in OBJECTIVES:
        raise AitError(f"unknown --objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
    if direction not in DIRECTIONS:
        raise AitError(f"unknown --direction {direction!r} (expected one of {', '.join(DIRECTIONS)})")
    kind = INPUT_KIND[objective]
    if kind == "aligned" and input_format in ("tsv", "fast_align"):
        raise AitError(f"--objective {objective} needs aligned JSONL records (run `ait align` first), "
                       f"not {input_format} input")
    for code in (src_lang, tgt_lang):
        if code is not None:
            get_language(code)
    policy = ErrorPolicy(on_error)
    stats = BuildStats()
    records = read_records(input, kind, fmt=input_format, src_lang=src_lang, tgt_lang=tgt_lang,
                           policy=policy)
    instructions = build_instructions(
        records, objective, direction=direction, seed=seed, negatives=negatives,
        pairs_per_sentence=pairs_per_sentence, max_hints=max_hints, revise_pool=revise_pool, stats=stats)
    start = time.perf_counter()
    with RecordWriter(output) as out:
        out.write_many(console.track(instructions, f"build {objective}", every=5000))
    elapsed = time.perf_counter() - start
    finish(policy)
    for line in stats.report():
        console.warn(line)
    console.info(f"{objective}: {stats.records_in:,} input record(s) → {stats.records_out:,} instruction "
                 f"record(s) in {elapsed:.1f}s ({stats.records_in / max(elapsed, 1e-9):,.0f} input records/s)")


def register(app: typer.Typer) -> None:
    app.command("build-instructions", help=HELP)(build_instructions_command)
    app.command("build", help=HELP, short_help="Alias of build-instructions.")(build_instructions_command)

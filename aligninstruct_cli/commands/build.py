"""`ait build-instructions` (alias `ait build`): parallel/aligned records → instruction records."""

from __future__ import annotations

import time

import typer

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, InputArg, OutputOpt, finish, stage_command
from aligninstruct_cli.instructions.objectives import INPUT_KIND, BuildOptions, BuildStats, build_instructions
from aligninstruct_cli.io import RecordWriter, read_records

HELP = (
    "Turn parallel or aligned records into the paper's instruction records (JSONL on stdout or -o).\n\n"
    "mt, mono-full and mono-half read parallel records (JSONL, TSV or `src ||| tgt`); align, hint and "
    "revise read aligned records (the output of `ait align`). Each pair gives an en→xx and an xx→en "
    "record unless --direction says otherwise. align follows the paper by default: one record per sentence pair "
    "and direction, True or False in equal shares (--pairs-per-sentence and --negatives give more or other "
    "shares). Records that give nothing (no gold pair, too short, ...), the True/False counts and every "
    "fallback are reported on stderr. Same input and --seed: same bytes out."
)


def build_instructions_command(options: BuildOptions, input: str = "-", output: str = "-") -> None:
    policy = options.policy()
    stats = BuildStats()
    records = read_records(input, INPUT_KIND[options.objective], fmt=options.input_format, src_lang=options.src_lang,
                           tgt_lang=options.tgt_lang, policy=policy)
    instructions = build_instructions(records, options, stats=stats)
    start = time.perf_counter()
    with RecordWriter(output) as out:
        out.write_many(console.track(instructions, f"build {options.objective}", every=5000))
    elapsed = time.perf_counter() - start
    finish(policy)
    for line in stats.report():
        console.notice(line)
    for line in stats.summary():
        console.info(line)
    console.info(f"{options.objective}: {stats.records_in:,} input record(s) → {stats.records_out:,} instruction "
                 f"record(s) in {elapsed:.1f}s ({stats.records_in / max(elapsed, 1e-9):,.0f} input records/s)")


def register(app: typer.Typer) -> None:
    stage_command(app, "build-instructions", BuildOptions, build_instructions_command, help=HELP,
                  aliases=("build",), extras=(Extra("input", InputArg, "-"), Extra("output", OutputOpt, "-")))

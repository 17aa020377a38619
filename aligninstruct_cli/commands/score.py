"""`ait score`: BLEU, chrF++ and COMET per direction and direction group, with paired bootstrap against a
baseline; JSONL hypotheses from `ait translate` or plain text as sacrebleu reads it; see docs/score.md."""

from __future__ import annotations

import os
from copy import copy as copy_options
from typing import List, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, OutputOpt, stage_command
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import STDIO, RecordWriter, regular_files, write_records
from aligninstruct_cli.metrics import METRICS
from aligninstruct_cli.metrics import report as report_mod
from aligninstruct_cli.metrics.score_options import ScoreOptions

HELP = """Score hypotheses with BLEU, chrF++ and COMET per direction and per direction group.

Plain text works as with sacrebleu: `ait score HYP.txt --refs REF.txt --src-lang en --tgt-lang kk -m bleu chrf`
gives sacrebleu's numbers and signatures (several --refs, -b, -w, --confidence, TER too); comet-score's -s, -t,
-r, --model and --gpus are understood."""

METRIC_FLAGS = ("-m", "--metrics")


def sacrebleu_argv(args: list[str]) -> list[str]:
    """`ait ... score` arguments with sacrebleu's space-separated metric list (`-m bleu chrf`) joined into
    ait's one value (`-m bleu,chrf`): the words after -m that name metrics and no existing file. Other
    commands' arguments are returned as they are."""

    command = next((k for k, arg in enumerate(args) if not arg.startswith("-")), None)
    if command is None or args[command] != "score":
        return args
    out = list(args[:command + 1])
    rest = args[command + 1:]
    k = 0
    while k < len(rest):
        out.append(rest[k])
        if rest[k] in METRIC_FLAGS and k + 1 < len(rest):
            names = [rest[k + 1]]
            k += 2
            while k < len(rest) and rest[k].lower() in METRICS and not os.path.exists(rest[k]):
                names.append(rest[k])
                k += 1
            out.append(",".join(names))
            continue
        k += 1
    return out


def score_command(options: ScoreOptions, hyps: list[str] | None = None, output: str = STDIO,
                  sentence_level: str | None = None, inputs: list[str] | None = None) -> None:
    # a pipe given as a file name (/dev/stdin, <(cmd)) is read once: the format check must not consume it
    refs = list(options.refs or [])  # several references (sacrebleu's nrefs)
    with regular_files([*(hyps or []), *(inputs or []), options.baseline, *refs, options.src]) as copy:
        copied = {f: copy[getattr(options, f)] for f in ("baseline", "src") if getattr(options, f) in copy}
        if any(r in copy for r in refs):
            copied["refs"] = [copy.get(r, r) for r in refs]
        if copied:  # set on a copy, not made again: __post_init__ would take the defaulted metrics as given
            options = copy_options(options)
            for name, value in copied.items():
                setattr(options, name, value)
        _score(options, [copy.get(h, h) for h in hyps or []], output, sentence_level,
               [copy.get(i, i) for i in inputs or []])


def _score(options: ScoreOptions, hyps: list[str], output: str, sentence_level: str | None,
           inputs: list[str]) -> None:
    from aligninstruct_cli.metrics import scoring  # lazy: start-up (scoring and its test sets, ~6 ms)

    hyps = list(hyps or []) + list(inputs or [])
    if not hyps:
        raise AitError("no hypotheses: give HYPS files (or -i FILE); - reads stdin")
    options = scoring.metrics_that_can_score(hyps, options)

    if sentence_level == STDIO and output == STDIO:
        raise AitError("--sentence-level - and the report both go to stdout", hint="give one of them a file")
    report, sentence_records = scoring.score(hyps, options, sentence_level=sentence_level is not None,
                                             progress=not console.is_quiet() and console.stderr.is_terminal)
    text = report_mod.render(report, options.format, options.layout, width=options.width,
                             score_only=options.score_only)
    if sentence_level is not None:
        write_records(sentence_level, sentence_records)
    with RecordWriter(output) as out:
        out.write_line(text.rstrip("\n"))
    console.info(f"scored {len(report['systems'])} system(s) on {report['n_segments']} segment(s), "
                 f"{len(report['directions'])} direction(s), {len(report['groups'])} group(s)")


def register(app: typer.Typer) -> None:
    stage_command(app, "score", ScoreOptions, score_command, help=HELP, extras=(
        Extra("hyps", Annotated[Optional[List[str]], typer.Argument(
            help="Hypothesis file(s), one system each (a row of the table): JSONL from `ait translate`, or plain "
                 "text, one hypothesis a line (with --refs and --src-lang/--tgt-lang); - for stdin (one input at "
                 "most).", show_default=False)], None),
        Extra("output", OutputOpt, STDIO),
        Extra("sentence_level", Annotated[Optional[str], typer.Option(
            "--sentence-level", help="Also write one JSONL record per system and segment with its scores to this "
            "file (- for stdout; then -o must be a file).")], None),
        Extra("inputs", Annotated[Optional[List[str]], typer.Option(
            "--input", "-i", "--translations", "-t", metavar="FILE", show_default=False,
            help="Hypothesis file, as sacrebleu's -i or comet-score's -t (repeatable); the same as naming it in "
                 "HYPS.")], None)))

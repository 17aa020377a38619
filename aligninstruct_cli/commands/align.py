"""`ait align`: word alignment (fast_align's model, or eflomal) and gold span pairs for AlignInstruct."""

from __future__ import annotations

import time
from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.align.pipeline import AlignOptions
from aligninstruct_cli.align.spans import PAIR_SIGNALS, pair_signals
from aligninstruct_cli.commands._options import Extra, InputArg, OutputOpt, finish, stage_command
from aligninstruct_cli.errors import AitError

HELP = """Word-align parallel sentences and extract the gold span pairs AlignInstruct needs.

Input: parallel JSONL, TSV (src<TAB>tgt) or `src ||| tgt` lines (the last two need --src-lang and --tgt-lang). Output: aligned JSONL records (the input fields plus src_tokens, tgt_tokens, links, pairs) or, with --format pharaoh, one `i-j` line per sentence pair (0-based, source-target).

The model is fast_align's (IBM Model 2 with a diagonal prior, tension optimisation and variational Bayes, as `fast_align -d -o -v`), trained in both directions and symmetrized with grow-diag-final-and; see docs/align.md."""


def align_command(options: AlignOptions, input: str = "-", output: str = "-", save_model: str | None = None) -> None:
    from aligninstruct_cli.align.persist import AlignmentModel
    from aligninstruct_cli.align.pipeline import CorpusAligner
    from aligninstruct_cli.errors import InputError, RecordError
    from aligninstruct_cli.io import RecordWriter, read_records

    if options.model and save_model:
        raise AitError("--model and --save-model exclude each other (a loaded model is not retrained)")
    if save_model and options.backend != "fast_align":
        raise AitError("--save-model needs --backend fast_align (eflomal keeps no model)")
    loaded = AlignmentModel.load(options.model) if options.model else None
    if loaded is not None:
        if options.tokenize is not None and tuple(options.tokenize) != tuple(loaded.tokenize):
            console.warn(f"--tokenize {','.join(options.tokenize)} ignored: the model was trained with "
                         f"{','.join(loaded.tokenize)}")
        if options.lowercase is not None and options.lowercase != loaded.lowercase:
            console.warn("--lowercase/--no-lowercase ignored: the model decides")
    options.progress = not console.is_quiet()
    policy = options.policy()
    started = time.perf_counter()
    with CorpusAligner(options, loaded) as aligner:
        located = read_records(input, "parallel", fmt=options.input_format, src_lang=options.src_lang,
                               tgt_lang=options.tgt_lang, policy=policy, with_location=True)
        for line_no, record in console.track(located, "reading", unit="sentences", every=4096):
            try:
                aligner.add(record)
            except RecordError as exc:
                policy.handle(InputError(input, line_no, exc.message, field=exc.field, hint=exc.hint))
        n = len(aligner)
        if n == 0:
            console.warn(f"{input}: no sentence pairs to align; the output is empty")
            with RecordWriter(output):
                pass
            finish(policy)
            return
        aligner.fit()
        if save_model:
            aligner.trained_model().save(save_model)
        n_links = n_pairs = 0
        signals = dict.fromkeys(PAIR_SIGNALS, 0)
        with RecordWriter(output) as out:
            if options.output_format == "pharaoh":
                for line in aligner.pharaoh_lines():
                    out.write_line(line)
            else:
                for rec in aligner.aligned_records():
                    n_links += len(rec["links"])
                    n_pairs += len(rec["pairs"])
                    for pair in rec["pairs"]:
                        for signal in pair_signals(pair):
                            signals[signal] += 1
                    out.write(rec)
        elapsed = time.perf_counter() - started
        summary = f"aligned {n:,} sentence pairs in {elapsed:,.1f}s ({n / max(elapsed, 1e-9):,.0f} sentences/s)"
        if options.output_format == "jsonl":
            summary += f"; {n_links:,} links ({options.links}), {n_pairs:,} span pairs"
            if n_pairs:  # the gold pairs' quality signal: high shares mean the tokenization keeps punctuation
                summary += " (" + ", ".join(f"{signals[k] / n_pairs:.1%} {k}" for k in PAIR_SIGNALS) + ")"
        if aligner.trainer is not None:
            summary += "; tension " + ", ".join(f"{name} {d.tension:.3f}" for name, d in aligner.trainer.directions.items())
        if save_model:
            summary += f"; model saved to {save_model}"
        console.info(summary)
    finish(policy)


def register(app: typer.Typer) -> None:
    stage_command(app, "align", AlignOptions, align_command, help=HELP, extras=(
        Extra("input", InputArg, "-"), Extra("output", OutputOpt, "-"),
        Extra("save_model", Annotated[Optional[str], typer.Option("--save-model", metavar="DIR",
                                                                  help="Save the trained model to DIR.")], None)))

"""`ait align`: word alignment (fast_align's model, or eflomal) and gold span pairs for AlignInstruct."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.align.pipeline import AlignOptions, align_file
from aligninstruct_cli.commands.command_factory import Extra, InputArg, OutputOpt, finish, stage_command

HELP = """Word-align parallel sentences and extract the gold span pairs AlignInstruct needs.

Input: parallel JSONL, TSV (src<TAB>tgt) or `src ||| tgt` lines (the last two need --src-lang and --tgt-lang). Output: aligned JSONL records (the input fields plus src_tokens, tgt_tokens, links, pairs) or, with --format pharaoh, one `i-j` line per sentence pair (0-based, source-target).

The model is fast_align's (IBM Model 2 with a diagonal prior, tension optimisation and variational Bayes, as `fast_align -d -o -v`), trained in both directions and symmetrized with grow-diag-final-and; see docs/align.md."""


def align_command(options: AlignOptions, input: str = "-", output: str = "-", save_model: str | None = None) -> None:
    options.progress = not console.is_quiet()
    policy = options.policy()
    summary = align_file(options, input, output, save_model, policy=policy)
    if summary is not None:
        console.info(summary)
    finish(policy)


def register(app: typer.Typer) -> None:
    stage_command(app, "align", AlignOptions, align_command, help=HELP, extras=(
        Extra("input", InputArg, "-"), Extra("output", OutputOpt, "-"),
        Extra("save_model", Annotated[Optional[str], typer.Option("--save-model", metavar="DIR",
                                                                  help="Save the trained model to DIR.")], None)))

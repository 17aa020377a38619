"""`ait train`: LoRA (or full) fine-tuning over a curriculum, launched through DeepSpeed, resumable."""

from __future__ import annotations

import sys

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, stage_command
from aligninstruct_cli.training.train_options import PANEL_LAUNCH, PANEL_RUN, TrainOptions

HELP = """Fine-tune a causal LM on instruction records over a curriculum (LoRA by default, as in the paper), through the deepspeed launcher; resumable. Writes OUTPUT/stage-K-*/ and OUTPUT/final/ (PEFT adapters), run.json and metrics.jsonl. See docs/train.md.

Example: ait train -m bigscience/bloomz-560m --data mt=mt.jsonl --data align=align.jsonl --curriculum mt+align,mt --val val.jsonl -o runs/x"""

DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Print the launch command and the DeepSpeed config, then exit.", rich_help_panel=PANEL_LAUNCH)]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue the run in --output from its last checkpoint (the options must be the same).",
    rich_help_panel=PANEL_RUN)]


def train_command(options: TrainOptions, dry_run: bool = False, resume: bool = False) -> None:
    from aligninstruct_cli.training.launch import run  # lazy: start-up (the training launcher, ~20 ms)

    run(options, resume=resume, dry_run=dry_run, command=list(sys.argv), quiet=console.is_quiet())


def register(app: typer.Typer) -> None:
    stage_command(app, "train", TrainOptions, train_command, help=HELP,
                  extras=(Extra("dry_run", DryRunOpt, False), Extra("resume", ResumeOpt, False)))

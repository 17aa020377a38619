"""`ait translate`: translate source records with a model (+ LoRA adapter); see docs/translate.md."""

from __future__ import annotations

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, InputArg, OutputOpt, finish, stage_command
from aligninstruct_cli.generation import TranslateOptions
from aligninstruct_cli.io import STDIO
from aligninstruct_cli.translate_file import translate_file

HELP = """Translate source records (JSONL, TSV, `|||` or plain text) with a model and optional LoRA adapter.

Each output record keeps every input field and adds hyp, prompt_name, model and adapter."""

# --resume is an action of this invocation on its -o file, not a setting of the translation: a config file
# that said `resume: true` would make every later run append to whatever file it is pointed at.
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Append to --output, skipping ids it already holds; the "
                                         "file is synced after every chunk so an interrupted run can resume (not "
                                         "atomic).")]


def translate_command(options: TranslateOptions, input: str = STDIO, output: str = STDIO, resume: bool = False) -> None:
    policy = options.policy()
    summary = translate_file(options, input, output, resume=resume, policy=policy)
    finish(policy)
    console.info(summary)


def register(app: typer.Typer) -> None:
    stage_command(app, "translate", TranslateOptions, translate_command, help=HELP, extras=(
        Extra("input", InputArg, STDIO), Extra("output", OutputOpt, STDIO), Extra("resume", ResumeOpt, False)))

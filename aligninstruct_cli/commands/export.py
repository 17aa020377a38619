"""`ait export`: a trained adapter out to serving: the merged model (safetensors + tokenizer) or a clean
adapter directory, each with a model card; see docs/export.md."""

from __future__ import annotations

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.command_factory import Extra, stage_command
from aligninstruct_cli.export import ExportOptions, export

HELP = """Write a trained adapter out for serving: the base model with the LoRA adapter merged in (safetensors shards, tokenizer, generation config: loads with AutoModelForCausalLM.from_pretrained, vLLM, TGI), or with --adapter-only a clean adapter directory; both with a model card (README.md).

Example: ait export runs/mt+align --model bigscience/bloomz-560m --scores scores.json -o bloomz-560m-kk"""

SourceArg = Annotated[str, typer.Argument(metavar="RUN_OR_ADAPTER", show_default=False,
                                          help="An `ait train` run directory (its final/ is exported) or an adapter "
                                               "directory (with adapter_config.json).")]


def export_command(options: ExportOptions, source: str) -> None:
    out = export(options, source)
    console.info(f"[green]exported[/green] {'adapter' if options.adapter_only else 'merged model'}: {out}")


def register(app: typer.Typer) -> None:
    stage_command(app, "export", ExportOptions, export_command, help=HELP, extras=(Extra("source", SourceArg),))

"""`ait data`: real parallel data by name (OPUS-100, FLORES-200) as parallel JSONL."""

from __future__ import annotations

import typer

from aligninstruct_cli import console, data_sources
from aligninstruct_cli.commands.command_factory import Extra, InputArg, OutputOpt, stage_command
from aligninstruct_cli.io import RecordWriter

data_app = typer.Typer(help="Fetch real parallel data by name (OPUS-100, FLORES-200) as parallel JSONL.",
                       no_args_is_help=True)


def opus100(options: data_sources.Opus100Options, output: str = "-") -> None:
    """OPUS-100 (Helsinki-NLP/opus-100 on the hub) for one English-centric pair."""
    with RecordWriter(output) as out:
        n = out.write_many(data_sources.opus100(options))
    console.info(f"opus100 {options.pair} {options.split}: wrote {n} records")


def flores200(options: data_sources.Flores200Options, output: str = "-") -> None:
    """FLORES-200 (openlanguagedata/flores_plus on the hub, gated) paired by sentence."""
    with RecordWriter(output) as out:
        n = out.write_many(data_sources.flores200(options))
    console.info(f"flores200 {options.lang} {options.split}: wrote {n} records")


def file(options: data_sources.FileOptions, input: str = "-", output: str = "-") -> None:
    """Your parallel file (JSONL, TSV or `src ||| tgt`) as it is, reversed, or in both directions."""
    with RecordWriter(output) as out:
        n = out.write_many(data_sources.file_records(input, options))
    console.info(f"{input}: wrote {n} records ({options.direction})")


def register(app: typer.Typer) -> None:
    output = (Extra("output", OutputOpt, "-"),)
    stage_command(data_app, "file", data_sources.FileOptions, file, extras=(Extra("input", InputArg, "-"), *output))
    stage_command(data_app, "opus100", data_sources.Opus100Options, opus100, extras=output)
    stage_command(data_app, "flores200", data_sources.Flores200Options, flores200, extras=output)
    app.add_typer(data_app, name="data")

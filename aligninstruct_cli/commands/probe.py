"""`ait probe`: per-layer cross-lingual similarity of a model (+ adapter), and Δ between runs; see
docs/probe.md."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import List, Optional

import orjson
import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli import probe as probe_lib
from aligninstruct_cli.commands.command_factory import Extra, OutputOpt, finish, stage_command
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import STDIO, RecordWriter, read_json, read_records
from aligninstruct_cli.models import load_model
from aligninstruct_cli.options import OptionError, option_ref
from aligninstruct_cli.probe import ProbeOptions

HELP = """Mean cosine similarity of parallel sentences per layer (mean-pooled hidden states), or per-layer Δ between probe results with --compare. JSON to --output, a table on stderr, a PNG with --plot."""

InputsArg = Annotated[List[str], typer.Argument(help="PAIRS: parallel sentences (JSONL, TSV or `|||`; - for stdin). "
                                                "With --compare: two or more probe results (JSON).")]
PlotOpt = Annotated[Optional[str], typer.Option("--plot", help="Also write a PNG line plot to this path.")]
CompareOpt = Annotated[bool, typer.Option("--compare", help="Compare probe results RUN_A.json RUN_B.json ...: "
                                          "per-layer Δ of consecutive runs (Δ1 = B − A, Δ2 = C − B).")]


def probe_command(options: ProbeOptions, inputs: list[str], output: str = STDIO, plot: str | None = None,
                  compare: bool = False) -> None:

    if plot and not Path(plot).resolve().parent.is_dir():
        raise AitError(f"--plot {plot}: directory {Path(plot).parent} does not exist")
    if compare:
        if options.model or options.adapter:
            raise OptionError(f"--compare reads probe results; it takes no {option_ref('model')}/{option_ref('adapter')}")
        result = probe_lib.compare_runs([read_json(p) for p in inputs], inputs,
                                        bootstrap_samples=options.bootstrap_samples, seed=options.seed)
    else:
        if len(inputs) != 1:
            raise AitError(f"expected one PAIRS file, got {len(inputs)}", hint="to compare results, add --compare")
        if not options.model:
            raise OptionError(f"{option_ref('model')} is required (the model to probe)")
        policy = options.policy()
        pairs = read_records(inputs[0], kind="parallel", fmt=options.input_format, src_lang=options.src_lang,
                             tgt_lang=options.tgt_lang, policy=policy)
        pairs = islice(pairs, options.limit) if options.limit else pairs
        loaded = load_model(options.model, options.adapter, device=options.device, precision=options.precision,
                            padding_side="right")
        with console.Bar("probe", total=options.limit, unit="pairs") as bar:
            result = probe_lib.probe(loaded, pairs, options, on_batch=bar.advance)
        finish(policy)
        if options.label:
            result["label"] = options.label
    if plot:
        probe_lib.plot(result, plot)
    with RecordWriter(output) as out:
        out.write_line(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode("utf-8"))
    if not console.is_quiet():
        console.stderr.print(probe_lib.render_terminal(result))


def register(app: typer.Typer) -> None:
    stage_command(app, "probe", ProbeOptions, probe_command, help=HELP, extras=(
        Extra("inputs", InputsArg), Extra("output", OutputOpt, STDIO), Extra("plot", PlotOpt, None),
        Extra("compare", CompareOpt, False)))

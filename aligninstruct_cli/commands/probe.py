"""`ait probe`: per-layer cross-lingual similarity of a model (+ adapter), and Δ between runs; see
docs/probe.md."""

from __future__ import annotations

from itertools import islice
from typing import List, Optional

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands._options import (InputFormatOpt, OnErrorOpt, OutputOpt, SrcLangOpt, TgtLangOpt,
                                                 finish)
from aligninstruct_cli.commands.translate import AdapterOpt, DeviceOpt
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import STDIO, ErrorPolicy, RecordWriter, read_json, read_records


def probe(
    inputs: Annotated[List[str], typer.Argument(help="PAIRS: parallel sentences (JSONL, TSV or `|||`; - for "
                                                "stdin). With --compare: two or more probe results (JSON).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model: a hub id or a local "
                                                 "directory (not with --compare).")] = None,
    adapter: AdapterOpt = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare probe results RUN_A.json RUN_B.json ...: "
                                          "per-layer Δ of consecutive runs (Δ1 = B − A, Δ2 = C − B).")] = False,
    output: OutputOpt = STDIO,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also write a PNG line plot to this path.")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Name of this run in comparisons and plots "
                                                 "(default: the adapter's or model's directory name).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Probe only the first N pairs.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sentences per forward pass.")] = 16,
    max_length: Annotated[int, typer.Option("--max-length", help="Truncate each sentence to this many "
                                            "tokens.")] = 256,
    input_format: InputFormatOpt = "auto",
    src_lang: SrcLangOpt = None,
    tgt_lang: TgtLangOpt = None,
    on_error: OnErrorOpt = "fail",
    device: DeviceOpt = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto (float32: similarities are small differences), "
                                       "float32, bfloat16, float16.")] = "auto",
) -> None:
    """Mean cosine similarity of parallel sentences per layer (mean-pooled hidden states), or per-layer Δ
    between probe results with --compare. JSON to --output, a table on stderr, a PNG with --plot."""
    from pathlib import Path

    from aligninstruct_cli import probe as probe_lib

    if plot and not Path(plot).resolve().parent.is_dir():
        raise AitError(f"--plot {plot}: directory {Path(plot).parent} does not exist")
    if compare:
        if model or adapter:
            raise AitError("--compare reads probe results; it takes no --model/--adapter")
        result = probe_lib.compare_runs([read_json(p) for p in inputs], inputs)
    else:
        if len(inputs) != 1:
            raise AitError(f"expected one PAIRS file, got {len(inputs)}", hint="to compare results, add --compare")
        if not model:
            raise AitError("--model is required (the model to probe)")
        if limit is not None and limit < 1:
            raise AitError("--limit must be at least 1")
        if max_length < 1:
            raise AitError("--max-length must be at least 1")
        from aligninstruct_cli.generation import load_model

        policy = ErrorPolicy(on_error)
        pairs = read_records(inputs[0], kind="parallel", fmt=input_format, src_lang=src_lang, tgt_lang=tgt_lang,
                             policy=policy)
        pairs = islice(pairs, limit) if limit else pairs
        loaded = load_model(model, adapter, device=device, dtype="float32" if dtype == "auto" else dtype,
                            padding_side="right")
        with console.progress() as bar:
            task = bar.add_task("probe", total=limit, rate="")
            result = probe_lib.probe(loaded, pairs, batch_size=batch_size, max_length=max_length,
                                     on_batch=lambda n: bar.update(task, advance=n))
        finish(policy)
        if label:
            result["label"] = label
    if plot:
        probe_lib.plot(result, plot)
    import orjson

    with RecordWriter(output) as out:
        out.write_line(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode("utf-8"))
    if not console.is_quiet():
        console.stderr.print(probe_lib.render_terminal(result))


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)

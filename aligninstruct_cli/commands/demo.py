"""`ait demo`: the whole chain on toy languages (`run`), and the helpers its script calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError

demo_app = typer.Typer(help="The whole AlignInstruct chain on toy languages, small enough for a laptop CPU.",
                       no_args_is_help=True)
SCRIPT = Path(__file__).resolve().parents[1] / "demo" / "demo.sh"


@demo_app.command("run")
def run(
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for everything the demo makes.")]
        = "demo-out",
    quick: Annotated[bool, typer.Option("--quick", help="A smoke run of every step on very little data "
                                        "(seconds per step; shows no learning).")] = False,
    show_script: Annotated[bool, typer.Option("--show-script", help="Print the demo's shell script and exit.")]
        = False,
) -> None:
    """Run the demo script: toy data → base model → align → build → LoRA (MT, MT+Align) → translate →
    score → probe → report (OUTPUT/report.md)."""
    if show_script:
        sys.stdout.write(SCRIPT.read_text(encoding="utf-8"))
        return
    bash = shutil.which("bash")
    if bash is None:
        raise AitError("the demo needs bash")
    env = dict(os.environ, AIT=f"{sys.executable} -m aligninstruct_cli", AIT_DEMO_QUICK="1" if quick else "0",
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    started = time.monotonic()
    code = subprocess.call([bash, str(SCRIPT), output], env=env)
    if code:
        raise AitError(f"the demo stopped: a step exited with code {code} (see above)")
    console.info(f"demo finished in {time.monotonic() - started:.0f} s; report: {output}/report.md")


@demo_app.command("toy-data")
def toy_data(
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the toy corpora.")],
    seen: Annotated[int, typer.Option("--seen", help="English-Sunlandic training pairs.")] = 20000,
    unseen: Annotated[int, typer.Option("--unseen", help="English-Moonlandic training pairs.")] = 3000,
    dev: Annotated[int, typer.Option("--dev", help="English-Moonlandic pairs for the probe.")] = 200,
    test: Annotated[int, typer.Option("--test", help="Held-out English-Moonlandic test pairs.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Sentence seed (lexicons are fixed).")] = 0,
) -> None:
    """Generate the toy parallel corpora (parallel JSONL, English source)."""
    from aligninstruct_cli.demo.build import make_toy_data

    sizes = make_toy_data(output, seen=seen, unseen=unseen, dev=dev, test=test, seed=seed)
    console.info(", ".join(f"{name}: {n}" for name, n in sizes.items()))


@demo_app.command("toy-model")
def toy_model(
    data: Annotated[str, typer.Option("--data", help="Directory written by `ait demo toy-data`.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the untrained model.")],
    seed: Annotated[int, typer.Option("--seed", help="Weight initialisation seed.")] = 0,
) -> None:
    """Train a tokenizer on English + Sunlandic and save an untrained tiny BLOOM (hidden 128, 2 layers)."""
    from aligninstruct_cli.demo.build import make_toy_model

    make_toy_model(data, output, seed=seed)
    console.info(f"untrained tiny BLOOM and tokenizer in {output}")


@demo_app.command("toy-comet")
def toy_comet(
    data: Annotated[str, typer.Option("--data", help="Directory written by `ait demo toy-data`.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the COMET checkpoint.")],
) -> None:
    """Build a tiny, untrained COMET checkpoint (a stand-in for wmt22-comet-da, which needs the hub)."""
    from aligninstruct_cli.io import read_records
    from aligninstruct_cli.tiny import build_tiny_comet

    texts = [t for r in read_records(str(Path(data) / "unseen-train.jsonl"), "parallel") for t in (r["src"], r["tgt"])]
    build_tiny_comet(output, texts=texts)
    console.info(f"tiny COMET checkpoint in {output} (random weights: its scores only show the plumbing)")


@demo_app.command("report")
def report(
    directory: Annotated[str, typer.Argument(help="The demo's output directory.")],
) -> None:
    """Write DIRECTORY/report.md from the scores and probe results and print its summary."""
    from aligninstruct_cli.demo.report import write_report

    path, summary = write_report(directory)
    console.info(summary)
    console.info(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")

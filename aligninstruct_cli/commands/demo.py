"""`ait demo`: the whole chain on toy languages (`run`: the experiment examples/demo.yaml), and the toy data,
model and COMET steps it uses."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.commands.experiment import load
from aligninstruct_cli.demo import LANGUAGE_FILE
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.languages import use_language_file

demo_app = typer.Typer(help="The whole AlignInstruct chain on toy languages, small enough for a laptop CPU.",
                       no_args_is_help=True)
CONFIG = Path(__file__).resolve().parents[1] / "demo" / "demo.yaml"  # examples/demo.yaml links to it
# `--quick`: every step on very little data, trainings in-process (a plumbing check for the tests; shows no
# learning; the deepspeed launcher is tested in tests/training/test_launch.py)
QUICK = ("toy.seen=300", "toy.unseen=120", "toy.dev=16", "toy.test=16", "systems.MTInstruct.train.epochs=1",
         "systems.MT+Align.train.epochs=1", "probe.options.limit=16", "train.launcher=none",
         "train.num_gpus=null")


@demo_app.command("run", help="The demo experiment (examples/demo.yaml): toy data, base model, align, build, LoRA "
                  "(MT, MT+Align), translate, score, probe, then its report (OUTPUT/report.md); the same as ait "
                  "experiment run and report on that file.")
def run(
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for everything the demo makes.")]
        = "demo-out",
    quick: Annotated[bool, typer.Option("--quick", help="A smoke run of every step on very little data "
                                        "(seconds per step; shows no learning).")] = False,
    show_config: Annotated[bool, typer.Option("--show-config", help="Print the demo's experiment config and exit.")]
        = False,
) -> None:
    from aligninstruct_cli.experiment.report import write_report  # lazy: start-up (experiment runner, ~70 ms)
    from aligninstruct_cli.experiment.run import run_graph  # lazy: start-up (experiment runner, ~70 ms)

    if show_config:
        sys.stdout.write(CONFIG.read_text(encoding="utf-8"))
        return
    started = time.monotonic()
    graph = load(str(CONFIG), output, list(QUICK) if quick else [], create=True)
    run_graph(graph)
    path, missing = write_report(graph)
    if missing:
        raise AitError(f"the demo's report misses: {', '.join(missing)}")
    console.info(f"demo finished in {time.monotonic() - started:.0f} s; report: {path}")


TOY_MAX = 10_000_000  # pairs per toy file (generated in memory-light streams, but time grows with it)


@demo_app.command("toy-data")
def toy_data(
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the toy corpora.")],
    seen: Annotated[int, typer.Option("--seen", min=1, max=TOY_MAX, help="English-Sunlandic training pairs.")]
        = 20000,
    unseen: Annotated[int, typer.Option("--unseen", min=1, max=TOY_MAX, help="English-Moonlandic training pairs.")]
        = 3000,
    dev: Annotated[int, typer.Option("--dev", min=1, max=TOY_MAX, help="English-Moonlandic pairs for the probe.")]
        = 200,
    test: Annotated[int, typer.Option("--test", min=1, max=TOY_MAX, help="Held-out English-Moonlandic test pairs.")]
        = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**63 - 1, help="Sentence seed (lexicons are fixed).")]
        = 0,
) -> None:
    """Generate the toy parallel corpora (parallel JSONL, English source)."""
    from aligninstruct_cli.demo.build import make_toy_data  # lazy: start-up (the toy data and models, ~3 ms)

    use_language_file(str(LANGUAGE_FILE))  # qaa, qab: the demo's own languages
    sizes = make_toy_data(output, seen=seen, unseen=unseen, dev=dev, test=test, seed=seed)
    console.info(", ".join(f"{name}: {n}" for name, n in sizes.items()))


DataOpt = Annotated[str, typer.Option("--data", metavar="DIR_OR_FILE", help=(
    "Your corpus: a JSONL (parallel, instruction or text records), TSV, `src ||| tgt` or plain-text FILE; or the "
    "directory `ait demo toy-data` wrote."))]


@demo_app.command("toy-model")
def toy_model(
    data: DataOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the untrained model.")],
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Weight initialisation seed.")] = 0,
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=300, max=1_000_000,
                                            help="Tokenizer vocabulary size.")] = 2000,
) -> None:
    """Train a byte-level tokenizer on the corpus (the demo's: English + Sunlandic) and save an untrained tiny
    BLOOM (hidden 128, 2 layers) for a quick offline run of the whole chain; see docs/getting-started.md for
    what it can and cannot show."""
    from aligninstruct_cli.demo.build import make_toy_model  # lazy: start-up (the toy data and models, ~3 ms)

    use_language_file(str(LANGUAGE_FILE))
    make_toy_model(data, output, seed=seed, vocab_size=vocab_size)
    console.info(f"untrained tiny BLOOM and tokenizer in {output}")


@demo_app.command("toy-comet")
def toy_comet(
    data: DataOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="Directory for the COMET checkpoint.")],
) -> None:
    """Build a tiny, untrained COMET checkpoint (a stand-in for wmt22-comet-da, which needs the hub) whose
    tokenizer is trained on the corpus (the demo's: English + Moonlandic)."""
    from aligninstruct_cli.demo.build import corpus_texts  # lazy: start-up (the toy data and models, ~3 ms)
    from aligninstruct_cli.tiny import build_tiny_comet  # lazy: start-up (the toy data and models, ~3 ms)

    use_language_file(str(LANGUAGE_FILE))
    texts = corpus_texts(data, "unseen-train.jsonl")
    build_tiny_comet(output, texts=texts)
    console.info(f"tiny COMET checkpoint in {output} (random weights: its scores only show the plumbing)")


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")

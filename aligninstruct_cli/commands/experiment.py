"""`ait experiment plan|run|status|report CONFIG`: a study's whole matrix (corpora × objectives × systems ×
test sets → tables) from one config file, as a graph of ordinary ait commands; see docs/experiment.md."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.live import Live
from rich.text import Text
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.paths import PROGRESS_EVERY_S
from aligninstruct_cli.io import check_outputs_are_not_inputs, concat_files
from aligninstruct_cli.languages import use_language_file

experiment_app = typer.Typer(
    help="Run a study from one config file: plan (the commands), run (what is missing, resumably), status, "
         "report (the tables with intervals and significance, loss and probe plots). See docs/experiment.md.",
    no_args_is_help=True)

ConfigArg = Annotated[str, typer.Argument(metavar="CONFIG", help="The experiment's config file (YAML, JSON or TOML).")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", metavar="DIR",
                                                  help="Write under DIR instead of the config's `output`.")]
SetOpt = Annotated[Optional[List[str]], typer.Option(
    "--set", metavar="KEY.PATH=VALUE", help="Override a config key (VALUE in YAML), e.g. --set train.epochs=1 or "
    "--set systems.MT+Align.train.lr=[1e-4,3e-4]; repeatable.")]
NoPreflightOpt = Annotated[bool, typer.Option(
    "--no-preflight", help="Skip the check that every model, COMET checkpoint, data set and optional package "
    "the steps still to run need is there (and the GPUs and disk).")]


def load(config: str, output: str | None, overrides: list[str] | None, *, create: bool = False):
    """The config as a graph (your input files hashed, the hashes cached under the output directory, which
    `create` makes first)."""
    from aligninstruct_cli.experiment.graph import build_graph  # lazy: experiment/ adds ~50 ms to start-up
    from aligninstruct_cli.experiment.steps import FileHasher  # lazy: experiment/ adds ~50 ms to start-up
    from aligninstruct_cli.experiment.study_config import load_experiment  # lazy: experiment/ adds ~50 ms to start-up

    exp = load_experiment(config, output=output, overrides=overrides or [])
    if exp.language_file:  # your codes, for the options the graph builds (each step's command loads it too)
        use_language_file(exp.language_file)
    if create:
        Path(exp.output).mkdir(parents=True, exist_ok=True)
    hasher = FileHasher(exp.output)
    graph = build_graph(exp, hasher)
    hasher.save()
    return graph


@experiment_app.command("plan", help="Print the experiment as a bash script: every step's ait command, with its "
                        "inputs and output.")
def plan(config: ConfigArg, output: OutputOpt = None, overrides: SetOpt = None,
         no_preflight: NoPreflightOpt = False) -> None:
    from aligninstruct_cli.experiment.graph import render_plan  # lazy: experiment/ adds ~50 ms to start-up
    from aligninstruct_cli.experiment.preflight import preflight  # lazy: experiment/ adds ~50 ms to start-up
    from aligninstruct_cli.experiment.steps import DONE, step_state  # lazy: experiment/ adds ~50 ms to start-up

    graph = load(config, output, overrides)
    memo: dict[str, str | None] = {}  # each step's inputs are verified once, not once per step reading them
    done = {k for k in graph.steps if step_state(graph, k, memo) == DONE}
    sys.stdout.write(render_plan(graph, done=done))
    sys.stdout.flush()
    if not no_preflight:
        preflight(graph, pending=set(graph.steps) - done)


@experiment_app.command("run", help="Run every step whose output is missing or was made with other settings; "
                        "finished steps are kept, a killed training resumes. Then: ait experiment report CONFIG.")
def run(
    config: ConfigArg,
    output: OutputOpt = None,
    overrides: SetOpt = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Steps run at once (GPU steps: one at a time, "
                                                                   "with all the GPUs).")] = 1,
    executor: Annotated[str, typer.Option(
        "--executor", help="local (here), slurm (each step a Slurm job through submitit, with dependencies) or "
        "submitit-local (submitit's local executor: the Slurm path on this machine).")] = "local",
    only: Annotated[Optional[List[str]], typer.Option(
        "--only", metavar="STEP", help="Run only this step (a name from `status`, e.g. train/MTInstruct) and what "
        "it needs; repeatable.")] = None,
    no_preflight: NoPreflightOpt = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="A failed health check (loss not falling, identical hypotheses, ...; see the config's "
        "`health:` thresholds) fails its step instead of only warning.")] = False,
    progress_every: Annotated[float, typer.Option(
        "--progress-every", metavar="SECONDS", min=1, help="Without a terminal: a progress line (steps done, "
        "ETA, each running step's progress) at most every SECONDS, on stderr and in OUTPUT/run.log."
    )] = PROGRESS_EVERY_S,
) -> None:
    from aligninstruct_cli.experiment.run import EXECUTORS, run_graph  # lazy: experiment/ adds ~50 ms to start-up

    if executor not in EXECUTORS:
        raise AitError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    graph = load(config, output, overrides, create=True)
    keys = None
    if only:
        unknown = [name for name in only if name not in graph.by_name]
        if unknown:
            raise AitError(f"--only: unknown step {unknown[0]!r}", hint="the names are in `ait experiment status`")
        keys = {graph.by_name[name] for name in only}
    started = time.monotonic()
    outcome = run_graph(graph, jobs=jobs, executor=executor, only=keys, strict=strict, progress_every=progress_every,
                        preflight=not no_preflight)
    console.info(f"{len(outcome.done)} step(s) run, {len(outcome.skipped)} already done, in "
                 f"{time.monotonic() - started:.1f} s; next: ait experiment report {config}")


@experiment_app.command("status", help="Each step's state (done; stale: made with other settings, to be redone; "
                        "failed; running; pending), start, duration, output and log file; a running step's progress.")
def status(config: ConfigArg, output: OutputOpt = None, overrides: SetOpt = None,
           watch: Annotated[Optional[float], typer.Option(
               "--watch", metavar="SECONDS", min=0.5, help="Show it again every SECONDS until Ctrl-C.")] = None) -> None:
    from aligninstruct_cli.experiment.live import status_text  # lazy: experiment/ adds ~50 ms to start-up

    graph = load(config, output, overrides)
    if watch is None:
        text, summary = status_text(graph)
        sys.stdout.write(text)
        console.info(summary)
        return

    def screen() -> Text:
        text, summary = status_text(graph)
        return Text(text + summary + f"\n(every {watch:g} s; Ctrl-C to stop)")

    try:
        with Live(screen(), auto_refresh=False, console=console.stderr) as live:
            while True:
                time.sleep(watch)
                live.update(screen(), refresh=True)
    except KeyboardInterrupt:
        pass


@experiment_app.command("report", help="Write OUTPUT/report.md: the tables (markdown, TSV, JSON in OUTPUT/tables/) "
                        "with intervals and significance against the baseline, the loss plot per system and stage, "
                        "the probe.")
def report(config: ConfigArg, output: OutputOpt = None, overrides: SetOpt = None) -> None:
    from aligninstruct_cli.experiment.report import write_report  # lazy: experiment/ adds ~50 ms to start-up

    graph = load(config, output, overrides)
    path, missing = write_report(graph)
    if missing:
        console.warn(f"not made yet: {', '.join(missing)} (run `ait experiment run {config}`)")
    console.info(f"report: {path}")


@experiment_app.command("concat", hidden=True, help="The lines of FILES one after the other (each cut to its first "
                        "--head lines) into one file: a study's test file and probe pairs (a step of the plan).")
def concat(
    files: Annotated[List[str], typer.Argument(metavar="FILES", help="Input files (.gz ok).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output file (written atomically).")],
    head: Annotated[Optional[int], typer.Option("--head", min=1, help="Keep each file's first N lines.")] = None,
) -> None:
    check_outputs_are_not_inputs(files, [("-o", output)])
    concat_files(files, output, head=head)


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")

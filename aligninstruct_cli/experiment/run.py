"""Running an experiment's graph: the steps whose output is missing, in order, resumably (what a step's
state is, and how its outcome is recorded: experiment/steps.py). A failed step gets `failed.json` and stops
only the steps that read its output. Each step's output goes to its log file (`OUTPUT/logs/`).

Executors: `local` runs the commands here (`--jobs N` at once, one GPU step at a time), each in its own
process group, and forwards SIGINT/SIGTERM/SIGHUP to them. An `ait experiment run` killed outright leaves
its steps' process groups behind (their pids, with each process's start time, are in `OUTPUT/logs/*.pid`):
the next run, which holds the experiment's lock, ends them before it starts, if they are still the same
processes (a pid the system has given to another process since is left alone). `slurm` submits each step
as a Slurm job through submitit, with `afterok` dependencies on the jobs of its inputs; `submitit-local` runs
the same job function through submitit's local executor (one machine; for trying the Slurm path out):
experiment/executors.py.

Everything the run writes (steps, logs, links, the hash cache) must resolve, symlinks followed, inside
OUTPUT; a link location that holds something ait did not make is an error, never replaced.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.executors import run_submitit
from aligninstruct_cli.experiment.graph import Graph
from aligninstruct_cli.experiment.health import HEALTH_EXIT, health_failed
from aligninstruct_cli.experiment.live import StudyView
from aligninstruct_cli.experiment.paths import (PROGRESS_EVERY_S, inside_output, log_path, pid_path, write_json,
                                                write_log_header)
from aligninstruct_cli.experiment.preflight import preflight as check_needs
from aligninstruct_cli.experiment.steps import (DONE, TOKEN_ENV, check_spec, finish_step, is_ours, link_names,
                                                pid_record, prepare_step, read_pid_file, step_env, step_state)
from aligninstruct_cli.training.distributed import end_process_group

EXECUTORS = ("local", "slurm", "submitit-local")


class StepsFailed(AitError):
    exit_code = 1


class Interrupted(AitError):
    exit_code = 130



# ---------------------------------------------------------------------------------------------- the run
@dataclass
class Outcome:
    done: list[str]
    skipped: list[str]  # done before
    failed: list[str]
    blocked: list[str]  # not run: an input failed
    seconds: float


class ExperimentLock:
    """OUTPUT/.lock, held while `run` runs: a second `run` of the same experiment stops at once. The kernel
    releases it when the holder dies, however it dies."""

    def __init__(self, output: str):
        Path(output).mkdir(parents=True, exist_ok=True)
        self.path = inside_output(output, Path(output) / ".lock")
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise AitError(f"{self.path.parent}: another `ait experiment run` is running this experiment") from None
        return self

    def __exit__(self, *exc):
        self.fh.close()


def reap_leftovers(graph: Graph) -> None:
    """End the process groups an `ait experiment run` that was killed outright left running (we hold the lock,
    so whoever started them is gone); a training would otherwise go on writing while we resume it. Only
    groups that are still the ones it started (`is_ours`) are ended."""
    logs = Path(graph.exp.output) / "logs"
    for pid_file in sorted(logs.glob("*.pid")) if logs.is_dir() else []:
        record = read_pid_file(pid_file)
        if record is not None and is_ours(record):
            console.warn(f"ending process group {record['pgid']} left running by an interrupted run ({pid_file.stem})")
            end_process_group(record["pgid"])
        pid_file.unlink(missing_ok=True)


def run_graph(graph: Graph, *, jobs: int = 1, executor: str = "local", only: set[str] | None = None,
              echo: Callable[[str], None] = console.info, strict: bool = False,
              live: bool | None = None, progress_every: float = PROGRESS_EVERY_S, preflight: bool = False) -> Outcome:
    """Run every step not done yet (with `only`: those and what they need). Raises StepsFailed when a step failed
    (the others that could run have run). After each step its health checks run (experiment/health.py): a
    warning per failed check, and with `strict` the step fails. Events and progress go to OUTPUT/run.log too
    (experiment/live.py; `live`: the terminal display, by default when stderr is one). With `preflight`, what the
    steps to run need is checked first (experiment/preflight.py), after a killed run's leftovers are ended (they
    would otherwise go on meanwhile)."""
    started = time.monotonic()
    wanted = set(graph.steps) if only is None else _with_inputs(graph, only)
    with ExperimentLock(graph.exp.output):
        for path in (Path(graph.exp.output) / "logs", Path(graph.exp.output) / "steps"):
            inside_output(graph.exp.output, path)
        reap_leftovers(graph)
        memo: dict[str, str | None] = {}
        redo = {k for k in graph.order if k in wanted and step_state(graph, k, memo) != DONE}
        for key in list(redo):  # what reads a step that is made again is made again too
            redo |= graph.dependents(key) & wanted
        todo = [k for k in graph.order if k in redo]
        skipped = [k for k in graph.order if k in wanted and k not in todo]
        if preflight:
            check_needs(graph, pending=set(todo), executor=executor)
        for key in skipped:
            link_names(graph, key)
        view = StudyView(graph, todo, echo, live=live, every=progress_every)
        try:
            if todo:
                view.event(f"{len(todo)} of {len(wanted)} steps to run ({len(skipped)} done before)")
            if executor == "local":
                done, failed, blocked = _run_local(graph, todo, jobs, view, strict=strict)
            else:
                done, failed, blocked = run_submitit(graph, todo, executor, view.event)
        finally:
            view.close()
    outcome = Outcome(done, skipped, failed, blocked, time.monotonic() - started)
    if failed:
        lines = [f"{graph.steps[k].name}: see {log_path(graph, k)}" for k in failed]
        raise StepsFailed(f"{len(failed)} step(s) failed ({len(blocked)} not run because they need them):\n  "
                          + "\n  ".join(lines), hint="fix the cause and run again: what is done is kept")
    return outcome


def _with_inputs(graph: Graph, keys: set[str]) -> set[str]:
    out, frontier = set(), list(keys)
    while frontier:
        key = frontier.pop()
        if key not in out:
            out.add(key)
            frontier.extend(graph.steps[key].inputs)
    return out


class _Running:
    def __init__(self, key: str, proc: subprocess.Popen, log, started: float):
        self.key, self.proc, self.log, self.started = key, proc, log, started


def _run_local(graph: Graph, todo: list[str], jobs: int, view: StudyView, *,
               strict: bool = False) -> tuple[list[str], list[str], list[str]]:
    echo = view.event
    pending = list(todo)
    running: dict[str, _Running] = {}
    done: list[str] = []
    failed: list[str] = []
    blocked: set[str] = set()
    stop: list[int] = []

    def forward(signum, frame):
        if not stop:
            echo(f"stopping: passing signal {signum} to {len(running)} running step(s)")
        stop.append(signum)
        for r in running.values():
            try:
                os.killpg(r.proc.pid, signum)
            except OSError:
                pass

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in handled}
    total = len(todo)
    try:
        while pending or running:
            if not stop:
                for key in list(pending):
                    if len(running) >= max(1, jobs):
                        break
                    step = graph.steps[key]
                    if any(i in pending or i in running or i in failed or i in blocked for i in step.inputs):
                        continue
                    if step.device and any(graph.steps[r].device for r in running):
                        continue
                    pending.remove(key)
                    running[key] = _start(graph, key, step_env(graph, key))
                    view.started(key)
                    n = total - len(pending)
                    echo(f"[{n}/{total}] {', '.join(step.names)}: started (log {log_path(graph, key)})")
            if stop and not running:
                break
            finished = [k for k, r in running.items() if r.proc.poll() is not None]
            if not finished:
                view.tick()
                time.sleep(0.05)
                continue
            for key in finished:
                r = running.pop(key)
                rc = r.proc.returncode
                seconds = time.monotonic() - r.started
                r.log.close()
                pid_path(graph, key).unlink(missing_ok=True)
                step = graph.steps[key]
                view.finished(key, seconds)
                if stop and rc != 0:  # interrupted: neither done nor failed; the next run continues it
                    continue
                if rc == 0 and health_failed(graph, key, echo, strict=strict):
                    rc = HEALTH_EXIT
                rc = finish_step(graph.directory(key), step.names, step.kind, key, graph.shell(key), rc, seconds,
                                 str(log_path(graph, key)), check_spec(graph, key))
                if rc == 0:
                    done.append(key)
                    link_names(graph, key)
                    echo(f"  {step.name}: done in {seconds:.0f} s")
                else:
                    failed.append(key)
                    lost = graph.dependents(key) & set(pending)
                    blocked |= lost
                    pending[:] = [k for k in pending if k not in lost]
                    echo(f"  {step.name}: FAILED (exit {rc}); see {log_path(graph, key)}"
                         + (f"; {len(lost)} step(s) that need it will not run" if lost else ""))
                    _tail(log_path(graph, key), echo)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        raise Interrupted(f"interrupted (signal {stop[0]}); `ait experiment run` again continues where this stopped")
    return done, failed, [k for k in todo if k in blocked]


def _start(graph: Graph, key: str, env: dict[str, str]) -> _Running:
    argv = prepare_step(graph, key)
    log = open(log_path(graph, key), "ab")
    write_log_header(log, " ".join(argv))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: signals reach all its processes
    write_json(pid_path(graph, key), pid_record(proc.pid, env[TOKEN_ENV]))
    return _Running(key, proc, log, time.monotonic())


def _tail(path: Path, echo, lines: int = 8) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:]
    except OSError:
        return
    for line in text:
        echo(f"    | {line}")

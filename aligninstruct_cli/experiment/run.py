"""Running an experiment's graph: the steps whose output is missing, in order, resumably.

A step is done when its directory (`OUTPUT/steps/<kind>/<key>`) holds `done.json`, written once its command
exited 0. A step without it is started again: from scratch (its directory emptied first, so a half-written
output never counts), except training and translation, which continue in place (`ait train --resume`
from its last checkpoint, `ait translate --resume` after the ids it has written). A failed step gets
`failed.json` and stops only the steps that read its output. Each step's output goes to its log file
(`OUTPUT/logs/`).

Executors: `local` runs the commands here (`--jobs N` at once, one GPU step at a time), each in its own
process group, and forwards SIGINT/SIGTERM/SIGHUP to them. An `ait experiment run` killed outright leaves
its steps' process groups behind (their pids are in `OUTPUT/logs/*.pid`): the next run, which holds the
experiment's lock, ends them before it starts. `slurm` submits each step as a Slurm job through submitit,
with `afterok` dependencies on the jobs of its inputs; `submitit-local` runs the same job function through
submitit's local executor (one machine; for trying the Slurm path out).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.graph import AIT, Graph
from aligninstruct_cli.experiment.health import HEALTH_EXIT, health_failed
from aligninstruct_cli.training.distributed import process_alive

DONE, FAILED, STALE, PENDING, RUNNING = "done", "failed", "stale", "pending", "running"
EXECUTORS = ("local", "slurm", "submitit-local")
HASH_CACHE = ".hashes.json"


class StepsFailed(AitError):
    exit_code = 1


class Interrupted(AitError):
    exit_code = 130


# ---------------------------------------------------------------------------------------------- hashing
class FileHasher:
    """sha256 of your input files (a directory: of its files, by relative path), cached by size and mtime in
    OUTPUT/.hashes.json so that a rerun does not read large corpora or model weights again."""

    def __init__(self, output: str | Path):
        self.path = Path(output) / HASH_CACHE
        try:
            self.cache: dict[str, list] = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            self.cache = {}
        self.changed = False

    def file(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        entry = self.cache.get(str(path.resolve()))
        if entry and entry[:2] == stamp:
            return entry[2]
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        self.cache[str(path.resolve())] = [*stamp, digest.hexdigest()]
        self.changed = True
        return digest.hexdigest()

    def __call__(self, path: str) -> str:
        p = Path(path)
        if p.is_dir():
            digest = hashlib.sha256()
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                digest.update(f"{f.relative_to(p)}\0{self.file(f)}\n".encode())
            return digest.hexdigest()
        return self.file(p)

    def save(self) -> None:
        if self.changed and self.path.parent.is_dir():
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(self.cache))
            os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------- state
def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "step"


def log_path(graph: Graph, key: str) -> Path:
    step = graph.steps[key]
    return Path(graph.exp.output) / "logs" / f"{step.kind}.{slug(step.name.split('/', 1)[-1])}.{key}.log"


def _pid_path(graph: Graph, key: str) -> Path:
    return log_path(graph, key).with_suffix(".pid")


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def step_state(graph: Graph, key: str) -> str:
    """done (its output is there for these settings), failed (its last try failed), stale (only an output made
    with other settings or inputs is there: it will be redone), pending (never made)."""
    directory = graph.directory(key)
    if (directory / "done.json").exists():
        return DONE
    if (directory / "failed.json").exists():
        return FAILED
    if _pid_alive(graph, key):
        return RUNNING
    names = set(graph.steps[key].names)
    kind_dir = directory.parent
    if kind_dir.is_dir():
        for other in kind_dir.iterdir():
            marker = read_marker(other / "done.json") if other.name != key else None
            if marker and names & set(marker.get("names", [])):
                return STALE
    return PENDING


def _pid_alive(graph: Graph, key: str) -> bool:
    try:
        return process_alive(int(_pid_path(graph, key).read_text()), group=True)
    except (OSError, ValueError):
        return False


def status_rows(graph: Graph) -> list[tuple[str, str, str, str]]:
    """(names, state, output, log) per step, in the plan's order."""
    rows = []
    for step in graph:
        log = log_path(graph, step.key)
        rows.append((", ".join(step.names), step_state(graph, step.key), str(graph.output(step.key)),
                     str(log) if log.exists() else ""))
    return rows


# ---------------------------------------------------------------------------------------------- a step
def command_line(graph: Graph, key: str) -> list[str]:
    """The step's argv as run: `ait` as this interpreter's module, --resume for a training to continue."""
    argv = graph.argv(key)
    if argv[0] == AIT:
        argv = [sys.executable, "-m", "aligninstruct_cli", *argv[1:]]
    step = graph.steps[key]
    if step.kind == "train" and (graph.directory(key) / "job.json").exists():
        argv.append("--resume")
    return argv


def prepare_step(graph: Graph, key: str) -> list[str]:
    """Make the step's directory ready to (re)start it; its command line."""
    step = graph.steps[key]
    directory = graph.directory(key)
    if directory.exists():
        (directory / "failed.json").unlink(missing_ok=True)
        # a training continues from its checkpoints once its job.json is written; before that, and for the
        # steps that cannot continue, a half-made output is thrown away
        keep = step.resumable and (step.kind != "train" or (directory / "job.json").exists())
        if not keep:
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    log_path(graph, key).parent.mkdir(parents=True, exist_ok=True)
    return command_line(graph, key)


def step_env(graph: Graph) -> dict[str, str]:
    return {**os.environ, **graph.exp.env, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def finish_step(directory: Path, names: list[str], kind: str, key: str, shell: str, rc: int, seconds: float,
                log: str) -> None:
    """Record the outcome in the step's directory: done.json (exit 0) or failed.json."""
    record = {"names": names, "kind": kind, "key": key, "command": shell, "seconds": round(seconds, 1),
              "log": log}
    if rc == 0:
        _write_json(directory / "done.json", record)
    else:
        _write_json(directory / "failed.json", {**record, "exit_code": rc})


def _log_header(log, shell: str) -> None:
    log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} ait experiment: {shell}\n".encode())
    log.flush()


def link_names(graph: Graph, key: str) -> None:
    """OUTPUT/<kind>/<name> → the step's directory, for browsing (`demo-out/train/MTInstruct/final`)."""
    step = graph.steps[key]
    for name in step.names:
        kind, _, rest = name.partition("/")
        link = Path(graph.exp.output) / step.kind / slug(rest or kind)
        target = os.path.relpath(graph.directory(key), link.parent)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = link.with_name(link.name + ".tmp-link")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)


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
        self.path = Path(output) / ".lock"
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
    so whoever started them is gone); a training would otherwise go on writing while we resume it."""
    logs = Path(graph.exp.output) / "logs"
    for pid_file in sorted(logs.glob("*.pid")) if logs.is_dir() else []:
        try:
            pgid = int(pid_file.read_text())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if pgid != os.getpgid(0) and process_alive(pgid, group=True):
            console.warn(f"ending process group {pgid} left running by an interrupted run ({pid_file.stem})")
            _end_group(pgid)
        pid_file.unlink(missing_ok=True)


def _end_group(pgid: int, grace: float = 20.0) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and process_alive(pgid, group=True):
        time.sleep(0.1)
    if process_alive(pgid, group=True):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        while process_alive(pgid, group=True) and time.monotonic() < deadline + 10:
            time.sleep(0.1)


def run_graph(graph: Graph, *, jobs: int = 1, executor: str = "local", only: set[str] | None = None,
              echo: Callable[[str], None] = console.info, strict: bool = False,
              live: bool | None = None, progress_every: float = 30.0, preflight: bool = False) -> Outcome:
    """Run every step not done yet (with `only`: those and what they need). Raises StepsFailed when a step failed
    (the others that could run have run). After each step its health checks run (experiment/health.py): a
    warning per failed check, and with `strict` the step fails. Events and progress go to OUTPUT/run.log too
    (experiment/live.py; `live`: the terminal display, by default when stderr is one). With `preflight`, what the
    steps to run need is checked first (experiment/preflight.py), after a killed run's leftovers are ended (they
    would otherwise go on meanwhile)."""
    from aligninstruct_cli.experiment.live import StudyView

    started = time.monotonic()
    wanted = set(graph.steps) if only is None else _with_inputs(graph, only)
    with ExperimentLock(graph.exp.output):
        reap_leftovers(graph)
        todo = [k for k in graph.order if k in wanted and step_state(graph, k) != DONE]
        skipped = [k for k in graph.order if k in wanted and k not in todo]
        if preflight:
            from aligninstruct_cli.experiment.preflight import preflight as check_needs

            check_needs(graph, pending=set(todo), executor=executor)
        for key in skipped:
            link_names(graph, key)
        view = StudyView(graph, todo, echo, live=live, every=progress_every)
        try:
            if todo:
                view.event(f"{len(todo)} of {len(wanted)} steps to run ({len(skipped)} done before)")
            if executor == "local":
                done, failed, blocked = _run_local(graph, todo, jobs, view.event, view=view, strict=strict)
            else:
                from aligninstruct_cli.experiment.executors import run_submitit

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


def _run_local(graph: Graph, todo: list[str], jobs: int, echo, *, view=None,
               strict: bool = False) -> tuple[list[str], list[str], list[str]]:
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
    env = step_env(graph)
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
                    running[key] = _start(graph, key, env)
                    if view is not None:
                        view.started(key)
                    n = total - len(pending)
                    echo(f"[{n}/{total}] {', '.join(step.names)}: started (log {log_path(graph, key)})")
            if stop and not running:
                break
            finished = [k for k, r in running.items() if r.proc.poll() is not None]
            if not finished:
                if view is not None:
                    view.tick()
                time.sleep(0.05)
                continue
            for key in finished:
                r = running.pop(key)
                rc = r.proc.returncode
                seconds = time.monotonic() - r.started
                r.log.close()
                _pid_path(graph, key).unlink(missing_ok=True)
                step = graph.steps[key]
                if view is not None:
                    view.finished(key, seconds)
                if stop and rc != 0:  # interrupted: neither done nor failed; the next run continues it
                    continue
                if rc == 0 and health_failed(graph, key, echo, strict=strict):
                    rc = HEALTH_EXIT
                finish_step(graph.directory(key), step.names, step.kind, key, graph.shell(key), rc, seconds,
                            str(log_path(graph, key)))
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
    _log_header(log, " ".join(argv))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: signals reach all its processes
    _pid_path(graph, key).write_text(str(proc.pid))
    return _Running(key, proc, log, time.monotonic())


def _tail(path: Path, echo, lines: int = 8) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:]
    except OSError:
        return
    for line in text:
        echo(f"    | {line}")

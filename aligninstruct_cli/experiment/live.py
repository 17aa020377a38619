"""Seeing an experiment while it runs: each running step's progress, read from what the step writes anyway (a
training's run.json, metrics.jsonl and checkpoints/state.json; a translation's growing hypotheses file against
its input), and the study's progress and ETA.

`StudyView` is what `ait experiment run` shows: on a terminal one rich display (steps done of total, elapsed,
ETA; a line per running step: train step/total, loss, tokens/s, ETA; translate records done/total); without
one a line per event and a progress line at most every `PROGRESS_EVERY_S` seconds. Every event and progress
line also goes to OUTPUT/run.log, with its time. `ait experiment status` uses `step_progress` for a running
step's last progress line and `step_times` for each step's start and duration."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from aligninstruct_cli import console
from aligninstruct_cli.experiment.health import run_stages
from aligninstruct_cli.experiment.paths import PROGRESS_EVERY_S, pid_path, read_marker
from aligninstruct_cli.experiment.steps import RUNNING, status_rows

REFRESH_S = 1.0  # on a terminal: how often the display reads the steps' files
TAIL_BYTES = 1 << 16  # the end of metrics.jsonl read for the last line


def duration(seconds: float | None) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _json(path: Path) -> dict[str, Any]:
    return read_marker(path) or {}


def _last_lines(path: Path, n_bytes: int = TAIL_BYTES) -> list[bytes]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.splitlines()
    return lines[1:] if size > n_bytes else lines  # the first may be cut


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------- a step's progress
@dataclass
class Progress:
    done: float  # units done (optimizer steps, records)
    total: float | None  # units in all (None: not known yet)
    unit: str
    text: str  # e.g. "stage 1 (mt) step 40/120 · loss 7.4912 · 812 tok/s"


def train_totals(run: Path) -> dict[tuple[int, int], int] | None:
    """(lr_index, 1-based stage) → the stage's optimizer steps, from run.json (records per data set, batch, epochs);
    None before the run has written them."""
    manifest = _json(run / "run.json")
    stats, batch = manifest.get("data_stats") or {}, manifest.get("batch") or {}
    curriculum, lrs = manifest.get("curriculum") or [], manifest.get("lrs") or [None]
    epochs = (manifest.get("hyperparameters") or {}).get("epochs") or []
    global_batch = batch.get("global")
    if not global_batch and batch.get("micro"):
        ranks = _json(run / "checkpoints" / "state.json").get("world_size")
        global_batch = batch["micro"] * batch.get("accumulation", 1) * ranks if ranks else None
    if not (curriculum and global_batch and len(epochs) >= len(curriculum)):
        return None
    totals = {}
    for k, members in enumerate(curriculum):
        members = members if isinstance(members, list) else [members]
        records = sum(int((stats.get(m) or {}).get("examples", 0)) for m in members)
        for lr_index in range(len(lrs)):
            totals[(lr_index, k + 1)] = -(-records // global_batch) * int(epochs[k])
    return totals


def train_progress(run: Path) -> Progress | None:
    totals = train_totals(run)
    last = None
    for line in reversed(_last_lines(run / "metrics.jsonl")):
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "loss" in rec:
            last = rec
            break
    if totals is None:
        return Progress(0, None, "steps", "starting (reading and tokenizing the data, loading the model)")
    finished = {(int(i), int(s) + 1) for i, s in _json(run / "checkpoints" / "state.json").get("done", [])}
    done = sum(n for place, n in totals.items() if place in finished)
    text = "starting"
    if last is not None:
        place = (int(last.get("lr_index", 0)), int(last.get("stage", 1)))
        if place not in finished:
            done += int(last.get("step", 0))
        stages, _ = run_stages(run)
        name = stages[place[1] - 1] if 0 < place[1] <= len(stages) else ""
        text = (f"stage {place[1]}" + (f" ({name})" if name else "") + f" step {last.get('step')}/"
                f"{totals.get(place, '?')} · loss {last['loss']:.4f}"
                + (f" · {last['tokens_per_s']:,.0f} tok/s" if isinstance(last.get("tokens_per_s"), (int, float)) else ""))
    return Progress(done, sum(totals.values()), "steps", text)


def translate_progress(hyps: Path, source: Path | None, cache: dict[str, int]) -> Progress:
    """Records written to the (growing) hypotheses file of all the input's records (counted once, in `cache`)."""
    total = None
    if source is not None and source.is_file():
        key = str(source)
        if key not in cache:
            cache[key] = _count_lines(source)
        total = cache[key]
    done = _count_lines(hyps)
    return Progress(done, total, "records", f"{done}/{total if total is not None else '?'} records")


def step_progress(graph: Any, key: str, cache: dict[str, int] | None = None) -> Progress | None:
    """A running step's progress from its files; None for the kinds that write none as they go."""
    step = graph.steps[key]
    if step.kind == "train":
        return train_progress(graph.directory(key))
    if step.kind == "translate":
        argv = graph.argv(key)
        source = Path(argv[2]) if len(argv) > 2 else None
        return translate_progress(graph.output(key), source, {} if cache is None else cache)
    return None


# ---------------------------------------------------------------------------------------------- times
def step_times(graph: Any, key: str) -> tuple[float | None, float | None]:
    """(start as a Unix time, seconds it ran or has been running) from the step's done.json / failed.json (its
    `seconds`, written when it ended) or, while it runs, its pid file (written when it started)."""
    directory = graph.directory(key)
    for marker in ("done.json", "failed.json"):
        path = directory / marker
        if path.exists():
            seconds = _json(path).get("seconds")
            if isinstance(seconds, (int, float)):
                return path.stat().st_mtime - seconds, float(seconds)
            return None, None
    pid = pid_path(graph, key)
    try:
        started = pid.stat().st_mtime
    except OSError:
        return None, None
    return started, time.time() - started


# ---------------------------------------------------------------------------------------------- the run's view
class _Rate:
    """Units per second of a running step, measured between the first and the latest reading that moved."""

    def __init__(self):
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def see(self, done: float, now: float) -> None:
        if self.first is None or done < self.first[1]:
            self.first = (now, done)
        elif done > self.first[1]:
            self.last = (now, done)

    def eta(self, progress: Progress) -> float | None:
        if progress.total is None or self.first is None or self.last is None:
            return None
        rate = (self.last[1] - self.first[1]) / max(self.last[0] - self.first[0], 1e-9)
        return max(0.0, progress.total - progress.done) / rate if rate > 0 else None


class StudyView:
    """The live view of one `run`: `event` (a line: printed, and written to run.log), `started` / `finished`
    (a step), `tick` (called while steps run: refreshes the display, or writes the periodic progress line)."""

    def __init__(self, graph: Any, todo: list[str], echo: Callable[[str], None], *, live: bool | None = None,
                 every: float = PROGRESS_EVERY_S):
        self.graph, self.todo, self.echo = graph, list(todo), echo
        self.total = len(todo)
        self.started_at = time.monotonic()
        self.running: dict[str, float] = {}
        self.finished_seconds: dict[str, float] = {}
        self.rates: dict[str, _Rate] = {}
        self.progress: dict[str, Progress | None] = {}
        self.cache: dict[str, int] = {}
        self.every = every
        self.last_line = time.monotonic()
        self.last_read = 0.0
        self.log_path = Path(graph.exp.output) / "run.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "a", encoding="utf-8")
        self.live = None
        if live if live is not None else (console.bars_shown() and bool(todo)):
            self.live = Live(self._render(), console=console.stderr, refresh_per_second=2, transient=True)
            self.live.start()

    # --- what the runner tells it
    def event(self, line: str) -> None:
        self.echo(line)
        self._log(line)

    def started(self, key: str) -> None:
        self.running[key] = time.monotonic()
        self.rates[key] = _Rate()

    def finished(self, key: str, seconds: float) -> None:
        self.running.pop(key, None)
        self.progress.pop(key, None)
        self.finished_seconds[key] = seconds

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_read < REFRESH_S:
            return
        self.last_read = now
        self._read(now)
        if self.live is not None:
            self.live.update(self._render())
        elif now - self.last_line >= self.every and self.running:
            self.last_line = now
            self.event(self.progress_line())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.log.close()

    # --- figures
    def _read(self, now: float) -> None:
        for key in self.running:
            progress = step_progress(self.graph, key, self.cache)
            self.progress[key] = progress
            if progress is not None:
                self.rates[key].see(progress.done, now)

    def step_eta(self, key: str) -> float | None:
        progress = self.progress.get(key)
        return self.rates[key].eta(progress) if progress is not None and key in self.rates else None

    def study_eta(self) -> tuple[float | None, bool]:
        """(seconds left, whether that is a lower bound): the running steps' ETAs, and for each step not started
        the mean duration of the steps of its kind finished in this run (a step with neither is left out)."""
        left, partial = 0.0, False
        for key in self.running:
            eta = self.step_eta(key)
            if eta is None:
                partial = True
            else:
                left += eta
        by_kind: dict[str, list[float]] = {}
        for key, seconds in self.finished_seconds.items():
            by_kind.setdefault(self.graph.steps[key].kind, []).append(seconds)
        for key in self.todo:
            if key in self.running or key in self.finished_seconds:
                continue
            seen = by_kind.get(self.graph.steps[key].kind)
            if seen:
                left += sum(seen) / len(seen)
            else:
                partial = True
        return (left if left or not partial else None), partial

    def _eta_text(self) -> str:
        left, partial = self.study_eta()
        if left is None:
            return "ETA ?"
        return f"ETA {'≥ ' if partial else ''}{duration(left)}"

    def step_line(self, key: str) -> str:
        step = self.graph.steps[key]
        elapsed = time.monotonic() - self.running[key]
        progress = self.progress.get(key)
        eta = self.step_eta(key)
        return (f"{step.name}: " + (progress.text + " · " if progress is not None else "")
                + f"{duration(elapsed)}" + (f", ETA {duration(eta)}" if eta is not None else ""))

    def progress_line(self) -> str:
        done = len(self.finished_seconds)
        return (f"progress: {done}/{self.total} steps done, {duration(time.monotonic() - self.started_at)} elapsed, "
                f"{self._eta_text()}" + "".join(f"; {self.step_line(k)}" for k in self.running))

    def _render(self):
        table = Table.grid(padding=(0, 1))
        done = len(self.finished_seconds)
        table.add_row(f"[bold]study[/bold] {done}/{self.total} steps · {duration(time.monotonic() - self.started_at)}"
                      f" elapsed · {self._eta_text()}")
        for key in self.running:
            table.add_row(f"  [cyan]{escape(self.step_line(key))}[/cyan]")  # names and texts are not markup
        return table

    def _log(self, line: str) -> None:
        try:
            self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            self.log.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed log must not stop the run


def status_text(graph: Any) -> tuple[str, str]:
    """`ait experiment status`: (a line per step: names, state, start, duration, output, log, and why a stale step
    is stale, and for a running step its progress; the counts by state)."""
    rows = status_rows(graph, reasons=True)
    width = max(len(r[0]) for r in rows) if rows else 4
    lines, counts = [], {}
    cache: dict[str, int] = {}
    for key, (names, state, out, log, why) in zip(graph.order, rows):
        counts[state] = counts.get(state, 0) + 1
        started, seconds = step_times(graph, key)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started is not None else "-"
        took = duration(seconds) if seconds is not None else "-"
        lines.append(f"{names:<{width}}  {state:<8} {when:<19}  {took:>14}  {out}" + (f"  log: {log}" if log else "")
                     + (f"  ({why})" if why else ""))
        if state == RUNNING:
            progress = step_progress(graph, key, cache)
            if progress is not None:
                lines.append(f"{'':<{width}}  └ {progress.text}")
    header = f"{'step':<{width}}  {'state':<8} {'started':<19}  {'duration':>14}  output"
    return "\n".join([header, *lines]) + "\n", ", ".join(f"{n} {state}" for state, n in counts.items())

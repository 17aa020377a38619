"""stderr output shared by all stages: messages, summary tables and progress bars.

stdout carries records only; everything a person reads goes to stderr, so pipes stay clean."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

T = TypeVar("T")

stderr = Console(stderr=True, highlight=False)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def quiet_environment() -> dict[str, str]:
    """What the libraries must find in the environment to follow `set_quiet` (and a stderr that is no
    terminal): transformers' and the hub's own tqdm bars (e.g. transformers 5's "Loading weights") off. The
    entry point sets it (os.environ.setdefault: the user's value wins); huggingface_hub reads it when imported,
    which the commands do later, and the processes a command starts inherit it."""
    return {"HF_HUB_DISABLE_PROGRESS_BARS": "1"} if _state["quiet"] or not stderr.is_terminal else {}


def is_quiet() -> bool:
    return _state["quiet"]


def info(message: str) -> None:
    """A line for people (rich markup allowed); never hard-wrapped, so paths and file:line stay whole."""
    if not _state["quiet"]:
        stderr.print(message, soft_wrap=True)


def warn(message: str) -> None:
    """A warning; `message` is plain text (brackets in paths or fields are not read as markup)."""
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def notice(message: str) -> None:
    """A warning that is part of a stage's summary (counts of what gave no record, fallbacks taken): shown as a
    warning, and left out with -q like the rest of the summary. Problems that need a person use `warn`."""
    if not _state["quiet"]:
        warn(message)


def progress() -> Progress:
    """The rich display behind `Bar`: stderr, a free-text rate column; silent with -q or when not a TTY."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not bars_shown(),
        transient=False,
    )


def bars_shown() -> bool:
    """Progress bars are drawn only for a person: not with -q, not when stderr is a file or pipe."""
    return not _state["quiet"] and stderr.is_terminal


class Bar:
    """The one progress display of every stage: a line with a count, a rate and the time left, in phases
    if needed (`phase`). Does nothing (and costs nothing) with -q or when stderr is not a terminal.

        with console.Bar("translate", total=n, unit="sentences") as bar:
            bar.advance(k)                       # rate: k per second so far, in `unit`/s
            bar.advance(k, rate="12 sent/s")     # or a rate text of the caller's
    """

    def __init__(self, description: str, *, total: int | None = None, unit: str = "records", completed: int = 0):
        self.description, self.total, self.unit = description, total, unit
        self.done = completed
        self.enabled = bars_shown()
        self._progress: Progress | None = None
        self._task = None
        self._began = 0.0
        self._counted = 0  # counted since this phase began (a resumed bar starts at `completed`)

    def __enter__(self) -> "Bar":
        if self.enabled:
            self._progress = progress()
            self._progress.__enter__()
            self._start()
        return self

    def _start(self) -> None:
        self._began = time.perf_counter()
        self._counted = 0
        assert self._progress is not None
        self._task = self._progress.add_task(self.description, total=self.total, completed=self.done, rate="")

    def advance(self, n: int = 1, *, rate: str | None = None) -> None:
        self.done += n
        self._counted += n
        self._show(rate)

    def set(self, completed: int, *, rate: str | None = None) -> None:
        self._counted += completed - self.done
        self.done = completed
        self._show(rate)

    def _show(self, rate: str | None) -> None:
        if self._progress is None:
            return
        if rate is None:
            elapsed = max(time.perf_counter() - self._began, 1e-9)
            rate = f"{self._counted / elapsed:,.0f} {self.unit}/s"
        self._progress.update(self._task, completed=self.done, rate=rate)

    def _close_task(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, total=self.total or self.done)

    def phase(self, description: str, *, total: int | None = None) -> None:
        """End this phase (its bar stays, full) and start the next one from 0."""
        self._close_task()
        self.description, self.done = description, 0
        if total is not None:
            self.total = total
        if self._progress is not None:
            self._start()

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            if exc[0] is None:
                self._close_task()
            self._progress.__exit__(*exc)
            self._progress = None


def track(items: Iterable[T], description: str, *, total: int | None = None, unit: str = "records",
          every: int = 1000) -> Iterator[T]:
    """Iterate `items` with a `Bar` that shows the rate in `unit`/s, updated every `every` items.

    Without a bar to show (-q, or stderr not a terminal) the items pass through untouched: no per-item
    cost on hot paths such as `ait build`."""
    if not bars_shown():
        return iter(items)
    return _track(items, description, total=total, unit=unit, every=every)


def _track(items: Iterable[T], description: str, *, total: int | None, unit: str, every: int) -> Iterator[T]:
    with Bar(description, total=total, unit=unit) as bar:
        pending = 0
        for item in items:
            yield item
            pending += 1
            if pending == every:
                bar.advance(pending)
                pending = 0
        bar.advance(pending)

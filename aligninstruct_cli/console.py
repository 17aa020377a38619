"""stderr output shared by all stages: messages, summary tables and progress bars.

stdout carries records only; everything a person reads goes to stderr, so pipes stay clean."""

from __future__ import annotations

import os
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
    if quiet or not stderr.is_terminal:
        # transformers' and the hub's own tqdm bars (e.g. transformers 5's "Loading weights") follow ours;
        # read when huggingface_hub is imported, which the commands do later; inherited by training ranks
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def is_quiet() -> bool:
    return _state["quiet"]


def info(message: str) -> None:
    """A line for people (rich markup allowed); never hard-wrapped, so paths and file:line stay whole."""
    if not _state["quiet"]:
        stderr.print(message, soft_wrap=True)


def warn(message: str) -> None:
    """A warning; `message` is plain text (brackets in paths or fields are not read as markup)."""
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def progress() -> Progress:
    """A progress display on stderr with a free-text rate column; silent with -q or when not a TTY."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=_state["quiet"] or not stderr.is_terminal,
        transient=False,
    )


def track(items: Iterable[T], description: str, *, total: int | None = None, unit: str = "records",
          every: int = 1000) -> Iterator[T]:
    """Iterate `items` with a progress bar that shows the rate in `unit`/s, updated every `every` items.

    Without a bar to show (-q, or stderr not a terminal) the items pass through untouched: no per-item
    cost on hot paths such as `ait build`."""
    if _state["quiet"] or not stderr.is_terminal:
        return iter(items)
    return _track(items, description, total=total, unit=unit, every=every)


def _track(items: Iterable[T], description: str, *, total: int | None, unit: str, every: int) -> Iterator[T]:
    with progress() as bar:
        task = bar.add_task(description, total=total, rate="")
        n = 0
        for item in items:
            yield item
            n += 1
            if n % every == 0:
                elapsed = bar.tasks[0].elapsed or 1e-9
                bar.update(task, completed=n, rate=f"{n / elapsed:,.0f} {unit}/s")
        elapsed = bar.tasks[0].elapsed or 1e-9
        bar.update(task, completed=n, total=total or n, rate=f"{n / elapsed:,.0f} {unit}/s")

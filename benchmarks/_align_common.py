"""Shared helpers for the align benchmarks: data paths, machine-load reporting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLD = SHARED / "data" / "align-gold"
AER_TOOL = SHARED / "tools" / "aer.py"

sys.path.insert(0, str(ROOT))


def read_lines(path: Path) -> list[str]:
    """One sentence a line; split on LF only (the gold files hold U+3000 and other odd spaces)."""
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"cores available (sched_getaffinity): {cores}; load average (1/5/15 min): {load}"


def run_measured(cmd: list[str], on_start: Callable[[int], None] | None = None) -> tuple[float, object, str]:
    """Run an `ait align` command from the repo root, stdout discarded: (wall seconds, its rusage, its
    stderr). `on_start(pid)` runs once it is started (e.g. a memory sampler); a failure stops the script."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    if on_start:
        on_start(proc.pid)
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{stderr}")
    return wall, usage, stderr

"""Shared helpers for the align benchmarks: data paths, machine-load reporting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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

"""Write the bash, zsh and fish completion scripts for `ait` (run: `make completions`).

The scripts come from Typer's own generator. They ask `ait` itself for candidates at completion time
(`_AIT_COMPLETE=complete_<shell> ait`), so they always follow the installed version's commands and
options; tests/cli/test_completions.py checks the committed copies equal a fresh generation."""

from __future__ import annotations

import sys
from pathlib import Path

from typer._completion_shared import get_completion_script  # no public API for a named shell

SHELLS = {"bash": "ait.bash", "zsh": "_ait", "fish": "ait.fish"}
PROG_NAME = "ait"
COMPLETE_VAR = "_AIT_COMPLETE"


def completion_script(shell: str) -> str:
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell).rstrip() + "\n"


def write_all(directory: str | Path) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in SHELLS.items():
        path = out / name
        path.write_text(completion_script(shell), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else "completions"):
        print(p)

"""The committed shell completion scripts (completions/) equal a fresh generation from the Typer app, and
completion lists the stage commands."""

from pathlib import Path

import pytest

from aligninstruct_cli.completions import SHELLS, completion_script

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_committed_completion_scripts_are_up_to_date(shell):
    committed = (COMPLETIONS / SHELLS[shell]).read_text(encoding="utf-8")
    assert committed == completion_script(shell), f"run `make completions` to refresh {SHELLS[shell]}"


def test_completion_lists_stage_commands(monkeypatch, capsys):
    """The scripts delegate to `ait`: check that delegation actually offers the stage commands."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, _AIT_COMPLETE="complete_bash", COMP_WORDS="ait ", COMP_CWORD="1")
    out = subprocess.run([sys.executable, "-m", "aligninstruct_cli"], env=env, capture_output=True,
                         text=True, timeout=60)
    for command in ("align", "build-instructions", "build", "mix", "train", "translate", "score", "probe",
                    "data", "demo", "languages"):
        assert command in out.stdout.split()

"""Where an experiment's files are, and how they are written and read back: a name as one path component
(`slug`), the check that a path stays inside OUTPUT, a step's log and pid files (`OUTPUT/logs/`), its marker
files (done.json, failed.json, written atomically) and the header line each try of a step adds to its log.
The lowest module of experiment/: it imports none of the others, so every one of them may use it (and the
command's --progress-every default, without loading the rest of experiment/ at start-up)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from aligninstruct_cli.errors import AitError

PROGRESS_EVERY_S = 30.0  # `run` without a terminal: the most often a progress line is written (experiment/live.py)

if TYPE_CHECKING:
    from aligninstruct_cli.experiment.graph import Graph


def slug(name: str) -> str:
    """A name as one path component: no `/`, nothing but letters, digits and `._+-`, not starting with `.`."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_").lstrip(".-_") or "step"


def inside_output(output: str | Path, path: str | Path) -> Path:
    """`path` once it is certain to lie inside the experiment's output directory (symlinks followed): nothing
    a config names can make ait write elsewhere."""
    root = Path(output).resolve()
    real = Path(path).resolve()
    if real != root and root not in real.parents:
        raise AitError(f"{path}: resolves to {real}, outside the experiment's output {root}; ait writes nothing "
                       "outside it", hint="remove the symlink that leads out of the output directory")
    return Path(path)


def log_path(graph: Graph, key: str) -> Path:
    """The step's log: its output, the header of each try, its health warnings."""
    step = graph.steps[key]
    return Path(graph.exp.output) / "logs" / f"{step.kind}.{slug(step.name.split('/', 1)[-1])}.{key}.log"


def pid_path(graph: Graph, key: str) -> Path:
    """The step's pid file while it runs (its process group: run.reap_leftovers)."""
    return log_path(graph, key).with_suffix(".pid")


def read_marker(path: Path) -> dict[str, Any] | None:
    """A marker or pid file's JSON; None when it is missing or unreadable."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def write_log_header(log, shell: str) -> None:
    log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} ait experiment: {shell}\n".encode())
    log.flush()


def read_json_file(path: Path, default: Any = None) -> Any:
    """A JSON file a step wrote (`default` when it is not there); a corrupt one is an AitError naming it."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return default
    except (OSError, orjson.JSONDecodeError) as exc:
        raise AitError(f"{path}: corrupt or unreadable ({exc})",
                       hint="delete its step's directory and run `ait experiment run` again") from None

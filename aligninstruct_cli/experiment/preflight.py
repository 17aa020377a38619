"""Preflight: before anything runs, is everything the steps still to run need there? `ait experiment plan`
and `ait experiment run` (before its first step) check, for the steps not done yet:

- every model named (a system's `model`) and COMET checkpoint (`score.comet_model` when the metrics include
  COMET): a local path, a snapshot in the Hugging Face cache, or the hub when it can be reached and
  HF_HUB_OFFLINE is not set (the reading of the cache is hub.py's);
- every hub data set (`opus100:` / `flores200:` corpora without a `source` directory) the same way, and a
  `source` directory that exists;
- the optional packages the config needs: deepspeed (training), datasets (hub data),
  matplotlib (the report's loss and probe plots), submitit (`--executor slurm|submitit-local`);
- `num_gpus` against the GPUs this machine has (when it has any: on a CPU machine they are CPU ranks);
- free disk under the output directory against a rough need (the full trainings' model copies).

Every problem is listed at once, and the command exits 2 before any step runs."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from aligninstruct_cli import hub
from aligninstruct_cli.data_sources import FLORES_HUB_ID, OPUS100_HUB_ID
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics.catalog import DEFAULT_METRICS
from aligninstruct_cli.metrics.comet import DEFAULT_COMET_MODEL
from aligninstruct_cli.models import looks_like_path

PACKAGES = {  # import name -> pip name (COMET needs none: ait scores it itself, metrics/comet_model.py)
    "deepspeed": "deepspeed", "datasets": "datasets", "matplotlib": "matplotlib", "submitit": "submitit"}
FULL_COPIES = 4  # a full training keeps about this many copies of the model's size (final, stage outputs, a checkpoint)
LORA_SHARE = 0.05  # a LoRA training: adapters and checkpoints, a small share of the base model


class PreflightError(AitError):
    """What the experiment needs and does not have, every item at once."""


def _flag_value(argv: list[str], flag: str) -> str | None:
    values = _flag_values(argv, flag)
    return values[0] if values else None


def _flag_values(argv: list[str], flag: str) -> list[str]:
    """Every value given to `flag` (repeated, or comma-separated)."""
    return [v for i, token in enumerate(argv[:-1]) if token == flag for v in argv[i + 1].split(",") if v]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _model_problem(model: str, what: str, fix: str) -> tuple[str | None, Path | None]:
    """(a problem or None, the model's directory or cached snapshot when it is at hand)."""
    path = Path(model).expanduser()
    if path.exists():
        return None, path
    if looks_like_path(model):
        return f"{what} {model}: no such file or directory", None
    snapshot, problem = hub.availability(model, what=what, fix=fix)
    return problem, snapshot


def preflight_problems(graph: Any, *, pending: set[str] | None = None, executor: str = "local") -> list[str]:
    """Every problem that would stop a step still to run (`pending`: their keys; default every step)."""
    exp = graph.exp
    pending = set(graph.steps) if pending is None else pending
    steps = [graph.steps[k] for k in graph.order if k in pending]
    problems: list[str] = []
    needed: dict[str, str] = {}  # package -> why
    seen: set[str] = set()
    disk_need = 0

    for step in steps:
        argv = step.argv
        model = _flag_value(argv, "--model")
        if step.kind in ("train", "translate", "probe") and model and not model.startswith("@{") and model not in seen:
            seen.add(model)
            problem, found = _model_problem(model, f"model (needed by {step.name})",
                                            "name a local model directory in the system's `model`")
            if problem:
                problems.append(problem)
            if step.kind == "train" and found is not None:
                full = "--full" in argv
                stages = len((_flag_value(argv, "--curriculum") or "x").split(","))
                disk_need += int(_size(found) * ((stages + FULL_COPIES) if full else LORA_SHARE))
        if step.kind == "train":
            needed.setdefault("deepspeed", f"training ({step.name})")
            needed.setdefault("matplotlib", "the report's loss plot")
        if step.kind == "score":
            metrics = _flag_values(argv, "--metrics") or list(DEFAULT_METRICS)
            comet = _flag_value(argv, "--comet-model") or DEFAULT_COMET_MODEL
            if "comet" in metrics:
                if not comet.startswith("@{") and comet not in seen:
                    seen.add(comet)
                    problem = _comet_problem(comet, step.name)
                    if problem:
                        problems.append(problem)
        if step.kind == "data":
            source, kind = _flag_value(argv, "--source"), argv[2] if len(argv) > 2 else ""
            if source is not None:
                if not Path(source).is_dir() and source not in seen:
                    seen.add(source)
                    problems.append(f"{step.name}: --source {source}: no such directory")
            else:
                repo = OPUS100_HUB_ID if kind == "opus100" else FLORES_HUB_ID
                needed.setdefault("datasets", f"reading {repo} from the hub ({step.name})")
                if repo not in seen:
                    seen.add(repo)
                    _, problem = hub.availability(repo, what=f"dataset (needed by {step.name})",
                                                  fix="give the corpus a local `source` directory (see docs/data.md)",
                                                  repo_type="dataset")
                    if problem:
                        problems.append(problem)
        if step.kind == "probe" and exp.probe is not None and exp.probe.plot:
            needed.setdefault("matplotlib", "the probe plot")
    if executor in ("slurm", "submitit-local") and steps:
        needed.setdefault("submitit", f"--executor {executor}")
    for package, why in needed.items():
        if importlib.util.find_spec(package) is None:
            problems.append(f"{why} needs the {PACKAGES[package]} package, which is not installed "
                            f"(pip install {PACKAGES[package]})")
    problems += _gpu_problems(steps)
    if disk_need:
        out = Path(exp.output)
        probe = next((p for p in [out, *out.parents] if p.exists()), Path("."))
        free = shutil.disk_usage(probe).free
        if free < disk_need:
            problems.append(f"{out}: {free / 2**30:.1f} GiB free, the trainings need about {disk_need / 2**30:.1f} GiB "
                            "(model copies of the full trainings, adapters of the LoRA ones)")
    return problems


def _comet_problem(model: str, step: str) -> str | None:
    path = Path(model).expanduser()
    if path.is_file():
        return None
    if path.is_dir():
        return None if (path / "checkpoints" / "model.ckpt").is_file() else (
            f"COMET model {model} (needed by {step}): no checkpoints/model.ckpt in this directory")
    if model.startswith((".", "/", "~")):
        return f"COMET model {model} (needed by {step}): no such file or directory"
    _, problem = hub.availability(model, what=f"COMET model (needed by {step})",
                                  fix="name a local checkpoint in the config's score.comet_model, or leave COMET "
                                  "out of score.metrics (e.g. [bleu, chrf])", files=("checkpoints/model.ckpt",))
    return problem


def _gpu_problems(steps: list[Any]) -> list[str]:
    asked = [(int(n), s.name) for s in steps if s.kind in ("train", "translate")
             for n in [_flag_value(s.argv, "--num-gpus")] if n and n.isdigit() and int(n) > 1]
    if not asked:
        return []
    try:
        import torch  # lazy: torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []  # a CPU machine: num_gpus counts CPU ranks
    have = torch.cuda.device_count()
    return [f"{name}: num_gpus {n}, but this machine has {have} GPU(s)" for n, name in asked if n > have]


def preflight(graph: Any, *, pending: set[str] | None = None, executor: str = "local") -> None:
    """Raise PreflightError (exit 2) listing every problem, if there is any."""
    problems = preflight_problems(graph, pending=pending, executor=executor)
    if problems:
        raise PreflightError(f"{graph.exp.path}: {len(problems)} problem(s) found before running anything:\n- "
                             + "\n- ".join(problems),
                             hint="fix them and run again; nothing has been run")

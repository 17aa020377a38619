"""The report's loss plot (loss.png): one panel per curriculum stage, every trained system in each on the same
axes (the y axis shared by all panels), training loss solid and validation loss dashed, each line named with
what it is a loss of: `MT+Align (train: mt+align)`, `MT+Align (val: mt)`. So systems compare at a glance, a
flat curve looks flat, and a training loss that includes Align records is not read as a validation loss. The
curves are read from each run's metrics.jsonl (`loss_curves`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.health import run_stages
from aligninstruct_cli.experiment.paths import read_json_file


def loss_curves(run: Path) -> list[dict[str, Any]]:
    """Per stage of the chosen learning rate: {stage, steps, loss, val_steps, val_loss}, steps counted from
    the run's start (each stage's steps follow the previous stage's)."""
    manifest = read_json_file(run / "run.json", {})
    manifest = manifest if isinstance(manifest, dict) else {}
    lrs = manifest.get("lrs") or []
    chosen = (manifest.get("result") or {}).get("chosen_lr")
    lr_index = lrs.index(chosen) if chosen in lrs else 0
    stages: dict[int, dict[str, Any]] = {}
    path = run / "metrics.jsonl"
    for line_no, line in enumerate(path.read_bytes().splitlines() if path.exists() else [], 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AitError(f"{path}:{line_no}: corrupt line ({exc})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("step", 0), (int, float)):
            raise AitError(f"{path}:{line_no}: not a metrics record")
        if rec.get("lr_index", 0) != lr_index:
            continue
        s = stages.setdefault(rec.get("stage", 1), {"stage": rec.get("stage", 1), "steps": [], "loss": [],
                                                      "val_steps": [], "val_loss": []})
        if "val_loss" in rec:
            s["val_steps"].append(rec["step"])
            s["val_loss"].append(rec["val_loss"])
        elif "loss" in rec:
            s["steps"].append(rec["step"])
            s["loss"].append(rec["loss"])
    offset = 0
    curves = []
    for stage in sorted(stages):
        s = stages[stage]
        s["steps"] = [offset + x for x in s["steps"]]
        s["val_steps"] = [offset + x for x in s["val_steps"]]
        offset = max(s["steps"] + s["val_steps"] + [offset])
        curves.append(s)
    return curves


def loss_panels(graph: Any, runs: dict[str, Path]) -> list[dict[str, Any]]:
    """Per stage (1-based, in order): {stage, names: {system: stage name}, lines: [{system, kind, label, steps,
    loss}]}, steps counted from the stage's start, for the chosen learning rate's run of each system."""
    panels: dict[int, dict[str, Any]] = {}
    for system, run in runs.items():
        names, _ = run_stages(run)
        spec = graph.exp.systems.get(system)
        val = graph.exp.datasets.get(spec.val) if spec is not None and spec.val else None
        val_name = val.objective if val is not None else "validation"
        offset = 0
        for curve in loss_curves(run):
            stage = curve["stage"]
            name = names[stage - 1] if 0 < stage <= len(names) else f"stage {stage}"
            panel = panels.setdefault(stage, {"stage": stage, "names": {}, "lines": []})
            panel["names"][system] = name
            if curve["steps"]:
                panel["lines"].append({"system": system, "kind": "train", "label": f"{system} (train: {name})",
                                       "steps": [x - offset for x in curve["steps"]], "loss": curve["loss"]})
            if curve["val_steps"]:
                panel["lines"].append({"system": system, "kind": "val", "label": f"{system} (val: {val_name})",
                                       "steps": [x - offset for x in curve["val_steps"]], "loss": curve["val_loss"]})
            offset = max(curve["steps"] + curve["val_steps"] + [offset])
    return [panels[k] for k in sorted(panels)]


def plot_losses(graph: Any, runs: dict[str, Path], path: Path) -> bool:
    """Write loss.png; False when no run logged a loss."""
    panels = [p for p in loss_panels(graph, runs) if p["lines"]]
    if not panels:
        return False
    import matplotlib  # lazy: matplotlib, optional and slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    systems = list(dict.fromkeys(line["system"] for p in panels for line in p["lines"]))
    colours = {s: f"C{i % 10}" for i, s in enumerate(systems)}
    rows = max(len(p["lines"]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.0, 5.2 * len(panels)), 3.6 + 0.16 * rows), squeeze=False,
                             sharey=True)
    for ax, panel in zip(axes[0], panels):
        names = set(panel["names"].values())
        ax.set_title(f"stage {panel['stage']}" + (f": {names.pop()}" if len(names) == 1 else ""), fontsize=10)
        for line in panel["lines"]:
            train = line["kind"] == "train"
            ax.plot(line["steps"], line["loss"], color=colours[line["system"]], linestyle="-" if train else "--",
                    linewidth=1.3 if train else 1.1, marker="." if train else "o", markersize=3 if train else 4,
                    label=line["label"])
        ax.set_xlabel("optimizer step in the stage")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)  # off the curves
    axes[0][0].set_ylabel("loss (nats per target token)")
    fig.suptitle("Training (solid) and validation (dashed) loss, every system on the same axes", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)
    return True

"""Checkpoints for exact resume, and the adapter / model directories a stage leaves behind.

A checkpoint (every `--save-every` steps) is a DeepSpeed checkpoint of the trainable state (trainable
weights, optimizer, LR scheduler; frozen base weights are left out) plus one RNG file per rank and the
data position (stage, epoch, step). It becomes the resume point only once every rank has finished writing
it: rank 0 then rewrites `checkpoints/state.json` atomically, so a run killed while saving resumes from the
previous complete checkpoint. Finished stages are recorded in the same file.

Layout under the run's output directory:
    checkpoints/state.json                 {"done": [[lr_index, stage], ...], "resume": {...} | null}
    checkpoints/<lr-tag>/stage-K/step-N/   DeepSpeed files + rng-rank<R>.pt
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

from aligninstruct_cli.io import read_json, write_json

STATE_FILE = "state.json"


def state_path(output: str | os.PathLike[str]) -> Path:
    return Path(output) / "checkpoints" / STATE_FILE


def read_state(output: str | os.PathLike[str]) -> dict[str, Any]:
    path = state_path(output)
    if not path.exists():
        return {"done": [], "resume": None}
    return read_json(path)


def write_state(output: str | os.PathLike[str], state: dict[str, Any]) -> None:
    path = state_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, state)


def checkpoint_root(output: str | os.PathLike[str], lr_tag: str, stage: int) -> Path:
    return Path(output) / "checkpoints" / lr_tag / f"stage-{stage + 1}"


# --------------------------------------------------------------------------------------------------- RNG
def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ---------------------------------------------------------------------------------------------- save/load
def save_checkpoint(engine, output: str, lr_tag: str, lr_index: int, stage: int, position: dict[str, int],
                    *, rank: int, barrier) -> None:
    """Every rank calls this at the same step. `position` = {"epoch", "step_in_epoch", "global_step"}, the
    first step NOT yet done."""
    import torch

    root = checkpoint_root(output, lr_tag, stage)
    tag = f"step-{position['global_step']}"
    engine.save_checkpoint(str(root), tag=tag, client_state={"position": position}, save_latest=False,
                           exclude_frozen_parameters=True)
    torch.save(rng_state(), root / tag / f"rng-rank{rank}.pt")
    barrier()
    if rank == 0:
        state = read_state(output)
        previous = state.get("resume")
        state["resume"] = {"lr_index": lr_index, "stage": stage, "dir": str(root), "tag": tag, **position}
        write_state(output, state)
        if previous and (previous["dir"], previous["tag"]) != (str(root), tag):
            shutil.rmtree(Path(previous["dir"]) / previous["tag"], ignore_errors=True)
    barrier()


def load_checkpoint(engine, resume: dict[str, Any], *, rank: int) -> dict[str, int]:
    """Restore weights, optimizer, scheduler and this rank's RNG; return the data position."""
    import torch

    path, _client = engine.load_checkpoint(resume["dir"], tag=resume["tag"], load_module_strict=False,
                                           load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"could not load checkpoint {resume['dir']}/{resume['tag']}")
    rng_file = Path(resume["dir"]) / resume["tag"] / f"rng-rank{rank}.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return {k: resume[k] for k in ("epoch", "step_in_epoch", "global_step")}


def mark_stage_done(output: str, lr_index: int, stage: int, val_loss: float | None) -> None:
    """Rank 0, after the stage's adapter is saved: the stage will not be trained again on resume; its last
    validation loss is kept for choosing the learning rate."""
    state = read_state(output)
    if [lr_index, stage] not in state["done"]:
        state["done"].append([lr_index, stage])
    state.setdefault("val_loss", {})[f"{lr_index}/{stage}"] = val_loss
    resume = state.get("resume")
    finished = resume and (resume["lr_index"], resume["stage"]) == (lr_index, stage)
    if finished:
        state["resume"] = None
    write_state(output, state)
    if finished:  # only once the state no longer points at it
        shutil.rmtree(resume["dir"], ignore_errors=True)


# ------------------------------------------------------------------------------------ adapter / model dirs
def gathered_state_dict(model, names_params: list[tuple[str, Any]], zero3: bool) -> dict[str, Any]:
    """CPU copies of the given parameters with their full values (gathered from all ranks under ZeRO-3)."""
    if not zero3:
        return {name: p.detach().cpu().clone() for name, p in names_params}
    import deepspeed

    out = {}
    for name, p in names_params:  # one at a time: bounded memory for full-model saves
        with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
            out[name] = p.detach().cpu().clone()
    return out


def save_stage_model(model, tokenizer, out_dir: str | os.PathLike[str], *, full: bool, zero3: bool,
                     rank: int) -> None:
    """Write a stage's result: a standard PEFT adapter directory (or, with --full, a full model directory),
    with the tokenizer. Every rank must call it (ZeRO-3 gathers); rank 0 writes."""
    if full:
        names = list(model.named_parameters())
    else:
        names = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    state = gathered_state_dict(model, names, zero3)
    if rank != 0:
        return
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if full:
        model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    else:
        # PEFT picks the adapter weights out of the (gathered) full-name state dict itself
        model.save_pretrained(tmp, state_dict=state, safe_serialization=True, save_embedding_layers=False)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)

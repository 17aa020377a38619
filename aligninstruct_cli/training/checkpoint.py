"""The run's layout on disk, and checkpoints for exact resume.

A checkpoint (every `save_every` steps) is a DeepSpeed checkpoint of the trainable state (trainable
weights, optimizer, LR scheduler; frozen base weights are left out) plus one RNG file per rank and the
data position (stage, epoch, step). It becomes the resume point only once every rank has finished writing
it: rank 0 then rewrites `checkpoints/state.json` atomically, so a run killed while saving resumes from the
previous complete checkpoint. The same file records the finished stages and the number of ranks; rank 0
of the workers is its only writer.

Layout under the run's output directory:
    stage-K-<names>/ final/                the results, laid out by `lay_out_results` once every stage is done
    lr-<value>/stage-K-<names>/            with several learning rates: one curriculum each
    metrics.jsonl data_ids.jsonl           the training log (`append_jsonl`; `trim_jsonl` on resume)
    checkpoints/state.json                 {"done": [[lr_index, stage], ...], "resume": {...} | null,
                                            "val_loss": {"lr_index/stage": loss}, "world_size": ranks}
    checkpoints/<lr-tag>/stage-K/step-N/   DeepSpeed files + rng-rank<R>.pt
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from aligninstruct_cli.io import read_json, write_json
from aligninstruct_cli.training.config import TrainOptions

STATE_FILE = "state.json"


# ---------------------------------------------------------------------------------------------- layout
def lr_tag(lr: float) -> str:
    return f"lr-{lr:g}"


def stage_dir_name(index: int, members: list[str]) -> str:
    """`stage-1-mt+align`: 1-based stage number and its data names."""
    return f"stage-{index + 1}-{'+'.join(members)}"


def stage_output(options: TrainOptions, lr_index: int, stage: int) -> Path:
    """Where stage `stage` of learning rate `lr_index` writes its result (several lrs: one folder each)."""
    base = Path(options.output)
    if len(options.lr) > 1:
        base = base / lr_tag(options.lr[lr_index])
    return base / stage_dir_name(stage, options.curriculum[stage])


def metrics_path(output: str | os.PathLike[str]) -> Path:
    return Path(output) / "metrics.jsonl"


def data_ids_path(output: str | os.PathLike[str]) -> Path:
    return Path(output) / "data_ids.jsonl"


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    import orjson

    with open(path, "ab") as fh:
        fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))


def trim_jsonl(path: Path, lr_index: int, stage: int, upto_step: int) -> None:
    """On resume: drop the lines a killed run logged after its last checkpoint (they will be redone)."""
    import orjson

    if not path.exists():
        return
    keep = []
    for line in path.read_bytes().splitlines():
        rec = orjson.loads(line)
        if not (rec.get("lr_index") == lr_index and rec.get("stage") == stage + 1 and rec.get("step", 0) > upto_step):
            keep.append(line)
    path.write_bytes(b"".join(line + b"\n" for line in keep))


def link_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a finished stage directory (hard links where the file system allows: adapters and full models
    are not duplicated on disk)."""
    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=link_or_copy)


def lay_out_results(options: TrainOptions, chosen: int) -> None:
    """Once every stage is done: the chosen learning rate's stages as OUTPUT/stage-K-*/ (with several lrs),
    its last stage as OUTPUT/final/; the emptied checkpoint folders go."""
    output = Path(options.output)
    last = len(options.curriculum) - 1
    if len(options.lr) > 1:
        for stage, members in enumerate(options.curriculum):
            link_tree(stage_output(options, chosen, stage), output / stage_dir_name(stage, members))
    link_tree(stage_output(options, chosen, last), output / "final")
    checkpoints = output / "checkpoints"
    for leftover in sorted(checkpoints.glob("lr-*/*"), reverse=True) + sorted(checkpoints.glob("lr-*")):
        if leftover.is_dir() and not any(leftover.iterdir()):
            leftover.rmdir()


# ---------------------------------------------------------------------------------------------- state
class Position(NamedTuple):
    """Where training stands in a stage: the first step NOT yet done."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0

    def after(self, epoch: int, step_in_epoch: int, steps_in_epoch: int) -> "Position":
        """The position once step `step_in_epoch` of `epoch` (of `steps_in_epoch`) is done."""
        done_epoch = step_in_epoch + 1 == steps_in_epoch
        return Position(epoch + done_epoch, 0 if done_epoch else step_in_epoch + 1, self.global_step + 1)


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


def record_world_size(output: str | os.PathLike[str], world_size: int) -> None:
    """Rank 0 of a run's first launch: a resume must use as many ranks (the data order depends on it)."""
    write_state(output, {**read_state(output), "world_size": world_size})


def all_stages_done(options: TrainOptions) -> bool:
    done = read_state(options.output)["done"]
    return all([i, k] in done for i in range(len(options.lr)) for k in range(len(options.curriculum)))


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
def save_checkpoint(engine, output: str, lr_tag: str, lr_index: int, stage: int, position: Position,
                    *, rank: int, barrier) -> None:
    """Every rank calls this at the same step."""
    import torch

    root = checkpoint_root(output, lr_tag, stage)
    tag = f"step-{position.global_step}"
    engine.save_checkpoint(str(root), tag=tag, client_state={"position": position._asdict()}, save_latest=False,
                           exclude_frozen_parameters=True)
    torch.save(rng_state(), root / tag / f"rng-rank{rank}.pt")
    barrier()
    if rank == 0:
        state = read_state(output)
        previous = state.get("resume")
        state["resume"] = {"lr_index": lr_index, "stage": stage, "dir": str(root), "tag": tag, **position._asdict()}
        write_state(output, state)
        if previous and (previous["dir"], previous["tag"]) != (str(root), tag):
            shutil.rmtree(Path(previous["dir"]) / previous["tag"], ignore_errors=True)
    barrier()


def load_checkpoint(engine, resume: dict[str, Any], *, rank: int) -> Position:
    """Restore weights, optimizer, scheduler and this rank's RNG; return the data position."""
    import torch

    path, _client = engine.load_checkpoint(resume["dir"], tag=resume["tag"], load_module_strict=False,
                                           load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"could not load checkpoint {resume['dir']}/{resume['tag']}")
    rng_file = Path(resume["dir"]) / resume["tag"] / f"rng-rank{rank}.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return Position(resume["epoch"], resume["step_in_epoch"], resume["global_step"])


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
    """Write a stage's result: a standard PEFT adapter directory (or, with `full`, a full model directory),
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

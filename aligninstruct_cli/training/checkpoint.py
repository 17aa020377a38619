"""The run's layout on disk, and checkpoints for exact resume.

A checkpoint (every `save_every` steps) is a DeepSpeed checkpoint of the trainable state (trainable
weights, optimizer, LR scheduler; frozen base weights are left out) plus one RNG file per rank and the
data position (stage, epoch, step). It becomes the resume point only once every rank has finished writing
it: rank 0 then rewrites `checkpoints/state.json` atomically, so a run killed while saving resumes from the
previous complete checkpoint. Loading trusts no code in the folder: the RNG files are safetensors, and
DeepSpeed's files are loaded with `torch.load(weights_only=True)` and a short allow-list (docs/train.md,
"What --resume trusts"). The same file records the finished stages and the number of ranks; rank 0
of the workers is its only writer.

Layout under the run's output directory:
    stage-K-<names>/ final/                the results, laid out by `lay_out_results` once every stage is done
    lr-<value>/stage-K-<names>/            with several learning rates: one curriculum each
    metrics.jsonl data_ids.jsonl           the training log (`append_jsonl`; `trim_jsonl` on resume)
    checkpoints/state.json                 {"done": [[lr_index, stage], ...], "resume": {...} | null,
                                            "val_loss": {"lr_index/stage": loss}, "world_size": ranks}
    checkpoints/<lr-tag>/stage-K/step-N/   DeepSpeed files + rng-rank<R>.safetensors
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import random
import shutil
import socket
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from safetensors import SafetensorError, safe_open

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import read_json, umask_permissions, write_json
from aligninstruct_cli.models import write_base_fingerprint
from aligninstruct_cli.training.train_options import TrainOptions

STATE_FILE = "state.json"


# ---------------------------------------------------------------------------------------------- layout
def lr_tag(lr: float) -> str:
    return f"lr-{lr:g}"


def stage_dir_name(index: int, members: list[str]) -> str:
    """`stage-1-mt+align`: 1-based stage number and its data names."""
    return f"stage-{index + 1}-{'+'.join(members)}"


def stage_path(options: TrainOptions, lr_index: int, stage: int) -> Path:
    """A stage's place under any of a run's folders: `[lr-X/]stage-K-*` (several lrs: one folder each)."""
    name = stage_dir_name(stage, options.curriculum[stage])
    return Path(lr_tag(options.lr[lr_index]), name) if len(options.lr) > 1 else Path(name)


def stage_output(options: TrainOptions, lr_index: int, stage: int) -> Path:
    """Where stage `stage` of learning rate `lr_index` writes its result."""
    return Path(options.output) / stage_path(options, lr_index, stage)


def adapter_checkpoint_dir(options: TrainOptions, lr_index: int, stage: int, step: int) -> Path:
    """Where `save_adapter_every` writes the adapter after `step` of a stage:
    OUTPUT/adapters/[lr-X/]stage-K-*/checkpoint-STEP/."""
    return Path(options.output) / "adapters" / stage_path(options, lr_index, stage) / f"checkpoint-{step}"


def metrics_path(output: str | os.PathLike[str]) -> Path:
    return Path(output) / "metrics.jsonl"


def data_ids_path(output: str | os.PathLike[str]) -> Path:
    return Path(output) / "data_ids.jsonl"


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))


def trim_jsonl(path: Path, lr_index: int, stage: int, upto_step: int) -> None:
    """On resume: drop the lines a killed run logged after its last checkpoint (they will be redone)."""
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


# ---------------------------------------------------------------------------------------------- lock
LOCK_FILE = "run.lock"


class RunLock:
    """The run folder's lock, held by the `ait train` that uses it (fresh or resumed): an exclusive `flock`
    on OUTPUT/run.lock, which names the holder (pid, host, start time). The kernel releases the flock when
    its holder dies, however it dies, so a lock left by a dead process is recognised (`stale`) and taken
    over. A second `ait train` on the folder stops with an error naming the live holder.

        with RunLock(output) as lock: ...
    """

    def __init__(self, output: str | os.PathLike[str]):
        self.output = Path(output)
        self.path = self.output / LOCK_FILE
        self.stale: dict[str, Any] | None = None  # the dead holder's record, when there was one
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.output.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_lock(fd)
            os.close(fd)
            who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                   if holder else "another process")
            raise AitError(f"{self.output} is in use by a running `ait train` ({who})",
                           hint=f"wait for it to finish, or stop it first (kill -TERM {holder.get('pid', 'PID')} "
                                "on that host)") from None
        self._fd = fd
        self.stale = _read_lock(fd) or None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
        os.fsync(fd)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # released cleanly: nothing stale to report next time
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_lock(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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
RNG_FILE = "rng-rank{rank}.safetensors"
LEGACY_RNG_FILE = "rng-rank{rank}.pt"  # pickled by ait before 0.x: never loaded


def rng_state() -> dict[str, Any]:
    import numpy as np  # lazy: numpy
    import torch  # lazy: torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np  # lazy: numpy
    import torch  # lazy: torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_rng_state(path: str | os.PathLike[str], state: dict[str, Any] | None = None) -> None:
    """This process's RNG states as tensors (safetensors) plus a few numbers (its JSON metadata): a file that
    can be read without running any code from it, unlike a pickle."""
    import numpy as np  # lazy: numpy
    import torch  # lazy: torch
    from safetensors.torch import save_file  # lazy: torch

    state = state or rng_state()
    version, mt, gauss_next = state["python"]
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    tensors = {"python_mt": torch.tensor(mt, dtype=torch.int64),
               "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
               "torch": state["torch"].clone()}
    if "cuda" in state:
        tensors["cuda"] = state["cuda"].cpu().clone()
    meta = {"python_version": version, "python_gauss_next": gauss_next, "numpy_kind": kind, "numpy_pos": pos,
            "numpy_has_gauss": has_gauss, "numpy_cached_gaussian": cached_gaussian}
    save_file(tensors, str(path), metadata={"ait_rng": json.dumps(meta)})


def load_rng_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The RNG states `save_rng_state` wrote (safetensors holds tensors and strings only: no code runs)."""
    import numpy as np  # lazy: numpy

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["ait_rng"])
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
        state = {"python": (int(meta["python_version"]), tuple(int(v) for v in tensors["python_mt"].tolist()),
                            meta["python_gauss_next"]),
                 "numpy": (str(meta["numpy_kind"]), tensors["numpy_keys"].numpy().astype(np.uint32),
                           int(meta["numpy_pos"]), int(meta["numpy_has_gauss"]), float(meta["numpy_cached_gaussian"])),
                 "torch": tensors["torch"]}
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as exc:
        raise AitError(f"{path}: not an RNG state file ait wrote ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                       hint="the checkpoint is damaged: remove its folder to resume from the previous one, or "
                            "start the run again") from None
    if "cuda" in tensors:
        state["cuda"] = tensors["cuda"]
    return state


# ----------------------------------------------------------------------------------- trusted loading
def deepspeed_safe_globals() -> list[Any]:
    """The few DeepSpeed classes its checkpoint files hold besides tensors and containers: the only globals a
    resumed run lets `torch.load` construct (weights_only=True refuses everything else, e.g. `os.system`)."""
    found = []
    for module, names in (("deepspeed.runtime.zero.config", ("ZeroStageEnum",)),
                          ("deepspeed.runtime.fp16.loss_scaler", ("LossScaler", "DynamicLossScaler")),
                          ("deepspeed.utils.tensor_fragment", ("fragment_address",))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, name) for name in names if hasattr(mod, name)]
    return found


def _global_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


@contextmanager
def weights_only_loading():
    """While DeepSpeed loads a checkpoint: every `torch.load` (DeepSpeed asks for weights_only=False) runs
    with weights_only=True and only `deepspeed_safe_globals` allowed, so a planted pickle cannot run code."""
    import torch  # lazy: torch

    original = torch.load

    def safe_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = safe_load
    try:
        with torch.serialization.safe_globals(deepspeed_safe_globals()):
            yield
    finally:
        torch.load = original


def check_checkpoint_files(resume: dict[str, Any], world_size: int | None) -> None:
    """Before a resume launches anything: the resume point's files are what ait and DeepSpeed write, with no
    pickled code. An RNG state saved by an older ait (a pickle) is refused; a DeepSpeed file whose pickle
    names a global outside `deepspeed_safe_globals` too (its globals are read without running it)."""
    import torch  # lazy: torch

    folder = Path(resume["dir"]) / resume["tag"]
    if not folder.is_dir():
        raise AitError(f"--resume: the checkpoint {folder} named in checkpoints/state.json "
                       "is missing", hint="start the run again in a new output directory")
    for legacy in sorted(folder.glob("rng-rank*.pt")):
        raise AitError(f"--resume: {legacy} is an RNG state pickled by an older ait; ait no longer loads pickles "
                       "from run folders (one could run any code)",
                       hint="start the run again (or, trusting the file, resume it with the ait that wrote it)")
    for rank in range(world_size or 1):
        if not (folder / RNG_FILE.format(rank=rank)).is_file():
            raise AitError(f"--resume: {folder / RNG_FILE.format(rank=rank)}: missing",
                           hint="the checkpoint is incomplete: start the run again")
    allowed = {_global_name(g) for g in deepspeed_safe_globals()}
    for path in sorted(folder.glob("*.pt")):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as exc:  # not a zip checkpoint: the workers' weights_only load decides
            unsafe = []
            if not zipfile.is_zipfile(path):
                raise AitError(f"--resume: {path}: not a checkpoint file DeepSpeed wrote ({exc})") from None
        refused = [name for name in unsafe if name not in allowed]
        if refused:
            raise AitError(f"--resume: {path} holds pickled references to {', '.join(refused[:3])}, which a "
                           "DeepSpeed checkpoint does not need; ait does not load it",
                           hint="the run folder was changed by someone else: start the run again")


# ---------------------------------------------------------------------------------------------- save/load
def save_checkpoint(engine, output: str, lr_tag: str, lr_index: int, stage: int, position: Position,
                    *, rank: int, barrier) -> None:
    """Every rank calls this at the same step."""
    root = checkpoint_root(output, lr_tag, stage)
    tag = f"step-{position.global_step}"
    engine.save_checkpoint(str(root), tag=tag, client_state={"position": position._asdict()}, save_latest=False,
                           exclude_frozen_parameters=True)
    save_rng_state(root / tag / RNG_FILE.format(rank=rank))
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
    """Restore weights, optimizer, scheduler and this rank's RNG; return the data position. Nothing is
    unpickled beyond tensors, containers and `deepspeed_safe_globals` (see `weights_only_loading`)."""
    with weights_only_loading():
        path, _client = engine.load_checkpoint(resume["dir"], tag=resume["tag"], load_module_strict=False,
                                               load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"could not load checkpoint {resume['dir']}/{resume['tag']}")
    set_rng_state(load_rng_state(Path(resume["dir"]) / resume["tag"] / RNG_FILE.format(rank=rank)))
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
    import deepspeed  # lazy: deepspeed

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
    if not full:
        base = next(iter(model.peft_config.values())).base_model_name_or_path
        if base:
            write_base_fingerprint(tmp, base)  # the base is recognised by content later, wherever it lies
    umask_permissions(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)



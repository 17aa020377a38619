"""The training worker: one process per rank, started by the `deepspeed` launcher (or in-process with
`--launcher none`). Read it top to bottom: `main` → `run_job` (learning rates × curriculum stages) →
`train_stage` (epochs × steps × micro-steps around a DeepSpeed engine).

Loss: the mean cross-entropy over the target tokens (separator + output + EOS) of the whole global batch,
whatever rank or micro-step a record lands on: each micro-step's summed loss is scaled by
world_size × grad_accum / (target tokens of the global batch), which DeepSpeed's averaging over ranks and
micro-steps turns back into that mean. Logits are computed only at target positions, in chunks whose
full-vocabulary logits are recomputed in the backward pass, so no [batch, length, vocab] tensor exists.

Not the HF Trainer: it breaks with DeepSpeed on several CPU ranks here, and a plain loop is easier to make
resume exactly.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from aligninstruct_cli import console
from aligninstruct_cli.io import read_json, write_json
from aligninstruct_cli.training import checkpoint as ckpt
from aligninstruct_cli.training.config import lora_config, lr_tag, resolve_compile, stage_dir_name, torch_dtype
from aligninstruct_cli.training.data import (Geometry, TokenizedSet, collate, epoch_plan, output_tokens,
                                             split_global_batch, steps_per_epoch)

LOSS_CHUNK_ELEMENTS = 1 << 27  # positions per logits chunk × vocabulary: 128M logits (~0.5 GiB in fp32)
DEBUG_KILL_ENV = "AIT_DEBUG_KILL_AFTER_STEP"  # test hook: SIGKILL rank 0 after this global step
PEAK_ENV = "AIT_PEAK_TFLOPS"  # peak TFLOP/s per device for the MFU estimate (overrides the table)

# Dense bf16/fp16 tensor peak per GPU, TFLOP/s (vendor figures), matched against the device name.
GPU_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0), ("A100", 312.0),
                   ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10", 125.0), ("A6000", 155.0),
                   ("V100", 125.0), ("4090", 165.0), ("MI300", 1307.0), ("MI250", 362.0))


# ------------------------------------------------------------------------------------------ the model
def _parts(model):
    """(backbone, lm_head, config) of a causal LM, looking through a PEFT wrapper."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(lm, lm.base_model_prefix), lm.get_output_embeddings(), lm.config


def _chunk_loss(lm_head, hidden, targets, softcap: float | None, logit_scale: float | None):
    import torch.nn.functional as F

    logits = lm_head(hidden)
    if logit_scale:
        logits = logits * logit_scale
    if softcap:
        logits = (logits / softcap).tanh() * softcap
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def build_loss_module(model, *, recompute_chunks: bool):
    """An nn.Module whose forward returns the summed target-token loss: the module DeepSpeed wraps, so
    ZeRO-3 sees an ordinary root module and its hooks work as usual."""
    import torch
    from torch.utils.checkpoint import checkpoint

    class TargetLoss(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask, loss_rows, loss_cols, loss_targets):
            backbone, lm_head, config = _parts(self.model)
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
            selected = hidden[loss_rows, loss_cols]
            softcap = getattr(config, "final_logit_softcapping", None)
            scale = getattr(config, "logit_scale", None)
            chunk = max(1, LOSS_CHUNK_ELEMENTS // config.vocab_size)
            total = selected.new_zeros((), dtype=torch.float32)
            for start in range(0, selected.shape[0], chunk):
                args = (lm_head, selected[start:start + chunk], loss_targets[start:start + chunk], softcap, scale)
                if recompute_chunks and torch.is_grad_enabled():
                    total = total + checkpoint(_chunk_loss, *args, use_reentrant=False)
                else:
                    total = total + _chunk_loss(*args)
            return total

    return TargetLoss(model)


def decoder_blocks(model):
    """The repeated transformer blocks of a causal LM (BLOOM's `transformer.h`, Llama's `model.layers`, ...):
    the longest ModuleList of one class under the backbone."""
    import torch

    backbone, _, _ = _parts(model)
    lists = [m for m in backbone.modules() if isinstance(m, torch.nn.ModuleList) and len(m)
             and len({type(b) for b in m}) == 1]
    return max(lists, key=len) if lists else None


def compile_blocks(model, *, fall_back: bool = False) -> int:
    """`torch.compile` each decoder block in place (regional compilation: one block's graph, reused by every
    layer, so compiling takes seconds to a minute rather than many minutes); shapes are dynamic, so varying
    batch lengths do not recompile. On a GPU a LoRA step of real-length batches is bound by Python and
    kernel launches, which this cuts. With `fall_back`, a block that fails to compile runs eagerly (with
    a warning) instead of stopping the run. Returns the number of blocks compiled."""
    blocks = decoder_blocks(model)
    if blocks is None:
        return 0
    if fall_back:
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def zero3_loading(job: dict[str, Any]):
    """Under ZeRO-3, an object that makes `from_pretrained` partition weights while loading (deepspeed.zero.Init)
    instead of every rank holding the whole model first; keep it alive as long as the model. None otherwise."""
    if job["ds_config"].get("zero_optimization", {}).get("stage") != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(job["ds_config"])


def load_model(job: dict[str, Any], lr_index: int, stage: int, precision: str):
    """The stage's trainable model: base + fresh LoRA (stage 1), base + the previous stage's adapter
    (stage k > 1), or with --full the base / previous stage's full model."""
    from transformers import AutoModelForCausalLM

    cfg = job["config"]
    previous = stage_output(job, lr_index, stage - 1) if stage > 0 else None
    source = previous if (cfg["full"] and previous) else job["model_path"]
    lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(precision))
    if cfg["gradient_checkpointing"]:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg["full"]:
        return lm
    from peft import PeftModel, get_peft_model

    if previous:
        return PeftModel.from_pretrained(lm, previous, is_trainable=True)
    return get_peft_model(lm, lora_config(job["lora_targets"], r=cfg["lora_r"], alpha=cfg["lora_alpha"],
                                          dropout=cfg["lora_dropout"]))


# ------------------------------------------------------------------------------------------ throughput
def compute_params(model) -> int:
    """Parameters that do matrix work per token: all unique ones minus the input embeddings, plus the
    output head when it is tied to them (so it is not counted twice nor missed)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model

    def numel(p) -> int:
        return int(getattr(p, "ds_numel", 0) or p.numel())

    total = sum(numel(p) for p in lm.parameters())
    emb_in = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings()
    n = total - numel(emb_in)
    if head is not None and head.weight is emb_in:
        n += numel(emb_in)
    return n


def flops_per_token(n_compute_params: int, config, mean_len: float) -> float:
    """Model FLOPs per trained token, the usual 6·N + 12·layers·hidden·length (PaLM appendix B), counted
    the same for every pipeline (a LoRA run does less real work; MFU is relative to the full model)."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    return 6.0 * n_compute_params + 12.0 * layers * config.hidden_size * mean_len


_CPU_PEAK: dict[int, float] = {}


def device_peak_flops(device) -> float | None:
    """Peak FLOP/s of one device: AIT_PEAK_TFLOPS, else the GPU table, else (CPU) a measured fp32 matmul."""
    import torch

    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV]) * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((tf * 1e12 for key, tf in GPU_PEAK_TFLOPS if key in name), None)
    threads = torch.get_num_threads()
    if threads not in _CPU_PEAK:  # best of several 1024³ fp32 matmuls (~2 GFLOP each) with this thread count
        a = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone
        best = math.inf
        for _ in range(8):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        _CPU_PEAK[threads] = 2 * 1024 ** 3 / best
    return _CPU_PEAK[threads]


# ------------------------------------------------------------------------------------------ distributed
class Dist:
    def __init__(self, rank: int, world: int, local_rank: int, device):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    def barrier(self) -> None:
        import torch.distributed as td

        td.barrier()

    def sum(self, values) -> list[float]:
        """Element-wise sum over ranks of a list of numbers or a tensor on this rank's device."""
        import torch
        import torch.distributed as td

        t = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float64,
                                                                         device=self.device)
        td.all_reduce(t)
        return t.tolist()


@contextmanager
def single_process_env():
    """For `--launcher none`: the environment of a one-rank group on a free port (DeepSpeed reads it during
    the whole run), restored afterwards. A no-op under a launcher."""
    if "RANK" in os.environ:
        yield
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    values = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": str(port)}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def init_distributed() -> Dist:
    """Join the process group the launcher set up (or a one-process group for `--launcher none`)."""
    import deepspeed
    import torch
    from deepspeed.accelerator import get_accelerator

    accel = get_accelerator()
    if accel.device_name() == "cpu":
        # gloo only: DeepSpeed would otherwise JIT-compile its shared-memory collectives (~40 s) on CPU.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=accel.communication_backend_name(), verbose=False)
    import torch.distributed as td

    rank, world = td.get_rank(), td.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if accel.device_name() == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device(accel.device_name() if accel.device_name() != "cpu" else "cpu")
    return Dist(rank, world, local_rank, device)


# ------------------------------------------------------------------------------------------ outputs
def stage_output(job: dict[str, Any], lr_index: int, stage: int) -> str:
    """Where stage `stage` of learning rate `lr_index` writes its adapter (several --lr: one folder each)."""
    cfg = job["config"]
    base = Path(cfg["output"])
    if len(cfg["lrs"]) > 1:
        base = base / lr_tag(cfg["lrs"][lr_index])
    return str(base / stage_dir_name(stage, cfg["curriculum"][stage]))


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    import orjson

    with open(path, "ab") as fh:
        fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))


def _trim_jsonl(path: Path, lr_index: int, stage: int, upto_step: int) -> None:
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


def _link_tree(src: str, dst: str) -> None:
    """Copy a finished stage directory (hard links where the file system allows: adapters and full models
    are not duplicated on disk)."""
    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=link_or_copy)


# ------------------------------------------------------------------------------------------ training
def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    import torch

    keys = ("input_ids", "attention_mask", "loss_rows", "loss_cols", "loss_targets")
    if device.type == "cuda":  # from pinned memory the copy is asynchronous: the GPU need not drain first
        return {k: torch.from_numpy(batch[k]).pin_memory().to(device, non_blocking=True) for k in keys}
    return {k: torch.from_numpy(batch[k]) for k in keys}


def evaluate(engine, data: TokenizedSet, geometry: Geometry, dist: Dist, pad_id: int, pad_multiple: int) -> float:
    """Mean target-token loss over `data`. Every rank runs the same number of forwards (ZeRO-3 gathers
    parameters collectively); a rank without records runs a zero-weight dummy batch."""
    import torch

    order = np.argsort(data.lengths, kind="stable")
    per_call = geometry.micro_batch * dist.world
    loss_sum, count = 0.0, 0
    engine.eval()
    with torch.no_grad():
        for start in range(0, len(order), per_call):
            mine = order[start:start + per_call][dist.rank::dist.world]
            batch = collate(data, mine if len(mine) else order[:1], pad_id, pad_to_multiple=pad_multiple)
            loss = engine(**to_device(batch, dist.device))
            if len(mine):
                loss_sum += float(loss)
                count += len(batch["loss_targets"])
    engine.train()
    total_loss, total_count = dist.sum([loss_sum, count])
    return total_loss / max(total_count, 1)


def linear_schedule(warmup: int, total: int):
    """Linear warm-up to the peak rate, then linear decay to 0 (the HF Trainer's default schedule)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


class Meter:
    """Loss, tokens and time since the last metrics line. The loss stays on the device and the ranks are summed
    only when a line is written: a per-step sync would make the CPU wait for the GPU every step instead of
    queueing the next one."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        self.loss = 0.0
        self.targets = self.real = self.padded = 0
        self.t0 = time.perf_counter()

    def add(self, loss_sum, targets: int, real: int, padded: int) -> None:
        """`loss_sum` (a tensor) and `real`/`padded` are this rank's; `targets` counts the global batch."""
        self.loss = self.loss + loss_sum
        self.targets += targets
        self.real += real
        self.padded += padded

    def record(self, dist: Dist, flops_per_token: float, peak_total: float | None) -> dict[str, Any]:
        import torch

        local = torch.zeros(3, dtype=torch.float64, device=dist.device)
        local[0], local[1], local[2] = self.loss, self.real, self.padded
        loss, real, padded = dist.sum(local)
        tps = real / max(time.perf_counter() - self.t0, 1e-9)
        return {"loss": loss / max(self.targets, 1), "tokens_per_s": tps,
                "real_token_fraction": real / max(padded, 1),
                "mfu": tps * flops_per_token / peak_total if peak_total else None}


def make_engine(model, loss_module, cfg: dict[str, Any], ds_config: dict[str, Any], lr: float, warmup: int,
                total_steps: int, device):
    """deepspeed.initialize with a client torch AdamW (nothing to JIT-compile), or DeepSpeed's own optimizer
    when the config names one (--offload, or a user config); linear warm-up then decay either way."""
    import deepspeed
    import torch
    from torch.optim.lr_scheduler import LambdaLR

    trainable = [p for p in model.parameters() if p.requires_grad]
    schedule = linear_schedule(warmup, total_steps)
    if "optimizer" in ds_config:
        ds_config = {**ds_config, "optimizer": {**ds_config["optimizer"], "params": {
            **ds_config["optimizer"].get("params", {}), "lr": lr}}}
        engine, _, _, scheduler = deepspeed.initialize(model=loss_module, model_parameters=trainable,
                                                       config=ds_config,
                                                       lr_scheduler=lambda opt: LambdaLR(opt, schedule))
        return engine, scheduler
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=cfg["weight_decay"], **fused)
    engine, _, _, scheduler = deepspeed.initialize(model=loss_module, optimizer=optimizer,
                                                   lr_scheduler=LambdaLR(optimizer, schedule), config=ds_config)
    return engine, scheduler


def train_step(engine, data: TokenizedSet, batch_indices: np.ndarray, geometry: Geometry, dist: Dist, pad_id: int,
               pad_multiple: int):
    """One optimizer step over a global batch; returns (this rank's summed target loss, as a tensor on its
    device; the global batch's target tokens; this rank's real and padded tokens). Nothing here waits for
    the device."""
    import torch

    targets = output_tokens(data, batch_indices)
    scale = dist.world * geometry.grad_accum / max(targets, 1)  # → mean over the global batch's targets
    # a tensor even when this rank had no records in the step (an epoch's short last batch)
    loss_sum, real, padded = torch.zeros((), dtype=torch.float64, device=dist.device), 0, 0
    for per_rank in split_global_batch(batch_indices, geometry):
        mine = per_rank[dist.rank]
        batch = collate(data, mine if len(mine) else batch_indices[:1], pad_id, pad_to_multiple=pad_multiple)
        loss = engine(**to_device(batch, dist.device))
        weight = 1.0 if len(mine) else 0.0  # an empty share still runs, so the collectives stay in step
        engine.backward(loss * (scale * weight))
        engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary only
        if len(mine):
            loss_sum = loss_sum + loss.detach().double()
            real += batch["real_tokens"]
            padded += batch["input_ids"].size
    return loss_sum, targets, real, padded


def train_stage(job: dict[str, Any], dist: Dist, lr_index: int, stage: int, resume: dict[str, Any] | None) -> float | None:
    """Train one curriculum stage for one learning rate; save its adapter; return the last validation loss."""
    import torch
    from transformers import AutoTokenizer

    cfg, output = job["config"], job["config"]["output"]
    lr, members = cfg["lrs"][lr_index], cfg["curriculum"][stage]
    ds_config = job["ds_config"]
    zero3 = ds_config.get("zero_optimization", {}).get("stage") == 3
    geometry = Geometry(ds_config["train_micro_batch_size_per_gpu"], dist.world,
                        ds_config["gradient_accumulation_steps"])
    data = TokenizedSet.concat([TokenizedSet.load(job["caches"][name]) for name in members], members)
    val = TokenizedSet.load(job["val_cache"]) if job.get("val_cache") else None
    tokenizer = AutoTokenizer.from_pretrained(job["model_path"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_multiple = 8 if dist.device.type == "cuda" else 1
    n_steps = steps_per_epoch(len(data), geometry)
    total_steps = n_steps * cfg["epochs"]
    warmup = math.ceil(cfg["warmup_ratio"] * total_steps)

    # model and engine
    torch.manual_seed(cfg["seed"] * 1009 + stage)  # identical LoRA initialisation on every rank
    zero3_context = zero3_loading(job)  # noqa: F841  (must live as long as the model)
    model = load_model(job, lr_index, stage, job["precision"])
    fpt = flops_per_token(compute_params(model), _parts(model)[2], float(data.lengths.mean()))
    setting = cfg.get("compile", "off")
    compiled = compile_blocks(model, fall_back=setting == "auto") if resolve_compile(
        setting, dist.device.type, 3 if zero3 else 0, cfg["gradient_checkpointing"]) else 0
    peak = device_peak_flops(dist.device)
    loss_module = build_loss_module(model, recompute_chunks=not zero3)
    engine, scheduler = make_engine(model, loss_module, cfg, ds_config, lr, warmup, total_steps, dist.device)

    # where to start
    position = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
    if resume:
        position = ckpt.load_checkpoint(engine, resume, rank=dist.rank)
    else:
        torch.manual_seed(cfg["seed"] * 7919 + stage * 131 + dist.rank)  # dropout differs across ranks
    metrics_path, ids_path = Path(output) / "metrics.jsonl", Path(output) / "data_ids.jsonl"
    if dist.rank == 0:  # a killed run's lines past the resume point (all of them without a checkpoint)
        for path in (metrics_path, ids_path):
            _trim_jsonl(path, lr_index, stage, position["global_step"])
    dist.barrier()

    is_main = dist.rank == 0
    label = f"{lr_tag(lr) + ' ' if len(cfg['lrs']) > 1 else ''}{stage_dir_name(stage, members)}"
    if is_main:
        console.info(f"[bold]{label}[/bold]: {len(data):,} records, {n_steps:,} steps/epoch × {cfg['epochs']} "
                     f"epochs, global batch {geometry.global_batch} ({dist.world} rank(s) × {geometry.micro_batch} "
                     f"× {geometry.grad_accum}), lr {lr:g}, warm-up {warmup} steps"
                     + (f"; {compiled} decoder blocks compiled (the first steps compile them)" if compiled else "")
                     + (f"; resuming at step {position['global_step']}" if resume else ""))
    kill_after = int(os.environ.get(DEBUG_KILL_ENV, "0") or 0)
    tag = {"lr_index": lr_index, "lr": lr, "stage": stage + 1}
    val_loss = None
    meter = Meter()
    progress = console.progress() if is_main else None
    live = progress is not None and not progress.disable
    engine.train()
    with progress if progress is not None else nullcontext():
        task = progress.add_task(label, total=total_steps, completed=position["global_step"], rate="") if live else None
        for epoch in range(position["epoch"], cfg["epochs"]):
            plan = epoch_plan(data.lengths, geometry, seed=cfg["seed"], stage=stage, epoch=epoch)
            first = position["step_in_epoch"] if epoch == position["epoch"] else 0
            for step_in_epoch in range(first, len(plan)):
                meter.add(*train_step(engine, data, plan[step_in_epoch], geometry, dist, pad_id, pad_multiple))
                done_epoch = step_in_epoch + 1 == len(plan)
                position = {"epoch": epoch + done_epoch, "step_in_epoch": 0 if done_epoch else step_in_epoch + 1,
                            "global_step": position["global_step"] + 1}
                step = position["global_step"]
                if is_main and cfg["log_data_ids"]:
                    _append_jsonl(ids_path, {**tag, "step": step, "ids": data.record_ids(plan[step_in_epoch])})
                if step % cfg["log_every"] == 0 or step == total_steps:
                    record = {**tag, "epoch": epoch + 1, "step": step, **meter.record(dist, fpt, peak and peak * dist.world),
                              "learning_rate": scheduler.get_last_lr()[0]}
                    if is_main:
                        _append_jsonl(metrics_path, record)
                        text = f"loss {record['loss']:.4f} · {record['tokens_per_s']:,.0f} tok/s" + (
                            f" · MFU {record['mfu']:.2f}" if record["mfu"] else "")
                        if live:
                            progress.update(task, completed=step, rate=text)
                        else:
                            console.info(f"  step {step}/{total_steps} · {text}")
                    meter.restart()
                elif live:
                    progress.update(task, completed=step)
                if cfg["save_every"] and step % cfg["save_every"] == 0 and step < total_steps:
                    ckpt.save_checkpoint(engine, output, lr_tag(lr), lr_index, stage, position,
                                         rank=dist.rank, barrier=dist.barrier)
                if kill_after and step == kill_after and is_main:
                    os.kill(os.getpid(), signal.SIGKILL)
            if val is not None:
                val_loss = evaluate(engine, val, geometry, dist, pad_id, pad_multiple)
                if is_main:
                    _append_jsonl(metrics_path, {**tag, "epoch": epoch + 1, "step": position["global_step"],
                                                 "val_loss": val_loss})
                    console.info(f"  epoch {epoch + 1}: validation loss {val_loss:.4f}")
                meter.restart()

    # the stage's result
    out_dir = stage_output(job, lr_index, stage)
    ckpt.save_stage_model(engine.module.model, tokenizer, out_dir, full=cfg["full"], zero3=zero3, rank=dist.rank)
    dist.barrier()
    if is_main:
        ckpt.mark_stage_done(output, lr_index, stage, val_loss)
        console.info(f"  saved {out_dir}")
    dist.barrier()
    if hasattr(engine, "destroy"):
        engine.destroy()
    del engine, scheduler, model, loss_module, zero3_context
    if dist.device.type == "cuda":
        torch.cuda.empty_cache()
    return val_loss


def finish_run(job: dict[str, Any]) -> None:
    """Rank 0: choose the learning rate (lowest final validation loss), lay out stage-K/ and final/, and
    record the outcome in run.json."""
    cfg = job["config"]
    output = Path(cfg["output"])
    state = ckpt.read_state(output)
    last = len(cfg["curriculum"]) - 1
    finals = {i: state.get("val_loss", {}).get(f"{i}/{last}") for i in range(len(cfg["lrs"]))}
    chosen = 0
    if len(cfg["lrs"]) > 1:
        chosen = min(finals, key=lambda i: math.inf if finals[i] is None else finals[i])
        for stage in range(len(cfg["curriculum"])):
            _link_tree(stage_output(job, chosen, stage), str(output / stage_dir_name(stage, cfg["curriculum"][stage])))
    _link_tree(stage_output(job, chosen, last), str(output / "final"))
    for leftover in sorted((output / "checkpoints").glob("lr-*/*"), reverse=True) + sorted(
            (output / "checkpoints").glob("lr-*")):
        if leftover.is_dir() and not any(leftover.iterdir()):
            leftover.rmdir()
    manifest = read_json(output / "run.json")
    manifest["result"] = {"chosen_lr": cfg["lrs"][chosen],
                          "final_val_loss": {f"{cfg['lrs'][i]:g}": v for i, v in finals.items()},
                          "stages": [stage_dir_name(k, m) for k, m in enumerate(cfg["curriculum"])]}
    manifest["status"] = "finished"
    manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(output / "run.json", manifest)
    if len(cfg["lrs"]) > 1:
        table = ", ".join(f"{cfg['lrs'][i]:g}: {'n/a' if v is None else f'{v:.4f}'}" for i, v in finals.items())
        console.info(f"validation loss per lr ({table}); chose lr {cfg['lrs'][chosen]:g}")
    console.info(f"[green]done[/green]: {output / 'final'}")


def run_job(job: dict[str, Any]) -> None:
    """Train every (learning rate, stage) not yet done, in order, then lay out the results."""
    with single_process_env():
        _run_job(job)


def _run_job(job: dict[str, Any]) -> None:
    dist = init_distributed()
    cfg = job["config"]
    console.set_quiet(job.get("quiet", False) or dist.rank != 0)
    expected = job.get("world_size")
    if expected and expected != dist.world:
        raise SystemExit(f"ait train: this run was started with {expected} rank(s) and cannot resume on "
                         f"{dist.world}")
    state = ckpt.read_state(cfg["output"])
    if dist.rank == 0 and not expected:
        job["world_size"] = dist.world
        write_json(Path(cfg["output"]) / "job.json", job)
    for lr_index in range(len(cfg["lrs"])):
        for stage in range(len(cfg["curriculum"])):
            if [lr_index, stage] in state["done"]:
                continue
            resume = state.get("resume")
            if resume and (resume["lr_index"], resume["stage"]) != (lr_index, stage):
                resume = None
            train_stage(job, dist, lr_index, stage, resume)
            state = ckpt.read_state(cfg["output"])
    dist.barrier()
    if dist.rank == 0:
        finish_run(job)
    dist.barrier()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ait train worker (started by `ait train`)")
    parser.add_argument("--job", required=True, help="job.json written by `ait train`")
    parser.add_argument("--local_rank", type=int, default=None, help="set by the deepspeed launcher")
    args = parser.parse_args(argv)
    run_job(read_json(args.job))


if __name__ == "__main__":
    main(sys.argv[1:])

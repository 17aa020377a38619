"""The training worker: one process per rank, started by the `deepspeed` launcher (or in-process with
`--launcher none`). Read it top to bottom: `main` → `run_job` (learning rates × curriculum stages) →
`train_stage` (epochs × steps around a DeepSpeed engine) → `train_step` (micro-steps); then what they use:
the stage's set-up, logging and saving, evaluation, the loss, the model and the engine.

The workers only train: rank 0 records their progress in checkpoints/state.json (finished stages, the
resume point, validation losses, the number of ranks). Choosing the learning rate, laying out final/ and
run.json belong to the launching process (launch.py), which also wrote the job.json read here.

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
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aligninstruct_cli import console, models
from aligninstruct_cli.options import to_dict
from aligninstruct_cli.training import checkpoint as ckpt
from aligninstruct_cli.training.checkpoint import Position, lr_tag
from aligninstruct_cli.training.distributed import Dist, init_distributed, single_process_env
from aligninstruct_cli.training.examples import (Geometry, TokenizedSet, collate, epoch_plan, output_tokens,
                                                 split_global_batch, steps_per_epoch)
from aligninstruct_cli.training.job import Job
from aligninstruct_cli.training.throughput import Meter, compute_params, device_peak_flops, flops_per_token
from aligninstruct_cli.training.train_options import TrainOptions, lora_config, quantization_config, resolve_compile

LOSS_CHUNK_ELEMENTS = 1 << 27  # positions per logits chunk × vocabulary: 128M logits (~0.5 GiB in fp32)
DEBUG_KILL_ENV = "AIT_DEBUG_KILL_AFTER_STEP"  # test hook: SIGKILL rank 0 after this global step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ait train worker (started by `ait train`)")
    parser.add_argument("--job", required=True, help="job.json written by `ait train`")
    parser.add_argument("--local_rank", type=int, default=None, help="set by the deepspeed launcher")
    args = parser.parse_args(argv)
    run_job(Job.load(args.job))


def run_job(job: Job) -> None:
    """Train every (learning rate, stage) not yet done, in order."""
    with single_process_env():
        dist = init_distributed()
        console.set_quiet(job.quiet or dist.rank != 0)
        for key, value in console.quiet_environment().items():  # a rank's entry: its libraries' bars follow
            os.environ.setdefault(key, value)
        check_world_size(job, dist)
        for lr_index in range(len(job.options.lr)):
            for stage in range(len(job.options.curriculum)):
                state = ckpt.read_state(job.options.output)
                if [lr_index, stage] in state["done"]:
                    continue
                resume = state.get("resume")
                if resume and (resume["lr_index"], resume["stage"]) != (lr_index, stage):
                    resume = None
                train_stage(job, dist, lr_index, stage, resume)


def train_stage(job: Job, dist: Dist, lr_index: int, stage: int, resume: dict[str, Any] | None) -> float | None:
    """Train one curriculum stage for one learning rate; save its result; return the last validation loss."""
    s = set_up_stage(job, dist, lr_index, stage)
    position = start_position(s, resume)
    log = StageLog(s, position, resumed=resume is not None)
    val_loss = None
    s.engine.train()  # from_pretrained gives a model in eval mode: dropout (LoRA's 0.1) must be on
    with log.bar:
        for epoch in range(position.epoch, s.epochs):
            plan = epoch_plan(s.data.lengths, s.geometry, seed=s.options.seed, stage=stage, epoch=epoch)
            first = position.step_in_epoch if epoch == position.epoch else 0
            for step_in_epoch in range(first, len(plan)):
                batch = plan[step_in_epoch]
                log.meter.add(*train_step(s.engine, s.data, batch, s.geometry, dist, s.pad_id, s.pad_multiple))
                position = position.after(epoch, step_in_epoch, len(plan))
                log.step(epoch, position.global_step, batch)
                if s.checkpoint_due(position.global_step):
                    ckpt.save_checkpoint(s.engine, s.options.output, lr_tag(s.lr), lr_index, stage, position,
                                         rank=dist.rank, barrier=dist.barrier)
                if s.adapter_due(position.global_step):
                    save_adapter_checkpoint(s, position.global_step)
                kill_if_asked(position.global_step, dist)
            if s.val is not None:
                val_loss = evaluate(s.engine, s.val, s.geometry, dist, s.pad_id, s.pad_multiple)
                log.validation(epoch, position.global_step, val_loss)
    log.close()
    save_stage(s, val_loss)
    return val_loss


# ------------------------------------------------------------------------------------------ a stage
@dataclass
class Stage:
    """One curriculum stage of one learning rate, set up to train: its data, batch geometry, schedule,
    model and DeepSpeed engine."""

    job: Job
    dist: Dist
    lr_index: int
    index: int
    data: Any  # the members' TokenizedSets, concatenated
    val: TokenizedSet | None
    geometry: Geometry
    tokenizer: Any
    steps_per_epoch: int
    model: Any = None
    zero3_context: Any = None  # must live as long as the model
    compiled: int = 0  # decoder blocks compiled
    flops_per_token: float = 0.0
    peak: float | None = None  # peak FLOP/s of one device
    loss_module: Any = None
    engine: Any = None
    scheduler: Any = None

    @property
    def options(self) -> TrainOptions:
        return self.job.options

    @property
    def lr(self) -> float:
        return self.options.lr[self.lr_index]

    @property
    def epochs(self) -> int:
        return self.options.epochs[self.index]

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def warmup(self) -> int:
        return math.ceil(self.options.warmup_ratio * self.total_steps)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @property
    def pad_multiple(self) -> int:
        return 8 if self.dist.device.type == "cuda" else 1

    @property
    def label(self) -> str:
        return " ".join(ckpt.stage_path(self.options, self.lr_index, self.index).parts)

    @property
    def tag(self) -> dict[str, Any]:
        """The fields that place a log line: learning rate and 1-based stage."""
        return {"lr_index": self.lr_index, "lr": self.lr, "stage": self.index + 1}

    def checkpoint_due(self, step: int) -> bool:
        every = self.options.save_every
        return bool(every) and step % every == 0 and step < self.total_steps

    def adapter_due(self, step: int) -> bool:
        every = self.options.save_adapter_every
        return bool(every) and step % every == 0


def set_up_stage(job: Job, dist: Dist, lr_index: int, stage: int) -> Stage:
    """The stage's data and geometry; then its model (base + fresh LoRA, or the previous stage's result),
    compiled blocks where they pay, and the engine."""
    import torch  # lazy: torch

    options = job.options
    members = options.curriculum[stage]
    geometry = Geometry(job.ds_config["train_micro_batch_size_per_gpu"], dist.world,
                        job.ds_config["gradient_accumulation_steps"])
    data = TokenizedSet.concat([TokenizedSet.load(job.caches[name]) for name in members], members)
    s = Stage(job, dist, lr_index, stage, data=data,
              val=TokenizedSet.load(job.val_cache) if job.val_cache else None, geometry=geometry,
              tokenizer=models.load_tokenizer(job.model_path), steps_per_epoch=steps_per_epoch(len(data), geometry))
    torch.manual_seed(options.seed * 1009 + stage)  # identical LoRA initialisation on every rank
    s.zero3_context = zero3_loading(job)
    s.model = load_model(job, lr_index, stage, dist.device)
    s.flops_per_token = flops_per_token(compute_params(s.model), _parts(s.model)[2], float(data.lengths.mean()))
    if resolve_compile(options.compile, dist.device.type, 3 if job.zero3 else 0, options.gradient_checkpointing):
        s.compiled = compile_blocks(s.model, fall_back=options.compile == "auto")
    s.peak = device_peak_flops(dist.device)
    s.loss_module = build_loss_module(s.model, recompute_chunks=not job.zero3)
    s.engine, s.scheduler = make_engine(s.model, s.loss_module, options.weight_decay, job.ds_config, s.lr,
                                       lr_schedule(options.lr_scheduler, s.warmup, s.total_steps), dist.device)
    return s


def start_position(s: Stage, resume: dict[str, Any] | None) -> Position:
    """A checkpoint's position (weights, optimizer, schedule and this rank's RNG restored), or step 0 with
    this rank's dropout seed. Log lines a killed run wrote past that position are removed."""
    import torch  # lazy: torch

    if resume:
        position = ckpt.load_checkpoint(s.engine, resume, rank=s.dist.rank)
    else:
        torch.manual_seed(s.options.seed * 7919 + s.index * 131 + s.dist.rank)  # dropout differs across ranks
        position = Position()
    if s.dist.rank == 0:  # a killed run's lines past the resume point (all of them without a checkpoint)
        for path in (ckpt.metrics_path(s.options.output), ckpt.data_ids_path(s.options.output)):
            ckpt.trim_jsonl(path, s.lr_index, s.index, position.global_step)
    s.dist.barrier()
    return position


class StageLog:
    """What a stage reports: a header; a metrics.jsonl line every `log_every` steps and after each
    validation; data_ids.jsonl lines (with `log_data_ids`); the progress bar, or without one (-q, not a
    terminal) a line per metrics line. Rank 0 writes the files; the other ranks are quiet."""

    def __init__(self, s: Stage, position: Position, *, resumed: bool):
        self.s = s
        self.writes = s.dist.rank == 0
        self.meter = Meter()
        self.status = ""  # the last metrics line, shown as the bar's rate
        self.tensorboard = tensorboard_writer(s, position) if self.writes else None
        self.wandb = wandb_run(s) if self.writes else None
        self.bar = console.Bar(s.label, total=s.total_steps, unit="steps", completed=position.global_step)
        g = s.geometry
        console.info(f"[bold]{s.label}[/bold]: {len(s.data):,} records, {s.steps_per_epoch:,} steps/epoch × "
                     f"{s.epochs} epochs, global batch {g.global_batch} ({s.dist.world} rank(s) × "
                     f"{g.micro_batch} × {g.grad_accum}), lr {s.lr:g}, warm-up {s.warmup} steps"
                     + (f"; {s.compiled} decoder blocks compiled (the first steps compile them)" if s.compiled else "")
                     + (f"; resuming at step {position.global_step}" if resumed else ""))

    def step(self, epoch: int, step: int, batch: np.ndarray) -> None:
        """After global step `step` (every rank: a metrics line sums the ranks' figures)."""
        s, options = self.s, self.s.options
        if self.writes and options.log_data_ids:
            ckpt.append_jsonl(ckpt.data_ids_path(options.output),
                              {**s.tag, "step": step, "ids": s.data.record_ids(batch)})
        if step % options.log_every == 0 or step == s.total_steps:
            figures = self.meter.record(s.dist, s.flops_per_token, s.peak and s.peak * s.dist.world)
            record = {**s.tag, "epoch": epoch + 1, "step": step, **figures,
                      "learning_rate": s.scheduler.get_last_lr()[0]}
            if self.writes:
                ckpt.append_jsonl(ckpt.metrics_path(options.output), record)
            if self.tensorboard is not None:
                for name in ("loss", "learning_rate", "tokens_per_s"):
                    self.tensorboard.add_scalar(f"train/{name}", record[name], step)
            if self.wandb is not None:
                self.wandb.log({f"train/{name}": record[name] for name in ("loss", "learning_rate", "tokens_per_s")},
                               step=step)
            self.status = f"loss {record['loss']:.4f} · {record['tokens_per_s']:,.0f} tok/s" + (
                f" · MFU {record['mfu']:.2f}" if record["mfu"] else "")
            if not self.bar.enabled:
                console.info(f"  step {step}/{s.total_steps} · {self.status}")
            self.meter.restart()
        self.bar.set(step, rate=self.status)

    def validation(self, epoch: int, step: int, val_loss: float) -> None:
        if self.writes:
            ckpt.append_jsonl(ckpt.metrics_path(self.s.options.output),
                              {**self.s.tag, "epoch": epoch + 1, "step": step, "val_loss": val_loss})
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("eval/loss", val_loss, step)
        if self.wandb is not None:
            self.wandb.log({"eval/loss": val_loss}, step=step)
        console.info(f"  epoch {epoch + 1}: validation loss {val_loss:.4f}")
        self.meter.restart()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def tensorboard_writer(s: Stage, position: Position):
    """With `report_to` tensorboard: a SummaryWriter for this stage (OUTPUT/tensorboard/[lr-X/]stage-K-*), whose
    events past a resumed run's checkpoint are dropped (they are logged again). None otherwise."""
    if s.options.report_to != "tensorboard":
        return None
    from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard

    run = Path(s.options.output) / "tensorboard" / ckpt.stage_path(s.options, s.lr_index, s.index)
    return SummaryWriter(str(run), purge_step=position.global_step + 1 if position.global_step else None,
                         flush_secs=10)


def wandb_run(s: Stage):
    """With `report_to` wandb: a W&B run for this stage (and learning rate), named as its folder, grouped by
    the output folder's name, the options as its config, files under OUTPUT/wandb/ (WANDB_MODE=offline:
    only there). None otherwise."""
    if s.options.report_to != "wandb":
        return None
    import wandb  # lazy: wandb

    out = Path(s.options.output).absolute()
    if wandb.run is not None:  # a run an earlier failure left open in this process: one W&B run per stage
        wandb.run.finish(exit_code=1)
    return wandb.init(project=os.environ.get("WANDB_PROJECT") or "ait", dir=str(out), group=out.name,
                      name=f"{out.name}/{ckpt.stage_path(s.options, s.lr_index, s.index).as_posix()}", config=to_dict(s.options), job_type="train")


def save_adapter_checkpoint(s: Stage, step: int) -> None:
    """`save_adapter_every`: the adapter as it is after `step`, a PEFT adapter directory
    (`checkpoint.adapter_checkpoint_dir`). Every rank calls it (ZeRO-3 gathers); rank 0 writes."""
    out_dir = ckpt.adapter_checkpoint_dir(s.options, s.lr_index, s.index, step)
    if s.dist.rank == 0:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    ckpt.save_stage_model(s.engine.module.model, s.tokenizer, out_dir, full=False, zero3=s.job.zero3,
                          rank=s.dist.rank)
    s.dist.barrier()


def save_stage(s: Stage, val_loss: float | None) -> None:
    """Write the stage's adapter (or full model), mark the stage done (rank 0), and free the engine."""
    import torch  # lazy: torch

    out_dir = ckpt.stage_output(s.options, s.lr_index, s.index)
    ckpt.save_stage_model(s.engine.module.model, s.tokenizer, out_dir, full=s.options.full, zero3=s.job.zero3,
                          rank=s.dist.rank)
    s.dist.barrier()
    if s.dist.rank == 0:
        ckpt.mark_stage_done(s.options.output, s.lr_index, s.index, val_loss)
        console.info(f"  saved {out_dir}")
    s.dist.barrier()
    if hasattr(s.engine, "destroy"):
        s.engine.destroy()
    s.engine = s.scheduler = s.model = s.loss_module = s.zero3_context = None
    if s.dist.device.type == "cuda":
        torch.cuda.empty_cache()


def check_world_size(job: Job, dist: Dist) -> None:
    """A run keeps its number of ranks (the data order depends on it): its first launch records it in
    state.json, a resume must match it. A global batch was split for the ranks counted before the launch."""
    if job.options.global_batch and job.world_size != dist.world:
        raise SystemExit(f"ait train: the global batch {job.options.global_batch} was split for {job.world_size} "
                         f"rank(s), but the launcher started {dist.world}; name the ranks with --num-gpus")
    recorded = ckpt.read_state(job.options.output).get("world_size")
    if recorded and recorded != dist.world:
        raise SystemExit(f"ait train: this run was started with {recorded} rank(s) and cannot resume on "
                         f"{dist.world}")
    if not recorded and dist.rank == 0:
        ckpt.record_world_size(job.options.output, dist.world)


def kill_if_asked(step: int, dist: Dist) -> None:
    """Test hook: rank 0 kills itself (SIGKILL) right after global step $AIT_DEBUG_KILL_AFTER_STEP."""
    if dist.rank == 0 and step == int(os.environ.get(DEBUG_KILL_ENV) or 0):
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------------ a step
def train_step(engine, data: TokenizedSet, batch_indices: np.ndarray, geometry: Geometry, dist: Dist, pad_id: int,
               pad_multiple: int):
    """One optimizer step over a global batch; returns (this rank's summed target loss, as a tensor on its
    device; the global batch's target tokens; this rank's real and padded tokens). Nothing here waits for
    the device."""
    import torch  # lazy: torch

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


def evaluate(engine, data: TokenizedSet, geometry: Geometry, dist: Dist, pad_id: int, pad_multiple: int) -> float:
    """Mean target-token loss over `data`. Every rank runs the same number of forwards (ZeRO-3 gathers
    parameters collectively); a rank without records runs a zero-weight dummy batch."""
    import torch  # lazy: torch

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


def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    import torch  # lazy: torch

    keys = ("input_ids", "attention_mask", "loss_rows", "loss_cols", "loss_targets")
    if device.type == "cuda":  # from pinned memory the copy is asynchronous: the GPU need not drain first
        return {k: torch.from_numpy(batch[k]).pin_memory().to(device, non_blocking=True) for k in keys}
    return {k: torch.from_numpy(batch[k]) for k in keys}


# ------------------------------------------------------------------------------------------ the model
def _parts(model):
    """(backbone, lm_head, config) of a causal LM, looking through a PEFT wrapper."""
    lm = models.base_model_of(model)
    return models.backbone_of(lm), lm.get_output_embeddings(), lm.config


def _chunk_loss(lm_head, hidden, targets, softcap: float | None, logit_scale: float | None):
    import torch.nn.functional as F  # lazy: torch

    logits = lm_head(hidden)
    if logit_scale:
        logits = logits * logit_scale
    if softcap:
        logits = (logits / softcap).tanh() * softcap
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def build_loss_module(model, *, recompute_chunks: bool):
    """An nn.Module whose forward returns the summed target-token loss: the module DeepSpeed wraps, so
    ZeRO-3 sees an ordinary root module and its hooks work as usual."""
    import torch  # lazy: torch
    from torch.utils.checkpoint import checkpoint  # lazy: torch

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
    import torch  # lazy: torch

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
        import torch._dynamo  # lazy: torch

        torch._dynamo.config.suppress_errors = True
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


def zero3_loading(job: Job):
    """Under ZeRO-3, an object that makes `from_pretrained` partition weights while loading (deepspeed.zero.Init)
    instead of every rank holding the whole model first; keep it alive as long as the model. None otherwise."""
    if not job.zero3:
        return None
    from transformers.integrations import HfDeepSpeedConfig  # lazy: transformers

    return HfDeepSpeedConfig(job.ds_config)


def load_model(job: Job, lr_index: int, stage: int, device=None):
    """The stage's trainable model: base + fresh LoRA (stage 1), base + the previous stage's adapter
    (stage k > 1), or with `full` the base / previous stage's full model. With `quantize`, the base is
    loaded quantized onto `device` and prepared for k-bit training (QLoRA)."""
    options = job.options
    previous = str(ckpt.stage_output(options, lr_index, stage - 1)) if stage > 0 else None
    source = previous if (options.full and previous) else job.model_path
    quantized = quantization_config(options.quantize, job.precision)
    lm = models.load_causal_lm(source, job.precision, device=device if quantized else None,
                               quantization_config=quantized)
    if quantized is not None:
        from peft import prepare_model_for_kbit_training  # lazy: peft

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=options.gradient_checkpointing,
                                             gradient_checkpointing_kwargs={"use_reentrant": False})
    elif options.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if options.full:
        return lm
    from peft import PeftModel, get_peft_model  # lazy: peft

    if previous:
        return PeftModel.from_pretrained(lm, previous, is_trainable=True)
    return get_peft_model(lm, lora_config(job.lora_targets, r=options.lora_r, alpha=options.lora_alpha,
                                          dropout=options.lora_dropout))


# ------------------------------------------------------------------------------------------ the engine
def make_engine(model, loss_module, weight_decay: float, ds_config: dict[str, Any], lr: float, schedule, device):
    """deepspeed.initialize with a client torch AdamW (nothing to JIT-compile), or DeepSpeed's own optimizer
    when the config names one (--offload, or a user config); `schedule` (step → factor of the peak rate,
    `lr_schedule`) either way. The one place an optimizer gets its learning rate: `lr`, this curriculum's
    --lr (the DeepSpeed config holds none, `launch.without_lr`); the schedule's base is the optimizer's."""
    import deepspeed  # lazy: deepspeed
    import torch  # lazy: torch
    from torch.optim.lr_scheduler import LambdaLR  # lazy: torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if "optimizer" in ds_config:
        ds_config = {**ds_config, "optimizer": {**ds_config["optimizer"], "params": {
            **ds_config["optimizer"].get("params", {}), "lr": lr}}}
        engine, _, _, scheduler = deepspeed.initialize(model=loss_module, model_parameters=trainable,
                                                       config=ds_config,
                                                       lr_scheduler=lambda opt: LambdaLR(opt, schedule))
        return engine, scheduler
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay, **fused)
    engine, _, _, scheduler = deepspeed.initialize(model=loss_module, optimizer=optimizer,
                                                   lr_scheduler=LambdaLR(optimizer, schedule), config=ds_config)
    return engine, scheduler


def lr_schedule(kind: str, warmup: int, total: int):
    """Step → factor of the peak rate: linear warm-up to the peak, then (`lr_scheduler`) linear decay to 0
    (the HF Trainer's default schedule), half a cosine down to 0 (its `cosine`) or the peak (its
    `constant_with_warmup`)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "constant":
            return 1.0
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    return factor


if __name__ == "__main__":
    main(sys.argv[1:])

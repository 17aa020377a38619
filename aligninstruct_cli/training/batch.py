"""How many records one optimizer step takes and how they are split: ranks × micro-batch per device ×
gradient-accumulation steps (`BatchPlan`, chosen by `plan_batch` in the launching process).

Without `global_batch` the split is the options' (`batch_size`, `grad_accum`); the global batch follows
from the ranks, known only where the options say (`known_ranks`). With `global_batch` it is fixed, and:

    ranks         1 with launcher none; num_gpus × num_nodes without a hostfile; a hostfile's slots (the
                  first num_nodes hosts; num_gpus per host when given), DeepSpeed's default /job/hostfile
                  included; else the local devices as the deepspeed launcher counts them (the visible GPUs;
                  on a CPU machine its CPU ranks)
    micro-batch   `batch_size` when given; else the largest divisor of global / ranks that fits one GPU by
                  the memory estimate below; on a machine without a GPU, 8 (ait's default batch size)
    accumulation  global / (micro-batch × ranks): a whole number, or an error naming the numbers

Memory estimate for one GPU, for the worst case length grouping can bring (every record as long as the
longest tokenized example, or `max_length` before the data is read), so it errs on the safe side:

    budget        90% of the GPU's memory less 2 GiB (CUDA context, allocator slack, the loss's logits chunks)
    model         parameters × 2 bytes (bf16, fp16) or 4 (fp32); with `full`, also gradients of the same size
                  and 12 bytes a parameter of fp32 master weights and Adam moments; each divided by the ranks
                  where ZeRO partitions it (stage 1: optimizer state, 2: + gradients, 3: + weights), nothing
                  for what is offloaded
    per record    layers × length × (34 × hidden + 5 × heads × length) bytes at 16 bits (Korthikanti et al.
                  2022, "Reducing Activation Recomputation in Large Transformer Models", §4.1), twice that in
                  fp32; with gradient checkpointing, 2 × hidden × length bytes per layer plus one whole layer
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from aligninstruct_cli import models
from aligninstruct_cli.options import OptionError, option_ref
from aligninstruct_cli.training.train_options import BATCH_SIZE, TrainOptions

DEEPSPEED_DEFAULT_HOSTFILE = "/job/hostfile"  # the deepspeed launcher reads it when no --hostfile is given
MEMORY_SHARE = 0.9
MEMORY_RESERVED = 2 << 30
_HOST_LINE = re.compile(r"^(\S+)\s+slots=(\d+)")


@dataclass(frozen=True)
class BatchPlan:
    micro: int  # records per rank per micro-step
    accumulation: int  # micro-steps per optimizer step
    ranks: int | None  # None: the launcher decides, and no global batch was asked for
    micro_from: str = "batch_size"  # batch_size, memory_estimate, default (no GPU) or deepspeed_config

    @property
    def global_batch(self) -> int | None:
        return self.micro * self.accumulation * self.ranks if self.ranks else None

    def to_dict(self) -> dict[str, Any]:
        """run.json's `batch` entry."""
        return {"global": self.global_batch, "micro": self.micro, "accumulation": self.accumulation,
                "ranks": self.ranks, "micro_from": self.micro_from}


def describe_batch(batch: dict[str, Any]) -> str:
    """A `BatchPlan.to_dict()` in words."""
    return (f"global batch {batch['global']} = {batch['ranks']} rank(s) × micro-batch {batch['micro']} × "
            f"accumulation {batch['accumulation']} (micro-batch from: {batch['micro_from'].replace('_', ' ')})")


def plan_batch(options: TrainOptions, model_path: str, precision: str, longest: int | None = None) -> BatchPlan:
    """The options' split, or with `global_batch` the ranks counted, the micro-batch chosen and the
    accumulation derived. OptionError when the global batch does not divide. `longest`: the longest
    tokenized example (the memory estimate's length; `max_length` when not known yet)."""
    if options.global_batch is None:
        return BatchPlan(options.batch_size, options.grad_accum, known_ranks(options))
    total, ranks = options.global_batch, count_ranks(options)
    if total % ranks:
        raise OptionError(f"{option_ref('global_batch')} {total} is not a multiple of the {ranks} ranks",
                          hint="choose a global batch that the ranks divide, or other ranks")
    per_rank = total // ranks
    if options.batch_size is not None:
        if per_rank % options.batch_size:
            raise OptionError(f"{option_ref('global_batch')} {total} is not a multiple of {option_ref('batch_size')} "
                              f"{options.batch_size} × {ranks} rank(s) = {options.batch_size * ranks}",
                              hint=f"a micro-batch that divides {per_rank} (the global batch per rank)")
        return BatchPlan(options.batch_size, per_rank // options.batch_size, ranks)
    fit, source = fitting_micro_batch(options, model_path, precision, ranks, longest)
    micro = max(d for d in range(1, min(fit, per_rank) + 1) if per_rank % d == 0)
    return BatchPlan(micro, per_rank // micro, ranks, source)


# ------------------------------------------------------------------------------------------ ranks
def known_ranks(options: TrainOptions) -> int | None:
    """The ranks the launch will have, where the options say (None: all GPUs, or a hostfile's slots)."""
    if options.launcher == "none":
        return 1
    return options.num_gpus * (options.num_nodes or 1) if options.num_gpus and not options.hostfile else None


def count_ranks(options: TrainOptions) -> int:
    """The ranks the deepspeed launcher will start, counted as it counts them."""
    ranks = known_ranks(options)
    if ranks:
        return ranks
    hostfile = options.hostfile or (DEEPSPEED_DEFAULT_HOSTFILE if Path(DEEPSPEED_DEFAULT_HOSTFILE).is_file() else None)
    if hostfile:
        slots = list(hostfile_slots(hostfile).values())[:options.num_nodes or None]
        return sum(options.num_gpus or n for n in slots)
    return (options.num_gpus or local_device_count()) * (options.num_nodes or 1)


def hostfile_slots(path: str) -> dict[str, int]:
    """A DeepSpeed/MPI hostfile's `host slots=N` lines (blank lines and # comments skipped) → {host: N}."""
    hosts: dict[str, int] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _HOST_LINE.match(line)
        if not match:
            raise OptionError(f"{option_ref('hostfile')} {path}:{number}: expected 'HOST slots=N', not {line!r}")
        hosts[match.group(1)] = int(match.group(2))
    if not hosts:
        raise OptionError(f"{option_ref('hostfile')} {path}: no 'HOST slots=N' lines")
    return hosts


def local_device_count() -> int:
    """This machine's devices as the deepspeed launcher counts them: the visible GPUs, or its CPU ranks."""
    import torch  # lazy: torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    # DeepSpeed's CPU accelerator counts, as it does for the launcher `launch` starts with DS_ACCELERATOR=cpu
    # (unless you chose an accelerator): asked directly, so that this process's environment stays as it is
    from deepspeed.accelerator import get_accelerator  # lazy: deepspeed
    from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator  # lazy: deepspeed

    accelerator = get_accelerator() if "DS_ACCELERATOR" in os.environ else CPU_Accelerator()
    return max(1, accelerator.device_count())


# ------------------------------------------------------------------------------------------ memory
def fitting_micro_batch(options: TrainOptions, model_path: str, precision: str, ranks: int,
                        longest: int | None = None) -> tuple[int, str]:
    """(the most records per micro-step that fit one GPU by the module's estimate, "memory_estimate"); on a
    machine without a GPU (BATCH_SIZE, "default"). Records are taken `longest` tokens long (at most
    `max_length`): length grouping can put the longest examples in one batch."""
    import torch  # lazy: torch

    if not torch.cuda.is_available():
        return BATCH_SIZE, "default"
    micro = micro_batch_for_memory(
        torch.cuda.get_device_properties(0).total_memory, **model_shape(model_path),
        length=min(options.example_limit, longest or options.example_limit),
        bytes_per_value=2 if precision in ("bf16", "fp16") else 4, full=options.full, zero=options.zero,
        offload=options.offload, ranks=ranks, checkpointing=options.gradient_checkpointing)
    return micro, "memory_estimate"


@lru_cache(maxsize=8)
def model_shape(model_path: str) -> dict[str, int]:
    """The estimate's view of a model: parameters, layers, hidden size, heads (cached: a launch plans twice,
    and counting a 7b1's parameters on the meta device takes about two seconds)."""
    config = models.load_model_config(model_path)
    return {"params": parameter_count(config), "layers": _first(config, "num_hidden_layers", "n_layer"),
            "hidden": _first(config, "hidden_size", "n_embd"), "heads": _first(config, "num_attention_heads", "n_head")}


def micro_batch_for_memory(device_bytes: int, *, params: int, layers: int, hidden: int, heads: int, length: int,
                           bytes_per_value: int, full: bool = False, zero: int = 0, offload: str = "none",
                           ranks: int = 1, checkpointing: bool = False) -> int:
    """The estimate of the module docstring: records of `length` tokens that fit beside the model (at least 1)."""
    weights = params * bytes_per_value / (ranks if zero == 3 else 1) * (offload != "all")
    grads = params * bytes_per_value / (ranks if zero >= 2 else 1) if full else 0
    optimizer = 12 * params / (ranks if zero >= 1 else 1) * (offload == "none") if full else 0
    layer = length * (34 * hidden + 5 * heads * length) * bytes_per_value / 2
    record = (layers * 2 * hidden * length * bytes_per_value / 2 + layer) if checkpointing else layers * layer
    budget = MEMORY_SHARE * device_bytes - MEMORY_RESERVED - weights - grads - optimizer
    return max(1, int(budget // record))


def parameter_count(config) -> int:
    """The model's parameters, counted on the meta device (no weights are loaded)."""
    import torch  # lazy: torch
    from transformers import AutoModelForCausalLM  # lazy: transformers

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _first(config, *names: str) -> int:
    return next(int(getattr(config, n)) for n in names if getattr(config, n, None))

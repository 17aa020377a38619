"""Training hyperparameters (defaults = the paper's, PAPER.md App. B), LoRA targets per architecture, the
curriculum grammar and precision choice. Plain data, no torch at import time."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from aligninstruct_cli.errors import AitError

# --- paper defaults (PAPER.md, "Training (paper's App. B)") ---------------------------------------------
LORA_R = 8
LORA_ALPHA = 32
LORA_DROPOUT = 0.1
EPOCHS = 5
WARMUP_RATIO = 0.03
MAX_LENGTH = 384
# --- not given by the paper: our choices, documented in docs/train.md -----------------------------------
LEARNING_RATE = 2e-4  # the paper tuned the rate per experiment by validation loss (use --lr a,b,c)
BATCH_SIZE = 8  # the paper: 8 per GPU for bloomz-3b/1b1, 4 for 7b1
GRAD_ACCUM = 1
WEIGHT_DECAY = 0.0
GRAD_CLIP = 1.0
ZERO_STAGE = 2
LOG_EVERY = 10

# LoRA target modules per `config.model_type`: the attention input projections (query, key, value), which
# is what the paper's BLOOM target `query_key_value` (a fused QKV projection) covers.
LORA_TARGETS: dict[str, list[str]] = {
    "bloom": ["query_key_value"],
    "gpt_neox": ["query_key_value"],
    "falcon": ["query_key_value"],
    "gpt2": ["c_attn"],
    "gpt_bigcode": ["c_attn"],
    "mpt": ["Wqkv"],
    "phi3": ["qkv_proj"],
    **{name: ["q_proj", "k_proj", "v_proj"] for name in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
        "gemma3_text", "olmo", "olmo2", "opt", "gptj", "phi", "stablelm", "starcoder2", "cohere", "granite",
        "xglm", "codegen", "smollm3")},
}

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
COMPILE = ("auto", "on", "off")
TOO_LONG = ("error", "skip", "truncate")
OFFLOAD = ("none", "optimizer", "all")
LAUNCHERS = ("deepspeed", "none")

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def lora_targets_for(model_type: str, override: list[str] | None = None) -> list[str]:
    """The LoRA target modules for an architecture (`--lora-targets` wins)."""
    if override:
        return list(override)
    try:
        return list(LORA_TARGETS[model_type])
    except KeyError:
        raise AitError(f"no default LoRA targets for model type {model_type!r}",
                       hint="name them with --lora-targets, e.g. --lora-targets q_proj,v_proj") from None


def lora_config(targets: list[str], *, r: int = LORA_R, alpha: int = LORA_ALPHA, dropout: float = LORA_DROPOUT):
    """The peft LoraConfig ait trains with (defaults = the paper's)."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none",
                      task_type="CAUSAL_LM")


def parse_data_specs(specs: list[str]) -> dict[str, str]:
    """`--data NAME=PATH` (repeatable) → {name: path}, in the order given."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise AitError(f"--data {spec!r}: expected NAME=PATH, e.g. --data mt=mt.jsonl")
        if not _NAME.match(name):
            raise AitError(f"--data {spec!r}: the name may use letters, digits, '_', '-' and '.' only")
        if name in out:
            raise AitError(f"--data: the name {name!r} is given twice")
        out[name] = path
    if not out:
        raise AitError("give at least one --data NAME=PATH")
    return out


def parse_curriculum(text: str | None, names: list[str]) -> list[list[str]]:
    """`mt+align,mt` → [["mt", "align"], ["mt"]]: stages separated by commas, data names joined by `+`.

    Without a curriculum, one stage over every --data entry."""
    if text is None or not text.strip():
        return [list(names)]
    stages = []
    for k, part in enumerate(text.split(","), 1):
        members = [m.strip() for m in part.split("+")]
        if not all(members):
            raise AitError(f"--curriculum {text!r}: stage {k} has an empty name")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise AitError(f"--curriculum {text!r}: unknown data name(s) {', '.join(map(repr, unknown))}",
                           hint=f"names come from --data NAME=PATH; given: {', '.join(names)}")
        if len(set(members)) != len(members):
            raise AitError(f"--curriculum {text!r}: stage {k} names a data set twice")
        stages.append(members)
    return stages


def stage_dir_name(index: int, members: list[str]) -> str:
    """`stage-1-mt+align`: 1-based stage number and its data names."""
    return f"stage-{index + 1}-{'+'.join(members)}"


def parse_lrs(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AitError(f"--lr {text!r}: expected a number or comma-separated numbers") from None
    if not values or any(v <= 0 for v in values):
        raise AitError(f"--lr {text!r}: learning rates must be positive")
    if len(set(values)) != len(values):
        raise AitError(f"--lr {text!r}: a value is given twice")
    return values


def default_zero(zero: int | None, launcher: str, num_gpus: int | None = None, num_nodes: int | None = None,
                 hostfile: str | None = None, offload: str = "none") -> int:
    """`--zero` as given; else what `--offload` needs (3 for all, 2 for optimizer); else 0 for a single rank
    (`--launcher none`, or `--num-gpus 1` on one node: nothing to partition, and ZeRO's per-parameter hooks
    cost time on small models); else 2."""
    if zero is not None:
        return zero
    if offload != "none":
        return 3 if offload == "all" else ZERO_STAGE
    single = launcher == "none" or (num_gpus == 1 and (num_nodes or 1) == 1 and not hostfile)
    return 0 if single else ZERO_STAGE


def lr_tag(lr: float) -> str:
    return f"lr-{lr:g}"


@dataclass
class TrainConfig:
    """Everything that decides what a run computes. `fingerprint()` of it guards `--resume`."""

    model: str
    data: dict[str, str]
    curriculum: list[list[str]]
    output: str
    val: str | None = None
    lrs: list[float] = field(default_factory=lambda: [LEARNING_RATE])
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    grad_accum: int = GRAD_ACCUM
    max_length: int = MAX_LENGTH
    seed: int = 0
    full: bool = False
    lora_r: int = LORA_R
    lora_alpha: int = LORA_ALPHA
    lora_dropout: float = LORA_DROPOUT
    lora_targets: list[str] | None = None
    warmup_ratio: float = WARMUP_RATIO
    weight_decay: float = WEIGHT_DECAY
    grad_clip: float = GRAD_CLIP
    precision: str = "auto"
    too_long: str = "error"
    gradient_checkpointing: bool = False
    compile: str = "auto"
    zero: int = ZERO_STAGE
    offload: str = "none"
    save_every: int = 0
    log_every: int = LOG_EVERY
    log_data_ids: bool = False

    def check(self) -> None:
        def positive(name: str, value: float, minimum: float = 1) -> None:
            if value < minimum:
                raise AitError(f"--{name.replace('_', '-')} must be at least {minimum:g}, not {value:g}")

        for name in ("epochs", "batch_size", "grad_accum", "lora_r"):
            positive(name, getattr(self, name))
        positive("max_length", self.max_length, 8)
        positive("lora_alpha", self.lora_alpha, 0)
        positive("save_every", self.save_every, 0)
        positive("log_every", self.log_every, 1)
        if not 0 <= self.lora_dropout < 1:
            raise AitError(f"--lora-dropout must be in [0, 1), not {self.lora_dropout:g}")
        if not 0 <= self.warmup_ratio < 1:
            raise AitError(f"--warmup-ratio must be in [0, 1), not {self.warmup_ratio:g}")
        for name, value, allowed in (("precision", self.precision, PRECISIONS),
                                     ("too-long", self.too_long, TOO_LONG), ("offload", self.offload, OFFLOAD),
                                     ("compile", self.compile, COMPILE)):
            if value not in allowed:
                raise AitError(f"--{name} must be one of {', '.join(allowed)}, not {value!r}")
        if self.zero not in (0, 1, 2, 3):
            raise AitError(f"--zero must be 0, 1, 2 or 3, not {self.zero}")
        if self.offload == "all" and self.zero != 3:
            raise AitError("--offload all (parameters too) needs --zero 3")
        if self.offload != "none" and self.zero == 0:
            raise AitError("--offload needs ZeRO (--zero 1, 2 or 3)")
        if self.compile == "on" and self.zero == 3:
            raise AitError("--compile on does not work with --zero 3 (its hooks gather each block's weights)",
                           hint="use --zero 2, or --compile off")
        if len(self.lrs) > 1 and not self.val:
            raise AitError("several --lr values need --val to choose between them")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_precision(precision: str) -> str:
    """`auto` → bf16 on a GPU that supports it, else fp16 on GPU, fp32 on CPU."""
    if precision != "auto":
        return precision
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def resolve_compile(setting: str, device_type: str, zero: int, gradient_checkpointing: bool = False) -> bool:
    """Never under ZeRO-3: its hooks gather each block's weights as the block runs, which a compiled block
    would trace (`--compile on --zero 3` is refused up front; a --deepspeed-config may still ask for stage
    3). `auto` → on a GPU unless gradient checkpointing re-runs the blocks; never on a CPU (inductor needs
    a C++ compiler there, and gains little)."""
    if setting == "off" or zero == 3:
        return False
    return setting == "on" or (device_type == "cuda" and not gradient_checkpointing)


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]

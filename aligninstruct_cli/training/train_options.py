"""`ait train`'s options (`TrainOptions`: defaults = the paper's, PAPER.md App. B, where it gives them),
LoRA targets per architecture, the curriculum grammar and the ZeRO / compile choices. Plain data, no
torch at import time."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

from aligninstruct_cli.languages import languages_field
from aligninstruct_cli.models import PRECISIONS, license_option, precision_field, torch_dtype
from aligninstruct_cli.options import OptionError, check_options, option, option_ref
from aligninstruct_cli.records import DATA_FORMATS

# --- paper defaults (PAPER.md, "Training (paper's App. B)") ---------------------------------------------
LORA_R = 8
LORA_ALPHA = 32
LORA_DROPOUT = 0.1
EPOCHS = 5
WARMUP_RATIO = 0.03
MAX_LENGTH = 384
# "Maximum input and output length were set as 384": one budget for both (ait's reading, the default) or
# one for each side
LENGTH_BUDGETS = ("together", "each")
# --- not given by the paper: our choices, documented in docs/train.md -----------------------------------
LEARNING_RATE = 2e-4  # the paper tuned the rate per experiment by validation loss (use --lr a,b,c)
BATCH_SIZE = 8  # the paper: 8 per GPU for bloomz-3b/1b1, 4 for 7b1 (without --global-batch, or on a CPU)
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
    **{arch: ["q_proj", "k_proj", "v_proj"] for arch in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
        "gemma3_text", "olmo", "olmo2", "opt", "gptj", "phi", "stablelm", "starcoder2", "cohere", "granite",
        "xglm", "smollm3")},
    "codegen": ["qkv_proj"],
}

COMPILE = ("auto", "on", "off")
TOO_LONG = ("truncate-input", "error", "skip", "truncate")
OFFLOAD = ("none", "optimizer", "all")
REPORT_TO = ("none", "tensorboard", "wandb")
LR_SCHEDULERS = ("linear", "cosine", "constant")
QUANTIZE = ("none", "4bit", "8bit")
# PEFT's shortcut for every linear layer but the output head, and the spellings other tools use for it
# (LLaMA-Factory's `lora_target: all`)
ALL_LINEAR = "all-linear"
ALL_LINEAR_SPELLINGS = ("all-linear", "all_linear", "all")

PANEL_MODEL = "Model and LoRA"
PANEL_LAUNCH = "Launch (DeepSpeed)"
PANEL_RUN = "Checkpoints and logging"

_DATA_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# ------------------------------------------------------------------------------------------ parsing
def parse_data(value: Any) -> dict[str, str]:
    """`--data NAME=PATH` (repeatable: a list) or a config file's mapping {name: path} → {name: path}, in
    the order given."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        pairs = [(str(key), "" if path is None else str(path), f"{key}: {path}") for key, path in value.items()]
    elif isinstance(value, (list, tuple)):
        pairs = []
        for spec in map(str, value):
            data_name, sep, path = spec.partition("=")
            if not sep:
                raise OptionError(f"{option_ref('data')} {spec!r}: expected NAME=PATH, e.g. mt=mt.jsonl")
            pairs.append((data_name, path, spec))
    else:
        raise OptionError(f"{option_ref('data')} must be NAME=PATH entries or a mapping of names to paths")
    out: dict[str, str] = {}
    for data_name, path, spec in pairs:
        data_name, path = data_name.strip(), path.strip()
        if not data_name or not path:
            raise OptionError(f"{option_ref('data')} {spec!r}: expected NAME=PATH, e.g. mt=mt.jsonl")
        if not _DATA_NAME.match(data_name):
            raise OptionError(f"{option_ref('data')} {spec!r}: the name may use letters, digits, '_', '-' and '.' only")
        if data_name in out:
            raise OptionError(f"{option_ref('data')}: the name {data_name!r} is given twice")
        out[data_name] = path
    if not out:
        raise OptionError(f"give at least one {option_ref('data')} NAME=PATH")
    return out


def parse_curriculum(value: Any) -> list[list[str]] | None:
    """`mt+align,mt` (or a list: `[mt+align, mt]`, `[[mt, align], [mt]]`) → [["mt", "align"], ["mt"]]:
    stages separated by commas, data names inside a stage joined by `+`. Empty: None (the default)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        parts: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise OptionError(f"{option_ref('curriculum')} must be text such as mt+align,mt or a list of stages")
    stages = []
    for k, part in enumerate(parts, 1):
        members = [str(m).strip() for m in (part.split("+") if isinstance(part, str) else part)]
        if not members or not all(members):
            raise OptionError(f"{option_ref('curriculum')} {value!r}: stage {k} has an empty name")
        if len(set(members)) != len(members):
            raise OptionError(f"{option_ref('curriculum')} {value!r}: stage {k} names a data set twice")
        stages.append(members)
    return stages


def curriculum_text(stages: list[list[str]]) -> str:
    return ",".join("+".join(stage) for stage in stages)


def parse_lrs(value: Any) -> list[float]:
    """`1e-4,3e-4`, a number, or a list of numbers → positive learning rates, none twice."""
    if isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    else:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
    malformed = OptionError(f"{option_ref('lr')} {value!r}: expected a number or comma-separated numbers")
    values = []
    for item in items:
        if isinstance(item, bool):
            raise malformed
        try:
            values.append(float(item))
        except (TypeError, ValueError):
            raise malformed from None
    if not values:
        raise malformed
    if not all(v > 0 for v in values):
        raise OptionError(f"{option_ref('lr')} {value!r}: learning rates must be positive")
    if len(set(values)) != len(values):
        raise OptionError(f"{option_ref('lr')} {value!r}: a value is given twice")
    return values


def parse_epochs(value: Any) -> list[int]:
    """`3,5`, a whole number, or a list of them → epochs per stage (one value: every stage)."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    malformed = OptionError(f"{option_ref('epochs')} {value!r}: expected a whole number or one per stage, e.g. 3,5")
    epochs = []
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int):
            raise malformed
        if item < 1:
            raise OptionError(f"{option_ref('epochs')} must be at least 1, not {item}")
        epochs.append(item)
    if not epochs:
        raise malformed
    return epochs


def parse_names(value: Any) -> list[str] | None:
    """`a,b` or a list → ["a", "b"]; `all-linear` (PEFT's shortcut; also `all`, `all_linear`) →
    ["all-linear"]; nothing given → None."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise OptionError(f"{option_ref('lora_targets')} must be comma-separated names or a list")
    names = [str(item).strip() for item in items if str(item).strip()]
    if any(name.lower() in ALL_LINEAR_SPELLINGS for name in names):
        if len(names) > 1:
            raise OptionError(f"{option_ref('lora_targets')} {value!r}: {ALL_LINEAR} already names every linear "
                              "layer; give it alone")
        return [ALL_LINEAR]
    return names or None


# ------------------------------------------------------------------------------------------ choices
def check_report_to(report_to: str) -> None:
    """`report_to` tensorboard or wandb needs that package (torch's writer imports tensorboard): say so before
    launch. Each is also the name of its package and of ait's extra."""
    if report_to != "none" and importlib.util.find_spec(report_to) is None:
        raise OptionError(f"{option_ref('report_to')} {report_to} needs the {report_to} package, which is not installed",
                          hint=f"pip install 'aligninstruct-cli[{report_to}]' (or: pip install {report_to})")


def default_zero(zero: int | None, launcher: str, num_gpus: int | None = None, num_nodes: int | None = None,
                 hostfile: str | None = None, offload: str = "none") -> int:
    """`zero` as given; else what `offload` needs (3 for all, 2 for optimizer); else 0 for a single rank
    (launcher none, or one GPU on one node: nothing to partition, and ZeRO's per-parameter hooks cost
    time on small models); else 2."""
    if zero is not None:
        return zero
    if offload != "none":
        return 3 if offload == "all" else ZERO_STAGE
    single = launcher == "none" or (num_gpus == 1 and (num_nodes or 1) == 1 and not hostfile)
    return 0 if single else ZERO_STAGE


def resolve_compile(setting: str, device_type: str, zero: int, gradient_checkpointing: bool = False) -> bool:
    """Never under ZeRO-3: its hooks gather each block's weights as the block runs, which a compiled block
    would trace (compile on with zero 3 is refused up front; a DeepSpeed config file may still ask for
    stage 3). `auto` → on a GPU unless gradient checkpointing re-runs the blocks; never on a CPU (inductor
    needs a C++ compiler there, and gains little)."""
    if setting == "off" or zero == 3:
        return False
    return setting == "on" or (device_type == "cuda" and not gradient_checkpointing)


def lora_targets_for(model_type: str, override: list[str] | None = None) -> list[str]:
    """The LoRA target modules for an architecture (`override`, the lora_targets option, wins)."""
    if override:
        return list(override)
    try:
        return list(LORA_TARGETS[model_type])
    except KeyError:
        raise OptionError(f"no default LoRA targets for model type {model_type!r}: name them with "
                          f"{option_ref('lora_targets')}", hint="e.g. q_proj,v_proj") from None


def lora_config(targets: list[str], *, r: int = LORA_R, alpha: int = LORA_ALPHA, dropout: float = LORA_DROPOUT):
    """The peft LoraConfig ait trains with (defaults = the paper's). [all-linear] is PEFT's own shortcut
    string (every Linear / Conv1D layer but the output head)."""
    from peft import LoraConfig  # lazy: peft

    modules: Any = ALL_LINEAR if list(targets) == [ALL_LINEAR] else list(targets)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, bias="none",
                      task_type="CAUSAL_LM")


def check_quantize(quantize: str, *, cuda: bool) -> None:
    """`quantize` 4bit/8bit loads the base through bitsandbytes, which needs a CUDA GPU and the package:
    refused here, before anything is tokenized or loaded."""
    if quantize == "none":
        return
    if not cuda:
        raise OptionError(f"{option_ref('quantize')} {quantize} loads the base model's weights through bitsandbytes, "
                          "whose quantized layers run on a CUDA GPU only, and this machine has none: train on a GPU "
                          f"machine, or leave {option_ref('quantize')} out (a CPU trains the base in full precision)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise OptionError(f"{option_ref('quantize')} {quantize} needs the bitsandbytes package, which is not installed",
                          hint="pip install 'aligninstruct-cli[qlora]' (or: pip install bitsandbytes)")


def quantization_kwargs(quantize: str, compute_precision: str) -> dict[str, Any] | None:
    """The BitsAndBytesConfig arguments of `quantize` (None for none): QLoRA's 4-bit NF4 with double
    quantization and `compute_precision` (bf16/fp16/fp32) as the compute type, or LLM.int8()'s 8-bit."""
    if quantize == "none":
        return None
    if quantize == "8bit":
        return {"load_in_8bit": True}
    return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": torch_dtype(compute_precision)}


def quantization_config(quantize: str, compute_precision: str):
    """transformers' BitsAndBytesConfig of `quantization_kwargs` (it needs bitsandbytes installed); None for none."""
    kwargs = quantization_kwargs(quantize, compute_precision)
    if kwargs is None:
        return None
    from transformers import BitsAndBytesConfig  # lazy: transformers

    return BitsAndBytesConfig(**kwargs)


# ------------------------------------------------------------------------------------------ the options
@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Every option of `ait train` (its per-invocation actions, dry run and resume, are arguments of
    `launch.run`). Resolved here when not given: `curriculum`, `zero`, `epochs` (one value per stage), and
    without `global_batch` `batch_size` and `grad_accum` (with it, `batch.plan_batch` chooses them at launch)."""

    model: str = option(flags=("--model", "-m"), help="Base causal LM: a local directory or a Hugging Face hub id.",
                        details="A local directory must exist and hold config.json.")
    languages: Optional[str] = languages_field()
    data: dict[str, str] = option(
        parse=parse_data, cli_type=Optional[list[str]], metavar="NAME=PATH",
        help="NAME=PATH of a JSONL file of instruction records (from `ait build`/`ait mix`, or alpaca, messages or "
        "ShareGPT records: see --data-format); repeatable. NAME is used in --curriculum.",
        details="In a config file: a mapping of names to paths (`data: {mt: mt.jsonl}`). Names may use letters, "
        "digits, `_`, `-` and `.`.")
    data_format: Literal[DATA_FORMATS] = option(  # type: ignore[valid-type]
        "auto", help="The records of --data and --val files: ait (from `ait build`/`ait mix`), alpaca "
        "(instruction/input/output), messages (role/content turns), sharegpt (conversations of from/value "
        "turns), or auto: each file by its first record.",
        details="Another tool's records become instruction records of objective `general` (see formats.md): "
        "alpaca's input is `instruction`, a newline and `input` (when it has one), after an optional `system`; a "
        "conversation must be one user turn and one assistant turn, after an optional system turn (a system "
        "text goes before the user's, a blank line between); multi-turn records are an error naming FILE:LINE. "
        "The id is the record's own `id`, else its position in the file. A file may also hold one JSON array "
        "of records (alpaca_data.json). Such data takes part in --curriculum stages like any other "
        "(e.g. `mt+general,mt`).")
    output: str = option(flags=("--output", "-o"), help="Run directory: stage-K-*/, final/, run.json, "
                         "metrics.jsonl, checkpoints/.", details="It must be new unless --resume (see Output below).")
    curriculum: Optional[list[list[str]]] = option(
        None, parse=parse_curriculum, cli_type=Optional[str], default_doc="one stage of all --data",
        help="Stages separated by ',', data names inside a stage joined by '+', e.g. mt+align,mt. Stage k starts "
        "from stage k-1's adapter.",
        details="`mt+align,mt` = stage 1 on the union of mt and align (shuffled together), stage 2 on mt, starting "
        "from stage 1's adapter. An unknown name is an error before anything starts. In a config file also a "
        "list: `[mt+align, mt]` or `[[mt, align], [mt]]`.")
    val: Optional[str] = option(None, help="Instruction records for the validation loss (after every epoch; "
                                "chooses among several --lr).", details="Needed with several --lr.")
    lr: list[float] = option(
        default_factory=lambda: [LEARNING_RATE], parse=parse_lrs, cli_type=Optional[str],
        help="Peak learning rate; several comma-separated values train one run each and keep the lowest final "
        "validation loss.",
        details="Several values (`--lr 1e-4,3e-4`; a list in a config file) train the whole curriculum once per "
        "value (in `lr-<value>/`) and keep the one with the lowest validation loss at the end of the last stage, "
        "as the paper tuned it. The paper gives no value: 2e-4 is ours.")
    epochs: list[int] = option(
        default_factory=lambda: [EPOCHS], parse=parse_epochs, cli_type=Optional[str], default_doc="5",
        help="Epochs per curriculum stage: one number for every stage (paper: 5), or one per stage, e.g. 3,5.",
        details="The paper trains 5 epochs and does not say whether per curriculum stage; ait reads it as 5 for "
        "each stage. In a config file also a list (`[3, 5]`). Each stage's schedule and warm-up count its own "
        "epochs. A count that does not match the number of stages is an error.")
    global_batch: Optional[int] = option(
        None, min=1, help="Records per optimizer step across all ranks; ait chooses the micro-batch per device and "
        "derives the accumulation.",
        details="Accumulation = global batch / (micro-batch × ranks), which must be a whole number (an error before "
        "launch names the numbers). The paper's: 512 for bloomz-7b1, 1,024 for 3b and 1b1 (BLOOMZ+24), 128 "
        "(BLOOMZ+3). Ranks: 1 with --launcher none, --num-gpus × --num-nodes, a hostfile's slots, or else the "
        "local GPUs (see Batch size below).")
    batch_size: Optional[int] = option(
        None, min=1, default_doc="8; with --global-batch the largest that fits",
        help="Records per device per micro-step (paper: 8 for bloomz-3b/1b1, 4 for 7b1).",
        details="A device is a rank: a GPU, or a CPU process. Default 8 (ait's); with --global-batch, the largest "
        "that divides the global batch per rank and fits a GPU's memory by ait's estimate (see Batch size below), "
        "8 on a machine without a GPU.")
    grad_accum: Optional[int] = option(
        None, min=1, default_doc="1; derived with --global-batch", help="Micro-steps per optimizer step.",
        details="Global batch = batch size × ranks × accumulation. With --global-batch it is derived from it, and "
        "giving both is an error.")
    max_length: int = option(MAX_LENGTH, min=8, help="Token budget of an example (paper: 384), as --length-budget "
                             "reads it: input + output + EOS together (default), or each side.",
                             details="The output counts with its separator and EOS.")
    length_budget: Literal[LENGTH_BUDGETS] = option(  # type: ignore[valid-type]
        "together", help="How --max-length reads the paper's \"maximum input and output length 384\": together "
        "(ait's reading, the default: input + output + EOS in one budget) or each (the input in one, the output "
        "with EOS in another: examples up to twice --max-length).",
        details="The paper's sentence fits both readings. --too-long applies per side with each: truncate-input "
        "cuts an input over the budget (keeping its end) and drops a record whose output is over it; truncate "
        "cuts either side's end; skip and error as with together.")
    too_long: Literal[TOO_LONG] = option(  # type: ignore[valid-type]
        "truncate-input", help="A record over --max-length: truncate-input (cut the input, keep the output whole; "
        "drop the record if the output alone does not fit), error (stop before launch), skip (drop) or truncate "
        "(cut the end).",
        details="The paper's limit is \"maximum input and output length 384\"; how it cut is not said. "
        "truncate-input (ours) keeps the output, which the loss is on, whole and cuts the input's beginning (after "
        "a leading special token such as BOS): every template puts its general instruction first and what the "
        "output answers last (the target-language cue, the assertion, the sentence to complete). It drops a record "
        "whose separator + output + EOS leave no room for an input token. error names file, line, id and length; "
        "truncate cuts the output side first (as a right-truncating tokenizer would) and drops the record if no "
        "output token is left. Cuts and drops are reported on stderr and written to `run.json` (`data_stats`: "
        "truncated, skipped_too_long).")
    seed: int = option(0, help="Seed of data order, LoRA initialisation and dropout.",
                       details="The data order is seeded per stage and epoch.")
    warmup_ratio: float = option(WARMUP_RATIO, min=0.0, max=1.0, max_open=True,
                                 help="Share of steps for linear warm-up (paper: 0.03); then --lr-scheduler.",
                                 details="Of each stage's optimizer steps; every --lr-scheduler keeps it.")
    lr_scheduler: Literal[LR_SCHEDULERS] = option(  # type: ignore[valid-type]
        "linear", help="After the warm-up: linear (decay to 0, the HF Trainer's default), cosine (half a cosine "
        "down to 0) or constant (the peak rate).",
        details="The HF Trainer's `linear`, `cosine` and `constant_with_warmup` schedules, per curriculum stage.")
    weight_decay: float = option(WEIGHT_DECAY, min=0.0, help="AdamW weight decay.",
                                 details="Betas 0.9/0.999, eps 1e-8.")
    grad_clip: float = option(GRAD_CLIP, min=0.0, help="Gradient norm clipping (0: none).")
    precision: Literal[PRECISIONS] = precision_field(  # type: ignore[valid-type]
        "auto", panel=None, aliases=(), help="auto (bf16 where supported, else fp16 on GPU, fp32 on CPU), bf16, fp16 "
        "or fp32. Weights are loaded in that type; DeepSpeed keeps fp32 master weights of what trains.")
    full: bool = option(False, panel=PANEL_MODEL, help="Train every weight instead of LoRA (e.g. to build a base "
                        "model); stages save full model directories.",
                        details="Each stage writes a full model directory (`save_pretrained`) and the next stage "
                        "loads it: for building base models (the demo's \"seen\" toy language).")
    lora_r: int = option(LORA_R, min=1, panel=PANEL_MODEL, help="LoRA rank (paper: 8).")
    lora_alpha: int = option(LORA_ALPHA, min=0, panel=PANEL_MODEL, help="LoRA alpha (paper: 32).")
    lora_dropout: float = option(LORA_DROPOUT, min=0.0, max=1.0, max_open=True, panel=PANEL_MODEL,
                                 help="LoRA dropout (paper: 0.1).")
    lora_targets: Optional[list[str]] = option(
        None, parse=parse_names, cli_type=Optional[str], panel=PANEL_MODEL, default_doc="per architecture",
        help="Comma-separated module names for LoRA, or all-linear (every linear layer but the head); default per "
        "architecture (BLOOM: query_key_value).",
        details="`all-linear` is PEFT's shortcut (`all` and `all_linear` are read as it too), for any "
        "architecture. The defaults are the attention input projections: BLOOM, GPT-NeoX, Falcon `query_key_value` "
        "(the paper's), GPT-2 / BigCode `c_attn`, MPT `Wqkv`, Phi-3 `qkv_proj`, Llama / Mistral / Qwen / Gemma / "
        "OPT / GPT-J / Phi / OLMo and similar `q_proj,k_proj,v_proj`. Another architecture needs this option.")
    chat_template: bool = option(
        False, panel=PANEL_MODEL, help="Wrap every input in the tokenizer's chat template (a user turn) for "
        "chat-tuned models; translate with --chat-template too.",
        details="The input becomes the user's message and the output the assistant's answer (after the template's "
        "generation prompt), + EOS. `ait translate --chat-template` renders its prompts the same way, so an "
        "adapter trained with it must be used with it. Base models (BLOOM, Llama, Qwen2 base) need no template.")
    quantize: Literal[QUANTIZE] = option(  # type: ignore[valid-type]
        "none", panel=PANEL_MODEL, help="Load the base model in 4bit (QLoRA: NF4, double quantization) or 8bit "
        "through bitsandbytes and train LoRA on it; needs a CUDA GPU.",
        details="The base is prepared for k-bit training (PEFT's `prepare_model_for_kbit_training`: layer norms "
        "and the head in fp32, input gradients on); LoRA weights train in fp32, the quantized layers compute "
        "in --precision, and DeepSpeed's own bf16/fp16 casting is off. Not with --full or --zero 3. On a "
        "machine without a CUDA GPU it stops before anything is loaded. "
        "`pip install 'aligninstruct-cli[qlora]'`.")
    gradient_checkpointing: bool = option(False, panel=PANEL_MODEL, help="Recompute activations in the backward "
                                          "pass (less memory, ~30% slower).")
    compile: Literal[COMPILE] = option(  # type: ignore[valid-type]
        "auto", panel=PANEL_MODEL,
        help="torch.compile each decoder block: auto (on a GPU, unless --zero 3 or --gradient-checkpointing; falls "
        "back to eager if compiling fails), on, or off. Costs up to a minute at the start of a stage; made LoRA "
        "steps 1.5-1.8x faster on an H100.",
        details="Regional compilation with dynamic shapes: one graph for all layers and batch lengths. on: also "
        "on a CPU (needs a C++ compiler), and errors stop the run. See Throughput below.")
    launcher: Literal["deepspeed", "none"] = option(
        "deepspeed", panel=PANEL_LAUNCH, help="deepspeed: start workers with the deepspeed launcher; none: train "
        "in this process on one device.", details="none uses GPU 0 or the CPU, with the same DeepSpeed engine.")
    num_gpus: Optional[int] = option(None, min=1, panel=PANEL_LAUNCH, default_doc="all GPUs",
                                     help="Ranks per node (GPUs; CPU processes on a CPU machine).",
                                     details="The launcher's --num_gpus; on a CPU-only machine, gloo processes.")
    num_nodes: Optional[int] = option(None, min=1, panel=PANEL_LAUNCH, default_doc="all in hostfile",
                                      help="Nodes to use from the hostfile.", details="The launcher's --num_nodes.")
    hostfile: Optional[str] = option(None, panel=PANEL_LAUNCH, help="DeepSpeed/MPI hostfile ('host slots=N' lines) "
                                     "for multi-node runs.", details="The launcher reaches the nodes by ssh (pdsh).")
    master_port: Optional[int] = option(None, min=1, max=65535, panel=PANEL_LAUNCH,
                                        default_doc="a free port; 29500 across nodes",
                                        help="Port of the rank-0 rendezvous.",
                                        details="On one node ait takes a port nothing listens on, so two runs "
                                                "on a machine do not collide; across nodes DeepSpeed's 29500.")
    zero: Optional[int] = option(
        None, min=0, max=3, panel=PANEL_LAUNCH, default_doc="2, or 0 for a single rank",
        help="ZeRO stage 0-3 (3 partitions the weights too).",
        details="0 none, 1 optimizer state, 2 + gradients, 3 + weights partitioned across ranks. With a single "
        "rank (--launcher none, or --num-gpus 1 without more nodes) there is nothing to partition, so ZeRO is off "
        "unless asked for (e.g. --zero 3 --offload all to fit a large model on one GPU); on a small model ZeRO-2's "
        "per-parameter hooks halved the throughput here. With --offload the default is 2, or 3 for all.")
    offload: Literal[OFFLOAD] = option(  # type: ignore[valid-type]
        "none", panel=PANEL_LAUNCH, help="none, optimizer (optimizer state in CPU memory) or all (also weights; "
        "needs --zero 3).", details="An offloaded optimizer step runs DeepSpeed's CPU Adam (compiled on first use).")
    deepspeed_config: Optional[str] = option(
        None, panel=PANEL_LAUNCH, metavar="FILE", default_doc="generated",
        help="A DeepSpeed JSON config used instead of the generated one (\"auto\" values are filled from the "
        "options).", details="A missing micro batch size or accumulation is taken from --batch-size / "
        "--grad-accum; with --global-batch from its split, and batch keys the file sets must agree with it. An "
        "\"optimizer\" section replaces ait's AdamW; its lr is each --lr's (a value in the file is dropped); a "
        "\"scheduler\" section is ignored: "
        "ait's warm-up + linear decay schedule always applies.")
    save_every: int = option(0, min=0, panel=PANEL_RUN, help="Checkpoint every N optimizer steps for --resume (0: "
                             "only finished stages).")
    save_adapter_every: int = option(
        0, min=0, panel=PANEL_RUN, help="Also save the LoRA adapter every N optimizer steps as a PEFT adapter "
        "directory, OUTPUT/adapters/[lr-X/]stage-K-*/checkpoint-N/ (0: none).",
        details="Each is a standard adapter directory (adapter_config.json, adapter_model.safetensors, tokenizer) "
        "that `ait translate --adapter` and PEFT's `PeftModel.from_pretrained` load; N counts the stage's own "
        "optimizer steps. Not with --full.")
    cache_dir: Optional[str] = option(None, panel=PANEL_RUN, metavar="DIR",
                                      default_doc="$XDG_CACHE_HOME/ait/tokenized or ~/.cache/ait/tokenized",
                                      help="Tokenized-data cache.",
                                      details="Keyed by the content of each file, the tokenizer, --max-length and "
                                      "--too-long.")
    license: Optional[str] = option(None, panel=PANEL_RUN, default_doc="the base model's", parse=license_option,
                                    help="The license the run's model cards state (a hub license id).",
                                    details="Default: the `license:` of the base model's card when it is at hand "
                                            "(a local directory or the hub cache); see docs/export.md.")
    log_every: int = option(LOG_EVERY, min=1, panel=PANEL_RUN, help="Write a metrics.jsonl line every N steps.")
    log_data_ids: bool = option(False, panel=PANEL_RUN, help="Write the record ids of every step to data_ids.jsonl "
                                "(audits order and resume).")
    report_to: Literal[REPORT_TO] = option(  # type: ignore[valid-type]
        "none", panel=PANEL_RUN, help="none; tensorboard: also write TensorBoard event files to OUTPUT/tensorboard/; "
        "wandb: also log to Weights & Biases (OUTPUT/wandb/; WANDB_MODE=offline works without network).",
        details="One TensorBoard run per curriculum stage (and learning rate): `train/loss`, `train/learning_rate`, "
        "`train/tokens_per_s` every --log-every steps and `eval/loss` after each epoch, by the stage's optimizer "
        "step; a resumed stage drops the events past its checkpoint. Point TensorBoard's logdir at OUTPUT to watch. "
        "`pip install 'aligninstruct-cli[tensorboard]'`. wandb: the same figures, one W&B run per stage (and "
        "learning rate) named after it, grouped by the output folder's name, with the options as its config; "
        "project $WANDB_PROJECT (default `ait`), files in OUTPUT/wandb/; WANDB_MODE=offline writes them for "
        "`wandb sync` later. A resumed stage's W&B run logs its steps again. `pip install "
        "'aligninstruct-cli[wandb]'`.")

    @property
    def example_limit(self) -> int:
        """The longest example in tokens that --max-length and --length-budget allow."""
        return self.max_length * (2 if self.length_budget == "each" else 1)

    def __post_init__(self) -> None:
        check_options(self)
        if self.curriculum is None:
            object.__setattr__(self, "curriculum", [list(self.data)])
        unknown = [m for stage in self.curriculum for m in stage if m not in self.data]
        if unknown:
            raise OptionError(f"{option_ref('curriculum')} {curriculum_text(self.curriculum)!r}: unknown data name(s) "
                              f"{', '.join(map(repr, dict.fromkeys(unknown)))}",
                              hint=f"the names given with NAME=PATH: {', '.join(self.data)}")
        stages = len(self.curriculum)
        if len(self.epochs) == 1:
            object.__setattr__(self, "epochs", self.epochs * stages)
        elif len(self.epochs) != stages:
            raise OptionError(f"{option_ref('epochs')} {','.join(map(str, self.epochs))}: {len(self.epochs)} values "
                              f"for {stages} curriculum stage(s)",
                              hint="give one number for every stage, or one per stage")
        if self.global_batch is None:  # ait's defaults; with a global batch they are chosen at launch
            object.__setattr__(self, "batch_size", self.batch_size or BATCH_SIZE)
            object.__setattr__(self, "grad_accum", self.grad_accum or GRAD_ACCUM)
        elif self.grad_accum is not None:
            raise OptionError(f"{option_ref('grad_accum')} cannot be given with {option_ref('global_batch')}, which "
                              "derives it: global batch / (micro-batch × ranks)")
        object.__setattr__(self, "zero", default_zero(self.zero, self.launcher, self.num_gpus, self.num_nodes,
                                                      self.hostfile, self.offload))
        if self.offload == "all" and self.zero != 3:
            raise OptionError(f"{option_ref('offload')} all (parameters too) needs {option_ref('zero')} 3")
        if self.offload != "none" and self.zero == 0:
            raise OptionError(f"{option_ref('offload')} needs ZeRO ({option_ref('zero')} 1, 2 or 3)")
        if self.compile == "on" and self.zero == 3:
            raise OptionError(f"{option_ref('compile')} on does not work with {option_ref('zero')} 3 (its hooks gather each "
                              "block's weights)", hint="use ZeRO stage 2, or compile off")
        check_report_to(self.report_to)
        if self.quantize != "none" and (self.full or self.zero == 3):
            raise OptionError(f"{option_ref('quantize')} {self.quantize} trains LoRA on frozen quantized weights: not "
                              f"with {option_ref('full') if self.full else option_ref('zero') + ' 3'}")
        if self.save_adapter_every and self.full:
            raise OptionError(f"{option_ref('save_adapter_every')} saves LoRA adapters; with {option_ref('full')} "
                              f"use {option_ref('save_every')}")
        if len(self.lr) > 1 and not self.val:
            raise OptionError(f"several {option_ref('lr')} values need {option_ref('val')} to choose between them")
        if self.launcher == "none" and (self.num_gpus or self.num_nodes or self.hostfile):
            raise OptionError(f"{option_ref('num_gpus')}, {option_ref('num_nodes')} and {option_ref('hostfile')} need "
                              f"{option_ref('launcher')} deepspeed")


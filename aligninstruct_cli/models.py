"""The one owner of loading models: a base causal LM (local directory or hub id), its tokenizer and
configuration, a LoRA adapter (checked against its base, merged on request), the device and the
precision. Training (`training/loop.py`, `training/launch.py`), `ait translate` and `ait probe` all load
through here, so a transformers-version quirk or a clearer error is fixed once.

Precision has one vocabulary everywhere: `auto`, `bf16`, `fp16`, `fp32` (the old `--dtype` spellings
`bfloat16`, `float16`, `float32` are still accepted, with a deprecation note). `auto` = bf16 on a GPU
that supports it, fp16 on other GPUs, fp32 on a CPU.

Errors name the option as a field (`option_ref("model")`): the CLI shows `--model`, a config file its key."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from aligninstruct_cli import console, hub
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.options import OptionError, check_options, option, option_ref
from aligninstruct_cli.provenance import version_tuple

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MODEL_PANEL = "Model"
LEGACY_PRECISIONS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}  # the old --dtype values


# A hub license id (apache-2.0, cc-by-nc-4.0, bigscience-bloom-rail-1.0, other): it goes into a model card's YAML
# front matter, so nothing else may (a newline or a colon there would add or change card metadata).
LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")


def license_option(value: Any) -> str | None:
    """Parse a `license` option: a hub license id, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not LICENSE_ID.fullmatch(value):
        raise OptionError(f"{option_ref('license')} {value!r}: not a license id (letters, digits and . + _ -, "
                          "e.g. apache-2.0)")
    return value


def precision_option(value: str) -> str:
    """Parse a precision option: one of PRECISIONS, or an old spelling (with a deprecation note)."""
    if isinstance(value, str) and value in LEGACY_PRECISIONS:
        console.warn(f"precision {value!r} is the old spelling; use {LEGACY_PRECISIONS[value]!r}")
        return LEGACY_PRECISIONS[value]
    return value


def resolve_precision(precision: str, device_type: str | None = None) -> str:
    """`auto` → bf16 on a GPU that supports it, else fp16 on a GPU, fp32 on a CPU (`device_type` None: a
    GPU when one is visible)."""
    precision = precision_option(precision)
    if precision != "auto":
        return precision
    import torch  # lazy: torch

    cuda = torch.cuda.is_available() if device_type is None else device_type == "cuda"
    if cuda:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def torch_dtype(precision: str):
    import torch  # lazy: torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision_option(precision)]


def pick_device(device: str = "auto"):
    import torch  # lazy: torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise OptionError(f"{option_ref('device')} {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{option_ref('device')} cuda: no CUDA GPU is available")
    return dev


# ---------------------------------------------------------------------------------------------- options
def precision_field(default: str, *, help: str, panel: str | None = MODEL_PANEL,
                    aliases: tuple[str, ...] = ("--dtype",)) -> Any:
    """A `precision` option field: PRECISIONS, and the old spellings (`float32`, ...) with a note; `aliases`
    are old flags (translate and probe called it `--dtype`)."""
    old = " and the old flag " + ", ".join(aliases) if aliases else ""
    return option(default, parse=precision_option, cli_type=str,  # str: Typer lets the old spellings through
                  aliases=aliases, panel=panel, help=help,
                  details=f"The old spellings float32, bfloat16, float16{old} still work, with a deprecation note.")


@dataclass(kw_only=True)
class ModelOptions:
    """Which model to run, where and in which precision (`ait translate`, `ait probe`); loaded by
    `models.load_model`."""

    model: str = option(flags=("--model", "-m"), panel=MODEL_PANEL, help="Base model: a hub id or a local directory.")
    adapter: Optional[str] = option(None, metavar="DIR", panel=MODEL_PANEL,
                                    help="LoRA adapter directory (from `ait train`); its base model must be --model.")
    device: str = option("auto", panel=MODEL_PANEL, help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N.")
    precision: Literal[PRECISIONS] = precision_field(  # type: ignore[valid-type]
        "auto", help="Precision of the weights: auto (bf16 on GPUs that support it, fp16 on other GPUs, fp32 on "
                     "CPU), bf16, fp16 or fp32.")

    def __post_init__(self) -> None:
        check_options(self)


# ---------------------------------------------------------------------------------------------- where
def looks_like_path(model: str) -> bool:
    """A hub id is `name` or `org/name`; anything else (./x, /x, ~/x, a/b/c) is meant as a directory."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or (os.sep != "/" and os.sep in model)


def resolve_model(model: str) -> str:
    """A local model directory (must exist, with config.json; returned absolute) or a hub id (unchanged)."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise OptionError(f"{option_ref('model')} {model}: not a model directory (no config.json)")
        return str(path.resolve())
    if looks_like_path(model):
        raise OptionError(f"{option_ref('model')} {model}: no such directory",
                          hint="give a local model directory or a hub id such as bigscience/bloomz-560m")
    check_hub_model(model)
    return model


def check_hub_model(model: str) -> None:
    """A hub id must be in the local cache or downloadable now: otherwise one paragraph and exit 2 within a
    second or two, instead of the hub libraries' retries (see hub.py). A local directory passes."""
    if Path(model).expanduser().is_dir():
        return
    hub.require(model, what="model", files=("config.json",),
                fix=f"pass a local model directory as {option_ref('model')}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def load_model_config(model: str):
    """The model's transformers config (config.json), with a clear error for a model that is not there."""
    from transformers import AutoConfig  # lazy: transformers

    try:
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        where = "" if Path(model).is_dir() else "not a local directory, and as a hub id: "
        raise OptionError(f"{option_ref('model')} {model}: {where}cannot load its configuration ({_first_line(exc)})",
                          hint="a hub id needs network access (or a local copy in the HF cache)") from None


def load_tokenizer(model: str, *, padding_side: str | None = None):
    """The model's tokenizer; with `padding_side`, set up for batches (a missing pad token becomes EOS,
    as Llama-style tokenizers need: padded positions are masked anyway)."""
    from transformers import AutoTokenizer  # lazy: transformers

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise OptionError(f"{option_ref('model')} {model}: cannot load its tokenizer ({_first_line(exc)})") from None
    if getattr(tokenizer, "add_eos_token", False):
        # some Llama-style tokenizers append EOS to every encoding: a prompt must not end in one (ait appends
        # EOS to training outputs itself)
        tokenizer.add_eos_token = False
    if padding_side is not None:
        tokenizer.padding_side = padding_side
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_chat_template(tokenizer, model: str) -> None:
    """The `chat_template` option needs a tokenizer that has one (chat-tuned models' tokenizers do)."""
    if not getattr(tokenizer, "chat_template", None):
        raise OptionError(f"{option_ref('chat_template')}: the tokenizer of {model} has no chat template",
                          hint="it is for chat-tuned models (e.g. Qwen2-Instruct, Llama-3-Instruct); leave it off "
                               "for base models")


def chat_prompt(tokenizer, text: str) -> str:
    """`text` as the user's turn in the tokenizer's chat template, ending where the assistant's answer starts.
    A BOS the template writes is left out when the tokenizer adds one itself, so that encoding the result
    the usual way (with special tokens, as training and translation do) holds exactly one."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and rendered.startswith(bos) and _adds_bos(tokenizer):
        rendered = rendered[len(bos):]
    return rendered


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def check_lora_targets(model: str, targets: list[str]) -> None:
    """Every LoRA target (`lora_targets` option) names modules of `model`, as PEFT matches them (the name or
    its last dotted parts); checked on an empty copy on the meta device, so nothing is loaded and a typo
    stops before launch instead of inside every rank."""
    import torch  # lazy: torch
    from transformers import AutoModelForCausalLM  # lazy: transformers

    if targets == ["all-linear"]:  # PEFT's shortcut (training/train_options.ALL_LINEAR): any model has linear layers
        return
    config = load_model_config(model)
    try:
        with torch.device("meta"):
            lm = AutoModelForCausalLM.from_config(config)
    except Exception:  # an architecture that cannot be built empty: PEFT checks the names itself
        return
    names = [name for name, _ in lm.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear)})
        raise OptionError(f"{option_ref('lora_targets')} {','.join(missing)}: no such module in {model} "
                          f"({config.model_type})", hint=f"its linear layers: {', '.join(linear)}")


def load_causal_lm(model: str, precision: str, *, device=None, quantization_config=None):
    """`AutoModelForCausalLM.from_pretrained` in `precision` (resolved: bf16/fp16/fp32), straight onto
    `device` when it is a GPU and accelerate is installed; `quantization_config` (a BitsAndBytesConfig)
    quantizes it while loading, onto `device`."""
    import transformers  # lazy: transformers
    from transformers import AutoModelForCausalLM  # lazy: transformers

    # transformers renamed torch_dtype to dtype in 4.56; v5 drops the old name.
    dtype_key = "dtype" if version_tuple(transformers.__version__) >= (4, 56) else "torch_dtype"
    kwargs: dict[str, Any] = {dtype_key: torch_dtype(precision)}
    if device is not None and device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
        kwargs["device_map"] = {"": str(device)}  # load straight onto the GPU, not through CPU memory
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        if device is not None:
            kwargs["device_map"] = {"": str(device)}  # quantized weights are made on the device they live on
    try:
        return AutoModelForCausalLM.from_pretrained(model, **kwargs)
    except (OSError, ValueError) as exc:
        raise OptionError(f"{option_ref('model')} {model}: cannot load: {_first_line(exc)}",
                          hint="pass a local model directory or a hub id available offline") from None


def backbone_of(lm):
    """The decoder stack of a causal LM: the module whose forward gives the last hidden states, under the
    output head. transformers' `get_decoder()` where the class has one, else the child module holding the
    input embeddings: found by structure, never through `base_model_prefix`, which some classes name
    wrongly (Gemma 3's text model says `language_model` and holds `model`)."""
    embeddings = lm.get_input_embeddings()

    def holds_embeddings(module) -> bool:
        return module is not lm and any(m is embeddings for m in module.modules())

    get_decoder = getattr(lm, "get_decoder", None)
    if callable(get_decoder):
        try:
            decoder = get_decoder()
        except (AttributeError, NotImplementedError):  # a generic accessor that finds nothing
            decoder = None
        if decoder is not None and holds_embeddings(decoder):
            return decoder
    for child in lm.children():
        if holds_embeddings(child):
            return child
    raise AitError(f"cannot find the decoder of {type(lm).__name__}: no submodule holds its input embeddings")


# ---------------------------------------------------------------------------------------------- adapters
HF_CACHE_DIR = re.compile(r"models--([^/]+)--([^/]+)/snapshots/[^/]+/?$")


def _model_name(ref: str) -> tuple[str, str]:
    """(resolved form, short name) of a model id or path, so `org/name`, a local copy `/x/name` and a
    hub cache snapshot `.../models--org--name/snapshots/<hash>` compare equal."""
    ref = ref.rstrip("/")
    cached = HF_CACHE_DIR.search(ref)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}", cached.group(2)
    path = Path(ref).expanduser()
    resolved = str(path.resolve()) if path.exists() else ref
    return resolved, Path(ref).name


def same_base_model(a: str, b: str) -> bool:
    (res_a, name_a), (res_b, name_b) = _model_name(a), _model_name(b)
    return res_a == res_b or name_a == name_b


def adapter_base_model(adapter: str) -> str | None:
    """`base_model_name_or_path` of a PEFT adapter directory (None when the config leaves it empty)."""
    config = Path(adapter) / "adapter_config.json"
    if not Path(adapter).is_dir():
        raise OptionError(f"{option_ref('adapter')} {adapter}: no such directory")
    if not config.is_file():
        raise OptionError(f"{option_ref('adapter')} {adapter}: not a LoRA adapter (no adapter_config.json)",
                          hint="pass the directory `ait train` wrote the adapter to")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise AitError(f"{config}: unreadable adapter config: {exc}") from None
    if not isinstance(data, dict):
        raise AitError(f"{config}: unreadable adapter config: not a JSON object")
    return data.get("base_model_name_or_path") or None


# The configuration keys that decide a model's parameter shapes (whichever of them a model type uses).
SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "n_embed", "n_embd", "d_model", "num_hidden_layers",
              "n_layer", "num_layers", "num_attention_heads", "n_head", "num_key_value_heads", "multi_query",
              "intermediate_size", "n_inner", "ffn_dim", "head_dim", "tie_word_embeddings")
BASE_FINGERPRINT_FILE = "ait_base.json"  # written beside an adapter `ait train` saves
_SAMPLE_BYTES = 1 << 16


def architecture_fingerprint(config: Any) -> dict[str, Any]:
    """The shape-deciding fields of a transformers config (or its dict): two models with equal fingerprints
    take the same adapters, whatever their folders are called."""
    data = config if isinstance(config, dict) else config.to_dict()
    return {key: data[key] for key in SHAPE_KEYS if key in data}


def weights_sample(model_dir: str | os.PathLike[str]) -> str | None:
    """A cheap content hash of a local model's weight files (their sizes and a few 64 KB samples each): equal
    for copies, different for models of one architecture with other weights. None for a hub id."""
    folder = Path(model_dir).expanduser()
    files = sorted(f for pattern in ("*.safetensors", "*.bin") for f in folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        return None
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            for at in sorted({0, size // 4, size // 2, 3 * size // 4, max(0, size - _SAMPLE_BYTES)}):
                fh.seek(at)
                h.update(fh.read(_SAMPLE_BYTES))
    return h.hexdigest()


def base_fingerprint(model: str) -> dict[str, Any]:
    """What an adapter records of its base (`BASE_FINGERPRINT_FILE`): architecture and weights sample."""
    return {"architecture": architecture_fingerprint(load_model_config(model)), "weights": weights_sample(model)}


def write_base_fingerprint(adapter_dir: str | os.PathLike[str], base: str) -> None:
    """Beside an adapter: its base model's fingerprint, so the base is recognised later wherever it lies."""
    (Path(adapter_dir) / BASE_FINGERPRINT_FILE).write_text(json.dumps({"base": base, **base_fingerprint(base)},
                                                                      sort_keys=True) + "\n")


def _recorded_base(adapter: str, base: str | None) -> dict[str, Any] | None:
    """The adapter's base fingerprint: the one ait recorded, else that of its recorded base when that is a
    local folder still there; None when neither can be had."""
    recorded = Path(adapter) / BASE_FINGERPRINT_FILE
    if recorded.is_file():
        try:
            data = json.loads(recorded.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
                return data
        except (ValueError, OSError):
            pass
    if base and Path(base).expanduser().is_dir() and (Path(base).expanduser() / "config.json").is_file():
        try:
            return base_fingerprint(base)
        except AitError:
            return None
    return None


def check_adapter_base(adapter: str, model_id: str) -> None:
    """Refuse an adapter trained on another base model than `model_id`, judged by the bases' architecture
    (shape-deciding config fields) and, for local folders, a sample of their weights: not by their names,
    so a copy of the base elsewhere is accepted and another model in a same-named folder is not. When the
    adapter's base cannot be examined (a hub id not cached, a folder gone), names decide as a last resort
    and a different name only warns; `check_adapter_shapes` then still compares every LoRA matrix with the
    loaded model's layers."""
    base = adapter_base_model(adapter)
    recorded = _recorded_base(adapter, base)
    trained_on = repr(base) if base else "its base"
    if recorded is None:
        if base is not None and not same_base_model(base, model_id):
            console.warn(f"{option_ref('adapter')} {adapter} was trained on {base!r}, which ait cannot examine; "
                         f"using it with {option_ref('model')} {model_id!r} (the layer shapes are still checked)")
        return
    current = base_fingerprint(model_id)
    if recorded["architecture"] != current["architecture"]:
        differ = sorted(k for k in set(recorded["architecture"]) | set(current["architecture"])
                        if recorded["architecture"].get(k) != current["architecture"].get(k))
        detail = ", ".join(f"{k} {recorded['architecture'].get(k)!r} vs {current['architecture'].get(k)!r}"
                           for k in differ[:4])
        raise OptionError(f"{option_ref('adapter')} {adapter} was trained on {trained_on}, whose architecture "
                          f"differs from {option_ref('model')} {model_id!r} ({detail})",
                          hint=f"pass the base it was trained on as {option_ref('model')}")
    if recorded.get("weights") and current["weights"] and recorded["weights"] != current["weights"]:
        raise OptionError(f"{option_ref('adapter')} {adapter} was trained on {trained_on}, not on "
                          f"{option_ref('model')} {model_id!r}: same architecture, different weights",
                          hint=f"pass the base it was trained on as {option_ref('model')}")


SAFETENSORS_HEADER_MAX = 100 << 20  # safetensors' own limit on the JSON header


def check_safetensors(path: str | os.PathLike[str]) -> None:
    """A safetensors file is whole: its header parses and the file is exactly as long as the tensors it lists
    (a truncated copy or an interrupted save is an AitError naming the file, not a loader's traceback)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise AitError(f"{path}: not a safetensors file (only {size} bytes): truncated?")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(SAFETENSORS_HEADER_MAX, size - 8):
                raise AitError(f"{path}: corrupt safetensors file (a {header_len:,}-byte header in a {size:,}-byte "
                               "file): truncated or not safetensors")
            header = json.loads(fh.read(header_len))
    except OSError as exc:
        raise AitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise AitError(f"{path}: corrupt safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise AitError(f"{path}: corrupt safetensors file (its header is not a mapping)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise AitError(f"{path}: corrupt safetensors file (tensor {name!r} has no data offsets)")
        end = max(end, offsets[1])
    if 8 + header_len + end != size:
        raise AitError(f"{path}: incomplete safetensors file: its tensors need {8 + header_len + end:,} bytes, the "
                       f"file has {size:,}", hint="the file was truncated or is still being written; copy or save it "
                       "again")


def check_adapter_files(adapter: str | os.PathLike[str]) -> None:
    """An adapter folder is complete: adapter_config.json parses (`adapter_base_model`'s checks) and its
    safetensors weights are whole."""
    folder = Path(adapter)
    adapter_base_model(str(folder))
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        check_safetensors(weights)
    elif not (folder / "adapter_model.bin").is_file():
        raise AitError(f"{folder}: no adapter weights (adapter_model.safetensors)")


def check_model_files(model: str) -> None:
    """A local model folder's safetensors weights are whole (a hub id: nothing to check here)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        for weights in sorted(folder.glob("*.safetensors")):
            check_safetensors(weights)


def check_adapter_shapes(adapter: str, model: Any, model_id: str) -> None:
    """Every LoRA matrix of the adapter fits the loaded base model's layer (A: r × in, B: out × r), so a
    mismatch is one `ait: error` naming both instead of PEFT's size-mismatch traceback."""
    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.is_file():
        return  # a .bin adapter: PEFT checks it (ait never writes one)
    from safetensors import safe_open  # lazy: safetensors (~15 ms at start-up)

    with safe_open(str(weights), framework="pt") as fh:
        shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
    modules = dict(model.named_modules())
    for key, shape in shapes.items():
        for part in (".lora_A.", ".lora_B."):
            if part not in key:
                continue
            name = key.split(part)[0].removeprefix("base_model.model.")
            module = modules.get(name) or modules.get(f"model.{name}")
            if module is None:
                raise OptionError(f"{option_ref('adapter')} {adapter} adapts a layer {name!r} that "
                                  f"{option_ref('model')} {model_id!r} does not have")
            weight = getattr(module, "weight", None)
            if weight is None or len(shape) != 2:
                continue
            out_f, in_f = (weight.shape[1], weight.shape[0]) if type(module).__name__ == "Conv1D" else tuple(weight.shape[:2])
            fits = shape[1] == in_f if part == ".lora_A." else shape[0] == out_f
            if not fits:
                raise OptionError(f"{option_ref('adapter')} {adapter} does not fit {option_ref('model')} {model_id!r}: "
                                  f"layer {name!r} is {in_f}→{out_f} in the model, the adapter's {key} is "
                                  f"{shape[0]}×{shape[1]}", hint="pass the base model the adapter was trained on")


# ---------------------------------------------------------------------------------------------- inference
def oom_error_types() -> tuple[type, ...]:
    """The exceptions of a CUDA out-of-memory error (torch has had two names for it)."""
    import torch  # lazy: torch

    types = [t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
             if t is not None]
    return tuple(dict.fromkeys(types))


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    model_id: str
    adapter: str | None
    device: Any
    precision: str  # resolved: bf16, fp16 or fp32


def load_model(model_id: str, adapter: str | None = None, *, merge: bool = False, device: str = "auto",
               precision: str = "auto", padding_side: str = "left") -> LoadedModel:
    """A causal LM for inference (eval mode, on `device`) and its tokenizer, with the LoRA adapter applied
    (merged into the weights with `merge`)."""
    if merge and not adapter:
        raise OptionError(f"{option_ref('merge')} needs {option_ref('adapter')}")
    if looks_like_path(model_id) and not Path(model_id).expanduser().exists():
        raise OptionError(f"{option_ref('model')} {model_id}: no such directory",
                          hint="pass a local model directory or a hub id such as bigscience/bloomz-7b1")
    if adapter:
        check_adapter_files(adapter)
        check_adapter_base(adapter, model_id)
    check_model_files(model_id)
    check_hub_model(model_id)
    dev = pick_device(device)
    resolved = resolve_precision(precision, dev.type)
    tokenizer = load_tokenizer(model_id, padding_side=padding_side)
    model = load_causal_lm(model_id, resolved, device=dev)
    if adapter:
        from peft import PeftModel  # lazy: peft

        check_adapter_shapes(adapter, model, model_id)
        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    model.to(dev)
    model.eval()
    return LoadedModel(model, tokenizer, model_id, adapter, dev, resolved)


def base_model_of(model):
    """The transformers model under a PEFT wrapper (an unmerged adapter)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model

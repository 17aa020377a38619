"""Prepare and launch a training run: check every input, tokenize (cached), write the manifest, the job file
and the DeepSpeed config, then start the workers with the `deepspeed` launcher (or in-process).

Everything a user can get wrong is checked here, before any worker starts: data names, files, empty
data, too-long records, the model path, and a `--resume` whose configuration differs from the run's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import read_json, write_json
from aligninstruct_cli.provenance import file_sha256, package_versions
from aligninstruct_cli.training.config import TrainConfig, lora_targets_for, resolve_precision

WORKER_MODULE = "aligninstruct_cli.training.loop"
# Options that change only logging or checkpoint frequency: they may differ on --resume.
RESUME_FREE = ("output", "save_every", "log_every", "log_data_ids", "compile")  # same maths either way


class LaunchError(AitError):
    """The workers failed; the exit code is the failing rank's."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class LaunchOptions:
    launcher: str = "deepspeed"
    num_gpus: int | None = None
    num_nodes: int | None = None
    hostfile: str | None = None
    master_port: int | None = None
    deepspeed_config: str | None = None
    dry_run: bool = False
    resume: bool = False
    cache_dir: str | None = None
    quiet: bool = False


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ait" / "tokenized"


# ------------------------------------------------------------------------------------------ deepspeed config
def build_ds_config(cfg: TrainConfig, precision: str, user_file: str | None = None) -> dict[str, Any]:
    """The DeepSpeed config for the options; `--deepspeed-config FILE` replaces it, with its "auto" values
    and missing batch keys filled from the options."""
    generated: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.grad_clip,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "zero_optimization": {"stage": cfg.zero},
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
    }
    zero = generated["zero_optimization"]
    pin = _cuda_available()  # pinned host memory speeds GPU↔CPU copies; there is nothing to pin for on a CPU
    if cfg.zero == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = False  # ait gathers the adapter itself
    if cfg.offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": pin}
        # offloaded steps run on the CPU: DeepSpeed's CPU Adam (compiled on first use), not a torch optimizer
        generated["optimizer"] = {"type": "AdamW", "params": {"lr": cfg.lrs[0], "weight_decay": cfg.weight_decay,
                                                              "betas": [0.9, 0.999], "eps": 1e-8}}
    if cfg.offload == "all":
        zero["offload_param"] = {"device": "cpu", "pin_memory": pin}
    if not user_file:
        return generated
    path = Path(user_file)
    if not path.is_file():
        raise AitError(f"--deepspeed-config {user_file}: no such file")
    try:
        user = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise AitError(f"--deepspeed-config {user_file}: malformed JSON: {exc}") from None
    if not isinstance(user, dict):
        raise AitError(f"--deepspeed-config {user_file}: expected a JSON object")

    def fill(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
        out = dict(theirs)
        for key, value in theirs.items():
            if value == "auto" and key == "train_batch_size":
                del out[key]  # DeepSpeed derives it from micro batch × accumulation × ranks
            elif value == "auto":
                if key not in mine:
                    raise AitError(f"--deepspeed-config {user_file}: ait has no value for \"{key}\": \"auto\"")
                out[key] = mine[key]
            elif isinstance(value, dict) and isinstance(mine.get(key), dict):
                out[key] = fill(mine[key], value)
        return out

    merged = fill(generated, user)
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "zero_allow_untested_optimizer"):
        merged.setdefault(key, generated[key])
    return merged


def deepspeed_command(job_path: str | Path, opts: LaunchOptions) -> list[str]:
    """The `deepspeed` launcher command (run as `python -m deepspeed.launcher.runner`, the program behind the
    `deepspeed` script, so the same interpreter and environment run the workers)."""
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner"]
    if opts.hostfile:
        cmd += ["--hostfile", opts.hostfile]
    if opts.num_nodes:
        cmd += ["--num_nodes", str(opts.num_nodes)]
    if opts.num_gpus:
        cmd += ["--num_gpus", str(opts.num_gpus)]
    if opts.master_port:
        cmd += ["--master_port", str(opts.master_port)]
    return cmd + ["--module", WORKER_MODULE, "--job", str(job_path)]


# ------------------------------------------------------------------------------------------ inputs
def _looks_like_path(model: str) -> bool:
    """A hub id is `name` or `org/name`; anything else (./x, /x, ~/x, a/b/c) is meant as a directory."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or (os.sep != "/" and os.sep in model)


def resolve_model(model: str) -> str:
    """A local model directory (must exist) or a Hugging Face hub id (must be loadable)."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise AitError(f"--model {model}: not a model directory (no config.json)")
        return str(path.resolve())
    if _looks_like_path(model):
        raise AitError(f"--model {model}: no such directory",
                       hint="give a local model directory or a hub id such as bigscience/bloomz-560m")
    return model


def load_model_config(model: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        where = "" if Path(model).is_dir() else "not a local directory, and as a hub id: "
        raise AitError(f"--model {model}: {where}cannot load its configuration ({str(exc).splitlines()[0]})",
                       hint="a hub id needs network access (or a local copy in the HF cache)") from None


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise AitError(f"--model {model}: cannot load its tokenizer ({str(exc).splitlines()[0]})") from None


def _fingerprint(job: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for `--resume` to continue a run."""
    cfg = {k: v for k, v in job["config"].items() if k not in RESUME_FREE}
    return {"config": cfg, "inputs": job["input_hashes"], "precision": job["precision"],
            "ds_config": job["ds_config"], "lora_targets": job["lora_targets"]}


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} → {new!r}"]


def prepare(cfg: TrainConfig, opts: LaunchOptions, argv: list[str]) -> dict[str, Any]:
    """Check inputs and build the job description (tokenizing unless this is a dry run)."""
    cfg.check()
    if opts.launcher not in ("deepspeed", "none"):
        raise AitError(f"--launcher must be deepspeed or none, not {opts.launcher!r}")
    if opts.launcher == "none" and (opts.num_gpus or opts.num_nodes or opts.hostfile):
        raise AitError("--num-gpus, --num-nodes and --hostfile need --launcher deepspeed")
    if opts.hostfile and not Path(opts.hostfile).is_file():
        raise AitError(f"--hostfile {opts.hostfile}: no such file")
    for name, path in list(cfg.data.items()) + ([("--val", cfg.val)] if cfg.val else []):
        p = Path(path)
        if not p.exists():
            raise AitError(f"{path}: no such file" + (f" (--data {name})" if name != "--val" else " (--val)"))
        if p.is_dir():
            raise AitError(f"{path}: is a directory, expected a JSONL file of instruction records")
        if p.stat().st_size == 0:
            raise AitError(f"{path}: empty: no instruction records to train on")
    used = {n for stage in cfg.curriculum for n in stage}
    unused = [n for n in cfg.data if n not in used]
    if unused:
        console.warn(f"--data {', '.join(unused)} not used by the curriculum")
    model_path = resolve_model(cfg.model)
    model_config = load_model_config(model_path)
    lora_targets = [] if cfg.full else lora_targets_for(model_config.model_type, cfg.lora_targets)
    precision = resolve_precision(cfg.precision)
    ds_config = build_ds_config(cfg, precision, opts.deepspeed_config)
    world_size = 1 if opts.launcher == "none" else (
        opts.num_gpus * (opts.num_nodes or 1) if opts.num_gpus and not opts.hostfile else None)
    job: dict[str, Any] = {
        "config": cfg.to_dict(), "model_path": model_path, "model_type": model_config.model_type,
        "lora_targets": lora_targets, "precision": precision, "ds_config": ds_config,
        "world_size": world_size, "quiet": opts.quiet, "caches": {}, "val_cache": None, "input_hashes": {},
    }
    if opts.dry_run:
        return job
    from aligninstruct_cli.training.data import load_or_tokenize, tokenizer_fingerprint

    tokenizer = load_tokenizer(model_path)
    fingerprint = tokenizer_fingerprint(tokenizer)
    cache_dir = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    stats: dict[str, Any] = {}
    inputs = [(name, path, False) for name, path in cfg.data.items() if name in used]
    if cfg.val:
        inputs.append(("--val", cfg.val, True))
    for name, path, is_val in inputs:
        file_hash = file_sha256(path)
        job["input_hashes"][name] = {"path": str(path), "sha256": file_hash}
        data, cache = load_or_tokenize(path, tokenizer, max_length=cfg.max_length, too_long=cfg.too_long,
                                       cache_dir=cache_dir, tok_fingerprint=fingerprint, file_hash=file_hash)
        if is_val:
            job["val_cache"] = str(cache)
        else:
            job["caches"][name] = str(cache)
        stats[name] = {**data.stats, "examples": len(data), "tokens": int(data.lengths.sum())}
        report = f"{name}: {len(data):,} examples, {int(data.lengths.sum()):,} tokens"
        if data.stats.get("truncated") or data.stats.get("skipped_too_long"):
            report += (f" ({data.stats['truncated']} truncated, {data.stats['skipped_too_long']} skipped: longer "
                       f"than --max-length {cfg.max_length})")
        console.info(report)
    job["data_stats"] = stats
    if Path(model_path).is_dir():
        job["input_hashes"]["model_config"] = {"path": model_path, "sha256": hashlib.sha256(
            (Path(model_path) / "config.json").read_bytes()).hexdigest()}
    job["command"] = argv
    return job


def _check_output(cfg: TrainConfig, job: dict[str, Any], opts: LaunchOptions) -> dict[str, Any] | None:
    """A new run needs a fresh output; `--resume` needs the same configuration. Returns the old job."""
    out = Path(cfg.output)
    old_job_path = out / "job.json"
    if not opts.resume:
        if old_job_path.exists():
            raise AitError(f"--output {cfg.output} already holds a run",
                           hint="pass --resume to continue it, or choose another --output")
        return None
    if not old_job_path.exists():
        raise AitError(f"--resume: {cfg.output} holds no run to resume (no job.json)")
    old = read_json(old_job_path)
    diffs = _differences(_fingerprint(old), _fingerprint(job))
    if diffs:
        raise AitError("--resume: the options or inputs differ from the run in "
                       f"{cfg.output}:\n  " + "\n  ".join(diffs[:10]),
                       hint="resume with the original options, or start a new run with another --output")
    if opts.launcher == "none" and old.get("world_size") not in (None, 1):
        raise AitError(f"--resume: the run used {old['world_size']} ranks; --launcher none has one")
    if job.get("world_size") and old.get("world_size") and job["world_size"] != old["world_size"]:
        raise AitError(f"--resume: the run used {old['world_size']} ranks, not {job['world_size']}")
    return old


def run(cfg: TrainConfig, opts: LaunchOptions, argv: list[str]) -> int:
    """`ait train`: prepare, then launch (or print the plan with --dry-run). Returns the exit code."""
    job = prepare(cfg, opts, argv)
    out = Path(cfg.output)
    job_path = out / "job.json"
    command = deepspeed_command(job_path, opts) if opts.launcher == "deepspeed" else [
        sys.executable, "-m", WORKER_MODULE, "--job", str(job_path), "  # (run in-process: --launcher none)"]
    if opts.dry_run:
        sys.stdout.write(" ".join(command) + "\n")
        sys.stdout.write(orjson.dumps(job["ds_config"], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    old = _check_output(cfg, job, opts)
    out.mkdir(parents=True, exist_ok=True)
    if old is not None:
        from aligninstruct_cli.training.checkpoint import read_state

        job["world_size"] = old.get("world_size") or job.get("world_size")
        manifest = read_json(out / "run.json")
        if manifest.get("status") == "finished":
            console.info(f"{cfg.output}: the run is already complete")
            return 0
        manifest.setdefault("resumed", []).append({"command": argv, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "from": read_state(out).get("resume")})
    else:
        manifest = {"command": argv, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running",
                    "hyperparameters": job["config"], "curriculum": job["config"]["curriculum"],
                    "lrs": job["config"]["lrs"], "precision": job["precision"], "lora_targets": job["lora_targets"],
                    "model": {"name": cfg.model, "path": job["model_path"], "type": job["model_type"]},
                    "input_hashes": job["input_hashes"], "data_stats": job["data_stats"],
                    "ds_config": job["ds_config"], "launcher": opts.launcher, "versions": package_versions()}
    manifest["launch_command"] = command
    write_json(out / "run.json", manifest)
    write_json(job_path, job)
    write_json(out / "ds_config.json", job["ds_config"])
    if "DS_ACCELERATOR" not in os.environ and not _cuda_available():
        os.environ["DS_ACCELERATOR"] = "cpu"  # skips DeepSpeed's accelerator probing (and its warning)
    if opts.launcher == "none":
        from aligninstruct_cli.training.loop import run_job

        run_job(job)
        return 0
    env = dict(os.environ)
    console.info("launching: " + " ".join(command))
    try:
        rc = subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:
        raise
    if rc != 0:
        raise LaunchError(f"training failed: the deepspeed launcher exited with code {rc} (a rank failed; "
                          f"see its messages above); resume with --resume", rc if rc > 0 else 1)
    return 0


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()

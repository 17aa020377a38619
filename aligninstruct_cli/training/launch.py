"""Prepare, launch and finish a training run; this is the launching process, the only writer of run.json
and job.json.

    prepare(options)                    check every input, tokenize (cached): the `Job` the workers run
    start_manifest / resume_manifest    run.json: a new run, or a resumed one (same options, inputs, ranks)
    launch(job, command)                job.json, then the workers: the `deepspeed` launcher (or this process)
    finish_run(job, manifest)           choose the learning rate, lay out stage-K-*/ and final/, finish run.json

Everything a user can get wrong is checked before any worker starts: the options (`TrainOptions`), data
files, empty data, too-long records, the model, and a resume whose configuration or world size differs
from the run's.

Stopping: the launcher runs in its own process group; SIGINT, SIGTERM and SIGHUP sent to `ait train` are
forwarded to that whole group, the ranks get `STOP_GRACE_S` seconds to exit and are then killed, and
`ait train` exits 128 + the signal's number (130, 143, 129). If `ait train` itself is killed (SIGKILL),
the launcher gets SIGTERM from the kernel (its parent-death signal) and every rank notices within a second
(`distributed.watch_launching_process`). The run folder holds a lock (`checkpoint.RunLock`) while a run
uses it.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from aligninstruct_cli import console, hub, models
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.export import write_run_cards
from aligninstruct_cli.io import Terminated, read_json, write_json
from aligninstruct_cli.languages import child_environment
from aligninstruct_cli.options import OptionError, option_ref
from aligninstruct_cli.options import to_dict as plain_options
from aligninstruct_cli.provenance import RunManifest, file_sha256, installed_version
from aligninstruct_cli.training import checkpoint as ckpt
from aligninstruct_cli.training.batch import BatchPlan, describe_batch, plan_batch
from aligninstruct_cli.training.distributed import LAUNCHING_PID_ENV, set_parent_death_signal, wait_then_kill
from aligninstruct_cli.training.job import Job
from aligninstruct_cli.training.train_options import TrainOptions, check_quantize, lora_targets_for

WORKER_MODULE = "aligninstruct_cli.training.loop"
# Options that do not change what a training computes: how often it logs and checkpoints, and whether the
# blocks are compiled (the same computation, up to float rounding). They may differ on --resume, and they stay
# out of an experiment's cache key (experiment/graph.py) together with LAUNCH_ONLY.
RESULT_NEUTRAL = ("save_every", "log_every", "log_data_ids", "compile", "report_to")
# Options that may differ on --resume: the result-neutral ones, where the run is, and what it writes beside
# the checkpoints (languages, adapter snapshots, the model card's license; these do change the output folder).
RESUME_FREE = ("output", *RESULT_NEUTRAL, "languages", "save_adapter_every", "license")
# How the workers start may differ too: the world size is checked on its own (state.json), a DeepSpeed
# config file by its content (the job's ds_config), the tokenized cache by the inputs' hashes.
LAUNCH_ONLY = ("launcher", "num_gpus", "num_nodes", "hostfile", "master_port", "deepspeed_config", "cache_dir")
VAL = "--val"  # the validation file's key in input_hashes and data_stats
MICRO, ACCUM, GLOBAL = "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"


DS_LOG_LEVEL_SINCE = (0, 18)  # the first DeepSpeed minor release whose launcher takes --log_level
STOP_GRACE_S = 5.0  # after forwarding a signal: how long the ranks get to exit before they are killed
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LaunchError(AitError):
    """The workers failed; the exit code is the failing rank's."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(LaunchError):
    """`ait train` got SIGINT/SIGTERM/SIGHUP and stopped its workers: exit 128 + the signal's number."""

    def __init__(self, signum: int):
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}: the training processes were stopped; continue with --resume",
                         128 + signum)
        self.signum = signum


def run(options: TrainOptions, *, resume: bool = False, dry_run: bool = False, command: list[str] | None = None,
        quiet: bool = False) -> None:
    """`ait train`: prepare, start (or resume) the run's manifest, launch the workers, finish the run. With
    `dry_run`, print the launch command and the DeepSpeed config instead (nothing is tokenized or written)."""
    job = prepare(options, tokenize=not dry_run, command=command or [], quiet=quiet)
    job_path = Path(options.output) / "job.json"
    launch_command = worker_command(job_path, options)
    if options.global_batch:
        console.info(describe_batch(job.batch))
    if dry_run:
        sys.stdout.write(" ".join(launch_command) + "\n")
        sys.stdout.write(orjson.dumps(job.ds_config, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if resume and not (Path(options.output) / "job.json").exists():
        raise AitError(f"--resume: {options.output} holds no run to resume (no job.json)")
    if options.launcher == "deepspeed" and not options.master_port and not multi_node(options):
        # one node: a free port rather than DeepSpeed's fixed 29500, so two runs on a machine do not collide
        launch_command = worker_command(job_path, replace(options, master_port=free_local_port()))
    with ckpt.RunLock(options.output) as lock:
        if start_over_if_never_trained(options.output, stale=lock.stale is not None):
            resume = False
        manifest = resume_manifest(job, launch_command) if resume else start_manifest(job, launch_command)
        if manifest is None:
            console.info(f"{options.output}: the run is already complete")
            return
        if not ckpt.all_stages_done(options):
            job.save(job_path)
            write_json(Path(options.output) / "ds_config.json", job.ds_config)
            try:
                launch(job, launch_command)
            except LaunchError as exc:
                manifest.finish("stopped" if isinstance(exc, Stopped) else "failed", exit_code=exc.exit_code)
                raise
            except (KeyboardInterrupt, Terminated):  # --launcher none: the signal stopped this very process
                manifest.finish("stopped")
                raise
        finish_run(job, manifest)


def check_output_folder(options: TrainOptions) -> None:
    """The run's output must be a folder (or not exist yet)."""
    out = Path(options.output)
    if out.exists() and not out.is_dir():
        raise OptionError(f"{option_ref('output')} {options.output}: is a file; `ait train` writes a run folder "
                          "there", hint="choose a new directory name")


# Files of a run that never trained a step: what starting over removes.
RUN_FILES = ("job.json", "run.json", "ds_config.json", "metrics.jsonl", "data_ids.jsonl")


def never_trained(output: str | os.PathLike[str]) -> bool:
    """The run in `output` has nothing to keep: no finished stage, no checkpoint, no step in its log."""
    out = Path(output)
    state = ckpt.read_state(out)
    if state.get("done") or state.get("resume"):
        return False
    metrics = ckpt.metrics_path(out)
    return not (metrics.exists() and any(b'"step"' in line for line in metrics.read_bytes().splitlines()))


def start_over_if_never_trained(output: str | os.PathLike[str], *, stale: bool) -> bool:
    """A launch that failed (or was stopped, or whose `ait train` died: `stale` lock) before its first step
    leaves nothing worth resuming: its folder is cleared so the run can start again, with corrected options.
    True when it was."""
    out = Path(output)
    manifest = RunManifest.load(out / "run.json") if (out / "job.json").exists() else None
    if manifest is None:
        return False
    status = manifest.data.get("status")
    if not (status in ("failed", "stopped") or (status == "running" and stale)) or not never_trained(out):
        return False
    console.warn(f"{output}: the earlier launch ({status if status != 'running' else 'its ait train died'}) "
                 "never finished a training step; starting the run over")
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return True


# ------------------------------------------------------------------------------------------ prepare
def prepare(options: TrainOptions, *, tokenize: bool = True, command: list[str] | None = None,
            quiet: bool = False) -> Job:
    """Check the inputs and build the job (tokenizing the data, unless `tokenize` is off: a dry run)."""
    check_output_folder(options)
    if options.quantize != "none":  # asking for CUDA imports torch: only when it matters
        check_quantize(options.quantize, cuda=_cuda_available())
    if options.hostfile and not Path(options.hostfile).is_file():
        raise OptionError(f"{option_ref('hostfile')} {options.hostfile}: no such file")
    check_data_files(options)
    used = list(dict.fromkeys(n for stage in options.curriculum for n in stage))
    unused = [n for n in options.data if n not in used]
    if unused:
        console.warn(f"data {', '.join(map(repr, unused))} not used by the curriculum")
    model_path = models.resolve_model(options.model)
    model_type = models.load_model_config(model_path).model_type
    if options.lora_targets and not options.full:
        models.check_lora_targets(model_path, options.lora_targets)
    precision = models.resolve_precision(options.precision)
    plan = plan_batch(options, model_path, precision)  # checks the global batch before the data is read
    found = tokenize_inputs(options, model_path, used) if tokenize else {}
    if plan.micro_from == "memory_estimate":  # sized for the longest example there is, not for max_length
        longest = max(found["data_stats"][n]["longest"] for n in used)
        plan = plan_batch(options, model_path, precision, longest=longest)
    ds_config = build_ds_config(options, precision, options.deepspeed_config, plan)
    if (ds_config[MICRO], ds_config[ACCUM]) != (plan.micro, plan.accumulation):  # set by a DeepSpeed config file
        plan = BatchPlan(ds_config[MICRO], ds_config[ACCUM], plan.ranks, "deepspeed_config")
    job = Job(options=options, model_path=model_path, model_type=model_type,
              lora_targets=[] if options.full else lora_targets_for(model_type, options.lora_targets),
              precision=precision, ds_config=ds_config, world_size=plan.ranks, batch=plan.to_dict(),
              command=list(command or []), quiet=quiet)
    return replace(job, **found)


def check_data_files(options: TrainOptions) -> None:
    for data_name, path in list(options.data.items()) + ([(VAL, options.val)] if options.val else []):
        p = Path(path)
        if not p.exists():
            which = f"({option_ref('val')})" if data_name == VAL else f"({option_ref('data')} {data_name})"
            raise OptionError(f"{path}: no such file {which}")
        if p.is_dir():
            raise AitError(f"{path}: is a directory, expected a JSONL file of instruction records")
        if p.stat().st_size == 0:
            raise AitError(f"{path}: empty: no instruction records to train on")


def tokenize_inputs(options: TrainOptions, model_path: str, used: list[str]) -> dict[str, Any]:
    """Tokenize (or find in the cache) every data file the curriculum uses and the validation file: the
    job's caches, val_cache, input_hashes and data_stats."""
    from aligninstruct_cli.training.examples import load_or_tokenize, tokenizer_fingerprint  # lazy: imports numpy

    tokenizer = models.load_tokenizer(model_path)
    if options.chat_template:
        models.check_chat_template(tokenizer, options.model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    cache_dir = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    found: dict[str, Any] = {"caches": {}, "val_cache": None, "input_hashes": {}, "data_stats": {}}
    inputs = [(n, options.data[n]) for n in options.data if n in used] + ([(VAL, options.val)] if options.val else [])
    for data_name, path in inputs:
        file_hash = file_sha256(path)
        found["input_hashes"][data_name] = {"path": str(path), "sha256": file_hash}
        data, cache = load_or_tokenize(path, tokenizer, max_length=options.max_length, too_long=options.too_long,
                                       cache_dir=cache_dir, tok_fingerprint=fingerprint, file_hash=file_hash,
                                       chat_template=options.chat_template, length_budget=options.length_budget,
                                       data_format=options.data_format)
        if data_name == VAL:
            found["val_cache"] = str(cache)
        else:
            found["caches"][data_name] = str(cache)
        found["data_stats"][data_name] = {**data.stats, "examples": len(data), "tokens": int(data.lengths.sum()),
                                          "longest": int(data.lengths.max()) if len(data) else 0}
        report = f"{data_name}: {len(data):,} examples, {int(data.lengths.sum()):,} tokens"
        if data.stats.get("truncated") or data.stats.get("skipped_too_long"):
            cut = "with the input cut" if options.too_long == "truncate-input" else "truncated"
            report += (f" ({data.stats['truncated']} {cut}, {data.stats['skipped_too_long']} skipped: longer "
                       f"than --max-length {options.max_length}"
                       + (" on a side" if options.length_budget == "each" else "") + ")")
        console.info(report)
    if Path(model_path).is_dir():
        found["input_hashes"]["model_config"] = {"path": model_path, "sha256": hashlib.sha256(
            (Path(model_path) / "config.json").read_bytes()).hexdigest()}
    return found


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ait" / "tokenized"


# ------------------------------------------------------------------------------------------ deepspeed config
def build_ds_config(options: TrainOptions, precision: str, user_file: str | None = None,
                    plan: BatchPlan | None = None) -> dict[str, Any]:
    """The DeepSpeed config for the options and batch plan (default: the options' batch size and
    accumulation); `user_file` (the deepspeed_config option) replaces it, with its "auto" values and missing
    batch keys filled from the options. With a global batch, `train_batch_size` is set too, and the file
    may not set the batch otherwise."""
    plan = plan or BatchPlan(options.batch_size, options.grad_accum, None)
    generated: dict[str, Any] = {
        **({GLOBAL: plan.global_batch} if options.global_batch else {}),
        MICRO: plan.micro,
        ACCUM: plan.accumulation,
        "gradient_clipping": options.grad_clip,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "zero_optimization": {"stage": options.zero},
        # a quantized base computes in `precision` inside its layers; DeepSpeed must not cast it (nor the
        # fp32 LoRA weights and norms prepare_model_for_kbit_training leaves)
        "bf16": {"enabled": precision == "bf16" and options.quantize == "none"},
        "fp16": {"enabled": precision == "fp16" and options.quantize == "none"},
    }
    zero = generated["zero_optimization"]
    pin = _cuda_available()  # pinned host memory speeds GPU↔CPU copies; there is nothing to pin for on a CPU
    if options.zero == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = False  # ait gathers the adapter itself
    if options.offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": pin}
        # offloaded steps run on the CPU: DeepSpeed's CPU Adam (compiled on first use), not a torch optimizer;
        # without a learning rate (see without_lr)
        generated["optimizer"] = {"type": "AdamW", "params": {"weight_decay": options.weight_decay,
                                                              "betas": [0.9, 0.999], "eps": 1e-8}}
    if options.offload == "all":
        zero["offload_param"] = {"device": "cpu", "pin_memory": pin}
    if not user_file:
        return generated
    path = Path(user_file)
    if not path.is_file():
        raise OptionError(f"{option_ref('deepspeed_config')} {user_file}: no such file")
    try:
        user = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise OptionError(f"{option_ref('deepspeed_config')} {user_file}: malformed JSON: {exc}") from None
    if not isinstance(user, dict):
        raise OptionError(f"{option_ref('deepspeed_config')} {user_file}: expected a JSON object")

    def fill(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
        out = dict(theirs)
        for key, value in theirs.items():
            if value == "auto" and key == GLOBAL and key not in mine:
                del out[key]  # DeepSpeed derives it from micro batch × accumulation × ranks
            elif value == "auto":
                if key not in mine:
                    raise OptionError(f"{option_ref('deepspeed_config')} {user_file}: ait has no value for "
                                      f"\"{key}\": \"auto\"")
                out[key] = mine[key]
            elif isinstance(value, dict) and isinstance(mine.get(key), dict):
                out[key] = fill(mine[key], value)
        return out

    merged = fill(generated, without_lr(user))
    for key in (GLOBAL, MICRO, ACCUM, "zero_allow_untested_optimizer"):
        if key in generated:
            merged.setdefault(key, generated[key])
    clash = [key for key in (GLOBAL, MICRO, ACCUM) if options.global_batch and merged[key] != generated[key]]
    if clash:
        raise OptionError(f"{option_ref('deepspeed_config')} {user_file}: \"{clash[0]}\": {merged[clash[0]]} "
                          f"disagrees with {option_ref('global_batch')} {options.global_batch} "
                          f"({describe_batch(plan.to_dict())})",
                          hint="leave the batch keys out of the file, or set them to \"auto\"")
    return merged


def without_lr(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without its optimizer's learning rate: the rate is --lr's, one per curriculum, and
    `loop.make_engine` is the one place that gives it to an optimizer (and so to the schedule's base), so the
    DeepSpeed config holds none that could disagree with it."""
    optimizer = config.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("params"), dict):
        return config
    params = {key: value for key, value in optimizer["params"].items() if key != "lr"}
    return {**config, "optimizer": {**optimizer, "params": params}}


# ------------------------------------------------------------------------------------------ the manifest
def start_manifest(job: Job, launch_command: list[str]) -> RunManifest:
    """A new run: its output must not hold one yet."""
    options, out = job.options, Path(job.options.output)
    if (out / "job.json").exists():
        raise OptionError(f"{option_ref('output')} {options.output} already holds a run",
                          hint="pass --resume to continue it, or choose another output directory")
    out.mkdir(parents=True, exist_ok=True)
    return RunManifest(out / "run.json").start(
        job.command, hyperparameters=plain_options(options), curriculum=options.curriculum, lrs=options.lr,
        precision=job.precision, lora_targets=job.lora_targets, batch=job.batch,
        model={"name": options.model, "path": job.model_path, "type": job.model_type},
        input_hashes=job.input_hashes, data_stats=job.data_stats, ds_config=job.ds_config,
        launcher=options.launcher, launch_command=launch_command)


def resume_manifest(job: Job, launch_command: list[str]) -> RunManifest | None:
    """The resumed run's manifest, once its options, inputs and world size are found the same; None when
    that run is already finished."""
    out = Path(job.options.output)
    old_job = out / "job.json"
    if not old_job.exists():
        raise AitError(f"--resume: {job.options.output} holds no run to resume (no job.json)")
    diffs = _differences(_fingerprint(read_json(old_job)), _fingerprint(job.to_dict()))
    if diffs:
        raise OptionError(f"--resume: the options or inputs differ from the run in {job.options.output}:\n  "
                          + "\n  ".join(diffs[:10]),
                          hint="resume with the original options, or start a new run with another output directory")
    state = ckpt.read_state(out)
    ranks = state.get("world_size")
    if job.options.launcher == "none" and ranks not in (None, 1):
        raise OptionError(f"--resume: the run used {ranks} ranks; {option_ref('launcher')} none has one")
    if job.world_size and ranks and job.world_size != ranks:
        raise AitError(f"--resume: the run used {ranks} ranks, not {job.world_size}")
    if state.get("resume"):
        ckpt.check_checkpoint_files(state["resume"], ranks)
    manifest = RunManifest(out / "run.json", read_json(out / "run.json"))
    if manifest.data.get("status") == "finished":
        return None
    return manifest.resumed(job.command, **{"from": state.get("resume")}).update(launch_command=launch_command)


def _fingerprint(job: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for a resume to continue a run (`job`: a Job as JSON)."""
    options = {k: v for k, v in job.get("options", {}).items() if k not in RESUME_FREE + LAUNCH_ONLY}
    return {"options": options, "inputs": job.get("input_hashes"), "precision": job.get("precision"),
            # without_lr: a run whose job.json still holds --lr's first value there resumes too
            "ds_config": without_lr(job.get("ds_config") or {}), "lora_targets": job.get("lora_targets")}


def _differences(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[str]:
    """`where: old → new` lines; an option is named by `option_ref(field)` (its flag on the command line)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new))
                for line in _differences(old.get(key), new.get(key), path + (str(key),))]
    if old == new:
        return []
    where = ".".join((option_ref(path[1]),) + path[2:]) if path[:1] == ("options",) and len(path) > 1 else ".".join(path)
    return [f"{where}: {old!r} → {new!r}"]


# ------------------------------------------------------------------------------------------ launch
def worker_command(job_path: str | os.PathLike[str], options: TrainOptions) -> list[str]:
    if options.launcher == "deepspeed":
        return deepspeed_command(job_path, options)
    return [sys.executable, "-m", WORKER_MODULE, "--job", str(job_path), "  # (run in-process: --launcher none)"]


def deepspeed_command(job_path: str | os.PathLike[str], options: TrainOptions) -> list[str]:
    """The `deepspeed` launcher command (run as `python -m deepspeed.launcher.runner`, the program behind the
    `deepspeed` script, so the same interpreter and environment run the workers)."""
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner"]
    if console.is_quiet() and (installed_version("deepspeed") or (0, 0)) >= DS_LOG_LEVEL_SINCE:
        cmd += ["--log_level", "warning"]  # -q: not the launcher's INFO lines (its default level is info)
    if options.hostfile:
        cmd += ["--hostfile", options.hostfile]
    if options.num_nodes:
        cmd += ["--num_nodes", str(options.num_nodes)]
    if options.num_gpus:
        cmd += ["--num_gpus", str(options.num_gpus)]
    if options.master_port:
        cmd += ["--master_port", str(options.master_port)]
    job_arg = str(Path(job_path).absolute())
    if multi_node(options):
        job_arg = remote_shell_word(job_arg)
    return cmd + ["--module", WORKER_MODULE, "--job", job_arg]


def hostfile_hosts(hostfile: str) -> list[str]:
    """The hosts of a DeepSpeed hostfile (`host slots=N` lines; # comments)."""
    try:
        lines = Path(hostfile).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"{option_ref('hostfile')} {hostfile}: cannot read it ({exc})") from None
    return [line.split()[0] for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]


def free_local_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multi_node(options: TrainOptions) -> bool:
    """Whether the deepspeed launcher will start ranks on other hosts (through pdsh and a remote shell)."""
    if not options.hostfile:
        return False
    hosts = len(hostfile_hosts(options.hostfile))
    return min(hosts, options.num_nodes or hosts) > 1


def remote_shell_word(arg: str) -> str:
    """`arg` spelled so that the remote shell pdsh runs the command in reads it back unchanged (never runs
    `$(...)`, backticks or `;` in it). DeepSpeed's pdsh runner wraps an argument holding a space in double
    quotes (escaping `"` only) and passes any other as is: single quotes (`shlex.quote`) for those, and for the
    others the escapes that double quotes need."""
    if " " not in arg:
        return shlex.quote(arg)
    return "".join("\\" + c if c in "\\$`" else c for c in arg)


def check_multi_node_cwd() -> None:
    """DeepSpeed's pdsh command starts with `cd <this directory>;`, unquoted, on every host."""
    cwd = os.getcwd()
    if shlex.quote(cwd) != cwd:
        raise OptionError(f"a multi-node launch runs `cd {cwd}` on every host, unquoted (DeepSpeed's pdsh "
                          "command): start `ait train` from a directory whose path has no spaces or shell "
                          "characters")


def launch(job: Job, launch_command: list[str]) -> None:
    """Train every stage not done yet: the workers through the deepspeed launcher, or (launcher none) this
    process. LaunchError with the launcher's exit code if a rank fails."""
    # DS_ACCELERATOR=cpu skips DeepSpeed's accelerator probing (and its warning) on a machine without CUDA
    cpu = {} if "DS_ACCELERATOR" in os.environ or _cuda_available() else {"DS_ACCELERATOR": "cpu"}
    if job.options.launcher == "none":
        os.environ.update(cpu)  # this process is the step's rank: DeepSpeed reads it here
        from aligninstruct_cli.training.loop import run_job  # lazy: imports numpy

        try:
            run_job(job)
        except Exception as exc:  # a rank's failure, here in this process: reported as the launcher's would be
            raise LaunchError(f"training failed in this process (--launcher none): "
                              f"{failure_summary(exc)}; {resume_advice(job.options.output)}", 1) from None
        except SystemExit as exc:  # the worker's own refusals (check_world_size)
            raise LaunchError(f"{exc.code}; {resume_advice(job.options.output)}", 1) from None
        return
    if multi_node(job.options):
        check_multi_node_cwd()
    console.info("launching: " + " ".join(launch_command))
    # the ranks' environment: this one, plus the user language file this process loaded (`--languages`) and the
    # hub's offline switch if this process made it (a model found only in the cache)
    env = {**os.environ, **cpu, **child_environment(), **hub.child_environment(), LAUNCHING_PID_ENV: str(os.getpid())}
    rc = run_launcher(launch_command, env=env)
    if rc != 0:
        raise LaunchError(f"training failed: the deepspeed launcher exited with code {rc} (a rank failed; "
                          f"see its messages above); {resume_advice(job.options.output)}", rc if rc > 0 else 1)


def resume_advice(output: str) -> str:
    """What to do after a failed launch: --resume only where it has something to continue from (a finished
    stage or a checkpoint); else the same command again, which starts the run over."""
    state = ckpt.read_state(output)
    if state.get("done") or state.get("resume"):
        what = "checkpoint" if state.get("resume") else "finished stage"
        return f"once the cause is fixed, continue from the last {what} with --resume"
    return ("nothing was saved that --resume could continue from: fix the cause and run the same command again "
            "(a run that never finished a step starts over)")


def failure_summary(exc: BaseException) -> str:
    """`Type: first line of the message (at file:line)`, the innermost frame of ait's or the library's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def _die_with_parent() -> None:
    """In the launcher's process, before exec (Linux): SIGTERM when `ait train` dies, even by SIGKILL."""
    set_parent_death_signal(signal.SIGTERM)


def run_launcher(command: list[str], env: dict[str, str], *, grace_s: float = STOP_GRACE_S) -> int:
    """Run the launcher in a process group of its own and wait for it; SIGINT/SIGTERM/SIGHUP reaching this
    process go to that whole group (launcher and ranks), which gets `grace_s` seconds before SIGKILL.
    Raises `Stopped` after such a signal, once no process of the group is left."""
    received: list[int] = []
    proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    pgid = proc.pid

    def forward(signum, _frame) -> None:
        received.append(signum)
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                rc = None
            if received:
                break
            if rc is not None:
                return rc
        wait_then_kill(pgid, grace_s, proc=proc, after_kill_s=5, poll_s=0.05, on_kill=lambda: console.warn(
            f"the training processes did not stop within {grace_s:g}s: killing them"))
        raise Stopped(received[0])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------ finish
def finish_run(job: Job, manifest: RunManifest) -> None:
    """Every stage is done: choose the learning rate (lowest final validation loss), lay out stage-K-*/ and
    final/, and record the outcome in run.json."""
    options = job.options
    val_loss = ckpt.read_state(options.output).get("val_loss", {})
    last = len(options.curriculum) - 1
    finals = {i: val_loss.get(f"{i}/{last}") for i in range(len(options.lr))}
    chosen = min(finals, key=lambda i: math.inf if finals[i] is None else finals[i])
    ckpt.lay_out_results(options, chosen)
    manifest.finish(result={"chosen_lr": options.lr[chosen],
                            "final_val_loss": {f"{options.lr[i]:g}": v for i, v in finals.items()},
                            "stages": [ckpt.stage_dir_name(k, m) for k, m in enumerate(options.curriculum)]})
    write_cards(options.output)
    if len(options.lr) > 1:
        table = ", ".join(f"{options.lr[i]:g}: {'n/a' if v is None else f'{v:.4f}'}" for i, v in finals.items())
        console.info(f"validation loss per lr ({table}); chose lr {options.lr[chosen]:g}")
    console.info(f"[green]done[/green]: {Path(options.output) / 'final'}")


def write_cards(output: str) -> None:
    """A model card in every adapter directory of the run (export.write_run_cards: the base named portably,
    languages, objectives, curriculum, data sizes), replacing PEFT's placeholder card; never fails the run."""
    try:
        write_run_cards(output)
    except (AitError, OSError) as exc:
        console.warn(f"model cards not written: {exc}")


def _cuda_available() -> bool:
    import torch  # lazy: torch

    return torch.cuda.is_available()

"""Running steps as submitit jobs: `slurm` (each step a Slurm job, with `afterok` dependencies on its inputs'
jobs, all submitted at once) and `submitit-local` (submitit's local executor on this machine; it knows no
dependencies, so a step is submitted once its inputs are done). Each job runs `run_step_job`, which does
what the local executor does for one step: empty a half-made output (or continue a training), run the
command into the step's log, write done.json or failed.json. A training job under Slurm gets the node's
GPUs and starts the deepspeed launcher as on any machine (a hostfile for several nodes, as docs/scaling.md).

submitit is an optional dependency: `pip install 'aligninstruct-cli[slurm]'`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.graph import Graph
from aligninstruct_cli.experiment.health import health_failed
from aligninstruct_cli.experiment.paths import inside_output, log_path, write_log_header
from aligninstruct_cli.experiment.steps import check_spec, finish_step, link_names, prepare_step, step_env

POLL_SECONDS = 1.0


def _submitit():
    try:
        import submitit  # lazy: submitit, optional (the Slurm executors only)
    except ImportError:
        raise AitError("--executor slurm needs submitit, which is not installed",
                       hint="pip install 'aligninstruct-cli[slurm]' (or: pip install submitit)") from None
    return submitit


def run_step_job(spec: dict[str, Any]) -> None:
    """The body of a step's job (runs on the node): the step's command, its outcome recorded in its directory."""
    started = time.monotonic()
    argv = spec["argv"]
    if spec["resume"] and (Path(spec["directory"]) / "job.json").exists():
        argv = [*argv, "--resume"]
    with open(spec["log"], "ab") as log:
        write_log_header(log, " ".join(argv))
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=spec["env"],
                             cwd=spec["cwd"])  # the config's relative paths are relative to where `run` was started
    rc = finish_step(Path(spec["directory"]), spec["names"], spec["kind"], spec["key"], spec["shell"], rc,
                     time.monotonic() - started, spec["log"], spec["check"])
    if rc != 0:
        raise RuntimeError(f"{spec['names'][0]} exited with code {rc}; see {spec['log']}")


def _spec(graph: Graph, key: str) -> dict[str, Any]:
    step = graph.steps[key]
    argv = prepare_step(graph, key)
    if argv[-1] == "--resume" and step.kind == "train":
        argv = argv[:-1]  # decided when the job starts (its directory may change until then)
    return {"argv": argv, "resume": step.kind == "train", "directory": str(graph.directory(key)),
            "names": step.names, "kind": step.kind, "key": key, "shell": graph.shell(key),
            "log": str(log_path(graph, key)), "env": step_env(graph, key), "cwd": os.getcwd(),
            "check": check_spec(graph, key)}


def _executor(graph: Graph, cluster: str, device: bool):
    submitit = _submitit()
    folder = inside_output(graph.exp.output, Path(graph.exp.output) / "submitit")
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster="local" if cluster == "submitit-local" else cluster)
    except RuntimeError as exc:  # submitit: 'Could not detect "srun", are you indeed on a slurm cluster?'
        raise AitError(f"--executor {cluster}: {exc}", hint="run on a Slurm login node, or use --executor local") from None
    params = {"timeout_min": 24 * 60, **graph.exp.slurm.get("all", {}), **(graph.exp.slurm.get("gpu", {}) if device
                                                                          else {})}
    additional = dict(params.pop("slurm_additional_parameters", {}) or {})
    try:
        executor.update_parameters(**params, **({"slurm_additional_parameters": additional} if additional else {}))
    except (ValueError, TypeError, NameError) as exc:  # submitit names the parameter it does not know
        raise AitError(f"{graph.exp.path}: slurm: {exc}") from None
    return executor, additional


def run_submitit(graph: Graph, todo: list[str], cluster: str, echo) -> tuple[list[str], list[str], list[str]]:
    jobs: dict[str, Any] = {}
    done: list[str] = []
    failed: list[str] = []
    blocked: set[str] = set()
    pending = list(todo)
    with_dependencies = cluster == "slurm"
    while pending or jobs:
        for key in list(pending):
            step = graph.steps[key]
            inputs = [i for i in step.inputs if i in todo]
            if any(i in failed or i in blocked for i in inputs):
                continue
            if not with_dependencies and any(i not in done for i in inputs):
                continue
            executor, additional = _executor(graph, cluster, step.device)
            if with_dependencies:
                after = [str(jobs[i].job_id) for i in inputs if i in jobs]
                if after:
                    dependency = "afterok:" + ":".join(after)
                    executor.update_parameters(slurm_additional_parameters={**additional, "dependency": dependency})
            executor.update_parameters(name=f"ait-{step.kind}-{key[:8]}")
            jobs[key] = executor.submit(run_step_job, _spec(graph, key))
            pending.remove(key)
            echo(f"{', '.join(step.names)}: submitted (job {jobs[key].job_id}; log {log_path(graph, key)})")
        finished = [k for k, job in jobs.items() if job.done()]
        if not finished:
            time.sleep(POLL_SECONDS)
            continue
        for key in finished:
            job = jobs.pop(key)
            step = graph.steps[key]
            try:
                job.result()
            except Exception as exc:  # the job failed (its command, or the scheduler): stop what needs it
                failed.append(key)
                lost = graph.dependents(key) & (set(pending) | set(jobs))
                for other in lost & set(jobs):
                    jobs.pop(other).cancel(check=False)
                blocked |= lost
                pending[:] = [k for k in pending if k not in lost]
                echo(f"  {step.name}: FAILED ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r})")
                continue
            done.append(key)
            link_names(graph, key)
            echo(f"  {step.name}: done")
            health_failed(graph, key, echo)  # warnings only: the job has ended, --strict applies to local runs
    return done, failed, [k for k in todo if k in blocked]

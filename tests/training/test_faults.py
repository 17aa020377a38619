"""`ait train` under faults and hostile files: no code runs from a run folder (checkpoints are read without
unpickling), a signal reaches the launcher's whole process group and the ranks exit when `ait train` is killed,
the run lock, a huge record is never tokenized, and multi-node command lines are quoted for the remote shell."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import char_budget
from aligninstruct_cli.training import checkpoint as ckpt
from conftest import SpyTokenizer
from train_helpers import AIT, REPO, make_data, mt_record, worker_env

runner = CliRunner()


class Planted:
    """A pickle that creates a file when it is loaded: what a hostile run folder would hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))

# ------------------------------------------------------------------------------------- 1. no code from files
def test_rng_state_round_trips_through_safetensors_exactly(tmp_path):
    import random

    import torch

    random.random(), np.random.standard_normal(), torch.rand(2)  # a cached gaussian, a moved position
    ckpt.save_rng_state(tmp_path / "rng.safetensors")
    first = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3).tolist())
    ckpt.set_rng_state(ckpt.load_rng_state(tmp_path / "rng.safetensors"))
    assert (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(3).tolist()) == first
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AitError, match="not an RNG state file ait wrote"):
        ckpt.load_rng_state(tmp_path / "bad.safetensors")


def _planted_run(tmp_path, tiny_bloom_dir, data, *, rng_pickle: bool):
    """A run folder with a checkpoint to resume from, one of whose files is a planted pickle."""
    from aligninstruct_cli.provenance import RunManifest
    from aligninstruct_cli.training.train_options import TrainOptions
    from aligninstruct_cli.training.launch import prepare

    out = tmp_path / "run"
    job = prepare(TrainOptions(model=str(tiny_bloom_dir), data={"mt": str(data["mt"])}, curriculum="mt",
                               output=str(out), launcher="none", cache_dir=str(tmp_path / "cache")), command=["ait"])
    out.mkdir()
    job.save(out / "job.json")
    RunManifest(out / "run.json").start(["ait"])
    folder = ckpt.checkpoint_root(out, "lr-0.0002", 0) / "step-2"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    if rng_pickle:
        with open(folder / "rng-rank0.pt", "wb") as fh:
            pickle.dump(Planted(marker), fh)
    else:
        import torch

        ckpt.save_rng_state(folder / "rng-rank0.safetensors")
        torch.save({"module": Planted(marker)}, folder / "mp_rank_00_model_states.pt")
    ckpt.write_state(out, {"done": [], "world_size": 1, "resume": {
        "lr_index": 0, "stage": 0, "dir": str(folder.parent), "tag": "step-2", "epoch": 0, "step_in_epoch": 2,
        "global_step": 2}})
    args = ["train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}", "--curriculum", "mt",
            "--output", str(out), "--launcher", "none", "--cache-dir", str(tmp_path / "cache"), "--resume"]
    return args, marker, folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("safety-data"), n_mt=8, n_align=4)


@pytest.mark.parametrize("rng_pickle", [True, False], ids=["ait-rng-pickle", "deepspeed-file-pickle"])
def test_resume_refuses_a_planted_pickle_and_runs_nothing(tmp_path, tiny_bloom_dir, data, monkeypatch, rng_pickle):
    import aligninstruct_cli.training.launch as launch

    monkeypatch.setattr(launch, "launch", lambda *a, **k: pytest.fail("launched"))
    args, marker, _ = _planted_run(tmp_path, tiny_bloom_dir, data, rng_pickle=rng_pickle)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert ("pickled by an older ait" if rng_pickle else "posix.system") in result.output
    assert "Traceback" not in result.output and not marker.exists()


def test_deepspeed_files_load_with_weights_only_and_an_allow_list(tmp_path):
    """The workers' load: even past the launcher's check, torch.load runs with weights_only=True."""
    import torch
    from deepspeed.runtime.zero.config import ZeroStageEnum

    marker = tmp_path / "pwned"
    torch.save({"module": Planted(marker)}, tmp_path / "bad.pt")
    torch.save({"zero_stage": ZeroStageEnum.gradients, "w": torch.ones(2)}, tmp_path / "good.pt")
    with ckpt.weights_only_loading():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(tmp_path / "bad.pt", weights_only=False)  # what DeepSpeed asks for
        assert torch.load(tmp_path / "good.pt", weights_only=False)["zero_stage"] == ZeroStageEnum.gradients
    assert not marker.exists() and torch.load is not None


# ------------------------------------------------------------------------------------- 2. signals and lock
def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


LAUNCHER_SCRIPT = """
import subprocess, sys
from aligninstruct_cli.training.launch import Stopped, run_launcher
# a 'launcher' whose child ignores SIGTERM: only the kill after the grace period stops it
cmd = [sys.executable, "-c", "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
       "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
       "time.sleep(60)']); print('up', flush=True); time.sleep(60)"]
try:
    run_launcher(cmd, env=None, grace_s=1.0)
except Stopped as exc:
    sys.exit(exc.exit_code)
"""


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_to_ait_train_reaches_the_whole_launcher_group(signum, code):
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER_SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    assert len(children) == 1
    pgid = os.getpgid(children[0])
    assert pgid != os.getpgid(proc.pid) and len(_group_pids(pgid)) == 2  # a group of its own: launcher + rank
    proc.send_signal(signum)
    assert proc.wait(timeout=20) == code
    assert _group_pids(pgid) == []  # killed after the grace period, though they ignore SIGTERM


RANK_SCRIPT = """
import sys, time
from aligninstruct_cli.training.distributed import watch_launching_process
assert watch_launching_process(int(sys.argv[1]), interval_s=0.1)
print('watching', flush=True)
time.sleep(60)
"""


def test_ranks_exit_when_ait_train_is_killed():
    """SIGKILL of `ait train` cannot be forwarded: the ranks notice and exit on their own."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    rank = subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(parent.pid)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert rank.stdout.readline().strip() == "watching"
    parent.kill()
    parent.wait()
    assert rank.wait(timeout=10) == 143
    assert "is gone; stopping" in rank.stderr.read()


HOLDER_SCRIPT = """
import sys, time
from aligninstruct_cli.training.checkpoint import RunLock
with RunLock(sys.argv[1]):
    print('locked', flush=True)
    time.sleep(60)
"""


def test_the_run_lock_names_its_live_holder_and_a_dead_holders_lock_is_stale(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(tmp_path / "run")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(AitError, match=f"in use by a running `ait train` \\(pid {holder.pid} on "):
        with ckpt.RunLock(tmp_path / "run"):
            pass
    holder.kill()
    holder.wait()
    with ckpt.RunLock(tmp_path / "run") as lock:
        assert lock.stale["pid"] == holder.pid  # recognised, and taken over
        assert json.loads((tmp_path / "run" / "run.lock").read_text())["pid"] == os.getpid()
    with ckpt.RunLock(tmp_path / "run") as lock:
        assert lock.stale is None  # released cleanly the last time


def test_a_launch_that_never_trained_a_step_can_start_over(tmp_path, tiny_bloom_dir, data, monkeypatch):
    import aligninstruct_cli.training.launch as launch

    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}", "--curriculum", "mt",
            "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "--num-gpus", "1"]
    monkeypatch.setattr(launch, "deepspeed_command", lambda job, opts: [sys.executable, "-c", "raise SystemExit(3)"])
    result = runner.invoke(app, args)  # e.g. a busy port
    assert result.exit_code == 3 and json.loads((out / "run.json").read_text())["status"] == "failed"
    started = []
    monkeypatch.setattr(launch, "launch", lambda job, cmd: started.append(job.options.lr))
    monkeypatch.setattr(launch, "finish_run", lambda job, manifest: None)
    result = runner.invoke(app, args + ["--lr", "1e-3", "--resume"])  # other options: the run starts over
    assert result.exit_code == 0, result.output
    assert "never finished a training step; starting the run over" in result.output and started == [[1e-3]]
    (out / "metrics.jsonl").write_text('{"stage": 1, "step": 1, "loss": 1.0}\n')
    launch.RunManifest(out / "run.json", json.loads((out / "run.json").read_text())).finish("failed")
    result = runner.invoke(app, args)  # a run that trained: kept, as before
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_train_output_naming_a_file_is_one_error(tmp_path, tiny_bloom_dir, data):
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                 "--output", str(tmp_path / "file"), "--dry-run"])
    assert result.exit_code == 2 and "is a file" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_kill_term_of_ait_train_leaves_no_process_of_the_run(tmp_path, tiny_bloom_dir, data):
    """The acceptance test: deepspeed launcher, one CPU rank; `kill -TERM` of `ait train` → exit 143 and no
    process of the run 10 s later."""
    out = tmp_path / "run"
    proc = subprocess.Popen([AIT, "train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                             "--curriculum", "mt", "--num-gpus", "1", "--epochs", "1000", "--batch-size", "2",
                             "--log-every", "1", "--output", str(out), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.5)
    job = str(out / "job.json")

    def run_processes():
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and job in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(entry.name)
            except OSError:
                pass
        return found

    assert run_processes()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    deadline = time.monotonic() + 10
    while run_processes() and time.monotonic() < deadline:  # `ait train` waits for them: none are left
        time.sleep(0.5)
    assert run_processes() == []
    assert "stopped by SIGTERM" in proc.stderr.read()
    assert json.loads((out / "run.json").read_text())["status"] == "stopped"


# ------------------------------------------------------------------------------------- 3. huge records
@pytest.mark.parametrize("too_long", ["error", "skip", "truncate-input", "truncate"])
def test_train_never_tokenizes_a_huge_record(tiny_tokenizer_dir, too_long):
    from transformers import AutoTokenizer

    from aligninstruct_cli.training.examples import tokenize_records

    spy = SpyTokenizer(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    huge = mt_record(1, "the cat " * 200_000, "the dog")
    records = [(1, mt_record(0, "a cat", "a dog")), (2, huge)]
    if too_long == "error":
        with pytest.raises(InputError, match="f.jsonl:2: record 'mt1' has 1,600,"):
            tokenize_records(records, spy, path="f.jsonl", max_length=40, too_long=too_long, progress=False)
        return
    data = tokenize_records(records, spy, path="f.jsonl", max_length=40, too_long=too_long, progress=False)
    assert spy.longest <= char_budget(40)
    assert len(data) == (1 if too_long in ("skip", "truncate") else 2)  # truncate: no output token is left
    assert all(length <= 40 for length in data.lengths)


# ------------------------------------------------------------------------------------- 4. multi-node quoting
@pytest.mark.parametrize("name", ["run$(touch PWNED)", "a b$(touch PWNED)`touch PWNED`\"x\\\"y';z"])
def test_the_multi_node_command_reads_back_a_hostile_path_unchanged(tmp_path, name):
    from types import SimpleNamespace

    from deepspeed.launcher.multinode_runner import PDSHRunner

    from aligninstruct_cli.training.train_options import TrainOptions
    from aligninstruct_cli.training.launch import deepspeed_command, multi_node

    hostfile = tmp_path / "hosts"
    hostfile.write_text("node1 slots=1\nnode2 slots=1\n")
    options = TrainOptions(model="m", data={"mt": "x"}, output="o", hostfile=str(hostfile))
    assert multi_node(options)
    job = tmp_path / name / "job.json"
    cmd = deepspeed_command(job, options)
    user_args = cmd[cmd.index("--module") + 1:]
    # DeepSpeed's own processing for pdsh, then the remote shell pdsh hands the joined command line to
    remote = " ".join(PDSHRunner(SimpleNamespace(user_args=user_args, user_script="-u"), "e30=").parse_user_args())
    shown = subprocess.run(["sh", "-c", "printf '%s\\n' " + remote], cwd=tmp_path, capture_output=True, text=True)
    assert shown.stdout.splitlines() == user_args[:2] + [str(job)]
    assert not (tmp_path / "PWNED").exists()
    one_node = TrainOptions(model="m", data={"mt": "x"}, output="o", num_gpus=1)
    assert deepspeed_command(job, one_node)[-1] == str(job)  # no shell there: the path as it is

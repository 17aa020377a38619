"""Issue 13: safe under faults and hostile files. No code runs from a run folder, signals reach every rank,
no input is overwritten, huge lines and large test sets stay in bounded memory, every failure is one
`ait: error:` line, ids are unique, permissions follow the umask, adapters are matched to their base by
content, and multi-node command lines are quoted for the remote shell."""

from __future__ import annotations

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import AppendRecordWriter, RecordWriter, atomic_path, char_budget, read_records
from aligninstruct_cli.options import OptionError
from aligninstruct_cli.training import checkpoint as ckpt
from conftest import read_jsonl, write_jsonl
from train_helpers import AIT, REPO, make_data, mt_record, worker_env

runner = CliRunner()


def parallel(i, **extra):
    return {"id": i, "src_lang": "en", "tgt_lang": "kk", "src": f"a b {i}", "tgt": f"c d {i}", **extra}


def ait(*args, **kwargs):
    return subprocess.run([AIT, *map(str, args)], cwd=REPO, env=worker_env(), capture_output=True, text=True,
                          timeout=120, **kwargs)


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


# ------------------------------------------------------------------------------------- 3. inputs stay intact
@pytest.mark.parametrize("command", ["build", "score", "probe", "mix", "translate"])
def test_an_output_that_is_an_input_is_refused_before_reading(tmp_path, command):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel(1, hyp="c d"), parallel(2, hyp="c")])
    before = path.read_bytes()
    args = {"build": ["build", "--objective", "mt", str(path), "-o", str(path)],
            "score": ["score", str(path), "-o", str(path)],
            "probe": ["probe", str(path), "--model", "m", "-o", str(path)],
            "mix": ["mix", f"x={path}", "-o", str(path)],
            "translate": ["translate", str(path), "--model", "m", "-o", str(path)]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "is also an input of this command" in result.output
    assert path.read_bytes() == before


def test_the_same_file_by_another_name_is_refused_too(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel(1)])
    os.link(path, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(path)
    for other in ("hard.jsonl", "soft.jsonl"):
        result = runner.invoke(app, ["build", "--objective", "mt", str(tmp_path / other), "-o", str(path)])
        assert result.exit_code == 2 and "is also an input" in result.output
    result = runner.invoke(app, ["score", str(path), "--sentence-level", str(tmp_path / "soft.jsonl")])
    assert result.exit_code == 2 and "--sentence-level" in result.output


# ------------------------------------------------------------------------------------- 4. huge lines
def test_a_huge_field_is_rejected_before_tokenizing_by_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "src.jsonl", [parallel(1), parallel(2, src="x" * 5000)])
    with pytest.raises(InputError, match=r"src.jsonl:2: field 'src': 5,000 characters, more than the 640"):
        list(read_records(str(path), "source", max_chars={"src": char_budget(10)}))
    assert char_budget(10) == 640


class SpyTokenizer:
    """The tiny tokenizer, recording the longest text it was given."""

    def __init__(self, inner):
        self.inner, self.longest = inner, 0

    def __call__(self, texts, **kwargs):
        self.longest = max([self.longest] + [len(t) for t in texts])
        return self.inner(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


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


def test_probe_cuts_a_huge_sentence_before_tokenizing(tiny_bloom_dir, tiny_tokenizer_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aligninstruct_cli.probe import mean_pooled_layers

    spy = SpyTokenizer(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir).eval()
    texts = ["the cat " * 100_000, "the dog"]
    cut = mean_pooled_layers(model, spy, texts, "cpu", max_length=16)
    assert spy.longest == char_budget(16)
    whole = mean_pooled_layers(model, spy.inner, texts, "cpu", max_length=16)  # the same first 16 tokens
    torch.testing.assert_close(cut, whole)


# ------------------------------------------------------------------------------------- 5. bounded score
def test_score_statistics_in_chunks_equal_all_at_once(monkeypatch):
    from aligninstruct_cli.metrics import bleu_chrf

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    refs = [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(57)]
    hyps = [" ".join(w if rng.random() < 0.7 else "x" for w in r.split()) for r in refs]
    langs = ["kk", "de", "zh"] * 19
    for metric in (bleu_chrf.BLEU(), bleu_chrf.CHRF()):
        monkeypatch.setattr(bleu_chrf, "STATS_CHUNK", 10_000)
        whole = metric.segment_stats(refs, hyps, refs, langs)
        monkeypatch.setattr(bleu_chrf, "STATS_CHUNK", 4)
        chunked = metric.segment_stats(refs, hyps, refs, langs)
        assert chunked.dtype == np.int32 and np.array_equal(whole, chunked)
        # and sacrebleu's own statistics, one corpus call per target language's tokenizer
        for lang in ("kk", "zh"):
            idx = [k for k, t in enumerate(langs) if t == lang]
            own = metric._object(lang)._extract_corpus_statistics([hyps[k] for k in idx], [[refs[k] for k in idx]])
            assert np.array_equal(chunked[idx], np.array(own))


def test_bootstrap_in_blocks_draws_the_same_resamples(tmp_path, monkeypatch):
    from aligninstruct_cli.metrics import scoring
    from aligninstruct_cli.metrics.score_options import ScoreOptions

    rng = np.random.default_rng(1)
    records = [parallel(i, tgt=" ".join(rng.choice(["a", "b", "c", "d"], 5)), hyp=" ".join(rng.choice(["a", "b", "c"], 5)))
               for i in range(40)]
    base = write_jsonl(tmp_path / "base.jsonl", records)
    sys_ = write_jsonl(tmp_path / "sys.jsonl", [{**r, "hyp": r["tgt"] if r["id"] % 3 else r["hyp"]} for r in records])
    options = ScoreOptions(metrics=["bleu", "chrf"], baseline=str(base), bootstrap_samples=50, seen="kk")
    whole, _ = scoring.score([str(sys_)], options)
    monkeypatch.setattr(scoring, "RESAMPLE_CHUNK_ELEMENTS", 7 * 40)  # 7 resamples a block
    blocks, _ = scoring.score([str(sys_)], options)
    assert blocks == whole


# ------------------------------------------------------------------------------------- 7. one error line
def test_output_naming_a_directory_is_one_error_and_leaves_nothing(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel(1)])
    (tmp_path / "d").mkdir()
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "d")])
    assert result.exit_code == 2 and "is a directory" in result.output and "Traceback" not in result.output
    assert os.listdir(tmp_path / "d") == [] and sorted(os.listdir(tmp_path)) == ["d", "x.jsonl"]


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_no_temp_file(tmp_path):
    import resource

    path = write_jsonl(tmp_path / "x.jsonl", [parallel(i) for i in range(3000)])
    out = tmp_path / "out" / "y.jsonl"
    out.parent.mkdir()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # EFBIG past 20 kB, as a full disk fails

    result = ait("build", "--objective", "mt", path, "-o", out, preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    assert f"ait: error: {out}: cannot write: file too large" in result.stderr and "MB free on" in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(out.parent) == []


@pytest.mark.parametrize("case", ["data-limit", "mix-summary", "align-model"])
def test_the_other_reported_tracebacks_are_one_clean_error(tmp_path, case):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel(1)])
    out = tmp_path / "out.jsonl"
    if case == "data-limit":
        args = ["data", "opus100", "--pair", "en-kk", "--limit", "-5", "-o", str(out)]
    elif case == "mix-summary":
        args = ["mix", str(write_jsonl(tmp_path / "mt.jsonl", [mt_record(1, "a", "b")])), "-o", str(out),
                "--summary", str(tmp_path / "missing" / "s.json")]
    else:
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "model.json").write_text("{bad")
        args = ["align", str(path), "--model", str(tmp_path / "model"), "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_remove_the_temporary_output(tmp_path, signum):
    out = tmp_path / "y.jsonl"
    proc = subprocess.Popen([AIT, "build", "--objective", "mt", "-", "-o", str(out)], cwd=REPO, env=worker_env(),
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"".join(json.dumps(parallel(i)).encode() + b"\n" for i in range(10)))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 128 + signum
    assert os.listdir(tmp_path) == [] and b"Traceback" not in proc.stderr.read()


# ------------------------------------------------------------------------------------- 6. append lock
def test_an_appending_writer_holds_an_exclusive_lock(tmp_path):
    path = tmp_path / "hyps.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2, "hy')  # a cut-off last line
    with AppendRecordWriter(str(path)) as first:
        assert first.trimmed_bytes == len(b"{\"id\": 2, \"hy")
        first.write({"id": 2})
        with pytest.raises(AitError, match="another ait process is appending to this file"):
            with AppendRecordWriter(str(path)):
                pass
        with pytest.raises(AitError, match="another ait process is appending"):
            AppendRecordWriter.trim_partial_line(str(path))  # `translate --resume` reads the file first
    assert read_jsonl(path) == [{"id": 1}, {"id": 2}]
    with AppendRecordWriter(str(path)) as again:  # released
        again.write({"id": 3})
    assert len(read_jsonl(path)) == 3


# ------------------------------------------------------------------------------------- 9. duplicate ids
def test_duplicate_ids_are_refused_with_the_second_line_or_skipped_with_a_count(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [parallel(1), parallel(2), parallel("1")])  # 1 and "1": one id
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "i.jsonl")])
    assert result.exit_code == 2 and "p.jsonl:3: field 'id': duplicate id '1'" in result.output
    assert not (tmp_path / "i.jsonl").exists()
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "i.jsonl"),
                                 "--on-error", "skip"])
    assert result.exit_code == 0 and "skipped 1 bad record" in result.output
    ids = [r["id"] for r in read_jsonl(tmp_path / "i.jsonl")]
    assert len(ids) == len(set(ids)) == 4  # build's promise: unique instruction ids
    for kind in ("source", "parallel", "instruction"):  # translate, align, train read these
        rec = mt_record(1, "a", "b") if kind == "instruction" else parallel(1)
        dup = write_jsonl(tmp_path / f"{kind}.jsonl", [rec, {**rec}])
        with pytest.raises(InputError, match=f"{kind}.jsonl:2: field 'id': duplicate id"):
            list(read_records(str(dup), kind))
    assert len(list(read_records(str(dup), "any"))) == 2  # other kinds (references, hypotheses) decide themselves


def test_mix_refuses_duplicate_ids_in_an_input(tmp_path):
    rec = mt_record(1, "a", "b")
    path = write_jsonl(tmp_path / "mt.jsonl", [rec, mt_record(2, "c", "d"), rec])
    result = runner.invoke(app, ["mix", str(path), "-o", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 2 and "mt.jsonl:3: field 'id': duplicate id" in result.output
    result = runner.invoke(app, ["mix", str(path), "-o", str(tmp_path / "m.jsonl"), "--on-error", "skip"])
    assert result.exit_code == 0 and len(read_jsonl(tmp_path / "m.jsonl")) == 2


# ------------------------------------------------------------------------------------- 10. permissions
def test_outputs_follow_the_umask_and_a_replaced_file_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        with RecordWriter(str(tmp_path / "new.jsonl")) as out:
            out.write({"id": 1})
        assert stat.S_IMODE(os.stat(tmp_path / "new.jsonl").st_mode) == 0o640
        (tmp_path / "old.jsonl").write_text("")
        os.chmod(tmp_path / "old.jsonl", 0o604)
        with RecordWriter(str(tmp_path / "old.jsonl")) as out:
            out.write({"id": 1})
        assert stat.S_IMODE(os.stat(tmp_path / "old.jsonl").st_mode) == 0o604
        with atomic_path(tmp_path / "plot.png") as tmp:
            tmp.write_bytes(b"png")
        assert stat.S_IMODE(os.stat(tmp_path / "plot.png").st_mode) == 0o640
        with AppendRecordWriter(str(tmp_path / "append.jsonl")) as out:
            out.write({"id": 1})
        assert stat.S_IMODE(os.stat(tmp_path / "append.jsonl").st_mode) == 0o640
        (tmp_path / "adapter").mkdir()
        (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"")
        os.chmod(tmp_path / "adapter" / "adapter_model.safetensors", 0o600)  # as safetensors leaves it
        ckpt.umask_permissions(tmp_path / "adapter")
        assert stat.S_IMODE(os.stat(tmp_path / "adapter" / "adapter_model.safetensors").st_mode) == 0o640
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------- 11. adapter and base
@pytest.fixture(scope="module")
def lora(tmp_path_factory, tiny_bloom_dir):
    """A LoRA adapter trained (made) on the tiny BLOOM, saved by PEFT with ait's base fingerprint."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from aligninstruct_cli import models

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir),
                           LoraConfig(r=4, target_modules=["query_key_value"], task_type="CAUSAL_LM"))
    out = tmp_path_factory.mktemp("lora")
    model.save_pretrained(out)
    models.write_base_fingerprint(out, str(tiny_bloom_dir))
    return out


def test_an_adapter_goes_with_a_copy_of_its_base_wherever_it_lies(tmp_path, tiny_bloom_dir, lora):
    import shutil

    from aligninstruct_cli import models

    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(tiny_bloom_dir, copy)
    models.check_adapter_base(str(lora), str(copy))  # same content: accepted, whatever its path
    loaded = models.load_model(str(copy), str(lora), device="cpu")
    assert loaded.adapter == str(lora)


def test_another_model_in_a_same_named_folder_is_refused_naming_both(tmp_path, tiny_bloom_dir, tiny_tokenizer_dir,
                                                                    lora):
    from transformers import AutoTokenizer

    from aligninstruct_cli import models
    from aligninstruct_cli.tiny import build_tiny_bloom

    impostor = tmp_path / Path(tiny_bloom_dir).name  # the same folder name, another model
    build_tiny_bloom(impostor, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), hidden_size=32)
    with pytest.raises(OptionError, match=r"whose architecture differs from .*\(hidden_size 64 vs 32\)"):
        models.check_adapter_base(str(lora), str(impostor))
    same_shape = tmp_path / "same-shape" / Path(tiny_bloom_dir).name
    build_tiny_bloom(same_shape, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), seed=7)
    with pytest.raises(OptionError, match="same architecture, different weights"):
        models.check_adapter_base(str(lora), str(same_shape))
    # an adapter whose base cannot be examined: the layer shapes are still compared, before PEFT's traceback
    (lora.parent / "bare").mkdir(exist_ok=True)
    bare = lora.parent / "bare"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((lora / name).read_bytes())
    config = json.loads((bare / "adapter_config.json").read_text())
    (bare / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/model"}))
    models.check_adapter_base(str(bare), str(impostor))  # cannot tell: a warning only
    result = runner.invoke(app, ["translate", str(write_jsonl(tmp_path / "s.jsonl", [parallel(1)])), "--model",
                                 str(impostor), "--adapter", str(bare), "-o", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 2, result.output
    assert "does not fit" in result.output and "is 32→96 in the model" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------- 12. multi-node quoting
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

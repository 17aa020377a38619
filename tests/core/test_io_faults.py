"""Reading and writing files under faults and hostile input (io.py, through the commands that use it): no input
is overwritten (an output that is an input, by any name, is refused before reading), a huge field is refused
before tokenizing, every failure is one `ait: error:` line that leaves no partial or temporary file, an appending
writer holds an exclusive lock, ids are unique, and outputs follow the umask."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import AppendRecordWriter, RecordWriter, atomic_path, char_budget, read_records
from aligninstruct_cli.training import checkpoint as ckpt
from conftest import parallel_record, read_jsonl, write_jsonl
from train_helpers import AIT, REPO, mt_record, worker_env

runner = CliRunner()


def ait(*args, **kwargs):
    return subprocess.run([AIT, *map(str, args)], cwd=REPO, env=worker_env(), capture_output=True, text=True,
                          timeout=120, **kwargs)

# ------------------------------------------------------------------------------------- 1. inputs stay intact
@pytest.mark.parametrize("command", ["build", "score", "probe", "mix", "translate"])
def test_an_output_that_is_an_input_is_refused_before_reading(tmp_path, command):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel_record(1, hyp="c d"), parallel_record(2, hyp="c")])
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
    path = write_jsonl(tmp_path / "x.jsonl", [parallel_record(1)])
    os.link(path, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(path)
    for other in ("hard.jsonl", "soft.jsonl"):
        result = runner.invoke(app, ["build", "--objective", "mt", str(tmp_path / other), "-o", str(path)])
        assert result.exit_code == 2 and "is also an input" in result.output
    result = runner.invoke(app, ["score", str(path), "--sentence-level", str(tmp_path / "soft.jsonl")])
    assert result.exit_code == 2 and "--sentence-level" in result.output


# ------------------------------------------------------------------------------------- 2. huge lines
def test_a_huge_field_is_rejected_before_tokenizing_by_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "src.jsonl", [parallel_record(1), parallel_record(2, src="x" * 5000)])
    with pytest.raises(InputError, match=r"src.jsonl:2: field 'src': 5,000 characters, more than the 640"):
        list(read_records(str(path), "source", max_chars={"src": char_budget(10)}))
    assert char_budget(10) == 640


# ------------------------------------------------------------------------------------- 3. one error line
def test_output_naming_a_directory_is_one_error_and_leaves_nothing(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [parallel_record(1)])
    (tmp_path / "d").mkdir()
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "d")])
    assert result.exit_code == 2 and "is a directory" in result.output and "Traceback" not in result.output
    assert os.listdir(tmp_path / "d") == [] and sorted(os.listdir(tmp_path)) == ["d", "x.jsonl"]


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_no_temp_file(tmp_path):
    import resource

    path = write_jsonl(tmp_path / "x.jsonl", [parallel_record(i) for i in range(3000)])
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
    path = write_jsonl(tmp_path / "x.jsonl", [parallel_record(1)])
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
    proc.stdin.write(b"".join(json.dumps(parallel_record(i)).encode() + b"\n" for i in range(10)))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 128 + signum
    assert os.listdir(tmp_path) == [] and b"Traceback" not in proc.stderr.read()


# ------------------------------------------------------------------------------------- 4. append lock
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


# ------------------------------------------------------------------------------------- 5. duplicate ids
def test_duplicate_ids_are_refused_with_the_second_line_or_skipped_with_a_count(tmp_path):
    records = [parallel_record(1), parallel_record(2), parallel_record("1")]  # 1 and "1": one id
    path = write_jsonl(tmp_path / "p.jsonl", records)
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "i.jsonl")])
    assert result.exit_code == 2 and "p.jsonl:3: field 'id': duplicate id '1'" in result.output
    assert not (tmp_path / "i.jsonl").exists()
    result = runner.invoke(app, ["build", "--objective", "mt", str(path), "-o", str(tmp_path / "i.jsonl"),
                                 "--on-error", "skip"])
    assert result.exit_code == 0 and "skipped 1 bad record" in result.output
    ids = [r["id"] for r in read_jsonl(tmp_path / "i.jsonl")]
    assert len(ids) == len(set(ids)) == 4  # build's promise: unique instruction ids
    for kind in ("source", "parallel", "instruction"):  # translate, align, train read these
        rec = mt_record(1, "a", "b") if kind == "instruction" else parallel_record(1)
        dup = write_jsonl(tmp_path / f"{kind}.jsonl", [rec, {**rec}])
        with pytest.raises(InputError, match=f"{kind}.jsonl:2: field 'id': duplicate id"):
            list(read_records(str(dup), kind))
    assert len(list(read_records(str(dup), "any"))) == 2  # other kinds (references, hypotheses) decide themselves


# ------------------------------------------------------------------------------------- 6. permissions
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

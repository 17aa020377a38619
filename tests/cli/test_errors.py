"""Every bad-input case exits non-zero with one message naming file and line, no traceback, and no
partial output file; a closed output pipe ends the run quietly with exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from typer.testing import CliRunner

from conftest import flat
from aligninstruct_cli.cli import app, main_options

runner = CliRunner()

GOOD = {"id": 1, "src_lang": "en", "tgt_lang": "kk", "src": "Hello world", "tgt": "Сәлем әлем"}
GOOD_JSON = orjson.dumps(GOOD) + b"\n"


def good_lines(n: int, start: int = 1) -> bytes:
    """`n` copies of GOOD with ids start, start + 1, ... (ids must be unique in a file)."""
    return b"".join(orjson.dumps({**GOOD, "id": start + k}) + b"\n" for k in range(n))
GOOD_TSV = "Hello world\tСәлем әлем\n".encode()

# name -> (file name, bytes, expected message fragment); the bad line is always line 2.
CASES = {
    "no tab": ("in.tsv", GOOD_TSV + b"Hello world\n", "expected 2 columns"),
    "empty side": ("in.tsv", GOOD_TSV + b"Hello\t  \n", "field 'tgt': empty"),
    "invalid UTF-8 (tsv)": ("in.tsv", GOOD_TSV + b"Hello\t\xff\xfe\n", "invalid UTF-8 at byte 6"),
    "invalid UTF-8 (jsonl)": ("in.jsonl", GOOD_JSON + b'{"id": 2, "src": "\xc3"}\n', "invalid UTF-8"),
    "CRLF input": ("in.tsv", GOOD_TSV + b"Hello\tworld\r\n", "CRLF"),
    "malformed JSON": ("in.jsonl", GOOD_JSON + b'{"id": 2, "src_lang": "en",\n', "malformed JSON"),
    "missing field": ("in.jsonl", GOOD_JSON + orjson.dumps({k: v for k, v in GOOD.items() if k != "tgt"}) + b"\n",
                      "field 'tgt': missing"),
    "unknown language": ("in.jsonl", GOOD_JSON + orjson.dumps(dict(GOOD, tgt_lang="kz")) + b"\n",
                         "field 'tgt_lang': unknown language 'kz'"),
    "wrong type": ("in.jsonl", GOOD_JSON + orjson.dumps(dict(GOOD, src=["a"])) + b"\n",
                   "field 'src': expected a string"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_naming_file_and_line_without_partial_output(tmp_path, case):
    name, data, message = CASES[case]
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out.jsonl"
    args = ["build", str(src), "-o", str(out), "--src-lang", "en", "--tgt-lang", "kk"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert f"{src}:2: " in res.stderr and message in res.stderr, res.stderr
    assert res.stderr.startswith("ait: error: ") and "Traceback" not in res.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left behind


def test_unknown_language_suggests_near_matches(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps(dict(GOOD, tgt_lang="kazak")) + b"\n")
    res = runner.invoke(app, ["build", str(src)])
    assert res.exit_code == 2
    assert "did you mean kk (kaz_Cyrl, Kazakh)" in res.stderr
    res = runner.invoke(app, ["build", str(src), "--src-lang", "englsh"])
    assert res.exit_code == 2 and "unknown language 'englsh'" in res.stderr and "en (eng_Latn, English)" in res.stderr


def test_on_error_skip_counts_and_reports(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD_JSON + b"{oops\n" + good_lines(1, 2) + orjson.dumps(dict(GOOD, src="")) + b"\n"
                    + good_lines(1, 3))
    res = runner.invoke(app, ["build", str(src), "--on-error", "skip"])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 3 * 2
    assert "skipped 2 bad record(s)" in res.stderr
    assert f"{src}:2: malformed JSON" in res.stderr and f"{src}:4: field 'src': empty" in res.stderr
    res = runner.invoke(app, ["build", str(src), "--on-error", "ignore"])
    assert res.exit_code == 2 and "'ignore' is not one of 'fail', 'skip'" in flat(res.stderr)


def test_missing_input_and_missing_output_directory(tmp_path):
    res = runner.invoke(app, ["build", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2 and "no such file" in res.stderr
    src = tmp_path / "in.jsonl"
    src.write_bytes(GOOD_JSON)
    res = runner.invoke(app, ["build", str(src), "-o", str(tmp_path / "no" / "out.jsonl")])
    assert res.exit_code == 2 and "does not exist" in res.stderr


def _ait(*args: str) -> list[str]:
    return [sys.executable, "-m", "aligninstruct_cli", *args]


def test_stdin_to_stdout_in_a_real_process():
    proc = subprocess.run(_ait("build", "-", "--direction", "en-xx"), input=good_lines(3), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == 3


@pytest.mark.parametrize("command", ["build", "mix"])
def test_output_into_a_closed_pipe_exits_0_quietly(tmp_path, command):
    src = tmp_path / "in.jsonl"
    if command == "build":
        src.write_bytes(good_lines(20000))  # far more than a pipe buffer
    else:
        rec = {"id": "1:mt", "objective": "mt", "src_lang": "en", "tgt_lang": "kk", "input": "x" * 200,
               "output": "y", "source_id": 1}
        src.write_bytes(b"".join(orjson.dumps({**rec, "id": f"{k}:mt"}) + b"\n" for k in range(10000)))
    script = " ".join(_ait(command, str(src))) + ' | head -1 > /dev/null; exit "${PIPESTATUS[0]}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "0"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr and b"Error" not in proc.stderr, proc.stderr.decode()


def test_help_is_complete():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for command in ("build-instructions", "build", "mix"):
        assert command in res.stdout
    res = runner.invoke(app, ["build", "--help"])
    assert res.exit_code == 0
    for option in ("--objective", "--direction", "--seed", "--negatives", "--pairs-per-sentence", "--max-hints",
                   "--revise-pool", "--output", "--on-error", "--input-format", "--src-lang", "--tgt-lang"):
        assert option in res.stdout, option
    res = runner.invoke(app, ["mix", "--help"])
    assert res.exit_code == 0
    for option in ("--mode", "--weight", "--max-per-lang", "--seed", "--output", "--tmp-dir", "--summary",
                   "--on-error"):
        assert option in res.stdout, option


def test_quiet_silences_the_hub_and_transformers_progress_bars(monkeypatch):
    """`ait -q` (or stderr not a terminal) turns off huggingface_hub's and transformers' own tqdm bars
    (transformers 5 draws one per model load) in this process and in the training ranks it starts."""
    from aligninstruct_cli import console

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "")  # so that monkeypatch restores it afterwards
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    from rich.console import Console

    monkeypatch.setattr(console, "stderr", Console(stderr=True, force_terminal=True))  # only -q decides
    main_options(version=None, quiet=False)
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ and console.quiet_environment() == {}
    console.set_quiet(True)
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ  # the library leaves the environment alone
    main_options(version=None, quiet=True)  # the entry point sets it, for the libraries it imports later
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    console.set_quiet(False)


def test_quiet_leaves_out_summary_warnings_and_deepspeeds_info_lines(monkeypatch, tmp_path):
    """`ait -q`: build's count warnings (part of its summary) are left out, a real warning is not, and the
    DeepSpeed launcher is asked for warnings only (its default level is info)."""
    from aligninstruct_cli import console
    from aligninstruct_cli.training import launch
    from aligninstruct_cli.training.train_options import TrainOptions

    printed: list[str] = []
    monkeypatch.setattr(console.stderr, "print", lambda text, **_: printed.append(str(text)))
    options = TrainOptions(model="m", data={"mt": "x.jsonl"}, output=str(tmp_path / "run"))
    try:
        console.set_quiet(True)
        console.notice("align: 3 of 9 sentence pair(s) have no gold pair")
        console.warn("the loss is not falling")
        assert printed == ["[yellow]warning:[/yellow] the loss is not falling"]
        assert launch.deepspeed_command("job.json", options)[3:5] == ["--log_level", "warning"]
        console.set_quiet(False)
        console.notice("align: 3 of 9 sentence pair(s) have no gold pair")
        assert len(printed) == 2 and "no gold pair" in printed[1]
        assert "--log_level" not in launch.deepspeed_command("job.json", options)
    finally:
        console.set_quiet(False)

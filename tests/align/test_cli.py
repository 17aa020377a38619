"""ait align through the CLI: formats, bad input, saved models, the pipe into ait build, eflomal."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from conftest import flat
from aligninstruct_cli.cli import app
from aligninstruct_cli.records import validate_aligned

runner = CliRunner()
AIT = [sys.executable, "-m", "aligninstruct_cli"]


def _corpus_lines(n=150, seed=0):
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(30)]
    out = []
    for _ in range(n):
        src = [rng.choice(words) for _ in range(rng.randint(2, 7))]
        tgt = [w.upper() for w in src]
        if len(tgt) > 2 and rng.random() < 0.3:
            tgt[0], tgt[1] = tgt[1], tgt[0]
        out.append((" ".join(src), " ".join(tgt)))
    return out


@pytest.fixture
def tsv(tmp_path) -> Path:
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in _corpus_lines()), encoding="utf-8")
    return path


def _run(*args, input=None):
    return runner.invoke(app, ["-q", "align", *map(str, args)], input=input)


def _records(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_jsonl_output_is_valid_and_pharaoh_matches_its_links(tsv):
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de")
    assert res.exit_code == 0, res.output
    records = _records(res.stdout)
    assert len(records) == 150
    for rec in records:
        validate_aligned(rec)
    assert records[0]["id"] == "1" and records[0]["src_lang"] == "en"
    assert sum(len(r["pairs"]) for r in records) > 150
    ph = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--format", "pharaoh")
    assert ph.exit_code == 0, ph.output
    lines = ph.stdout.split("\n")[:-1]
    assert lines == [" ".join(f"{i}-{j}" for i, j in r["links"]) for r in records]


def test_forward_pharaoh_from_fast_align_style_input_on_stdin(tsv):
    text = "".join(f"{s} ||| {t}\n" for s, t in _corpus_lines())
    res = _run("-", "--src-lang", "en", "--tgt-lang", "de", "--format", "pharaoh", "--links", "forward",
               input=text)
    assert res.exit_code == 0, res.output
    lines = res.stdout.split("\n")[:-1]
    assert len(lines) == 150
    # forward links: at most one source word per target word
    for line in lines:
        targets = [link.split("-")[1] for link in line.split()]
        assert len(targets) == len(set(targets))


@pytest.mark.parametrize("bad_line,message", [
    ("w1 w2\t   \n", "corpus.tsv:3: field 'tgt': empty"),
    ("w1 w2\tW1\tW2\n", "corpus.tsv:3: expected 2 columns"),
    ("w1 " * 12 + "\tW1\n", "corpus.tsv:3: field 'src': 12 tokens, more than --max-tokens 10"),
])
def test_bad_input_names_file_line_and_field(tmp_path, bad_line, message):
    path = tmp_path / "corpus.tsv"
    good = "".join(f"{s}\t{t}\n" for s, t in _corpus_lines(4))
    lines = good.splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + bad_line + "".join(lines[2:]), encoding="utf-8")
    res = _run(path, "--src-lang", "en", "--tgt-lang", "de", "--max-tokens", "10")
    assert res.exit_code == 2
    assert message in res.stderr
    assert "Traceback" not in res.output
    skipped = _run(path, "--src-lang", "en", "--tgt-lang", "de", "--max-tokens", "10", "--on-error", "skip")
    assert skipped.exit_code == 0, skipped.output
    assert len(_records(skipped.stdout)) == 4


def test_skip_reports_the_count(tmp_path):
    path = tmp_path / "corpus.tsv"
    lines = [f"{s}\t{t}\n" for s, t in _corpus_lines(6)]
    lines[1] = "only one column\n"
    lines[4] = "w1\t \n"
    path.write_text("".join(lines), encoding="utf-8")
    res = runner.invoke(app, ["align", str(path), "--src-lang", "en", "--tgt-lang", "de", "--on-error", "skip"])
    assert res.exit_code == 0, res.output
    assert "skipped 2 bad record(s)" in res.stderr
    assert [r["id"] for r in _records(res.stdout)] == ["1", "3", "4", "6"]


def test_empty_input_gives_empty_output(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    res = _run(path)
    assert res.exit_code == 0
    assert res.stdout == ""


def test_option_errors_are_clean(tsv, tmp_path):
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--links", "grow")
    assert res.exit_code == 2 and "'grow' is not one of 'forward'" in flat(res.stderr)
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--tokenize", "words")
    assert res.exit_code == 2 and "--tokenize" in res.stderr
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--model", tmp_path)
    assert res.exit_code == 2 and "not an alignment model" in res.stderr


def test_save_model_then_align_new_data_with_it(tsv, tmp_path):
    model = tmp_path / "model"
    trained = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--lowercase", "--save-model", model)
    assert trained.exit_code == 0, trained.output
    assert (model / "model.json").is_file() and (model / "tables.npz").is_file()
    again = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--model", model)
    assert again.exit_code == 0, again.output
    assert again.stdout == trained.stdout  # same sentences, same model: the same records
    new = tmp_path / "new.tsv"
    new.write_text("w1 w2 novel\tNOVEL W1 W2\n", encoding="utf-8")
    res = _run(new, "--src-lang", "en", "--tgt-lang", "de", "--model", model, "--format", "pharaoh")
    assert res.exit_code == 0, res.output
    assert {"0-1", "1-2"} <= set(res.stdout.split())
    fwd_only = tmp_path / "fwd"
    _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--format", "pharaoh", "--links", "forward",
         "--save-model", fwd_only)
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--model", fwd_only)
    assert res.exit_code == 2 and "no reverse direction" in res.stderr


def test_align_output_pipes_into_build_align(tsv):
    """`ait align ... | ait build --objective align` in real processes."""
    align = subprocess.Popen([*AIT, "-q", "align", str(tsv), "--src-lang", "en", "--tgt-lang", "kk"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    build = subprocess.run([*AIT, "-q", "build", "--objective", "align", "-"], stdin=align.stdout,
                           capture_output=True, timeout=300)
    align.stdout.close()
    assert align.wait(timeout=300) == 0, align.stderr.read().decode()
    assert build.returncode == 0, build.stderr.decode()
    records = _records(build.stdout.decode())
    assert records and all(r["objective"] == "align" for r in records)
    assert {r["output"] for r in records} >= {"True"}


def test_eflomal_backend_gives_the_same_kind_of_records(tsv):
    pytest.importorskip("eflomal")
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--backend", "eflomal")
    assert res.exit_code == 0, res.output
    records = _records(res.stdout)
    assert len(records) == 150
    for rec in records:
        validate_aligned(rec)
    assert sum(len(r["pairs"]) for r in records) > 100
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--backend", "eflomal", "--save-model", "x")
    assert res.exit_code == 2 and "--save-model needs --backend fast_align" in res.stderr


def test_eflomal_missing_is_a_clear_error(tsv, monkeypatch):
    monkeypatch.setitem(sys.modules, "eflomal", None)  # import eflomal now raises ImportError
    res = _run(tsv, "--src-lang", "en", "--tgt-lang", "de", "--backend", "eflomal")
    assert res.exit_code == 2
    assert "needs the optional package eflomal" in res.stderr


@pytest.mark.parametrize("links", ["forward", "reverse"])
def test_directional_pharaoh_matches_jsonl_links_when_lengths_differ(tmp_path, links):
    rng = random.Random(4)
    lines = []
    for s, t in _corpus_lines(120, seed=2):
        extra = " ".join(f"x{rng.randint(0, 9)}" for _ in range(rng.randint(0, 12)))
        lines.append((f"{s} {extra}".strip(), t) if rng.random() < 0.5 else (s, f"{t} {extra.upper()}".strip()))
    path = tmp_path / "uneven.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in lines), encoding="utf-8")
    ph = _run(path, "--src-lang", "en", "--tgt-lang", "de", "--format", "pharaoh", "--links", links)
    js = _run(path, "--src-lang", "en", "--tgt-lang", "de", "--links", links)
    assert ph.exit_code == 0 and js.exit_code == 0, ph.output + js.output
    expected = [{f"{i}-{j}" for i, j in r["links"]} for r in _records(js.stdout)]
    assert [set(line.split()) for line in ph.stdout.split("\n")[:-1]] == expected
    if links == "forward":  # fast_align's own order: by target position
        for line in ph.stdout.split("\n")[:-1]:
            targets = [int(link.split("-")[1]) for link in line.split()]
            assert targets == sorted(targets)

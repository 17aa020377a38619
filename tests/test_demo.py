"""The demo: toy languages, docs = config, and a quick end-to-end run of the demo experiment."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.demo import toylang
from aligninstruct_cli.demo.build import MOONLANDIC, SUNLANDIC, make_toy_data
from aligninstruct_cli.errors import AitError
from conftest import write_jsonl

runner = CliRunner()

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "aligninstruct_cli" / "demo" / "demo.yaml"


def test_docs_show_the_demo_config_verbatim_and_examples_link_to_it():
    doc = (ROOT / "docs" / "demo.md").read_text(encoding="utf-8")
    block = doc.split("## The config", 1)[1].split("```yaml\n", 1)[1].split("\n```", 1)[0]
    assert block + "\n" == CONFIG.read_text(encoding="utf-8"), \
        "docs/demo.md must show aligninstruct_cli/demo/demo.yaml verbatim"
    assert (ROOT / "examples" / "demo.yaml").resolve() == CONFIG


def test_toy_translation_follows_the_word_order_rules():
    lex = {w: w.upper() for w in toylang.ENGLISH_WORDS}
    parts = [("the", "big", "dog"), ("sees",), ("a", "cat"), ("near", "the", "river"), ("today",)]
    assert toylang.to_toy(parts, lex, "sov") == "DOG BIG THE CAT RIVER THE NEAR TODAY SEES"
    assert toylang.to_toy(parts, lex, "svo") == "THE BIG DOG SEES CAT NEAR THE RIVER TODAY"


def test_moonlandic_is_a_relative_of_sunlandic():
    assert sorted(MOONLANDIC.values()) == sorted(SUNLANDIC.values())  # same forms, known to the base
    moved = [w for w in SUNLANDIC if MOONLANDIC[w] != SUNLANDIC[w]]
    assert len(moved) == round(0.3 * len(SUNLANDIC))
    assert len(set(MOONLANDIC.values())) == len(MOONLANDIC)  # still one form per meaning


def test_toy_data_is_deterministic_and_tests_both_directions(tmp_path):
    make_toy_data(tmp_path / "a", seen=5, unseen=5, dev=3, test=4)
    make_toy_data(tmp_path / "b", seen=5, unseen=5, dev=3, test=4)
    for name in ("seen-train.jsonl", "unseen-train.jsonl", "unseen-dev.jsonl", "unseen-test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    test = [orjson.loads(line) for line in (tmp_path / "a" / "unseen-test.jsonl").read_bytes().splitlines()]
    assert [(r["src_lang"], r["tgt_lang"]) for r in test] == [("en", "qab"), ("qab", "en")] * 4
    assert test[0]["src"] == test[1]["tgt"] and test[0]["id"] == "test.1.en-qab"
    rng = random.Random(0)
    english = " ".join(w for part in toylang.english_sentence(rng) for w in part)
    assert english.split()[0] in toylang.DETERMINERS


@pytest.mark.slow
def test_quick_demo_runs_every_step_through_the_experiment(tmp_path):
    """`ait demo run --quick`: the demo experiment on very little data (~2 min on 2 cores)."""
    out = tmp_path / "demo"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "demo", "run", "--quick", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for artefact in ("train/untrained/final/config.json", "train/MTInstruct/final/adapter_config.json",
                     "train/MT+Align/final/adapter_config.json", "translate/untrained/hyps.jsonl",
                     "translate/MTInstruct/hyps.jsonl", "translate/MT+Align/hyps.jsonl", "tables/demo.md",
                     "tables/demo.tsv", "tables/demo.json", "loss.png", "probe.png", "report.md"):
        assert (out / artefact).exists(), artefact
    scores = orjson.loads((out / "tables" / "demo.json").read_bytes())
    assert [s["name"] for s in scores["systems"]] == ["MTInstruct", "untrained", "MT+Align"]
    assert {g["key"] for g in scores["groups"]} >= {"test:en→xx", "test:xx→en"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "### demo" in report and "Δ2" in report and "![training and validation loss](loss.png)" in report
    # next to its table: one run, which another seed or machine moves (docs/demo.md has the spread)
    note = report.split("### demo")[1].split("##")[0]
    assert "One run per system" in note and "either side" in note and "seeds: [0, 1, 2]" in note
    assert " [" in (out / "tables" / "demo.md").read_text(encoding="utf-8")  # every score's interval
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_toy_model_and_comet_from_a_users_corpus(tmp_path):
    from aligninstruct_cli.demo.build import corpus_texts

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("the cat sees\tmysyq koredi\nthe dog\tit\n", encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "src": "a b", "tgt": "c d"}, {"input": "x", "output": "y"}])
    text = tmp_path / "t.txt"
    text.write_text("one sentence\n\nanother ||| other\n", encoding="utf-8")
    assert corpus_texts(tsv) == ["the cat sees", "mysyq koredi", "the dog", "it"]
    assert corpus_texts(jsonl) == ["a b", "c d", "x", "y"]
    assert corpus_texts(text) == ["one sentence", "another", "other"]
    with pytest.raises(AitError, match="no seen-train.jsonl"):
        corpus_texts(tmp_path)
    result = runner.invoke(app, ["demo", "toy-model", "--data", str(tsv), "-o", str(tmp_path / "m"), "--vocab-size",
                                 "300"])
    assert result.exit_code == 0, result.output
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(tmp_path / "m").model_type == "bloom"
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok.convert_ids_to_tokens(tok("mysyq")["input_ids"]) != ["<unk>"]

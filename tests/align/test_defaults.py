"""`ait align`'s defaults are the paper configs' settings (`tokenize: simple, lowercase: true`: estimation on
normalised tokens, spans printed as the sentence has them), and its summary carries a gold-pair quality
signal (shares of punctuation-only pairs, pairs that differ only in punctuation, words carrying punctuation)."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from aligninstruct_cli.align.pipeline import AlignOptions, CorpusAligner, align_records
from aligninstruct_cli.align.spans import PAIR_SIGNALS, pair_signals
from aligninstruct_cli.cli import app

WORDS = [("Dog", "Ит"), ("cat", "мысық"), ("house", "үй"), ("water", "су"), ("Bread", "нан"), ("sun", "күн")]


def _records(n: int = 60) -> list[dict]:
    out = []
    for k in range(n):
        a, b = WORDS[k % len(WORDS)], WORDS[(k + 1) % len(WORDS)]
        out.append({"id": str(k), "src_lang": "en", "tgt_lang": "kk",
                    "src": f"“{a[0]} {b[0]}.”", "tgt": f"«{a[1]} {b[1]}.»"})
    return out


def test_default_is_simple_lowercased_estimation_with_the_sentences_own_spans():
    options = AlignOptions(progress=False)
    with CorpusAligner(options) as aligner:
        assert aligner.tokenize == ("simple", "simple") and aligner.lowercase is True
        src, tgt = aligner.tokens(_records()[0])
    assert src == ["“", "dog", "cat", ".", "”"] and tgt == ["«", "ит", "мысық", ".", "»"]  # the model's keys
    out = align_records(_records(), options)
    assert out[0]["src_tokens"] == ["“", "Dog", "cat", ".", "”"]  # the sentence's own case
    pairs = {(p["src"], p["tgt"]) for rec in out for p in rec["pairs"]}
    assert ("Dog", "Ит") in pairs and not any(p[0].startswith("“") for p in pairs)
    # the old behaviour, on request: whitespace tokens keep the punctuation on the words
    old = align_records(_records(), AlignOptions(tokenize=("whitespace", "whitespace"), lowercase=False,
                                                  progress=False))
    assert old[0]["src_tokens"] == ["“Dog", "cat.”"]


def test_pair_signals():
    assert pair_signals({"src": "Dog", "tgt": "Ит"}) == []
    assert pair_signals({"src": ".", "tgt": "үй"}) == ["punctuation-only"]
    assert pair_signals({"src": "muppets'", "tgt": "Muppets"}) == ["differ only in punctuation",
                                                                  "punctuation attached to a word"]
    assert pair_signals({"src": "dolls", "tgt": "“қуыршақтар"}) == ["punctuation attached to a word"]
    assert PAIR_SIGNALS[0] == "punctuation-only"


def test_summary_reports_the_gold_pair_signal(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _records()))
    result = CliRunner().invoke(app, ["align", str(data), "--tokenize", "whitespace", "--no-lowercase",
                                      "-o", str(tmp_path / "ws.jsonl")])
    assert result.exit_code == 0, result.output
    out = [orjson.loads(x) for x in (tmp_path / "ws.jsonl").read_bytes().splitlines()]
    pairs = [p for rec in out for p in rec["pairs"]]
    attached = sum("punctuation attached to a word" in pair_signals(p) for p in pairs)
    message = " ".join(result.output.split())
    assert attached and f"{attached / len(pairs):.1%} punctuation attached to a word" in message
    result = CliRunner().invoke(app, ["align", str(data), "-o", str(tmp_path / "default.jsonl")])
    assert "0.0% punctuation attached to a word" in " ".join(result.output.split())

"""`ait score` on plain-text files, as sacrebleu's users run it: the same numbers and signatures as sacrebleu's
Python API and its command, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aligninstruct_cli.cli import app

runner = CliRunner()
AIT = str(Path(sys.executable).with_name("ait"))


def test_plain_text_score_equals_sacrebleu_numbers_and_signatures(flores_kk):
    from sacrebleu.metrics import BLEU, CHRF

    hyps, refs = flores_kk["lines"]["hyp"], flores_kk["lines"]["ref"]
    result = runner.invoke(app, ["score", str(flores_kk["hyp"]), "--refs", str(flores_kk["ref"]), "--src-lang", "en",
                                 "--tgt-lang", "kk", "-m", "bleu", "-m", "chrf", "-f", "json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["systems"][0]["directions"]["en-kk"]
    bleu, chrf = BLEU(), CHRF(word_order=2)
    expected_bleu, expected_chrf = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    assert scores["bleu"]["score"] == expected_bleu.score and 0 < expected_bleu.score < 100
    assert scores["chrf"]["score"] == expected_chrf.score
    assert scores["bleu"]["signature"] == bleu.get_signature().format()
    assert scores["chrf"]["signature"] == chrf.get_signature().format()

    # sacrebleu's flags, -i and stdin: lowercased BLEU with the intl tokenizer
    lowered = BLEU(lowercase=True, tokenize="intl")
    for args, stdin in (([ "-i", str(flores_kk["hyp"])], None), (["-"], flores_kk["hyp"].read_text(encoding="utf-8"))):
        result = runner.invoke(app, ["score", *args, "-r", str(flores_kk["ref"]), "--src-lang", "en", "--tgt-lang",
                                     "kk", "-m", "bleu", "-lc", "-tok", "intl", "-f", "json"], input=stdin)
        assert result.exit_code == 0, result.output
        got = json.loads(result.stdout)["systems"][0]["directions"]["en-kk"]["bleu"]
        assert got["score"] == lowered.corpus_score(hyps, [refs]).score
        assert got["signature"] == lowered.get_signature().format() and "case:lc" in got["signature"]


def test_plain_text_score_equals_the_sacrebleu_command(flores_kk):
    proc = subprocess.run([str(Path(sys.executable).with_name("sacrebleu")), str(flores_kk["ref"]), "-i",
                           str(flores_kk["hyp"]), "-m", "bleu", "chrf", "--chrf-word-order", "2", "-w", "4"],
                          capture_output=True, text=True, check=True)
    bleu, chrf = json.loads(proc.stdout)
    result = runner.invoke(app, ["score", str(flores_kk["hyp"]), "--refs", str(flores_kk["ref"]), "--src-lang", "en",
                                 "--tgt-lang", "kk", "-f", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"] == ["bleu", "chrf"]  # no --src: COMET left out of the default metrics, with a note
    scores = report["systems"][0]["directions"]["en-kk"]
    assert (round(scores["bleu"]["score"], 4), round(scores["chrf"]["score"], 4)) == (bleu["score"], chrf["score"])
    assert (scores["bleu"]["signature"], scores["chrf"]["signature"]) == (bleu["signature"], chrf["signature"])
    assert report["systems"][0]["name"] == "hyp" and report["n_segments"] == 300


def test_plain_text_score_errors(flores_kk, tmp_path):
    base = ["score", str(flores_kk["hyp"]), "--refs", str(flores_kk["ref"])]
    cases = [
        (base, "plain-text hypotheses need --src-lang and --tgt-lang"),
        (base + ["--src-lang", "en", "--tgt-lang", "kk", "--metrics", "comet"], "COMET needs the source sentences"),
        (["score", str(flores_kk["hyp"]), "--src-lang", "en", "--tgt-lang", "kk", "-m", "bleu"], "no reference"),
        (base + ["--src-lang", "en", "--tgt-lang", "kk", "--src", str(tmp_path / "short.txt")], "no such file"),
        (["score", "--refs", str(flores_kk["ref"])], "no hypotheses"),
    ]
    (tmp_path / "one.txt").write_text("a\n", encoding="utf-8")
    cases.append((base + ["--src-lang", "en", "--tgt-lang", "kk", "--src", str(tmp_path / "one.txt")],
                  "has 300 hypotheses but"))
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (message, result.output)

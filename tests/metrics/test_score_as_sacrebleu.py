"""`ait score` as sacrebleu and comet-score users type it: several references (nrefs), `-m bleu chrf`
with spaces, TER, `--chrf-word-order`, `-b`/`-w`, `--confidence`, `-tok` without languages, comet-score's
flag spellings. Numbers and signatures are compared with sacrebleu's API on the same FLORES-200 files."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from conftest import perturb

runner = CliRunner()
N = 200


@pytest.fixture(scope="module")
def flores(shared_data, tmp_path_factory):
    """FLORES-200 devtest en→kk: the source, the reference, a second reference and a hypothesis (the reference
    perturbed two ways)."""
    out = tmp_path_factory.mktemp("flores-refs")
    src = (shared_data / "flores200/devtest/eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:N]
    ref = (shared_data / "flores200/devtest/kaz_Cyrl.devtest").read_text(encoding="utf-8").splitlines()[:N]
    files = {"src": src, "ref": ref, "ref2": perturb(ref, seed=5), "hyp": perturb(ref, seed=1)}
    for name, lines in files.items():
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: out / f"{name}.txt" for name in files} | {"lines": files}


def score(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["-q", "score", *map(str, args)])
    return result.exit_code, result.output


def only_direction(report: dict) -> dict:
    (scores,) = report["systems"][0]["directions"].values()
    return scores


def test_several_references_ter_and_tok_without_languages_equal_sacrebleu(flores):
    from sacrebleu.metrics import BLEU, CHRF, TER

    lines = flores["lines"]
    refs = [[r.rstrip() for r in lines["ref"]], [r.rstrip() for r in lines["ref2"]]]
    hyps = [h.rstrip() for h in lines["hyp"]]
    code, out = score(flores["hyp"], "--refs", flores["ref"], "--refs", flores["ref2"], "-tok", "13a",
                      "-m", "bleu", "chrf", "ter", "-f", "json")
    assert code == 0, out
    report = json.loads(out)
    assert report["metrics"] == ["bleu", "chrf", "ter"] and report["directions"][0]["key"] == "?-?"
    scores = only_direction(report)
    for name, metric in (("bleu", BLEU(tokenize="13a")), ("chrf", CHRF(word_order=2)), ("ter", TER())):
        expected = metric.corpus_score(hyps, refs)
        assert scores[name]["score"] == expected.score, name
        assert scores[name]["signature"] == metric.get_signature().format(), name
        assert "nrefs:2" in scores[name]["signature"]
    # one reference: nrefs:1 and other numbers
    code, out = score(flores["hyp"], "--refs", flores["ref"], "-tok", "13a", "-m", "bleu", "-f", "json")
    one = only_direction(json.loads(out))["bleu"]
    assert one["score"] == BLEU(tokenize="13a").corpus_score(hyps, refs[:1]).score != scores["bleu"]["score"]
    assert "nrefs:1" in one["signature"]


def test_chrf_word_order_score_only_and_width_print_as_sacrebleu(flores):
    from sacrebleu.metrics import BLEU, CHRF

    lines = flores["lines"]
    refs = [[r.rstrip() for r in lines["ref"]]]
    hyps = [h.rstrip() for h in lines["hyp"]]
    code, out = score(flores["hyp"], "-r", flores["ref"], "--src-lang", "en", "--tgt-lang", "kk", "-m", "chrf",
                      "bleu", "--chrf-word-order", "0", "-b", "-w", "3")
    assert code == 0, out
    chrf = CHRF(word_order=0).corpus_score(hyps, refs)
    bleu = BLEU().corpus_score(hyps, refs)
    assert out.splitlines() == [chrf.format(width=3, score_only=True), bleu.format(width=3, score_only=True)]
    code, out = score(flores["hyp"], "-r", flores["ref"], "--src-lang", "en", "--tgt-lang", "kk", "-m", "chrf",
                      "--chrf-word-order", "0", "-w", "1")
    assert f" {chrf.score:.1f} " in out and "chrF signature" in out and "nw:0" in out


def test_confidence_intervals_equal_sacrebleus(flores):
    from sacrebleu.metrics import BLEU, CHRF

    lines = flores["lines"]
    refs = [[r.rstrip() for r in lines["ref"]]]
    hyps = [h.rstrip() for h in lines["hyp"]]
    code, out = score(flores["hyp"], "-r", flores["ref"], "--src-lang", "en", "--tgt-lang", "kk", "-m", "bleu",
                      "chrf", "--confidence", "-f", "json")
    assert code == 0, out
    scores = only_direction(json.loads(out))
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF(word_order=2))):
        expected = metric.corpus_score(hyps, refs, n_bootstrap=1000)
        assert scores[name]["score"] == expected.score
        assert scores[name]["confidence_mean"] == pytest.approx(expected._mean, abs=1e-9)
        assert scores[name]["confidence_var"] == pytest.approx(expected._ci, abs=1e-9)
        assert scores[name]["signature"] == metric.get_signature().format()  # with bs:1000 and seed:12345
        assert "bs:1000" in scores[name]["signature"]
    code, out = score(flores["hyp"], "-r", flores["ref"], "--src-lang", "en", "--tgt-lang", "kk", "-m", "bleu",
                      "--confidence", "-b", "-w", "1")
    expected = BLEU().corpus_score(hyps, refs, n_bootstrap=1000)
    assert out.strip() == expected.format(width=1, score_only=True)  # "20.3 (μ = 20.2 ± 0.8)"


def test_comet_score_spellings_are_aliases(flores, tmp_path):
    code, out = score("-s", flores["src"], "-t", flores["hyp"], "-r", flores["ref"], "--model", "my-comet",
                      "--gpus", "0", "--print-config")
    assert code == 0, out
    config = yaml.safe_load(out)
    assert (config["src"], config["refs"], config["comet_model"], config["comet_gpus"]) == (
        str(flores["src"]), [str(flores["ref"])], "my-comet", 0)
    # -t is the hypothesis file, as comet-score's: BLEU of it, languages from the flags
    code, out = score("-t", flores["hyp"], "-r", flores["ref"], "--src-lang", "en", "--tgt-lang", "kk", "-m", "bleu",
                      "-b")
    assert code == 0 and float(out) > 0


def test_multi_reference_refusals(flores):
    code, out = score(flores["hyp"], "--refs", flores["ref"], "--refs", flores["ref2"], "-tok", "13a", "-m", "comet",
                      "--src", flores["src"])
    assert code == 2 and "COMET scores against one reference" in out
    code, out = score(flores["hyp"], "--refs", flores["ref"], "--src-lang", "en")
    assert code == 2 and "--tgt-lang" in out


def test_the_one_reference_refusal_asks_the_metric_not_its_name(flores, monkeypatch):
    """Whether a metric takes several references is its `multi_reference` attribute: a metric that says no is
    refused with several --refs, whatever its name."""
    from aligninstruct_cli.metrics.catalog import METRIC_TYPES

    monkeypatch.setattr(METRIC_TYPES["ter"], "multi_reference", False)
    code, out = score(flores["hyp"], "--refs", flores["ref"], "--refs", flores["ref2"], "-tok", "13a", "-m", "ter",
                      "bleu", "--src-lang", "en", "--tgt-lang", "kk")
    assert code == 2 and "TER scores against one reference, and --refs gives 2" in out and "-m bleu" in out


def test_the_one_reference_refusal_comes_before_any_metric_is_made(flores, monkeypatch):
    """A library caller that keeps the default metrics (COMET among them) with several references is refused
    once, before COMET's model would load."""
    from aligninstruct_cli.errors import AitError
    from aligninstruct_cli.metrics import scoring
    from aligninstruct_cli.metrics.score_options import ScoreOptions

    def no_metrics(*args, **kwargs):
        raise AssertionError("metrics made before the refusal")

    monkeypatch.setattr(scoring, "make_metrics", no_metrics)
    options = ScoreOptions(refs=[str(flores["ref"]), str(flores["ref2"])], src=str(flores["src"]), src_lang="en",
                           tgt_lang="kk")
    with pytest.raises(AitError, match="COMET scores against one reference, and .*refs.* gives 2"):
        scoring.score([str(flores["hyp"])], options)


def test_several_references_from_pipes_drop_comet_as_from_files(flores, tmp_path):
    """Two references given as pipes (`-r <(cmd) -r <(cmd)`: FIFOs, read once into temporary copies) and no -m:
    COMET is left out as for the files themselves, not refused as if asked for by name."""
    import os
    import threading

    def pipe(name: str, text: str) -> str:
        fifo = str(tmp_path / name)
        os.mkfifo(fifo)

        def feed() -> None:
            with open(fifo, "w", encoding="utf-8") as fh:
                fh.write(text)
        threading.Thread(target=feed, daemon=True).start()
        return fifo

    common = ("--src-lang", "en", "--tgt-lang", "kk", "-f", "json")
    code, from_files = score(flores["hyp"], "-r", flores["ref"], "-r", flores["ref2"], *common)
    assert code == 0, from_files
    code, from_pipes = score(flores["hyp"], "-r", pipe("r1", flores["ref"].read_text(encoding="utf-8")),
                             "-r", pipe("r2", flores["ref2"].read_text(encoding="utf-8")), *common)
    assert code == 0, from_pipes
    report = json.loads(from_pipes)
    assert report["metrics"] == ["bleu", "chrf"]
    assert "nrefs:2" in only_direction(report)["bleu"]["signature"]
    expected = json.loads(from_files)
    assert [os.path.basename(r) for r in report.pop("references").split(", ")] == ["r1", "r2"]
    expected.pop("references")
    assert report == expected

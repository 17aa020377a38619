"""`ait score`: BLEU/chrF++ exactly as sacrebleu, COMET exactly as comet's predict, group averages,
paired bootstrap, report formats and bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import parallel_record, write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics import bleu_chrf, significance
from aligninstruct_cli.tiny import sample_texts

runner = CliRunner()
SACREBLEU = str(Path(sys.executable).with_name("sacrebleu"))


def degrade(sentence: str, rng: random.Random, drop: float) -> str:
    """A plausible hypothesis: the reference with some words dropped and one pair of words swapped."""
    words = [w for w in sentence.split() if rng.random() >= drop] or sentence.split()[:1]
    if len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def make_system(directions: dict[str, list[str]], *, drop: float, seed: int, src_texts: list[str] | None = None,
                id_format: str = "{d}.{i}") -> list[dict]:
    rng = random.Random(seed)
    records = []
    for d, refs in directions.items():
        src_lang, tgt_lang = d.split("-")
        for i, ref in enumerate(refs):
            src = src_texts[i] if src_texts else f"source {i} of {d}"
            records.append({"id": id_format.format(d=d, i=i, s=src_lang, t=tgt_lang), "src_lang": src_lang,
                            "tgt_lang": tgt_lang, "src": src, "tgt": ref, "hyp": degrade(ref, rng, drop)})
    return records


def score_json(*args: str) -> dict:
    result = runner.invoke(app, ["score", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def synthetic_directions() -> dict[str, list[str]]:
    texts = sample_texts(160, seed=21)
    return {"en-kk": texts[0:40], "en-fr": texts[40:80], "kk-en": texts[80:120], "de-fr": texts[120:160]}


# ------------------------------------------------------------------------------------------------ sacrebleu
def test_tokenizer_follows_target_language():
    assert bleu_chrf.bleu_tokenizer("zh") == "zh"
    assert bleu_chrf.bleu_tokenizer("zho_Hant") == "zh"
    assert bleu_chrf.bleu_tokenizer("ja") == "ja-mecab"
    assert bleu_chrf.bleu_tokenizer("ko") == "ko-mecab"
    assert bleu_chrf.bleu_tokenizer("kk") == "13a"
    assert bleu_chrf.bleu_tokenizer("zh", "intl") == "intl"
    with pytest.raises(AitError, match="not a sacrebleu tokenizer"):
        bleu_chrf.bleu_tokenizer("kk", "nope")
    try:
        import MeCab  # noqa: F401
    except ImportError:  # without sacrebleu[ja] the missing tokenizer is a clean error, not a crash mid-run
        with pytest.raises(AitError, match="sacrebleu\\[ja\\]"):
            bleu_chrf.BLEU().signature("ja")


@pytest.mark.parametrize("tgt_code, flores", [("kk", "kaz_Cyrl"), ("zh", "zho_Hans")])
def test_bleu_and_chrf_equal_sacrebleu_cli_to_the_last_digit(tmp_path, shared_data, tgt_code, flores):
    eng = (shared_data / "flores200" / "devtest" / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:60]
    refs = (shared_data / "flores200" / "devtest" / f"{flores}.devtest").read_text(encoding="utf-8").splitlines()[:60]
    rng = random.Random(5)
    hyps = [degrade(r, rng, 0.3) if tgt_code != "zh" else r[: max(1, int(len(r) * rng.uniform(0.5, 1.0)))]
            for r in refs]
    records = [{"id": i, "src_lang": "en", "tgt_lang": tgt_code, "src": s, "hyp": h}
               for i, (s, h) in enumerate(zip(eng, hyps))]
    hyp_file = write_jsonl(tmp_path / "hyps.jsonl", records)
    ref_txt, hyp_txt = tmp_path / "refs.txt", tmp_path / "hyps.txt"
    ref_txt.write_text("\n".join(refs) + "\n", encoding="utf-8")
    hyp_txt.write_text("\n".join(hyps) + "\n", encoding="utf-8")

    report = score_json(str(hyp_file), "--refs", str(ref_txt), "--metrics", "bleu,chrf")
    ours = report["systems"][0]["directions"][f"en-{tgt_code}"]
    tok = "zh" if tgt_code == "zh" else "13a"
    cli = subprocess.run([SACREBLEU, str(ref_txt), "-i", str(hyp_txt), "-m", "bleu", "chrf", "--chrf-word-order", "2",
                          "-tok", tok, "-w", "16", "-f", "json"], capture_output=True, text=True, check=True)
    theirs = {m["name"]: m for m in json.loads(cli.stdout)}
    assert round(ours["bleu"]["score"], 16) == theirs["BLEU"]["score"]
    assert ours["bleu"]["signature"] == theirs["BLEU"]["signature"]
    assert f"tok:{tok}|" in ours["bleu"]["signature"]
    assert round(ours["chrf"]["score"], 16) == theirs["chrF2++"]["score"]
    assert ours["chrf"]["signature"] == theirs["chrF2++"]["signature"]
    # and the exact float from the API
    from sacrebleu.metrics import BLEU, CHRF

    assert ours["bleu"]["score"] == BLEU(tokenize=tok).corpus_score(hyps, [refs]).score
    assert ours["chrf"]["score"] == CHRF(word_order=2).corpus_score(hyps, [refs]).score
    assert 5 < ours["bleu"]["score"] < 95


def test_bleu_statistics_follow_each_segments_target_language():
    from sacrebleu.metrics import BLEU

    zh = ["我们今天去学校吃饭。", "他明天要去北京开会。", "这本书很有意思。", "天气很好，我们出去走走吧。"]
    refs = [text for pair in zip(zh, sample_texts(4, seed=3)) for text in pair]  # zh, kk, zh, kk, ...
    hyps = [r[: len(r) // 2 + 1] for r in refs]
    langs = ["zh", "kk"] * 4
    metric = bleu_chrf.BLEU()
    stats = metric.segment_stats(refs, hyps, refs, langs)  # one call, two tokenizers
    for lang, tok in (("zh", "zh"), ("kk", "13a")):
        idx = [k for k, code in enumerate(langs) if code == lang]
        sacre = BLEU(tokenize=tok)
        assert metric.corpus_score(stats[idx]) == sacre.corpus_score([hyps[k] for k in idx],
                                                                     [[refs[k] for k in idx]]).score
        assert metric.signature(lang) == sacre.get_signature().format()
    assert metric.signature("zh") != metric.signature("kk")


def test_sentence_level_scores(tmp_path, synthetic_directions):
    from sacrebleu.metrics import BLEU, CHRF

    records = make_system({"en-kk": synthetic_directions["en-kk"][:10]}, drop=0.3, seed=1)
    hyp_file = write_jsonl(tmp_path / "sys.jsonl", records)
    sentences = tmp_path / "sent.jsonl"
    report_path = tmp_path / "report.json"
    result = runner.invoke(app, ["score", str(hyp_file), "--metrics", "bleu,chrf", "--sentence-level",
                                 str(sentences), "-f", "json", "-o", str(report_path)])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in sentences.read_text().splitlines()]
    assert [r["id"] for r in got] == [r["id"] for r in records]
    for rec in got:
        assert rec["system"] == "sys" and rec["ref"] == rec["tgt"]
        assert rec["bleu"] == BLEU(effective_order=True).sentence_score(rec["hyp"], [rec["tgt"]]).score
        assert rec["chrf"] == CHRF(word_order=2).sentence_score(rec["hyp"], [rec["tgt"]]).score
    assert "eff:yes" in json.loads(report_path.read_text())["sentence_signatures"]["bleu"]


# ------------------------------------------------------------------------------------------------ groups
def test_group_averages_hand_checked(tmp_path, synthetic_directions):
    from sacrebleu.metrics import BLEU, CHRF

    records = make_system(synthetic_directions, drop=0.25, seed=2)
    report = score_json(str(write_jsonl(tmp_path / "sys.jsonl", records)), "--metrics", "bleu,chrf")
    by_dir = {}
    for d in synthetic_directions:
        hyps = [r["hyp"] for r in records if r["id"].startswith(d + ".")]
        refs = [r["tgt"] for r in records if r["id"].startswith(d + ".")]
        by_dir[d] = {"bleu": BLEU().corpus_score(hyps, [refs]).score,
                     "chrf": CHRF(word_order=2).corpus_score(hyps, [refs]).score}
    groups = {g["key"]: g["directions"] for g in report["groups"]}
    # en-kk: en→xx, en→unseen; en-fr: en→xx, en→seen; kk-en: xx→en, unseen→en; de-fr: unseen→seen
    assert groups == {"en→xx": ["en-fr", "en-kk"], "xx→en": ["kk-en"], "unseen→seen": ["de-fr"],
                      "en→seen": ["en-fr"], "en→unseen": ["en-kk"], "unseen→en": ["kk-en"], "overall": ["de-fr"]}
    system = report["systems"][0]
    for metric in ("bleu", "chrf"):
        for d, scores in by_dir.items():
            assert system["directions"][d][metric]["score"] == scores[metric]
        assert system["groups"]["en→xx"][metric]["score"] == pytest.approx(
            (by_dir["en-kk"][metric] + by_dir["en-fr"][metric]) / 2, abs=1e-12)
        assert system["groups"]["en→unseen"][metric]["score"] == by_dir["en-kk"][metric]
        assert system["groups"]["unseen→seen"][metric]["score"] == by_dir["de-fr"][metric]
    assert [d["n"] for d in report["directions"]] == [40, 40, 40, 40]


def test_testset_from_ait_data_ids(tmp_path, synthetic_directions):
    records = make_system({"en-kk": synthetic_directions["en-kk"][:5], "kk-en": synthetic_directions["kk-en"][:5]},
                          drop=0.2, seed=3, id_format="flores200.devtest.{i}.{s}-{t}")
    records += [dict(r, id=r["id"].replace("flores200.devtest", "opus100.en-kk.test")) for r in records[:5]]
    records += [dict(r, id="x" + r["id"], testset="mine") for r in records[:2]]
    report = score_json(str(write_jsonl(tmp_path / "s.jsonl", records)), "--metrics", "chrf")
    keys = [g["key"] for g in report["groups"]]
    assert keys == ["flores200.devtest:en→xx", "flores200.devtest:xx→en", "flores200.devtest:en→unseen",
                    "flores200.devtest:unseen→en", "mine:en→xx", "mine:en→unseen", "opus100.test:en→xx",
                    "opus100.test:en→unseen"]
    assert {d["key"]: d["n"] for d in report["directions"]}["opus100.test:en-kk"] == 5


# ------------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_p_value_equals_sacrebleus_paired_test(synthetic_directions, monkeypatch):
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    refs = synthetic_directions["en-kk"]
    rng = random.Random(4)
    base = [degrade(r, rng, 0.35) for r in refs]
    system = [degrade(r, rng, 0.25) for r in refs]
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    for name, metric in (("BLEU", BLEU()), ("chrF2++", CHRF(word_order=2))):
        _, scores = PairedTest([("base", base), ("sys", system)], {name: metric}, [refs], test_type="bs",
                               n_samples=500)()
        ours_metric = bleu_chrf.BLEU() if name == "BLEU" else bleu_chrf.CHRF()
        b_stats = ours_metric.segment_stats(refs, base, refs, ["kk"] * len(refs))
        s_stats = ours_metric.segment_stats(refs, system, refs, ["kk"] * len(refs))
        indices = significance.resample_indices(len(refs), 500, np.random.default_rng(12345))
        r = significance.paired_bootstrap(ours_metric, b_stats, s_stats, indices)
        comparison = significance.compare_resampled(r)
        assert comparison.p == scores[name][1].p_value
        assert comparison.system == scores[name][1].score
        assert comparison.ci_low <= comparison.diff <= comparison.ci_high


def test_significance_deterministic_planted_difference_and_identical_systems(tmp_path, synthetic_directions):
    good = make_system(synthetic_directions, drop=0.05, seed=6)
    bad = make_system(synthetic_directions, drop=0.6, seed=7)
    good_file = write_jsonl(tmp_path / "good.jsonl", good)
    bad_file = write_jsonl(tmp_path / "bad.jsonl", bad)
    copy_file = write_jsonl(tmp_path / "copy.jsonl", bad)
    args = ["--metrics", "bleu,chrf", "--bootstrap-samples", "300"]
    first = score_json(str(good_file), str(copy_file), "--baseline", str(bad_file), *args, "--seed", "3")
    again = score_json(str(good_file), str(copy_file), "--baseline", str(bad_file), *args, "--seed", "3")
    other = score_json(str(good_file), str(copy_file), "--baseline", str(bad_file), *args, "--seed", "4")
    assert first == again
    assert first["systems"][1]["significance"] != other["systems"][1]["significance"]
    assert [s["role"] for s in first["systems"]] == ["baseline", "system", "system"]
    winner, identical = first["systems"][1]["significance"], first["systems"][2]["significance"]
    for scope in ("directions", "groups"):
        for key, metrics in winner[scope].items():
            for metric, c in metrics.items():
                assert c["better"] and c["significant"] and c["p"] < 0.01 and c["diff"] > 5, (key, metric, c)
                assert c["ci95"][0] > 0
        for key, metrics in identical[scope].items():
            for metric, c in metrics.items():
                assert c["diff"] == 0 and c["p"] == 1.0 and not c["significant"], (key, metric, c)
    assert winner["groups"]["en→xx"]["bleu"]["diff"] == pytest.approx(
        first["systems"][1]["groups"]["en→xx"]["bleu"]["score"] - first["systems"][0]["groups"]["en→xx"]["bleu"]["score"])
    # the markdown table marks the wins, and only them
    result = runner.invoke(app, ["score", str(good_file), str(copy_file), "--baseline", str(bad_file), *args,
                                 "--format", "markdown"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| System | en→xx BLEU | en→xx chrF++ | xx→en BLEU |")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["good"].count("†") == 14 and "†" not in rows["copy"] and "†" not in rows["bad"]  # 7 groups × 2
    assert any(line.startswith("† significantly better than bad") for line in lines)
    assert any("BLEU signature: nrefs:1|case:mixed|eff:no|tok:13a" in line for line in lines)


# ------------------------------------------------------------------------------------------------ COMET
@pytest.fixture(scope="module")
def tiny_comet(tmp_path_factory) -> Path:
    pytest.importorskip("comet")  # the `comet` extra (always in CI; absent from e.g. a transformers-5 image)
    from aligninstruct_cli.tiny import build_tiny_comet

    return build_tiny_comet(tmp_path_factory.mktemp("tiny-comet")).parents[1]


def test_comet_equals_comets_own_predict(tmp_path, tiny_comet, synthetic_directions):
    from comet import load_from_checkpoint

    directions = {"en-kk": synthetic_directions["en-kk"][:12], "kk-en": synthetic_directions["kk-en"][:12]}
    src_texts = sample_texts(12, seed=9)
    system = make_system(directions, drop=0.2, seed=8, src_texts=src_texts)
    base = make_system(directions, drop=0.5, seed=9, src_texts=src_texts)
    sys_file = write_jsonl(tmp_path / "sys.jsonl", system)
    base_file = write_jsonl(tmp_path / "base.jsonl", base)
    sentences = tmp_path / "sent.jsonl"
    report = score_json(str(sys_file), "--baseline", str(base_file), "--metrics", "comet,bleu", "--comet-model",
                        str(tiny_comet), "--comet-batch-size", "4", "--sentence-level", str(sentences),
                        "--bootstrap-samples", "200")
    model = load_from_checkpoint(str(tiny_comet / "checkpoints" / "model.ckpt"))
    direct = model.predict([{"src": r["src"], "mt": r["hyp"], "ref": r["tgt"]} for r in system], batch_size=4,
                           gpus=0, progress_bar=False)
    expected = [100 * s for s in direct.scores]
    got = [json.loads(line)["comet"] for line in sentences.read_text().splitlines() if '"system":"sys"' in line]
    assert got == pytest.approx(expected, abs=1e-3)  # ait's scorer: comet's scores to 1e-5 (×100 here)
    ours = report["systems"][1]
    assert ours["directions"]["en-kk"]["comet"]["score"] == pytest.approx(np.mean(got[:12]), abs=1e-9)
    assert ours["directions"]["kk-en"]["comet"]["score"] == pytest.approx(np.mean(got[12:]), abs=1e-9)
    assert ours["groups"]["en→xx"]["comet"]["score"] == ours["directions"]["en-kk"]["comet"]["score"]
    assert np.mean([ours["directions"][d]["comet"]["score"] for d in directions]) == \
        pytest.approx(100 * direct.system_score, abs=1e-3)
    signature = ours["directions"]["en-kk"]["comet"]["signature"]
    assert signature.startswith(f"model:{tiny_comet}|batch:4|ait-comet:")
    c = ours["significance"]["directions"]["en-kk"]["comet"]
    assert c["diff"] == pytest.approx(ours["directions"]["en-kk"]["comet"]["score"]
                                      - report["systems"][0]["directions"]["en-kk"]["comet"]["score"])
    assert 0 < c["p"] <= 1 and c["ci95"][0] <= c["diff"] <= c["ci95"][1]


def test_missing_comet_model_is_a_clean_error(tmp_path, synthetic_directions):
    pytest.importorskip("comet")
    hyp_file = write_jsonl(tmp_path / "s.jsonl", make_system({"en-kk": synthetic_directions["en-kk"][:3]},
                                                             drop=0.2, seed=1))
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["score", str(hyp_file), "--metrics", "comet", "--comet-model",
                                 str(tmp_path / "nope"), "-o", str(out)])
    assert result.exit_code == 2 and "no such file or directory" in result.output
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ formats
def test_table_and_tsv_formats(tmp_path, synthetic_directions):
    sys_file = write_jsonl(tmp_path / "a.jsonl", make_system(synthetic_directions, drop=0.2, seed=1))
    base_file = write_jsonl(tmp_path / "b.jsonl", make_system(synthetic_directions, drop=0.4, seed=2))
    result = runner.invoke(app, ["score", str(sys_file), "--baseline", str(base_file), "--metrics", "bleu,chrf",
                                 "--bootstrap-samples", "100", "--format", "tsv"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["system", "role", "scope", "key", "metric", "score", "n", "signature", "baseline", "diff",
                       "ci95_low", "ci95_high", "p", "significant"]
    # 2 systems × (4 directions + 7 groups, overall included) × 2 metrics
    assert len(rows) == 1 + 2 * 11 * 2
    a_group = [r for r in rows if r[0] == "a" and r[2] == "group" and r[3] == "en→xx" and r[4] == "bleu"][0]
    assert a_group[6] == "80" and a_group[8] == "b" and a_group[13] in ("yes", "no")
    result = runner.invoke(app, ["score", str(sys_file), "--baseline", str(base_file), "--metrics", "bleu",
                                 "--bootstrap-samples", "100"])
    assert result.exit_code == 0
    assert "b (baseline)" in result.stdout and "Δ BLEU [95% CI] p" in result.stdout and "en→unseen" in result.stdout


# ------------------------------------------------------------------------------------------------ tables
@pytest.fixture(scope="module")
def zero_shot_directions() -> dict[str, list[str]]:
    """fr-zh is seen→seen, de-fr and kk-fr unseen→seen (BLOOM's list): the two groups differ in size, so the
    mean over the zero-shot directions is not the mean of the groups' means."""
    texts = sample_texts(130, seed=22)
    return {"en-kk": texts[0:30], "kk-en": texts[30:60], "fr-zh": texts[60:80], "de-fr": texts[80:105],
            "kk-fr": texts[105:130]}


def markdown_rows(text: str) -> list[list[str]]:
    """The markdown table's rows (header first, separator left out) as lists of cells."""
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in text.splitlines()
            if line.startswith("| ")]


def test_overall_is_the_mean_over_all_zero_shot_directions(tmp_path, zero_shot_directions):
    system = write_jsonl(tmp_path / "a.jsonl", make_system(zero_shot_directions, drop=0.15, seed=1))
    base = write_jsonl(tmp_path / "b.jsonl", make_system(zero_shot_directions, drop=0.4, seed=2))
    args = ["--metrics", "chrf", "--bootstrap-samples", "100"]
    assert "overall" in [g["name"] for g in score_json(str(system), *args)["groups"]]  # ait's default has it too
    report = score_json(str(system), "--baseline", str(base), "--groups", "seen→seen,unseen→seen,overall", *args)
    assert {g["key"]: g["directions"] for g in report["groups"]} == {
        "seen→seen": ["fr-zh"], "unseen→seen": ["de-fr", "kk-fr"], "overall": ["de-fr", "fr-zh", "kk-fr"]}
    for entry in report["systems"]:
        score = {d: entry["directions"][d]["chrf"]["score"] for d in zero_shot_directions}
        overall = entry["groups"]["overall"]["chrf"]["score"]
        assert overall == pytest.approx((score["de-fr"] + score["fr-zh"] + score["kk-fr"]) / 3, abs=1e-12)
        mean_of_means = (score["fr-zh"] + (score["de-fr"] + score["kk-fr"]) / 2) / 2
        assert abs(overall - mean_of_means) > 0.01
    # significance as any group: a stratified bootstrap over its three directions
    c = report["systems"][1]["significance"]["groups"]["overall"]["chrf"]
    scores = [entry["groups"]["overall"]["chrf"]["score"] for entry in report["systems"]]
    assert c["diff"] == pytest.approx(scores[1] - scores[0], abs=1e-12)
    assert c["better"] and c["ci95"][0] <= c["diff"] <= c["ci95"][1]
    # formed without a seen list too: it needs none
    llama = write_jsonl(tmp_path / "llama.jsonl", [dict(r, model="meta-llama/Llama-3.2-1B")
                                                   for r in make_system(zero_shot_directions, drop=0.15, seed=1)])
    no_seen = score_json(str(llama), "--groups", "overall,en→xx", *args)
    assert [g["key"] for g in no_seen["groups"]] == ["overall", "en→xx"]
    assert no_seen["systems"][0]["groups"]["overall"] == report["systems"][1]["groups"]["overall"]


def test_paper_layouts_cells_carry_the_scores_own_interval(tmp_path, zero_shot_directions):
    system = write_jsonl(tmp_path / "a.jsonl", make_system(zero_shot_directions, drop=0.15, seed=1))
    base = write_jsonl(tmp_path / "b.jsonl", make_system(zero_shot_directions, drop=0.4, seed=2))
    args = [str(system), "--baseline", str(base), "--metrics", "bleu,chrf", "--bootstrap-samples", "200",
            "--layout", "table5"]
    report = score_json(*args)
    assert report["intervals"] == {"level": 0.95, "n_samples": 200, "seed": 12345}
    result = runner.invoke(app, ["score", *args, "--format", "markdown"])
    assert result.exit_code == 0, result.output
    rows = markdown_rows(result.stdout)
    for row in rows[1:]:
        group = row[0]
        for k, (entry, metric) in enumerate((e, m) for e in report["systems"] for m in ("bleu", "chrf")):
            value = entry["groups"][group][metric]
            better = entry.get("significance", {}).get("groups", {}).get(group, {}).get(metric, {}).get("better")
            assert row[1 + k] == (f"{value['score']:.2f}{'†' if better else ''} "
                                  f"[{value['ci95'][0]:.2f}, {value['ci95'][1]:.2f}]")
    assert "†" in result.stdout and any(line.startswith("[low, high]: 95% bootstrap interval of the score")
                                        for line in result.stdout.splitlines())
    # the interval comes from the very resamples of the paired test: sacrebleu's draw for the direction, the
    # percentile bounds of sacrebleu's estimate_ci; without a baseline it is the same
    a = report["systems"][1]
    metric = bleu_chrf.BLEU()
    records = make_system({"en-kk": zero_shot_directions["en-kk"]}, drop=0.15, seed=1)
    stats = metric.segment_stats([r["src"] for r in records], [r["hyp"] for r in records],
                                 [r["tgt"] for r in records], ["kk"] * len(records))
    indices = significance.resample_indices(len(records), 200, significance.direction_rng(12345, "en-kk"))
    samples = significance.resampled_scores(metric, stats, indices)
    assert a["directions"]["en-kk"]["bleu"]["ci95"] == list(significance.interval(samples))
    assert a["groups"]["en→unseen"]["bleu"]["ci95"] == a["directions"]["en-kk"]["bleu"]["ci95"]
    from sacrebleu.significance import estimate_ci

    _, half_width = estimate_ci(samples)
    low, high = a["directions"]["en-kk"]["bleu"]["ci95"]
    assert (high - low) / 2 == pytest.approx(half_width, abs=1e-12)
    alone = score_json(str(system), "--metrics", "bleu,chrf", "--bootstrap-samples", "200", "--layout", "table5")
    assert alone["systems"][0]["groups"] == a["groups"]
    assert "ci95" in score_json(str(system), "--metrics", "chrf")["systems"][0]["groups"]["en→xx"]["chrf"]  # every layout


def test_layouts_reproduce_the_papers_tables(tmp_path, synthetic_directions):
    records = [dict(r, testset=testset) for testset in ("flores200.devtest", "opus100.test")
               for r in make_system(synthetic_directions, drop=0.2, seed=1, id_format=testset + ".{d}.{i}")]
    system = write_jsonl(tmp_path / "mt+align.jsonl", records)
    base = write_jsonl(tmp_path / "mt.jsonl", [dict(r, hyp=r["hyp"][: len(r["hyp"]) // 2]) for r in records])
    args = [str(system), "--baseline", str(base), "--metrics", "bleu,chrf", "--bootstrap-samples", "50",
            "--format", "markdown"]

    def table(*extra: str) -> list[list[str]]:
        result = runner.invoke(app, ["score", *args, *extra])
        assert result.exit_code == 0, result.output
        return markdown_rows(result.stdout)

    # Table 1: a row per system (baseline first); OPUS-100 before FLORES-200, en→xx and xx→en, each metric
    rows = table("--layout", "table1")
    groups = [f"{t}:{g}" for t in ("opus100.test", "flores200.devtest") for g in ("en→xx", "xx→en")]
    assert rows[0] == ["System"] + [f"{g} {m}" for g in groups for m in ("BLEU", "chrF++")]
    assert [row[0] for row in rows[1:]] == ["mt", "mt+align"]
    assert all(len(row) == 9 for row in rows) and all(" [" in cell for row in rows[1:] for cell in row[1:])
    # Table 5: a row per group in the paper's order, a column per system and metric
    rows = table("--layout", "table5")
    assert rows[0] == ["Group", "mt BLEU", "mt chrF++", "mt+align BLEU", "mt+align chrF++"]
    names = ["en→xx", "xx→en", "unseen→seen", "overall", "en→seen", "en→unseen", "unseen→en"]
    assert [row[0] for row in rows[1:]] == [f"{t}:{g}" for t in ("opus100.test", "flores200.devtest") for g in names]
    # ait's layout (the default): test sets by name, every group (overall included), with intervals
    rows = table()
    assert rows[0][1:3] == ["flores200.devtest:en→xx BLEU", "flores200.devtest:en→xx chrF++"]
    assert len(rows[0]) == 1 + 2 * 14 and all(" [" in cell for row in rows[1:] for cell in row[1:])
    assert "flores200.devtest:overall BLEU" in rows[0]
    # --groups picks and orders the groups of every layout
    rows = table("--layout", "table5", "--groups", "overall,xx->en")
    assert [row[0] for row in rows[1:]] == [f"{t}:{g}" for t in ("opus100.test", "flores200.devtest")
                                            for g in ("overall", "xx→en")]


def test_groups_option_orders_and_checks_names(tmp_path, synthetic_directions):
    from aligninstruct_cli.metrics.score_options import ScoreOptions
    from aligninstruct_cli.options import OptionError

    hyps = write_jsonl(tmp_path / "a.jsonl", make_system(synthetic_directions, drop=0.2, seed=1))
    report = score_json(str(hyps), "--metrics", "chrf", "--groups", "xx→en, en->xx,xx→en,seen→seen")
    assert [g["key"] for g in report["groups"]] == ["xx→en", "en→xx"]  # seen→seen has no directions here
    assert {d["key"]: d["groups"] for d in report["directions"]}["de-fr"] == []
    config = tmp_path / "score.yaml"
    config.write_text("metrics: [chrf]\ngroups: [xx→en, en->xx]\n")
    assert score_json(str(hyps), "--config", str(config)) == report
    result = runner.invoke(app, ["score", str(hyps), "--groups", "en→xx,zero-shot"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "--groups: unknown group 'zero-shot'; available: en→xx, xx→en, seen→seen, seen→unseen, unseen→seen, " \
           "unseen→unseen, overall, en→seen, en→unseen, seen→en, unseen→en" in message
    with pytest.raises(OptionError, match="^groups: unknown group 'nope'"):
        ScoreOptions(groups=["nope"])
    with pytest.raises(OptionError, match="layout must be one of ait, table1, table5"):
        ScoreOptions(layout="table2")


# ------------------------------------------------------------------------------------------------ options
def test_options_from_a_config_file_equal_flags_and_checks_name_fields(tmp_path, synthetic_directions):
    from aligninstruct_cli.metrics.score_options import ScoreOptions
    from aligninstruct_cli.options import OptionError

    a = write_jsonl(tmp_path / "a.jsonl", make_system(synthetic_directions, drop=0.2, seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", make_system(synthetic_directions, drop=0.4, seed=2))
    config = tmp_path / "score.yaml"
    config.write_text(f"metrics: [chrf, BLEU]\nbaseline: {b}\nnames: [mine]\nbootstrap_samples: 50\nseed: 7\n")
    from_file = score_json(str(a), "--config", str(config))
    from_flags = score_json(str(a), "--metrics", "chrf,bleu", "--baseline", str(b), "--names", "mine",
                            "--bootstrap-samples", "50", "--seed", "7")
    assert from_file == from_flags and from_file["metrics"] == ["chrf", "bleu"]
    assert from_file["systems"][1]["name"] == "mine"
    for kwargs, message in (({"alpha": 1.0}, "alpha must be below 1"), ({"bootstrap_samples": 0}, "bootstrap_samples"),
                            ({"metrics": "bleu,meteor"}, "metrics 'bleu,meteor'"), ({"tokenize": "nope"}, "tokenize 'nope'")):
        with pytest.raises(OptionError, match=message) as caught:
            ScoreOptions(**kwargs)
        assert "--" not in str(caught.value)
    result = runner.invoke(app, ["score", str(a), "--config", str(config), "--alpha", "0"])
    assert result.exit_code == 2 and "--alpha must be above 0" in result.output


# ------------------------------------------------------------------------------------------------ bad input
def _records(n=3, **overrides):
    return [dict({"id": f"r{i}", "src_lang": "en", "tgt_lang": "kk", "src": f"s {i}", "tgt": f"t {i}",
                  "hyp": f"h {i}"}, **overrides) for i in range(n)]


@pytest.mark.parametrize("case", ["count", "ids", "baseline-ids", "missing-hyp", "language", "empty", "no-tgt",
                                  "duplicate", "metrics", "format", "direction"])
def test_bad_input_is_a_clean_error_and_writes_nothing(tmp_path, case):
    hyps = tmp_path / "h.jsonl"
    write_jsonl(hyps, _records())
    args, message = [], ""
    if case == "count":
        (tmp_path / "refs.txt").write_text("a\nb\n")
        args, message = ["--refs", str(tmp_path / "refs.txt")], "has 3 hypotheses but"
    elif case == "ids":
        write_jsonl(tmp_path / "refs.jsonl", [{"id": i, "tgt": "x"} for i in ("r0", "r1", "zz")])
        args, message = ["--refs", str(tmp_path / "refs.jsonl")], "id 'r2' has no reference"
    elif case == "baseline-ids":
        write_jsonl(tmp_path / "b.jsonl", _records(2))
        args, message = ["--baseline", str(tmp_path / "b.jsonl")], "is not in the test set"
    elif case == "missing-hyp":
        write_jsonl(hyps, [{k: v for k, v in r.items() if k != "hyp"} for r in _records()])
        message = "field 'hyp': missing"
    elif case == "language":
        write_jsonl(hyps, _records(tgt_lang="klingon"))
        message = "field 'tgt_lang': unknown language"
    elif case == "empty":
        hyps.write_text("")
        message = "no hypotheses"
    elif case == "no-tgt":
        write_jsonl(hyps, [{k: v for k, v in r.items() if k != "tgt"} for r in _records()])
        message = "field 'tgt': missing"
    elif case == "duplicate":
        write_jsonl(hyps, _records() + _records(1))
        message = "h.jsonl:4: field 'id': duplicate id 'r0'"
    elif case == "metrics":
        args, message = ["--metrics", "bleu,meteor"], "--metrics"
    elif case == "format":
        args, message = ["--format", "html"], "--format"
    elif case == "direction":
        write_jsonl(tmp_path / "b.jsonl", _records(tgt_lang="cy"))
        args, message = ["--baseline", str(tmp_path / "b.jsonl")], "differs"
    out = tmp_path / "report.txt"
    sentences = tmp_path / "sent.jsonl"
    metrics = [] if case == "metrics" else ["--metrics", "bleu,chrf"]
    result = runner.invoke(app, ["score", str(hyps), *metrics, *args, "-o", str(out), "--sentence-level",
                                 str(sentences)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() and not sentences.exists()


# ------------------------------------------------------------------------------------------------ seen lists
@pytest.fixture
def no_user_languages():
    from aligninstruct_cli.languages import reset_languages

    reset_languages()
    yield
    reset_languages()  # a --languages file stays loaded in this process otherwise


def _with_model(records: list[dict], model: str) -> list[dict]:
    return [dict(r, model=model) for r in records]


def test_seen_groups_follow_the_scored_models_seen_list(tmp_path, synthetic_directions, no_user_languages):
    from aligninstruct_cli.languages import bloom_seen

    records = make_system(synthetic_directions, drop=0.25, seed=2)
    llama = write_jsonl(tmp_path / "llama.jsonl", _with_model(records, "meta-llama/Llama-3.2-1B"))
    bloomz = write_jsonl(tmp_path / "bloomz.jsonl", _with_model(records, "bigscience/bloomz-7b1"))
    args = ["--metrics", "chrf", "--format", "json"]

    # not BLOOM, nothing declared: only en→xx / xx→en, a note on stderr, and the report says so
    result = runner.invoke(app, ["score", str(llama), *args])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["seen_list"] is None
    assert {g["key"]: g["directions"] for g in report["groups"]} == {"en→xx": ["en-fr", "en-kk"], "xx→en": ["kk-en"],
                                                                     "overall": ["de-fr"]}
    assert {d["key"]: d["groups"] for d in report["directions"]}["de-fr"] == ["overall"]
    note = " ".join(result.stderr.split())
    assert "seen/unseen groups omitted" in note and "meta-llama/Llama-3.2-1B" in note
    assert "--seen CODES" in note and "`seen` column in a --languages file" in note
    table = runner.invoke(app, ["score", str(llama), "--metrics", "chrf", "--format", "markdown"]).stdout
    assert "- Seen languages: none declared (seen/unseen groups omitted)" in table.splitlines()
    # a baseline that names no model does not make the run BLOOM's
    mixed = score_json(str(llama), "--baseline", str(write_jsonl(tmp_path / "plain.jsonl", records)),
                       "--metrics", "chrf", "--bootstrap-samples", "20")
    assert mixed["seen_list"] is None

    # --seen declares the model's list: the groups come back, split by it (kk is seen here, de is not)
    declared = score_json(str(llama), "--metrics", "chrf", "--seen", "fr,kaz_Cyrl")
    assert declared["seen_list"] == {"name": "--seen", "codes": ["fr", "kk"]}
    assert {g["key"]: g["directions"] for g in declared["groups"]} == {
        "en→xx": ["en-fr", "en-kk"], "xx→en": ["kk-en"], "unseen→seen": ["de-fr"], "overall": ["de-fr"],
        "en→seen": ["en-fr", "en-kk"], "seen→en": ["kk-en"]}
    config = tmp_path / "score.yaml"
    config.write_text("metrics: [chrf]\nseen: [fr, kaz_Cyrl]\n")
    assert score_json(str(llama), "--config", str(config)) == declared
    table = runner.invoke(app, ["score", str(llama), "--metrics", "chrf", "--seen", "fr,kk"]).stdout
    assert "Seen languages: --seen (2 codes)" in table

    # BLOOMZ: BLOOM's list, recorded, and the groups of records that name no model
    bloom = score_json(str(bloomz), "--metrics", "chrf")
    expected = sorted(bloom_seen().codes)
    assert bloom["seen_list"] == {"name": "bloom", "codes": expected} and "fr" in expected and "kk" not in expected
    unnamed = score_json(str(write_jsonl(tmp_path / "plain.jsonl", records)), "--metrics", "chrf")
    assert unnamed["seen_list"] == bloom["seen_list"] and unnamed["groups"] == bloom["groups"]
    assert [g["key"] for g in bloom["groups"]] == ["en→xx", "xx→en", "unseen→seen", "overall", "en→seen",
                                                   "en→unseen", "unseen→en"]
    result = runner.invoke(app, ["score", str(bloomz), "--metrics", "chrf", "--format", "markdown"])
    assert f"- Seen languages: bloom ({len(expected)} codes)" in result.stdout.splitlines()
    assert "omitted" not in result.stderr


def test_seen_column_of_a_language_file_is_a_models_seen_list(tmp_path, synthetic_directions, no_user_languages):
    records = _with_model(make_system(synthetic_directions, drop=0.25, seed=2), "Qwen/Qwen2.5-0.5B")
    hyps = write_jsonl(tmp_path / "qwen.jsonl", records)
    languages = tmp_path / "langs.tsv"
    languages.write_text("code\tflores\tname\tseen\nkk\tkaz_Cyrl\tKazakh\tyes\nfr\tfra_Latn\tFrench\tno\n")
    report = score_json(str(hyps), "--metrics", "chrf", "--languages", str(languages))
    assert report["seen_list"] == {"name": str(languages), "codes": ["kk"]}
    assert [g["key"] for g in report["groups"]] == ["en→xx", "xx→en", "unseen→unseen", "overall", "en→seen",
                                                    "en→unseen", "seen→en"]


# ------------------------------------------------------------------------------------------------ spBLEU
@pytest.fixture(scope="module")
def tiny_spm_model(tmp_path_factory, shared_data) -> Path:
    """A SentencePiece model trained here on a few hundred FLORES-200 lines (sacrebleu's is a download)."""
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("tiny-spm")
    devtest = shared_data / "flores200" / "devtest"
    lines = [line for flores in ("eng_Latn", "kaz_Cyrl", "fra_Latn")
             for line in (devtest / f"{flores}.devtest").read_text(encoding="utf-8").splitlines()[:150]]
    (out / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(out / "train.txt"), model_prefix=str(out / "tiny"), vocab_size=400,
                                   hard_vocab_limit=False, minloglevel=2)
    return out / "tiny.model"


def test_spbleu_with_a_local_sentencepiece_model_equals_sacrebleu(tmp_path, tiny_spm_model, shared_data,
                                                                  monkeypatch):
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers import tokenizer_spm

    refs = (shared_data / "flores200" / "devtest" / "kaz_Cyrl.devtest").read_text(encoding="utf-8").splitlines()[:40]
    rng = random.Random(11)
    hyps = [degrade(r, rng, 0.3) for r in refs]
    records = [{"id": i, "src_lang": "en", "tgt_lang": "kk", "src": f"s {i}", "tgt": r, "hyp": h}
               for i, (r, h) in enumerate(zip(refs, hyps))]
    hyp_file = write_jsonl(tmp_path / "hyps.jsonl", records)
    empty = tmp_path / "sacrebleu-empty"
    empty.mkdir()
    monkeypatch.setenv("SACREBLEU", str(empty))  # for a sacrebleu imported later; the module variable for this one
    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(empty))

    report = score_json(str(hyp_file), "--metrics", "bleu", "--tokenize", "flores200", "--spm-model",
                        str(tiny_spm_model))
    ours = report["systems"][0]["directions"]["en-kk"]["bleu"]
    assert "|tok:flores200|" in ours["signature"]
    assert tokenizer_spm.SACREBLEU_DIR == str(empty) and not any(empty.iterdir())  # put back, nothing left

    # sacrebleu's own spBLEU with the same model file at its cache path
    cache = tmp_path / "sacrebleu-cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "flores200sacrebleuspm").write_bytes(tiny_spm_model.read_bytes())
    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(cache))
    theirs = BLEU(tokenize="flores200")
    assert ours["score"] == theirs.corpus_score(hyps, [refs]).score
    assert ours["signature"] == theirs.get_signature().format()
    assert ours["score"] != BLEU().corpus_score(hyps, [refs]).score  # not 13a in disguise
    # the model at sacrebleu's path needs no --spm-model
    cached = score_json(str(hyp_file), "--metrics", "bleu", "--tokenize", "flores200")
    assert cached["systems"][0]["directions"]["en-kk"]["bleu"] == ours


def test_missing_sentencepiece_model_is_one_clear_paragraph(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from sacrebleu.tokenizers import tokenizer_spm

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(urllib.request, "urlopen", offline)  # offline even where the network is reachable
    from aligninstruct_cli import hub

    monkeypatch.setattr(hub, "unreachable_reason", lambda *a, **k: None)  # the site answers; its download fails
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # (set by conftest: then no download is tried)
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "sacrebleu-empty"
    empty.mkdir()
    monkeypatch.setenv("SACREBLEU", str(empty))
    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(empty))
    hyps = write_jsonl(tmp_path / "h.jsonl", _records())
    out = tmp_path / "report.txt"
    result = runner.invoke(app, ["score", str(hyps), "--metrics", "chrf,bleu", "--tokenize", "flores200",
                                 "-o", str(out)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    expected_path = empty / "models" / "flores200sacrebleuspm"
    assert f"--tokenize flores200 needs sacrebleu's SentencePiece model, which is not at {expected_path}" in message
    assert "https://tinyurl.com/flores200sacrebleuspm" in message and "no network here" in message
    assert "--spm-model PATH" in message and "network access" in message
    assert "Traceback" not in result.output and not out.exists() and not expected_path.exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an offline machine: no download tried, the same paragraph
    result = runner.invoke(app, ["score", str(hyps), "--metrics", "bleu", "--tokenize", "flores200"])
    assert result.exit_code == 2 and "offline: HF_HUB_OFFLINE" in " ".join(result.output.split())
    result = runner.invoke(app, ["score", str(hyps), "--metrics", "bleu", "--tokenize", "flores200", "--spm-model",
                                 str(tmp_path / "nope.model")])
    assert result.exit_code == 2 and "--spm-model" in result.output and "no such file" in result.output
    result = runner.invoke(app, ["score", str(hyps), "--metrics", "bleu", "--spm-model", str(tmp_path)])
    assert result.exit_code == 2 and "--tokenize flores200" in result.output


# ------------------------------------------------------------------------------------------------ bounded memory
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
    records = [parallel_record(i, tgt=" ".join(rng.choice(["a", "b", "c", "d"], 5)),
                               hyp=" ".join(rng.choice(["a", "b", "c"], 5))) for i in range(40)]
    base = write_jsonl(tmp_path / "base.jsonl", records)
    sys_ = write_jsonl(tmp_path / "sys.jsonl", [{**r, "hyp": r["tgt"] if r["id"] % 3 else r["hyp"]} for r in records])
    options = ScoreOptions(metrics=["bleu", "chrf"], baseline=str(base), bootstrap_samples=50, seen="kk")
    whole, _ = scoring.score([str(sys_)], options)
    monkeypatch.setattr(scoring, "RESAMPLE_CHUNK_ELEMENTS", 7 * 40)  # 7 resamples a block
    blocks, _ = scoring.score([str(sys_)], options)
    assert blocks == whole

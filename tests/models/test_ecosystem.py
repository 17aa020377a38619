"""Fitting the user's ecosystem, the fast parts: sacrebleu-style plain-text scoring, offline
behaviour (hub cache checks that fail in a second), architectures' LoRA targets / EOS / padding / chat
templates, honest probe intervals and bars, toy models from a user's corpus. The end-to-end runs on tiny
Llama and Qwen2 models are in tests/export/test_export.py."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_jsonl
from aligninstruct_cli import hub, probe as P
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError

runner = CliRunner()
AIT = str(Path(sys.executable).with_name("ait"))
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: refused at once, as a blocked hub would be


def perturb(lines: list[str], seed: int = 1) -> list[str]:
    """A derived hypothesis: each reference with a word dropped and two neighbours swapped; a few blank."""
    rng = random.Random(seed)
    out = []
    for k, line in enumerate(lines):
        words = line.split()
        if len(words) > 3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
            del words[rng.randrange(len(words))]
        out.append("" if k % 37 == 5 else " ".join(words))
    return out


@pytest.fixture(scope="module")
def flores_kk(shared_data, tmp_path_factory):
    """FLORES-200 devtest en→kk: source, reference and a perturbed hypothesis as plain-text files."""
    out = tmp_path_factory.mktemp("flores-kk")
    src = (shared_data / "flores200/devtest/eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:300]
    ref = (shared_data / "flores200/devtest/kaz_Cyrl.devtest").read_text(encoding="utf-8").splitlines()[:300]
    files = {"src": src, "ref": ref, "hyp": perturb(ref)}
    for name, lines in files.items():
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: out / f"{name}.txt" for name in files} | {"lines": files}


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An empty HF cache and a hub that refuses connections (whatever network the machine has)."""
    env = {k: v for k, v in os.environ.items()
           if k not in hub.OFFLINE_ENV and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
    env.update(HF_HOME=str(tmp_path / "hf-empty"), HF_ENDPOINT=UNREACHABLE, SACREBLEU=str(tmp_path / "sb"),
               PYTHONWARNINGS="ignore", **extra)
    return env


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in list(hub.OFFLINE_ENV) + ["HTTPS_PROXY", "https_proxy", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"]:
        monkeypatch.delenv(name, raising=False)
    hub.unreachable_reason.cache_clear()
    yield tmp_path / "hf-empty" / "hub"
    hub.unreachable_reason.cache_clear()


# ------------------------------------------------------------------------------------------------ score
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


# ------------------------------------------------------------------------------------------------ offline
def test_score_comet_with_the_hub_unreachable_and_an_empty_cache_fails_in_under_2_s(flores_kk, tmp_path):
    args = [AIT, "score", str(flores_kk["hyp"]), "--refs", str(flores_kk["ref"]), "--src", str(flores_kk["src"]),
            "--src-lang", "en", "--tgt-lang", "kk", "--metrics", "comet"]
    for env in (offline_env(tmp_path), offline_env(tmp_path, HF_HUB_OFFLINE="1")):
        started = time.monotonic()
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - started
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        message = " ".join(proc.stderr.split())
        assert "'Unbabel/wmt22-comet-da' is not in the local Hugging Face cache" in message
        assert str(tmp_path / "hf-empty" / "hub") in message
        assert "HF_HUB_OFFLINE=1" in message and "--comet-model" in message and "--metrics bleu,chrf" in message
        assert ("HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in env else "the hub is unreachable") in message
        assert seconds < 2.0 or seconds < 4.0 and os.cpu_count() and os.getloadavg()[0] > os.cpu_count(), seconds


def test_hub_checks_fail_fast_or_read_the_cache_offline(unreachable_hub, monkeypatch):
    from aligninstruct_cli.metrics.comet import resolve_checkpoint
    from aligninstruct_cli.models import resolve_model

    started = time.monotonic()
    with pytest.raises(hub.OfflineError, match="model 'org/tiny' is not in the local Hugging Face cache"):
        resolve_model("org/tiny")
    with pytest.raises(hub.OfflineError, match="COMET model 'Unbabel/wmt22-comet-da'"):
        resolve_checkpoint("Unbabel/wmt22-comet-da")
    assert time.monotonic() - started < 2.0
    # cached: found without the network, and the hub libraries are switched to the cache only
    snapshot = unreachable_hub / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (unreachable_hub / "models--org--tiny" / "refs").mkdir()
    (unreachable_hub / "models--org--tiny" / "refs" / "main").write_text("abc123", encoding="utf-8")
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_switched_offline", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert hub.child_environment() == {}
    assert hub.require("org/tiny", what="model", fix="x", files=("config.json",)) == snapshot
    # switched in this process's hub library and handed to the processes it starts, os.environ untouched
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True and "HF_HUB_OFFLINE" not in os.environ
    assert hub.switched_offline() and hub.child_environment() == {"HF_HUB_OFFLINE": "1"}
    comet = unreachable_hub / "models--org--comet" / "snapshots" / "s1"
    (comet / "checkpoints").mkdir(parents=True)
    (comet / "checkpoints" / "model.ckpt").write_bytes(b"x")
    (comet / "hparams.yaml").write_text("pretrained_model: org/encoder\n", encoding="utf-8")
    with pytest.raises(hub.OfflineError, match="the encoder of COMET model 'org/comet'"):
        resolve_checkpoint("org/comet")  # its encoder is not cached: said now, not deep inside comet


def test_the_offline_switch_reaches_libraries_imported_after_it_without_os_environ():
    """go_offline before transformers/datasets are imported: they take the switch from huggingface_hub at their
    import, and the process's environment is left as it was."""
    env = {k: v for k, v in os.environ.items() if k not in hub.OFFLINE_ENV}
    script = ("import os\nfrom aligninstruct_cli import hub\nhub.go_offline()\n"
              "import transformers.utils.hub, datasets.config, huggingface_hub.constants\n"
              "print(transformers.utils.hub.is_offline_mode(), datasets.config.HF_HUB_OFFLINE,\n"
              "      huggingface_hub.constants.HF_HUB_OFFLINE, 'HF_HUB_OFFLINE' in os.environ)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "False"]


def test_data_and_spm_models_fail_fast_offline(tmp_path, unreachable_hub):
    started = time.monotonic()
    proc = subprocess.run([AIT, "data", "opus100", "--pair", "en-kk", "--split", "test", "--limit", "2"],
                          env=offline_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10  # was 24 s of retries
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert "dataset 'Helsinki-NLP/opus-100' is not in the local Hugging Face cache" in message
    assert "--source DIR" in message and "HF_HUB_OFFLINE=1" in message

    from aligninstruct_cli.metrics import bleu_chrf

    os.environ["HTTPS_PROXY"] = UNREACHABLE  # whatever the network: the download site cannot be reached
    try:
        hub.unreachable_reason.cache_clear()
        started = time.monotonic()
        with pytest.raises(AitError, match="could not be downloaded .*cannot connect to proxy 127.0.0.1"):
            bleu_chrf.check_spm_model("flores200")
        assert time.monotonic() - started < 2.0
    finally:
        del os.environ["HTTPS_PROXY"]


# ------------------------------------------------------------------------------------------------ architectures
# (lora_targets_for per architecture: tests/training/test_train.py)
@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    from aligninstruct_cli.tiny import build_tiny_llama, sample_texts, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(out, train_tokenizer(sample_texts(), out, vocab_size=500, style="llama"))
    return out


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory):
    from aligninstruct_cli.tiny import build_tiny_qwen2, sample_texts, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-qwen2")
    build_tiny_qwen2(out, train_tokenizer(sample_texts(), out, vocab_size=500, style="qwen2"))
    return out


def test_lora_targets_that_name_no_module_stop_before_launch(tiny_qwen2_dir, tmp_path):
    data = write_jsonl(tmp_path / "mt.jsonl", [{"id": "1", "objective": "mt", "src_lang": "en", "tgt_lang": "kk",
                                                "input": "x", "output": "y"}])
    args = ["train", "-m", str(tiny_qwen2_dir), "--data", f"mt={data}", "-o", str(tmp_path / "run"), "--launcher",
            "none", "--cache-dir", str(tmp_path / "cache"), "--dry-run"]
    result = runner.invoke(app, args + ["--lora-targets", "q_proj,qkv"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "--lora-targets qkv: no such module in" in message and "o_proj, q_proj, up_proj, v_proj" in message
    assert runner.invoke(app, args + ["--lora-targets", "q_proj,o_proj"]).exit_code == 0


def test_eos_padding_and_chat_prompts_are_the_same_tokens_in_training_and_translation(tiny_llama_dir, tiny_qwen2_dir):
    from aligninstruct_cli import models
    from aligninstruct_cli.generation import resolve_prompt
    from aligninstruct_cli.instructions.templates import MT_INPUT
    from aligninstruct_cli.training.examples import tokenize_records

    # Llama: BOS added, no pad token (padded with EOS for batches), EOS appended to outputs
    llama = models.load_tokenizer(str(tiny_llama_dir))
    assert llama.pad_token is None and llama("a b")["input_ids"][0] == llama.bos_token_id
    assert models.load_tokenizer(str(tiny_llama_dir), padding_side="left").pad_token_id == llama.eos_token_id
    record = {"id": "r1", "input": MT_INPUT.format(src_name="English", tgt_name="Kazakh", src="the cat"),
              "output": "a dog"}
    data = tokenize_records([(1, record)], llama, path="x", max_length=64, too_long="error", progress=False)
    tokens, prompt_len = data.example(0)
    assert int(tokens[-1]) == llama.eos_token_id and list(tokens).count(llama.bos_token_id) == 1
    assert list(tokens[:prompt_len]) == llama(record["input"])["input_ids"]  # the inference prompt's tokens

    # Qwen2-Instruct-style: a chat template; <|im_end|> is EOS and ends the answer
    qwen = models.load_tokenizer(str(tiny_qwen2_dir))
    prompt = resolve_prompt("default").with_chat_template(qwen, "qwen")
    rendered = prompt.render("en", "kk", "the cat")
    assert rendered == ("<|im_start|>user\nTranslate from English to Kazakh.\nEnglish: the cat\nKazakh:<|im_end|>\n"
                        "<|im_start|>assistant\n")
    data = tokenize_records([(1, record)], qwen, path="x", max_length=64, too_long="error", progress=False,
                            chat_template=True)
    tokens, prompt_len = data.example(0)
    assert list(tokens[:prompt_len]) == qwen(rendered)["input_ids"]  # what translate --chat-template feeds
    assert int(tokens[-1]) == qwen.convert_tokens_to_ids("<|im_end|>") == qwen.eos_token_id
    # a template that writes BOS itself, with a tokenizer that adds one: exactly one BOS
    llama.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    assert models.chat_prompt(llama, "x") == "[x]" and llama("[x]")["input_ids"].count(llama.bos_token_id) == 1
    with pytest.raises(AitError, match="chat_template: the tokenizer of m has no chat template"):
        resolve_prompt("default").with_chat_template(models.load_tokenizer(str(tiny_llama_dir)), "m")


# ------------------------------------------------------------------------------------------------ probe
def _run(values: np.ndarray, pairs: str = "same") -> dict:
    return {"label": None, "cosine": values.mean(axis=0).tolist(), "n_pairs": len(values), "pairs_sha256": pairs,
            "per_pair": P.encode_per_pair(values)}


def test_probe_intervals_and_deltas_are_honest():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.05, size=(200, 4)).astype(np.float32)
    signs = np.repeat([[1.0], [-1.0]], 100, axis=0).repeat(4, axis=1)  # (200, 4): half +, half -
    noise = base + (rng.permuted(signs, axis=0) * 0.0004).astype(np.float32)  # differs by noise of mean 0
    shifted = base.copy()
    shifted[:, 2:] += 0.02  # a real effect in layers 2 and 3
    means = P.bootstrap_means(base, 500, 0)
    ci = P.percentile_interval(means)
    assert all(lo < m < hi for (lo, hi), m in zip(ci, base.mean(axis=0)))
    assert P.percentile_interval(P.bootstrap_means(base, 500, 0)) == ci  # seeded
    assert np.allclose(P.decode_per_pair(P.encode_per_pair(base)), base)

    result = P.compare_runs([_run(base), _run(noise), _run(shifted)], ["a.json", "b.json", "c.json"],
                            bootstrap_samples=500)
    d1, d2 = result["deltas"]
    assert d1["paired"] and all(d1["includes_zero"])  # noise: every interval includes 0
    assert d2["paired"] and d2["includes_zero"][2:] == [False, False]
    assert all(lo <= d <= hi for (lo, hi), d in zip(d2["ci95"], d2["delta"]))
    # paired intervals are much narrower than independent ones for the same runs
    unpaired = P.compare_runs([_run(base, "x"), _run(shifted, "y")], ["a", "b"], bootstrap_samples=500)["deltas"][0]
    assert not unpaired["paired"]
    width = lambda d: np.mean([hi - lo for lo, hi in d["ci95"]])  # noqa: E731
    assert width(d2) < width(unpaired) / 5
    # results from before the intervals still compare, without them
    old = P.compare_runs([{"cosine": [0.1, 0.2]}, {"cosine": [0.2, 0.2]}], ["a", "b"])
    assert "ci95" not in old["deltas"][0] and old["deltas"][0]["delta"] == [0.1, 0.0]


def test_probe_terminal_bars_use_fixed_scales(tmp_path):
    from rich.console import Console

    assert P._bar(0.5) == "█" * 12 + "·" * 12 and P._bar(0.5, width=24) == P._bar(0.5)
    assert P._bar(1.3) == "█" * 24 and P._bar(-0.2) == "·" * 24
    assert P._delta_bar(0.0004) == "·" * 8 + "│" + "·" * 8  # noise draws as nothing
    assert P._delta_bar(0.05) == "·" * 8 + "│" + "████····" and P._delta_bar(-0.2) == "█" * 8 + "│" + "·" * 8
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.05, size=(50, 3)).astype(np.float32)
    result = P.compare_runs([_run(base), _run(base + 0.0004)], ["a", "b"], bootstrap_samples=200)
    console = Console(record=True, width=160)
    console.print(P.render_terminal(result))
    text = console.export_text()
    assert "Δ1 95% CI" in text and "interval includes 0" in text and "−0.1 … +0.1" in text
    P.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_probe_result_holds_intervals_and_pairs(tiny_bloom_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [{"id": i, "src_lang": "en", "tgt_lang": "kk", "src": f"the cat {i}", "tgt": f"mysyq {i}"}
                        for i in range(6)])
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["probe", str(pairs), "--model", str(tiny_bloom_dir), "--bootstrap-samples", "100",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text())
    values = P.decode_per_pair(run["per_pair"])
    assert values.shape == (6, 3) and np.allclose(values.mean(axis=0), run["cosine"], atol=1e-6)
    assert len(run["ci95"]) == 3 and run["bootstrap"]["samples"] == 100 and len(run["pairs_sha256"]) == 64


# ------------------------------------------------------------------------------------------------ toy models
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

"""`ait probe`: per-layer cosine of mean-pooled hidden states, Δ between runs, the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from aligninstruct_cli import probe as P
from aligninstruct_cli.cli import app
from aligninstruct_cli.io import char_budget
from aligninstruct_cli.tiny import sample_texts
from conftest import SpyTokenizer, write_jsonl

runner = CliRunner()


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    texts = sample_texts(24, seed=13)
    records = [{"id": i, "src_lang": "en" if i % 3 else "kk", "tgt_lang": "kk" if i % 3 else "en",
                "src": texts[2 * i], "tgt": texts[2 * i + 1]} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def direct_layer_cosines(model_dir: Path, pairs: list[dict]) -> tuple[list[float], dict[str, list[float]]]:
    """One sentence at a time (no padding at all): mean over tokens per layer, cosine, mean over pairs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def embed(text):
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            states = model(input_ids=ids, output_hidden_states=True).hidden_states
        return [h[0].mean(dim=0) for h in states]

    per_pair = []
    for p in pairs:
        a, b = embed(p["src"]), embed(p["tgt"])
        per_pair.append([torch.nn.functional.cosine_similarity(x, y, dim=0).item() for x, y in zip(a, b)])
    n_layers = len(per_pair[0])
    overall = [sum(c[k] for c in per_pair) / len(per_pair) for k in range(n_layers)]
    by_dir: dict[str, list[list[float]]] = {}
    for p, c in zip(pairs, per_pair):
        by_dir.setdefault(f"{p['src_lang']}-{p['tgt_lang']}", []).append(c)
    return overall, {d: [sum(c[k] for c in cs) / len(cs) for k in range(n_layers)] for d, cs in by_dir.items()}


def test_per_layer_cosine_equals_direct_computation(tmp_path, pairs_file, tiny_bloom_dir):
    out, png = tmp_path / "run.json", tmp_path / "run.png"
    result = runner.invoke(app, ["probe", str(pairs_file), "--model", str(tiny_bloom_dir), "--batch-size", "5",
                                 "-o", str(out), "--plot", str(png), "--label", "base"])
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text())
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    overall, by_dir = direct_layer_cosines(tiny_bloom_dir, pairs)
    assert run["n_pairs"] == 12 and run["layers"] == [0, 1, 2] and run["label"] == "base"
    assert run["cosine"] == pytest.approx(overall, abs=1e-5)
    assert {d: v["cosine"] for d, v in run["by_direction"].items()} == \
        {d: pytest.approx(v, abs=1e-5) for d, v in by_dir.items()}
    assert run["by_direction"]["en-kk"]["n"] == 8 and run["by_direction"]["kk-en"]["n"] == 4
    assert "mean cosine per layer" in result.output  # the terminal rendering (stderr)
    assert_real_png(png)


def test_padding_side_does_not_change_the_result(pairs_file, tiny_bloom_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aligninstruct_cli.io import read_records
    from aligninstruct_cli.probe import layer_similarity

    model = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir).eval()
    pairs = list(read_records(str(pairs_file), kind="parallel"))
    results = []
    for side in ("left", "right"):
        tok = AutoTokenizer.from_pretrained(tiny_bloom_dir, padding_side=side)
        results.append(layer_similarity(model, tok, pairs, batch_size=6)["cosine"])
    assert results[0] == pytest.approx(results[1], abs=1e-5)


def assert_real_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    flat = pixels[..., :3].reshape(-1, 3)
    assert flat.std() > 0.05  # not a blank image
    colours = {tuple(c) for c in (flat[:: 97] * 255).round().astype(int).tolist()}
    assert len(colours) > 10  # lines, text and axes in several colours


def test_compare_gives_per_layer_deltas(tmp_path, pairs_file, tiny_bloom_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir),
                           LoraConfig(r=8, lora_alpha=32, target_modules=["query_key_value"], task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    runs = []
    for name, extra in (("base", []), ("lora", ["--adapter", str(adapter)])):
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["probe", str(pairs_file), "--model", str(tiny_bloom_dir), "-o", str(out),
                                     *extra])
        assert result.exit_code == 0, result.output
        runs.append(out)
    a, b = (json.loads(p.read_text()) for p in runs)
    assert a["cosine"] != b["cosine"] and b["adapter"] == str(adapter)
    png = tmp_path / "delta.png"
    result = runner.invoke(app, ["probe", "--compare", str(runs[0]), str(runs[1]), str(runs[0]), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    cmp_ = json.loads(result.stdout)
    assert [d["name"] for d in cmp_["deltas"]] == ["Δ1", "Δ2"]
    assert cmp_["deltas"][0]["from"] == "tiny-bloom0" and cmp_["deltas"][0]["to"] == "adapter"
    assert cmp_["deltas"][0]["delta"] == [y - x for x, y in zip(a["cosine"], b["cosine"])]
    assert cmp_["deltas"][1]["delta"] == [x - y for x, y in zip(a["cosine"], b["cosine"])]
    assert "Δ2" in result.output  # terminal table
    assert_real_png(png)


def test_probe_errors(tmp_path, pairs_file, tiny_bloom_dir):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"cosine": [0.1, 0.2, 0.3]}))
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"cosine": [0.1, 0.2]}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"scores": []}))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [
        (["--compare", str(run), str(short)], "different numbers of layers"),
        (["--compare", str(run), str(other)], "not an `ait probe` result"),
        (["--compare", str(run)], "at least two"),
        (["--compare", str(run), str(run), "--model", str(tiny_bloom_dir)], "takes no --model"),
        ([str(pairs_file)], "--model is required"),
        ([str(pairs_file), str(pairs_file), "--model", str(tiny_bloom_dir)], "expected one PAIRS file"),
        ([str(pairs_file), "--model", str(tiny_bloom_dir), "--plot", str(tmp_path / "no" / "p.png")],
         "does not exist"),
        ([str(empty), "--model", str(tiny_bloom_dir)], "no sentence pairs"),
    ]
    for args, message in cases:
        out = tmp_path / "out.json"
        result = runner.invoke(app, ["probe", *args, "-o", str(out)])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert not out.exists()


def test_options_defaults_precision_and_the_old_dtype_flag(tmp_path, pairs_file, tiny_bloom_dir):
    """fp32 by default (as `--dtype auto` loaded it before); --dtype and its old spellings still work."""
    from aligninstruct_cli.options import OptionError
    from aligninstruct_cli.probe import ProbeOptions, layer_similarity

    result = runner.invoke(app, ["probe", str(pairs_file), "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert (printed["precision"], printed["batch_size"], printed["max_length"]) == ("fp32", 16, 256)
    runs = {}
    for flags in ([], ["--dtype", "float32"], ["--precision", "auto"]):
        out = tmp_path / f"run{len(runs)}.json"
        result = runner.invoke(app, ["probe", str(pairs_file), "--model", str(tiny_bloom_dir), "--limit", "4",
                                     "-o", str(out), *flags])
        assert result.exit_code == 0, result.output
        assert ("deprecated" in result.output) == ("--dtype" in flags)
        runs[tuple(flags)] = json.loads(out.read_text())["cosine"]
    assert len({tuple(v) for v in runs.values()}) == 1  # on a CPU, auto is fp32 too
    assert ProbeOptions(precision="float16").precision == "fp16"
    with pytest.raises(OptionError, match="^max_length must be at least 1, not 0$"):
        layer_similarity(None, None, [], max_length=0)


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


# ------------------------------------------------------------------------------------------------ intervals
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

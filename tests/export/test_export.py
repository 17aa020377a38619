"""Any causal LM, end to end, and out to serving: tiny Llama (BOS, no pad token) and tiny Qwen2
(a chat template, <|im_end|> as EOS) models built locally run `ait train` on two CPU ranks, then
`ait translate`, `ait probe` and `ait export`; the exported merged model generates exactly what PEFT's
merged model generates, and no model card holds a local path. The two trainings run side by side (each is
mostly launcher and import time)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import read_jsonl, write_jsonl
from train_helpers import AIT, REPO, make_data, worker_env
from aligninstruct_cli.cli import app

runner = CliRunner()
TIMEOUT = 400
PROMPTS = ["Translate from English to Kazakh.\nEnglish: the cat sees the dog\nKazakh:",
           "Translate from English to Kazakh.\nEnglish: a red bird\nKazakh:"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(arch: str, out: Path) -> Path:
    """A tiny model of `arch` with its family's tokenizer, embeddings scaled ×10 so LoRA visibly learns."""
    import torch
    from transformers import AutoModelForCausalLM

    from aligninstruct_cli.tiny import build_tiny_llama, build_tiny_qwen2, sample_texts, train_tokenizer

    builder = {"llama": build_tiny_llama, "qwen2": build_tiny_qwen2}[arch]
    builder(out, train_tokenizer(sample_texts(), out, vocab_size=500, style=arch))
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{arch: (model dir, run dir, data)} after two-rank trainings of tiny Llama and Qwen2 (Qwen2 with its
    chat template), started together."""
    root = tmp_path_factory.mktemp("any-lm")
    data = make_data(root, n_mt=8, n_align=4)
    procs = {}
    for arch in ("llama", "qwen2"):
        model = build(arch, root / arch)
        run = root / f"run-{arch}"
        args = [AIT, "train", "--model", model, "--data", f"mt={data['mt']}", "--data", f"align={data['align']}",
                "--curriculum", "mt+align,mt", "--output", run, "--num-gpus", 2, "--master-port", free_port(),
                "--epochs", 1, "--batch-size", 2, "--lr", "1e-2", "--cache-dir", root / "cache"]
        args += ["--chat-template"] if arch == "qwen2" else []
        procs[arch] = (model, run, subprocess.Popen(list(map(str, args)), cwd=REPO, env=worker_env(),
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = {}
    for arch, (model, run, proc) in procs.items():
        log, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, log[-5000:]
        out[arch] = (model, run, data)
    return out


def no_local_paths(text: str, *roots: Path) -> bool:
    return not any(str(r) in text for r in roots) and "/tmp/" not in text


@pytest.mark.slow  # two-rank DeepSpeed trainings per architecture: ~27 s
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_two_ranks_train_then_translate_probe_export(arch, trained, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, run, data = trained[arch]
    chat = ["--chat-template"] if arch == "qwen2" else []
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["lora_targets"] == ["q_proj", "k_proj", "v_proj"]
    assert manifest["hyperparameters"]["chat_template"] is (arch == "qwen2")
    card = (run / "final" / "README.md").read_text()
    assert no_local_paths(card, run, model_dir) and "English (en), Kazakh (kk)" in card
    assert "1. mt + align, 12 examples, 1 epoch" in card and "MTInstruct (translation): 8 records" in card
    assert ("--chat-template" in card) is (arch == "qwen2")

    # translate (the chat template wraps prompts as in training), probe
    test = write_jsonl(tmp_path / "test.jsonl", [{"id": k, "src_lang": "en", "tgt_lang": "kk", "src": s, "tgt": "x"}
                                                 for k, s in enumerate(["the cat sees the dog", "a red bird"])])
    hyps = tmp_path / "hyps.jsonl"
    result = runner.invoke(app, ["translate", str(test), "--model", str(model_dir), "--adapter", str(run / "final"),
                                 "--max-new-tokens", "6", "-o", str(hyps), *chat])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(hyps)] == [0, 1] and all("hyp" in r for r in read_jsonl(hyps))
    probe_out = tmp_path / "probe.json"
    result = runner.invoke(app, ["probe", str(test), "--model", str(model_dir), "--adapter", str(run / "final"),
                                 "--bootstrap-samples", "50", "-o", str(probe_out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(probe_out.read_text())["ci95"]) == 3  # embeddings + 2 blocks

    # export: the merged model generates what PEFT's merged model generates
    merged = tmp_path / "merged"
    result = runner.invoke(app, ["export", str(run), "-o", str(merged)])
    assert result.exit_code == 0, result.output
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    exported = AutoModelForCausalLM.from_pretrained(merged)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), run / "final").merge_and_unload()
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(merged)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(exported.state_dict()[q], base.state_dict()[q])  # the adapter did something
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt")
        outputs = [m.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=pad).tolist()
                   for m in (exported, reference)]
        assert outputs[0] == outputs[1]
    assert exported.generation_config.eos_token_id == tok.eos_token_id
    assert no_local_paths((merged / "README.md").read_text() + (merged / "config.json").read_text()
                          + (merged / "export.json").read_text(), run, model_dir)

    # --adapter-only: a clean adapter directory that plain PEFT loads on the base
    adapter = tmp_path / "adapter"
    result = runner.invoke(app, ["export", str(run), "--adapter-only", "-o", str(adapter)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in adapter.iterdir()) == sorted(
        ["README.md", "adapter_config.json", "adapter_model.safetensors", "export.json", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json"] + (["chat_template.jinja"] if arch == "qwen2" else []))
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == model_dir.name
    assert no_local_paths((adapter / "README.md").read_text() + json.dumps(config), run, model_dir)
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).merge_and_unload()
    assert torch.equal(loaded.state_dict()[q], exported.state_dict()[q])


@pytest.mark.slow  # needs `trained`: the two two-rank DeepSpeed trainings (~25 s alone, a minute on busy cores)
def test_export_errors(trained, tmp_path):
    model_dir, run, _ = trained["llama"]
    other, _, _ = trained["qwen2"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    cases = [
        (["export", str(run), "-o", str(tmp_path / "full")], "already exists and is not empty"),
        (["export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o")], "no such directory"),
        (["export", str(tmp_path / "full"), "-o", str(tmp_path / "o")], "neither an `ait train` run directory"),
        (["export", str(run), "--model", str(other), "-o", str(tmp_path / "o")], "was trained on"),
        (["export", str(run), "--scores", str(run / "run.json"), "-o", str(tmp_path / "o")],
         "not an `ait score -f json` report"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (message, result.output)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))  # nothing half-written


def test_model_card_names_the_hub_id_and_states_the_scores(tmp_path):
    from aligninstruct_cli.export import hub_id_of, model_card, portable_name

    snapshot = tmp_path / "hub" / "models--bigscience--bloomz-560m" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    local_copy = tmp_path / "my-bloomz"
    local_copy.mkdir()
    (local_copy / "config.json").write_text(json.dumps({"_name_or_path": "bigscience/bloomz-560m"}))
    own = tmp_path / "own-model"
    own.mkdir()
    (own / "config.json").write_text(json.dumps({"_name_or_path": str(own)}))
    assert hub_id_of("bigscience/bloomz-560m") == hub_id_of(str(snapshot)) == hub_id_of(str(local_copy)) \
        == "bigscience/bloomz-560m"
    assert hub_id_of(str(own)) is None and portable_name(str(own)) == "own-model"
    scores = {"metrics": ["bleu", "chrf"], "n_segments": 2, "references": str(tmp_path / "refs.jsonl"),
              "systems": [{"name": "mt+align", "directions": {"en-kk": {
                  "bleu": {"score": 12.345, "signature": "nrefs:1|tok:13a"},
                  "chrf": {"score": 40.0, "signature": "nrefs:1|nc:6|nw:2"}}}}]}
    manifest = {"model": {"name": str(snapshot)}, "curriculum": [["mt", "align"], ["mt"]],
                "hyperparameters": {"epochs": [5, 5], "lr": [2e-4], "lora_r": 8, "lora_alpha": 32,
                                    "lora_dropout": 0.1, "max_length": 384},
                "lora_targets": ["query_key_value"], "result": {"chosen_lr": 2e-4}}
    summary = {"mt": {"examples": 100, "tokens": 5000, "objectives": {"mt": 100}, "directions": {"en-kk": 50,
                                                                                                 "kk-en": 50}},
               "align": {"examples": 80, "tokens": 7000, "objectives": {"align": 80}, "directions": {"en-kk": 80}}}
    card = model_card(base=str(snapshot), kind="adapter", facts={"manifest": manifest, "summary": summary},
                      scores=scores)
    assert card.startswith("---\nbase_model: bigscience/bloomz-560m\nlibrary_name: peft\n")
    assert "- kk" in card and "English (en), Kazakh (kk)" in card
    assert "1. mt + align, 180 examples, 5 epochs" in card and "2. mt, 100 examples, 5 epochs" in card
    assert "AlignInstruct (word-alignment judgements): 80 records" in card
    assert "| mt+align | en-kk | 12.35 | 40.00 |" in card and "`nrefs:1|tok:13a`" in card
    assert "LoRA targets: query_key_value" in card and str(tmp_path) not in card


def test_export_of_an_uncached_hub_base_offline_stops_at_once(tmp_path, monkeypatch):
    """A base named by a hub id that is neither cached nor reachable: the same one paragraph as every other
    command (model, cache directory, fixes), exit 2, before anything is loaded or written."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "bigscience/bloomz-560m"}))
    import torch
    from safetensors.torch import save_file

    save_file({"base_model.model.lora_A.weight": torch.zeros(2, 2)}, str(adapter / "adapter_model.safetensors"))
    result = runner.invoke(app, ["export", str(adapter), "--model", "bigscience/bloomz-560m",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "model 'bigscience/bloomz-560m' is not in the local Hugging Face cache" in text
    assert str(tmp_path / "empty-cache") in text and "pass a local model directory as --model" in text
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))

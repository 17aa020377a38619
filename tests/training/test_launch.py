"""`ait train` for real: the deepspeed launcher with two CPU ranks (gloo), exact resume after SIGKILL, and
full LoRA weights under ZeRO-3. Each test starts `ait` as a user would (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import read_jsonl
from train_helpers import AIT, REPO, learnable_model, make_data, worker_env

pytestmark = pytest.mark.slow

TIMEOUT = 300


@pytest.fixture(scope="module")
def model_dir(tiny_bloom_dir, tmp_path_factory):
    return learnable_model(tiny_bloom_dir, tmp_path_factory.mktemp("learnable-bloom"))


def ait_train(*args, env=None, check=True):
    proc = subprocess.run([AIT, "train", *map(str, args)], cwd=REPO, env=env or worker_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def test_two_cpu_ranks_two_stages_learn_and_final_loads_with_plain_peft(model_dir, tmp_path):
    data = make_data(tmp_path, n_mt=8, n_align=4)
    out = tmp_path / "run"
    ait_train("--model", model_dir, "--data", f"mt={data['mt']}", "--data", f"align={data['align']}",
              "--curriculum", "mt+align,mt", "--val", data["val"], "--output", out, "--num-gpus", 2,
              "--epochs", 6, "--batch-size", 2, "--lr", "1e-2", "--log-every", 1, "--seed", 1,
              "--cache-dir", tmp_path / "cache")
    for name in ("stage-1-mt+align", "stage-2-mt", "final"):
        assert (out / name / "adapter_config.json").is_file() and (out / name / "tokenizer.json").is_file()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["result"]["chosen_lr"] == 0.01
    assert manifest["curriculum"] == [["mt", "align"], ["mt"]]
    assert manifest["hyperparameters"]["lora_r"] == 8 and manifest["lora_targets"] == ["query_key_value"]
    assert set(manifest["input_hashes"]) >= {"mt", "align", "--val"} and "deepspeed" in manifest["versions"]
    metrics = read_jsonl(out / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m]
    assert {m["stage"] for m in steps} == {1, 2}
    assert len([m for m in metrics if "val_loss" in m]) == 12  # one per epoch and stage
    first, last = steps[0]["loss"], sum(m["loss"] for m in steps[-4:]) / 4
    assert last < 0.75 * first, (first, last)  # the loss falls on the memorisation set
    assert all(m["tokens_per_s"] > 0 and 0 < m["real_token_fraction"] <= 1 for m in steps)

    # final/ is a standard PEFT adapter: a fresh interpreter that imports nothing from ait loads it and generates
    script = f"""
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained({str(out / 'final')!r})
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({str(model_dir)!r}), {str(out / 'final')!r})
ids = tok("Translate from English to Kazakh.\\nEnglish: the cat\\nKazakh:", return_tensors="pt")
gen = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
print(json.dumps({{"new_tokens": gen.shape[1] - ids["input_ids"].shape[1], "lora_params": trainable,
                  "ait_imported": any(m.startswith("aligninstruct_cli") for m in sys.modules)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=worker_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"new_tokens": result["new_tokens"], "lora_params": 2 * (8 * 64 + 192 * 8), "ait_imported": False}
    assert result["new_tokens"] >= 1


@pytest.mark.parametrize("compile_blocks", ["off", "on"])
def test_sigkill_mid_stage_then_resume_gives_the_same_weights_and_data_order(model_dir, tmp_path, compile_blocks):
    """--launcher none (one rank, in-process) keeps this test short; the code path (DeepSpeed engine,
    checkpoint, RNG and data position) is the one the launcher's ranks run. With compiled blocks too
    (inductor on the CPU; LoRA dropout's random numbers then come from compiled code)."""
    import torch
    from safetensors.torch import load_file

    data = make_data(tmp_path, n_mt=16, n_align=8)
    common = ["--model", model_dir, "--data", f"mt={data['mt']}", "--data", f"align={data['align']}",
              "--curriculum", "mt+align,mt", "--launcher", "none", "--epochs", 2, "--batch-size", 4, "--lr", "1e-2",
              "--save-every", 2, "--log-every", 1, "--log-data-ids", "--seed", 5, "--compile", compile_blocks,
              "--cache-dir", tmp_path / "cache"]
    ait_train(*common, "--output", tmp_path / "straight")
    killed = ait_train(*common, "--output", tmp_path / "killed", env=worker_env(AIT_DEBUG_KILL_AFTER_STEP="7"),
                       check=False)
    assert killed.returncode == -9, killed.stderr[-3000:]  # stage 1 has 12 steps: killed in the middle
    state = json.loads((tmp_path / "killed" / "checkpoints" / "state.json").read_text())
    assert state["done"] == [] and state["resume"]["global_step"] == 6 and state["resume"]["stage"] == 0
    assert not (tmp_path / "killed" / "final").exists()
    ait_train(*common, "--output", tmp_path / "killed", "--resume")

    for stage in ("stage-1-mt+align", "final"):
        a = load_file(tmp_path / "straight" / stage / "adapter_model.safetensors")
        b = load_file(tmp_path / "killed" / stage / "adapter_model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-7)
    ids_a = read_jsonl(tmp_path / "straight" / "data_ids.jsonl")
    ids_b = read_jsonl(tmp_path / "killed" / "data_ids.jsonl")
    assert ids_a == ids_b and len(ids_a) == 12 + 8
    stage1 = [step["ids"] for step in ids_a if step["stage"] == 1]
    for epoch in (stage1[:6], stage1[6:]):  # each epoch: every one of the 24 records exactly once
        flat = [i for ids in epoch for i in ids]
        assert len(flat) == len(set(flat)) == 24
    losses_a = [m["loss"] for m in read_jsonl(tmp_path / "straight" / "metrics.jsonl")]
    losses_b = [m["loss"] for m in read_jsonl(tmp_path / "killed" / "metrics.jsonl")]
    assert losses_a == losses_b


def test_zero3_saves_the_full_lora_weights(model_dir, tmp_path):
    from safetensors.torch import load_file

    data = make_data(tmp_path, n_mt=8, n_align=0)
    out = tmp_path / "run"
    ait_train("--model", model_dir, "--data", f"mt={data['mt']}", "--output", out, "--num-gpus", 2, "--zero", 3,
              "--epochs", 1, "--batch-size", 2, "--lr", "1e-2", "--cache-dir", tmp_path / "cache")
    weights = load_file(out / "final" / "adapter_model.safetensors")
    shapes = {k.split(".lora_")[1]: tuple(v.shape) for k, v in weights.items()}
    assert len(weights) == 4 and shapes == {"A.weight": (8, 64), "B.weight": (192, 8)}
    # lora_B starts at zero: non-zero values prove the trained, gathered weights were written
    assert all(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


def test_a_global_batch_over_two_ranks_trains_what_one_rank_trains(model_dir, tmp_path):
    """--global-batch 8 as 2 ranks × micro 2 × accumulation 2 (deepspeed launcher, ZeRO-2) and as 1 rank ×
    micro 8: the loss is normalised over the global batch, so two optimizer steps give the same adapter up to
    float reassociation. (1 rank × micro 2 × accumulation 4: tests/training/test_train.py.)"""
    import torch
    from safetensors.torch import load_file

    data = make_data(tmp_path, n_mt=16, n_align=0)
    common = ["--model", model_dir, "--data", f"mt={data['mt']}", "--epochs", 1, "--global-batch", 8, "--lr", "1e-2",
              "--lora-dropout", 0, "--cache-dir", tmp_path / "cache"]
    ait_train(*common, "--batch-size", 8, "--launcher", "none", "--output", tmp_path / "one")
    ait_train(*common, "--batch-size", 2, "--num-gpus", 2, "--output", tmp_path / "two")
    manifest = json.loads((tmp_path / "two" / "run.json").read_text())
    assert manifest["batch"] == {"global": 8, "micro": 2, "accumulation": 2, "ranks": 2, "micro_from": "batch_size"}
    assert manifest["ds_config"]["train_batch_size"] == 8
    for run in ("one", "two"):  # the same optimizer steps: 16 records / 8 (the step-2 line ends the stage)
        assert [m["step"] for m in read_jsonl(tmp_path / run / "metrics.jsonl")] == [2]
    one = load_file(tmp_path / "one" / "final" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "final" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for key, reference in one.items():
        assert reference.abs().max() > 0
        torch.testing.assert_close(two[key], reference, rtol=1e-3, atol=1e-5)

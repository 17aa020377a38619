"""Any decoder-only family: a tiny random model of every causal-LM family below, built from its
transformers config offline, runs the whole chain in this process: `ait train --launcher none` (one step),
`ait translate`, `ait export`; the exported merged model generates what stock transformers + PEFT generate
from the same adapter. The families run are printed at the end (`test_families_run_are_listed`).

The list is every family ait names LoRA defaults for whose config transformers builds without a download
(training/train_options.LORA_TARGETS), so a family added there is tried here too; one that cannot run on a CPU
is skipped with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import read_jsonl, write_jsonl
from train_helpers import make_data
from aligninstruct_cli.cli import app
from aligninstruct_cli.training.train_options import LORA_TARGETS

runner = CliRunner()
PROMPT = "Translate from English to Kazakh.\nEnglish: the cat sees the dog\nKazakh:"
# families that cannot run here, and why (none with transformers 4.57; see `cannot_run` for the others)
CANNOT_RUN: dict[str, str] = {}
FAMILIES = sorted(LORA_TARGETS)
RUN: list[str] = []


def tiny_config(model_type: str, tokenizer):
    """The family's config at a tiny size (hidden 64, 2 layers, 4 heads), with the tokenizer's special ids."""
    from transformers import AutoConfig

    defaults = AutoConfig.for_model(model_type)
    sizes = dict(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128)
    optional = dict(num_key_value_heads=2, head_dim=16, max_position_embeddings=512, num_local_experts=4,
                    num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, n_positions=512,
                    ffn_hidden_size=128, n_inner=128, rotary_dim=8, sliding_window=64, word_embed_proj_dim=64,
                    ffn_dim=128, query_pre_attn_scalar=16, shared_expert_intermediate_size=64)
    sizes.update({k: v for k, v in optional.items() if hasattr(defaults, k)})
    if model_type == "mpt":
        sizes = dict(vocab_size=len(tokenizer), d_model=64, n_layers=2, n_heads=4, max_seq_len=512)
    if model_type == "falcon":  # head_dim is derived (a read-only property)
        sizes.pop("head_dim", None)
        sizes.update(num_kv_heads=2, new_decoder_architecture=True)
    if model_type == "bloom":
        sizes = dict(vocab_size=len(tokenizer), hidden_size=64, n_layer=2, n_head=4)
    return AutoConfig.for_model(model_type, **sizes, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def cannot_run(family: str) -> str | None:
    """Why `family` cannot run on this machine's transformers (None: it can)."""
    from transformers import CONFIG_MAPPING

    if family in CANNOT_RUN:
        return CANNOT_RUN[family]
    if family not in CONFIG_MAPPING:
        return "this transformers version does not know it"
    return None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("families")
    return root, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), make_data(root, n_mt=4, n_align=2)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_translates_and_exports(family, workspace):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reason = cannot_run(family)
    if reason:
        pytest.skip(f"{family}: {reason}")
    root, tokenizer, data = workspace
    model_dir = root / family
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(family, tokenizer))
    with torch.no_grad():  # larger embeddings: the adapter changes greedy outputs visibly
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    run = root / f"run-{family}"
    result = runner.invoke(app, ["-q", "train", "--model", str(model_dir), "--data", f"mt={data['mt']}",
                                 "--output", str(run), "--launcher", "none", "--epochs", "1", "--batch-size", "4",
                                 "--lr", "5e-2", "--cache-dir", str(root / "cache")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "finished" and manifest["model"]["type"] == family

    test = write_jsonl(root / f"test-{family}.jsonl", [{"id": 0, "src_lang": "en", "tgt_lang": "kk",
                                                         "src": "the cat sees the dog"}])
    hyps = root / f"hyps-{family}.jsonl"
    result = runner.invoke(app, ["-q", "translate", str(test), "--model", str(model_dir), "--adapter",
                                 str(run / "final"), "--max-new-tokens", "4", "-o", str(hyps)])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(hyps)] == [0]

    merged = root / f"merged-{family}"
    result = runner.invoke(app, ["-q", "export", str(run), "-o", str(merged)])
    assert result.exit_code == 0, result.output
    exported = AutoModelForCausalLM.from_pretrained(merged)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir),
                                          run / "final").merge_and_unload()
    ids = tokenizer(PROMPT, return_tensors="pt")
    outputs = [m.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id).tolist()
               for m in (exported, reference)]
    assert outputs[0] == outputs[1]
    RUN.append(family)


def test_families_run_are_listed(capsys):
    """Last in this module: the families the chain ran on (none when the slow tests were deselected)."""
    with capsys.disabled():
        print(f"\nmodel families run end to end ({len(RUN)}): {', '.join(RUN) or 'none'}")

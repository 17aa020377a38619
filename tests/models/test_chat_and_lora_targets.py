"""Architectures other than BLOOM, the fast parts: LoRA targets that name no module stop before the launch; EOS,
padding and chat prompts are the same tokens in training and translation. The end-to-end runs per family are in
tests/models/test_families.py and tests/export/test_export.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from conftest import write_jsonl

runner = CliRunner()


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

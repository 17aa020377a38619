"""ait's greedy decoding loop (decoding.py) on CPU in fp32: token for token what HF `generate` gives on the same
left-padded batches (tiny BLOOM, Llama and Qwen2 with large random weights), with rows stopping early at the
newline rule or EOS and rows running to max_new_tokens, looked at every step or every few steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import noisy_copy
from aligninstruct_cli.decoding import GreedyDecoder, unsupported_generation_settings
from aligninstruct_cli.generation import Translator, _count_generated
from aligninstruct_cli.models import load_model
from tests.translation.test_translate import make_records

FAMILIES = ("bloom", "llama", "qwen2")


@pytest.fixture(scope="module")
def noisy_models(tmp_path_factory, tiny_bloom_dir) -> dict[str, Path]:
    from aligninstruct_cli.tiny import build_tiny_llama, build_tiny_qwen2, sample_texts, train_tokenizer

    sources = {"bloom": tiny_bloom_dir}
    for family, build in (("llama", build_tiny_llama), ("qwen2", build_tiny_qwen2)):
        out = tmp_path_factory.mktemp(family)
        build(out, train_tokenizer(sample_texts(), out / "tok", vocab_size=600, style=family))
        sources[family] = out
    return {name: with_stops(noisy_copy(source, tmp_path_factory.mktemp(f"noisy-{name}")))
            for name, source in sources.items()}


def with_stops(model_dir: Path) -> Path:
    """The model rewritten so that it stops now and then: the output rows of a newline token and of EOS become
    (1% larger) copies of the rows of two tokens it often generates, which they then outrank."""
    from collections import Counter

    import torch

    loaded = load_model(str(model_dir), precision="fp32")
    tok = loaded.tokenizer
    translator = Translator(loaded, batch_size=4, max_new_tokens=20, cache="dynamic")
    rows = translator.generate_token_ids(prompts_for(translator))
    common = [token for token, _ in Counter(t for row in rows for t in row[1:]).most_common(5)]
    newline = tok.encode("\n", add_special_tokens=False)[-1]
    weight = loaded.model.get_output_embeddings().weight
    with torch.no_grad():
        weight[newline] = weight[common[1]] * 1.01
        weight[tok.eos_token_id] = weight[common[4]] * 1.01
    loaded.model.save_pretrained(model_dir)
    return model_dir


def prompts_for(translator: Translator, n: int = 13) -> list[str]:
    return [translator.prompt.render(r["src_lang"], r["tgt_lang"], r["src"]) for r in make_records(n, seed=3)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("check_every", [1, 5])
def test_the_loop_gives_the_tokens_of_generate_on_the_same_batches(noisy_models, family, check_every):
    loaded = load_model(str(noisy_models[family]), precision="fp32")
    ours = Translator(loaded, batch_size=4, max_new_tokens=20, cache="static")
    assert ours.own_loop and ours.fixed_shapes
    ours.decoder().check_every = check_every  # as on a GPU: the host looks every few steps
    theirs = Translator(loaded, batch_size=4, max_new_tokens=20, cache="dynamic")
    theirs.fixed_shapes = True  # the same full batches and rounded widths, through HF generate
    assert not theirs.own_loop
    prompts = prompts_for(ours)  # 13 prompts of different lengths: 3 full batches of 4 and one padded
    got, expected = ours.generate_token_ids(prompts), theirs.generate_token_ids(prompts)
    assert got == expected  # each row as generate returns it: up to the batch's last stop, padded after
    tok = loaded.tokenizer
    lengths = [_count_generated(row, tok.eos_token_id, tok.pad_token_id) for row in got]
    assert any(n < 20 for n in lengths) and any(n == 20 for n in lengths)  # early stops and the limit both occur
    assert ours.stats.batch_sizes == [4, 4, 4, 1] and ours.stats.new_tokens == theirs.stats.new_tokens
    assert ours.decoder().captured == 0  # CPU: no CUDA graphs


@pytest.mark.parametrize("family", FAMILIES)
def test_the_loop_equals_generate_without_fixed_shapes_and_stops_at_the_newline(noisy_models, family):
    """Batches as they come (no filler rows, widths unrounded), and the newline rule actually cutting rows."""
    loaded = load_model(str(noisy_models[family]), precision="fp32")
    tok = loaded.tokenizer
    ours = Translator(loaded, batch_size=3, max_new_tokens=24, cache="static")
    ours.fixed_shapes = False
    theirs = Translator(loaded, batch_size=3, max_new_tokens=24, cache="dynamic")
    prompts = prompts_for(ours, 13)
    got = ours.generate_token_ids(prompts)
    assert got == theirs.generate_token_ids(prompts)
    texts = [tok.decode(row, skip_special_tokens=True) for row in got]
    stopped = [row for row, text in zip(got, texts) if "\n" in text.lstrip()]
    assert stopped
    for row in stopped:  # a newline stop is the row's last real token (padding after it)
        n = len(row)
        while row[n - 1] == tok.pad_token_id:
            n -= 1
        assert "\n" in tok.decode(row[:n], skip_special_tokens=True).lstrip()
        assert "\n" not in tok.decode(row[:n - 1], skip_special_tokens=True).lstrip()


def test_the_newline_rule_freezes_rows_between_looks(noisy_models):
    """A row the host finds stopped a few steps late is cut at its stop: the tokens it made meanwhile become pad,
    and the batch ends as soon as every row has stopped."""
    import torch

    loaded = load_model(str(noisy_models["bloom"]), precision="fp32")
    tok = loaded.tokenizer
    plain = GreedyDecoder(loaded.model, pad_token_id=tok.pad_token_id, eos_token_id=None,
                          newline_ids=torch.tensor([], dtype=torch.long), is_stop=lambda ids: False, device="cpu")
    enc = tok(["a b c", "x y"], return_tensors="pt", padding=True)
    free = plain.decode(enc["input_ids"], enc["attention_mask"], 12)
    assert [len(row) for row in free] == [12, 12]
    target = free[0][4]  # pretend row 0's fifth token ends a line
    stop = GreedyDecoder(loaded.model, pad_token_id=tok.pad_token_id, eos_token_id=None,
                         newline_ids=torch.tensor([target]), is_stop=lambda ids: ids[-1] == target, device="cpu",
                         check_every=4)
    cut = stop.decode(enc["input_ids"], enc["attention_mask"], 12, real_rows=1)
    first = free[0].index(target)
    assert cut == [free[0][:first + 1]]  # batch ends at row 0's stop; the filler row does not count


def test_generation_settings_that_change_the_logits_keep_generate(noisy_models, capsys):
    loaded = load_model(str(noisy_models["bloom"]), precision="fp32")
    assert unsupported_generation_settings(loaded.model) == []
    loaded.model.generation_config.repetition_penalty = 1.3
    try:
        assert unsupported_generation_settings(loaded.model) == ["repetition_penalty"]
        translator = Translator(loaded, batch_size=2, max_new_tokens=6, cache="static")
        assert translator.static_cache and not translator.own_loop
        assert "sets repetition_penalty" in capsys.readouterr().err
    finally:
        loaded.model.generation_config.repetition_penalty = 1.0


def test_cuda_oom_in_the_loop_releases_its_caches_and_halves_the_batch(noisy_models, monkeypatch):
    import torch

    import aligninstruct_cli.decoding as D

    loaded = load_model(str(noisy_models["bloom"]), precision="fp32")
    prompts = prompts_for(Translator(loaded), 10)
    expected = Translator(loaded, batch_size=2, max_new_tokens=8, cache="dynamic").generate_token_ids(prompts)
    real_bucket, released = D._Bucket, []

    def bucket(model, batch, *args):
        if batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_bucket(model, batch, *args)

    monkeypatch.setattr(D, "_Bucket", bucket)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    translator = Translator(loaded, batch_size=8, max_new_tokens=8, cache="static")
    monkeypatch.setattr(translator.decoder(), "release", lambda: released.append(True))
    got = translator.generate_token_ids(prompts)
    assert translator.batch_size == 2 and translator.stats.oom_halvings == 2 and len(released) == 2
    trim = [[t for t in row if t != loaded.tokenizer.pad_token_id] for row in got]
    assert trim == [[t for t in row if t != loaded.tokenizer.pad_token_id] for row in expected]


def test_an_unmerged_adapter_decodes_as_generate_does(noisy_models, tmp_path):
    """--no-merge: the loop runs through the PEFT wrapper (the arguments it passes on are read from the base
    model's forward)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(noisy_models["llama"]),
                          LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                     init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    loaded = load_model(str(noisy_models["llama"]), str(tmp_path / "adapter"), precision="fp32")
    assert hasattr(loaded.model, "get_base_model")  # unmerged
    ours = Translator(loaded, batch_size=4, max_new_tokens=12, cache="static")
    theirs = Translator(loaded, batch_size=4, max_new_tokens=12, cache="dynamic")
    theirs.fixed_shapes = True
    prompts = prompts_for(ours, 8)
    assert ours.own_loop and ours.generate_token_ids(prompts) == theirs.generate_token_ids(prompts)

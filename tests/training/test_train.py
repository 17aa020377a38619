"""`ait train` in this process, without the deepspeed launcher: configuration, batch planning, the data pipeline,
loss, launch plumbing (the launch stubbed), input errors, and short trainings of the tiny BLOOM with `--launcher
none` (a few steps each; the ones over ~10 s are marked slow).

The launches themselves (two CPU ranks, resume after SIGKILL, ZeRO-3) are in tests/training/test_launch.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.options import OptionError
from aligninstruct_cli.training import train_options as C
from aligninstruct_cli.training.examples import (Geometry, collate, epoch_plan, load_or_tokenize,
                                                 split_global_batch, tokenize_records)
from conftest import write_jsonl
from train_helpers import make_data, mt_record

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("train-data"), n_mt=12, n_align=6)


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def base_args(model, data, out, *extra):
    return ["train", "--model", str(model), "--data", f"mt={data['mt']}", "--data", f"align={data['align']}",
            "--curriculum", "mt+align,mt", "--output", str(out), *extra]


# ------------------------------------------------------------------------------------------ config
def options(**given):
    return C.TrainOptions(**{"model": "m", "data": {"mt": "x"}, "output": "o", **given})


def test_curriculum_grammar():
    two = ["mt=a.jsonl", "align=b.jsonl"]
    assert options(data=two, curriculum="mt+align,mt").curriculum == [["mt", "align"], ["mt"]]
    assert options(data=two).curriculum == [["mt", "align"]]
    with pytest.raises(AitError, match="unknown data name.*'hint'"):
        options(data=two, curriculum="mt+hint")
    with pytest.raises(AitError, match="empty name"):
        options(curriculum="mt+,mt")
    assert options(data=two).data == {"mt": "a.jsonl", "align": "b.jsonl"}
    with pytest.raises(AitError, match="NAME=PATH"):
        options(data=["a.jsonl"])
    assert options(lr="1e-4,3e-4", val="v").lr == [1e-4, 3e-4]
    with pytest.raises(AitError):
        options(lr="fast")


def test_epochs_one_for_every_stage_or_one_per_stage():
    two = ["mt=a.jsonl", "align=b.jsonl"]
    assert options().epochs == [5]
    assert options(data=two, curriculum="mt+align,mt").epochs == [5, 5]  # the paper's 5, read as per stage
    assert options(data=two, curriculum="mt+align,mt", epochs=4).epochs == [4, 4]
    assert options(data=two, curriculum="mt+align,mt", epochs="3,5").epochs == [3, 5]
    assert options(data=two, curriculum=["align", "mt"], epochs=[2, 3]).epochs == [2, 3]  # a config file's list
    with pytest.raises(AitError, match="epochs 1,2,3: 3 values for 2 curriculum stage"):
        options(data=two, curriculum="mt+align,mt", epochs="1,2,3")
    with pytest.raises(AitError, match="epochs must be at least 1, not 0"):
        options(epochs="2,0")
    for bad in ("two", 2.5, True, ""):
        with pytest.raises(AitError, match="expected a whole number"):
            options(epochs=bad)


def test_global_batch_sets_micro_batch_and_accumulation(monkeypatch):
    from aligninstruct_cli.training import batch as B

    def plan(**given):
        return B.plan_batch(options(**given), "unused", "fp32")

    assert plan(global_batch=512, batch_size=4, num_gpus=2) == B.BatchPlan(4, 64, 2)
    assert plan(global_batch=24, batch_size=3, launcher="none").to_dict() == {
        "global": 24, "micro": 3, "accumulation": 8, "ranks": 1, "micro_from": "batch_size"}
    assert plan(batch_size=2, grad_accum=3) == B.BatchPlan(2, 3, None)  # no global batch: the launcher decides
    assert options().batch_size == 8 and options().grad_accum == 1
    # without --batch-size: the largest divisor of the per-rank batch that fits (here the CPU default, 8)
    monkeypatch.setattr(B, "fitting_micro_batch", lambda *a: (8, "default"))
    assert plan(global_batch=24, launcher="none") == B.BatchPlan(8, 3, 1, "default")
    assert plan(global_batch=20, num_gpus=2) == B.BatchPlan(5, 2, 2, "default")
    assert plan(global_batch=6, num_gpus=2) == B.BatchPlan(3, 1, 2, "default")
    with pytest.raises(AitError, match="global_batch 100 is not a multiple of batch_size 8 × 2 rank.s. = 16"):
        plan(global_batch=100, batch_size=8, num_gpus=2)
    with pytest.raises(AitError, match="global_batch 9 is not a multiple of the 2 ranks"):
        plan(global_batch=9, num_gpus=2)
    with pytest.raises(AitError, match="grad_accum cannot be given with global_batch"):
        options(global_batch=16, grad_accum=2)


def test_ranks_are_counted_where_the_launcher_would_decide(tmp_path, monkeypatch):
    from aligninstruct_cli.training import batch as B

    monkeypatch.setattr(B, "DEEPSPEED_DEFAULT_HOSTFILE", str(tmp_path / "no-hostfile"))
    monkeypatch.setattr(B, "local_device_count", lambda: 3)
    hosts = tmp_path / "hosts"
    hosts.write_text("# two nodes\nnode1 slots=4\n\nnode2 slots=2\n")
    assert B.count_ranks(options(global_batch=8)) == 3  # all local devices
    assert B.count_ranks(options(global_batch=8, num_gpus=2)) == 2
    assert B.count_ranks(options(global_batch=8, launcher="none")) == 1
    assert B.count_ranks(options(global_batch=8, hostfile=str(hosts))) == 6
    assert B.count_ranks(options(global_batch=8, hostfile=str(hosts), num_nodes=1)) == 4
    assert B.count_ranks(options(global_batch=8, hostfile=str(hosts), num_gpus=1)) == 2
    monkeypatch.setattr(B, "DEEPSPEED_DEFAULT_HOSTFILE", str(hosts))  # the launcher's own default hostfile
    assert B.count_ranks(options(global_batch=8)) == 6
    hosts.write_text("node1 4\n")
    with pytest.raises(AitError, match="hosts:1: expected 'HOST slots=N'"):
        B.count_ranks(options(global_batch=8))


@pytest.mark.parametrize("model,params,shape,paper", [
    ("bloomz-7b1", 7_069_016_064, (30, 4096, 32), 4), ("bloomz-3b", 3_002_557_440, (30, 2560, 32), 8),
    ("bloomz-1b1", 1_065_314_304, (24, 1536, 16), 8)])
def test_memory_estimate_fits_the_paper_batches_on_its_gpus(model, params, shape, paper):
    """The paper's per-GPU batches at length 384 in 16 bits fit a 32 GB V100 by ait's estimate (worst case:
    every record 384 tokens), and the estimate moves the way memory does."""
    from aligninstruct_cli.training.batch import micro_batch_for_memory

    layers, hidden, heads = shape

    def fit(memory_gib=32, **kw):
        args = dict(params=params, layers=layers, hidden=hidden, heads=heads, length=384, bytes_per_value=2)
        return micro_batch_for_memory(memory_gib << 30, **{**args, **kw})

    assert fit() >= paper
    assert fit(80) > fit() > fit(bytes_per_value=4)
    assert fit(checkpointing=True) > 3 * fit()
    assert fit(full=True) < fit() and fit(full=True, zero=3, ranks=8) > fit(full=True)
    assert fit(1) == 1  # nothing fits: one record per micro-step


def test_the_micro_batch_of_a_gpu_comes_from_the_model_shape_and_its_memory(tiny_bloom_dir, monkeypatch):
    """The GPU path of fitting_micro_batch, with a pretend 16 GiB GPU: the model's shape from its config and
    its parameters counted on the meta device (nothing loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from aligninstruct_cli.training import batch as B

    model = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir)
    config = AutoConfig.from_pretrained(tiny_bloom_dir)
    params = sum(p.numel() for p in model.parameters())
    assert B.parameter_count(config) == params
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("Props", (), {"total_memory": 16 << 30}))
    expected = B.micro_batch_for_memory(16 << 30, params=params, layers=config.n_layer, hidden=config.hidden_size,
                                        heads=config.n_head, length=128, bytes_per_value=2)
    cfg = options(model=str(tiny_bloom_dir), global_batch=96, max_length=128, launcher="none")
    assert B.fitting_micro_batch(cfg, str(tiny_bloom_dir), "bf16", 1) == (expected, "memory_estimate")
    assert expected > 96 and B.plan_batch(cfg, str(tiny_bloom_dir), "bf16") == B.BatchPlan(96, 1, 1, "memory_estimate")
    # sized for the longest tokenized example when it is known (at most max_length)
    at = {length: B.micro_batch_for_memory(16 << 30, params=params, layers=config.n_layer, hidden=config.hidden_size,
                                           heads=config.n_head, length=length, bytes_per_value=2) for length in (40, 128)}
    assert at[40] > at[128]
    assert B.fitting_micro_batch(cfg, str(tiny_bloom_dir), "bf16", 1, longest=40) == (at[40], "memory_estimate")
    assert B.fitting_micro_batch(cfg, str(tiny_bloom_dir), "bf16", 1, longest=999) == (at[128], "memory_estimate")


def test_launch_sizes_the_micro_batch_for_the_longest_example(tmp_path, tiny_bloom_dir, monkeypatch):
    """prepare() plans once to check the options, then again with the longest tokenized example."""
    from aligninstruct_cli.training import launch
    from aligninstruct_cli.training.batch import BatchPlan

    calls = []

    def fake_plan(options, model_path, precision, longest=None):
        calls.append(longest)
        return BatchPlan(4, 2, 1, "memory_estimate")

    monkeypatch.setattr(launch, "plan_batch", fake_plan)
    files = make_data(tmp_path, n_mt=6, n_align=0)
    job = launch.prepare(options(model=str(tiny_bloom_dir), data={"mt": str(files["mt"])}, curriculum="mt",
                                 output=str(tmp_path / "run"), global_batch=8, launcher="none",
                                 cache_dir=str(tmp_path / "cache")), quiet=True)
    longest = job.data_stats["mt"]["longest"]
    assert calls == [None, longest] and longest > 10


@pytest.mark.parametrize("shape,expected", [((4096, 30, 32), 3_932_160), ((2560, 30, 32), 2_457_600),
                                            ((1536, 24, 16), 1_179_648)], ids=["bloomz-7b1", "bloomz-3b", "bloomz-1b1"])
def test_default_lora_matches_the_paper_trainable_parameters(shape, expected):
    """PAPER.md: 3.9M / 2.5M / 1.2M trainable parameters for BLOOMZ-7b1 / 3b / 1b1 (meta device, no download)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, BloomConfig

    hidden, layers, heads = shape
    config = BloomConfig(vocab_size=250880, hidden_size=hidden, n_layer=layers, n_head=heads)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    peft_model = get_peft_model(model, C.lora_config(C.lora_targets_for(config.model_type)))
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == expected


def test_lora_targets_per_architecture_and_override():
    assert C.lora_targets_for("bloom") == ["query_key_value"]  # the paper's
    assert C.lora_targets_for("gpt_neox") == ["query_key_value"]
    for arch in ("llama", "mistral", "qwen2", "gemma", "gemma2"):
        assert C.lora_targets_for(arch) == ["q_proj", "k_proj", "v_proj"], arch
    assert C.lora_targets_for("gpt2") == ["c_attn"]
    assert C.lora_targets_for("llama", ["q_proj", "o_proj"]) == ["q_proj", "o_proj"]
    assert C.lora_targets_for("whatever", ["a", "b"]) == ["a", "b"]
    with pytest.raises(AitError, match="lora_targets"):
        C.lora_targets_for("t5")
    with pytest.raises(OptionError, match="no default LoRA targets for model type 'mamba'"):
        C.lora_targets_for("mamba")


def test_deepspeed_config(tmp_path):
    from dataclasses import replace

    from aligninstruct_cli.training.launch import build_ds_config

    cfg = options(batch_size=4, grad_accum=2)
    ds = build_ds_config(cfg, "bf16")
    assert ds["zero_optimization"] == {"stage": 2}
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["gradient_accumulation_steps"] == 2
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert "optimizer" not in ds  # a client torch optimizer: nothing to JIT-compile
    cfg = replace(cfg, zero=3, offload="all")
    ds = build_ds_config(cfg, "fp16")
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["optimizer"]["type"] == "AdamW" and "lr" not in ds["optimizer"]["params"]  # make_engine's
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
                                "zero_optimization": {"stage": 1}, "bf16": {"enabled": "auto"}}))
    ds = build_ds_config(cfg, "bf16", str(user))
    assert ds["train_micro_batch_size_per_gpu"] == 4 and "train_batch_size" not in ds
    assert ds["zero_optimization"] == {"stage": 1} and ds["bf16"] == {"enabled": True}
    assert ds["gradient_accumulation_steps"] == 2


def test_each_learning_rate_reaches_its_optimizer_and_schedule_by_one_path(tmp_path):
    """The DeepSpeed config holds no learning rate that could disagree with --lr: make_engine gives each
    curriculum's optimizer, ait's AdamW or a --deepspeed-config "optimizer" section's, its own --lr, and the
    schedule starts from it."""
    import torch

    from aligninstruct_cli.training.distributed import init_distributed, single_process_env
    from aligninstruct_cli.training.launch import build_ds_config
    from aligninstruct_cli.training.loop import lr_schedule, make_engine

    cfg = options(lr="1e-3,3e-3", val="v", launcher="none", batch_size=2)
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"optimizer": {"type": "AdamW", "params": {"lr": 0.5, "weight_decay": 0.25,
                                                                          "torch_adam": True}}}))
    generated, from_file = build_ds_config(cfg, "fp32"), build_ds_config(cfg, "fp32", str(user))
    assert "optimizer" not in generated
    assert from_file["optimizer"] == {"type": "AdamW", "params": {"weight_decay": 0.25, "torch_adam": True}}
    warmup = 4
    with single_process_env():
        init_distributed()
        for ds_config in (generated, from_file):
            for lr in cfg.lr:
                model = torch.nn.Linear(2, 2)
                _, scheduler = make_engine(model, model, 0.0, ds_config, lr, lr_schedule("linear", warmup, 10),
                                           torch.device("cpu"))
                assert scheduler.base_lrs == [lr]
                assert [g["lr"] for g in scheduler.optimizer.param_groups] == [pytest.approx(lr / warmup)]


def test_deepspeed_config_of_a_global_batch(tmp_path):
    from aligninstruct_cli.training.batch import plan_batch
    from aligninstruct_cli.training.launch import build_ds_config

    cfg = options(global_batch=16, batch_size=2, launcher="none")
    plan = plan_batch(cfg, "unused", "fp32")
    ds = build_ds_config(cfg, "fp32", plan=plan)
    assert [ds[k] for k in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")] \
        == [16, 2, 8]
    assert "train_batch_size" not in build_ds_config(options(), "fp32")  # the launcher may decide the ranks
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"train_batch_size": "auto", "zero_optimization": {"stage": 1}}))
    ds = build_ds_config(cfg, "fp32", str(user), plan)
    assert [ds[k] for k in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")] \
        == [16, 2, 8]
    user.write_text(json.dumps({"train_micro_batch_size_per_gpu": 4}))
    with pytest.raises(AitError, match="train_micro_batch_size_per_gpu.: 4 disagrees with global_batch 16"):
        build_ds_config(cfg, "fp32", str(user), plan)


# ------------------------------------------------------------------------------------------ data
def test_tiny_tokenizer_names_a_class_both_transformers_4_and_5_load(tiny_tokenizer_dir):
    """transformers 5 saves fast tokenizers as "TokenizersBackend", unknown to 4.x (the GPU image runs 5.x,
    CI 4.x): a tiny model built on one must load on the other."""
    config = json.loads((Path(tiny_tokenizer_dir) / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_tokenization_masks_everything_but_separator_output_eos(tokenizer):
    from aligninstruct_cli.instructions.templates import OUTPUT_SEPARATOR

    rec = mt_record(0, "the cat sees the dog", "kalo mir tesa")
    data = tokenize_records([(1, rec)], tokenizer, path="x.jsonl", max_length=384, too_long="error", progress=False)
    tokens, prompt_len = data.example(0)
    assert tokens[:prompt_len].tolist() == tokenizer(rec["input"])["input_ids"]
    target = tokenizer(OUTPUT_SEPARATOR + rec["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tokens[prompt_len:].tolist() == target
    batch = collate(data, np.array([0]), tokenizer.pad_token_id)
    assert batch["loss_targets"].tolist() == target  # the loss sees exactly separator + output + EOS
    assert (batch["loss_cols"] + 1).tolist() == list(range(prompt_len, len(tokens)))


def test_too_long_records_error_skip_or_truncate(tokenizer):
    short = mt_record(0, "the cat", "kalo")
    long = mt_record(1, "the cat " * 40, "kalo mir " * 20)
    recs = [(1, short), (2, long)]
    with pytest.raises(AitError, match=r"x\.jsonl:2: record 'mt1' is \d+ tokens, longer than --max-length 64"):
        tokenize_records(recs, tokenizer, path="x.jsonl", max_length=64, too_long="error", progress=False)
    skipped = tokenize_records(recs, tokenizer, path="x.jsonl", max_length=64, too_long="skip", progress=False)
    assert len(skipped) == 1 and skipped.stats["skipped_too_long"] == 1
    long_output = mt_record(2, "the cat", "kalo mir " * 40)
    cut = tokenize_records([(1, short), (3, long_output)], tokenizer, path="x.jsonl", max_length=64,
                           too_long="truncate", progress=False)
    assert cut.stats["truncated"] == 1 and cut.lengths.max() == 64
    assert cut.example(1)[0][:cut.prompt_len[1]].tolist() == tokenizer(long_output["input"])["input_ids"]
    # an input that alone fills --max-length leaves no output token: dropped and counted
    cut = tokenize_records(recs, tokenizer, path="x.jsonl", max_length=64, too_long="truncate", progress=False)
    assert len(cut) == 1 and cut.stats["skipped_too_long"] == 1


def test_too_long_inputs_are_cut_from_the_start_and_outputs_kept_whole(tokenizer):
    """The default, truncate-input: the output (the loss's tokens) stays whole, the input loses its beginning;
    a record whose separator + output + EOS alone fill --max-length is dropped; both are counted."""
    from aligninstruct_cli.instructions.templates import OUTPUT_SEPARATOR
    from aligninstruct_cli.training.examples import cut_input

    assert options().too_long == "truncate-input"
    short = mt_record(0, "the cat", "kalo")
    long_input = mt_record(1, "the cat " * 40, "kalo mir tesa")
    long_output = mt_record(2, "the cat", "kalo mir " * 40)
    data = tokenize_records([(1, short), (2, long_input), (3, long_output)], tokenizer, path="x.jsonl",
                            max_length=64, too_long="truncate-input", progress=False)
    assert len(data) == 2 and data.stats["truncated"] == 1 and data.stats["skipped_too_long"] == 1
    assert data.ids.tolist() == ["mt0", "mt1"]
    tokens, prompt_len = data.example(1)
    target = tokenizer(OUTPUT_SEPARATOR + long_input["output"], add_special_tokens=False)["input_ids"]
    assert tokens[prompt_len:].tolist() == target + [tokenizer.eos_token_id]  # the output whole
    prompt = tokenizer(long_input["input"])["input_ids"]
    assert len(tokens) == 64 and tokens[:prompt_len].tolist() == prompt[-prompt_len:]  # the input's end kept
    assert data.example(0)[0].tolist() == tokenize_records([(1, short)], tokenizer, path="x.jsonl", max_length=64,
                                                           too_long="error", progress=False).example(0)[0].tolist()
    # a leading special token (a BOS) stays; nothing is kept when not one input token fits
    assert cut_input([1, 10, 11, 12, 13], 3, {1}) == [1, 12, 13]
    assert cut_input([10, 11, 12], 2, {1}) == [11, 12] and cut_input([1, 10, 11], 1, {1}) == []


def test_tokenized_cache_is_reused_by_content(tmp_path, data, tokenizer, monkeypatch):
    first, path1 = load_or_tokenize(str(data["mt"]), tokenizer, max_length=384, too_long="error", cache_dir=tmp_path)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(Path(data["mt"]).read_bytes())
    import aligninstruct_cli.training.examples as data_mod

    monkeypatch.setattr(data_mod, "tokenize_records", lambda *a, **k: pytest.fail("tokenized twice"))
    again, path2 = load_or_tokenize(str(copy), tokenizer, max_length=384, too_long="error", cache_dir=tmp_path)
    assert path1 == path2
    assert np.array_equal(first.tokens, again.tokens) and first.ids.tolist() == again.ids.tolist()
    monkeypatch.undo()
    _, path3 = load_or_tokenize(str(copy), tokenizer, max_length=200, too_long="error", cache_dir=tmp_path)
    assert path3 != path1  # another max length is another cache entry


def test_cache_is_memory_mapped_and_a_stage_set_reads_its_members_in_place(tmp_path, tokenizer):
    from aligninstruct_cli.training.examples import TokenizedSet

    first = tokenize_records([(1, mt_record(0, "the cat", "kalo")), (2, {**mt_record(1, "a dog", "mir"), "id": "ü-ñ"})],
                             tokenizer, path="a.jsonl", max_length=384, too_long="error", progress=False)
    second = tokenize_records([(5, mt_record(2, "the sun", "tesa ra"))], tokenizer, path="b.jsonl", max_length=384,
                              too_long="error", progress=False)
    for name, part in (("a", first), ("b", second)):
        part.save(tmp_path / name)
    a, b = TokenizedSet.load(tmp_path / "a"), TokenizedSet.load(tmp_path / "b")
    assert isinstance(a.tokens, np.memmap) and not a.tokens.flags.writeable  # shared page cache, no copy
    assert a.ids.tolist() == ["mt0", "ü-ñ"] and a.lines.tolist() == [1, 2] and a.stats == first.stats
    stage = TokenizedSet.concat([a, b], ["mt", "align"])
    assert len(stage) == 3 and stage.lengths.tolist() == a.lengths.tolist() + b.lengths.tolist()
    for i, (part, local) in enumerate([(a, 0), (a, 1), (b, 0)]):
        tokens, prompt_len = stage.example(i)
        assert tokens.tolist() == part.example(local)[0].tolist() and prompt_len == part.example(local)[1]
    assert stage.record_ids([2, 0, 1]) == ["align:mt2", "mt:mt0", "mt:ü-ñ"]
    batch = collate(stage, np.array([2, 1]), tokenizer.pad_token_id)
    assert batch["input_ids"][0, :len(b.example(0)[0])].tolist() == b.example(0)[0].tolist()


def _lengths(n=997, seed=0):
    return np.random.default_rng(seed).integers(20, 300, size=n)


def test_epoch_plan_is_a_deterministic_permutation_per_seed_and_epoch():
    lengths = _lengths()
    g = Geometry(micro_batch=4, world_size=2, grad_accum=2)
    plan = epoch_plan(lengths, g, seed=1, stage=0, epoch=0)
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(len(lengths)))  # every record once
    assert all(len(b) == 16 for b in plan[:-1]) and len(plan[-1]) == len(lengths) % 16
    again = epoch_plan(lengths, g, seed=1, stage=0, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again))
    other = np.concatenate(epoch_plan(lengths, g, seed=1, stage=0, epoch=1))
    assert not np.array_equal(flat, other)
    assert not np.array_equal(flat, np.concatenate(epoch_plan(lengths, g, seed=2, stage=0, epoch=0)))
    shares = split_global_batch(plan[-1], g)  # a short last batch: spread, nothing lost or repeated
    assert sorted(np.concatenate([r for step in shares for r in step]).tolist()) == sorted(plan[-1].tolist())


def test_length_grouping_cuts_padding():
    lengths = _lengths(4000)
    g = Geometry(micro_batch=8, world_size=1, grad_accum=1)

    def real_fraction(batches):
        return sum(lengths[b].sum() for b in batches) / sum(lengths[b].max() * len(b) for b in batches)

    grouped = real_fraction(epoch_plan(lengths, g, seed=0, stage=0, epoch=0))
    shuffled = real_fraction(np.array_split(np.random.default_rng(0).permutation(4000), 500))
    assert grouped > 0.97 and shuffled < 0.75


def test_target_only_chunked_loss_equals_the_full_logits_loss(tiny_bloom_dir, tokenizer, monkeypatch):
    """The loss ait optimises = HF's causal-LM loss with prompt and padding labels set to -100."""
    import torch
    from transformers import AutoModelForCausalLM

    from aligninstruct_cli.training import loop

    recs = [(i, mt_record(i, "the cat sees " * (i + 1), "kalo mir " * (3 - i))) for i in range(3)]
    data = tokenize_records(recs, tokenizer, path="x", max_length=384, too_long="error", progress=False)
    batch = collate(data, np.arange(3), tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir)
    monkeypatch.setattr(loop, "LOSS_CHUNK_ELEMENTS", 7 * model.config.vocab_size)  # several chunks
    ours = loop.build_loss_module(model, recompute_chunks=True)
    t = {k: torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "loss_rows", "loss_cols", "loss_targets")}
    loss_sum = ours(**t)
    labels = torch.full_like(t["input_ids"], -100)
    labels[t["loss_rows"], t["loss_cols"] + 1] = t["loss_targets"]
    reference = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], labels=labels).loss
    assert torch.allclose(loss_sum / len(batch["loss_targets"]), reference, atol=1e-5)
    loss_sum.backward()  # recomputed chunks still give gradients
    assert model.transformer.h[0].self_attention.query_key_value.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ CLI
def test_dry_run_prints_the_deepspeed_command_and_config(tiny_bloom_dir, data, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, out, "--num-gpus", "2", "--num-nodes", "1",
                                          "--master-port", "29611", "--zero", "3", "--dry-run"))
    assert result.exit_code == 0, result.output
    command, config = result.stdout.split("\n", 1)
    assert "-m deepspeed.launcher.runner --num_nodes 1 --num_gpus 2 --master_port 29611 --module " \
           "aligninstruct_cli.training.loop --job" in command
    assert json.loads(config)["zero_optimization"]["stage"] == 3
    assert not out.exists()


def test_dry_run_shows_the_global_batch_split(tiny_bloom_dir, data, tmp_path):
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, tmp_path / "run", "--global-batch", "512",
                                          "--batch-size", "4", "--num-gpus", "2", "--dry-run"))
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout.split("\n", 1)[1])
    assert (config["train_batch_size"], config["train_micro_batch_size_per_gpu"],
            config["gradient_accumulation_steps"]) == (512, 4, 64)
    assert "global batch 512 = 2 rank(s) × micro-batch 4 × accumulation 64" in result.stderr


@pytest.fixture
def no_launch(monkeypatch):
    """Any attempt to start workers fails the test: errors must come before the launch."""
    import aligninstruct_cli.training.launch as launch

    monkeypatch.setattr(launch.subprocess, "run", lambda *a, **k: pytest.fail("launched"))
    monkeypatch.setattr(launch, "run_launcher", lambda *a, **k: pytest.fail("launched"))
    import aligninstruct_cli.training.loop as loop

    monkeypatch.setattr(loop, "run_job", lambda *a, **k: pytest.fail("launched"))


@pytest.mark.parametrize("case,message", [
    ("unknown-name", "unknown data name(s) 'hint'"),
    ("missing-file", "no such file (--data align)"),
    ("empty-file", "empty: no instruction records"),
    ("blank-file", "no usable records"),
    ("missing-model", "no such directory"),
    ("too-long", "tokens, longer than --max-length 40"),
    ("bad-record", "field 'objective'"),
    ("lrs-without-val", "several --lr values need --val"),
    ("global-batch-indivisible", "--global-batch 100 is not a multiple of --batch-size 8 × 2 rank(s) = 16"),
    ("global-batch-and-grad-accum", "--grad-accum cannot be given with --global-batch"),
    ("epochs-per-stage", "--epochs 1,2,3: 3 values for 2 curriculum stage(s)"),
])
def test_bad_inputs_fail_cleanly_before_launch(case, message, tiny_bloom_dir, data, tmp_path, no_launch):
    model, d, extra = tiny_bloom_dir, dict(data), ["--cache-dir", str(tmp_path / "cache")]
    if case == "unknown-name":
        extra += ["--curriculum", "mt+hint"]
    elif case == "missing-file":
        d["align"] = tmp_path / "nope.jsonl"
    elif case == "empty-file":
        d["align"] = tmp_path / "empty.jsonl"
        d["align"].write_text("")
    elif case == "blank-file":
        d["align"] = tmp_path / "blank.jsonl"
        d["align"].write_text("\n\n")
    elif case == "missing-model":
        model = tmp_path / "no-model"
    elif case == "too-long":
        extra += ["--max-length", "40", "--too-long", "error"]
    elif case == "bad-record":
        d["align"] = write_jsonl(tmp_path / "bad.jsonl", [{**mt_record(0, "a", "b"), "objective": "pun"}])
    elif case == "lrs-without-val":
        extra += ["--lr", "1e-4,3e-4"]
    elif case == "global-batch-indivisible":
        extra += ["--global-batch", "100", "--batch-size", "8", "--num-gpus", "2"]
    elif case == "global-batch-and-grad-accum":
        extra += ["--global-batch", "16", "--grad-accum", "2"]
    elif case == "epochs-per-stage":
        extra += ["--epochs", "1,2,3"]
    result = runner.invoke(app, base_args(model, d, tmp_path / "run", *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_resume_rejects_other_options_and_a_fresh_run_rejects_a_used_output(tiny_bloom_dir, data, tmp_path, no_launch):
    from aligninstruct_cli.training.launch import prepare
    from aligninstruct_cli.io import write_json

    out = tmp_path / "run"
    cfg = C.TrainOptions(model=str(tiny_bloom_dir), data={"mt": str(data["mt"]), "align": str(data["align"])},
                         curriculum=[["mt", "align"], ["mt"]], output=str(out), launcher="none",
                         cache_dir=str(tmp_path / "cache"))
    job = prepare(cfg, command=["ait"])
    out.mkdir()
    job.save(out / "job.json")  # what a started run leaves
    write_json(out / "run.json", {"status": "running"})
    common = ["--launcher", "none", "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, out, *common))
    assert result.exit_code == 2 and "already holds a run" in result.output and "--resume" in result.output
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, out, *common, "--resume", "--lr", "1e-3"))
    assert result.exit_code == 2, result.output
    assert "differ from the run" in result.output and "--lr: [0.0002] → [0.001]" in result.output
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, tmp_path / "elsewhere", *common, "--resume"))
    assert result.exit_code == 2 and "no run to resume" in result.output


def test_a_config_file_fills_the_options_and_flags_override_it(tiny_bloom_dir, data, tmp_path):
    import yaml

    config = tmp_path / "train.yaml"
    values = {"model": str(tiny_bloom_dir), "data": {"mt": str(data["mt"]), "align": str(data["align"])},
              "output": str(tmp_path / "run"), "epochs": 2, "batch_size": 4}
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    result = runner.invoke(app, ["train", "--config", str(config), "--epochs", "3", "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["epochs"] == [3] and printed["batch_size"] == 4  # the flag wins over the file (one stage)
    assert printed["data"] == values["data"] and printed["curriculum"] == [["mt", "align"]]
    result = runner.invoke(app, ["train", "--config", str(config), "--batch-size", "2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.split("\n", 1)[1])["train_micro_batch_size_per_gpu"] == 2
    config.write_text(yaml.safe_dump({**values, "epochs": 0}, sort_keys=False))
    result = runner.invoke(app, ["train", "--config", str(config), "--dry-run"])
    assert result.exit_code == 2 and "train.yaml: epochs must be at least 1" in result.output


def test_the_job_survives_its_json_round_trip(tiny_bloom_dir, data, tmp_path):
    from aligninstruct_cli.training.job import Job
    from aligninstruct_cli.training.launch import prepare

    job = prepare(C.TrainOptions(model=str(tiny_bloom_dir), data=[f"mt={data['mt']}", f"align={data['align']}"],
                                 curriculum="mt+align,mt", val=str(data["val"]), lr="1e-3,2e-3",
                                 output=str(tmp_path / "run"), launcher="none", cache_dir=str(tmp_path / "cache")),
                  command=["ait", "train"])
    again = Job.from_json(job.to_json())
    assert again == job
    assert again.options.lr == [1e-3, 2e-3] and again.options.zero == 0 and set(again.caches) == {"mt", "align"}
    assert again.val_cache and again.input_hashes["--val"]["sha256"] and again.precision == "fp32"


def test_resuming_a_run_whose_stages_are_all_done_finishes_it_without_launching(tiny_bloom_dir, data, tmp_path,
                                                                                no_launch):
    """The launching process finishes a run (lr choice, final/, run.json), so a run whose workers finished
    but whose launcher did not is finished by --resume alone; the world size recorded by the workers in
    state.json is checked first."""
    from aligninstruct_cli.provenance import RunManifest
    from aligninstruct_cli.training import checkpoint as ckpt
    from aligninstruct_cli.training.launch import prepare

    out = tmp_path / "run"
    args = base_args(tiny_bloom_dir, data, out, "--launcher", "none", "--cache-dir", str(tmp_path / "cache"),
                     "--resume")
    job = prepare(C.TrainOptions(model=str(tiny_bloom_dir), data={"mt": str(data["mt"]), "align": str(data["align"])},
                                 curriculum="mt+align,mt", output=str(out), launcher="none",
                                 cache_dir=str(tmp_path / "cache")), command=["ait"])
    out.mkdir()
    job.save(out / "job.json")
    RunManifest(out / "run.json").start(["ait"])
    for k, stage in enumerate(("stage-1-mt+align", "stage-2-mt")):
        (out / stage).mkdir()
        (out / stage / "adapter_model.safetensors").write_bytes(b"stage %d" % k)
    ckpt.write_state(out, {"done": [[0, 0], [0, 1]], "resume": None, "val_loss": {}, "world_size": 2})
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "the run used 2 ranks" in result.output
    ckpt.record_world_size(out, 1)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "final" / "adapter_model.safetensors").read_bytes() == b"stage 1"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1
    assert manifest["result"] == {"chosen_lr": 2e-4, "final_val_loss": {"0.0002": None},
                                  "stages": ["stage-1-mt+align", "stage-2-mt"]}
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "already complete" in result.output


def test_a_failing_launch_passes_its_exit_code_on(tiny_bloom_dir, data, tmp_path, monkeypatch):
    import sys

    import aligninstruct_cli.training.launch as launch

    monkeypatch.setattr(launch, "deepspeed_command",
                        lambda job, opts: [sys.executable, "-c", "import sys; sys.exit(3)"])
    result = runner.invoke(app, base_args(tiny_bloom_dir, data, tmp_path / "run", "--cache-dir",
                                          str(tmp_path / "cache")))
    assert result.exit_code == 3
    assert "exited with code 3" in result.output


def test_full_training_in_process_saves_full_models_stage_after_stage(tiny_bloom_dir, data, tmp_path):
    """--full with --launcher none (how a base model is built): every weight trains, each stage writes a
    full model directory and the next stage starts from it."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = runner.invoke(app, ["-q", "train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                 "--data", f"align={data['align']}", "--curriculum", "align,mt", "--full",
                                 "--output", str(out), "--launcher", "none", "--epochs", "1", "--batch-size", "4",
                                 "--lr", "1e-3", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    base = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir).state_dict()
    stage1 = AutoModelForCausalLM.from_pretrained(out / "stage-1-align").state_dict()
    final = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    key = "transformer.h.1.mlp.dense_4h_to_h.weight"
    assert not torch.equal(base[key], stage1[key]) and not torch.equal(stage1[key], final[key])
    # stage 2 continued from stage 1: closer to it than to the base
    assert (final[key] - stage1[key]).abs().sum() < (final[key] - base[key]).abs().sum()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_several_learning_rates_keep_the_lowest_validation_loss(tiny_bloom_dir, data, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["-q", "train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                 "--val", str(data["val"]), "--lr", "1e-5,5e-2", "--output", str(out),
                                 "--launcher", "none", "--epochs", "1", "--batch-size", "6",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "run.json").read_text())
    losses = manifest["result"]["final_val_loss"]
    assert set(losses) == {"1e-05", "0.05"}
    chosen = min(losses, key=losses.get)
    assert manifest["result"]["chosen_lr"] == float(chosen)
    for lr in losses:
        assert (out / f"lr-{lr}" / "stage-1-mt" / "adapter_model.safetensors").is_file()
    chosen_weights = (out / f"lr-{chosen}" / "stage-1-mt" / "adapter_model.safetensors").read_bytes()
    assert (out / "final" / "adapter_model.safetensors").read_bytes() == chosen_weights
    assert (out / "stage-1-mt" / "adapter_model.safetensors").read_bytes() == chosen_weights


def test_each_stage_trains_its_own_epochs_with_its_own_schedule(tiny_bloom_dir, data, tmp_path):
    """--epochs 1,2: stage 1 (align, 6 records) 2 steps, stage 2 (mt, 12 records) 3 steps × 2 epochs; each
    stage's linear schedule ends at 0 on its own last step."""
    from conftest import read_jsonl

    out = tmp_path / "run"
    result = runner.invoke(app, ["-q", "train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                 "--data", f"align={data['align']}", "--curriculum", "align,mt", "--epochs", "1,2",
                                 "--output", str(out), "--launcher", "none", "--batch-size", "4", "--log-every", "1",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    metrics = read_jsonl(out / "metrics.jsonl")
    for stage, epochs, steps in ((1, [1, 1], 2), (2, [1, 1, 1, 2, 2, 2], 6)):
        lines = [m for m in metrics if m["stage"] == stage]
        assert [m["epoch"] for m in lines] == epochs and [m["step"] for m in lines] == list(range(1, steps + 1))
        assert lines[-1]["learning_rate"] == 0.0 and lines[-2]["learning_rate"] > 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["hyperparameters"]["epochs"] == [1, 2]
    assert manifest["batch"] == {"global": 4, "micro": 4, "accumulation": 1, "ranks": 1, "micro_from": "batch_size"}


def test_one_global_batch_split_two_ways_trains_the_same_adapter(tiny_bloom_dir, data, tmp_path):
    """--global-batch 8 as micro 8 × accumulation 1 or micro 2 × accumulation 4 (one rank): the loss is
    normalised over the global batch, so the same steps give the same adapter (up to float reassociation).
    Two ranks × micro 2 × accumulation 2: tests/training/test_launch.py."""
    import torch
    from safetensors.torch import load_file

    weights = {}
    for micro in (8, 2):
        out = tmp_path / f"micro-{micro}"
        result = runner.invoke(app, ["-q", "train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                     "--output", str(out), "--launcher", "none", "--epochs", "2", "--global-batch",
                                     "8", "--batch-size", str(micro), "--lr", "1e-2", "--lora-dropout", "0",
                                     "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
        weights[micro] = load_file(out / "final" / "adapter_model.safetensors")
        assert json.loads((out / "run.json").read_text())["batch"] == {
            "global": 8, "micro": micro, "accumulation": 8 // micro, "ranks": 1, "micro_from": "batch_size"}
    assert weights[8].keys() == weights[2].keys()
    for key, reference in weights[8].items():
        assert reference.abs().max() > 0
        torch.testing.assert_close(weights[2][key], reference, rtol=1e-3, atol=1e-5)


def test_cut_and_dropped_records_are_counted_in_the_job(tiny_bloom_dir, data, tmp_path):
    from aligninstruct_cli.training.launch import prepare

    cfg = C.TrainOptions(model=str(tiny_bloom_dir), data={"mt": str(data["mt"])}, output=str(tmp_path / "run"),
                         launcher="none", max_length=24, cache_dir=str(tmp_path / "cache"))
    stats = prepare(cfg, command=["ait"]).data_stats["mt"]
    assert stats["truncated"] > 0 and stats["records"] == stats["examples"] + stats["skipped_too_long"] == 12


def test_zero_defaults_to_2_for_several_ranks_and_0_for_one():
    assert C.default_zero(None, "deepspeed") == 2
    assert C.default_zero(None, "deepspeed", num_gpus=2) == 2
    assert C.default_zero(None, "deepspeed", num_gpus=1) == 0
    assert C.default_zero(None, "deepspeed", num_gpus=1, num_nodes=2) == 2
    assert C.default_zero(None, "none") == 0
    assert C.default_zero(3, "none") == 3
    assert C.default_zero(None, "none", offload="all") == 3
    assert C.default_zero(None, "none", offload="optimizer") == 2


def test_compile_is_on_for_gpus_but_not_under_zero3_nor_on_cpus():
    assert C.resolve_compile("auto", "cuda", 2) is True
    assert C.resolve_compile("auto", "cuda", 3) is False
    assert C.resolve_compile("auto", "cpu", 0) is False
    assert C.resolve_compile("auto", "cuda", 2, gradient_checkpointing=True) is False
    assert C.resolve_compile("on", "cpu", 0) is True and C.resolve_compile("off", "cuda", 0) is False
    assert C.resolve_compile("on", "cuda", 3) is False  # a --deepspeed-config asking for ZeRO-3
    with pytest.raises(AitError, match="zero 3"):
        options(zero=3, compile="on")
    with pytest.raises(AitError, match="compile must be one of"):
        options(compile="yes")


@pytest.mark.slow  # two trainings, one with compiled blocks: ~18 s
def test_compiled_blocks_train_the_same_adapter(tiny_bloom_dir, data, tmp_path):
    """--compile on (regional torch.compile of the decoder blocks; here inductor on the CPU) trains what eager
    mode trains: same data order and, without dropout, the same weights up to float reassociation."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from aligninstruct_cli.training.loop import decoder_blocks

    assert len(decoder_blocks(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir))) == 2  # BLOOM's transformer.h
    weights = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        result = runner.invoke(app, ["train", "--model", str(tiny_bloom_dir), "--data", f"mt={data['mt']}",
                                     "--output", str(out), "--launcher", "none", "--epochs", "2", "--batch-size",
                                     "4", "--lr", "1e-2", "--lora-dropout", "0", "--compile", mode,
                                     "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
        assert ("decoder blocks compiled" in result.output) == (mode == "on")
        weights[mode] = load_file(out / "final" / "adapter_model.safetensors")
        assert json.loads((out / "run.json").read_text())["hyperparameters"]["compile"] == mode
    assert weights["on"].keys() == weights["off"].keys()
    for key, eager in weights["off"].items():
        assert eager.abs().max() > 0
        torch.testing.assert_close(weights["on"][key], eager, rtol=1e-3, atol=1e-4)


def test_the_model_trains_in_training_mode(tiny_bloom_dir, data, tmp_path):
    """from_pretrained returns a model in eval mode, where dropout is off: training must switch it on. The
    same --full run on a copy of the model whose config asks for dropout must then train other weights."""
    import shutil

    import torch
    from safetensors.torch import load_file

    dropped = tmp_path / "dropout-model"
    shutil.copytree(tiny_bloom_dir, dropped)
    config = json.loads((dropped / "config.json").read_text())
    (dropped / "config.json").write_text(json.dumps({**config, "hidden_dropout": 0.5}))
    weights = {}
    for name, model in (("plain", tiny_bloom_dir), ("dropout", dropped)):
        out = tmp_path / name
        result = runner.invoke(app, ["train", "--model", str(model), "--data", f"mt={data['mt']}", "--full",
                                     "--output", str(out), "--launcher", "none", "--epochs", "1", "--batch-size",
                                     "8", "--lr", "1e-3", "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
        weights[name] = load_file(next((out / "final").glob("*.safetensors")))
    assert any(not torch.equal(weights["plain"][k], weights["dropout"][k]) for k in weights["plain"])


def test_decoder_blocks_are_found_in_other_architectures():
    """--compile finds the repeated blocks by shape, not by name: Llama's model.layers, GPT-2's transformer.h."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    from aligninstruct_cli.training.loop import decoder_blocks

    with torch.device("meta"):
        llama = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64,
                                                             num_hidden_layers=3, num_attention_heads=4))
        gpt2 = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=100, n_embd=32, n_layer=5, n_head=4))
    assert decoder_blocks(llama) is llama.model.layers and len(llama.model.layers) == 3
    assert decoder_blocks(gpt2) is gpt2.transformer.h
    wrapped = get_peft_model(llama, C.lora_config(C.lora_targets_for("llama")))  # as `ait train` holds it
    assert decoder_blocks(wrapped) is llama.model.layers


def test_a_rank_without_records_in_a_step_still_meters(tokenizer):
    """An epoch's short last batch can leave a rank no records: it runs a zero-weight dummy micro-batch and
    reports a zero loss (a tensor, like the others), which the meter adds and sums across ranks."""
    import torch

    from aligninstruct_cli.training.loop import Dist, Meter, train_step

    data = tokenize_records(enumerate([mt_record(i, f"word {i}", f"sôz {i}") for i in range(3)], 1), tokenizer,
                            path="x.jsonl", max_length=64, too_long="error", progress=False)

    class Engine:  # stands in for the DeepSpeed engine: a loss per micro-batch, nothing to step
        def __call__(self, loss_targets, **_):
            return torch.tensor(float(len(loss_targets)))

        def backward(self, loss):
            pass

        def step(self):
            pass

    class TwoRanks(Dist):  # rank 1 of 2; the other rank's share is added by hand
        def sum(self, values):
            return (values + torch.tensor([5.0, 7, 9], dtype=torch.float64)).tolist()

    dist = TwoRanks(rank=1, world=2, local_rank=1, device=torch.device("cpu"))
    meter = Meter()
    full = train_step(Engine(), data, np.array([0, 1]), Geometry(1, 2, 1), dist, 0, 1)  # one record each
    empty = train_step(Engine(), data, np.array([2]), Geometry(1, 2, 1), dist, 0, 1)  # rank 0's alone
    assert empty[0].item() == 0.0 and empty[2:] == (0, 0)
    meter.add(*full)
    meter.add(*empty)
    record = meter.record(dist, 1.0, None)
    targets = full[1] + empty[1]
    assert record["loss"] == pytest.approx((full[0].item() + 5.0) / targets)
    assert record["real_token_fraction"] == pytest.approx((full[2] + 7) / (full[3] + 9))

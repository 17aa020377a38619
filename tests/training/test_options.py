"""`ait train` as users of LLaMA-Factory and axolotl use it: all-linear LoRA, the learning-rate
schedules, Weights & Biases (offline), PEFT adapters saved mid-run, QLoRA's quantization (its config; a CPU
refuses it), other tools' data formats (alpaca, messages, ShareGPT) in a curriculum, and a failure inside
`--launcher none` reported as the launcher's."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.options import OptionError
from aligninstruct_cli.training import train_options as C
from conftest import write_jsonl
from train_helpers import make_data

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("train-options"), n_mt=8, n_align=4)


def train(model, out: Path, *args: str, data: dict, cache: Path) -> object:
    return runner.invoke(app, ["-q", "train", "--model", str(model), "--data", f"mt={data['mt']}", "--output",
                               str(out), "--launcher", "none", "--epochs", "1", "--batch-size", "4", "--lr", "1e-2",
                               "--cache-dir", str(cache), *args])


# ------------------------------------------------------------------------------------------------ LoRA
def test_all_linear_and_its_spellings_reach_peft_as_its_shortcut(tiny_bloom_dir):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    for spelling in ("all-linear", "all", "ALL_LINEAR", ["all-linear"]):
        assert C.parse_names(spelling) == ["all-linear"]
    with pytest.raises(OptionError, match="give it alone"):
        C.parse_names("all-linear,q_proj")
    assert C.lora_config(["all-linear"]).target_modules == "all-linear"
    assert C.lora_config(["q_proj", "v_proj"]).target_modules == {"q_proj", "v_proj"}
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir), C.lora_config(["all-linear"]))
    adapted = sorted({name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")})
    # every linear layer of a BLOOM block, and not the output head
    assert adapted == ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"]


# ------------------------------------------------------------------------------------------------ learning rate
def test_learning_rates_reach_the_workers_unchanged_through_every_hop():
    """An experiment's train.lr goes config value → options → argv → options → job.json → options; each hop
    is parsed by the option's own parser (parse_lrs), and no hop rounds a value (no `:g` text on the way)."""
    from dataclasses import fields

    from aligninstruct_cli.experiment.graph import cli_tokens
    from aligninstruct_cli.options import spec_of
    from aligninstruct_cli.training.job import Job

    assert [spec_of(f).parse for f in fields(C.TrainOptions) if f.name == "lr"] == [C.parse_lrs]
    rates = [1 / 3 * 1e-3, 2.0000001e-4]
    base = {"model": "m", "data": {"mt": "x"}, "output": "o", "val": "v"}
    from_config = C.TrainOptions(**base, lr=rates)
    flag, text = cli_tokens(C.TrainOptions, {"lr": rates}, from_config)["lr"]
    from_argv = C.TrainOptions(**base, lr=text)
    job = Job(from_argv, model_path="m", model_type="bloom", lora_targets=[], precision="fp32", ds_config={},
              world_size=1)
    assert flag == "--lr" and Job.from_json(job.to_json()).options.lr == from_argv.lr == from_config.lr == rates


# ------------------------------------------------------------------------------------------------ schedules
def test_schedules_keep_the_warmup_then_decay_linearly_by_cosine_or_not_at_all():
    from aligninstruct_cli.training.loop import lr_schedule

    warmup, total = 4, 20
    for kind in C.LR_SCHEDULERS:
        f = lr_schedule(kind, warmup, total)
        assert [f(s) for s in range(warmup)] == [0.25, 0.5, 0.75, 1.0]  # the same warm-up for every kind
        assert f(warmup) == 1.0
    linear, cosine, constant = (lr_schedule(k, warmup, total) for k in ("linear", "cosine", "constant"))
    assert linear(12) == pytest.approx(0.5) and linear(total) == 0.0
    assert cosine(12) == pytest.approx(0.5) and cosine(8) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(total) == pytest.approx(0.0) and cosine(8) > linear(8)
    assert all(constant(s) == 1.0 for s in range(warmup, total + 1))


def test_cosine_schedule_in_a_run_and_adapters_saved_every_n_steps_load_in_stock_peft(tiny_bloom_dir, data,
                                                                                     tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = train(tiny_bloom_dir, out, "--lr-scheduler", "cosine", "--warmup-ratio", "0", "--batch-size", "2",
                   "--save-adapter-every", "2", "--log-every", "1", data=data, cache=tmp_path / "cache")
    assert result.exit_code == 0, result.output
    rates = [r["learning_rate"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "learning_rate" in r]
    # 4 steps, no warm-up: the rate after step k is the cosine at k/4 of the way
    assert rates == pytest.approx([1e-2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)])
    checkpoints = out / "adapters" / "stage-1-mt"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    base = AutoModelForCausalLM.from_pretrained(tiny_bloom_dir)
    mid = PeftModel.from_pretrained(base, checkpoints / "checkpoint-2")
    key = next(k for k in mid.state_dict() if "lora_B" in k)
    assert mid.state_dict()[key].abs().sum() > 0  # trained two steps
    last = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir), checkpoints / "checkpoint-4")
    final = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_bloom_dir), out / "final")
    assert torch.equal(last.state_dict()[key], final.state_dict()[key])  # the last step's adapter is the stage's
    assert not torch.equal(mid.state_dict()[key], final.state_dict()[key])


# ------------------------------------------------------------------------------------------------ W&B
def test_wandb_offline_logs_each_stages_figures(tiny_bloom_dir, data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "ait-test")
    out = tmp_path / "run"
    result = train(tiny_bloom_dir, out, "--report-to", "wandb", "--log-every", "1", "--batch-size", "2",
                   "--data", f"align={data['align']}", "--curriculum", "mt,align", data=data,
                   cache=tmp_path / "cache")
    assert result.exit_code == 0, result.output
    runs = sorted((out / "wandb").glob("offline-run-*"))  # one W&B run per stage (two may start in one second)
    assert len(runs) == 2
    metrics = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    stages_seen = []
    for run in runs:
        # the run's history, as wandb wrote it for `wandb sync`: the stage's per-step losses of metrics.jsonl
        store = datastore.DataStore()
        store.open_for_scan(str(next(run.glob("*.wandb"))))
        logged, config, name = [], {}, ""
        while (raw := store.scan_data()) is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            if record.WhichOneof("record_type") == "history":
                items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item}
                if "train/loss" in items:
                    logged.append((items["_step"], items["train/loss"]))
            kind = record.WhichOneof("record_type")
            if kind in ("config", "run"):  # the options: in the run record, or a config update after it
                updates = record.config.update if kind == "config" else record.run.config.update
                config.update({item.key: json.loads(item.value_json) for item in updates})
            if kind == "run":
                name = record.run.display_name  # OUTPUT-NAME/stage-K-...: which stage this run is
        stage = int(re.search(r"stage-(\d+)", name).group(1))
        stages_seen.append(stage)
        assert config["lr_scheduler"] == "linear" and config["report_to"] == "wandb"
        expected = [(r["step"], r["loss"]) for r in metrics if r["stage"] == stage]
        assert [s for s, _ in logged] == [s for s, _ in expected] == ([1, 2, 3, 4] if stage == 1 else [1, 2])
        assert [loss for _, loss in logged] == pytest.approx([loss for _, loss in expected])
    assert sorted(stages_seen) == [1, 2]


# ------------------------------------------------------------------------------------------------ QLoRA
def test_quantization_config_is_qlora_nf4_or_int8():
    import torch

    assert C.quantization_kwargs("none", "bf16") is None and C.quantization_config("none", "bf16") is None
    assert C.quantization_kwargs("4bit", "bf16") == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                                      "bnb_4bit_use_double_quant": True,
                                                      "bnb_4bit_compute_dtype": torch.bfloat16}
    assert C.quantization_kwargs("8bit", "fp16") == {"load_in_8bit": True}
    pytest.importorskip("bitsandbytes")  # transformers' config object wants the package installed
    config = C.quantization_config("4bit", "fp16")
    assert config.load_in_4bit and not config.load_in_8bit and config.bnb_4bit_compute_dtype == torch.float16
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert C.quantization_config("8bit", "bf16").load_in_8bit


def test_quantize_on_a_cpu_stops_before_anything_is_read(tiny_bloom_dir, data, tmp_path, monkeypatch):
    import aligninstruct_cli.training.launch as launch

    monkeypatch.setattr(launch, "_cuda_available", lambda: False)
    monkeypatch.setattr(launch, "tokenize_inputs", lambda *a, **k: pytest.fail("tokenized"))
    out = tmp_path / "run"
    result = train(tiny_bloom_dir, out, "--quantize", "4bit", data=data, cache=tmp_path / "cache")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "--quantize 4bit" in message and "CUDA GPU" in message and "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.strip()]) <= 6  # one paragraph
    assert not out.exists()
    with pytest.raises(OptionError, match="not with"):
        C.TrainOptions(model="m", data={"mt": "x"}, output="o", quantize="4bit", full=True)
    # the DeepSpeed config leaves a quantized base's dtypes alone
    options = C.TrainOptions(model="m", data={"mt": "x"}, output="o", quantize="4bit")
    config = launch.build_ds_config(options, "bf16")
    assert not config["bf16"]["enabled"] and not config["fp16"]["enabled"]


# ------------------------------------------------------------------------------------------------ failures
def test_a_crash_inside_launcher_none_ends_like_the_launchers(tiny_bloom_dir, data, tmp_path, monkeypatch):
    import aligninstruct_cli.training.loop as loop

    real = loop.set_up_stage

    def crash_in_stage_2(job, dist, lr_index, stage):
        if stage == 1:
            raise AttributeError("'Gemma3ForCausalLM' object has no attribute 'language_model'")
        return real(job, dist, lr_index, stage)

    monkeypatch.setattr(loop, "set_up_stage", crash_in_stage_2)
    out = tmp_path / "run"
    args = ["--data", f"align={data['align']}", "--curriculum", "align,mt"]
    result = train(tiny_bloom_dir, out, *args, data=data, cache=tmp_path / "cache")
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "training failed in this process (--launcher none): AttributeError: 'Gemma3ForCausalLM' object has " \
           "no attribute 'language_model'" in message
    assert "continue from the last finished stage with --resume" in message  # stage 1 was saved
    assert json.loads((out / "run.json").read_text())["status"] == "failed"

    # failing before any stage finished: --resume could not help, so it is not suggested
    monkeypatch.setattr(loop, "set_up_stage", lambda *a: (_ for _ in ()).throw(RuntimeError("no memory")))
    other = tmp_path / "other"
    result = train(tiny_bloom_dir, other, data=data, cache=tmp_path / "cache")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "RuntimeError: no memory" in message and "--resume" not in message.replace("--resume could", "")
    assert "run the same command again" in message
    assert json.loads((other / "run.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------------------------------------ data formats
ALPACA = [{"instruction": "Give a synonym.", "input": "big", "output": "large"},
          {"instruction": "Say hello.", "input": "", "output": "hello", "system": "Be brief."}]
MESSAGES = [{"messages": [{"role": "system", "content": "You translate."},
                          {"role": "user", "content": "the cat"}, {"role": "assistant", "content": "мысық"}]},
            {"id": "m2", "src_lang": "en", "tgt_lang": "kk",
             "messages": [{"role": "user", "content": "a dog"}, {"role": "assistant", "content": "ит"}]}]
SHAREGPT = [{"conversations": [{"from": "human", "value": "two plus two"}, {"from": "gpt", "value": "four"}],
             "system": "Answer."}]


def converted(path: Path, data_format: str = "auto") -> list[dict]:
    from aligninstruct_cli.io import read_records
    from aligninstruct_cli.records import record_converter

    return list(read_records(str(path), kind="instruction", convert=record_converter(data_format)))


def test_alpaca_messages_and_sharegpt_records_become_general_instructions(tmp_path):
    alpaca = converted(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA))
    assert [(r["id"], r["objective"], r["input"], r["output"]) for r in alpaca] == [
        (1, "general", "Give a synonym.\nbig", "large"), (2, "general", "Be brief.\n\nSay hello.", "hello")]
    messages = converted(write_jsonl(tmp_path / "chat.jsonl", MESSAGES))
    assert [(r["id"], r["input"], r["output"]) for r in messages] == [
        (1, "You translate.\n\nthe cat", "мысық"), ("m2", "a dog", "ит")]
    assert "src_lang" not in messages[0] and (messages[1]["src_lang"], messages[1]["tgt_lang"]) == ("en", "kk")
    sharegpt = converted(write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT), "sharegpt")
    assert [(r["input"], r["output"], r["format"]) for r in sharegpt] == [("Answer.\n\ntwo plus two", "four",
                                                                          "sharegpt")]
    # alpaca's own files: one JSON array, pretty-printed; each record's line is where it starts
    array = tmp_path / "alpaca_data.json"
    array.write_text(json.dumps(ALPACA, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert converted(array) == alpaca
    # ait's own records pass unchanged
    ait = converted(Path(make_data(tmp_path, n_mt=2, n_align=1)["mt"]))
    assert [r["objective"] for r in ait] == ["mt", "mt"]


@pytest.mark.parametrize("records, data_format, where, field, message", [
    ([ALPACA[0], {"instruction": "x"}], "auto", 2, "output", "missing"),
    ([MESSAGES[0], {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                 {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}],
     "auto", 2, "messages", "split multi-turn"),
    ([{"messages": [{"role": "robot", "content": "a"}]}], "auto", 1, "messages[0].role", "unknown role 'robot'"),
    ([{"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "b"}]}], "auto", 1,
     "conversations[0].value", "empty"),
    ([ALPACA[0]], "messages", 1, "messages", "expected a non-empty list of turns"),
    ([{"instruction": "a", "output": "b", "history": [["q", "a"]]}], "alpaca", 1, "history", "multi-turn"),
])
def test_bad_foreign_records_name_file_line_and_field(records, data_format, where, field, message, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(InputError) as caught:
        converted(path, data_format)
    error = caught.value
    assert (error.path, error.line) == (str(path), where) and field in str(error) and message in str(error)


def test_a_broken_json_array_names_its_line(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n')
    with pytest.raises(InputError, match=r"alpaca.json:3: malformed JSON"):
        converted(path)
    with pytest.raises(AitError, match="one JSON array; this stage reads JSON lines"):
        from aligninstruct_cli.io import read_records

        list(read_records(str(path), with_offset=True))


def test_general_data_in_a_curriculum_stage_beside_mt(tiny_bloom_dir, data, tmp_path):
    """alpaca and chat records mixed into a stage with MTInstruct (against forgetting), then MT alone."""
    alpaca = tmp_path / "alpaca_data.json"
    alpaca.write_text(json.dumps(ALPACA * 3, indent=1), encoding="utf-8")
    chat = write_jsonl(tmp_path / "chat.jsonl", [MESSAGES[0]] * 3 + [MESSAGES[1]])
    out = tmp_path / "run"
    result = train(tiny_bloom_dir, out, "--data", f"general={alpaca}", "--data", f"chat={chat}", "--curriculum",
                   "mt+general+chat,mt", "--log-data-ids", data=data, cache=tmp_path / "cache")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished"
    assert manifest["data_stats"]["general"]["examples"] == 6 and manifest["data_stats"]["chat"]["examples"] == 4
    stage_1 = [i for r in map(json.loads, (out / "data_ids.jsonl").read_text().splitlines()) if r["stage"] == 1
               for i in r["ids"]]
    assert sorted({i.split(":")[0] for i in stage_1}) == ["chat", "general", "mt"] and len(stage_1) == 8 + 6 + 4
    card = (out / "final" / "README.md").read_text()
    assert "general instructions (alpaca / chat data): 10 records" in card


def test_ait_mix_takes_general_instructions_without_languages(tmp_path):
    """Other tools' data converted to instruction records (objective general, no languages) mix like any."""
    from conftest import read_jsonl

    general = write_jsonl(tmp_path / "general.jsonl", [
        {"id": f"g{k}", "objective": "general", "input": f"say {k}", "output": str(k), "source_id": k}
        for k in range(4)])
    mt = Path(make_data(tmp_path, n_mt=4, n_align=1)["mt"])
    out = tmp_path / "mixed.jsonl"
    result = runner.invoke(app, ["-q", "mix", str(mt), str(general), "--max-per-lang", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    objectives = [r["objective"] for r in read_jsonl(out)]
    assert objectives.count("general") == 3 and objectives.count("mt") == 3  # capped per language, "" one

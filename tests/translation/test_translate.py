"""`ait translate` and generation.py on a tiny BLOOM: prompts, batching, resume, pivot, adapters, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import noisy_copy, read_jsonl, write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.generation import TranslateOptions, Translator, clean_hypothesis, resolve_prompt
from aligninstruct_cli.models import check_adapter_base, load_model, same_base_model
from aligninstruct_cli.instructions.templates import PROMPTS
from aligninstruct_cli.options import OptionError

runner = CliRunner()
DIRECTIONS = [("en", "kk"), ("kk", "en"), ("de", "fr"), ("en", "cy")]


@pytest.fixture(scope="module")
def noisy_bloom_dir(tmp_path_factory, tiny_bloom_dir) -> Path:
    """The tiny BLOOM with larger random weights (see `noisy_copy`)."""
    return noisy_copy(tiny_bloom_dir, tmp_path_factory.mktemp("noisy-bloom"))


@pytest.fixture(scope="module")
def loaded(noisy_bloom_dir):
    return load_model(str(noisy_bloom_dir))


def make_records(n: int = 24, seed: int = 7) -> list[dict]:
    from aligninstruct_cli.tiny import sample_texts

    texts = sample_texts(2 * n, seed=seed)
    return [{"id": f"s{i}", "src_lang": DIRECTIONS[i % 4][0], "tgt_lang": DIRECTIONS[i % 4][1],
             "src": texts[2 * i], "tgt": texts[2 * i + 1], "note": i} for i in range(n)]


# ------------------------------------------------------------------------------------------------ prompts
def test_prompts_are_the_papers_templates():
    assert resolve_prompt("default").render("en", "kk", "Hello .") == \
        "Translate from English to Kazakh.\nEnglish: Hello .\nKazakh:"
    assert resolve_prompt("2").render("en", "kk", "Hello") == "Hello\nKazakh:"
    custom = resolve_prompt("Into {tgt_name}:\\n{src}\\n{tgt_name}:")
    assert custom.name == "custom" and custom.render("kk", "cy", "x") == "Into Welsh:\nx\nWelsh:"
    for bad, message in (("{src} {tgt}", "unknown placeholder"), ("{tgt_name}:", "neither a prompt name"),
                         ("{src", "malformed")):
        with pytest.raises(AitError, match=message):
            resolve_prompt(bad)


def test_clean_hypothesis_cuts_at_first_newline_after_separator():
    assert clean_hypothesis(" Сәлем әлем\nEnglish: more") == "Сәлем әлем"
    assert clean_hypothesis("\n  two words  \nthird line") == "two words"
    assert clean_hypothesis("   ") == ""


def test_stop_criterion_agrees_with_the_cut(loaded):
    import torch

    from aligninstruct_cli.generation import _StopAtNewline

    tok = loaded.tokenizer
    translator = Translator(loaded)
    prompt = tok("the cat")["input_ids"]
    stop = _StopAtNewline(tok, translator._newline_token_ids(), len(prompt))
    leading = torch.tensor([prompt + tok("\n")["input_ids"]])
    assert not stop(leading, None).item()  # a newline before any text is not the end
    stop = _StopAtNewline(tok, translator._newline_token_ids(), len(prompt))
    ended = torch.tensor([prompt + tok(" red tree\n")["input_ids"]])
    assert stop(ended, None).item()


# ------------------------------------------------------------------------------------------------ batching
def test_batched_equals_one_by_one_and_keeps_order(loaded):
    records = make_records(24)
    batched = Translator(loaded, batch_size=8, max_new_tokens=12)
    one = Translator(loaded, batch_size=1, max_new_tokens=12)
    out_batched = list(batched.translate(records, chunk_size=24))
    out_one = list(one.translate(records))
    assert [r["id"] for r in out_batched] == [r["id"] for r in records]
    assert [r["hyp"] for r in out_batched] == [r["hyp"] for r in out_one]
    assert len({r["hyp"] for r in out_batched}) >= 20  # a meaningful comparison: outputs differ
    assert batched.stats.batch_sizes == [8, 8, 8] and one.stats.batch_sizes == [1] * 24
    # prompts of different lengths shared a batch, so left padding was really exercised
    lengths = {len(loaded.tokenizer(batched.prompt.render(r["src_lang"], r["tgt_lang"], r["src"]))["input_ids"])
               for r in records}
    assert len(lengths) > 3
    # and a reversed input gives the same hypotheses per id (original order restored inside chunks)
    out_reversed = list(batched.translate(records[::-1], chunk_size=24))
    assert [r["id"] for r in out_reversed] == [r["id"] for r in records[::-1]]
    assert {r["id"]: r["hyp"] for r in out_reversed} == {r["id"]: r["hyp"] for r in out_one}


def test_batched_output_matches_plain_generate(loaded):
    """One unpadded `generate` call per prompt, decoded and cut by hand, gives the same hypotheses."""
    import torch

    records = make_records(6, seed=11)
    translator = Translator(loaded, batch_size=6, max_new_tokens=12)
    hyps = [r["hyp"] for r in translator.translate(records)]
    tok, model = loaded.tokenizer, loaded.model
    for rec, hyp in zip(records, hyps):
        ids = tok(translator.prompt.render(rec["src_lang"], rec["tgt_lang"], rec["src"]), return_tensors="pt",
                  return_token_type_ids=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert hyp == clean_hypothesis(text)


def test_cuda_oom_halves_the_batch_and_continues(loaded, monkeypatch):
    import torch

    records = make_records(12, seed=3)
    expected = [r["hyp"] for r in Translator(loaded, batch_size=4, max_new_tokens=8).translate(records)]
    real_generate = loaded.model.generate
    seen_sizes = []

    def flaky_generate(*args, **kwargs):
        size = kwargs["input_ids"].shape[0]
        seen_sizes.append(size)
        if size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "generate", flaky_generate)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    translator = Translator(loaded, batch_size=8, max_new_tokens=8)
    got = [r["hyp"] for r in translator.translate(records)]
    assert got == expected
    assert translator.batch_size == 2 and translator.stats.oom_halvings == 2
    assert seen_sizes[:3] == [8, 4, 2]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_output_keeps_fields_and_adds_provenance(tmp_path, noisy_bloom_dir):
    records = make_records(8)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out),
                                 "--batch-size", "3", "--max-new-tokens", "8", "--prompt", "3"])
    assert result.exit_code == 0, result.output
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in records]
    for rec, orig in zip(got, records):
        assert {k: rec[k] for k in orig} == orig
        assert rec["prompt_name"] == "3" and rec["model"] == str(noisy_bloom_dir) and rec["adapter"] is None
        assert isinstance(rec["hyp"], str) and "\n" not in rec["hyp"]


def test_cli_plain_text_input(tmp_path, noisy_bloom_dir):
    src = tmp_path / "in.txt"
    src.write_text("the cat sees a bird\nsmall red house\n", encoding="utf-8")
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "--src-lang", "en",
                                 "--tgt-lang", "kk", "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["src"], r["src_lang"], r["tgt_lang"]) for r in got] == \
        [("1", "the cat sees a bird", "en", "kk"), ("2", "small red house", "en", "kk")]


def test_resume_completes_a_half_written_file(tmp_path, noisy_bloom_dir):
    records = make_records(20)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    args = ["--model", str(noisy_bloom_dir), "--batch-size", "4", "--max-new-tokens", "8"]
    full = tmp_path / "full.jsonl"
    assert runner.invoke(app, ["translate", str(src), "-o", str(full), *args]).exit_code == 0
    lines = full.read_bytes().splitlines(keepends=True)
    half = tmp_path / "half.jsonl"
    half.write_bytes(b"".join(lines[:9]) + lines[9][:25])  # 9 records, then a write cut off mid-line
    result = runner.invoke(app, ["translate", str(src), "-o", str(half), "--resume", *args])
    assert result.exit_code == 0, result.output
    assert half.read_bytes() == full.read_bytes()
    ids = [r["id"] for r in read_jsonl(half)]
    assert len(ids) == len(set(ids)) == 20
    # resuming a finished file adds nothing
    assert runner.invoke(app, ["translate", str(src), "-o", str(half), "--resume", *args]).exit_code == 0
    assert half.read_bytes() == full.read_bytes()
    # a file made with other options is refused, untouched
    result = runner.invoke(app, ["translate", str(src), "-o", str(half), "--resume", "--prompt", "1", *args])
    assert result.exit_code == 2 and "made with" in result.output
    assert half.read_bytes() == full.read_bytes()
    # --resume on a first run (no output yet) simply translates everything
    fresh = tmp_path / "fresh.jsonl"
    result = runner.invoke(app, ["translate", str(src), "-o", str(fresh), "--resume", *args])
    assert result.exit_code == 0, result.output
    assert fresh.read_bytes() == full.read_bytes()


def test_pivot_keeps_both_legs(tmp_path, loaded, noisy_bloom_dir):
    records = make_records(8)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out),
                                 "--pivot", "en", "--max-new-tokens", "8", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    got = read_jsonl(out)
    translator = Translator(loaded, max_new_tokens=8)
    render = translator.prompt.render
    for rec in got:
        if "en" in (rec["src_lang"], rec["tgt_lang"]):
            assert "pivot_hyp" not in rec
            assert rec["hyp"] == translator.generate([render(rec["src_lang"], rec["tgt_lang"], rec["src"])])[0]
        else:  # de → en → fr
            assert rec["pivot_lang"] == "en"
            assert rec["pivot_hyp"] == translator.generate([render(rec["src_lang"], "en", rec["src"])])[0]
            assert rec["hyp"] == translator.generate([render("en", rec["tgt_lang"], rec["pivot_hyp"])])[0]
    assert sum("pivot_hyp" in r for r in got) == 2


# ------------------------------------------------------------------------------------------------ adapters
@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, noisy_bloom_dir) -> Path:
    """A LoRA adapter on query_key_value with random (non-zero) weights, saved the way peft saves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(noisy_bloom_dir)
    config = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=["query_key_value"],
                        task_type="CAUSAL_LM", init_lora_weights=False)
    model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def test_adapter_changes_output_and_merge_matches(tmp_path, noisy_bloom_dir, adapter_dir):
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(noisy_bloom_dir)
    records = make_records(8)
    src = write_jsonl(tmp_path / "in.jsonl", records)
    outs = {}
    for name, extra in (("base", []), ("adapter", ["--adapter", str(adapter_dir), "--no-merge"]),
                        ("merged", ["--adapter", str(adapter_dir)])):  # merged by default
        out = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out),
                                     "--max-new-tokens", "8", *extra])
        assert result.exit_code == 0, result.output
        outs[name] = read_jsonl(out)
    assert outs["adapter"][0]["adapter"] == str(adapter_dir)
    assert [r["hyp"] for r in outs["adapter"]] != [r["hyp"] for r in outs["base"]]
    assert [r["hyp"] for r in outs["merged"]] == [r["hyp"] for r in outs["adapter"]]
    manifests = {name: json.loads((tmp_path / f"{name}.jsonl.run.json").read_text()) for name in outs}
    assert [manifests[n]["decoding"]["merge"] for n in ("base", "adapter", "merged")] == [False, False, True]


def test_adapter_of_another_base_model_is_refused(tmp_path, tiny_bloom_dir, adapter_dir):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["translate", str(src), "--model", str(tiny_bloom_dir), "--adapter",
                                 str(adapter_dir), "-o", str(out)])
    assert result.exit_code == 2
    assert "was trained on" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_missing_or_empty_adapter_folder_is_named_as_the_flag(tmp_path, noisy_bloom_dir):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    (tmp_path / "empty").mkdir()
    for adapter, message, hint in ((tmp_path / "nope", f"--adapter {tmp_path / 'nope'}: no such directory", None),
                                   (tmp_path / "empty", f"--adapter {tmp_path / 'empty'}: not a LoRA adapter (no "
                                    "adapter_config.json)", "pass the directory `ait train` wrote the adapter to")):
        result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "--adapter",
                                     str(adapter), "-o", str(tmp_path / "out.jsonl")])
        output = " ".join(result.output.split())
        assert result.exit_code == 2 and message in output, result.output
        assert hint is None or hint in output
        assert "Traceback" not in result.output and not (tmp_path / "out.jsonl").exists()


def test_same_base_model_rules(tmp_path):
    assert same_base_model("bigscience/bloomz-7b1", "/models/bloomz-7b1/")
    assert same_base_model("bigscience/bloomz-560m",
                           "/root/.cache/huggingface/hub/models--bigscience--bloomz-560m/snapshots/abc123")
    assert not same_base_model("bigscience/bloomz-7b1", "bigscience/bloomz-3b")
    with pytest.raises(AitError, match="no adapter_config.json"):
        check_adapter_base(str(tmp_path), "bigscience/bloomz-7b1")


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "src_lang": "en", "tgt_lang": "xx-nope", "src": "hi"}\n', "field 'tgt_lang'"),
    ('{"id": "a", "src_lang": "en", "tgt_lang": "kk"}\n', "field 'src'"),
    ("", "no records"),
])
def test_bad_input_is_a_clean_error_and_writes_nothing(tmp_path, noisy_bloom_dir, content, message):
    src = tmp_path / "in.jsonl"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_option_errors(tmp_path, noisy_bloom_dir):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    for extra, message in ((["--resume"], "--resume needs --output"),
                           (["--pivot", "qq"], "unknown language"), (["--prompt", "{x}"], "unknown placeholder"),
                           (["--batch-size", "0"], "--batch-size")):
        result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output


def test_missing_model_directory_is_a_clean_error(tmp_path):
    src = tmp_path / "src.jsonl"
    src.write_text(json.dumps({"id": "1", "src_lang": "en", "tgt_lang": "kk", "src": "hello"}) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["translate", str(src), "--model", str(tmp_path / "no-model"), "-o", str(out)])
    assert result.exit_code == 2
    assert "no such directory" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_file_output_gets_a_run_manifest_and_resume_keeps_its_decoding(tmp_path, noisy_bloom_dir):
    """OUTPUT.run.json records how the hypotheses were made; --resume refuses other decoding settings
    (before loading the model) and notes the resume."""
    src = write_jsonl(tmp_path / "in.jsonl", make_records(6))
    out = tmp_path / "hyps.jsonl"
    args = ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out), "--max-new-tokens", "5"]
    assert runner.invoke(app, args).exit_code == 0
    manifest = json.loads((tmp_path / "hyps.jsonl.run.json").read_text())
    assert manifest["status"] == "finished" and manifest["records"] == 6
    assert manifest["decoding"] == {"model": str(noisy_bloom_dir), "adapter": None, "merge": False,
                                    "prompt_name": "default", "prompt_template": PROMPTS["default"],
                                    "num_beams": 1, "max_new_tokens": 5, "pivot": None, "precision": "auto"}
    assert manifest["resolved_precision"] == "fp32" and manifest["device"] == "cpu"
    assert manifest["input_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert set(manifest["versions"]) >= {"ait", "torch", "transformers"}

    before = out.read_bytes()
    result = runner.invoke(app, [*args, "--resume", "--num-beams", "2"])
    assert result.exit_code == 2 and "num_beams: 1 then, 2 now" in result.output
    assert out.read_bytes() == before
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "hyps.jsonl.run.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1 and manifest["records"] == 6
    # stdout has no manifest to go beside
    assert runner.invoke(app, args[:-4] + ["--max-new-tokens", "5"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hyps.jsonl", "hyps.jsonl.run.json", "in.jsonl"]


# ------------------------------------------------------------------------------------------------ options
def test_config_file_with_flags_overriding(tmp_path, noisy_bloom_dir):
    """--config fills TranslateOptions, a typed flag wins over it, and the run uses the merged values."""
    src = write_jsonl(tmp_path / "in.jsonl", make_records(4))
    config = tmp_path / "t.yaml"
    config.write_text(f"model: {noisy_bloom_dir}\nnum_beams: 2\nmax_new_tokens: 6\nbatch_size: 3\n")
    out = tmp_path / "out.jsonl"
    args = ["translate", str(src), "--config", str(config), "--max-new-tokens", "4"]
    result = runner.invoke(app, [*args, "--print-config"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert (printed["model"], printed["num_beams"], printed["max_new_tokens"], printed["batch_size"]) == \
        (str(noisy_bloom_dir), 2, 4, 3)
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out.jsonl.run.json").read_text())
    assert manifest["decoding"]["num_beams"] == 2 and manifest["decoding"]["max_new_tokens"] == 4
    assert manifest["batch_size"] == 3 and len(read_jsonl(out)) == 4
    # a bad value is named by its key in the file, a bad flag by the flag
    config.write_text(f"model: {noisy_bloom_dir}\nnum_beams: 0\n")
    result = runner.invoke(app, ["translate", str(src), "--config", str(config)])
    assert result.exit_code == 2 and f"{config}: num_beams must be at least 1" in result.output


def test_precision_and_the_old_dtype_flag(tmp_path, noisy_bloom_dir):
    """--precision speaks train's vocabulary; --dtype and the old spellings still work, with a note; the
    manifest records the normalised value."""
    src = write_jsonl(tmp_path / "in.jsonl", make_records(2))
    outs = {}
    for flags in (["--precision", "fp32"], ["--dtype", "float32"]):
        out = tmp_path / f"{flags[0][2:]}.jsonl"
        result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out),
                                     "--max-new-tokens", "4", *flags])
        assert result.exit_code == 0, result.output
        assert ("deprecated" in result.output) == (flags[0] == "--dtype")
        manifest = json.loads(Path(f"{out}.run.json").read_text())
        assert manifest["decoding"]["precision"] == "fp32" and manifest["resolved_precision"] == "fp32"
        outs[flags[0]] = out.read_bytes()
    assert outs["--precision"] == outs["--dtype"]
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_bloom_dir), "--precision", "fp8"])
    assert result.exit_code == 2 and "--precision" in result.output


def test_resume_reads_a_manifest_of_the_old_dtype_vocabulary(tmp_path, noisy_bloom_dir):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(4))
    out = tmp_path / "hyps.jsonl"
    args = ["translate", str(src), "--model", str(noisy_bloom_dir), "-o", str(out), "--max-new-tokens", "4"]
    assert runner.invoke(app, args).exit_code == 0
    path = tmp_path / "hyps.jsonl.run.json"
    manifest = json.loads(path.read_text())
    manifest["decoding"]["dtype"] = manifest["decoding"].pop("precision")
    manifest["resolved_dtype"] = {"fp32": "float32"}[manifest.pop("resolved_precision")]
    path.write_text(json.dumps(manifest))
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*args, "--resume", "--precision", "fp32"])
    assert result.exit_code == 2 and "precision: 'auto' then, 'fp32' now" in result.output


def test_library_checks_name_fields_not_flags(loaded):
    with pytest.raises(OptionError, match="^batch_size must be at least 1, not 0$"):
        Translator(loaded, batch_size=0)
    with pytest.raises(OptionError, match="^cache must be one of auto, static, dynamic, not 'fast'$"):
        TranslateOptions(model="m", cache="fast")
    with pytest.raises(OptionError, match="^num_gpus must be at least 1, not 0$"):
        TranslateOptions(model="m", num_gpus=0)
    assert TranslateOptions(model="m").merge  # merged by default; ignored without an adapter
    options = TranslateOptions(model="m", precision="bfloat16", max_new_tokens=8)
    assert options.precision == "bf16" and options.num_beams == 1 and options.batch_size == 16
    assert Translator(loaded, options, batch_size=2).options.max_new_tokens == 8

"""The GPU speed paths of `ait translate`, checked on CPU: the static KV cache gives the tokens of plain
generate, `--num-gpus N` gives the file of one process (and resumes), its workers die with their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import noisy_copy, write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.generation import STATIC_WIDTH_STEP, Translator, default_chunk_size, supports_static_cache
from aligninstruct_cli.models import load_model
from tests.translation.test_translate import make_records

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def noisy_dirs(tmp_path_factory, tiny_bloom_dir) -> dict[str, Path]:
    """Tiny BLOOM and Llama with large random weights (see `noisy_copy`)."""
    from aligninstruct_cli.tiny import build_tiny_llama, sample_texts, train_tokenizer

    llama_dir = tmp_path_factory.mktemp("llama")
    build_tiny_llama(llama_dir, train_tokenizer(sample_texts(), llama_dir / "tok", vocab_size=600, style="llama"))
    return {name: noisy_copy(source, tmp_path_factory.mktemp(f"noisy-{name}"))
            for name, source in (("bloom", tiny_bloom_dir), ("llama", llama_dir))}


@pytest.mark.parametrize("family", ["bloom", "llama"])
def test_static_cache_gives_the_tokens_of_plain_generate(noisy_dirs, family):
    loaded = load_model(str(noisy_dirs[family]))
    assert supports_static_cache(loaded.model)
    static = Translator(loaded, batch_size=4, max_new_tokens=24, cache="static")
    dynamic = Translator(loaded, batch_size=4, max_new_tokens=24, cache="dynamic")
    prompts = [static.prompt.render(r["src_lang"], r["tgt_lang"], r["src"])
               for r in make_records(13, seed=3)]  # 13 = 3 full batches of 4 and a padded one
    assert static.static_cache and static.fixed_shapes and not dynamic.static_cache
    ids_static = static.generate_token_ids(prompts)
    assert ids_static == dynamic.generate_token_ids(prompts)  # other padding, other batch width: same tokens
    assert static.stats.batch_sizes == [4, 4, 4, 1] and static.stats.sentences == 13  # fill rows not counted
    assert static.generate(prompts) == dynamic.generate(prompts)


def test_static_batches_are_full_and_widths_rounded(noisy_dirs, monkeypatch):
    from aligninstruct_cli.decoding import GreedyDecoder

    loaded = load_model(str(noisy_dirs["bloom"]))
    seen = []
    real_generate, real_decode = loaded.model.generate, GreedyDecoder.decode

    def spy(**kwargs):
        seen.append((tuple(kwargs["input_ids"].shape), kwargs.get("cache_implementation")))
        return real_generate(**kwargs)

    def spy_loop(self, input_ids, attention_mask, max_new_tokens, real_rows=None):
        seen.append((tuple(input_ids.shape), "ait loop"))
        return real_decode(self, input_ids, attention_mask, max_new_tokens, real_rows)

    monkeypatch.setattr(loaded.model, "generate", spy)
    monkeypatch.setattr(GreedyDecoder, "decode", spy_loop)
    Translator(loaded, batch_size=4, max_new_tokens=4, cache="static").generate_token_ids(["a b c"] * 5)
    assert [shape[0] for shape, _ in seen] == [4, 4]  # ait's decoding loop, in full batches
    assert all(shape[1] % STATIC_WIDTH_STEP == 0 and how == "ait loop" for shape, how in seen)
    seen.clear()
    translator = Translator(loaded, batch_size=4, max_new_tokens=4, cache="static")
    translator.own_loop = False  # transformers' static path (what a benchmark compares against)
    translator.generate_token_ids(["a b c"] * 5)
    assert [shape[0] for shape, _ in seen] == [4, 4]
    assert all(shape[1] % STATIC_WIDTH_STEP == 0 and how == "static" for shape, how in seen)


def test_cache_auto_and_its_fallbacks(noisy_dirs, monkeypatch, capsys):
    import aligninstruct_cli.generation as G

    loaded = load_model(str(noisy_dirs["bloom"]))
    assert not Translator(loaded).static_cache  # auto on a CPU: nothing would compile the decoding step

    class FakeCuda:  # a stand-in device: only its type is read
        type = "cuda"

    gpu = G.LoadedModel(loaded.model, loaded.tokenizer, "m", None, FakeCuda(), "bf16")
    assert Translator(gpu).static_cache  # auto on a GPU, greedy, a model with a static cache
    assert not Translator(gpu, num_beams=2).static_cache
    assert "dynamic KV cache (beam search)" in capsys.readouterr().err
    monkeypatch.setattr(G, "supports_static_cache", lambda model: False)
    assert not Translator(gpu).static_cache
    assert "has no static cache" in capsys.readouterr().err
    assert not Translator(gpu, cache="dynamic").static_cache


# ------------------------------------------------------------------------------------------ --num-gpus
@pytest.mark.slow  # one translation of two chunks, then two `--num-gpus 2` runs of two worker processes each
def test_num_gpus_2_writes_the_file_of_one_process_and_resumes(tmp_path, noisy_dirs):
    n = default_chunk_size(4) + 60  # two chunks, so both workers translate
    src = write_jsonl(tmp_path / "in.jsonl", make_records(n, seed=5))
    args = ["--model", str(noisy_dirs["bloom"]), "--batch-size", "4", "--max-new-tokens", "6"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    result = runner.invoke(app, ["translate", str(src), "-o", str(one), *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["translate", str(src), "-o", str(two), "--num-gpus", "2", *args])
    assert result.exit_code == 0, result.output
    assert two.read_bytes() == one.read_bytes()
    manifest = json.loads((tmp_path / "two.jsonl.run.json").read_text())
    assert manifest["num_gpus"] == 2 and manifest["device"] == "cpu,cpu" and manifest["records"] == n
    # a run killed part-way (a cut line at the end) resumes with two processes to the same file
    lines = one.read_bytes().splitlines(keepends=True)
    half = tmp_path / "half.jsonl"
    half.write_bytes(b"".join(lines[:100]) + lines[100][:30])
    result = runner.invoke(app, ["translate", str(src), "-o", str(half), "--resume", "--num-gpus", "2", *args])
    assert result.exit_code == 0, result.output
    assert half.read_bytes() == one.read_bytes()


def test_num_gpus_worker_errors_are_clean(tmp_path, noisy_dirs):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(3))
    result = runner.invoke(app, ["translate", str(src), "--model", str(noisy_dirs["bloom"]), "--num-gpus", "2",
                                 "--device", "cuda", "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2 and "--num-gpus 2 from cuda" in result.output and "Traceback" not in result.output
    # an error inside a worker (the model is loaded there) comes back as that error, flag names and all
    result = runner.invoke(app, ["translate", str(src), "--model", str(tmp_path / "nowhere"), "--num-gpus", "2",
                                 "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2 and "no such directory" in result.output
    assert not (tmp_path / "out.jsonl").exists()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and ps --ppid")
def test_num_gpus_workers_end_when_the_parent_is_killed(tmp_path, noisy_dirs):
    src = write_jsonl(tmp_path / "in.jsonl", make_records(600, seed=2))
    proc = subprocess.Popen([sys.executable, "-m", "aligninstruct_cli", "translate", str(src), "--model",
                             str(noisy_dirs["bloom"]), "--num-gpus", "2", "--batch-size", "2", "--max-new-tokens",
                             "64", "-o", str(tmp_path / "out.jsonl")], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = [p for p in _children(proc.pid)
                       if "ait-translate" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                       or "spawn" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert len(workers) >= 2, "the workers did not start"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------------------------------ length guard
def test_a_huge_source_is_refused_before_tokenizing_and_a_long_prompt_names_its_record(tmp_path, noisy_dirs):
    records = make_records(3)
    records[1]["src"] = "word " * 20_000  # 100k characters: over 64 characters a token of --max-input-tokens 1024
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = ["translate", str(src), "--model", str(noisy_dirs["bloom"]), "--max-new-tokens", "4", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "in.jsonl:2: field 'src'" in result.output and not out.exists()
    result = runner.invoke(app, args + ["--on-error", "skip"])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 2
    # under the character budget but over the token limit: the record is named
    short = write_jsonl(tmp_path / "short.jsonl", make_records(3))
    result = runner.invoke(app, ["translate", str(short), "--model", str(noisy_dirs["bloom"]), "--max-input-tokens",
                                 "10", "-o", str(tmp_path / "o2.jsonl")])
    assert result.exit_code == 2 and "record 's0': its prompt has" in result.output
    assert "--max-input-tokens 10" in result.output and not (tmp_path / "o2.jsonl").exists()

"""Shared fixtures. One tiny BLOOM + tokenizer per test session, built locally (no hub access)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """Tests run torch on one intra-op thread: on 2 shared cores more threads only add contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _hub_offline_state():
    """`hub.go_offline` switches this process offline for good (right for one command): huggingface_hub's
    switch and the copies transformers and datasets took of it. In-process tests get them back as they were, so
    a later test sees what the user set, not what a test did."""
    import sys

    import huggingface_hub.constants

    from aligninstruct_cli import hub

    copies = [(huggingface_hub.constants, "HF_HUB_OFFLINE")]
    if hasattr(sys.modules.get("transformers.utils.hub"), "_is_offline_mode"):  # transformers 4.x's copy
        copies.append((sys.modules["transformers.utils.hub"], "_is_offline_mode"))
    if "datasets" in sys.modules:
        import datasets.config

        copies += [(datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in copies]
    switched, env = hub._switched_offline, os.environ.get("HF_HUB_OFFLINE")
    yield
    hub._switched_offline = switched
    for owner, name, value in saved:
        setattr(owner, name, value)
    if env is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = env


@pytest.fixture(autouse=True)
def _language_table():
    """A command loads its language file for the rest of its process (`--languages`, the demo's toy languages):
    each in-process test starts from the built-in table (and AIT_LANGUAGES), not from a file an earlier test
    loaded."""
    from aligninstruct_cli.languages import reset_languages

    yield
    reset_languages()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real FLORES-200, OPUS-100 slices, gold alignments); read-only, never copied."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    from aligninstruct_cli.tiny import sample_texts, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-tokenizer")
    train_tokenizer(sample_texts(), out, vocab_size=600)
    return out


@pytest.fixture(scope="session")
def tiny_bloom_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A saved BloomForCausalLM (hidden 64, 2 layers, 4 heads) with its tokenizer: pass it as --model."""
    from transformers import AutoTokenizer

    from aligninstruct_cli.tiny import build_tiny_bloom

    out = tmp_path_factory.mktemp("tiny-bloom")
    build_tiny_bloom(out, AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    return out


# ---------------------------------------------------------------------------------------------- helpers
# Shared by the test modules (`from conftest import ...`).
def noisy_copy(source: Path, out: Path) -> Path:
    """`source` (a tiny model) saved to `out` with larger random weights (seed 0): its greedy outputs differ
    from prompt to prompt and sometimes end early, so batching or padding mistakes show as different text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def jsonl_bytes(*records: dict) -> bytes:
    import orjson

    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    Path(path).write_bytes(jsonl_bytes(*records))
    return Path(path)


def read_jsonl(path: Path) -> list[dict]:
    import orjson

    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]


def flat(text: str) -> str:
    """`text` with rich's box drawing and line wrapping undone: one space between words."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def parallel_record(i, **extra) -> dict:
    """A parallel en→kk record with id `i` (fields in `extra` added or replaced)."""
    return {"id": i, "src_lang": "en", "tgt_lang": "kk", "src": f"a b {i}", "tgt": f"c d {i}", **extra}


class SpyTokenizer:
    """The tiny tokenizer, recording the longest text it was given."""

    def __init__(self, inner):
        self.inner, self.longest = inner, 0

    def __call__(self, texts, **kwargs):
        self.longest = max([self.longest] + [len(t) for t in texts])
        return self.inner(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def perturb(lines: list[str], seed: int = 1) -> list[str]:
    """A derived hypothesis: each reference with a word dropped and two neighbours swapped; a few blank."""
    rng = random.Random(seed)
    out = []
    for k, line in enumerate(lines):
        words = line.split()
        if len(words) > 3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
            del words[rng.randrange(len(words))]
        out.append("" if k % 37 == 5 else " ".join(words))
    return out



@pytest.fixture(scope="module")
def flores_kk(shared_data, tmp_path_factory):
    """FLORES-200 devtest en→kk: source, reference and a perturbed hypothesis as plain-text files."""
    out = tmp_path_factory.mktemp("flores-kk")
    src = (shared_data / "flores200/devtest/eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:300]
    ref = (shared_data / "flores200/devtest/kaz_Cyrl.devtest").read_text(encoding="utf-8").splitlines()[:300]
    files = {"src": src, "ref": ref, "hyp": perturb(ref)}
    for name, lines in files.items():
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: out / f"{name}.txt" for name in files} | {"lines": files}


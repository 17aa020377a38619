"""Fixture builders shared by the tests that train (tests/training/, export/, models/): instruction records and a
learnable tiny model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conftest import write_jsonl

from aligninstruct_cli.instructions.templates import ALIGN_FALSE, ALIGN_INPUT, ALIGN_TRUE, MT_INPUT
from aligninstruct_cli.tiny import sample_texts

REPO = Path(__file__).resolve().parents[1]
AIT = str(Path(sys.executable).with_name("ait"))


def mt_record(i: int, src: str, tgt: str) -> dict:
    return {"id": f"mt{i}", "objective": "mt", "src_lang": "en", "tgt_lang": "kk", "source_id": i,
            "input": MT_INPUT.format(src_name="English", tgt_name="Kazakh", src=src), "output": tgt}


def align_record(i: int, src: str, tgt: str) -> dict:
    return {"id": f"al{i}", "objective": "align", "src_lang": "en", "tgt_lang": "kk", "source_id": i,
            "input": ALIGN_INPUT.format(src_name="English", tgt_name="Kazakh", src=src, tgt=tgt,
                                        src_span=src.split()[0], tgt_span=tgt.split()[-1]),
            "output": ALIGN_TRUE if i % 2 else ALIGN_FALSE}


def make_data(dir: Path, n_mt: int, n_align: int, n_val: int = 4, seed: int = 3) -> dict[str, Path]:
    texts = sample_texts(2 * max(n_mt, n_align, n_val), seed=seed)
    half = len(texts) // 2
    pairs = list(zip(texts[:half], texts[half:]))
    return {"mt": write_jsonl(dir / "mt.jsonl", [mt_record(i, s, t) for i, (s, t) in enumerate(pairs[:n_mt])]),
            "align": write_jsonl(dir / "align.jsonl", [align_record(i, s, t) for i, (s, t) in
                                                       enumerate(pairs[:n_align])]),
            "val": write_jsonl(dir / "val.jsonl", [mt_record(i, s, t) for i, (s, t) in enumerate(pairs[:n_val])])}


def learnable_model(src: Path, out: Path) -> Path:
    """The session's tiny BLOOM with its (tied) embeddings scaled ×10. At the default init (std 0.02,
    hidden 64) the logits can move by only ~1 nat whatever LoRA does; scaled, LoRA visibly learns."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (out / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(src)
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(10)
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for `ait train` subprocesses: one thread per rank, CPU DeepSpeed, offline."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DS_ACCELERATOR="cpu",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONWARNINGS="ignore")
    env.update(extra)
    return env

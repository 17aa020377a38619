"""COMET's batch size: a number as given, or auto (comet's 16 on a CPU; on a GPU the largest batch that
scores the longest segments without running out of memory), named in the signature either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics.comet import COMET, comet_batch_size_option


@pytest.fixture(scope="module")
def tiny_comet(tmp_path_factory) -> Path:
    from aligninstruct_cli.tiny import build_tiny_comet

    return build_tiny_comet(tmp_path_factory.mktemp("tiny-comet")).parents[1]


def test_the_option_takes_a_number_or_auto():
    assert [comet_batch_size_option(v) for v in (8, "32", "AUTO", " auto ")] == ["8", "32", "auto", "auto"]
    for bad in (0, "-3", "big", 2.5):
        with pytest.raises(AitError, match="comet_batch_size must be a positive number or auto"):
            comet_batch_size_option(bad)


def test_auto_on_a_cpu_is_comets_default(tiny_comet):
    scorer = COMET(str(tiny_comet))
    assert scorer.gpus == 0 and scorer.batch_size == 16
    assert "|batch:16|" in scorer.signature("kk")
    assert COMET(str(tiny_comet), batch_size="8").batch_size == 8


def test_auto_on_a_gpu_takes_the_largest_batch_that_fits(tiny_comet, monkeypatch):
    import torch

    scorer = COMET(str(tiny_comet))
    scorer.gpus, scorer.batch_size = 1, "auto"  # as on a GPU
    tried = []

    def predict(samples, batch_size, gpus, progress_bar, **kwargs):
        tried.append((batch_size, len(samples), max(len(s["mt"]) for s in samples)))
        if batch_size > 64:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return type("Prediction", (), {"scores": [0.5] * len(samples)})()

    monkeypatch.setattr(scorer.model, "predict", predict)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    hyps = [("word " * (i % 37 + 1)).strip() for i in range(300)]
    scores = scorer.segment_scores(["s"] * 300, hyps, ["r"] * 300)
    assert scores == [50.0] * 300 and scorer.batch_size == 64
    longest = max(len(h) for h in hyps)
    assert tried[:3] == [(256, 256, longest), (128, 128, longest), (64, 64, longest)]  # the longest segments first
    assert tried[3][:2] == (64, 300)  # then everything at that batch
    assert "|batch:64|" in scorer.signature("kk") and scorer.last_rate > 0
    # few segments: no trial batch larger than needed
    scorer.batch_size, tried[:] = "auto", []
    scorer.segment_scores(["s"] * 40, hyps[:40], ["r"] * 40)
    assert tried[0][0] == 64 and scorer.batch_size == 64


def test_segments_are_scored_in_fixed_chunks(tiny_comet, monkeypatch):
    import aligninstruct_cli.metrics.comet as C

    scorer = COMET(str(tiny_comet))
    calls = []

    def scores(srcs, hyps, refs):
        calls.append(len(hyps))
        return [float(len(h)) for h in hyps]

    monkeypatch.setattr(C, "STREAM_CHUNK", 4)
    monkeypatch.setattr(scorer, "segment_scores", scores)
    hyps = ["x" * i for i in range(10)]
    stats = scorer.segment_stats(["s"] * 10, hyps, ["r"] * 10, ["kk"] * 10)
    assert calls == [4, 4, 2] and stats[:, 0].tolist() == [float(i) for i in range(10)]

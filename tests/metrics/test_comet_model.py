"""COMET scored by ait in plain torch (metrics/comet_model.py): scores equal to unbabel-comet's `predict` on toy
checkpoints (where comet is installed: transformers 4.x), the default scorer of `COMET` for regression models
(with or without comet: this file also runs under transformers 5, `make test-transformers5`), checkpoints read
with torch.load(weights_only=True), and clear errors for what it does not score."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics.comet import COMET
from aligninstruct_cli.metrics.comet_model import CometScorer, UnsupportedCometModel, build_random_comet
from aligninstruct_cli.metrics.comet_modules import sparsemax
from aligninstruct_cli.tiny import build_tiny_comet, sample_texts


@pytest.fixture(scope="module")
def toy_comet(tmp_path_factory) -> Path:
    """The demo's toy checkpoint (`ait demo toy-comet`): a COMET model directory."""
    return build_tiny_comet(tmp_path_factory.mktemp("toy-comet")).parents[1]


def samples(n: int = 30) -> list[dict]:
    texts = sample_texts(3 * n, seed=4)
    return [{"src": texts[i], "mt": texts[n + i][: 3 + 2 * i], "ref": texts[2 * n + i]} for i in range(n)]


def comet_scores(model_dir: Path, batch: list[dict], batch_size: int) -> list[float]:
    comet = pytest.importorskip("comet")
    model = comet.load_from_checkpoint(str(model_dir / "checkpoints" / "model.ckpt"))
    return model.predict(batch, batch_size=batch_size, gpus=0, progress_bar=False).scores


def variant(tmp_path: Path, toy_comet: Path, **kwargs) -> Path:
    """A toy checkpoint over the toy encoder with other hyper-parameters."""
    return build_random_comet(tmp_path / "variant", toy_comet / "encoder", seed=3, **kwargs).parents[1]


def test_ait_scores_equal_comets_predict_on_the_toy_checkpoint(toy_comet):
    batch = samples()
    expected = comet_scores(toy_comet, batch, 4)
    got = CometScorer(toy_comet / "checkpoints" / "model.ckpt").predict(batch, batch_size=4).scores
    assert len(got) == len(expected) == 30
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-5
    assert len({round(s, 6) for s in got}) > 20  # the segments really score differently


@pytest.mark.parametrize("kwargs", [dict(layer_norm=False), dict(layer_transformation="sparsemax"),
                                    dict(pool="max"), dict(pool="cls", hidden_sizes=(24, 8))],
                         ids=["no-layer-norm", "sparsemax", "max-pool", "cls-pool-2-hidden"])
def test_the_hyper_parameters_comet_reads_are_honoured(tmp_path, toy_comet, kwargs):
    model_dir = variant(tmp_path, toy_comet, **kwargs)
    batch = samples(12)
    expected = comet_scores(model_dir, batch, 5)
    got = CometScorer(model_dir / "checkpoints" / "model.ckpt").predict(batch, batch_size=5).scores
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-5


def test_sparsemax_is_entmax_sparsemax():
    import torch

    x = torch.tensor([0.3, 1.2, -0.5, 1.0, 0.95])
    out = sparsemax(x)
    assert out.sum().item() == pytest.approx(1.0) and (out == 0).sum().item() == 2
    entmax = pytest.importorskip("entmax")
    assert torch.allclose(out, entmax.sparsemax(x, dim=0))


def test_scores_come_back_in_input_order_from_length_sorted_batches(toy_comet, monkeypatch):
    scorer = CometScorer(toy_comet / "checkpoints" / "model.ckpt")
    widths = []
    forward = scorer.model.forward

    def spy(src, mt, ref, pad_id):
        widths.append(max(src[0].shape[1], mt[0].shape[1], ref[0].shape[1]))
        return forward(src, mt, ref, pad_id)

    monkeypatch.setattr(scorer.model, "forward", spy)
    batch = samples(30)
    together = scorer.predict(batch, batch_size=7).scores
    assert widths == sorted(widths, reverse=True) and len(widths) == 5  # longest first
    alone = [scorer.predict([s], batch_size=1).scores[0] for s in batch[:6]]
    assert max(abs(a - b) for a, b in zip(together, alone)) <= 1e-5  # in input order


def test_the_metric_scores_with_ait_by_default_and_says_so(toy_comet):
    metric = COMET(str(toy_comet), batch_size="4")
    assert metric.implementation == "ait"
    signature = metric.signature("kk")
    assert signature.startswith(f"model:{toy_comet}|batch:4|ait-comet:") and "|transformers:" in signature
    batch = samples(10)
    got = metric.segment_scores([s["src"] for s in batch], [s["mt"] for s in batch], [s["ref"] for s in batch])
    direct = CometScorer(toy_comet / "checkpoints" / "model.ckpt").predict(batch, batch_size=4).scores
    assert got == [100 * s for s in direct]


def test_unbabel_comet_stays_available_as_a_cross_check(toy_comet):
    pytest.importorskip("comet")
    ours, theirs = COMET(str(toy_comet), batch_size="4"), COMET(str(toy_comet), batch_size="4",
                                                                implementation="unbabel-comet")
    assert theirs.implementation == "unbabel-comet" and "|unbabel-comet:2." in theirs.signature("kk")
    batch = samples(9)
    args = ([s["src"] for s in batch], [s["mt"] for s in batch], [s["ref"] for s in batch])
    assert max(abs(a - b) for a, b in zip(ours.segment_scores(*args), theirs.segment_scores(*args))) <= 1e-3


def test_a_checkpoint_that_needs_more_than_weights_is_refused(tmp_path, toy_comet):
    import torch

    model_dir = tmp_path / "evil"
    shutil.copytree(toy_comet, model_dir)
    checkpoint = model_dir / "checkpoints" / "model.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["callbacks"] = {"run": print}  # any pickled callable: weights_only refuses to rebuild it
    torch.save(state, checkpoint)
    with pytest.raises(AitError, match="refused: the checkpoint holds more than tensors"):
        CometScorer(checkpoint)
    with pytest.raises(AitError, match="refused"):
        COMET(str(model_dir))


def test_weights_that_do_not_fit_and_bad_hparams_are_clean_errors(tmp_path, toy_comet):
    import torch

    model_dir = tmp_path / "cut"
    shutil.copytree(toy_comet, model_dir)
    checkpoint = model_dir / "checkpoints" / "model.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    del state["state_dict"]["estimator.ff.0.weight"]
    torch.save(state, checkpoint)
    with pytest.raises(AitError, match=r"do not fit .*missing: estimator.ff.0.weight"):
        CometScorer(checkpoint)
    hparams = model_dir / "hparams.yaml"
    hparams.write_text(hparams.read_text().replace("pool: avg", "pool: attention"))
    with pytest.raises(AitError, match="unsupported COMET hyper-parameters: pool 'attention'"):
        CometScorer(checkpoint)


def test_model_kinds_ait_does_not_score_go_to_unbabel_comet_or_fail_clearly(tmp_path, toy_comet, monkeypatch):
    import sys

    model_dir = tmp_path / "kiwi"
    shutil.copytree(toy_comet, model_dir)
    hparams = model_dir / "hparams.yaml"
    hparams.write_text(hparams.read_text().replace("class_identifier: regression_metric",
                                                   "class_identifier: unified_metric"))
    with pytest.raises(UnsupportedCometModel, match="a COMET unified_metric with a XLM-RoBERTa encoder"):
        CometScorer(model_dir / "checkpoints" / "model.ckpt")
    monkeypatch.setitem(sys.modules, "comet", None)  # as where unbabel-comet is not installed
    with pytest.raises(AitError, match="needs unbabel-comet .*unified_metric") as caught:
        COMET(str(model_dir))
    assert "pip install 'aligninstruct-cli[comet]'" in str(caught.value)


def test_scores_equal_comets_predict_from_another_environment():
    """ait's scores (e.g. under transformers 5) against comet's own predict run where comet runs (transformers
    4.x): `make test-transformers5` writes the reference with tests/comet_reference.py and sets the variable."""
    import json
    import os

    reference = os.environ.get("AIT_COMET_REFERENCE")
    if not reference:
        pytest.skip("AIT_COMET_REFERENCE not set (make test-transformers5 sets it)")
    data = json.loads((Path(reference) / "reference.json").read_text(encoding="utf-8"))
    got = CometScorer(data["checkpoint"]).predict(data["samples"], batch_size=4).scores
    assert max(abs(a - b) for a, b in zip(got, data["scores"])) <= 1e-5


def test_a_toy_comet_built_with_a_relative_output_scores_from_any_directory(tmp_path, monkeypatch):
    """`ait demo toy-comet -o toy-comet` run in one folder, `ait score --comet-model toy-comet` (or the folder's
    absolute path) from another: the checkpoint names its encoder so that it loads from anywhere, and an
    older checkpoint that names `toy-comet/encoder` (relative to where it was built) is found beside it."""
    import yaml

    from aligninstruct_cli.metrics.comet_model import CometHparams
    from aligninstruct_cli.tiny import build_tiny_comet

    build_dir = tmp_path / "built-here"
    build_dir.mkdir()
    monkeypatch.chdir(build_dir)
    checkpoint = build_tiny_comet(Path("toy-comet"))
    hparams = build_dir / "toy-comet" / "hparams.yaml"
    stored = yaml.safe_load(hparams.read_text())["pretrained_model"]
    assert Path(stored).is_absolute() and Path(stored) == build_dir / "toy-comet" / "encoder"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert CometHparams.read(hparams).pretrained_model == str(build_dir / "toy-comet" / "encoder")
    for old_style in ("toy-comet/encoder", "encoder"):  # as written before, and relative to the model's folder
        data = yaml.safe_load(hparams.read_text())
        data["pretrained_model"] = old_style
        hparams.write_text(yaml.safe_dump(data))
        assert CometHparams.read(hparams).pretrained_model == str(build_dir / "toy-comet" / "encoder")
    assert (build_dir / checkpoint).is_file()
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app
    from conftest import write_jsonl

    hyps = write_jsonl(elsewhere / "hyps.jsonl", [{"id": "a", "src_lang": "en", "tgt_lang": "kk", "src": "a cat",
                                                    "tgt": "a cat", "hyp": "a cat"}])
    result = CliRunner().invoke(app, ["score", str(hyps), "--metrics", "comet", "--comet-model",
                                      str(build_dir / "toy-comet"), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert '"comet"' in result.stdout

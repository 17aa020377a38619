"""COMET through unbabel-comet: the paper's wmt22-comet-da by default, or any local checkpoint.

Scores are reported ×100 (as in the paper's tables). The system score is the mean of the segment
scores, as comet's own `system_score`. A score's signature names the model, the batch size (padding in a
batch moves segment scores in the last digits) and the package versions. A GPU is used when one is
visible (`gpus=1`), else the CPU."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

from aligninstruct_cli.errors import AitError

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"  # the paper's COMET model
DEFAULT_COMET_BATCH_SIZE = 16  # comet's own default
_NOISY_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "comet")


def _quiet_lightning() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*pkg_resources.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def resolve_checkpoint(model: str) -> str:
    """The `model.ckpt` path for a checkpoint file, a COMET model directory or a hub name."""
    path = Path(model).expanduser()
    if path.is_file():
        return str(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "model.ckpt"
        if not ckpt.is_file():
            raise AitError(f"--comet-model {model}: no checkpoints/model.ckpt in this directory")
        return str(ckpt)
    if model.startswith((".", "/", "~")):
        raise AitError(f"--comet-model {model}: no such file or directory")
    from comet import download_model

    try:
        return download_model(model)
    except Exception as exc:  # comet turns every failure into KeyError; hub errors vary
        raise AitError(f"--comet-model {model}: cannot get this COMET model ({exc})",
                       hint="download it once with network access, or pass a local checkpoint "
                            "(DIR or DIR/checkpoints/model.ckpt); --metrics bleu,chrf skips COMET") from None


class CometScorer:
    """A loaded COMET model; `segment_scores` scores (src, hyp, ref) triples."""

    def __init__(self, model: str = DEFAULT_COMET_MODEL, *, batch_size: int = DEFAULT_COMET_BATCH_SIZE,
                 gpus: int | None = None, progress: bool = False):
        if batch_size < 1:
            raise AitError("--comet-batch-size must be at least 1")
        _quiet_lightning()
        try:
            import comet
        except ImportError:
            raise AitError("COMET needs unbabel-comet", hint="pip install 'aligninstruct-cli[comet]', or "
                                                            "--metrics bleu,chrf") from None
        import torch

        _quiet_lightning()  # comet's import configures logging itself
        checkpoint = resolve_checkpoint(model)
        try:
            self.model = comet.load_from_checkpoint(checkpoint)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise AitError(f"--comet-model {model}: cannot load {checkpoint}: {str(exc).splitlines()[0]}") from None
        self.name = model
        self.batch_size = batch_size
        self.gpus = (1 if torch.cuda.is_available() else 0) if gpus is None else gpus
        self.progress = progress
        self.signature = (f"model:{model}|batch:{batch_size}|unbabel-comet:{comet.__version__}|"
                          f"torch:{torch.__version__}|scale:100")

    def segment_scores(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        """COMET ×100 for each segment, in input order."""
        if not hyps:
            return []
        samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = self.model.predict(samples, batch_size=self.batch_size, gpus=self.gpus,
                                            progress_bar=self.progress)
        return [100.0 * s for s in prediction.scores]

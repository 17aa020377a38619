"""COMET through unbabel-comet: wmt22-comet-da by default (ait's choice: the paper does not name its
checkpoint), or any local checkpoint.

Scores are reported ×100 (as in the paper's tables). A segment's statistics are its score; a corpus score
is the mean of its segments' scores, as comet's own `system_score`. A system's segments are scored in one
`predict` call (padding in a batch moves segment scores in the last digits, so batches must not depend on
how the test set is split into directions). A score's signature names the model, the batch size and the
package versions. A GPU is used when one is visible (`gpus=1`), else the CPU."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics.base import Metric
from aligninstruct_cli.options import OptionError, option_ref

if TYPE_CHECKING:
    from aligninstruct_cli.metrics.options import ScoreOptions

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"  # ait's choice: the paper cites COMET but names no checkpoint
DEFAULT_COMET_BATCH_SIZE = 16  # comet's own default
_NOISY_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "comet")


def _quiet_lightning() -> None:
    for logger in _NOISY_LOGGERS:
        logging.getLogger(logger).setLevel(logging.ERROR)
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
            raise OptionError(f"{option_ref('comet_model')} {model}: no checkpoints/model.ckpt in this directory")
        return str(ckpt)
    if model.startswith((".", "/", "~")):
        raise OptionError(f"{option_ref('comet_model')} {model}: no such file or directory")
    from comet import download_model

    try:
        return download_model(model)
    except Exception as exc:  # comet turns every failure into KeyError; hub errors vary
        raise OptionError(f"{option_ref('comet_model')} {model}: cannot get this COMET model ({exc})",
                          hint="download it once with network access, or pass a local checkpoint "
                               "(DIR or DIR/checkpoints/model.ckpt); --metrics bleu,chrf skips COMET") from None


class COMET(Metric):
    """A loaded COMET model as a metric; `segment_scores` scores (src, hyp, ref) triples."""

    name = "comet"
    label = "COMET"
    loads_a_model = True

    def __init__(self, model: str = DEFAULT_COMET_MODEL, *, batch_size: int = DEFAULT_COMET_BATCH_SIZE,
                 gpus: int | None = None, progress: bool = False):
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
            raise OptionError(f"{option_ref('comet_model')} {model}: cannot load {checkpoint}: "
                              f"{str(exc).splitlines()[0]}") from None
        self.model_name = model
        self.batch_size = batch_size
        self.gpus = (1 if torch.cuda.is_available() else 0) if gpus is None else gpus
        self.progress = progress
        self._signature = (f"model:{model}|batch:{batch_size}|unbabel-comet:{comet.__version__}|"
                           f"torch:{torch.__version__}|scale:100")

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> COMET:
        return cls(options.comet_model, batch_size=options.comet_batch_size, progress=progress)

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

    def segment_stats(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str],
                      tgt_langs: Sequence[str]) -> np.ndarray:
        return np.array(self.segment_scores(srcs, hyps, refs), dtype=np.float64).reshape(-1, 1)

    def corpus_score(self, stats: np.ndarray) -> float:
        scores = stats[:, 0].tolist()
        return sum(scores) / len(scores)

    def resample_score(self, summed: np.ndarray, n_segments: int) -> float:
        # the count comes apart, not as a second column of the statistics: numpy sums a two-column array
        # in another order than a one-column one, which would move the last digits
        return float(summed[0]) / n_segments

    def sentence_score(self, row: np.ndarray) -> float:
        return float(row[0])

    def signature(self, tgt_lang: str) -> str:
        return self._signature


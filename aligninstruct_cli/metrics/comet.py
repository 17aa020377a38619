"""COMET: wmt22-comet-da by default (ait's choice: the paper does not name its checkpoint), or any local checkpoint.

Who scores: regression models with an XLM-R encoder (wmt22-comet-da and its kind) are scored by ait itself in
plain torch (`comet_model.py`: weights read with torch.load(weights_only=True), transformers 4.x or 5.x, no
unbabel-comet needed); other model kinds (cometkiwi, xcomet, ranking, other encoders) by unbabel-comet when it is
installed, else an error says so. The signature names the implementation: `ait-comet:VERSION|transformers:..`
or `unbabel-comet:VERSION`.

Scores are reported ×100 (as in the paper's tables). A segment's statistics are its score; a corpus score
is the mean of its segments' scores, as comet's own `system_score`. A system's segments are scored in
`predict` calls of STREAM_CHUNK segments at fixed positions (padding in a batch moves segment scores in the
last digits, so batches must not depend on how the test set is split into directions; the chunks bound
the memory a million segments take). A score's signature names the model, the batch size, the implementation
and the package versions. A GPU is used when one is visible, else the CPU."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from aligninstruct_cli import __version__, console, hub
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.metrics.base import Metric
from aligninstruct_cli.models import oom_error_types
from aligninstruct_cli.options import OptionError, option_ref

if TYPE_CHECKING:
    from aligninstruct_cli.metrics.score_options import ScoreOptions

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"  # ait's choice: the paper cites COMET but names no checkpoint
DEFAULT_COMET_BATCH_SIZE = 16  # comet's own default, and ait's on a CPU
AUTO_BATCH_START = 256  # the largest batch `auto` tries on a GPU
STREAM_CHUNK = 50_000  # segments per predict call: FLORES-200's 48 directions of one system are 48,576
_NOISY_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "comet")


def comet_batch_size_option(value) -> str:
    """The comet_batch_size option: "auto", or a positive whole number (kept as its text)."""
    text = str(value).strip().lower()
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text
    raise OptionError(f"{option_ref('comet_batch_size')} must be a positive number or auto, not {value!r}")


def _quiet_lightning() -> None:
    for logger in _NOISY_LOGGERS:
        logging.getLogger(logger).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning.*")
    warnings.filterwarnings("ignore", category=UserWarning, message=r".*pkg_resources.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def resolve_checkpoint(model: str) -> str:
    """The `model.ckpt` path for a checkpoint file, a COMET model directory or a hub name."""
    from aligninstruct_cli.metrics.comet_model import encoder_location  # lazy: start-up (ait's COMET model, ~3 ms)

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
    fix = (f"pass a local checkpoint as {option_ref('comet_model')} (DIR or DIR/checkpoints/model.ckpt), or "
           f"{option_ref('metrics')} bleu,chrf to score without COMET")
    cached = hub.require(model, what="COMET model", files=("checkpoints/model.ckpt",), fix=fix)
    if cached is not None:  # its encoder's tokenizer (xlm-roberta-large for wmt22) comes from the hub too
        encoder = _encoder_of(cached / "hparams.yaml")
        if encoder and not Path(encoder_location(encoder, cached)).expanduser().exists():
            hub.require(encoder, what=f"the encoder of COMET model {model!r},", fix=fix)
        return str(cached / "checkpoints" / "model.ckpt")
    try:
        from huggingface_hub import snapshot_download  # lazy: huggingface_hub (its downloader takes ~0.3 s to import)

        return str(Path(snapshot_download(model)) / "checkpoints" / "model.ckpt")
    except Exception as exc:  # hub errors vary
        raise OptionError(f"{option_ref('comet_model')} {model}: cannot get this COMET model ({exc})",
                          hint="download it once with network access, or pass a local checkpoint "
                               "(DIR or DIR/checkpoints/model.ckpt); --metrics bleu,chrf skips COMET") from None


def _encoder_of(hparams: Path) -> str | None:
    """The `pretrained_model` a COMET checkpoint's hparams.yaml names (its encoder), if it names one."""
    import yaml  # lazy: yaml (~15 ms at start-up)

    try:
        value = (yaml.safe_load(hparams.read_text(encoding="utf-8")) or {}).get("pretrained_model")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _load_scorer(model: str, checkpoint: str, implementation: str, device: str):
    """ait's scorer (on `device`) for a model it implements (implementation auto or ait), else unbabel-comet's
    model."""
    from aligninstruct_cli.metrics.comet_model import CometScorer, UnsupportedCometModel  # lazy: start-up (~3 ms)

    if implementation not in ("auto", "ait", "unbabel-comet"):
        raise ValueError(f"implementation {implementation!r}")
    if implementation != "unbabel-comet":
        try:
            return CometScorer(checkpoint, device=device)
        except UnsupportedCometModel as exc:
            if implementation == "ait":
                raise
            reason = exc.message
        except AitError as exc:
            raise OptionError(f"{option_ref('comet_model')} {model}: {exc.message}", hint=exc.hint) from None
    else:
        reason = None
    _quiet_lightning()
    try:
        import comet  # lazy: unbabel-comet (optional)
    except ImportError:
        raise AitError(f"COMET model {model} needs unbabel-comet" + (f" ({reason})" if reason else ""),
                       hint="pip install 'aligninstruct-cli[comet]' (it needs transformers<5), or --metrics "
                            "bleu,chrf") from None
    if reason:
        console.info(f"COMET: scored by unbabel-comet {comet.__version__} ({reason})")
    _quiet_lightning()  # comet's import configures logging itself
    try:
        return comet.load_from_checkpoint(checkpoint)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise OptionError(f"{option_ref('comet_model')} {model}: cannot load {checkpoint}: "
                          f"{str(exc).splitlines()[0]}") from None


class COMET(Metric):
    """A loaded COMET model as a metric; `segment_scores` scores (src, hyp, ref) triples."""

    name = "comet"
    label = "COMET"
    loads_a_model = True
    needs_sources = True

    def __init__(self, model: str = DEFAULT_COMET_MODEL, *, batch_size: int | str = "auto",
                 gpus: int | None = None, progress: bool = False, implementation: str = "auto"):
        """`batch_size`: a number, or "auto" (see `ScoreOptions.comet_batch_size`). `implementation`: auto (ait's
        scorer for the models it implements, else unbabel-comet), ait, or unbabel-comet (the cross-check)."""
        checkpoint = resolve_checkpoint(model)  # first: a missing model fails before a slow import
        import torch  # lazy: torch

        self.gpus = (1 if torch.cuda.is_available() else 0) if gpus is None else gpus
        self.model = _load_scorer(model, checkpoint, implementation, device="cuda" if self.gpus else "cpu")
        self.implementation = getattr(self.model, "implementation", "unbabel-comet")
        self.model_name = model
        batch_size = comet_batch_size_option(batch_size)
        # auto on a CPU is comet's default; on a GPU it is found on the first segments scored
        self.batch_size: int | str = (int(batch_size) if batch_size != "auto" else
                                      "auto" if self.gpus else DEFAULT_COMET_BATCH_SIZE)
        self.progress = progress
        if self.implementation == "ait":
            import transformers  # lazy: transformers

            self.versions = (f"ait-comet:{__version__}|transformers:{transformers.__version__}|"
                             f"torch:{torch.__version__}")
        else:
            import comet  # lazy: unbabel-comet (optional)

            self.versions = f"unbabel-comet:{comet.__version__}|torch:{torch.__version__}"
        self.last_rate: float | None = None  # segments/s of the last segment_scores call

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> COMET:
        return cls(options.comet_model, batch_size=options.comet_batch_size, gpus=options.comet_gpus, progress=progress)

    def segment_scores(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        """COMET ×100 for each segment, in input order."""
        if not hyps:
            return []
        samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
        if self.batch_size == "auto":
            self.batch_size = self._fitting_batch(samples)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = self.model.predict(samples, batch_size=self.batch_size, gpus=self.gpus,
                                            progress_bar=self.progress, length_batching=True)
        self.last_rate = len(samples) / max(time.perf_counter() - started, 1e-9)
        console.info(f"COMET: {len(samples):,} segments, {self.last_rate:,.1f} segments/s (batch {self.batch_size})")
        return [100.0 * s for s in prediction.scores]

    def _fitting_batch(self, samples: list[dict]) -> int:
        """The largest batch, from AUTO_BATCH_START down by halves, that scores the longest segments without
        running out of GPU memory (comet's default when none of those does)."""
        import torch  # lazy: torch

        longest = sorted(samples, key=lambda s: -(len(s["src"]) + len(s["mt"]) + len(s["ref"])))
        batch = AUTO_BATCH_START
        while batch > DEFAULT_COMET_BATCH_SIZE and batch // 2 >= len(samples):
            batch //= 2  # no point trying a batch twice the segments there are
        while batch > DEFAULT_COMET_BATCH_SIZE:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.model.predict(longest[:batch], batch_size=batch, gpus=self.gpus, progress_bar=False)
                return batch
            except oom_error_types():
                torch.cuda.empty_cache()
                batch //= 2
        return DEFAULT_COMET_BATCH_SIZE

    def segment_stats(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str],
                      tgt_langs: Sequence[str], more_refs: Sequence[Sequence[str]] = ()) -> np.ndarray:
        stats = np.empty((len(hyps), 1), dtype=np.float64)
        for start in range(0, len(hyps), STREAM_CHUNK):
            end = start + STREAM_CHUNK
            stats[start:end, 0] = self.segment_scores(srcs[start:end], hyps[start:end], refs[start:end])
        return stats

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
        return f"model:{self.model_name}|batch:{self.batch_size}|{self.versions}|scale:100"


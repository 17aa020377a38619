"""The metric interface, in the shape of sacrebleu's: segment statistics → corpus score → signature.

A metric turns every segment (source, hypothesis, reference, target language) into a row of sufficient
statistics, once per system. Everything else is computed from those rows, so scoring and significance
never ask which metric they hold:
- a direction's score is `corpus_score` of its segments' rows;
- a bootstrap resample's score is `resample_score` of the rows summed over the resample;
- `--sentence-level` scores each row on its own (`sentence_score`);
- `signature` / `sentence_signature` say how a score was computed (sacrebleu's format for BLEU and chrF++).

BLEU and chrF++ (`bleu_chrf.py`) keep sacrebleu's own statistics and arithmetic; COMET's (`comet.py`)
statistics are its segment scores and its corpus score their mean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

if TYPE_CHECKING:
    from aligninstruct_cli.metrics.score_options import ScoreOptions


@dataclass(frozen=True)
class CorpusScore:
    score: float
    signature: str


class Metric(ABC):
    name: ClassVar[str]  # as in --metrics and the report's keys
    label: ClassVar[str]  # as in table headers and signature lines
    loads_a_model: ClassVar[bool] = False  # made after the others, so that their checks come before a long load
    multi_reference: ClassVar[bool] = False  # scores a segment against several references (`more_refs`)
    needs_sources: ClassVar[bool] = False  # scores with the source sentence (plain-text hypotheses need --src)
    higher_is_better: ClassVar[bool] = True  # TER: lower is better (a win is a negative difference)

    @classmethod
    def from_options(cls, options: ScoreOptions, *, progress: bool = False) -> Metric:
        """The metric as a `ScoreOptions` configures it (`progress`: show a progress bar where it has one)."""
        return cls()

    @abstractmethod
    def segment_stats(self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str],
                      tgt_langs: Sequence[str], more_refs: Sequence[Sequence[str]] = ()) -> np.ndarray:
        """[n_segments, n_stats] sufficient statistics, one row per segment, in input order. `more_refs`:
        further reference streams, each in the order of `refs` (empty unless `multi_reference`)."""

    @abstractmethod
    def corpus_score(self, stats: np.ndarray) -> float:
        """The score of a corpus given its segments' rows."""

    @abstractmethod
    def resample_score(self, summed: np.ndarray, n_segments: int) -> float:
        """The score of a bootstrap resample of `n_segments` segments whose rows sum to `summed`."""

    @abstractmethod
    def sentence_score(self, row: np.ndarray) -> float:
        """The score of one segment."""

    @abstractmethod
    def signature(self, tgt_lang: str) -> str:
        """How a corpus score into `tgt_lang` is computed."""

    def sentence_signature(self, tgt_lang: str) -> str:
        """How a sentence score into `tgt_lang` is computed."""
        return self.signature(tgt_lang)

"""Paired bootstrap resampling (Koehn 2004), as sacrebleu implements it, for any `Metric`.

For one direction: draw `n_samples` resamples of the segment indices (`rng.choice(n, (n_samples, n))`, as
sacrebleu does), score baseline and system on each resample from their summed segment statistics
(`Metric.resample_score`), and compare:
- diff: system − baseline on the full test set;
- 95% interval of the resampled differences (the 2.5th and 97.5th percentiles, taken the way sacrebleu's
  `estimate_ci` takes them: sorted, index n//40 from each end);
- p: sacrebleu's paired bootstrap p-value, (#{|d_i| − mean|d| > |diff|} + 1) / (n_samples + 1).
With the same indices, p equals sacrebleu's `PairedTest(test_type="bs")` to the last digit, with one
deliberate exception: when the two systems score exactly the same on the full set, sacrebleu's formula
gives p = 1/(n_samples + 1) (all centred differences are 0, none exceeds 0), which would call identical
systems significantly different; ait reports p = 1 there.

For a group (the mean of its directions' scores) each direction is resampled on its own (a stratified
bootstrap) and the group score of resample i is the mean of the directions' scores on resample i.

A system's own score gets the same kind of interval (`interval`): the 2.5th and 97.5th percentiles of its
scores on the same resamples (sacrebleu's `estimate_ci` takes the same two values, and prints their
half-distance around the resamples' mean).

Determinism: each direction draws from `numpy.random.default_rng([seed, crc32(direction key)])`, so a
direction's resamples depend on the seed and its name only, not on which other directions are scored.
Memory: the index matrix of a direction is n_samples × n_segments integers (16 MB for 2,000 segments).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from aligninstruct_cli.metrics.base import Metric

DEFAULT_SAMPLES = 1000  # sacrebleu's default for paired bootstrap
DEFAULT_SEED = 12345  # sacrebleu's default SACREBLEU_SEED
DEFAULT_ALPHA = 0.05  # ait's choice, the conventional level (the paper tested no significance)


@dataclass(frozen=True)
class Comparison:
    baseline: float
    system: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    significant: bool  # p < alpha
    better: bool  # significant and diff > 0 (a "significant win")

    def as_dict(self) -> dict:
        return {"baseline": self.baseline, "system": self.system, "diff": self.diff,
                "ci95": [self.ci_low, self.ci_high], "p": self.p, "significant": self.significant,
                "better": self.better}


def direction_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def resample_indices(n_segments: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n_segments, size=(n_samples, n_segments), replace=True)


def resampled_scores(metric: Metric, stats: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The score of every resample, from the segment statistics summed over the resample."""
    stats = np.asarray(stats, dtype=np.float64)
    return np.array([metric.resample_score(stats[row].sum(0), len(row)) for row in indices], dtype=np.float64)


def interval(samples: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of resampled values: sorted, index n//40 from each end (sacrebleu's)."""
    ordered = np.sort(samples)
    lower = len(ordered) // 40
    return float(ordered[lower]), float(ordered[len(ordered) - lower - 1])


def group_samples(members: Sequence[np.ndarray]) -> np.ndarray:
    """A group's scores on the resamples: the mean of its directions' (sum / k, as `groups.mean`)."""
    return sum(members) / len(members)  # type: ignore[return-value]


def compare(baseline: float, system: float, baseline_samples: np.ndarray, system_samples: np.ndarray,
            alpha: float = DEFAULT_ALPHA) -> Comparison:
    diff = system - baseline
    deltas = np.asarray(system_samples) - np.asarray(baseline_samples)
    n = len(deltas)
    ci_low, ci_high = interval(deltas)
    sample_diffs = np.abs(deltas)  # unsorted, as sacrebleu: the mean below then sums in the same order
    centred = sample_diffs - sample_diffs.mean()
    if diff == 0:
        p = 1.0  # sacrebleu's formula gives 1/(n+1) for two identical systems; no difference is no evidence
    else:
        p = (int(np.sum(centred > abs(diff))) + 1) / (n + 1)
    significant = p < alpha
    return Comparison(baseline, system, diff, ci_low, ci_high, p, significant, significant and diff > 0)


@dataclass
class Resampled:
    """One metric on one direction for baseline and system: full-set scores and resampled scores."""

    baseline: float
    system: float
    baseline_samples: np.ndarray
    system_samples: np.ndarray


def paired_bootstrap(metric: Metric, baseline_stats: np.ndarray, system_stats: np.ndarray,
                     indices: np.ndarray) -> Resampled:
    """`metric` on one direction: baseline and system segment statistics, resampled with the same indices."""
    return Resampled(metric.corpus_score(baseline_stats), metric.corpus_score(system_stats),
                     resampled_scores(metric, baseline_stats, indices), resampled_scores(metric, system_stats, indices))


def group_resampled(members: Sequence[Resampled]) -> Resampled:
    """A group (mean of directions) from its directions' independent resamples."""
    k = len(members)  # sum / k, the same arithmetic as the reported group score (groups.mean)
    return Resampled(sum(m.baseline for m in members) / k, sum(m.system for m in members) / k,
                     group_samples([m.baseline_samples for m in members]),
                     group_samples([m.system_samples for m in members]))


def compare_resampled(r: Resampled, alpha: float = DEFAULT_ALPHA) -> Comparison:
    return compare(r.baseline, r.system, r.baseline_samples, r.system_samples, alpha)

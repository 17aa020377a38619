"""Scoring translations as the paper does: BLEU and chrF++ (sacrebleu; TER too), COMET (unbabel-comet), averaged per
direction group, with paired bootstrap significance. Every metric implements `base.Metric` (segment
statistics → corpus score → signature); `scoring.py` ties the pieces together; `report.py` renders the
results (table, JSON, markdown in the layout of the paper's Tables 1 and 5, TSV)."""

from aligninstruct_cli.metrics.bleu_chrf import BLEU, CHRF, TER
from aligninstruct_cli.metrics.comet import COMET

METRIC_TYPES = {metric.name: metric for metric in (BLEU, CHRF, COMET, TER)}
METRICS = tuple(METRIC_TYPES)
DEFAULT_METRICS = ("bleu", "chrf", "comet")  # the paper's
METRIC_LABELS = {metric.name: metric.label for metric in METRIC_TYPES.values()}

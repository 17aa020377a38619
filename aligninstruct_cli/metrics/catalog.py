"""The metrics ait scores with, by name: a new metric is its module (a `base.Metric`) and one entry here."""

from aligninstruct_cli.metrics.bleu_chrf import BLEU, CHRF, TER
from aligninstruct_cli.metrics.comet import COMET

METRIC_TYPES = {metric.name: metric for metric in (BLEU, CHRF, COMET, TER)}
METRICS = tuple(METRIC_TYPES)
DEFAULT_METRICS = ("bleu", "chrf", "comet")  # the paper's
METRIC_LABELS = {metric.name: metric.label for metric in METRIC_TYPES.values()}

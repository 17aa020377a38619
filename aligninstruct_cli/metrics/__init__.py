"""Scoring translations as the paper does: BLEU and chrF++ (sacrebleu; TER too), COMET (unbabel-comet), averaged per
direction group, with paired bootstrap significance. Every metric implements `base.Metric` (segment
statistics → corpus score → signature) and `catalog.py` names them; `scoring.py` ties the pieces together;
`report.py` renders the results (table, JSON, markdown in the layout of the paper's Tables 1 and 5, TSV)."""

from aligninstruct_cli.metrics.catalog import DEFAULT_METRICS, METRIC_LABELS, METRIC_TYPES, METRICS

__all__ = ["DEFAULT_METRICS", "METRIC_LABELS", "METRIC_TYPES", "METRICS"]

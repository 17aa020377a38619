"""Scoring translations as the paper does: BLEU and chrF++ (sacrebleu), COMET (unbabel-comet), averaged per
direction group, with paired bootstrap significance. `scoring.py` ties the pieces together; `report.py`
renders the results (table, JSON, markdown in the layout of the paper's Tables 1 and 5, TSV)."""

METRICS = ("bleu", "chrf", "comet")
METRIC_LABELS = {"bleu": "BLEU", "chrf": "chrF++", "comet": "COMET"}

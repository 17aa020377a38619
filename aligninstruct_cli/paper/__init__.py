"""The paper's published scores (Mao & Yu, LoResMT 2024: Tables 1–5, 7, 9, 10 and 11–18) as data.

`results.tsv` (transcribed from the paper's text by `paper/transcribe.py`, one score a line): table, model
(bloomz-7b1, bloomz-3b, bloomz-1b1), setting (BLOOMZ+24, de-nl-ru, ar-de-fr-nl-ru-zh; empty for Table 5's
untuned BLOOMZ, shared by both BLOOMZ+3 settings), system (the paper's row: `MT+Align`, `MTInstruct
PROMPT-3`, `MT+Align pivot`), testset (opus100, flores200), group (a direction group such as `en→xx` or
`unseen→seen`, or one direction such as `en-af` or `de-fr`), metric (BLEU, chrF++, COMET) and value (as
printed: two decimals, one for the per-language BLEU and chrF++).

The paper ran each experiment once, in mixed precision on V100s (fp16), with a COMET checkpoint it does not name, on FLORES-200 v1
(ait reads FLORES+); `CAVEATS` says so wherever ait's numbers stand beside these."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

COLUMNS = ("table", "model", "setting", "system", "testset", "group", "metric", "value")
SETTING_24 = "BLOOMZ+24"
SETTING_3 = "de-nl-ru"
SETTING_6 = "ar-de-fr-nl-ru-zh"
# ait's metric keys -> the paper's column names
METRIC_NAMES = {"bleu": "BLEU", "chrf": "chrF++", "comet": "COMET"}
# What differs between the paper's runs and ait's, said under every comparison (what cannot be compared).
CAVEATS = {
    "comet": "COMET: the paper cites Rei et al. (2020) and names no checkpoint; ait's default "
             "(Unbabel/wmt22-comet-da) is ait's choice, so COMET differences are not comparable as such.",
    "flores200": "FLORES: the paper used FLORES-200 (v1, its README's release); ait reads FLORES+ "
                 "(openlanguagedata/flores_plus), whose corrected sentences differ for some languages.",
    "precision": "Precision: the paper used mixed-precision training on V100s (fp16: a V100 has no bf16); ait's "
                 "`precision: auto` is bf16 where the GPU has it.",
    "runs": "Runs: the paper reports one run per system (no intervals); its differences under one point may "
            "be within run-to-run variation.",
}


@dataclass(frozen=True)
class PaperScore:
    table: str
    model: str
    setting: str
    system: str
    testset: str
    group: str
    metric: str
    value: float


@functools.cache
def paper_scores() -> tuple[PaperScore, ...]:
    """Every published score, in the paper's order."""
    text = resources.files(__package__).joinpath("results.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return tuple(PaperScore(**{**row, "value": float(row["value"])}) for row in rows)


def paper_table(table: str | int, *, model: str | None = None, setting: str | None = None) -> list[PaperScore]:
    """One table's scores; `model` / `setting` narrow it (Table 5's untuned row belongs to both settings)."""
    return [s for s in paper_scores() if s.table == str(table) and (model is None or s.model == model)
            and (setting is None or s.setting in (setting, ""))]


def paper_systems(table: str | int, **narrow) -> list[str]:
    """The table's rows (systems), in the paper's order."""
    return list(dict.fromkeys(s.system for s in paper_table(table, **narrow)))


def paper_columns(table: str | int, **narrow) -> list[tuple[str, str]]:
    """The table's (testset, group) columns, in the paper's order."""
    return list(dict.fromkeys((s.testset, s.group) for s in paper_table(table, **narrow)))


def paper_value(table: str | int, system: str, testset: str, group: str, metric: str, **narrow) -> float | None:
    """One published score (metric as the paper names it, BLEU / chrF++ / COMET), or None if the paper has none."""
    for s in paper_table(table, **narrow):
        if (s.system, s.testset, s.group, s.metric) == (system, testset, group, metric):
            return s.value
    return None

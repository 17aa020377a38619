"""`compare_to: paper`: a reproduced table with the paper's published row under each of its rows.

For each system of an experiment table that names the table it reproduces (`paper: {table, model, setting}`),
three rows: ait's score, the paper's, and the difference (ait − paper), for every column (test set, direction
group or direction, metric) the two share. What cannot be compared as such is said under the table: COMET
(another checkpoint), FLORES+ for FLORES-200 v1, the precision, single runs; and which rows or cells the paper
does not have."""

from __future__ import annotations

from typing import Any

from aligninstruct_cli.metrics import METRIC_LABELS
from aligninstruct_cli.metrics.groups import PAPER_TESTSETS
from aligninstruct_cli.paper import CAVEATS, METRIC_NAMES, paper_columns, paper_value

MISSING = "—"
WIDE_COLUMNS = 12  # more compared columns than this: one row per column instead of one per system


def _paper_testset(testset: str | None) -> str | None:
    """opus100.test -> opus100, flores200.devtest -> flores200 (the paper's test sets), else None."""
    return next((p for p in PAPER_TESTSETS if (testset or "").startswith(p)), None)


def columns(report: dict) -> list[tuple[str, str, str]]:
    """(scope, key, paper group) of the report's groups, then its directions (`en-af`)."""
    out = [("groups", g["key"], g["name"]) for g in report["groups"]]
    out += [("directions", d["key"], f"{d['src_lang']}-{d['tgt_lang']}") for d in report["directions"]]
    return out


def compare_rows(report: dict, paper: dict[str, Any], rows: dict[str, str | None]) -> list[dict[str, Any]]:
    """Per system, per shared column and metric: {system, paper_row, scope, key, metric, ait, paper, diff}
    (paper and diff None where the paper has no such cell). Columns the paper's table has none of are left out."""
    narrow = {k: paper[k] for k in ("model", "setting") if k in paper}
    by_name = {s["name"]: s for s in report["systems"]}
    cells = []
    for system, row in rows.items():
        if system not in by_name:
            continue
        for scope, key, group in columns(report):
            testset = _paper_testset(next((x["testset"] for x in report[scope] if x["key"] == key), None))
            for metric in report["metrics"]:
                ours = by_name[system][scope][key][metric]["score"]
                theirs = (paper_value(paper["table"], row, testset, group, METRIC_NAMES.get(metric, metric), **narrow)
                          if row and testset else None)
                cells.append({"system": system, "paper_row": row, "scope": scope, "key": key, "metric": metric,
                              "ait": ours, "paper": theirs, "diff": None if theirs is None else ours - theirs})
    return cells


def render_comparison(report: dict, paper: dict[str, Any], rows: dict[str, str | None],
                      precision: str = "auto") -> str:
    """The markdown block: a table of ait / paper / difference rows per system, then what cannot be compared."""
    cells = compare_rows(report, paper, rows)
    compared = {(c["scope"], c["key"]) for c in cells if c["paper"] is not None}
    cols = [(scope, key) for scope, key, _ in columns(report) if (scope, key) in compared]
    metrics = report["metrics"]
    where = f"Table {paper['table']}" + "".join(f", {paper[k]}" for k in ("model", "setting") if paper.get(k))
    lines = [f"**Beside the paper** ({where}): each row's score (ait), the paper's published score (paper) and "
             "ait − paper.", ""]
    if not cols:
        return "\n".join(lines + ["No column of this table is in the paper's table.", ""])
    index = {(c["system"], c["scope"], c["key"], c["metric"]): c for c in cells}
    if len(cols) > WIDE_COLUMNS:  # the per-language tables: a row per column, ait / paper / difference across
        header = ["System", "Column"] + [f"{label} {METRIC_LABELS[m]}" for m in metrics
                                         for label in ("ait", "paper", "ait − paper")]
        lines += ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
        for system, row in rows.items():
            for scope, key in cols:
                got = [index.get((system, scope, key, m)) for m in metrics]
                if any(got):
                    lines.append("| " + " | ".join([system, key] + [
                        MISSING if c is None or c[f] is None else f"{c[f]:{'+' if f == 'diff' else ''}.2f}"
                        for c in got for f in ("ait", "paper", "diff")]) + " |")
    else:  # a row each for ait, the paper and the difference, a column per test-set column and metric
        header = ["System", ""] + [f"{key} {METRIC_LABELS[m]}" for _, key in cols for m in metrics]
        lines += ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
        for system, row in rows.items():
            got = [index.get((system, scope, key, m)) for scope, key in cols for m in metrics]
            if not any(got):
                continue

            def fmt(field: str, sign: str = "") -> list[str]:
                return [MISSING if c is None or c[field] is None else f"{c[field]:{sign}.2f}" for c in got]

            lines.append("| " + " | ".join([system, "ait"] + fmt("ait")) + " |")
            lines.append("| " + " | ".join(["", f"paper: {row}" if row else "paper: no such row"] + fmt("paper"))
                         + " |")
            lines.append("| " + " | ".join(["", "ait − paper"] + fmt("diff", "+")) + " |")
    lines += ["", "Not comparable as such:", ""]
    notes = []
    if "comet" in metrics:
        notes.append(CAVEATS["comet"])
    if any(_paper_testset(key.split(":")[0]) == "flores200" for _, key in cols):
        notes.append(CAVEATS["flores200"])
    if precision != "fp16":
        notes.append(CAVEATS["precision"] + f" This study's translations: {precision}.")
    notes.append(CAVEATS["runs"])
    paper_directions = {c for c in paper_columns(paper["table"], **{k: paper[k] for k in ("model", "setting")
                                                                    if k in paper}) if "-" in c[1]}
    ours = {(_paper_testset(d["testset"]), f"{d['src_lang']}-{d['tgt_lang']}") for d in report["directions"]}
    if paper_directions - ours:
        notes.append(f"This study has {len(paper_directions & ours)} of the paper's {len(paper_directions)} directions "
                     "in this table: its group averages are over other directions than the paper's.")
    missing_rows = [s for s, r in rows.items() if r is None]
    if missing_rows:
        notes.append(f"The paper's Table {paper['table']} has no row for {', '.join(missing_rows)} (a system of "
                     "this study's own, or a baseline the paper reports in another table).")
    gaps = sorted({c["key"] for c in cells if c["paper"] is None and c["paper_row"] and (c["scope"], c["key"]) in compared})
    if gaps:
        notes.append(f"Cells the paper's text does not have: {', '.join(gaps)} ({MISSING}).")
    others = [key for scope, key, _ in columns(report) if (scope, key) not in compared]
    if others:
        notes.append(f"Columns of this study the paper's table does not have: {len(others)} "
                     f"({', '.join(others[:6])}{', ...' if len(others) > 6 else ''}).")
    return "\n".join(lines + [f"- {n}" for n in notes] + [""])

"""Rendering a score report: `table` (plain text), `json`, `markdown` (the paper's Tables 1 and 5), `tsv`.

Markdown, by layout:
- `ait`: one row per system (the baseline first), one column group per direction group (per test set when
  records carry one; `overall` where there are zero-shot directions), BLEU / chrF++ / COMET inside each
  group, two decimals as in the paper;
- `table1`: the same shape with the paper's Table 1 groups and test-set order;
- `table5`: transposed as the paper's Table 5: one row per group (`overall` included), one column per
  system and metric, with intervals;
- `languages`: the paper's Tables 11–13: a row per system and language, a column per test set, side
  (en→xx, xx→en) and metric, then the groups (the paper's `avg.`);
- `directions`: the paper's Tables 14–18: a row per direction, then per group, a column per system and
  metric.
Every cell carries the score's 95% bootstrap interval (`18.80 [17.90, 19.70]`). A score that is a
significant win over the baseline (paired bootstrap, p < alpha, positive difference) gets a `†`. Notes on
the marks and intervals, then the signatures, follow the table."""

from __future__ import annotations

import io
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from aligninstruct_cli.metrics.catalog import METRIC_LABELS
from aligninstruct_cli.metrics.groups import GROUP_ORDER, paper_testset_rank

FORMATS = ("table", "json", "markdown", "tsv")
LAYOUTS = ("ait", "table1", "table5", "languages", "directions")
PAPER_LAYOUTS = ("table1", "table5")  # OPUS-100 before FLORES-200 in the groups' order (every layout has intervals)
# without --groups; ait's own layout reports every group, `overall` included (formed only where zero-shot
# directions exist)
LAYOUT_GROUPS = {"ait": GROUP_ORDER, "table1": ("en→xx", "xx→en"), "table5": GROUP_ORDER,
                 "languages": ("en→xx", "xx→en"), "directions": GROUP_ORDER}
WIN_MARK = "†"


def dumps_report(report: dict) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"


DEFAULT_WIDTH = 2  # decimals of a printed score (--width)


def render(report: dict, fmt: str, layout: str = "ait", *, width: int | None = None, score_only: bool = False) -> str:
    """The report as `fmt`; `width`: decimals of printed scores (table, markdown, score-only); `score_only`:
    only the scores, one a line (sacrebleu's -b), whatever `fmt`."""
    width = DEFAULT_WIDTH if width is None else width
    if score_only:
        return render_scores_only(report, width)
    if fmt == "json":
        return dumps_report(report).decode("utf-8")
    if fmt == "markdown":
        return render_markdown(report, layout, width)
    if fmt == "tsv":
        return render_tsv(report)
    if fmt == "table":
        return render_table(report, width)
    raise ValueError(fmt)


def _label(report: dict, metric: str) -> str:
    """The metric's label in this report (chrF's follows its word order), else the default one."""
    return (report.get("labels") or {}).get(metric) or METRIC_LABELS[metric]


def _score_text(value: dict, width: int) -> str:
    """`20.31`, with --confidence as sacrebleu prints it: `20.31 (μ = 20.29 ± 0.84)`."""
    text = f"{value['score']:.{width}f}"
    if "confidence_mean" in value:
        text += f" (μ = {value['confidence_mean']:.{width}f} ± {value['confidence_var']:.{width}f})"
    return text


def _cell(system: dict, scope: str, key: str, metric: str, width: int = DEFAULT_WIDTH) -> str:
    """`12.28† [11.91, 12.66]`: the score (`†`: a significant win) and its own 95% interval, which every layout
    shows (`12.28†` for a score without one)."""
    value = system[scope][key][metric]
    sig = system.get("significance", {}).get(scope, {}).get(key, {}).get(metric)
    cell = _score_text(value, width) + (WIN_MARK if sig and sig["better"] else "")
    if "ci95" in value:
        cell += f" [{value['ci95'][0]:.{width}f}, {value['ci95'][1]:.{width}f}]"
    return cell


def render_scores_only(report: dict, width: int = DEFAULT_WIDTH) -> str:
    """sacrebleu's -b: one score a line, per system, direction and metric (in the order of --metrics)."""
    return "".join(_score_text(scores[metric], width) + "\n" for system in report["systems"]
                   for scores in system["directions"].values() for metric in report["metrics"])


def _signature_lines(report: dict) -> list[str]:
    lines = []
    for metric in report["metrics"]:
        sigs: list[str] = []
        for system in report["systems"][:1]:
            for scores in system["directions"].values():
                if scores[metric]["signature"] not in sigs:
                    sigs.append(scores[metric]["signature"])
        lines += [f"{_label(report, metric)} signature: {s}" for s in sigs]
    return lines + ([seen_line(report["seen_list"])] if "seen_list" in report else [])


def seen_line(seen: dict | None) -> str:
    """Which languages the seen/unseen groups count as seen."""
    if seen is None:
        return "Seen languages: none declared (seen/unseen groups omitted)"
    n = len(seen["codes"])
    return f"Seen languages: {seen['name']} ({n} code{'' if n == 1 else 's'})"


def _significance_note(report: dict) -> str | None:
    for system in report["systems"]:
        sig = system.get("significance")
        if sig:
            return (f"{WIN_MARK} significantly better than {sig['baseline']} (paired bootstrap resampling, "
                    f"{sig['n_samples']} resamples, seed {sig['seed']}, p < {sig['alpha']})")
    return None


def _interval_note(report: dict) -> str | None:
    ci = report.get("intervals")
    if not ci:
        return None
    return (f"[low, high]: {ci['level']:.0%} bootstrap interval of the score (2.5th and 97.5th percentiles of its "
            f"scores on {ci['n_samples']} resamples of each direction, seed {ci['seed']}; a group's resample is "
            "the mean of its directions')")


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
            + ["| " + " | ".join(cells) + " |" for cells in rows])


def render_markdown(report: dict, layout: str = "ait", width: int = DEFAULT_WIDTH) -> str:
    metrics = report["metrics"]
    groups = [g["key"] for g in report["groups"]]
    systems = report["systems"]
    if layout == "table5":  # a row per group, a column per system and metric
        header = ["Group"] + [f"{s['name']} {_label(report, m)}" for s in systems for m in metrics]
        rows = [[g] + [_cell(s, "groups", g, m, width) for s in systems for m in metrics] for g in groups]
    elif layout == "directions":  # a row per direction then per group, a column per system and metric
        header = ["Direction"] + [f"{s['name']} {_label(report, m)}" for s in systems for m in metrics]
        rank = {g["key"]: paper_testset_rank(g["testset"] or "") for g in report["groups"] + report["directions"]}
        rows = [[key] + [_cell(s, scope, key, m, width) for s in systems for m in metrics]
                for scope, keys in (("directions", [d["key"] for d in report["directions"]]), ("groups", groups))
                for key in sorted(keys, key=lambda k: rank[k])]  # OPUS-100 first, as the paper (stable sort)
    elif layout == "languages":
        header, rows = _language_rows(report, width)
    else:  # ait and table1: a row per system, a column per group and metric
        header = ["System"] + [f"{g} {_label(report, m)}" for g in groups for m in metrics]
        rows = [[s["name"]] + [_cell(s, "groups", g, m, width) for g in groups for m in metrics] for s in systems]
    lines = _markdown_table(header, rows) + [""]
    for note in (_significance_note(report), _interval_note(report)):
        if note:
            lines += [note, ""]
    lines += [f"- {line}" for line in _signature_lines(report)]
    return "\n".join(lines) + "\n"


def _language_rows(report: dict, width: int = DEFAULT_WIDTH) -> tuple[list[str], list[list[str]]]:
    """Tables 11–13: a row per system and non-English language (then the groups, `avg.`), a column per test set,
    side (en→xx: English the source) and metric; a direction the test set lacks is an empty cell."""
    metrics = report["metrics"]
    testsets = sorted(dict.fromkeys(d["testset"] or "" for d in report["directions"]), key=paper_testset_rank)
    by_lang: dict[tuple[str, str, str], str] = {}  # (testset, side, language) -> direction key
    for d in report["directions"]:
        if "en" in (d["src_lang"], d["tgt_lang"]):
            side, lang = ("en→xx", d["tgt_lang"]) if d["src_lang"] == "en" else ("xx→en", d["src_lang"])
        else:
            side, lang = "en→xx", f"{d['src_lang']}-{d['tgt_lang']}"
        by_lang[(d["testset"] or "", side, lang)] = d["key"]
    languages = list(dict.fromkeys(lang for (_, _, lang) in by_lang))
    columns = [(t, side) for t in testsets for side in ("en→xx", "xx→en")
               if any(k[:2] == (t, side) for k in by_lang)]
    header = ["System", "Language"] + [f"{f'{t}:' if t else ''}{side} {_label(report, m)}" for t, side in columns
                                       for m in metrics]
    group_key = {(g["testset"] or "", g["name"]): g["key"] for g in report["groups"]}
    rows = []
    for s in report["systems"]:
        for lang in languages:
            rows.append([s["name"], lang] + [_cell(s, "directions", by_lang[(t, side, lang)], m, width)
                                             if (t, side, lang) in by_lang else "" for t, side in columns for m in metrics])
        rows.append([s["name"], "avg."] + [_cell(s, "groups", group_key[(t, side)], m, width) if (t, side) in group_key else ""
                                           for t, side in columns for m in metrics])
    return header, rows


TSV_COLUMNS = ("system", "role", "scope", "key", "metric", "score", "n", "signature", "baseline", "diff",
               "ci95_low", "ci95_high", "p", "significant")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_tsv(report: dict) -> str:
    n_by_direction = {d["key"]: d["n"] for d in report["directions"]}
    n_by_group = {g["key"]: sum(n_by_direction[d] for d in g["directions"]) for g in report["groups"]}
    rows = ["\t".join(TSV_COLUMNS)]
    for system in report["systems"]:
        sig = system.get("significance", {})
        for scope, sizes in (("directions", n_by_direction), ("groups", n_by_group)):
            for key, scores in system[scope].items():
                for metric, value in scores.items():
                    cmp_ = sig.get(scope, {}).get(key, {}).get(metric)
                    signature = value.get("signature") or " ; ".join(value.get("signatures", []))
                    rows.append("\t".join(_fmt(v) for v in (
                        system["name"], system["role"], scope[:-1], key, metric, value["score"], sizes[key],
                        signature, sig.get("baseline") if cmp_ else None, cmp_ and cmp_["diff"],
                        cmp_ and cmp_["ci95"][0], cmp_ and cmp_["ci95"][1], cmp_ and cmp_["p"],
                        cmp_ and cmp_["significant"])))
    return "\n".join(rows) + "\n"


def render_table(report: dict, width: int = DEFAULT_WIDTH) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, width=160, color_system=None, force_terminal=False, highlight=False)
    metrics = report["metrics"]
    has_baseline = any("significance" in s for s in report["systems"])
    for scope, title in (("groups", "Direction groups (mean over directions)"), ("directions", "Directions")):
        table = Table(title=title, title_justify="left")
        table.add_column("system")
        table.add_column("group" if scope == "groups" else "direction")
        for metric in metrics:
            table.add_column(_label(report, metric), justify="right")
            if has_baseline:
                table.add_column(f"Δ {_label(report, metric)} [95% CI] p", justify="right")
        for system in report["systems"]:
            label = system["name"] + (" (baseline)" if system["role"] == "baseline" else "")
            for key in system[scope]:
                row = [label, key]
                for metric in metrics:
                    row.append(_cell(system, scope, key, metric, width))
                    if has_baseline:
                        c = system.get("significance", {}).get(scope, {}).get(key, {}).get(metric)
                        row.append(f"{c['diff']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] {c['p']:.3f}"
                                   if c else "")
                table.add_row(*row)
        out.print(table)
    for note in (_significance_note(report), _interval_note(report)):
        if note:
            out.print(note)
    for line in _signature_lines(report):
        out.print(line)
    return buffer.getvalue()

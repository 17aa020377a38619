"""Sections of report.md beyond the tables: what a table's column prefixes mean and how many records each
direction has, the health checks, how long each step took, and a few sample translations per direction
beside their source and reference. Each reads only finished steps' outputs."""

from __future__ import annotations

import time
from typing import Any

from aligninstruct_cli.experiment.health import check_step, health_options
from aligninstruct_cli.experiment.live import duration, step_times
from aligninstruct_cli.experiment.steps import DONE, step_state
from aligninstruct_cli.io import read_records
from aligninstruct_cli.metrics import METRIC_LABELS

SAMPLES = 3  # sample translations per direction
SAMPLE_CHARS = 160  # longer texts are cut (with …)

GROUP_MEANINGS = {
    "en→xx": "from English into the other languages",
    "xx→en": "from the other languages into English",
    "seen→seen": "between two languages the base model saw in pre-training (neither English)",
    "seen→unseen": "from a seen language into an unseen one",
    "unseen→seen": "from an unseen language into a seen one",
    "unseen→unseen": "between two unseen languages",
    "overall": "every zero-shot direction (neither side English), averaged over directions",
    "en→seen": "from English into the seen languages",
    "en→unseen": "from English into the unseen languages",
    "seen→en": "from the seen languages into English",
    "unseen→en": "from the unseen languages into English",
}


def _cell(text: Any, limit: int = SAMPLE_CHARS) -> str:
    text = " ".join(str(text if text is not None else "").split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;") or "(empty)"


def table_notes(report: dict[str, Any]) -> list[str]:
    """Under a table: each column prefix (a direction group, `TESTSET:` before it) in words, with its directions
    and their n (records scored)."""
    n = {d["key"]: d["n"] for d in report.get("directions", [])}
    lines = ["Column prefixes (a group's score is the mean of its directions' scores; n = records scored):", ""]
    for group in report.get("groups", []):
        testset = group.get("testset")
        meaning = GROUP_MEANINGS.get(group.get("name", ""), group.get("name", ""))
        directions = ", ".join(f"{d.split(':', 1)[-1]} (n {n.get(d, '?')})" for d in group.get("directions", []))
        lines.append(f"- `{group['key']}`: " + (f"test set {testset}, " if testset else "") + f"{meaning}: "
                     + (directions or "no directions"))
    labels = [METRIC_LABELS.get(m, m) for m in report.get("metrics", [])]
    if labels:
        lines.append(f"- then the metric: {', '.join(f'`{label}`' for label in labels)}"
                     + (" (COMET × 100)" if "comet" in report.get("metrics", []) else ""))
    lines.append("")
    return lines


def single_run_note(exp: Any, name: str, table: Any) -> list[str]:
    """Under a table of single runs with a trained row: its numbers are one draw. Runs repeat exactly on one
    machine, not across machines (CPU and GPU kernels differ), and another seed moves them; on toy data
    (the demo) by several points, more than the paper's effects. Per-seed tables and untrained rows only:
    no note (the table over seeds says the spread)."""
    per_seed = {t for _, runs in exp.seed_tables.values() for t in runs}
    rows = table.systems + ([table.baseline] if table.baseline else [])
    if name in per_seed or not any(exp.systems[s].curriculum for s in rows if s in exp.systems):
        return []
    size = ("on toy data this small, by several points: a single run may land on either side of a difference "
            "(docs/demo.md)" if exp.toy is not None else "by up to a point or more")
    return [f"One run per system: these numbers repeat on this machine, but another seed or another machine "
            f"(whose CPU or GPU kernels differ) moves them, {size}. `seeds: [0, 1, 2]` on a system gives mean ± sd "
            "(docs/experiment.md).", ""]


def health_section(graph: Any, memo: dict[str, str | None] | None = None) -> tuple[list[str], int]:
    """The Health section: every check of every finished step (experiment/health.py); and how many failed."""
    options = health_options(graph)
    memo = {} if memo is None else memo
    rows, failed = [], 0
    for step in graph:
        if step.kind not in ("train", "translate", "score") or step_state(graph, step.key, memo) != DONE:
            continue
        for finding in check_step(graph, step.key, options):
            failed += finding.failed
            rows.append(f"| {_cell(finding.step, 80)} | {'**warning**' if finding.failed else 'ok'} | "
                        f"{finding.check} | {_cell(finding.detail, 400)} |")
    md = ["## Health", ""]
    if not rows:
        return md + ["No finished training, translation or score step to check yet.", ""], 0
    md += [(f"**{failed} check(s) failed**: these results may not mean what they seem to." if failed else
            "Every check passed.") + " Thresholds: the config's `health:` section (docs/experiment.md, Health "
           "checks); `ait experiment run --strict` fails a step whose check fails.", "",
           "| step | result | check | numbers |", "|---|---|---|---|", *rows, ""]
    return md, failed


def durations_section(graph: Any, memo: dict[str, str | None] | None = None) -> list[str]:
    """When each step that ran started and how long it took (from its done.json / failed.json)."""
    rows, total = [], 0.0
    memo = {} if memo is None else memo
    for step in graph:
        started, seconds = step_times(graph, step.key)
        if seconds is None:
            continue
        total += seconds
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started is not None else ""
        rows.append(f"| {_cell(', '.join(step.names), 120)} | {step_state(graph, step.key, memo)} | {when} | "
                    f"{duration(seconds)} | {seconds:.1f} |")
    if not rows:
        return []
    return ["## Step durations", "", f"Sum of the steps' times: {duration(total)} (steps run at once overlap).", "",
            "| step | state | started | duration | seconds |", "|---|---|---|---:|---:|", *rows, ""]


def samples_section(graph: Any, memo: dict[str, str | None] | None = None) -> list[str]:
    """The first SAMPLES records of each direction: source, reference and every system's hypothesis."""
    first: dict[str, dict[str, Any]] = {}  # the first system's records: their source, reference and direction
    outputs: dict[str, dict[str, Any]] = {}  # every system's hypotheses by id (not its whole records)
    memo = {} if memo is None else memo
    for name in graph.exp.systems:
        key = graph.by_name.get(f"translate/{name}")
        if key is None or step_state(graph, key, memo) != DONE:
            continue
        records = read_records(str(graph.output(key)), "hypothesis")
        if not outputs:
            first = {str(r["id"]): r for r in records}
            outputs[name] = {rid: r.get("hyp") for rid, r in first.items()}
        else:
            outputs[name] = {str(r["id"]): r.get("hyp") for r in records}
    if not outputs:
        return []
    chosen: dict[str, list[str]] = {}
    for rid, rec in first.items():
        direction = f"{rec.get('src_lang')}→{rec.get('tgt_lang')}"
        picked = chosen.setdefault(direction, [])
        if len(picked) < SAMPLES and all(rid in o for o in outputs.values()):
            picked.append(rid)
    md = ["## Sample translations", "",
          f"The first {SAMPLES} records of each direction, as every system translated them.", ""]
    for direction, ids in chosen.items():
        md += [f"### {direction}", "", "| id | | text |", "|---|---|---|"]
        for rid in ids:
            rec = first[rid]
            md.append(f"| `{_cell(rid, 60)}` | source | {_cell(rec.get('src'))} |")
            if rec.get("tgt") is not None:
                md.append(f"| | reference | {_cell(rec.get('tgt'))} |")
            for name, out in outputs.items():
                md.append(f"| | **{_cell(name, 60)}** | {_cell(out[rid])} |")
        md.append("")
    return md

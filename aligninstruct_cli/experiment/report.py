"""`ait experiment report`: OUTPUT/report.md with the experiment's tables (markdown, TSV and JSON in
OUTPUT/tables/, rendered by `metrics.report` from each table's `ait score` JSON: the paper's layouts,
intervals and significance marks against the baseline), the training and validation loss of every
trained system and stage (loss.png, from each run's metrics.jsonl: experiment/plots.py), the health checks,
sample translations and step durations (experiment/report_sections.py), and the probe's Δ plot when the
config asks for one. What is not made yet is listed, not invented; a table whose score step is stale (its
outputs, or the translations it scored, changed since it was done) is refused, exit 2, naming the step: a
table is built only from verified-complete outputs. A corrupt file is one error line naming it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.graph import Graph, link_name
from aligninstruct_cli.experiment.paper_rows import paper_rows
from aligninstruct_cli.experiment.paths import inside_output, read_json_file
from aligninstruct_cli.experiment.plots import plot_losses
from aligninstruct_cli.experiment.report_sections import (durations_section, health_section, samples_section,
                                                          single_run_note, table_notes)
from aligninstruct_cli.experiment.seeds import mean_report, over_seeds, render_over_seeds
from aligninstruct_cli.experiment.steps import DONE, STALE, status_rows, step_state, step_status
from aligninstruct_cli.metrics.report import dumps_report, render
from aligninstruct_cli.paper.compare import render_comparison


def _write(path: Path, data: bytes) -> None:
    """Atomically, and only when the bytes differ (a rerun leaves the files as they are)."""
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _done(graph: Graph, name: str, memo: dict | None = None) -> Path | None:
    key = graph.by_name.get(name)
    return graph.output(key) if key and step_state(graph, key, memo) == DONE else None


def _scores(graph: Graph, name: str, memo: dict) -> Path | None:
    """A table's verified scores.json, None when its score step has not run; a stale one is refused."""
    key = graph.by_name[f"score/{name}"]
    state, why = step_status(graph, key, memo)
    if state == STALE and (graph.directory(key) / "done.json").exists():
        raise AitError(f"table {name}: step score/{name} is stale ({why}); no table is made from outputs "
                       "that changed after they were checked", hint="run `ait experiment run` again: it redoes the "
                       "step and what it needs")
    return graph.output(key) if state == DONE else None


def write_tables(graph: Graph, memo: dict | None = None) -> dict[str, dict[str, Any]]:
    """OUTPUT/tables/<name>.{md,tsv,json} for each table whose score is done: {name: {files, markdown}}.
    `memo`: as for `steps.step_state`."""
    exp = graph.exp
    out = Path(exp.output) / "tables"
    tables: dict[str, dict[str, Any]] = {}
    memo = {} if memo is None else memo
    for name, table in exp.tables.items():
        scores = _scores(graph, name, memo)
        if scores is None:
            continue
        inside_output(exp.output, out)
        out.mkdir(parents=True, exist_ok=True)
        report = read_json_file(scores)
        if not isinstance(report, dict) or not isinstance(report.get("systems"), list):
            raise AitError(f"{scores}: not an `ait score` report")
        layout = {**exp.score, **table.score}.get("layout", "ait")
        markdown = render(report, "markdown", layout)
        files = {"markdown": out / f"{name}.md", "TSV": out / f"{name}.tsv", "JSON": out / f"{name}.json"}
        _write(files["markdown"], markdown.encode())
        _write(files["TSV"], render(report, "tsv").encode())
        _write(files["JSON"], dumps_report(report))
        tables[name] = {"files": files, "markdown": markdown, "report": report}
        if exp.compare_to == "paper" and table.paper is not None:
            comparison = paper_comparison(graph, table, report)
            files["beside the paper"] = out / f"{name}.paper.md"
            _write(files["beside the paper"], comparison.encode())
            tables[name]["markdown"] += "\n" + comparison
    return tables


def paper_comparison(graph: Graph, table: Any, report: dict[str, Any]) -> str:
    """`compare_to: paper`: the paper's rows under the table's rows, with the differences (paper/compare.py)."""
    exp = graph.exp
    rows = paper_rows(table)
    systems = [exp.systems[exp.seed_runs[s][0] if s in exp.seed_runs else s] for s in rows]
    precisions = {str({**exp.translate, **s.translate}.get("precision", "auto")) for s in systems}
    return render_comparison(report, table.paper, rows, "/".join(sorted(precisions)))


def seed_tables_markdown(graph: Graph, tables: dict[str, dict[str, Any]], out: Path) -> list[str]:
    """The tables of seeded systems over their seeds (mean ± sd, Welch's t-test: experiment/seeds.py), written
    to OUTPUT/tables/<name>.{md,json} once every seed's table is made; their report lines."""
    exp = graph.exp
    md: list[str] = []
    for name, (table, per_seed) in exp.seed_tables.items():
        md += [f"### {name} (over seeds)", ""]
        if not all(t in tables for t in per_seed):
            md += [f"Not made yet: it needs every seed's table ({', '.join(per_seed)}).", ""]
            continue
        reports = [tables[t]["report"] for t in per_seed]
        summary = over_seeds(table, reports, exp.seed_runs)
        markdown = render_over_seeds(summary)
        if exp.compare_to == "paper" and table.paper is not None:  # the seeds' mean beside the paper
            markdown += "\n" + paper_comparison(graph, table, mean_report(reports, exp.seed_runs))
        _write(out / "tables" / f"{name}.md", markdown.encode())
        _write(out / "tables" / f"{name}.json", dumps_report(summary))
        md += [f"Rows: {', '.join(([table.baseline] if table.baseline else []) + table.systems)}; one table per "
               f"seed below ({', '.join(per_seed)}). Files: [markdown](tables/{name}.md) · [JSON](tables/{name}.json)",
               "", markdown.strip(), ""]
    return md


def training_runs(graph: Graph, memo: dict | None = None) -> dict[str, Path]:
    """system -> its finished run directory (systems that train)."""
    runs = {}
    memo = {} if memo is None else memo
    for name in graph.exp.systems:
        run = _done(graph, f"train/{name}", memo)
        if run is not None:
            runs[name] = run
    return runs


def _browse(kind: str, name: str) -> str:
    """The step's readable link under OUTPUT (`train/MTInstruct`, see steps.link_names), as a markdown target."""
    return f"{kind}/{link_name(f'{kind}/{name}')}".replace(" ", "%20")


def _run_summary(run: Path) -> tuple[str, str]:
    manifest = read_json_file(run / "run.json", {})
    result = (manifest.get("result") if isinstance(manifest, dict) else None) or {}
    chosen = result.get("chosen_lr")
    losses = result.get("final_val_loss") or {}
    val = losses.get(f"{chosen:g}") if isinstance(chosen, (int, float)) else None
    return (f"{chosen:g}" if isinstance(chosen, (int, float)) else "", f"{val:.4f}" if isinstance(val, float) else "")


def tables_markdown(graph: Graph, tables: dict[str, dict[str, Any]], out: Path) -> list[str]:
    """The Tables section: the tables over seeds, then each table (or that it is not made yet) with its files."""
    md = ["## Tables", ""]
    md += seed_tables_markdown(graph, tables, out)
    for name, table in graph.exp.tables.items():
        md += [f"### {name}", ""]
        if name not in tables:
            md += ["Not made yet: its scores need every system's translations.", ""]
            continue
        files = tables[name]["files"]
        baseline = f"; significance against **{table.baseline}**" if table.baseline else ""
        md += [f"Rows: {', '.join(table.systems)}{baseline}. Files: "
               + " · ".join(f"[{label}]({os.path.relpath(p, out)})" for label, p in files.items()), "",
               tables[name]["markdown"].strip(), "", *table_notes(tables[name]["report"]),
               *single_run_note(graph.exp, name, table)]
    return md


def systems_markdown(graph: Graph, runs: dict[str, Path]) -> list[str]:
    """The Systems section: each system's model, curriculum, chosen learning rate, final validation loss, run."""
    md = ["## Systems", "", "| system | model | curriculum | chosen lr | final validation loss | run |",
          "|---|---|---|---:|---:|---|"]
    for name, system in graph.exp.systems.items():
        model = system.model if isinstance(system.model, str) else (
            f"system {system.model['system']}" if "system" in system.model else "toy model")
        curriculum = system.curriculum if isinstance(system.curriculum, str) else (
            ",".join("+".join(s) if isinstance(s, list) else str(s) for s in system.curriculum)
            if system.curriculum else "— (not trained)")
        lr, val = _run_summary(runs[name]) if name in runs else ("", "")
        link = f"[train/{name}]({_browse('train', name)})" if name in runs else (
            "" if system.curriculum is None else "not trained yet")
        md.append(f"| {name} | {model} | {curriculum} | {lr} | {val} | {link} |")
    return md + [""]


def probe_markdown(graph: Graph, out: Path, memo: dict | None = None) -> tuple[list[str], bool]:
    """The Probe section (its plot copied to OUTPUT/probe.png when the config asks for it); whether it is made."""
    md = ["## Probe", ""]
    compare = _done(graph, "probe/compare", memo)
    if compare is None:
        return md + ["Not made yet.", ""], False
    result = read_json_file(compare)
    header = [run["label"] for run in result["runs"]] + [d["name"] for d in result["deltas"]]
    md += ["Layer-wise cosine similarity of the parallel sentences' mean-pooled hidden states; "
           + ", ".join(f"{d['name']} = {d['to']} − {d['from']}" for d in result["deltas"]) + ".", "",
           "| layer | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for i, layer in enumerate(result["layers"]):
        cells = [f"{run['cosine'][i]:.4f}" for run in result["runs"]] + [
            f"{d['delta'][i]:+.4f}" for d in result["deltas"]]
        md.append(f"| {layer} | " + " | ".join(cells) + " |")
    md.append("")
    plot = compare.parent / "probe.png"
    if graph.exp.probe.plot and plot.exists():
        _write(out / "probe.png", plot.read_bytes())
        md += ["![probe](probe.png)", ""]
    return md, True


def write_report(graph: Graph) -> tuple[Path, list[str]]:
    """Write OUTPUT/report.md (and the tables and plots it links); returns its path and what is missing."""
    exp = graph.exp
    out = Path(exp.output)
    out.mkdir(parents=True, exist_ok=True)
    for path in (out / "report.md", out / "loss.png", out / "probe.png", out / "tables"):
        inside_output(out, path)
    memo: dict[str, str | None] = {}  # each step verified once for the whole report (nothing runs meanwhile)
    tables = write_tables(graph, memo)
    runs = training_runs(graph, memo)
    has_loss = plot_losses(graph, runs, out / "loss.png")
    missing = [f"table {name}" for name in exp.tables if name not in tables]
    rows = status_rows(graph, memo=memo)
    n_done = sum(1 for r in rows if r[1] == DONE)
    md = [f"# Experiment report: `{exp.path}`", "",
          f"Made by `ait experiment report {exp.path}` from the outputs of `ait experiment run` "
          f"({n_done} of {len(rows)} steps done; `ait experiment status {exp.path}` lists them with their logs, "
          f"`ait experiment plan {exp.path}` prints every command).", ""]
    md += tables_markdown(graph, tables, out)
    health, _ = health_section(graph, memo)
    md += health + samples_section(graph, memo)
    md += systems_markdown(graph, runs)
    if has_loss:
        md += ["## Training and validation loss", "",
               "One panel per curriculum stage, every system on the same axes (the chosen learning rate's run, "
               "from each run's `metrics.jsonl`): training loss solid, named with the stage's training data "
               "(`train: mt+align` includes the Align records), validation loss dashed, named with its data "
               "(`val: mt`).", "", "![training and validation loss](loss.png)", ""]
    elif any(s.curriculum for s in exp.systems.values()):
        missing.append("loss plot")
    if exp.probe is not None:
        probe, made = probe_markdown(graph, out, memo)
        md += probe
        if not made:
            missing.append("probe")
    md += durations_section(graph, memo)
    md += ["## Steps", "", "| step | state | output | log |", "|---|---|---|---|"]
    for names, state, output, log in rows:
        md.append(f"| {names} | {state} | `{os.path.relpath(output, out)}` | "
                  + (f"`{os.path.relpath(log, out)}`" if log else "") + " |")
    md.append("")
    path = out / "report.md"
    _write(path, "\n".join(md).encode())
    return path, missing

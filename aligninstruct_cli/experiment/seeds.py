"""Systems trained with several seeds (`systems.NAME.seeds: [0, 1, 2]`): one run per seed, tables as mean ± sd.

At load time a seeded system becomes one system per seed, `NAME seed=S`, whose training has `seed: S`
(`ait train --seed`: data order, LoRA initialisation, dropout); its translation follows its training. Steps
that do not depend on the seed (data, alignment, instruction data, the untrained systems' translations)
stay one step, shared. A table with seeded rows becomes one table per seed (`TABLE seed=S`: seed S of each
seeded row, the other rows as they are), each one `ait score`; the report adds the table over seeds: the
mean ± sample standard deviation of each score across the seeds, and a `†` where a system's per-seed
scores are significantly higher than the baseline's by Welch's two-sided t-test (unequal variances, p <
alpha), the test and its p values said under it. A baseline with one run (no seeds) has no spread: its
rows get mean ± sd, no test."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

from aligninstruct_cli.experiment.paper_rows import paper_rows
from aligninstruct_cli.metrics import METRIC_LABELS

ALPHA = 0.05


def seed_name(name: str, seed: int) -> str:
    return f"{name} seed={seed}"


def expand_seeds(exp: Any) -> None:
    """Replace each seeded system by its per-seed systems and each table with seeded rows by its per-seed tables
    (`exp.seed_runs`: system -> its per-seed names; `exp.seed_tables`: table -> (the table as written, its
    per-seed table names))."""
    seeded = {name: s.seeds for name, s in exp.systems.items() if s.seeds}
    exp.seed_runs, exp.seed_tables = {}, {}
    if not seeded:
        return
    for name, system in exp.systems.items():
        other = system.model.get("system") if isinstance(system.model, dict) else None
        if other in seeded:
            raise exp.error(f"systems.{name}.model.system", f"system {other!r} has seeds: a base model must be one run")
    systems = {}
    for name, system in exp.systems.items():
        if not system.seeds:
            systems[name] = system
            continue
        exp.seed_runs[name] = []
        for seed in system.seeds:
            run = replace(system, name=seed_name(name, seed), train={**system.train, "seed": seed}, seeds=None)
            systems[run.name] = run
            exp.seed_runs[name].append(run.name)
    tables = {}
    for name, table in exp.tables.items():
        rows = ([table.baseline] if table.baseline else []) + table.systems
        lists = {tuple(seeded[s]) for s in rows if s in seeded}
        if not lists:
            tables[name] = table
            continue
        if len(lists) > 1:
            raise exp.error(f"tables.{name}", "its systems list different seeds: a table's seeded systems need the "
                            f"same seeds ({' vs '.join(str(list(x)) for x in sorted(lists))})")
        paper = paper_rows(table)  # {} for a table without `paper:`
        per_seed = []
        for k, seed in enumerate(lists.pop()):
            def pick(system: str) -> str:
                return exp.seed_runs[system][k] if system in seeded else system
            run = replace(table, name=seed_name(name, seed), systems=[pick(s) for s in table.systems],
                          baseline=pick(table.baseline) if table.baseline else None,
                          paper={**table.paper, "rows": {pick(s): r for s, r in paper.items() if r}} if paper else None)
            tables[run.name] = run
            per_seed.append(run.name)
        exp.seed_tables[name] = (table, per_seed)
    exp.systems, exp.tables = systems, tables
    if exp.baseline in seeded:
        exp.baseline = exp.seed_runs[exp.baseline][0]
    if exp.probe is not None:  # the probe compares one run of each system: the first seed's
        exp.probe.systems = [exp.seed_runs[s][0] if s in seeded else s for s in exp.probe.systems]


# ---------------------------------------------------------------------------------------------- statistics
def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1; None for one value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def welch_t_test(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """Welch's t-test of mean(b) − mean(a): (t, degrees of freedom, two-sided p); None when a side has fewer
    than 2 values. Equal, constant sides: t 0, p 1."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
    if va + vb == 0:
        return (0.0, float(len(a) + len(b) - 2), 1.0) if ma == mb else (math.copysign(math.inf, mb - ma), math.inf, 0.0)
    t = (mb - ma) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0.0) + (vb ** 2 / (len(b) - 1) if vb else 0.0))
    return t, df, _t_two_sided_p(t, df)


def _t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with df degrees of freedom: I_{df/(df+t²)}(df/2, 1/2)."""
    return _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Numerical Recipes' betacf)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * f / a


# ---------------------------------------------------------------------------------------------- the table
def over_seeds(table: Any, reports: list[dict], seed_runs: dict[str, list[str]]) -> dict[str, Any]:
    """The table over its per-seed score reports: {metrics, groups, rows: [{system, n, cells: {group: {metric:
    {mean, sd, scores, test}}}}], baseline}."""
    rows_named = ([table.baseline] if table.baseline else []) + table.systems
    metrics = reports[0]["metrics"]
    groups = [g["key"] for g in reports[0]["groups"]]
    by_seed = [{s["name"]: s for s in report["systems"]} for report in reports]

    def scores(system: str, group: str, metric: str) -> list[float]:
        names = seed_runs.get(system)
        if names is None:  # one run, the same in every seed's table
            return [by_seed[0][system]["groups"][group][metric]["score"]]
        return [by_seed[k][name]["groups"][group][metric]["score"] for k, name in enumerate(names)]

    rows = []
    for system in rows_named:
        cells: dict[str, dict[str, Any]] = {}
        for g in groups:
            for m in metrics:
                values = scores(system, g, m)
                mean, sd = mean_sd(values)
                test = None
                if table.baseline and system != table.baseline:
                    result = welch_t_test(scores(table.baseline, g, m), values)
                    if result is not None:
                        t, df, p = result
                        test = {"t": t, "df": df, "p": p, "better": p < ALPHA and t > 0}
                cells.setdefault(g, {})[m] = {"mean": mean, "sd": sd, "scores": values, "test": test}
        rows.append({"system": system, "n": len(seed_runs.get(system, [system])), "cells": cells})
    return {"metrics": metrics, "groups": groups, "baseline": table.baseline, "rows": rows}


def mean_report(reports: list[dict], seed_runs: dict[str, list[str]]) -> dict:
    """A score report of the seeds' mean: the first seed's report with each seeded system under its own name and
    every direction and group score the mean over the seeds (intervals and significance dropped: they are the
    runs'), for what reads one report (compare_to: paper)."""
    first = copy.deepcopy(reports[0])
    by_seed = [{s["name"]: s for s in report["systems"]} for report in reports]
    for entry in first["systems"]:
        entry.pop("significance", None)
        system = next((name for name, runs in seed_runs.items() if entry["name"] == runs[0]), None)
        for scope in ("directions", "groups"):
            for key, metrics in entry[scope].items():
                for metric, value in metrics.items():
                    value.pop("ci95", None)
                    if system is not None:
                        value["score"] = mean_sd([by_seed[k][run][scope][key][metric]["score"]
                                                  for k, run in enumerate(seed_runs[system])])[0]
        if system is not None:
            entry["name"] = system
    return first


def render_over_seeds(summary: dict[str, Any]) -> str:
    metrics, groups = summary["metrics"], summary["groups"]
    header = ["System", "runs"] + [f"{g} {METRIC_LABELS[m]}" for g in groups for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 2)]
    for row in summary["rows"]:
        cells = []
        for g in groups:
            for m in metrics:
                c = row["cells"][g][m]
                cell = f"{c['mean']:.2f}" + ("†" if c["test"] and c["test"]["better"] else "")
                cells.append(cell + (f" ± {c['sd']:.2f}" if c["sd"] is not None else ""))
        lines.append("| " + " | ".join([row["system"], str(row["n"])] + cells) + " |")
    lines += ["", "Mean ± sample standard deviation (n − 1) of each score over the seeds' runs (a system without "
              "seeds: its one run)."]
    if summary["baseline"]:
        lines.append(f"† significantly higher than {summary['baseline']}: Welch's two-sided t-test on the per-seed "
                     f"scores (unequal variances), p < {ALPHA}; no test where a side has fewer than 2 runs. "
                     "The p values are in the JSON.")
    return "\n".join(lines) + "\n"

"""`ait score` as a library: scoring hypothesis files per direction and group, with paired bootstrap against
a baseline and each score's own bootstrap interval (from the same resamples).

    report, sentences = score(["mt+align.jsonl"], ScoreOptions(baseline="mt.jsonl", metrics=["bleu", "chrf"]))

Memory: the records are held (ids, sources, references, hypotheses: about 1 KB a short segment) and each
metric's per-segment statistics as one compact numpy array (BLEU + chrF++: 34 int32 a segment), never as
Python objects: corpus BLEU/chrF are sums of them, and the bootstrap and `--sentence-level` need them per
segment. sacrebleu computes them a chunk at a time (`bleu_chrf.STATS_CHUNK`), and the bootstrap draws
its resamples a block at a time (`RESAMPLE_CHUNK_ELEMENTS`), so 1M short segments of BLEU + chrF++ peak
under 2 GB (benchmarks/score_memory.py). Each metric computes its segment statistics once per system;
direction scores, resamples and sentence scores all come from them (see `base.Metric`)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import STDIO
from aligninstruct_cli.languages import SeenList, is_bloom_model, seen_list
from aligninstruct_cli.metrics import significance
from aligninstruct_cli.metrics.base import CorpusScore, Metric
from aligninstruct_cli.metrics.catalog import METRIC_TYPES
from aligninstruct_cli.metrics.groups import Direction, Group, group_directions, mean
from aligninstruct_cli.metrics.report import LAYOUT_GROUPS, PAPER_LAYOUTS
from aligninstruct_cli.metrics.score_options import ScoreOptions
from aligninstruct_cli.metrics.testset import (Hypotheses, TestSet, align_hypotheses, build_testset, id_key,
                                               read_hypotheses, text_without_sources)
from aligninstruct_cli.options import OptionError, option_ref


# ------------------------------------------------------------------------------------------------ metrics
def make_metrics(options: ScoreOptions, *, progress: bool = False) -> list[Metric]:
    """The metrics `options` ask for, in their order (loading COMET's model when it is among them). Metrics
    that load a model are made last: a missing tokenizer model stops the run before a long load."""
    order = sorted(options.metrics, key=lambda metric_name: METRIC_TYPES[metric_name].loads_a_model)
    made = {metric_name: METRIC_TYPES[metric_name].from_options(options, progress=progress) for metric_name in order}
    return [made[metric_name] for metric_name in options.metrics]


# ------------------------------------------------------------------------------------------------ inputs
def read_systems(hyps: Sequence[str], options: ScoreOptions) -> tuple[list[Hypotheses], Hypotheses | None]:
    """The hypothesis files and the baseline, named."""
    names = options.names if options.names is not None else [None] * len(hyps)
    if len(names) != len(hyps):
        raise OptionError(f"{option_ref('names')} gives {len(names)} name(s) for {len(hyps)} file(s)")
    inputs = list(hyps) + [p for p in [options.baseline, *(options.refs or [])] if p]
    if sum(p == STDIO for p in inputs) > 1:
        raise AitError("only one input can be stdin (-)")
    systems = [read_hypotheses(path, system_name, options) for path, system_name in zip(hyps, names)]
    baseline = read_hypotheses(options.baseline, options.baseline_name, options) if options.baseline else None
    taken = [s.name for s in ([baseline] if baseline else []) + systems]
    if len(set(taken)) != len(taken):
        raise OptionError(f"two systems share a name ({', '.join(taken)}): name them with {option_ref('names')}")
    return systems, baseline


def models_of(systems: Sequence[Hypotheses]) -> list[str | None]:
    """The distinct `model` fields of the hypothesis records (None: records that name no model)."""
    models = (rec.get("model") for h in systems for rec in h.records)
    return list(dict.fromkeys(m if isinstance(m, str) and m else None for m in models))


def run_seen_list(systems: Sequence[Hypotheses], options: ScoreOptions) -> SeenList | None:
    """The seen list that splits the seen/unseen groups (`languages.seen_list` of the hypotheses' models and
    `options.seen`); without one, a note says why those groups are left out and how to declare it."""
    models = models_of(systems)
    seen = seen_list(models, options.seen)
    if seen is None:
        others = ", ".join(m for m in models if m and not is_bloom_model(m))
        console.warn(f"seen/unseen groups omitted: ait knows which languages BLOOM/BLOOMZ saw in pre-training, "
                     f"not which {others} saw; declare them with --seen CODES or a `seen` column in a --languages "
                     "file")
    return seen


def seen_list_record(seen: SeenList | None) -> dict | None:
    return None if seen is None else {"name": seen.name, "codes": sorted(seen.codes)}


# ------------------------------------------------------------------------------------------------ scoring
@dataclass
class _SystemScores:
    name: str
    path: str
    role: str
    stats: dict[str, np.ndarray]  # metric name → segment statistics, test-set order
    direction_scores: dict[Direction, dict[str, CorpusScore]] = field(default_factory=dict)


def _by_direction(testset: TestSet) -> dict[Direction, list[int]]:
    members: dict[Direction, list[int]] = {}
    for k, d in enumerate(testset.directions):
        members.setdefault(d, []).append(k)
    return dict(sorted(members.items()))


def _score_system(testset: TestSet, system: Hypotheses, role: str, texts: list[str], metrics: Sequence[Metric],
                  directions: dict[Direction, list[int]]) -> _SystemScores:
    """`texts`: the system's hypotheses in test-set order."""
    tgt_langs = [d.tgt for d in testset.directions]
    stats = {m.name: m.segment_stats(testset.srcs, texts, testset.refs, tgt_langs, more_refs=testset.more_refs)
             for m in metrics}
    result = _SystemScores(system.name, system.path, role, stats)
    for d, idx in directions.items():
        result.direction_scores[d] = {m.name: CorpusScore(m.corpus_score(stats[m.name][idx]), m.signature(d.tgt))
                                      for m in metrics}
    return result


Samples = dict[tuple[str, Direction, str], np.ndarray]  # (system, direction, metric) → scores on the resamples


RESAMPLE_CHUNK_ELEMENTS = 1 << 24  # resample indices drawn at once (128 MB of int64), whatever the test set's size


def _bootstrap(scored: Sequence[_SystemScores], directions: dict[Direction, list[int]], metrics: Sequence[Metric],
               options: ScoreOptions, rng_of: Callable[[Direction], np.random.Generator] | None = None) -> Samples:
    """Every system's scores on the bootstrap resamples of every direction. A direction's resamples are drawn
    once and shared by all systems: that is the pairing of the paired test. They are drawn a block of rows at
    a time from the direction's generator (`rng_of(direction)`, default `significance.direction_rng`), which
    gives the very indices one draw of the whole n_samples × n_segments matrix would (the same stream), in
    bounded memory."""
    samples: Samples = {}
    for d, idx in directions.items():
        rng = rng_of(d) if rng_of is not None else significance.direction_rng(options.seed, d.key)
        rows = max(1, RESAMPLE_CHUNK_ELEMENTS // max(1, len(idx)))
        parts: dict[tuple[str, Direction, str], list[np.ndarray]] = {}
        for start in range(0, options.bootstrap_samples, rows):
            indices = significance.resample_indices(len(idx), min(rows, options.bootstrap_samples - start), rng)
            for s in scored:
                for m in metrics:
                    parts.setdefault((s.name, d, m.name), []).append(
                        significance.resampled_scores(m, s.stats[m.name][idx], indices))
        for key, chunks in parts.items():
            samples[key] = np.concatenate(chunks)
    return samples


def _significance(base: _SystemScores, system: _SystemScores, samples: Samples, directions: dict[Direction, list[int]],
                  groups: dict[Group, list[Direction]], metrics: Sequence[Metric], options: ScoreOptions) -> dict:
    def paired(d: Direction, metric_name: str) -> significance.Resampled:
        return significance.Resampled(base.direction_scores[d][metric_name].score,
                                      system.direction_scores[d][metric_name].score,
                                      samples[(base.name, d, metric_name)], samples[(system.name, d, metric_name)])

    out: dict[str, Any] = {"baseline": base.name, "n_samples": options.bootstrap_samples, "seed": options.seed,
                           "alpha": options.alpha, "directions": {}, "groups": {}}
    def judged(comparison: significance.Comparison, metric: Metric) -> dict:
        result = comparison.as_dict()
        if not metric.higher_is_better:  # TER: a win is a significant drop
            result["better"] = bool(result["significant"] and result["diff"] < 0)
        return result

    for d in directions:
        for m in metrics:
            out["directions"].setdefault(d.key, {})[m.name] = \
                judged(significance.compare_resampled(paired(d, m.name), options.alpha), m)
    for g, members in groups.items():
        for m in metrics:
            r = significance.group_resampled([paired(d, m.name) for d in members])
            out["groups"].setdefault(g.key, {})[m.name] = judged(significance.compare_resampled(r, options.alpha), m)
    return out


def _confidence(scored: Sequence[_SystemScores], directions: dict[Direction, list[int]], metrics: Sequence[Metric],
                options: ScoreOptions) -> dict[tuple[str, Direction, str], tuple[float, float]]:
    """`--confidence`, as sacrebleu computes it for one system: per system and direction, the resamples of
    `default_rng(seed).choice(n, (samples, n))` (a fresh generator each, as each sacrebleu corpus_score call
    makes one; every system would draw the same indices, so `_bootstrap` draws them once per direction and
    scores all systems on them); → (mean, half-width of the 95% interval)."""
    out = {}
    for key, samples in _bootstrap(scored, directions, metrics, options,
                                   rng_of=lambda d: np.random.default_rng(options.seed)).items():
        low, high = significance.interval(samples)
        out[key] = (statistics.mean(samples.tolist()), 0.5 * (high - low))  # as sacrebleu
    return out


def _selected_groups(directions: dict[Direction, list[int]], seen: SeenList | None,
                     options: ScoreOptions) -> dict[Group, list[Direction]]:
    """The groups `options.groups` names (default: its layout's), in that order; a note for a named group
    that has no directions."""
    names = options.groups or LAYOUT_GROUPS[options.layout]
    groups = group_directions(directions, seen, names, paper_order=options.layout in PAPER_LAYOUTS)
    missing = [name for name in options.groups or () if name not in {g.name for g in groups}]
    if missing:
        console.warn(f"no directions for group(s) {', '.join(missing)}: left out of the report")
    return groups


def metrics_that_can_score(hyps: Sequence[str], options: ScoreOptions) -> ScoreOptions:
    """Without --metrics, the default metrics less those the inputs cannot feed, each said on stderr: one that
    `needs_sources` when plain-text hypotheses come without --src, one that is not `multi_reference` when
    several references are given. Metrics asked for by name are kept (and fail with their own message)."""
    if options.metrics_given:
        return options
    if text_without_sources(hyps, options):
        kept = [m for m in options.metrics if not METRIC_TYPES[m].needs_sources]
        dropped = [m for m in options.metrics if METRIC_TYPES[m].needs_sources]
        options = replace(options, metrics=kept)
        console.info(f"plain-text hypotheses without --src: scoring {_labels(kept)} ({_labels(dropped)} needs "
                     "the sources)")
    single = [m for m in options.metrics if not METRIC_TYPES[m].multi_reference]
    if len(options.refs or []) > 1 and single:
        options = replace(options, metrics=[m for m in options.metrics if m not in single])
        console.info(f"{len(options.refs)} references: scoring {_labels(options.metrics)} ({_labels(single)} takes "
                     "one reference)")
    return options


def _refuse_single_reference_metrics(testset: TestSet, options: ScoreOptions) -> None:
    """Several references and a metric that scores against one: refused before any metric is made (COMET's
    model would load for nothing). `ScoreOptions` refuses metrics named on the command line, and
    `metrics_that_can_score` drops default ones, earlier; this catches library callers who do neither."""
    for metric_name in options.metrics:
        metric_type = METRIC_TYPES[metric_name]
        if testset.more_refs and not metric_type.multi_reference:
            raise OptionError(f"{metric_type.label} scores against one reference, and {option_ref('refs')} gives "
                              f"{1 + len(testset.more_refs)}", hint="score it with one --refs")


def _labels(metric_names: Sequence[str]) -> str:
    return " and ".join(METRIC_TYPES[m].label for m in metric_names)


def score(hyps: Sequence[str], options: ScoreOptions, *, sentence_level: bool = False,
          progress: bool = False) -> tuple[dict, list[dict]]:
    """The score report of the hypothesis files `hyps` (JSON-ready) and, with `sentence_level`, one record per
    system and segment with its scores. `progress`: COMET's progress bar."""
    systems, baseline = read_systems(hyps, options)
    ordered = ([baseline] if baseline else []) + list(systems)
    testset = build_testset(ordered[0], options.refs)  # several --refs: more_refs
    _refuse_single_reference_metrics(testset, options)
    aligned = [align_hypotheses(testset, h, check_tgt=options.refs is None) for h in ordered]
    seen = run_seen_list(ordered, options)
    metrics = make_metrics(options, progress=progress)
    directions = _by_direction(testset)
    groups = _selected_groups(directions, seen, options)
    scored = [_score_system(testset, h, "baseline" if (baseline is not None and k == 0) else "system", texts,
                            metrics, directions) for k, (h, texts) in enumerate(zip(ordered, aligned))]
    samples = _bootstrap(scored, directions, metrics, options)  # the paired test's and each score's own interval
    confidence = _confidence(scored, directions, metrics, options) if options.confidence else {}
    report: dict[str, Any] = {
        "metrics": list(options.metrics),
        "labels": {m.name: m.label for m in metrics},
        "references": testset.ref_source,
        "n_segments": len(testset.ids),
        "seen_list": seen_list_record(seen),
        "directions": [{"key": d.key, "testset": d.testset or None, "src_lang": d.src, "tgt_lang": d.tgt,
                        "n": len(idx), "groups": [g.key for g, members in groups.items() if d in members]}
                       for d, idx in directions.items()],
        "groups": [{"key": g.key, "testset": g.testset or None, "name": g.name,
                    "directions": [d.key for d in members]} for g, members in groups.items()],
        "intervals": {"level": 0.95, "n_samples": options.bootstrap_samples, "seed": options.seed},
        **({"confidence": {"n_samples": options.bootstrap_samples, "seed": options.seed}} if confidence else {}),
        "systems": [],
    }
    for s in scored:
        entry: dict[str, Any] = {"name": s.name, "path": s.path, "role": s.role, "directions": {}, "groups": {}}
        for d, scores in s.direction_scores.items():
            entry["directions"][d.key] = {m: {"score": c.score, "signature": c.signature} for m, c in scores.items()}
            for m, value in entry["directions"][d.key].items():
                value["ci95"] = list(significance.interval(samples[(s.name, d, m)]))
            if confidence:  # sacrebleu's JSON keys
                for m, value in entry["directions"][d.key].items():
                    value["confidence_mean"], value["confidence_var"] = confidence[(s.name, d, m)]
        for g, members in groups.items():
            entry["groups"][g.key] = {
                m: {"score": mean([s.direction_scores[d][m].score for d in members]),
                    "signatures": sorted({s.direction_scores[d][m].signature for d in members})}
                for m in options.metrics}
            for m, value in entry["groups"][g.key].items():
                value["ci95"] = list(significance.interval(
                    significance.group_samples([samples[(s.name, d, m)] for d in members])))
        if baseline is not None and s.role == "system":
            entry["significance"] = _significance(scored[0], s, samples, directions, groups, metrics, options)
        report["systems"].append(entry)
    sentence_records: list[dict] = []
    if sentence_level:
        for h, s in zip(ordered, scored):
            by_id = {id_key(r["id"]): r for r in h.records}
            for k, seg_id in enumerate(testset.ids):
                rec = dict(by_id[id_key(seg_id)])
                rec["system"] = s.name
                rec["ref"] = testset.refs[k]
                if testset.more_refs:
                    rec["refs"] = [testset.refs[k]] + [stream[k] for stream in testset.more_refs]
                for m in metrics:
                    rec[m.name] = m.sentence_score(s.stats[m.name][k])
                sentence_records.append(rec)
        first = next(iter(directions))
        report["sentence_signatures"] = {m.name: m.sentence_signature(first.tgt) for m in metrics}
    return report, sentence_records

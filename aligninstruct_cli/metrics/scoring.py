"""`ait score` as a library: read hypothesis files, line them up with references, score per direction and
group, and run paired bootstrap against a baseline.

The whole test set is held in memory: corpus BLEU/chrF need every segment's statistics, COMET batches
across the file and the bootstrap resamples segments. Test sets are small (FLORES-200 devtest: 1,012
segments per direction), so this is cheap.

Every check runs before anything is scored or written: duplicate or mismatched ids, hypothesis/reference
counts, missing fields and unknown languages all stop the run with the file, line and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import orjson

from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import STDIO, file_stem, iter_lines, read_records
from aligninstruct_cli.metrics import METRICS
from aligninstruct_cli.metrics import bleu_chrf, significance
from aligninstruct_cli.metrics.groups import Direction, Group, direction_of, group_directions, mean


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Hypotheses:
    name: str
    path: str
    records: list[dict]  # validated hypothesis records, file order
    lines: list[int]  # line number of each record


@dataclass
class TestSet:
    """The segments every system is scored on, in the order of the first file read."""

    ids: list[Any]
    srcs: list[str]
    refs: list[str]
    directions: list[Direction]
    ref_source: str  # "tgt field of FILE" or the --refs path


def read_hypotheses(path: str, name: str | None = None) -> Hypotheses:
    records, lines, seen = [], [], {}
    for line_no, rec in read_records(path, kind="hypothesis", with_location=True):
        key = _id_key(rec["id"])
        if key in seen:
            raise InputError(path, line_no, f"duplicate id {rec['id']!r} (first on line {seen[key]})", field="id")
        seen[key] = line_no
        records.append(rec)
        lines.append(line_no)
    if not records:
        raise AitError(f"{path}: no hypotheses (empty input)")
    return Hypotheses(name or file_stem(path), path, records, lines)


def _id_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _is_jsonl(path: str) -> bool:
    name = path.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return True
    if path == STDIO:
        return False
    for _, text in iter_lines(path):
        if text.strip():
            return text.lstrip().startswith("{")
    return False


def read_references(path: str, hyps: Hypotheses) -> list[str]:
    """References for `hyps`, in its order: JSONL records matched by id (field `tgt`), or plain text with
    one reference a line matched by position."""
    if _is_jsonl(path):
        by_id: dict[tuple[str, Any], str] = {}
        for line_no, rec in read_records(path, kind="any", with_location=True):
            if not isinstance(rec, dict) or "id" not in rec:
                raise InputError(path, line_no, "missing", field="id")
            tgt = rec.get("tgt")
            if not isinstance(tgt, str) or not tgt.strip():
                raise InputError(path, line_no, "missing or empty reference", field="tgt")
            key = _id_key(rec["id"])
            if key in by_id:
                raise InputError(path, line_no, f"duplicate id {rec['id']!r}", field="id")
            by_id[key] = tgt
        refs = []
        for rec, line_no in zip(hyps.records, hyps.lines):
            ref = by_id.pop(_id_key(rec["id"]), None)
            if ref is None:
                raise InputError(hyps.path, line_no, f"id {rec['id']!r} has no reference in {path}", field="id")
            refs.append(ref)
        if by_id:
            extra = [k[1] for k in list(by_id)[:3]]
            raise AitError(f"{path}: {len(by_id)} reference id(s) have no hypothesis in {hyps.path}, e.g. "
                           + ", ".join(repr(e) for e in extra))
        return refs
    refs = [text for _, text in iter_lines(path)]
    if len(refs) != len(hyps.records):
        raise AitError(f"{hyps.path} has {len(hyps.records)} hypotheses but {path} has {len(refs)} "
                       "reference lines", hint="plain-text references pair with hypotheses line by line")
    return refs


def build_testset(first: Hypotheses, refs_path: str | None = None) -> TestSet:
    if refs_path:
        refs = read_references(refs_path, first)
        source = refs_path
    else:
        refs = []
        for rec, line_no in zip(first.records, first.lines):
            if "tgt" not in rec:
                raise InputError(first.path, line_no, "missing: no reference (give records a tgt, or --refs)",
                                 field="tgt")
            refs.append(rec["tgt"])
        source = f"tgt field of {first.path}"
    return TestSet([r["id"] for r in first.records], [r["src"] for r in first.records], refs,
                   [direction_of(r) for r in first.records], source)


def align_hypotheses(testset: TestSet, hyps: Hypotheses, *, check_tgt: bool) -> list[str]:
    """`hyps`' hypotheses in test-set order; its ids, directions (and references) must match."""
    position = {_id_key(i): k for k, i in enumerate(testset.ids)}
    out: list[str | None] = [None] * len(testset.ids)
    for rec, line_no in zip(hyps.records, hyps.lines):
        k = position.get(_id_key(rec["id"]))
        if k is None:
            raise InputError(hyps.path, line_no, f"id {rec['id']!r} is not in the test set of the other files",
                             field="id")
        if direction_of(rec) != testset.directions[k]:
            raise InputError(hyps.path, line_no, f"direction {direction_of(rec).key} differs from "
                             f"{testset.directions[k].key} for the same id in the other files", field="tgt_lang")
        if check_tgt and "tgt" in rec and rec["tgt"] != testset.refs[k]:
            raise InputError(hyps.path, line_no, f"reference differs from the one in {testset.ref_source}",
                             field="tgt", hint="all systems must be scored on the same references")
        out[k] = rec["hyp"]
    if len(hyps.records) != len(testset.ids):
        raise AitError(f"{hyps.path} has {len(hyps.records)} hypotheses but the test set has "
                       f"{len(testset.ids)} segments", hint="every file must hold the same ids")
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ scoring
@dataclass
class ScoreOptions:
    metrics: Sequence[str] = ("bleu", "chrf", "comet")
    tokenize: str | None = None
    comet: Any = None  # a comet.CometScorer when "comet" is in metrics
    n_samples: int = significance.DEFAULT_SAMPLES
    seed: int = significance.DEFAULT_SEED
    alpha: float = significance.DEFAULT_ALPHA
    sentence_level: bool = False


def parse_metrics(spec: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(m.strip().lower() for m in spec.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise AitError(f"--metrics {spec!r}: expected a comma-separated subset of {', '.join(METRICS)}")
    return names


@dataclass
class _SystemScores:
    name: str
    path: str
    role: str
    hyps: list[str]
    direction_scores: dict[Direction, dict[str, bleu_chrf.CorpusScore]] = field(default_factory=dict)
    stats: dict[tuple[Direction, str], Any] = field(default_factory=dict)  # per-segment, for the bootstrap
    sentences: dict[str, list[float]] = field(default_factory=dict)
    sentence_signatures: dict[str, str] = field(default_factory=dict)


def _by_direction(testset: TestSet) -> dict[Direction, list[int]]:
    members: dict[Direction, list[int]] = {}
    for k, d in enumerate(testset.directions):
        members.setdefault(d, []).append(k)
    return dict(sorted(members.items()))


def _score_system(testset: TestSet, name: str, path: str, role: str, hyps: list[str], options: ScoreOptions,
                  keep_stats: bool) -> _SystemScores:
    result = _SystemScores(name, path, role, hyps)
    directions = _by_direction(testset)
    comet_segments = None
    if "comet" in options.metrics:
        comet_segments = options.comet.segment_scores(testset.srcs, hyps, testset.refs)
        if options.sentence_level:
            result.sentences["comet"] = comet_segments
            result.sentence_signatures["comet"] = options.comet.signature
    for metric_name in options.metrics:
        if options.sentence_level and metric_name != "comet":
            result.sentences[metric_name] = [0.0] * len(hyps)
    for d, idx in directions.items():
        h = [hyps[k] for k in idx]
        r = [testset.refs[k] for k in idx]
        scores: dict[str, bleu_chrf.CorpusScore] = {}
        for metric_name in options.metrics:
            if metric_name == "comet":
                segs = [comet_segments[k] for k in idx]  # type: ignore[index]
                scores["comet"] = bleu_chrf.CorpusScore(mean(segs), options.comet.signature)
                if keep_stats:
                    result.stats[(d, "comet")] = segs
                continue
            metric = bleu_chrf.make_metric(metric_name, d.tgt, options.tokenize)
            scores[metric_name] = bleu_chrf.corpus_score(metric, h, r)
            if keep_stats:
                result.stats[(d, metric_name)] = (metric, bleu_chrf.segment_stats(metric, h, r))
            if options.sentence_level:
                sent_metric = bleu_chrf.make_metric(metric_name, d.tgt, options.tokenize, sentence=True)
                values, signature = bleu_chrf.sentence_scores(sent_metric, h, r)
                for k, v in zip(idx, values):
                    result.sentences[metric_name][k] = v
                result.sentence_signatures.setdefault(metric_name, signature)
        result.direction_scores[d] = scores
    return result


def _significance(testset: TestSet, base: _SystemScores, system: _SystemScores, groups: dict[Group, list[Direction]],
                  options: ScoreOptions) -> dict:
    resampled: dict[tuple[Direction, str], significance.Resampled] = {}
    for d, idx in _by_direction(testset).items():
        indices = significance.resample_indices(len(idx), options.n_samples,
                                                significance.direction_rng(options.seed, d.key))
        for metric_name in options.metrics:
            b_score = base.direction_scores[d][metric_name].score
            s_score = system.direction_scores[d][metric_name].score
            if metric_name == "comet":
                score_fn = significance.mean_score_fn(len(idx))
                b_stats, s_stats = base.stats[(d, "comet")], system.stats[(d, "comet")]
            else:
                metric, b_stats = base.stats[(d, metric_name)]
                _, s_stats = system.stats[(d, metric_name)]
                score_fn = (lambda m: (lambda summed: bleu_chrf.score_from_stats(m, summed)))(metric)
            resampled[(d, metric_name)] = significance.paired_bootstrap(b_stats, s_stats, b_score, s_score,
                                                                        score_fn, indices)
    out: dict[str, Any] = {"baseline": base.name, "n_samples": options.n_samples, "seed": options.seed,
                           "alpha": options.alpha, "directions": {}, "groups": {}}
    for (d, metric_name), r in resampled.items():
        out["directions"].setdefault(d.key, {})[metric_name] = \
            significance.compare_resampled(r, options.alpha).as_dict()
    for g, members in groups.items():
        for metric_name in options.metrics:
            r = significance.group_resampled([resampled[(d, metric_name)] for d in members])
            out["groups"].setdefault(g.key, {})[metric_name] = \
                significance.compare_resampled(r, options.alpha).as_dict()
    return out


def score_files(systems: Sequence[Hypotheses], options: ScoreOptions, *, baseline: Hypotheses | None = None,
                refs_path: str | None = None) -> tuple[dict, list[dict]]:
    """The score report (JSON-ready) and, with `options.sentence_level`, per-record score records."""
    if options.n_samples < 1:
        raise AitError("--bootstrap-samples must be at least 1")
    if not 0 < options.alpha < 1:
        raise AitError("--alpha must be between 0 and 1")
    ordered = ([baseline] if baseline else []) + list(systems)
    testset = build_testset(ordered[0], refs_path)
    aligned = [align_hypotheses(testset, h, check_tgt=refs_path is None) for h in ordered]
    directions = _by_direction(testset)
    groups = group_directions(directions)
    keep_stats = baseline is not None
    scored = [_score_system(testset, h.name, h.path, "baseline" if (baseline is not None and k == 0) else "system",
                            hyps, options, keep_stats) for k, (h, hyps) in enumerate(zip(ordered, aligned))]
    report: dict[str, Any] = {
        "metrics": list(options.metrics),
        "references": testset.ref_source,
        "n_segments": len(testset.ids),
        "directions": [{"key": d.key, "testset": d.testset or None, "src_lang": d.src, "tgt_lang": d.tgt,
                        "n": len(idx), "groups": [g.key for g, members in groups.items() if d in members]}
                       for d, idx in directions.items()],
        "groups": [{"key": g.key, "testset": g.testset or None, "name": g.name,
                    "directions": [d.key for d in members]} for g, members in groups.items()],
        "systems": [],
    }
    for s in scored:
        entry: dict[str, Any] = {"name": s.name, "path": s.path, "role": s.role, "directions": {}, "groups": {}}
        for d, scores in s.direction_scores.items():
            entry["directions"][d.key] = {m: {"score": c.score, "signature": c.signature} for m, c in scores.items()}
        for g, members in groups.items():
            entry["groups"][g.key] = {
                m: {"score": mean([s.direction_scores[d][m].score for d in members]),
                    "signatures": sorted({s.direction_scores[d][m].signature for d in members})}
                for m in options.metrics}
        if baseline is not None and s.role == "system":
            entry["significance"] = _significance(testset, scored[0], s, groups, options)
        report["systems"].append(entry)
    sentence_records: list[dict] = []
    if options.sentence_level:
        for h, s in zip(ordered, scored):
            by_id = {_id_key(r["id"]): r for r in h.records}
            for k, seg_id in enumerate(testset.ids):
                rec = dict(by_id[_id_key(seg_id)])
                rec["system"] = s.name
                rec["ref"] = testset.refs[k]
                for m in options.metrics:
                    rec[m] = s.sentences[m][k]
                sentence_records.append(rec)
        report["sentence_signatures"] = scored[0].sentence_signatures
    return report, sentence_records


def dumps_report(report: dict) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"

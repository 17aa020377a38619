"""The inputs of `ait score`: hypothesis files, their references, and the test set they share.

Every check runs before anything is scored or written: duplicate or mismatched ids, hypothesis/reference
counts, missing fields and unknown languages all stop the run with the file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import STDIO, file_stem, iter_lines, read_records
from aligninstruct_cli.metrics.groups import Direction, direction_of


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
        key = id_key(rec["id"])
        if key in seen:
            raise InputError(path, line_no, f"duplicate id {rec['id']!r} (first on line {seen[key]})", field="id")
        seen[key] = line_no
        records.append(rec)
        lines.append(line_no)
    if not records:
        raise AitError(f"{path}: no hypotheses (empty input)")
    return Hypotheses(name or file_stem(path), path, records, lines)


def id_key(value: Any) -> tuple[str, Any]:
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
            key = id_key(rec["id"])
            if key in by_id:
                raise InputError(path, line_no, f"duplicate id {rec['id']!r}", field="id")
            by_id[key] = tgt
        refs = []
        for rec, line_no in zip(hyps.records, hyps.lines):
            ref = by_id.pop(id_key(rec["id"]), None)
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
    position = {id_key(i): k for k, i in enumerate(testset.ids)}
    out: list[str | None] = [None] * len(testset.ids)
    for rec, line_no in zip(hyps.records, hyps.lines):
        k = position.get(id_key(rec["id"]))
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

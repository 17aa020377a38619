"""The inputs of `ait score`: hypothesis files (JSONL records, or plain text as sacrebleu reads it), their
references, and the test set they share.

Every check runs before anything is scored or written: duplicate or mismatched ids, hypothesis/reference
counts, missing fields and unknown languages all stop the run with the file, line and field."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from aligninstruct_cli.errors import AitError, InputError, display_path
from aligninstruct_cli.io import STDIO, file_stem, read_records
from aligninstruct_cli.metrics.catalog import METRIC_TYPES
from aligninstruct_cli.metrics.groups import Direction, direction_of
from aligninstruct_cli.options import OptionError, option_ref
from aligninstruct_cli.textfile import iter_lines

# Fields whose few values repeat on every line of a hypothesis file: interned, so 1M records hold one copy.
REPEATED_FIELDS = ("src_lang", "tgt_lang", "model", "adapter", "prompt_name", "testset")

if TYPE_CHECKING:
    from aligninstruct_cli.metrics.score_options import ScoreOptions


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
    ref_source: str  # "tgt field of FILE" or the --refs path(s)
    more_refs: list[list[str]] = field(default_factory=list)  # further reference streams (several --refs)


def read_hypotheses(path: str, name: str | None = None, options: ScoreOptions | None = None) -> Hypotheses:
    """A system's hypotheses: JSONL records (from `ait translate`), or plain text, one a line, as sacrebleu
    reads a system (`options`: its input format, sources and languages)."""
    if options is not None and hypotheses_format(path, options.input_format) == "text":
        return read_text_hypotheses(path, name, options)
    if options is not None and options.src:
        raise OptionError(f"{option_ref('src')} is for plain-text hypotheses; {display_path(path)} holds JSONL "
                          "records, whose src field is the source")
    records, lines, seen = [], [], {}
    for line_no, rec in read_records(path, kind="hypothesis", with_location=True):
        key = id_key(rec["id"])
        if key in seen:
            raise InputError(path, line_no, f"duplicate id {rec['id']!r} (first on line {seen[key]})", field="id")
        seen[key] = line_no
        for repeated in REPEATED_FIELDS:  # the same few values on every line: one string object each
            if type(rec.get(repeated)) is str:
                rec[repeated] = sys.intern(rec[repeated])
        records.append(rec)
        lines.append(line_no)
    if not records:
        raise AitError(f"{path}: no hypotheses (empty input)")
    return Hypotheses(name or file_stem(path), path, records, lines)


def hypotheses_format(path: str, fmt: str = "auto") -> str:
    """jsonl or text: `fmt` when given; else by the file name (.jsonl/.json/.ndjson, .txt), else by whether
    the first non-blank line is a JSON object (stdin is peeked at, not consumed)."""
    if fmt != "auto":
        return fmt
    name = path.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    if path == STDIO:
        stream = sys.stdin.buffer
        if hasattr(stream, "peek"):
            head = stream.peek(1 << 16)
        elif stream.seekable():
            start = stream.tell()
            head = stream.read(1 << 16)
            stream.seek(start)
        else:
            return "jsonl"
        return "jsonl" if head.lstrip()[:1] == b"{" else "text"
    return "jsonl" if _is_jsonl(path) else "text"


def _text_lines(path: str) -> list[str]:
    """The lines of a plain-text file as sacrebleu reads them: every line a segment (blank ones too), trailing
    whitespace stripped."""
    return [text.rstrip() for _, text in iter_lines(path)]


def read_text_hypotheses(path: str, name: str | None, options: ScoreOptions) -> Hypotheses:
    """Plain-text hypotheses as records: ids 1..n (line numbers), the languages of `options`, sources from
    `options.src` (line by line) or empty."""
    if not (options.src_lang and options.tgt_lang) and not (options.tokenize and not (options.src_lang or
                                                                                      options.tgt_lang)):
        raise OptionError(f"{display_path(path)}: plain-text hypotheses need {option_ref('src_lang')} and "
                          f"{option_ref('tgt_lang')} (or, without languages, {option_ref('tokenize')})",
                          hint="e.g. --src-lang en --tgt-lang kk, or -tok 13a")
    if options.src and options.src == path == STDIO:
        raise AitError("only one input can be stdin (-)")
    hyps = _text_lines(path)
    if not hyps:
        raise AitError(f"{display_path(path)}: no hypotheses (empty input)")
    if options.src:
        srcs = _text_lines(options.src)
        if len(srcs) != len(hyps):
            raise AitError(f"{display_path(path)} has {len(hyps)} hypotheses but {display_path(options.src)} has "
                           f"{len(srcs)} source lines", hint="plain-text sources pair with hypotheses line by line")
    elif needing := [METRIC_TYPES[m].label for m in options.metrics if METRIC_TYPES[m].needs_sources]:
        raise OptionError(f"{' and '.join(needing)} needs the source sentences of the plain-text hypotheses in "
                          f"{display_path(path)}: give {option_ref('src')} FILE, or {option_ref('metrics')} bleu,chrf")
    else:
        srcs = [""] * len(hyps)
    # without languages (-tok given): src_lang/tgt_lang None, an unknown direction (groups.direction_of)
    records = [{"id": k, "src_lang": options.src_lang, "tgt_lang": options.tgt_lang, "src": src, "hyp": hyp}
               for k, (src, hyp) in enumerate(zip(srcs, hyps), 1)]
    return Hypotheses(name or ("stdin" if path == STDIO else file_stem(path).removesuffix(".txt")), path, records,
                      list(range(1, len(records) + 1)))


def text_without_sources(hyps: Sequence[str], options: ScoreOptions) -> bool:
    """Whether some hypotheses are plain text and no sources are given (then a metric that `needs_sources`
    cannot score them)."""
    paths = list(hyps) + ([options.baseline] if options.baseline else [])
    return not options.src and any(hypotheses_format(p, options.input_format) == "text" for p in paths)


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
    refs = _text_lines(path)
    if len(refs) != len(hyps.records):
        raise AitError(f"{hyps.path} has {len(hyps.records)} hypotheses but {path} has {len(refs)} "
                       "reference lines", hint="plain-text references pair with hypotheses line by line")
    return refs


def build_testset(first: Hypotheses, refs_paths: Sequence[str] | None = None) -> TestSet:
    """The segments of `first` with their references: from `refs_paths` (each file one reference per
    segment; several: the first is `refs`, the others `more_refs`), else from its records' tgt."""
    if refs_paths:
        streams = [read_references(path, first) for path in refs_paths]
        refs, more = streams[0], streams[1:]
        source = ", ".join(refs_paths)
        return TestSet([r["id"] for r in first.records], [r["src"] for r in first.records], refs,
                       [direction_of(r) for r in first.records], source, more)
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

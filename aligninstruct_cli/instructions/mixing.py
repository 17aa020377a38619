"""Mix instruction files into one training set without holding the records in memory.

Two passes. The index pass reads each input once (validating every record) and keeps, per record, only
its byte offset (int64), a category id (objective + direction, int32), a 64-bit hash of its id (to refuse
duplicate ids, FILE:LINE of the second) and, when a per-language cap is asked for, a 64-bit hash of its
source pair (uint64): 28 bytes a record, so 10M records index in about 280 MB. Planning then works on numpy arrays, and the output pass fetches each chosen line with
`os.pread` (no mmap, so page cache never counts as our RSS) and writes its bytes unchanged.
Inputs that cannot be read at an offset (stdin, `.gz`) are first copied, decompressed, into a temporary
directory.

Selection rules (docs/mix.md repeats them for users):
1. `max_per_lang` N: records are grouped by language — the non-English language of their direction
   (`en-kk` and `kk-en` → kk; `kk-kk` (mono) → kk; a pair without English, e.g. `de-fr`, → "de-fr").
   Per language, the N source pairs (distinct `source_id`s across ALL inputs) with the smallest keyed
   hash blake2b(seed, source_id) are kept, i.e. a seeded uniform sample of pairs, the same pairs in every
   input; every record of a kept pair stays. So "200k pairs per language" keeps MT and Align records of
   the same 200k sentences. Ids are assumed unique per language.
2. weight W of an input with n records left after the cap: c = floor(W·n + 1/2) records (round half
   up, computed exactly from the decimal or fraction the user wrote). Every record appears
   floor(c / n) times, and c mod n records, a seeded sample without replacement, once more.
3. mode `concat`: the inputs in the order given; within an input, full passes in file order, then the
   extra sample in file order. Mode `interleave`: all chosen records in one seeded random permutation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from array import array
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from typing import List, Literal, Optional, Sequence

import numpy as np

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import STDIO, ErrorPolicy, OnErrorOptions, RecordWriter, file_stem, open_binary_input, read_records
from aligninstruct_cli.languages import get_language
from aligninstruct_cli.options import OptionError, option, option_ref

MODES = ("interleave", "concat")


def _weight_specs(value) -> dict[str, str]:
    """`--weight NAME=W` (repeatable) or a config mapping {NAME: W} -> {name: W as written}."""
    if isinstance(value, dict):
        specs = {str(k): str(v) for k, v in value.items()}
    else:
        specs = {}
        for spec in value:
            name_, sep, weight = str(spec).rpartition("=")
            if not sep or not name_:
                raise ValueError(f"{spec!r}: expected NAME=W")
            specs[name_] = weight
    for weight in specs.values():
        parse_weight(weight)
    return specs


@dataclass(kw_only=True)
class MixOptions(OnErrorOptions):
    """The options of `ait mix` (and of `mix`)."""

    mode: Literal[MODES] = option(  # type: ignore[valid-type]
        "interleave", help="interleave: one seeded shuffle of all chosen records (multi-task, as MT+Align); "
                           "concat: inputs one after another, each in file order.")
    weight: dict[str, str] = option(
        default_factory=dict, parse=_weight_specs, cli_type=Optional[List[str]], metavar="NAME=W", default_doc="1",
        help="Up/down-sample input NAME to floor(W·n + 1/2) records (e.g. 2, 0.5, 1/3); every record appears "
             "floor(W) or floor(W)+1 times. Repeat per input.")
    max_per_lang: Optional[int] = option(None, min=0, default_doc="no cap", help="Keep at most N source pairs per "
                                         "language (a seeded sample of source_ids, the same pairs in every input; the "
                                         "paper used 200000).")
    seed: int = option(0, help="Random seed; the same seed gives the same output bytes.",
                       details="It seeds the cap's sample, the fractional weights and the interleaving.")
    tmp_dir: Optional[str] = option(None, metavar="DIR", default_doc="system temp", help="Where stdin / .gz inputs "
                                    "are decompressed for random access.", details="They need their uncompressed size there.")


@dataclass
class MixInput:
    name: str
    path: str
    weight: Fraction = Fraction(1)


@dataclass
class InputIndex:
    """What the index pass keeps of one input (see the module docstring)."""

    source: MixInput
    readable_path: str  # the file the offsets refer to (a spooled copy for stdin / .gz)
    offsets: np.ndarray  # int64, one per record, in file order
    categories: np.ndarray  # int32, index into MixPlan.categories
    pair_hashes: np.ndarray | None  # uint64, or None without a cap
    file_size: int
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass
class InputPlan:
    index: InputIndex
    kept: np.ndarray  # int64 positions left after the cap, in file order
    repeats: int  # full passes
    extra: np.ndarray  # int64 positions written once more, in file order

    @property
    def count(self) -> int:
        return self.repeats * len(self.kept) + len(self.extra)


@dataclass
class MixPlan:
    inputs: list[InputPlan]
    categories: list[tuple[str, str, str]]  # (objective, src_lang, tgt_lang), canonical codes
    file_ids: np.ndarray  # int32 per output record: which input
    offsets: np.ndarray  # int64 per output record
    pairs_by_language: dict[str, tuple[int, int]] = field(default_factory=dict)  # lang -> (available, kept)

    @property
    def total(self) -> int:
        return len(self.offsets)


# ----------------------------------------------------------------------------------------------- options
def parse_inputs(specs: Sequence[str]) -> list[MixInput]:
    """`NAME=PATH` or `PATH` (name = file name without .jsonl/.gz/...); names must be unique."""
    if not specs:
        raise AitError("give at least one input file")
    inputs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or "/" in name or (os.path.exists(spec) and not os.path.exists(path)):
            name, path = file_stem(spec), spec
        if not path:
            raise AitError(f"input {spec!r}: empty path")
        inputs.append(MixInput(name, path))
    names = Counter(i.name for i in inputs)
    dupes = [n for n, c in names.items() if c > 1]
    if dupes:
        raise AitError(f"input name(s) used twice: {', '.join(dupes)}",
                       hint="name inputs explicitly: NAME=PATH")
    if sum(1 for i in inputs if i.path == STDIO) > 1:
        raise AitError("stdin (-) can be read only once")
    return inputs


MAX_WEIGHT = 1_000_000  # beyond it a weight only exhausts memory (1e309 is a valid Fraction)


def parse_weight(text: str) -> Fraction:
    try:
        weight = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise AitError(f"weight {text!r} is not a number (use e.g. 2, 0.5 or 1/3)") from None
    if weight < 0:
        raise AitError(f"weight {text!r} is negative")
    if weight > MAX_WEIGHT:
        raise AitError(f"weight {text!r} is too large (at most {MAX_WEIGHT:,}: each record that many times)")
    return weight


def apply_weights(inputs: list[MixInput], specs: Sequence[str] | dict[str, str]) -> None:
    """Set weights from `NAME=W` specs (or a {NAME: W} mapping); an unknown name is an error."""
    by_name = {i.name: i for i in inputs}
    try:
        weights = _weight_specs(specs)
    except ValueError as exc:
        raise OptionError(f"{option_ref('weight')} {exc}") from None
    for input_name, value in weights.items():
        if input_name not in by_name:
            raise OptionError(f"{option_ref('weight')} {input_name}={value}: no input named {input_name!r} "
                              f"(inputs: {', '.join(by_name)})")
        by_name[input_name].weight = parse_weight(value)


def language_key(src_lang: str, tgt_lang: str) -> str:
    """The language a record counts towards for --max-per-lang (module docstring, rule 1)."""
    if src_lang == tgt_lang or tgt_lang == "en":
        return src_lang
    if src_lang == "en":
        return tgt_lang
    return "-".join(sorted((src_lang, tgt_lang)))


# ----------------------------------------------------------------------------------------------- index
def _readable(source: MixInput, tmp_dir: str) -> str:
    """A plain file path with the input's (decompressed) bytes: the input itself when it is one."""
    if source.path != STDIO and not source.path.endswith(".gz"):
        return source.path
    stream = open_binary_input(source.path)
    fd, spool = tempfile.mkstemp(prefix=f"{source.name}.", suffix=".jsonl", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    except (OSError, EOFError) as exc:
        raise AitError(f"{source.path}: cannot read: {exc}") from None
    finally:
        if source.path != STDIO:
            stream.close()
    return spool


class Categories:
    """Small integer ids for (objective, src_lang, tgt_lang), merging code spellings (kaz_Cyrl = kk)."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str, str]] = []  # id -> canonical key
        self._ids: dict[tuple[str, str, str], int] = {}  # any spelling -> id

    def id(self, objective: str, src_lang: str, tgt_lang: str) -> int:
        raw = (objective, src_lang, tgt_lang)
        cat = self._ids.get(raw)
        if cat is None:
            # general instructions (records.GENERAL) may name no language: "" counts as one language
            canon = (objective, get_language(src_lang).code if src_lang else "",
                     get_language(tgt_lang).code if tgt_lang else "")
            cat = self._ids.get(canon)
            if cat is None:
                cat = self._ids[canon] = len(self.keys)
                self.keys.append(canon)
            self._ids[raw] = cat
        return cat


def index_input(source: MixInput, categories: Categories, *, tmp_dir: str, policy: ErrorPolicy,
                hash_key: bytes | None) -> InputIndex:
    """One pass over `source`: offsets, categories and (with `hash_key`) source-pair hashes."""
    path = _readable(source, tmp_dir)
    offsets, cats, hashes, ids = array("q"), array("i"), array("Q"), array("Q")
    skipped_before = policy.skipped
    blake, category = hashlib.blake2b, categories.id
    # ids are checked for uniqueness below, on 8-byte hashes, not by read_records' set (~60 bytes a record)
    records = read_records(path, "instruction", fmt="jsonl", policy=policy, with_offset=True,
                           name=source.path, unique_ids=False)
    for offset, rec in console.track(records, f"index {source.name}", every=20000):
        offsets.append(offset)
        cats.append(category(rec["objective"], rec.get("src_lang", ""), rec.get("tgt_lang", "")))
        ids.append(hash(str(rec["id"])) & 0xFFFF_FFFF_FFFF_FFFF)
        if hash_key is not None:
            digest = blake(str(rec["source_id"]).encode(), digest_size=8, key=hash_key).digest()
            hashes.append(int.from_bytes(digest, "little"))
    first = _first_occurrences(np.frombuffer(ids, dtype=np.uint64), np.frombuffer(offsets, dtype=np.int64),
                               path, source.path, policy)
    index = InputIndex(source, path, np.frombuffer(offsets, dtype=np.int64), np.frombuffer(cats, dtype=np.int32),
                       np.frombuffer(hashes, dtype=np.uint64) if hash_key is not None else None,
                       os.path.getsize(path), policy.skipped - skipped_before)
    if first is not None:
        index.offsets, index.categories = index.offsets[first], index.categories[first]
        if index.pair_hashes is not None:
            index.pair_hashes = index.pair_hashes[first]
    return index


def _line_at(path: str, offset: int) -> int:
    """The line number of the line starting at byte `offset`."""
    count, done = 1, 0
    with open(path, "rb") as fh:
        while done < offset:
            block = fh.read(min(1 << 20, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


def _first_occurrences(id_hashes: np.ndarray, offsets: np.ndarray, path: str, name: str,
                       policy: ErrorPolicy) -> np.ndarray | None:
    """Duplicate ids in one input (by their 64-bit hashes): each later occurrence is a bad record (`policy`:
    fail names its FILE:LINE; skip drops it, counted). None when every id is unique, else the mask of the
    records kept."""
    order = np.argsort(id_hashes, kind="stable")
    repeated = np.flatnonzero(id_hashes[order][1:] == id_hashes[order][:-1]) + 1
    if not len(repeated):
        return None
    later = np.sort(order[repeated])  # stable sort: each group's first record is not among them
    keep = np.ones(len(id_hashes), dtype=bool)
    keep[later] = False
    for k, i in enumerate(later):
        line = _line_at(path, int(offsets[i])) if k < 5 else None
        policy.handle(InputError(name, line, "duplicate id: an earlier record of this file has it", field="id",
                                 hint="ids must be unique in a file"))
    return keep


# ----------------------------------------------------------------------------------------------- plan
def _seeded_rng(seed: int, label: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}:{label}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def plan_mix(indexes: list[InputIndex], categories: list[tuple[str, str, str]], options: MixOptions) -> MixPlan:
    mode, seed, max_per_lang = options.mode, options.seed, options.max_per_lang
    lang_of_cat = np.array([0] * len(categories), dtype=np.int32)
    languages: list[str] = []
    for i, (_, s, t) in enumerate(categories):
        key = language_key(s, t)
        if key not in languages:
            languages.append(key)
        lang_of_cat[i] = languages.index(key)

    keep_masks = [np.ones(len(ix), dtype=bool) for ix in indexes]
    pairs_by_language: dict[str, tuple[int, int]] = {}
    if max_per_lang is not None:
        for lang_id, lang in enumerate(languages):
            in_lang = [lang_of_cat[ix.categories] == lang_id if len(ix) else np.zeros(0, bool) for ix in indexes]
            hashes = np.unique(np.concatenate([ix.pair_hashes[m] for ix, m in zip(indexes, in_lang)]))
            if len(hashes) > max_per_lang:
                threshold = hashes[max_per_lang - 1] if max_per_lang > 0 else None
                for ix, m, keep in zip(indexes, in_lang, keep_masks):
                    drop = m & (ix.pair_hashes > threshold) if threshold is not None else m
                    keep &= ~drop
            pairs_by_language[lang] = (len(hashes), min(len(hashes), max_per_lang))

    plans = []
    for ix, keep in zip(indexes, keep_masks):
        kept = np.flatnonzero(keep).astype(np.int64)
        n = len(kept)
        target = int(ix.source.weight * n + Fraction(1, 2)) if n else 0  # floor(W·n + 1/2), exact
        repeats, rest = divmod(target, n) if n else (0, 0)
        rng = _seeded_rng(seed, f"weight:{ix.source.name}")
        extra = np.sort(kept[rng.choice(n, size=rest, replace=False)]) if rest else np.zeros(0, np.int64)
        plans.append(InputPlan(ix, kept, repeats, extra))

    file_ids = np.concatenate([np.full(p.count, i, dtype=np.int32) for i, p in enumerate(plans)]
                              or [np.zeros(0, np.int32)])
    offsets = np.concatenate([np.concatenate([np.tile(p.index.offsets[p.kept], p.repeats),
                                              p.index.offsets[p.extra]]) for p in plans]
                             or [np.zeros(0, np.int64)])
    if mode == "interleave" and len(offsets):
        order = _seeded_rng(seed, "interleave").permutation(len(offsets))
        file_ids, offsets = file_ids[order], offsets[order]
    return MixPlan(plans, categories, file_ids, offsets, pairs_by_language)


def output_counts(plan: MixPlan) -> np.ndarray:
    """Records written per category (same order as plan.categories)."""
    total = np.zeros(len(plan.categories), dtype=np.int64)
    for p in plan.inputs:
        n_cat = len(plan.categories)
        total += p.repeats * np.bincount(p.index.categories[p.kept], minlength=n_cat)[:n_cat]
        total += np.bincount(p.index.categories[p.extra], minlength=n_cat)[:n_cat]
    return total


# ----------------------------------------------------------------------------------------------- write
def write_plan(plan: MixPlan, out: RecordWriter, *, chunk: int = 1 << 16) -> int:
    """Copy the planned lines, byte for byte, to `out`."""
    fds = [os.open(p.index.readable_path, os.O_RDONLY) for p in plan.inputs]
    # A line ends where the next indexed line starts (or at the end of the file): read that much and cut
    # at the first newline, which also drops blank or skipped lines in between.
    try:
        next_offsets = [np.append(p.index.offsets[1:], p.index.file_size) for p in plan.inputs]
        sorted_offsets = [p.index.offsets for p in plan.inputs]
        written = 0
        pread, write = os.pread, out.write_raw
        for start in console.track(range(0, plan.total, chunk), "write", total=(plan.total + chunk - 1) // chunk,
                                   unit="chunks", every=1):
            ids = plan.file_ids[start:start + chunk]
            offs = plan.offsets[start:start + chunk]
            lengths = np.empty(len(offs), dtype=np.int64)
            for i in np.unique(ids):
                sel = ids == i
                pos = np.searchsorted(sorted_offsets[i], offs[sel])
                lengths[sel] = next_offsets[i][pos] - offs[sel]
            for fid, off, length in zip(ids.tolist(), offs.tolist(), lengths.tolist()):
                data = pread(fds[fid], length, off)
                cut = data.find(b"\n")
                if cut < 0:
                    data += b"\n"
                elif cut != len(data) - 1:
                    data = data[:cut + 1]
                write(data)
            written += len(offs)
        return written
    finally:
        for fd in fds:
            os.close(fd)


# ----------------------------------------------------------------------------------------------- all
def mix(inputs: list[MixInput], output: str, options: MixOptions | None = None, *,
        policy: ErrorPolicy | None = None, **fields) -> MixPlan:
    """Index `inputs`, plan the mix and write it to `output` (atomically; `-` = stdout). `options` is a
    `MixOptions`, or give its fields as keywords (`mix(inputs, "out.jsonl", seed=3)`)."""
    options = dataclasses.replace(options, **fields) if options else MixOptions(**fields)
    seed, max_per_lang, tmp_dir = options.seed, options.max_per_lang, options.tmp_dir
    policy = policy or ErrorPolicy(options.on_error)
    hash_key = f"ait-mix:{seed}".encode()[:64] if max_per_lang is not None else None
    categories = Categories()
    with tempfile.TemporaryDirectory(prefix="ait-mix.", dir=tmp_dir) as spool_dir:
        indexes = [index_input(i, categories, tmp_dir=spool_dir, policy=policy, hash_key=hash_key)
                   for i in inputs]
        plan = plan_mix(indexes, categories.keys, options)
        with RecordWriter(output) as out:
            write_plan(plan, out)
    return plan


def summary_rows(plan: MixPlan) -> list[tuple[str, str, int]]:
    """(direction "src→tgt", objective, records written) for every category with records."""
    counts = output_counts(plan)
    rows = [(f"{s}→{t}", obj, int(c)) for (obj, s, t), c in zip(plan.categories, counts) if c]
    return sorted(rows)


def summary_json(plan: MixPlan) -> dict:
    return {
        "total": plan.total,
        "inputs": [{"name": p.index.source.name, "path": p.index.source.path, "records": len(p.index),
                    "skipped": p.index.skipped, "after_cap": len(p.kept), "weight": str(p.index.source.weight),
                    "written": p.count} for p in plan.inputs],
        "pairs_per_language": {lang: {"available": a, "kept": k} for lang, (a, k) in plan.pairs_by_language.items()},
        "records": [{"direction": d, "objective": o, "count": c} for d, o, c in summary_rows(plan)],
    }


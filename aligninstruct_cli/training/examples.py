"""Training examples: tokenize the records once (cached by content hash), mask, and plan length-grouped batches.

Example layout (templates.py): `input + OUTPUT_SEPARATOR + output + EOS`. The input is tokenized as the
inference prompt is (the tokenizer's own special tokens, e.g. a BOS for Llama, none for BLOOM); the
separator + output is tokenized on its own and EOS appended, so the prompt tokens at training time are
exactly the prompt tokens at inference time. Loss is on the separator + output + EOS tokens only.

Batching: length-grouped micro-batches with dynamic padding, no packing. Each sequence is its own row,
so no sequence can attend to another and positions (BLOOM's ALiBi bias, rotary positions) start at 0 for
every sequence without any special mask. Grouping by length keeps padding low (see the benchmark).

Truncation (`--too-long`) of a record longer than `--max-length` tokens: `truncate-input` (the default)
keeps separator + output + EOS whole and cuts the input's beginning, after its leading special tokens
(a BOS), because every template ends with what the output answers (the target-language cue, the
assertion, the sentence to complete) and starts with its general instruction; it drops the record when
no input token would be left. `error` stops before any launch; `skip` drops the record; `truncate` cuts
the end of the example (output side first, like a right-truncating tokenizer) and drops it if no output
token is left. Cuts and drops are counted and reported. A record with more characters than `--max-length`
tokens could span (`io.char_budget`: 64 a token) meets the same rule before it is tokenized, so one huge
line cannot take gigabytes of memory: `error` names its FILE:LINE, the cuts keep the same end of it.

Order: the order of an epoch is a pure function of (seed, stage, epoch, lengths, batch geometry), so a
resumed run replays it exactly and every rank computes the whole plan without communication.

Memory: a tokenized file is cached as a directory of .npy arrays (flat int32 tokens, offsets, prompt
lengths, line numbers, ids as one UTF-8 blob + offsets) and every rank memory-maps it, so the tokens are
read from the page cache that all ranks of a node share, not copied into each. A multi-task stage is a
`StageSet` over its members' caches, so no tokens are concatenated either; each rank holds only the
per-example lengths (about 20 bytes an example).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from array import array
from typing import Any, Iterable

import numpy as np

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.instructions.templates import OUTPUT_SEPARATOR
from aligninstruct_cli.io import char_budget, read_records
from aligninstruct_cli.models import chat_prompt
from aligninstruct_cli.provenance import file_sha256
from aligninstruct_cli.records import record_converter

CACHE_VERSION = 2  # 2: a directory of memory-mappable .npy arrays
GROUP_FACTOR = 32  # length-sorting window, in global batches: bigger = less padding, less randomness
_TOKENIZE_CHUNK = 1024


# ------------------------------------------------------------------------------------------- tokenized set
class IdTable:
    """Record ids as one UTF-8 blob + offsets: memory-mappable, and compact where fixed-width numpy strings
    would cost 4 bytes per character of the longest id for every record."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob = blob  # uint8
        self.offsets = offsets  # int64, n + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return bytes(self.blob[self.offsets[i]:self.offsets[i + 1]]).decode("utf-8")

    def take(self, indices: Iterable[int]) -> list[str]:
        return [self[int(i)] for i in indices]

    def tolist(self) -> list[str]:
        return self.take(range(len(self)))


@dataclass
class TokenizedSet:
    """Examples as flat int32 tokens + offsets; `prompt_len[i]` tokens of example i carry no loss."""

    tokens: np.ndarray  # int32, all examples back to back
    offsets: np.ndarray  # int64, n + 1
    prompt_len: np.ndarray  # int32, n
    ids: IdTable  # the records' ids
    lines: np.ndarray  # int64, n: line numbers in the source file
    stats: dict[str, int] = field(default_factory=dict)

    _ARRAYS = ("tokens", "offsets", "prompt_len", "lines")

    def __len__(self) -> int:
        return len(self.prompt_len)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def output_lengths(self) -> np.ndarray:
        return self.lengths - self.prompt_len

    def example(self, i: int) -> tuple[np.ndarray, int]:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]], int(self.prompt_len[i])

    def record_ids(self, indices: Iterable[int]) -> list[str]:
        return self.ids.take(indices)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a cache directory atomically (a temporary directory renamed into place)."""
        target = Path(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name in self._ARRAYS:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
            np.save(tmp / "ids_blob.npy", np.asarray(self.ids.blob, dtype=np.uint8))
            np.save(tmp / "ids_offsets.npy", np.asarray(self.ids.offsets, dtype=np.int64))
            (tmp / "stats.json").write_text(json.dumps(self.stats, sort_keys=True))
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TokenizedSet":
        """Memory-map a cache directory (read-only)."""
        root = Path(path)
        arrays = {name: np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in cls._ARRAYS}
        ids = IdTable(np.load(root / "ids_blob.npy", mmap_mode="r", allow_pickle=False),
                      np.load(root / "ids_offsets.npy", mmap_mode="r", allow_pickle=False))
        stats = json.loads((root / "stats.json").read_text())
        return cls(arrays["tokens"], arrays["offsets"], arrays["prompt_len"], ids, arrays["lines"], stats)

    @classmethod
    def concat(cls, parts: list["TokenizedSet"], prefixes: list[str]) -> "StageSet":
        """One set from several (a multi-task stage); ids become `prefix:id` so they stay unique."""
        return StageSet(parts, prefixes)


class StageSet:
    """The examples of several TokenizedSets as one index space, without copying their tokens."""

    def __init__(self, parts: list[TokenizedSet], prefixes: list[str]):
        self.parts = parts
        self.prefixes = prefixes
        self.starts = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
        self.lengths = np.concatenate([p.lengths for p in parts])
        self.output_lengths = np.concatenate([p.output_lengths for p in parts])
        self.stats = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return part, i - int(self.starts[part])

    def example(self, i: int) -> tuple[np.ndarray, int]:
        part, local = self._locate(i)
        return self.parts[part].example(local)

    def record_ids(self, indices: Iterable[int]) -> list[str]:
        out = []
        for i in indices:
            part, local = self._locate(int(i))
            out.append(f"{self.prefixes[part]}:{self.parts[part].ids[local]}")
        return out


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything in the tokenizer that changes token ids."""
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr((tokenizer.eos_token_id, tokenizer("a b")["input_ids"])).encode())
    return h.hexdigest()


def cache_key(file_hash: str, tok_fingerprint: str, max_length: int, too_long: str, chat_template: str = "",
              length_budget: str = "together", data_format: str = "auto") -> str:
    """`chat_template`: the template's text when inputs are rendered with it, else empty."""
    text = f"v{CACHE_VERSION}|{file_hash}|{tok_fingerprint}|{max_length}|{too_long}|{OUTPUT_SEPARATOR!r}"
    if length_budget != "together":  # the together key stays as it was: caches made before stay valid
        text += f"|budget:{length_budget}"
    if chat_template:
        text += f"|chat:{chat_template}"
    if data_format != "auto":
        text += f"|format:{data_format}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def tokenize_records(records: Iterable[tuple[int, dict[str, Any]]], tokenizer, *, path: str, max_length: int,
                     too_long: str, progress: bool = True, chat_template: bool = False,
                     length_budget: str = "together") -> TokenizedSet:
    """Tokenize (line, instruction record) pairs; apply the `--too-long` rule; count what it did. With
    `chat_template`, each input is the user's turn of the tokenizer's chat template (`models.chat_prompt`,
    as `ait translate --chat-template` renders its prompts). `length_budget`: `max_length` bounds input +
    output together, or each side (`each`)."""
    if tokenizer.eos_token_id is None:
        raise AitError("the tokenizer has no EOS token; training appends EOS to every output")
    # Compact accumulators (array, not lists of small arrays): millions of records stay cheap.
    tokens = array("i")
    lengths = array("q")
    prompt_len = array("i")
    id_blob = bytearray()
    id_offsets = array("q", [0])
    lines = array("q")
    stats = {"records": 0, "truncated": 0, "skipped_too_long": 0, "max_tokens": 0}
    rule = TooLongRule(path, max_length, too_long, length_budget, set(tokenizer.all_special_ids))

    def flush(chunk: list[tuple[int, dict[str, Any]]]) -> None:
        inputs = [chat_prompt(tokenizer, r["input"]) if chat_template else r["input"] for _, r in chunk]
        prompts = tokenizer(inputs)["input_ids"]
        targets = tokenizer([OUTPUT_SEPARATOR + r["output"] for _, r in chunk],
                            add_special_tokens=False)["input_ids"]
        for (line, rec), p, t in zip(chunk, prompts, targets):
            t = t + [tokenizer.eos_token_id]
            stats["records"] += 1
            stats["max_tokens"] = max(stats["max_tokens"], len(p) + len(t))
            p, t, outcome = rule.fit_tokens(line, rec["id"], p, t)
            if outcome == SKIPPED:
                stats["skipped_too_long"] += 1
                continue
            if outcome == TRUNCATED:
                stats["truncated"] += 1
            tokens.extend(p)
            tokens.extend(t)
            lengths.append(len(p) + len(t))
            prompt_len.append(len(p))
            id_blob.extend(str(rec["id"]).encode("utf-8"))
            id_offsets.append(len(id_blob))
            lines.append(line)

    chunk: list[tuple[int, dict[str, Any]]] = []
    items = console.track(records, f"tokenizing {Path(path).name}", unit="records") if progress else records
    for line, rec in items:
        kept = rule.fit_chars(line, rec)
        if kept is None:
            stats["records"] += 1
            stats["skipped_too_long"] += 1
            continue
        item = (line, kept)
        chunk.append(item)
        if len(chunk) >= _TOKENIZE_CHUNK:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=offsets[1:])
    ids = IdTable(np.frombuffer(bytes(id_blob), dtype=np.uint8), np.frombuffer(id_offsets, dtype=np.int64))
    return TokenizedSet(np.frombuffer(tokens, dtype=np.int32), offsets, np.frombuffer(prompt_len, dtype=np.int32),
                        ids, np.frombuffer(lines, dtype=np.int64), stats)


KEPT, TRUNCATED, SKIPPED = "kept", "truncated", "skipped"
_TOO_LONG_HINT = "raise --max-length, or pass --too-long truncate-input|skip|truncate"


class TooLongRule:
    """`--too-long` (see the module docstring) for the records of file `path`: first on a record's characters
    (`fit_chars`, before tokenizing), then on its tokens (`fit_tokens`), with `max_length` bounding input +
    output together or each side (`length_budget` each)."""

    def __init__(self, path: str, max_length: int, too_long: str, length_budget: str, special: set[int]):
        self.path, self.max_length, self.too_long, self.length_budget = path, max_length, too_long, length_budget
        self.special = special  # the tokenizer's special ids: cut_input keeps the leading ones
        self.budget = char_budget(max_length)

    def fit_chars(self, line: int, rec: dict[str, Any]) -> dict[str, Any] | None:
        """The rule applied before tokenizing to a record with more characters than `max_length` tokens can
        span (`io.char_budget`): one huge line would otherwise take gigabytes to tokenize. The part a cut keeps
        is tokenized as usual (and cut again to tokens); None: dropped."""
        budget, too_long = self.budget, self.too_long
        n_in, n_out = len(rec["input"]), len(rec["output"])
        if self.length_budget == "each":
            if n_in <= budget and n_out <= budget:
                return rec
            if too_long == "error":
                raise InputError(self.path, line, f"record {rec['id']!r} has {max(n_in, n_out):,} characters on a "
                                 f"side, far more than --max-length {self.max_length} tokens hold", hint=_TOO_LONG_HINT)
            if too_long != "skip" and (n_out <= budget or too_long == "truncate"):
                keep_end = too_long == "truncate-input"
                return {**rec, "input": rec["input"][max(0, n_in - budget):] if keep_end else rec["input"][:budget],
                        "output": rec["output"][:budget]}
            return None
        if n_in + n_out <= budget:
            return rec
        if too_long == "error":
            raise InputError(self.path, line, f"record {rec['id']!r} has {n_in + n_out:,} characters, far more than "
                             f"--max-length {self.max_length} tokens hold", hint=_TOO_LONG_HINT)
        if too_long == "truncate-input" and n_out < budget:
            return {**rec, "input": rec["input"][n_in - (budget - n_out):]}  # its end: what cut_input keeps
        if too_long == "truncate" and n_in < budget:
            return {**rec, "output": rec["output"][:budget - n_in]}
        return None

    def fit_tokens(self, line: int, rec_id: Any, p: list[int], t: list[int]) -> tuple[list[int], list[int], str]:
        """(prompt, target, KEPT / TRUNCATED / SKIPPED) of a tokenized record; InputError with `error`."""
        limit, too_long = self.max_length, self.too_long
        if self.length_budget == "each":
            if len(p) <= limit and len(t) <= limit:
                return p, t, KEPT
            if too_long == "error":
                raise InputError(self.path, line, f"record {rec_id!r} has {len(p)} input and {len(t)} output tokens, "
                                 f"more than --max-length {limit} on a side (--length-budget each)",
                                 hint=_TOO_LONG_HINT)
            if len(p) > limit and too_long != "skip":
                p = cut_input(p, limit, self.special) if too_long == "truncate-input" else p[:limit]
            if len(t) > limit and too_long == "truncate":
                t = t[:limit]
            return p, t, SKIPPED if too_long == "skip" or not p or len(t) > limit else TRUNCATED
        if len(p) + len(t) <= limit:
            return p, t, KEPT
        if too_long == "error":
            raise InputError(self.path, line, f"record {rec_id!r} is {len(p) + len(t)} tokens, longer than "
                             f"--max-length {limit}", hint=_TOO_LONG_HINT)
        if too_long == "truncate-input":
            p = cut_input(p, limit - len(t), self.special)
        elif too_long == "truncate" and len(p) < limit:
            t = t[:limit - len(p)]
        return p, t, SKIPPED if too_long == "skip" or not p or len(p) + len(t) > limit else TRUNCATED


def cut_input(prompt: list[int], room: int, special: set[int]) -> list[int]:
    """The prompt in at most `room` tokens: its leading special tokens (a BOS) and as many of its last
    tokens as fit; [] when not one non-special token fits."""
    head = 0
    while head < len(prompt) and prompt[head] in special:
        head += 1
    keep = room - head
    return prompt[:head] + prompt[len(prompt) - keep:] if keep >= 1 else []


def load_or_tokenize(path: str, tokenizer, *, max_length: int, too_long: str, cache_dir: str | os.PathLike[str],
                     tok_fingerprint: str | None = None, file_hash: str | None = None,
                     chat_template: bool = False, length_budget: str = "together",
                     data_format: str = "auto") -> tuple[TokenizedSet, Path]:
    """The tokenized form of instruction file `path` (ait's records, or another tool's: `data_format`), from
    the cache when its content was seen before."""
    if not Path(path).is_file():
        raise AitError(f"{path}: no such file" if not Path(path).exists() else f"{path}: not a file")
    file_hash = file_hash or file_sha256(path)
    key = cache_key(file_hash, tok_fingerprint or tokenizer_fingerprint(tokenizer), max_length, too_long,
                    str(tokenizer.chat_template) if chat_template else "", length_budget, data_format)
    cache = Path(cache_dir) / f"{key}.tokens"
    if cache.is_dir():
        try:
            return TokenizedSet.load(cache), cache
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt
    records = read_records(path, kind="instruction", with_location=True, convert=record_converter(data_format))
    data = tokenize_records(records, tokenizer, path=path, max_length=max_length, too_long=too_long,
                            chat_template=chat_template, length_budget=length_budget)
    if not len(data):
        raise AitError(f"{path}: no usable records" + (" (all too long)" if data.stats.get("records") else ""))
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    data.save(cache)
    return data, cache


# ------------------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class Geometry:
    micro_batch: int  # records per rank per micro-step
    world_size: int
    grad_accum: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.world_size * self.grad_accum


def steps_per_epoch(n: int, geometry: Geometry) -> int:
    return -(-n // geometry.global_batch)


def epoch_plan(lengths: np.ndarray, geometry: Geometry, *, seed: int, stage: int, epoch: int) -> list[np.ndarray]:
    """The global batches of one epoch, in order: a list of index arrays, each sorted by length.

    Shuffle, sort by length inside windows of GROUP_FACTOR global batches, cut into global batches, shuffle
    the batches. Only the last batch of the epoch may be short."""
    rng = np.random.default_rng([seed, stage, epoch])
    n = len(lengths)
    gb = geometry.global_batch
    perm = rng.permutation(n)
    window = gb * GROUP_FACTOR
    batches: list[np.ndarray] = []
    for start in range(0, n, window):
        part = perm[start:start + window]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + gb] for i in range(0, len(part), gb)]
    full = [b for b in batches if len(b) == gb]
    short = [b for b in batches if len(b) < gb]
    order = rng.permutation(len(full))
    return [full[i] for i in order] + short


def split_global_batch(batch: np.ndarray, geometry: Geometry) -> list[list[np.ndarray]]:
    """[micro-step][rank] → indices. Contiguous slices of the length-sorted batch, so each micro-batch holds
    similar lengths; a short last batch is spread evenly (a rank may get an empty micro-batch)."""
    parts = np.array_split(batch, geometry.world_size * geometry.grad_accum)
    return [[parts[a * geometry.world_size + r] for r in range(geometry.world_size)]
            for a in range(geometry.grad_accum)]


def collate(data: TokenizedSet, indices: np.ndarray, pad_id: int, *, pad_to_multiple: int = 1) -> dict[str, Any]:
    """Right-padded input ids + attention mask, and the (row, position) pairs whose next token is a target.

    Returns numpy arrays: input_ids [b, T], attention_mask [b, T], loss_rows, loss_cols (positions whose
    logits predict a target token), loss_targets; `real_tokens` counts non-pad tokens."""
    examples = [data.example(int(i)) for i in indices]
    longest = max(len(t) for t, _ in examples)
    width = -(-longest // pad_to_multiple) * pad_to_multiple
    input_ids = np.full((len(examples), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.int64)
    rows, cols = [], []
    for r, (toks, plen) in enumerate(examples):
        input_ids[r, :len(toks)] = toks
        mask[r, :len(toks)] = 1
        # position p predicts token p + 1: targets are tokens plen .. len-1
        cols.append(np.arange(plen - 1, len(toks) - 1))
        rows.append(np.full(len(toks) - plen, r))
    loss_rows = np.concatenate(rows).astype(np.int64)
    loss_cols = np.concatenate(cols).astype(np.int64)
    return {"input_ids": input_ids, "attention_mask": mask, "loss_rows": loss_rows, "loss_cols": loss_cols,
            "loss_targets": input_ids[loss_rows, loss_cols + 1], "real_tokens": int(mask.sum())}


def output_tokens(data: TokenizedSet, indices: np.ndarray) -> int:
    return int(data.output_lengths[indices].sum()) if len(indices) else 0

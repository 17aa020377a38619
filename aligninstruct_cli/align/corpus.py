"""The integer-encoded corpus EM works on, and the word-pair id of every alignment cell.

Memory design (see docs/align.md, "Memory"):
- Tokens are integer ids in flat int32 arrays (4 bytes per token per side); records themselves are
  spooled to a temporary file, not kept in memory.
- Sentence pairs are grouped by (target length m, source length n). A group is cut into chunks of at
  most `chunk_cells` cells, and each chunk is one dense [B, m, n] block: no padding, no masks.
- Every cell (b, j, i) of a block holds the id of the word pair (source word of position i, target
  word of position j) in the translation tables: 4 bytes per cell, kept for all EM passes (both
  directions share them). Ids are built shard by shard with `torch.unique` (sort) so the transient cost
  of ~40 bytes per cell applies to one shard only; shards are then remapped to global ids. Above
  `memmap_cells` cells the ids live in a memory-mapped file in the work directory instead of RAM.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np

DEFAULT_CHUNK_CELLS = 1 << 20
DEFAULT_SHARD_CELLS = 1 << 22
DEFAULT_MEMMAP_CELLS = 1 << 28  # 1 GiB of int32 ids


class Vocab:
    """word -> dense id, in order of first appearance. A frozen vocabulary (from a saved model) gives
    unseen words ids at or above `known`, without ever storing them in the model."""

    def __init__(self, words: list[str] | None = None, *, frozen: bool = False):
        self.words: list[str] = list(words or [])
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.known = len(self.words) if frozen else None

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str]) -> list[int]:
        index = self.index
        try:
            return list(map(index.__getitem__, tokens))  # fast path: every word known
        except KeyError:
            pass
        get = index.get
        out = []
        for w in tokens:
            i = get(w)
            if i is None:
                i = index[w] = len(self.words)
                self.words.append(w)
            out.append(i)
        return out

    @property
    def size(self) -> int:
        """The number of words the tables know (all words unless frozen)."""
        return len(self.words) if self.known is None else self.known


class EncodedCorpus:
    """Sentence pairs as int32 token ids, appended one at a time (streaming)."""

    def __init__(self, src_vocab: Vocab, tgt_vocab: Vocab):
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self._src = array("i")
        self._tgt = array("i")
        self._src_len = array("i")
        self._tgt_len = array("i")

    def add(self, src_words: list[str], tgt_words: list[str]) -> None:
        self._src.extend(self.src_vocab.encode(src_words))
        self._tgt.extend(self.tgt_vocab.encode(tgt_words))
        self._src_len.append(len(src_words))
        self._tgt_len.append(len(tgt_words))

    def __len__(self) -> int:
        return len(self._src_len)

    def release_tokens(self) -> None:
        """Drop the token ids (the lengths stay): a CellLayout keeps its own block-ordered copy."""
        self._src = array("i")
        self._tgt = array("i")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(src ids, tgt ids, src lengths, tgt lengths) as numpy views (no copy)."""
        as_np = lambda a: np.frombuffer(a, dtype=np.int32) if len(a) else np.zeros(0, np.int32)  # noqa: E731
        return as_np(self._src), as_np(self._tgt), as_np(self._src_len), as_np(self._tgt_len)

    @property
    def n_cells(self) -> int:
        _, _, sl, tl = self.arrays()
        return int(np.dot(sl.astype(np.int64), tl.astype(np.int64)))


@dataclass
class Chunk:
    """One dense block: B sentence pairs of target length m and source length n."""

    m: int
    n: int
    sentences: np.ndarray  # [B] sentence numbers (input order)
    cell_start: int  # offset of the block's [B, m, n] cell ids in the cell store
    src_start: int  # offset of the block's [B, n] source ids in block-ordered arrays
    tgt_start: int  # offset of the block's [B, m] target ids

    @property
    def size(self) -> int:
        return len(self.sentences)


class CellLayout:
    """Length-grouped chunks, block-ordered token arrays and per-cell pair ids of one corpus."""

    def __init__(self, corpus: EncodedCorpus, *, chunk_cells: int | None = None,
                 work_dir: str | None = None, memmap_cells: int | None = None):
        chunk_cells = DEFAULT_CHUNK_CELLS if chunk_cells is None else chunk_cells
        memmap_cells = DEFAULT_MEMMAP_CELLS if memmap_cells is None else memmap_cells
        src, tgt, src_len, tgt_len = corpus.arrays()
        self.n_sentences = len(src_len)
        src_off = np.zeros(self.n_sentences + 1, np.int64)
        tgt_off = np.zeros(self.n_sentences + 1, np.int64)
        np.cumsum(src_len, out=src_off[1:])
        np.cumsum(tgt_len, out=tgt_off[1:])
        longest = int(max(src_len.max(initial=0), tgt_len.max(initial=0))) + 1
        order = np.argsort(tgt_len.astype(np.int64) * longest + src_len, kind="stable")
        self.chunks: list[Chunk] = []
        self.sent_cell = np.zeros(self.n_sentences, np.int64)  # sentence -> its cells (j-major [m, n])
        self.sent_src = np.zeros(self.n_sentences, np.int64)  # sentence -> block-ordered source tokens
        self.sent_tgt = np.zeros(self.n_sentences, np.int64)
        self.block_src = np.empty(len(src), np.int32)
        self.block_tgt = np.empty(len(tgt), np.int32)
        cells = src_pos = tgt_pos = 0
        sorted_m = tgt_len[order]
        sorted_n = src_len[order]
        bounds = np.flatnonzero((np.diff(sorted_m) != 0) | (np.diff(sorted_n) != 0)) + 1
        starts = np.concatenate([[0], bounds]) if self.n_sentences else np.zeros(0, np.int64)
        ends = np.concatenate([bounds, [self.n_sentences]]) if self.n_sentences else np.zeros(0, np.int64)
        for a, b in zip(starts.tolist(), ends.tolist()):
            m, n = int(sorted_m[a]), int(sorted_n[a])
            per_chunk = max(1, chunk_cells // (m * n))
            for c in range(a, b, per_chunk):
                sents = order[c:min(b, c + per_chunk)]
                size = len(sents)
                self.block_src[src_pos:src_pos + size * n] = src[
                    (src_off[sents][:, None] + np.arange(n)).ravel()]
                self.block_tgt[tgt_pos:tgt_pos + size * m] = tgt[
                    (tgt_off[sents][:, None] + np.arange(m)).ravel()]
                self.sent_cell[sents] = cells + np.arange(size) * (m * n)
                self.sent_src[sents] = src_pos + np.arange(size) * n
                self.sent_tgt[sents] = tgt_pos + np.arange(size) * m
                self.chunks.append(Chunk(m, n, sents, cells, src_pos, tgt_pos))
                cells += size * m * n
                src_pos += size * n
                tgt_pos += size * m
        self.n_cells = cells
        self.src_len = src_len
        self.tgt_len = tgt_len
        self._work_dir = work_dir
        self._memmap_path: str | None = None
        if cells > memmap_cells:
            fd, self._memmap_path = tempfile.mkstemp(prefix="ait-align-cells.", suffix=".i32", dir=work_dir)
            os.close(fd)
            self.cell_ids = np.memmap(self._memmap_path, dtype=np.int32, mode="w+", shape=(max(cells, 1),))
        else:
            self.cell_ids = np.empty(cells, np.int32)

    def close(self) -> None:
        if self._memmap_path:
            del self.cell_ids
            try:
                os.unlink(self._memmap_path)
            except OSError:
                pass
            self._memmap_path = None

    # ------------------------------------------------------------------------------------------ blocks
    def block_words(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """([B, n] source ids, [B, m] target ids) of a chunk (views)."""
        b, m, n = chunk.size, chunk.m, chunk.n
        return (self.block_src[chunk.src_start:chunk.src_start + b * n].reshape(b, n),
                self.block_tgt[chunk.tgt_start:chunk.tgt_start + b * m].reshape(b, m))

    def block_keys(self, chunk: Chunk, n_tgt_words: int):
        """[B, m, n] int64 torch keys src_id * n_tgt_words + tgt_id."""
        import torch  # lazy: torch

        s, t = self.block_words(chunk)
        s = torch.from_numpy(s).to(torch.int64)
        t = torch.from_numpy(t).to(torch.int64)
        return s[:, None, :] * n_tgt_words + t[:, :, None]

    def block_ids(self, chunk: Chunk):
        import torch  # lazy: torch

        size = chunk.size * chunk.m * chunk.n
        return torch.from_numpy(np.asarray(self.cell_ids[chunk.cell_start:chunk.cell_start + size]))

    def iter_shards(self, shard_cells: int) -> Iterator[list[Chunk]]:
        shard: list[Chunk] = []
        cells = 0
        for chunk in self.chunks:
            shard.append(chunk)
            cells += chunk.size * chunk.m * chunk.n
            if cells >= shard_cells:
                yield shard
                shard, cells = [], 0
        if shard:
            yield shard

    # ------------------------------------------------------------------------------------------ pair ids
    def build_pair_ids(self, n_tgt_words: int, *, shard_cells: int | None = None,
                       on_shard=None, threads: int = 1):
        """Give every cell the id of its (source word, target word) pair; return the sorted int64 keys
        (src_id * n_tgt_words + tgt_id) of all pairs, id = position in that list."""
        import torch  # lazy: torch

        shard_cells = DEFAULT_SHARD_CELLS if shard_cells is None else shard_cells

        def one_shard(shard: list[Chunk]):
            first, last = shard[0], shard[-1]
            # shard-local word ids keep keys small (int32 when they fit): sorting is twice as fast
            src_words, src_local = torch.unique(torch.from_numpy(
                self.block_src[first.src_start:last.src_start + last.size * last.n]), return_inverse=True)
            tgt_words, tgt_local = torch.unique(torch.from_numpy(
                self.block_tgt[first.tgt_start:last.tgt_start + last.size * last.m]), return_inverse=True)
            n_local = tgt_words.numel()
            dtype = torch.int32 if src_words.numel() * n_local < 2 ** 31 else torch.int64
            src_local = src_local.to(dtype)
            tgt_local = tgt_local.to(dtype)
            parts = []
            for c in shard:
                s = src_local[c.src_start - first.src_start:c.src_start - first.src_start + c.size * c.n]
                t = tgt_local[c.tgt_start - first.tgt_start:c.tgt_start - first.tgt_start + c.size * c.m]
                parts.append((s.view(c.size, 1, c.n) * n_local + t.view(c.size, c.m, 1)).reshape(-1))
            keys = torch.cat(parts) if len(parts) > 1 else parts[0]
            del parts
            uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
            del keys
            uniq = uniq.to(torch.int64)
            # local (e, f) -> global key; monotone, so still sorted
            uniq = src_words[uniq // n_local].to(torch.int64) * n_tgt_words + tgt_words[uniq % n_local]
            start = first.cell_start
            torch.from_numpy(self.cell_ids[start:start + inverse.numel()]).copy_(inverse)
            if on_shard:
                on_shard(sum(c.size for c in shard))
            return uniq, (start, start + inverse.numel())

        shards = list(self.iter_shards(shard_cells))
        if threads > 1 and len(shards) > 1:
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(one_shard, shards))
        else:
            results = [one_shard(shard) for shard in shards]
        locals_ = [u for u, _ in results]
        spans = [span for _, span in results]
        del results
        if not locals_:
            return torch.zeros(0, dtype=torch.int64)
        if len(locals_) == 1:
            return locals_[0]
        keys, maps = merge_sorted_unique(locals_)
        del locals_
        for part, (a, b) in zip(maps, spans):
            for lo in range(a, b, DEFAULT_SHARD_CELLS):
                cells = torch.from_numpy(self.cell_ids[lo:min(b, lo + DEFAULT_SHARD_CELLS)])
                cells.copy_(torch.index_select(part, 0, cells))
        return keys

    def lookup_pair_ids(self, keys, n_tgt_words: int, n_src_known: int, n_tgt_known: int, *,
                        shard_cells: int | None = None) -> None:
        """Give every cell the id of its pair in a fixed table with sorted `keys`; pairs the table does
        not hold (unseen words or unseen combinations) get id len(keys), the table's floor slot."""
        import torch  # lazy: torch

        n_keys = keys.numel()
        for chunk in self.chunks:
            s, t = self.block_words(chunk)
            s = torch.from_numpy(s).to(torch.int64)
            t = torch.from_numpy(t).to(torch.int64)
            known = (s[:, None, :] < n_src_known) & (t[:, :, None] < n_tgt_known)
            k = s[:, None, :] * n_tgt_words + t[:, :, None]
            if n_keys:
                pos = torch.searchsorted(keys, k).clamp_(max=n_keys - 1)
                found = known & (keys[pos] == k)
                ids = torch.where(found, pos, torch.full_like(pos, n_keys))
            else:
                ids = torch.full_like(k, 0)
            start = chunk.cell_start
            self.cell_ids[start:start + ids.numel()] = ids.reshape(-1).to(torch.int32).numpy()


def merge_sorted_unique(arrays: list, *, pieces: int | None = None):
    """Merge sorted, duplicate-free int64 tensors: (their sorted union, and for each input an int32 map
    from its positions to positions in the union). The key range is cut into pieces merged one at a
    time, so the sort's transient memory is that of one piece, not of all inputs together."""
    import torch  # lazy: torch

    total = sum(a.numel() for a in arrays)
    if pieces is None:
        pieces = max(1, total // (1 << 22))
    lo_key = min(int(a[0]) for a in arrays if a.numel())
    hi_key = max(int(a[-1]) for a in arrays if a.numel()) + 1
    bounds = torch.linspace(lo_key, hi_key, pieces + 1, dtype=torch.float64).to(torch.int64)
    bounds[0], bounds[-1] = lo_key, hi_key
    cuts = [torch.searchsorted(a, bounds) for a in arrays]  # [pieces + 1] positions per input
    maps = [torch.empty(a.numel(), dtype=torch.int32) for a in arrays]
    merged = []
    offset = 0
    for p in range(pieces):
        slices = [a[c[p]:c[p + 1]] for a, c in zip(arrays, cuts)]
        if not any(x.numel() for x in slices):
            continue
        uniq, inverse = torch.unique(torch.cat(slices), sorted=True, return_inverse=True)
        pos = 0
        for m, c, x in zip(maps, cuts, slices):
            m[c[p]:c[p + 1]] = inverse[pos:pos + x.numel()] + offset
            pos += x.numel()
        merged.append(uniq)
        offset += uniq.numel()
    return torch.cat(merged) if merged else torch.zeros(0, dtype=torch.int64), maps

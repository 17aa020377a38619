"""IBM Model 2 with the diagonal reparameterization (Dyer, Chahuneau & Smith 2013): fast_align's model.

For a target word at 0-based position j of a length-m sentence and a source sentence of length n:

    p(a_j = 0)      = p0                                   (null alignment)
    p(a_j = i)      = (1 - p0) * exp(lambda * h(j+1, i, m, n)) / Z_j      (i = 1..n)
    h(j', i, m, n)  = -| i/n - j'/m |
    p(f_j | e_i)    = t(f_j | e_i), with a Dirichlet(alpha) prior (variational Bayes)

EM follows fast_align step for step, because its AER is the reference:
- iteration 1 starts from a uniform t (1e-9 everywhere), so its posteriors are the alignment prior;
- the last iteration only takes the Viterbi links (null wins ties), it does not update counts;
- the tension lambda is optimised by 8 gradient steps (rate 20, clamped to [0.1, 14]) after every
  non-final iteration but the first, comparing the posterior mean of the diagonal feature with the
  model's expectation of it over all (m, n) length classes. Two quirks of fast_align are kept on
  purpose: the empirical feature uses the 0-based target position j (not j+1), and the model's
  expectation divides by a normaliser computed with source and target lengths swapped (including
  fast_align's unsigned wrap-around when j > n);
- VB normalisation: t(f|e) = exp(digamma(c(e,f) + alpha) - digamma(sum_f' (c(e,f') + alpha))), the sum
  running over the target words seen with e in the corpus.

Posteriors and tables are float32 (the prior and normalisation are computed in float64); denormals are
flushed while EM runs, else `exp`/products on tiny probabilities slow down tenfold. Both directions
share the per-cell pair ids of `CellLayout`: the reverse model reads the same [B, m, n] blocks and
normalises over the other axis.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from aligninstruct_cli.options import OptionError, check_options, option, option_ref

INITIAL_T = 1e-9  # fast_align's t before the first normalisation
EM_PANEL = "EM (fast_align's model)"
UNSEEN_T = 1e-7  # t of a pair a loaded model never saw (unseen word or unseen combination)


@dataclass(kw_only=True)
class EMOptions:
    """fast_align's options; defaults are fast_align's `-d -o -v` (the settings its authors recommend)."""

    iterations: int = option(5, flags=("--iterations", "-I"), min=1, panel=EM_PANEL,
                             help="EM iterations (fast_align -I); the last one only takes the Viterbi links.")
    p0: float = option(0.08, panel=EM_PANEL, min=0.0, max=1.0, max_open=True,
                       help="Null-alignment probability (fast_align -p, later -q).")
    tension: float = option(4.0, panel=EM_PANEL, min=0.0, min_open=True, help="Initial diagonal tension λ (fast_align -T).")
    favor_diagonal: bool = option(True, panel=EM_PANEL, negatable=True, help="Diagonal alignment prior (fast_align -d); off gives "
                                  "IBM Model 1 with a null word.")
    optimize_tension: bool = option(True, panel=EM_PANEL, negatable=True, help="Re-estimate the tension during EM (fast_align -o).")
    variational_bayes: bool = option(True, panel=EM_PANEL, negatable=True,
                                     help="Dirichlet prior on t(f|e), mean-field VB (fast_align -v).")
    alpha: float = option(0.01, panel=EM_PANEL, help="Dirichlet concentration for --variational-bayes (fast_align -a); must be > 0 "
                          "with it.")

    def __post_init__(self) -> None:
        check_options(self)
        if self.variational_bayes and self.alpha <= 0:
            raise OptionError(f"{option_ref('alpha')} must be above 0 with {option_ref('variational_bayes')}, not {self.alpha:g}")


@dataclass
class DirectionParams:
    """One direction's parameters. Forward: t(target | source); reverse: t(source | target).

    `t` is indexed by pair id (the last slot holds the floor for unseen pairs); `t_null` by the id of
    the predicted word (its last slot is the floor for unseen words)."""

    name: str
    tension: float
    t: "object" = None  # torch float32 [n_pairs + 1]
    t_null: "object" = None  # torch float32 [n_predicted_words + 1]
    log_likelihood: float = 0.0
    history: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------- diagonal prior
def diagonal_prior(m: int, n: int, tension: float, p0: float, favor_diagonal: bool = True) -> np.ndarray:
    """[m, n] float64: p(a_j = i) for target positions j (0-based) and source positions i (0-based)."""
    if not favor_diagonal:
        return np.full((m, n), 1.0 / (n + 1))
    j = np.arange(1, m + 1, dtype=np.float64)[:, None] / m
    i = np.arange(1, n + 1, dtype=np.float64)[None, :] / n
    u = np.exp(-tension * np.abs(i - j))
    return u * ((1.0 - p0) / u.sum(axis=1, keepdims=True))


def empirical_feature_matrix(m: int, n: int) -> np.ndarray:
    """[m, n] the diagonal feature fast_align accumulates: -| i/n - j/m | with 1-based i, 0-based j."""
    j = np.arange(0, m, dtype=np.float64)[:, None] / m
    i = np.arange(1, n + 1, dtype=np.float64)[None, :] / n
    return -np.abs(i - j)


def _closed_form_z(i: np.ndarray, m: np.ndarray, n: np.ndarray, lam: float) -> np.ndarray:
    """fast_align's DiagonalAlignment::ComputeZ, vectorised, unsigned arithmetic included."""
    split = i * n / m
    floor = np.floor(split)
    ceil = floor + 1
    ratio = np.exp(-lam / n)
    num_top = np.where(floor > n, 2.0 ** 32 - (floor - n), n - floor)  # unsigned wrap-around
    with np.errstate(over="ignore", under="ignore"):
        top = np.exp(-lam * np.abs(ceil / n - i / m)) * (1.0 - ratio ** num_top) / (1.0 - ratio)
        bottom = np.exp(-lam * np.abs(floor / n - i / m)) * (1.0 - ratio ** floor) / (1.0 - ratio)
    return np.where(num_top > 0, top, 0.0) + np.where(floor > 0, bottom, 0.0)


def _arith_geo(a1, g1, r, d, count):
    """sum_{k<count} (a1 + k d) g1 r^k (fast_align's arithmetico-geometric series)."""
    g_np1 = g1 * r ** count
    a_n = d * (count - 1) + a1
    rm1 = r - 1
    return (a_n * g_np1 - a1 * g1) / rm1 - d * (g_np1 - g1 * r) / (rm1 * rm1)


class LengthClasses:
    """The (m, n) length classes of a corpus with their counts, expanded to one row per target position
    so the model expectation of the diagonal feature is one vectorised expression."""

    def __init__(self, tgt_len: np.ndarray, src_len: np.ndarray):
        if len(tgt_len) == 0:
            self.rows_j = self.rows_m = self.rows_n = self.rows_count = np.zeros(0)
            return
        longest = int(max(tgt_len.max(), src_len.max())) + 1
        key = tgt_len.astype(np.int64) * longest + src_len
        classes, counts = np.unique(key, return_counts=True)
        m = classes // longest
        n = classes % longest
        rows = np.repeat(np.arange(len(classes)), m)
        first = np.repeat(np.cumsum(m) - m, m)
        self.rows_j = (np.arange(len(rows)) - first + 1).astype(np.float64)
        self.rows_m = m[rows].astype(np.float64)
        self.rows_n = n[rows].astype(np.float64)
        self.rows_count = counts[rows].astype(np.float64)

    def model_feature(self, lam: float) -> float:
        """sum over classes and positions of count * fast_align's ComputeDLogZ(j, m, n, lam)."""
        j, m, n = self.rows_j, self.rows_m, self.rows_n
        if len(j) == 0:
            return 0.0
        z = _closed_form_z(j, n, m, lam)  # normaliser with the lengths swapped, as fast_align does
        split = j * n / m
        floor = np.floor(split)
        ceil = floor + 1
        ratio = np.exp(-lam / n)
        d = -1.0 / n
        num_top = n - floor
        feat_ceil = -np.abs(ceil / n - j / m)
        feat_floor = -np.abs(floor / n - j / m)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            pct = _arith_geo(feat_ceil, np.exp(lam * feat_ceil), ratio, d, num_top)
            pcb = _arith_geo(feat_floor, np.exp(lam * feat_floor), ratio, d, floor)
        pct = np.where(num_top > 0, pct, 0.0)
        pcb = np.where(floor > 0, pcb, 0.0)
        return float(np.sum(self.rows_count * (pct + pcb) / z))


def optimize_tension(lam: float, empirical: float, classes: LengthClasses, n_tokens: float) -> float:
    for _ in range(8):
        model = classes.model_feature(lam) / n_tokens
        lam += (empirical - model) * 20.0
        lam = min(max(lam, 0.1), 14.0)
    return lam


# ----------------------------------------------------------------------------------------- normalisation
def normalize_rows(counts, rows, n_rows: int, *, variational_bayes: bool, alpha: float, out,
                   chunk: int = 1 << 22) -> None:
    """out[k] = normalised counts[k] within its row rows[k] (VB: exp(digamma(c+a) - digamma(tot)))."""
    import torch  # lazy: torch

    total = torch.zeros(n_rows, dtype=torch.float64)
    n = counts.numel()
    for lo in range(0, n, chunk):
        c = counts[lo:lo + chunk].to(torch.float64)
        if variational_bayes:
            c += alpha
        total.index_add_(0, rows[lo:lo + chunk], c)
    total[total == 0] = 1.0
    if variational_bayes:
        total = torch.digamma(total)
    for lo in range(0, n, chunk):
        c = counts[lo:lo + chunk].to(torch.float64)
        r = rows[lo:lo + chunk]
        if variational_bayes:
            out[lo:lo + chunk] = torch.exp(torch.digamma(c + alpha) - total[r])
        else:
            out[lo:lo + chunk] = c / total[r]


def normalize_vector(counts, *, variational_bayes: bool, alpha: float, out) -> None:
    """The null word's row: every predicted word of the corpus."""
    import torch  # lazy: torch

    c = counts.to(torch.float64)
    if variational_bayes:
        c = c + alpha
        total = float(c.sum()) or 1.0
        out[:] = torch.exp(torch.digamma(c) - torch.digamma(torch.tensor(total, dtype=torch.float64)))
    else:
        total = float(c.sum()) or 1.0
        out[:] = c / total


# ----------------------------------------------------------------------------------------- EM
class EMTrainer:
    """Runs EM for the requested directions over a CellLayout whose cells hold pair ids.

    `pair_src[k]`, `pair_tgt[k]` are the source/target word ids of pair k; forward rows are source
    words, reverse rows are target words."""

    def __init__(self, layout, options: EMOptions, *, n_pairs: int, pair_src, pair_tgt, n_src: int,
                 n_tgt: int, directions: tuple[str, ...] = ("forward", "reverse"), lanes: int = 1):
        self.layout = layout
        self.lanes = lanes
        self.options = options
        self.n_pairs = n_pairs
        self.pair_src = pair_src
        self.pair_tgt = pair_tgt
        self.n_src = n_src
        self.n_tgt = n_tgt
        self.directions = {d: DirectionParams(d, options.tension) for d in directions}
        self.classes = {"forward": LengthClasses(layout.tgt_len, layout.src_len),
                        "reverse": LengthClasses(layout.src_len, layout.tgt_len)}
        self.tokens = {"forward": float(layout.tgt_len.sum()), "reverse": float(layout.src_len.sum())}
        # Viterbi links, block-ordered: forward per target token (source index or -1), reverse per
        # source token (target index or -1).
        self.forward_links: np.ndarray | None = None
        self.reverse_links: np.ndarray | None = None

    # --------------------------------------------------------------------------------------- one pass
    def _priors(self, direction: str, m: int, n: int, cache: dict):
        import torch  # lazy: torch

        key = (direction, m, n)
        hit = cache.get(key)
        if hit is None:
            opt = self.options
            tension = self.directions[direction].tension
            if direction == "forward":
                prior = diagonal_prior(m, n, tension, opt.p0, opt.favor_diagonal)
                feat = empirical_feature_matrix(m, n)
            else:  # the reverse model predicts source words (axis 2) from target words (axis 1)
                prior = diagonal_prior(n, m, tension, opt.p0, opt.favor_diagonal).T
                feat = empirical_feature_matrix(n, m).T
            null = opt.p0 if opt.favor_diagonal else 1.0 / ((n if direction == "forward" else m) + 1)
            hit = cache[key] = (torch.from_numpy(np.ascontiguousarray(prior, dtype=np.float32)),
                                torch.from_numpy(np.ascontiguousarray(feat, dtype=np.float32)), null)
        return hit

    def _lanes(self) -> list[list]:
        """The chunks cut into `lanes` contiguous runs of about equal cell counts."""
        chunks = self.layout.chunks
        lanes = max(1, min(self.lanes, len(chunks)))
        if lanes == 1:
            return [chunks]
        cells = np.cumsum([c.size * c.m * c.n for c in chunks])
        cuts = np.searchsorted(cells, cells[-1] * np.arange(1, lanes) / lanes)
        bounds = [0, *cuts.tolist(), len(chunks)]
        return [chunks[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]

    def run_pass(self, iteration: int, *, final: bool, on_chunk: Callable[[int], None] | None = None,
                 counts=None, null_counts=None) -> dict:
        """One pass over all chunks: E-step (adds to counts) or, when `final`, the Viterbi links.

        With several lanes, each lane (a thread running single-threaded torch ops, which release the
        GIL) accumulates into its own count buffers; they are summed in lane order at the end."""
        import torch  # lazy: torch

        layout = self.layout
        if final:
            longest = max(int(layout.src_len.max(initial=0)), int(layout.tgt_len.max(initial=0)))
            dtype = np.int16 if longest < 2 ** 15 else np.int32
            self.forward_links = np.full(len(layout.block_tgt), -1, dtype) if "forward" in self.directions else None
            self.reverse_links = np.full(len(layout.block_src), -1, dtype) if "reverse" in self.directions else None
        lanes = self._lanes()
        if len(lanes) == 1:
            return self._pass_chunks(lanes[0], iteration, final, counts, null_counts, on_chunk)
        buffers = [(counts, null_counts)]
        for _ in lanes[1:]:
            buffers.append((None if counts is None else {k: torch.zeros_like(v) for k, v in counts.items()},
                            None if null_counts is None else {k: torch.zeros_like(v) for k, v in null_counts.items()}))
        with ThreadPoolExecutor(len(lanes)) as pool:
            futures = [pool.submit(self._pass_chunks, lane, iteration, final, c, nc, on_chunk)
                       for lane, (c, nc) in zip(lanes, buffers)]
            results = [f.result() for f in futures]
        for c, nc in buffers[1:]:
            if c is not None:
                for k in counts:
                    counts[k].add_(c[k])
                    null_counts[k].add_(nc[k])
        stats = results[0]
        for other in results[1:]:
            for name in stats:
                for key in stats[name]:
                    stats[name][key] += other[name][key]
        return stats

    def _pass_chunks(self, chunks, iteration: int, final: bool, counts, null_counts, on_chunk) -> dict:
        import torch  # lazy: torch

        torch.set_flush_denormal(True)  # a per-thread CPU flag: set it in every lane
        layout = self.layout
        stats = {d: {"emp": 0.0, "ll": 0.0, "null": 0.0} for d in self.directions}
        cache: dict = {}
        # one reusable buffer for the [B, m, n] block: fresh multi-MB tensors per chunk cost page faults
        work = torch.empty(max((c.size * c.m * c.n for c in chunks), default=0), dtype=torch.float32)
        for chunk in chunks:
            b, m, n = chunk.size, chunk.m, chunk.n
            ids = layout.block_ids(chunk)
            s_np, t_np = layout.block_words(chunk)
            for name, d in self.directions.items():
                prior, feat, null_prior = self._priors(name, m, n, cache)
                axis = 2 if name == "forward" else 1
                predicted = torch.from_numpy(t_np if name == "forward" else s_np)  # [B, m] or [B, n]
                if iteration == 0 and not final:
                    # uniform t: the posterior is the prior itself, the same for every sentence
                    post = work[:b * m * n]
                    post.view(b, m, n).copy_(prior.expand(b, m, n))
                    counts[name].index_add_(0, ids, post)
                    null_counts[name].index_add_(0, predicted.reshape(-1),
                                                 torch.full((predicted.numel(),), null_prior, dtype=torch.float32))
                    stats[name]["emp"] += b * float((prior * feat).sum())
                    stats[name]["null"] += null_prior * predicted.numel()
                    continue
                probs = torch.index_select(d.t, 0, ids, out=work[:b * m * n]).view(b, m, n)
                probs.mul_(prior)
                null = torch.index_select(d.t_null, 0, predicted.reshape(-1)).view(predicted.shape)
                null.mul_(null_prior)
                if final:
                    best, where = probs.max(dim=axis)
                    linked = torch.where(best > null, where.to(torch.int32),
                                         torch.full_like(where, -1, dtype=torch.int32))
                    if name == "forward":
                        self.forward_links[chunk.tgt_start:chunk.tgt_start + b * m] = linked.reshape(-1).numpy()
                    else:
                        self.reverse_links[chunk.src_start:chunk.src_start + b * n] = linked.reshape(-1).numpy()
                    continue
                denom = probs.sum(dim=axis).add_(null).clamp_(min=1e-30)
                stats[name]["ll"] += float(torch.log(denom).sum())
                inv = denom.reciprocal_()
                probs.mul_(inv.unsqueeze(axis))
                null.mul_(inv)
                counts[name].index_add_(0, ids, probs.view(-1))
                null_counts[name].index_add_(0, predicted.reshape(-1), null.reshape(-1))
                stats[name]["emp"] += float((probs.sum(dim=0) * feat).sum())
                stats[name]["null"] += float(null.sum())
            if on_chunk:
                on_chunk(b)
        return stats

    # --------------------------------------------------------------------------------------- training
    def train(self, *, on_chunk=None, on_iteration=None) -> None:
        import torch  # lazy: torch

        opt = self.options
        torch.set_flush_denormal(True)
        try:
            for name, d in self.directions.items():
                d.t = torch.full((self.n_pairs + 1,), INITIAL_T, dtype=torch.float32)
                n_pred = self.n_tgt if name == "forward" else self.n_src
                d.t_null = torch.full((n_pred + 1,), INITIAL_T, dtype=torch.float32)
            for iteration in range(opt.iterations):
                final = iteration == opt.iterations - 1
                counts = null_counts = None
                if not final:
                    counts = {name: torch.zeros(self.n_pairs + 1, dtype=torch.float32) for name in self.directions}
                    null_counts = {name: torch.zeros((self.n_tgt if name == "forward" else self.n_src) + 1,
                                                     dtype=torch.float32) for name in self.directions}
                stats = self.run_pass(iteration, final=final, on_chunk=on_chunk, counts=counts,
                                      null_counts=null_counts)
                if not final:
                    for name, d in self.directions.items():
                        tokens = self.tokens[name]
                        emp = stats[name]["emp"] / tokens if tokens else 0.0
                        if opt.favor_diagonal and opt.optimize_tension and iteration > 0:
                            d.tension = optimize_tension(d.tension, emp, self.classes[name], tokens)
                        rows = self.pair_src if name == "forward" else self.pair_tgt
                        n_rows = self.n_src if name == "forward" else self.n_tgt
                        normalize_rows(counts[name][:-1], rows, n_rows, variational_bayes=opt.variational_bayes,
                                       alpha=opt.alpha, out=d.t[:-1])
                        normalize_vector(null_counts[name][:-1], variational_bayes=opt.variational_bayes,
                                         alpha=opt.alpha, out=d.t_null[:-1])
                        d.log_likelihood = stats[name]["ll"]
                        d.history.append({"iteration": iteration + 1, "log_likelihood": stats[name]["ll"],
                                          "posterior_p0": stats[name]["null"] / tokens if tokens else 0.0,
                                          "empirical_feature": emp, "tension": d.tension})
                    del counts, null_counts
                if on_iteration:
                    on_iteration(iteration, final)
        finally:
            torch.set_flush_denormal(False)

    def viterbi(self, *, on_chunk=None) -> None:
        """Links only, with the current (e.g. loaded) tables."""
        import torch  # lazy: torch

        torch.set_flush_denormal(True)
        try:
            self.run_pass(1, final=True, on_chunk=on_chunk)
        finally:
            torch.set_flush_denormal(False)

"""Gold span pairs for AlignInstruct: contiguous source/target spans consistent with the links.

The rule (also in docs/align.md):

1. Candidates. For every source span [s, e) of 1..max_span words whose first and last words are
   aligned, take the target words linked to it; their hull [t, u) is the target span. Keep the pair if
   - the target span has at most max_span words, and
   - it is consistent (Och & Ney): no word inside either span is linked to a word outside the other.
   Both spans are therefore "tight": their first and last words are aligned; unaligned words may sit
   inside a span. Each source span gives at most one pair.
2. Punctuation. Unless `keep_punct`, a pair is dropped when either side consists only of punctuation
   or symbol tokens (Unicode categories P*, S*): "," <-> "," teaches nothing; or when either side
   starts or ends with such a token ("Bread ." <-> "нан ."): the pair without it is a candidate too.
3. Score, from both directions' lexical tables (forward t(f|e), reverse t(e|f)):
   - for each target word j of the span: the mean of t(f_j|e_i) over its links i (all inside the span),
     or, for an unaligned word, the best t(f_j|e_i) over the source span;
   - forward score = geometric mean of those values over the target span;
   - the same from the other side with t(e_i|f_j) gives the reverse score;
   - score = sqrt(forward * reverse), in [0, 1] for probabilities; rounded to 6 decimals.
4. Filter and cap. Pairs scoring below min_score are dropped; of the rest, the max_pairs best are kept,
   ordered by score (descending), then source start, source length, target start (ascending): the
   output is fully determined by the links and tables.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache
from typing import Sequence

DEFAULT_MAX_SPAN = 3
DEFAULT_MIN_SCORE = 0.05
DEFAULT_MAX_PAIRS = 16


@lru_cache(maxsize=65536)
def is_punct(token: str) -> bool:
    return all(unicodedata.category(c)[0] in "PS" for c in token)


PAIR_SIGNALS = ("punctuation-only", "differ only in punctuation", "punctuation attached to a word")


def _strip_punct(text: str) -> str:
    return "".join(c for c in text.casefold() if unicodedata.category(c)[0] not in "PSZ")


def pair_signals(pair: dict) -> list[str]:
    """Which of `PAIR_SIGNALS` a gold pair shows: a side that is punctuation only; two sides equal but for
    punctuation and case (a copy, not a translation: `muppets'` / `muppets`); a word that carries punctuation
    (`“қуыршақтар`: whitespace tokens keep it)."""
    sides = (pair["src"], pair["tgt"])
    out = []
    if any(all(is_punct(w) for w in side.split()) for side in sides):
        out.append(PAIR_SIGNALS[0])
    elif sides[0] != sides[1] and _strip_punct(sides[0]) == _strip_punct(sides[1]):
        out.append(PAIR_SIGNALS[1])
    if any(not is_punct(w) and (is_punct(w[0]) or is_punct(w[-1])) for side in sides for w in side.split()):
        out.append(PAIR_SIGNALS[2])
    return out


def _link_lists(links, n_src: int, n_tgt: int) -> tuple[list[list[int]], list[list[int]]]:
    src_links: list[list[int]] = [[] for _ in range(n_src)]
    tgt_links: list[list[int]] = [[] for _ in range(n_tgt)]
    for i, j in links:
        src_links[i].append(j)
        tgt_links[j].append(i)
    return src_links, tgt_links


def candidate_spans(links: Sequence[tuple[int, int]], n_src: int, n_tgt: int, max_span: int,
                    _lists=None) -> list[tuple[int, int, int, int]]:
    """(s, e, t, u): source span [s, e) and target span [t, u), consistent with `links` (rule 1)."""
    src_links, tgt_links = _lists or _link_lists(links, n_src, n_tgt)
    out = []
    for s in range(n_src):
        if not src_links[s]:
            continue
        lo, hi = n_tgt, -1
        for e in range(s + 1, min(n_src, s + max_span) + 1):
            last = src_links[e - 1]
            if not last:
                continue
            lo = min(lo, min(last))
            hi = max(hi, max(last))
            if hi - lo + 1 > max_span:
                break  # adding source words only widens the target hull
            consistent = True
            for j in range(lo, hi + 1):
                for i in tgt_links[j]:
                    if i < s or i >= e:
                        consistent = False
                        break
                if not consistent:
                    break
            if consistent:
                out.append((s, e, lo, hi + 1))
    return out


_LOG_FLOOR = math.log(1e-30)


def _log(p: float) -> float:
    return math.log(p) if p > 1e-30 else _LOG_FLOOR


def _word_logs(links_of: list[list[int]], table, forward: bool) -> list[float | None]:
    """log of the mean lexical probability of each aligned word over its links; None if unaligned."""
    out: list[float | None] = []
    for a, linked in enumerate(links_of):
        if not linked:
            out.append(None)
        elif forward:  # a = target j: table[j][i]
            row = table[a]
            out.append(_log(row[linked[0]] if len(linked) == 1 else sum(row[b] for b in linked) / len(linked)))
        else:  # a = source i: table[j][i]
            out.append(_log(sum(table[b][a] for b in linked) / len(linked)))
    return out


def _prefix(values: list[float | None]) -> tuple[list[float], list[int]]:
    sums, gaps = [0.0], [0]
    for v in values:
        sums.append(sums[-1] + (v if v is not None else 0.0))
        gaps.append(gaps[-1] + (v is None))
    return sums, gaps


def extract_pairs(links: Sequence[tuple[int, int]], src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                  t_forward, t_reverse, *, src_text: str | None = None, tgt_text: str | None = None,
                  src_offsets: Sequence[tuple[int, int]] | None = None,
                  tgt_offsets: Sequence[tuple[int, int]] | None = None, max_span: int = DEFAULT_MAX_SPAN,
                  min_score: float = DEFAULT_MIN_SCORE, max_pairs: int = DEFAULT_MAX_PAIRS,
                  keep_punct: bool = False) -> list[dict]:
    """The scored span pairs of one sentence pair (see the module docstring for the rule).

    `t_forward[j][i]` = t(tgt_j | src_i) and `t_reverse[j][i]` = t(src_i | tgt_j), indexable [m][n]
    (nested lists are fastest). With texts and token offsets, a span's text is the original substring
    (original case and spacing); otherwise its tokens joined by one space."""
    if max_pairs <= 0:
        return []
    n, m = len(src_tokens), len(tgt_tokens)
    lists = _link_lists(links, n, m)
    spans = candidate_spans(links, n, m, max_span, lists)
    if not spans:
        return []
    src_links, tgt_links = lists
    tgt_sums, tgt_gaps = _prefix(_word_logs(tgt_links, t_forward, True))
    src_sums, src_gaps = _prefix(_word_logs(src_links, t_reverse, False))
    if not keep_punct:  # a span of punctuation only has it at an edge too: one check drops both
        src_punct, tgt_punct = [is_punct(w) for w in src_tokens], [is_punct(w) for w in tgt_tokens]
    scored = []
    for s, e, t, u in spans:
        if not keep_punct and (src_punct[s] or src_punct[e - 1] or tgt_punct[t] or tgt_punct[u - 1]):
            continue  # punctuation at an edge (or only punctuation): the pair without it is a candidate too
        fwd = tgt_sums[u] - tgt_sums[t]
        if tgt_gaps[u] != tgt_gaps[t]:  # unaligned target words: the best source word of the span
            for j in range(t, u):
                if not tgt_links[j]:
                    row = t_forward[j]
                    fwd += _log(max(row[i] for i in range(s, e)))
        rev = src_sums[e] - src_sums[s]
        if src_gaps[e] != src_gaps[s]:
            for i in range(s, e):
                if not src_links[i]:
                    rev += _log(max(t_reverse[j][i] for j in range(t, u)))
        score = round(math.exp((fwd / (u - t) + rev / (e - s)) / 2.0), 6)
        if score >= min_score:
            scored.append((-score, s, e - s, t, u - t, score))
    scored.sort()
    pairs = []
    for _, s, slen, t, tlen, score in scored[:max_pairs]:
        e, u = s + slen, t + tlen
        if src_text is not None and src_offsets is not None:
            src = src_text[src_offsets[s][0]:src_offsets[e - 1][1]]
        else:
            src = " ".join(src_tokens[s:e])
        if tgt_text is not None and tgt_offsets is not None:
            tgt = tgt_text[tgt_offsets[t][0]:tgt_offsets[u - 1][1]]
        else:
            tgt = " ".join(tgt_tokens[t:u])
        pairs.append({"src": src, "tgt": tgt, "src_span": [s, e], "tgt_span": [t, u], "score": score})
    return pairs

"""Symmetrization of a forward and a reverse alignment, as fast_align's `atools -c` computes it.

Links are (i, j) pairs: source position i, target position j, both 0-based, in both inputs (the
reverse alignment already in source-target order).

- intersect / union: set operations.
- grow-diag: start from the intersection; then repeatedly sweep the union points not yet in the result
  in (i, j) order, adding a point when it has an aligned neighbour among its 8 neighbours (horizontal,
  vertical, diagonal) AND its source or its target word is still unaligned; a sweep sees the points
  added earlier in the same sweep; stop after a sweep that adds nothing.
- grow-diag-final: grow-diag, then one sweep over the forward links and one over the reverse links
  (each in (i, j) order), adding a link whose source or target word is still unaligned.
- grow-diag-final-and: the same final sweeps, but a link is added only if BOTH its words are
  still unaligned.
"""

from __future__ import annotations

from typing import Iterable

HEURISTICS = ("forward", "reverse", "intersect", "union", "grow-diag", "grow-diag-final",
              "grow-diag-final-and")
DEFAULT_HEURISTIC = "grow-diag-final-and"

_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))

Link = tuple[int, int]


def needs(heuristic: str) -> tuple[str, ...]:
    """The directional models a heuristic reads."""
    if heuristic == "forward":
        return ("forward",)
    if heuristic == "reverse":
        return ("reverse",)
    return ("forward", "reverse")


def symmetrize(forward: Iterable[Link], reverse: Iterable[Link], heuristic: str = DEFAULT_HEURISTIC
               ) -> list[Link]:
    """The links of `heuristic`, sorted by (i, j)."""
    fwd = set(forward)
    rev = set(reverse)
    if heuristic == "forward":
        return sorted(fwd)
    if heuristic == "reverse":
        return sorted(rev)
    if heuristic == "intersect":
        return sorted(fwd & rev)
    if heuristic == "union":
        return sorted(fwd | rev)
    if heuristic not in HEURISTICS:
        raise ValueError(f"unknown symmetrization {heuristic!r} (expected one of {', '.join(HEURISTICS)})")

    result = fwd & rev
    if len(result) == len(fwd) == len(rev):
        return sorted(result)  # both directions agree: nothing to grow
    src_aligned = {i for i, _ in result}
    tgt_aligned = {j for _, j in result}

    pending = sorted((fwd | rev) - result)
    while pending:
        kept = []
        for i, j in pending:
            if i in src_aligned and j in tgt_aligned:
                kept.append((i, j))
                continue
            if ((i - 1, j) in result or (i + 1, j) in result or (i, j - 1) in result or (i, j + 1) in result
                    or (i - 1, j - 1) in result or (i + 1, j + 1) in result or (i - 1, j + 1) in result
                    or (i + 1, j - 1) in result):
                result.add((i, j))
                src_aligned.add(i)
                tgt_aligned.add(j)
            else:
                kept.append((i, j))
        if len(kept) == len(pending):
            break
        pending = kept

    if heuristic in ("grow-diag-final", "grow-diag-final-and"):
        both = heuristic == "grow-diag-final-and"
        for links in (fwd, rev):
            for i, j in sorted(links - result):
                if both:
                    if i in src_aligned or j in tgt_aligned:
                        continue
                elif i in src_aligned and j in tgt_aligned:
                    continue
                result.add((i, j))
                src_aligned.add(i)
                tgt_aligned.add(j)
    return sorted(result)

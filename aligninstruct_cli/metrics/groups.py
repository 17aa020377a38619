"""Directions and the paper's direction groups.

A direction is (test set, source language, target language). A group score is the unweighted mean of the
corpus scores of its directions ("averaged over languages", as the paper's tables are), not a score of the
pooled segments. Groups come from `languages.direction_groups`: en→xx, xx→en, seen→seen, seen→unseen,
unseen→seen, unseen→unseen, en→seen, en→unseen, seen→en, unseen→en. "Seen" is by the seen list of the
scored base model (`languages.seen_list`); without one, only en→xx and xx→en are formed. `overall` is the
paper's Table 5 row over every zero-shot direction (neither side English): the mean over those directions,
not over the four zero-shot groups' means, and formed with or without a seen list.

The test set of a record is its `testset` field when present; otherwise, for ids made by `ait data`
(`flores200.devtest.7.kk-en`, `opus100.en-kk.test.7.en-kk`), the part before `.<n>.<src>-<tgt>` without
language-pair components (`flores200.devtest`, `opus100.test`: OPUS-100 names each pair's test set
separately, the paper averages over them); otherwise none. Groups are formed per test set,
so one file may hold OPUS-100 and FLORES-200 outputs and still give the paper's Table 1 columns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from aligninstruct_cli.languages import SeenList, direction_groups, find_language, get_language

OVERALL = "overall"
UNKNOWN_LANGUAGE = "?"  # plain-text hypotheses scored without --src-lang/--tgt-lang (BLEU's tokenizer given)
GROUP_ORDER = ("en→xx", "xx→en", "seen→seen", "seen→unseen", "unseen→seen", "unseen→unseen", OVERALL,
               "en→seen", "en→unseen", "seen→en", "unseen→en")  # the paper's order
# Table 1's columns: OPUS-100 (in-domain) before FLORES-200; other test sets after them, by name.
PAPER_TESTSETS = ("opus100", "flores200")
TESTSET_FIELD = "testset"
_AIT_DATA_ID = re.compile(r"^(?P<testset>\S+)\.\d+\.[^.\s]+-[^.\s]+$")


@dataclass(frozen=True, order=True)
class Direction:
    testset: str  # "" when unknown
    src: str  # canonical language codes
    tgt: str

    @property
    def key(self) -> str:
        pair = f"{self.src}-{self.tgt}"
        return f"{self.testset}:{pair}" if self.testset else pair


@dataclass(frozen=True)
class Group:
    testset: str
    name: str  # one of GROUP_ORDER

    @property
    def key(self) -> str:
        return f"{self.testset}:{self.name}" if self.testset else self.name


def testset_of(rec: dict) -> str:
    value = rec.get(TESTSET_FIELD)
    if isinstance(value, str) and value:
        return value
    match = _AIT_DATA_ID.match(str(rec.get("id", "")))
    if not match:
        return ""
    return ".".join(part for part in match.group("testset").split(".") if not _is_language_pair(part))


def _is_language_pair(part: str) -> bool:
    sides = part.split("-")
    return len(sides) == 2 and all(find_language(side) is not None for side in sides)


def direction_of(rec: dict) -> Direction:
    if rec.get("src_lang") is None and rec.get("tgt_lang") is None and "src_lang" in rec:
        return Direction(testset_of(rec), UNKNOWN_LANGUAGE, UNKNOWN_LANGUAGE)
    return Direction(testset_of(rec), get_language(rec["src_lang"]).code, get_language(rec["tgt_lang"]).code)


def groups_of(direction: Direction, seen: SeenList | None) -> list[Group]:
    if UNKNOWN_LANGUAGE in (direction.src, direction.tgt):
        return []
    names = direction_groups(direction.src, direction.tgt, seen)
    if "en" not in (direction.src, direction.tgt):
        names.append(OVERALL)
    return [Group(direction.testset, name) for name in names]


def paper_testset_rank(testset: str) -> tuple[int, str]:
    ranks = [k for k, prefix in enumerate(PAPER_TESTSETS) if testset.startswith(prefix)]
    return (ranks[0] if ranks else len(PAPER_TESTSETS), testset)


def group_directions(directions: Iterable[Direction], seen: SeenList | None, names: Sequence[str] = GROUP_ORDER,
                     *, paper_order: bool = False) -> dict[Group, list[Direction]]:
    """The groups among `names` that have directions → their directions (sorted); groups ordered by test set
    (by name, or with `paper_order` as the paper's Table 1), then as in `names`. `seen`: the seen list that
    splits seen from unseen (None: no such groups)."""
    members: dict[Group, list[Direction]] = {}
    for d in sorted(set(directions)):
        for g in groups_of(d, seen):
            if g.name in names:
                members.setdefault(g, []).append(d)
    testset_key = paper_testset_rank if paper_order else (lambda testset: testset)
    return dict(sorted(members.items(), key=lambda kv: (testset_key(kv[0].testset), list(names).index(kv[0].name))))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)

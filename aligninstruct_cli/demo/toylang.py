"""Toy parallel data for the demo: generated English and two made-up languages derived from it.

English sentences come from a small grammar: `DET ADJ? NOUN VERB DET ADJ? NOUN (PREP DET NOUN)? ADV?`.
Each toy language has its own lexicon (every English word maps to one toy word) and fixed word-order
rules: subject-object-verb, adjectives after their noun, "the" becomes a postposed particle, "a" is
dropped, prepositions become postpositions. Both lexicons are built from the same syllable inventory,
so a tokenizer trained on English and the "seen" toy language also covers the "unseen" one with tokens
the base model already knows (as BLOOM's byte-level tokenizer covers real unseen languages).

The languages use ISO 639-3's local-use codes: `qaa` (Sunlandic, the demo base model's "seen"
language) and `qab` (Moonlandic, "unseen"), declared in demo-languages.tsv.
"""

from __future__ import annotations

import random
from typing import Iterator

DETERMINERS = ("the", "a")
ADJECTIVES = ("big small red green old young happy sad tall quiet brave clever").split()
NOUNS = ("dog cat bird fish man woman child farmer teacher king queen doctor horse cow "
         "sailor baker girl boy wolf fox").split()
PLACES = "house river garden forest market village school boat".split()
VERBS = ("sees likes eats finds carries watches helps follows calls meets paints feeds").split()
PREPOSITIONS = ("near in behind under").split()
ADVERBS = ("today often slowly quickly again").split()
ENGLISH_WORDS = (DETERMINERS + tuple(ADJECTIVES) + tuple(NOUNS) + tuple(PLACES) + tuple(VERBS)
                 + tuple(PREPOSITIONS) + tuple(ADVERBS))

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def make_lexicon(seed: int) -> dict[str, str]:
    """English word → toy word (2–3 random syllables), a bijection; the same seed gives the same lexicon."""
    rng = random.Random(seed)
    lexicon: dict[str, str] = {}
    used: set[str] = set()
    for word in ENGLISH_WORDS:
        while True:
            toy = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
            if toy not in used:
                break
        used.add(toy)
        lexicon[word] = toy
    return lexicon


def relative_lexicon(parent: dict[str, str], seed: int, *, changed: float) -> dict[str, str]:
    """A related language's lexicon: `parent`'s words, with a share `changed` of the meanings moved to
    other words of `parent` (a permutation among those words, so every form stays a known one)."""
    rng = random.Random(seed)
    words = sorted(parent)
    moved = rng.sample(words, max(2, round(changed * len(words))))
    forms = [parent[w] for w in moved]
    rotated = forms[1:] + forms[:1]  # a cycle: every moved word gets another word's form
    lexicon = dict(parent)
    lexicon.update(zip(moved, rotated))
    return lexicon


def english_sentence(rng: random.Random) -> list[tuple[str, ...]]:
    """One sentence as constituents: [(subject NP), (verb,), (object NP), (PP)?, (adverb,)?]."""
    def noun_phrase(nouns=NOUNS) -> tuple[str, ...]:
        det = rng.choice(DETERMINERS)
        adj = (rng.choice(ADJECTIVES),) if rng.random() < 0.5 else ()
        return (det, *adj, rng.choice(nouns))

    parts = [noun_phrase(), (rng.choice(VERBS),), noun_phrase()]
    if rng.random() < 0.4:
        parts.append((rng.choice(PREPOSITIONS), "the", rng.choice(PLACES)))
    if rng.random() < 0.3:
        parts.append((rng.choice(ADVERBS),))
    return parts


def _toy_noun_phrase(np: tuple[str, ...], lex: dict[str, str], head_first: bool) -> list[str]:
    det, *adj, noun = np
    adjectives = [lex[a] for a in adj]
    out = [lex[noun], *adjectives] if head_first else [*adjectives, lex[noun]]
    if det == "the":  # a definite particle, after the noun phrase (head-first) or before it
        out = out + [lex["the"]] if head_first else [lex["the"]] + out
    return out  # "a" leaves no trace


def to_toy(parts: list[tuple[str, ...]], lex: dict[str, str], order: str = "sov") -> str:
    """sov: Subject Object (place the-particle postposition) Adverb Verb, adjectives after nouns.
    svo: Subject Verb Object (preposition the-particle place) Adverb, adjectives before nouns."""
    head_first = order == "sov"
    subject, (verb,), obj, *rest = parts
    words = _toy_noun_phrase(subject, lex, head_first)
    if not head_first:
        words.append(lex[verb])
    words += _toy_noun_phrase(obj, lex, head_first)
    for extra in rest:
        if len(extra) == 3:
            prep, _, place = extra
            words += [lex[place], lex["the"], lex[prep]] if head_first else [lex[prep], lex["the"], lex[place]]
        else:
            words.append(lex[extra[0]])
    if head_first:
        words.append(lex[verb])
    return " ".join(words)


def parallel_records(n: int, *, tgt_lang: str, lexicon: dict[str, str], order: str, seed: int,
                     id_prefix: str) -> Iterator[dict]:
    """`n` English→toy parallel records (English source), deterministic for (lexicon, order, seed)."""
    lex = lexicon
    rng = random.Random(seed)
    for i in range(1, n + 1):
        parts = english_sentence(rng)
        english = " ".join(w for part in parts for w in part)
        yield {"id": f"{id_prefix}{i}", "src_lang": "en", "tgt_lang": tgt_lang,
               "src": english[0].upper() + english[1:], "tgt": to_toy(parts, lex, order)}

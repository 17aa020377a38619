"""Word tokenizers for alignment.

Every tokenizer returns *surface* tokens with their character offsets, so span pairs can quote the
original text (original case, original spacing). Lowercasing (`--lowercase`) only changes the key the
model sees for each token, never the tokens written to the output records.

- `whitespace`: runs of characters other than ASCII whitespace (space, tab, LF, CR, FF, VT), exactly as
  fast_align splits its input. Unicode spaces such as U+3000 are kept as (part of) tokens: some gold
  sets count them as tokens.
- `simple`: splits on any Unicode whitespace, and makes every punctuation or symbol character (Unicode
  categories P* and S*) a token of its own ("don't" -> "don" "'" "t", "3.5" -> "3" "." "5").
- `chars`: for scripts written without spaces (Khmer, Burmese, Thai, ...): every grapheme cluster is a
  token (a base character with its combining marks, ZWJ/ZWNJ, and a consonant joined by a virama/coeng
  sign), except that runs of ASCII letters and runs of decimal digits stay whole words.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache
from typing import Callable

TOKENIZERS = ("whitespace", "simple", "chars")

_WHITESPACE = re.compile(r"[^ \t\n\r\f\v]+")

# Signs that glue the following consonant into the same cluster (virama / coeng / killer).
_JOINERS = "\u17d2\u1039\u0e3a\u0f84\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d4d\u0dca\u1b44\ua953"


def _class_of(predicate: Callable[[str], bool]) -> str:
    """A regex character class body listing every code point for which `predicate` holds, as ranges."""
    parts: list[str] = []
    start = prev = None
    for cp in range(sys.maxunicode + 1):
        if predicate(chr(cp)):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            parts.append(re.escape(chr(start)) + ("" if prev == start else "-" + re.escape(chr(prev))))
            start = None
    if start is not None:
        parts.append(re.escape(chr(start)) + ("" if prev == start else "-" + re.escape(chr(prev))))
    return "".join(parts)


@lru_cache(maxsize=None)
def _simple_pattern() -> re.Pattern[str]:
    punct = _class_of(lambda c: unicodedata.category(c)[0] in "PS")
    return re.compile(rf"[^\s{punct}]+|[{punct}]")


@lru_cache(maxsize=None)
def _chars_pattern() -> re.Pattern[str]:
    marks = _class_of(lambda c: unicodedata.category(c)[0] == "M" or c in "\u200c\u200d")
    joiners = re.escape(_JOINERS)
    # a cluster: base char, then marks; a joiner sign (itself a mark) pulls in the next base char
    cluster = rf"[^\s{marks}](?:[{joiners}][^\s]|[{marks}])*"
    return re.compile(rf"[A-Za-z]+|\d+|{cluster}|[{marks}]+")


def get_tokenizer(name: str) -> Callable[[str], list[tuple[int, int]]]:
    """A function text -> [(start, end), ...] character offsets of the tokens of `name`."""
    if name == "whitespace":
        pattern = _WHITESPACE
    elif name == "simple":
        pattern = _simple_pattern()
    elif name == "chars":
        pattern = _chars_pattern()
    else:
        raise ValueError(f"unknown tokenizer {name!r} (expected one of {', '.join(TOKENIZERS)})")
    finditer = pattern.finditer
    return lambda text: [m.span() for m in finditer(text)]


def get_word_splitter(name: str) -> Callable[[str], list[str]]:
    """A function text -> surface tokens (faster than offsets; used for training)."""
    if name == "whitespace":
        return _WHITESPACE.findall
    if name == "simple":
        return _simple_pattern().findall
    if name == "chars":
        return _chars_pattern().findall
    raise ValueError(f"unknown tokenizer {name!r} (expected one of {', '.join(TOKENIZERS)})")


def parse_tokenize_option(value: str) -> tuple[str, str]:
    """`simple` (both sides) or `simple,chars` (source, target) -> (source tokenizer, target tokenizer)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p not in TOKENIZERS for p in parts):
        raise ValueError(f"must be one of {', '.join(TOKENIZERS)}, or two of them joined by a "
                         f"comma (source,target); got {value!r}")
    return parts[0], parts[1]

"""Numbers the docs state about what ait prints (how many languages a listing has, ...) against what it prints
now: a statement like getting-started's old "`ait languages --unseen` lists 24 languages" (it lists 152)
fails here instead of misleading a reader. Each fact: a page, a pattern whose group is the stated number, and
how to count it; a pattern that no longer matches fails too (the sentence was edited: update the fact)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _count_languages(**flags) -> int:
    from aligninstruct_cli.languages import ListOptions, list_languages

    return len(list_languages(ListOptions(**flags)))


def _bloom_card_codes() -> int:
    from aligninstruct_cli.languages import bloom_seen

    return len(bloom_seen().codes)


FACTS = [
    ("languages.md", r"ait languages --flores\s+# one row per FLORES-200 code: (\d+)", lambda: _count_languages(flores=True)),
    ("languages.md", r"the (\d+) language codes of the BLOOM model card", _bloom_card_codes),
]
# a count stated next to a listing command, anywhere in the docs: it must be one of the FACTS above
UNCHECKED = re.compile(r"ait languages --unseen[^\n]*?\b(\d+) (?:languages|rows)")


@pytest.mark.parametrize("page, pattern, count", FACTS, ids=[f"{p}: {pat[:40]}" for p, pat, _ in FACTS])
def test_stated_counts_are_what_ait_prints(page, pattern, count):
    text = (DOCS / page).read_text(encoding="utf-8")
    match = re.search(pattern, text)
    assert match, f"{page}: no longer says {pattern!r}; update tests/docs/test_facts.py"
    assert int(match.group(1)) == count(), f"{page}: states {match.group(1)}, ait prints {count()}"


def test_no_unchecked_language_count_beside_a_listing():
    for page in sorted(DOCS.glob("*.md")):
        for match in UNCHECKED.finditer(page.read_text(encoding="utf-8")):
            assert int(match.group(1)) == _count_languages(unseen=True), f"{page.name}: {match.group(0)!r}"

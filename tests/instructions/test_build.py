"""`ait build-instructions`: every template byte for byte, negatives never aligned, determinism, counts."""

from __future__ import annotations

import copy
import re

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions import templates as T
from aligninstruct_cli.instructions.objectives import (BuildStats, build_instructions, mono_half_split,
                                                       token_offsets)
from aligninstruct_cli.records import validate_aligned, validate_instruction

runner = CliRunner()

# A hand-made aligned record: "cat" ↔ "Мысық", "sleeps" ↔ "ұйықтап жатыр" (2 words), "." ↔ ".".
CAT = {
    "id": "s1", "src_lang": "en", "tgt_lang": "kk",
    "src": "The cat sleeps.", "tgt": "Мысық ұйықтап жатыр.",
    "src_tokens": ["The", "cat", "sleeps", "."], "tgt_tokens": ["Мысық", "ұйықтап", "жатыр", "."],
    "links": [[1, 0], [2, 1], [2, 2], [3, 3]],
    "pairs": [{"src": "cat", "tgt": "Мысық", "src_span": [1, 2], "tgt_span": [0, 1], "score": 0.9},
              {"src": "sleeps", "tgt": "ұйықтап жатыр", "src_span": [2, 3], "tgt_span": [1, 3], "score": 0.8}],
}
# Gives the revise reservoir exactly one word group per language.
DOG = {
    "id": "s0", "src_lang": "en", "tgt_lang": "kk", "src": "A dog.", "tgt": "Ит.",
    "src_tokens": ["A", "dog", "."], "tgt_tokens": ["Ит", "."], "links": [[1, 0]],
    "pairs": [{"src": "dog", "tgt": "Ит", "src_span": [1, 2], "tgt_span": [0, 1], "score": 1.0}],
}

EN, KK = "The cat sleeps.", "Мысық ұйықтап жатыр."


def build(records, objective, **kw):
    return list(build_instructions([copy.deepcopy(r) for r in records], objective, **kw))


def by_id(records):
    return {r["id"]: r for r in records}


# ----------------------------------------------------------------------------------------------- templates
def test_mt_both_directions_byte_for_byte():
    out = build([CAT], "mt")
    assert out == [
        {"id": "s1:mt:en-kk:0", "objective": "mt", "src_lang": "en", "tgt_lang": "kk",
         "input": "Translate from English to Kazakh.\nEnglish: The cat sleeps.\nKazakh:",
         "output": KK, "source_id": "s1"},
        {"id": "s1:mt:kk-en:0", "objective": "mt", "src_lang": "kk", "tgt_lang": "en",
         "input": "Translate from Kazakh to English.\nKazakh: Мысық ұйықтап жатыр.\nEnglish:",
         "output": EN, "source_id": "s1"},
    ]
    for rec in out:
        validate_instruction(rec)


def test_align_true_records_byte_for_byte_both_directions():
    out = by_id(build([CAT], "align", negatives=0, pairs_per_sentence="all"))
    head_en = ("Given the following parallel sentence between English and Kazakh, judge whether the assertion "
               "is True or False.\nEnglish: The cat sleeps.\nKazakh: Мысық ұйықтап жатыр.\n")
    head_kk = ("Given the following parallel sentence between Kazakh and English, judge whether the assertion "
               "is True or False.\nKazakh: Мысық ұйықтап жатыр.\nEnglish: The cat sleeps.\n")
    assert out["s1:align:en-kk:0"]["input"] == head_en + 'Assertion: "cat" can be aligned with "Мысық" statistically.'
    assert out["s1:align:en-kk:1"]["input"] == (head_en + 'Assertion: "sleeps" can be aligned with "ұйықтап жатыр" '
                                                 'statistically.')
    assert out["s1:align:kk-en:0"]["input"] == head_kk + 'Assertion: "Мысық" can be aligned with "cat" statistically.'
    assert out["s1:align:kk-en:1"]["input"] == (head_kk + 'Assertion: "ұйықтап жатыр" can be aligned with "sleeps" '
                                                 'statistically.')
    assert {r["output"] for r in out.values()} == {"True"}
    assert len(out) == 4


def test_align_false_record_is_one_of_the_only_two_possible_swaps():
    rec = {"id": 7, "src_lang": "en", "tgt_lang": "kk", "src": "cat sleeps", "tgt": "Мысық ұйықтайды",
           "src_tokens": ["cat", "sleeps"], "tgt_tokens": ["Мысық", "ұйықтайды"], "links": [[0, 0], [1, 1]],
           "pairs": [{"src": "cat", "tgt": "Мысық", "src_span": [0, 1], "tgt_span": [0, 1], "score": 1.0}]}
    head = ("Given the following parallel sentence between English and Kazakh, judge whether the assertion is "
            "True or False.\nEnglish: cat sleeps\nKazakh: Мысық ұйықтайды\n")
    swaps = {head + 'Assertion: "sleeps" can be aligned with "Мысық" statistically.',
             head + 'Assertion: "cat" can be aligned with "ұйықтайды" statistically.'}
    seen = set()
    for seed in range(40):
        out = build([rec], "align", seed=seed)  # the default: one record per direction, one True, one False
        assert sorted(r["output"] for r in out) == ["False", "True"]
        false = next(r for r in out if r["output"] == "False")
        if false["src_lang"] == "en":
            assert false["input"] in swaps
            assert false["id"] == "7:align:en-kk:0" and false["source_id"] == 7
            seen.add(false["input"])
    # Both swaps occur over seeds: the swapped side is chosen uniformly.
    assert seen == swaps


def test_hint_byte_for_byte_both_directions():
    out = build([CAT], "hint")
    assert [r["input"] for r in out] == [
        "Use the following alignment hints and translate from English to Kazakh.\n"
        "Alignments between Kazakh and English:\n"
        "\u2013 (Мысық, cat),\n"
        "\u2013 (ұйықтап жатыр, sleeps),\n"
        "English: The cat sleeps.\n"
        "Kazakh:",
        "Use the following alignment hints and translate from Kazakh to English.\n"
        "Alignments between English and Kazakh:\n"
        "\u2013 (cat, Мысық),\n"
        "\u2013 (sleeps, ұйықтап жатыр),\n"
        "Kazakh: Мысық ұйықтап жатыр.\n"
        "English:",
    ]
    assert [r["output"] for r in out] == [KK, EN]


def test_revise_byte_for_byte_both_directions():
    stats = BuildStats()
    out = build([DOG, CAT], "revise", pairs_per_sentence=1, revise_pool=1, stats=stats)
    # DOG comes first: nothing to draw a replacement from yet, which is counted, not hidden.
    assert sum(stats.unusable.values()) == 2 and stats.records_in == 2
    assert out == [
        {"id": "s1:revise:en-kk:0", "objective": "revise", "src_lang": "en", "tgt_lang": "kk",
         "input": "Given the following translation of Kazakh from English, output the incorrectly translated "
                  "word and correct it.\nEnglish: The cat sleeps.\nKazakh: Ит ұйықтап жатыр.",
         "output": 'The incorrectly translated word is "Ит". It should be "Мысық".', "source_id": "s1"},
        {"id": "s1:revise:kk-en:0", "objective": "revise", "src_lang": "kk", "tgt_lang": "en",
         "input": "Given the following translation of English from Kazakh, output the incorrectly translated "
                  "word and correct it.\nKazakh: Мысық ұйықтап жатыр.\nEnglish: The dog sleeps.",
         "output": 'The incorrectly translated word is "dog". It should be "cat".', "source_id": "s1"},
    ]


def test_mono_half_and_full_byte_for_byte():
    half = build([CAT], "mono-half")
    assert half == [{"id": "s1:mono-half:kk-kk:0", "objective": "mono-half", "src_lang": "kk", "tgt_lang": "kk",
                     "input": "Given the context, complete the following sentence: Мысық",
                     "output": "ұйықтап жатыр.", "source_id": "s1"}]
    full = build([CAT], "mono-full", direction="en-xx")
    assert full == [{"id": "s1:mono-full:kk-kk:0", "objective": "mono-full", "src_lang": "kk", "tgt_lang": "kk",
                     "input": "Given the context, complete the following sentence:", "output": KK,
                     "source_id": "s1"}]


def test_templates_are_the_documented_constants():
    # docs/templates.md renders these; a change here must change the docs (and is a change of method).
    assert T.OUTPUT_SEPARATOR == " "
    assert T.MT_INPUT == "Translate from {src_name} to {tgt_name}.\n{src_name}: {src}\n{tgt_name}:"
    assert T.HINT_LINE == "\u2013 ({tgt_span}, {src_span}),"
    assert T.REVISE_OUTPUT == 'The incorrectly translated word is "{wrong}". It should be "{right}".'
    assert T.MAX_HINTS == 5


# ----------------------------------------------------------------------------------------------- directions
def test_direction_options_and_pairs_without_english():
    assert [r["id"] for r in build([CAT], "mt", direction="en-xx")] == ["s1:mt:en-kk:0"]
    assert [r["id"] for r in build([CAT], "mt", direction="xx-en")] == ["s1:mt:kk-en:0"]
    # English on the tgt side: en-xx still means English → the other language.
    flipped = dict(CAT, src_lang="kk", tgt_lang="en", src=KK, tgt=EN)
    out = build([flipped], "mt", direction="en-xx")
    assert out[0]["src_lang"] == "en" and out[0]["output"] == KK
    # No English: the record's src side plays English; FLORES codes come out canonical.
    de_fr = {"id": 3, "src_lang": "deu_Latn", "tgt_lang": "fra_Latn", "src": "Hallo Welt", "tgt": "Bonjour"}
    out = build([de_fr], "mt", direction="en-xx")
    assert (out[0]["src_lang"], out[0]["tgt_lang"]) == ("de", "fr")
    assert out[0]["input"] == "Translate from German to French.\nGerman: Hallo Welt\nFrench:"


def test_bad_options_are_user_errors():
    for kw in ({"direction": "up"}, {"negatives": -1.0}, {"pairs_per_sentence": 0}, {"max_hints": 0}):
        with pytest.raises(AitError):
            build([CAT], "align", **kw)
    with pytest.raises(AitError):
        build([CAT], "summarise")


# ----------------------------------------------------------------------------------------------- counts
def diagonal(n_words, n_pairs, rid=1):
    """A record of n_words ↔ n_words aligned on the diagonal, with the first n_pairs words as gold pairs."""
    src, tgt = [f"e{i}" for i in range(n_words)], [f"k{i}" for i in range(n_words)]
    return {"id": rid, "src_lang": "en", "tgt_lang": "kk", "src": " ".join(src), "tgt": " ".join(tgt),
            "src_tokens": src, "tgt_tokens": tgt, "links": [[i, i] for i in range(n_words)],
            "pairs": [{"src": f"e{i}", "tgt": f"k{i}", "src_span": [i, i + 1], "tgt_span": [i, i + 1],
                       "score": (i * 3 % n_words) / 10} for i in range(n_pairs)]}


def test_negative_ratio_is_exact_over_the_stream():
    recs = [diagonal(10, 2, rid=i) for i in range(15)]  # 2 pairs each → 30 records in one direction
    for ratio, n_false in ((0.5, 10), (0.1, 2), (2.0, 20), (0.0, 0), (1.0, 15)):  # floor(30 × ratio / (1 + ratio))
        stats = BuildStats()
        out = build(recs, "align", negatives=ratio, direction="en-xx", pairs_per_sentence="all", stats=stats)
        assert len(out) == 30
        assert sum(r["output"] == "False" for r in out) == n_false, ratio
        assert (stats.outputs["True"], stats.outputs["False"]) == (30 - n_false, n_false)
        assert stats.negatives_missing == 0


def one_word(rid, en, kk):
    return {"id": rid, "src_lang": "en", "tgt_lang": "kk", "src": en, "tgt": kk, "src_tokens": [en],
            "tgt_tokens": [kk], "links": [[0, 0]],
            "pairs": [{"src": en, "tgt": kk, "src_span": [0, 1], "tgt_span": [0, 1], "score": 1.0}]}


def test_negatives_that_cannot_be_made_are_counted():
    # One-word sentences have no span of their own to swap in: the first one (nothing seen before it)
    # stays True, counted; the second swaps in a word of the first.
    stats = BuildStats()
    out = build([one_word(1, "cat", "Мысық"), one_word(2, "dog", "Ит")], "align", stats=stats)
    assert [r["output"] for r in out if r["source_id"] == 1] == ["True", "True"]
    assert sorted(r["output"] for r in out if r["source_id"] == 2) == ["False", "True"]
    assert stats.negatives_missing == 1 and stats.negatives_from_other_sentences == 1
    assert "stayed True" in stats.report()[-1]
    assert "earlier sentence" in stats.summary()[-1] and "3 True (75.0%), 1 False" in stats.summary()[0]
    false = next(r for r in out if r["output"] == "False")["input"].splitlines()[-1]
    assert false in ('Assertion: "cat" can be aligned with "Ит" statistically.',
                     'Assertion: "dog" can be aligned with "Мысық" statistically.',
                     'Assertion: "Мысық" can be aligned with "dog" statistically.',
                     'Assertion: "Ит" can be aligned with "cat" statistically.')
    # Punctuation-only spans are never swapped in.
    for seed in range(20):
        out = build([CAT], "align", negatives=3.0, pairs_per_sentence="all", seed=seed)
        assert not any('"."' in r["input"].splitlines()[-1] for r in out)


def test_pairs_per_sentence_keeps_the_best_scored_and_max_hints_caps():
    out = build([CAT], "align", negatives=0, pairs_per_sentence=1, direction="en-xx")
    assert len(out) == 1 and '"cat" can be aligned with "Мысық"' in out[0]["input"]
    many = diagonal(8, 8)
    hint = build([many], "hint", direction="en-xx", max_hints=3)[0]["input"]
    # The three best scores (0.7, 0.6, 0.5: pairs 5, 2, 7), listed in target order.
    assert "\n\u2013 (k2, e2),\n\u2013 (k5, e5),\n\u2013 (k7, e7),\nEnglish:" in hint
    assert hint.count("\u2013 (") == 3
    assert build([many], "hint", direction="en-xx")[0]["input"].count("\u2013 (") == T.MAX_HINTS


def test_records_without_usable_pairs_are_counted_not_hidden():
    no_pairs = dict(copy.deepcopy(CAT), pairs=[])
    for objective in ("align", "hint", "revise"):
        stats = BuildStats()
        assert build([no_pairs], objective, stats=stats) == []
        assert stats.unusable == {"no gold pair in `pairs`": 2} and stats.records_in == 1
        assert "no gold pair" in stats.report()[0]
    stats = BuildStats()
    seen_only = {"id": 1, "src_lang": "en", "tgt_lang": "fr", "src": "Hello there", "tgt": "Salut"}
    assert build([seen_only], "mono-half", stats=stats) == []
    assert stats.unusable == {"no side in a language unseen by BLOOM": 1}
    stats = BuildStats()
    assert build([dict(CAT, tgt="ж")], "mono-half", stats=stats) == []
    assert stats.unusable == {"sentence too short to split (mono-half)": 1}


def test_mono_half_split_rule():
    assert mono_half_split("a b c d e") == ("a b", "c d e")  # l = floor(5/2)
    assert mono_half_split("a  b\tc d") == ("a b", "c d")  # whitespace runs become one space
    assert mono_half_split("ខ្ញុំស្រលាញ់") == ("ខ្ញុំស", "្រលាញ់")  # one "word": split by characters
    assert mono_half_split("x") is None


def test_revise_never_uses_the_same_string_and_keeps_spacing():
    same = dict(copy.deepcopy(CAT), id="s2")
    stats = BuildStats()
    # The reservoir after CAT holds only CAT's word groups; pool size 1 keeps whichever came last.
    out = build([CAT, same], "revise", revise_pool=1, stats=stats)
    for rec in out:
        wrong, right = re.match(r'The incorrectly translated word is "(.*)"\. It should be "(.*)"\.$',
                                rec["output"]).groups()
        assert wrong != right
    assert token_offsets("The cat sleeps.", ["The", "cat", "sleeps", "."]) == [0, 4, 8, 14]
    assert token_offsets("abc", ["x"]) is None


def test_revise_reservoir_is_bounded():
    from aligninstruct_cli.instructions.objectives import InstructionBuilder

    builder = InstructionBuilder("revise", revise_pool=3)
    for i in range(50):
        rec = copy.deepcopy(CAT)
        rec["id"] = i
        rec["pairs"][0]["tgt"] = f"w{i}"
        rec["pairs"][0]["src"] = f"e{i}"
        builder(rec)
    assert all(len(pool) == 3 for pool in builder._reservoir.pools.values())
    assert builder.stats.records_out == 98  # every record but the first gets both directions


def test_ids_unique_and_records_valid_over_many_records():
    recs = [dict(copy.deepcopy(CAT), id=i) for i in range(20)]
    for objective in ("mt", "align", "hint", "revise", "mono-full", "mono-half"):
        out = build(recs, objective)
        assert len({r["id"] for r in out}) == len(out)
        for rec in out:
            validate_instruction(rec)


# ----------------------------------------------------------------------------------------------- property
def _oracle_aligned(src_tokens, tgt_tokens, links, s_words, t_words):
    """Independent check: is any occurrence of s_words linked to any occurrence of t_words?"""
    def occ(tokens, words):
        return [p for p in range(len(tokens)) if tokens[p:p + len(words)] == words]
    return any((i, j) in links
               for p in occ(src_tokens, s_words) for q in occ(tgt_tokens, t_words)
               for i in range(p, p + len(s_words)) for j in range(q, q + len(t_words)))


@st.composite
def aligned_records(draw):
    # Tiny vocabularies make repeated words (the hard case) common.
    src = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=7))
    tgt = draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=7))
    links = draw(st.lists(st.tuples(st.integers(0, len(src) - 1), st.integers(0, len(tgt) - 1)),
                          max_size=12, unique=True))
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        ss = draw(st.integers(0, len(src) - 1))
        se = draw(st.integers(ss + 1, min(len(src), ss + 3)))
        ts = draw(st.integers(0, len(tgt) - 1))
        te = draw(st.integers(ts + 1, min(len(tgt), ts + 3)))
        pairs.append({"src": " ".join(src[ss:se]), "tgt": " ".join(tgt[ts:te]), "src_span": [ss, se],
                      "tgt_span": [ts, te], "score": draw(st.floats(0, 1))})
    rec = {"id": draw(st.integers(0, 10**6)), "src_lang": "en", "tgt_lang": "kk", "src": " ".join(src),
           "tgt": " ".join(tgt), "src_tokens": src, "tgt_tokens": tgt, "links": [list(l) for l in links],
           "pairs": pairs}
    return validate_aligned(rec)


ASSERTION = re.compile(r'\nAssertion: "([^"]*)" can be aligned with "([^"]*)" statistically\.$')


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(aligned_records(), min_size=1, max_size=3), seed=st.integers(0, 1000),
       ratio=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
def test_negatives_are_never_true_alignments(recs, seed, ratio):
    recs = [dict(rec, id=i) for i, rec in enumerate(recs)]  # later records may swap in earlier ones' spans
    stats = BuildStats()
    out = build(recs, "align", seed=seed, negatives=ratio, pairs_per_sentence="all", stats=stats)
    n_false = n_records = 0
    for rec in recs:
        links = {tuple(l) for l in rec["links"]}
        gold = {(p["src"], p["tgt"]) for p in rec["pairs"]}
        mine = [r for r in out if r["source_id"] == rec["id"]]
        for r in mine:
            span_a, span_b = ASSERTION.search(r["input"]).groups()
            # Put the assertion back in the record's own orientation (src side first).
            s_text, t_text = (span_a, span_b) if r["src_lang"] == "en" else (span_b, span_a)
            if r["output"] == "True":
                assert (s_text, t_text) in gold
            else:
                n_false += 1
                assert (s_text, t_text) not in gold
                assert not _oracle_aligned(rec["src_tokens"], rec["tgt_tokens"], links, s_text.split(),
                                           t_text.split())
        assert len(mine) == 2 * len(gold)  # one record per distinct gold pair and direction
        assert len({r["input"] for r in mine}) == len(mine)  # no assertion twice
        n_records += len(mine)
    # The False count is the whole part of the credit; a False that cannot be made stays True (counted).
    assert n_false + stats.negatives_missing == int(n_records * ratio / (1 + ratio) + 1e-9)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_same_seed_same_bytes_and_seed_matters(tmp_path):
    recs = []
    for i in range(30):
        rec = copy.deepcopy(CAT)
        rec["id"] = i
        recs.append(rec)
    src = str(write_jsonl(tmp_path / "in.jsonl", recs))
    runs = [runner.invoke(app, ["build", src, "--objective", "align", "--seed", s]) for s in ("1", "1", "2")]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    assert runs[0].stdout_bytes == runs[1].stdout_bytes
    assert runs[0].stdout_bytes != runs[2].stdout_bytes
    out = tmp_path / "out.jsonl.gz"
    res = runner.invoke(app, ["build-instructions", src, "--objective", "align", "--seed", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    import gzip
    assert gzip.decompress(out.read_bytes()) == runs[0].stdout_bytes


def test_cli_tsv_input_and_summary(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("Hello world\tСәлем әлем\nGood night\tҚайырлы түн\n", encoding="utf-8")
    res = runner.invoke(app, ["build", str(tsv), "--src-lang", "en", "--tgt-lang", "kaz_Cyrl"])
    assert res.exit_code == 0, res.output
    out = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [r["id"] for r in out] == ["1:mt:en-kk:0", "1:mt:kk-en:0", "2:mt:en-kk:0", "2:mt:kk-en:0"]
    assert out[0]["input"] == "Translate from English to Kazakh.\nEnglish: Hello world\nKazakh:"
    assert "2 input record(s) → 4 instruction record(s)" in res.stderr


def test_cli_alignment_objectives_refuse_tsv(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("a\tb\n", encoding="utf-8")
    res = runner.invoke(app, ["build", str(tsv), "--objective", "align", "--src-lang", "en", "--tgt-lang", "kk"])
    assert res.exit_code == 2
    assert "src_tokens" in res.stderr and "pairs.tsv:1" in res.stderr


def test_cli_reports_unusable_records(tmp_path):
    src = str(write_jsonl(tmp_path / "in.jsonl", [dict(CAT, id="no-pairs", pairs=[]), CAT]))
    res = runner.invoke(app, ["build", src, "--objective", "hint"])
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == 2
    assert "no record made 2 time(s)" in res.stderr and "no gold pair" in res.stderr


def test_made_spans_are_quoted_as_the_sentence_writes_them():
    # Punctuation split off by the tokenizer: quotes keep the sentence's own spacing ("Don't", not "Don ' t").
    src, tgt = "Don't stop, friend.", "Тоқтама, досым."
    rec = {"id": 9, "src_lang": "en", "tgt_lang": "kk", "src": src, "tgt": tgt,
           "src_tokens": ["Don", "'", "t", "stop", ",", "friend", "."], "tgt_tokens": ["Тоқтама", ",", "досым", "."],
           "links": [[0, 0], [3, 0], [5, 2]],
           "pairs": [{"src": "Don't stop", "tgt": "Тоқтама", "src_span": [0, 4], "tgt_span": [0, 1], "score": 0.9},
                     {"src": "friend", "tgt": "досым", "src_span": [5, 6], "tgt_span": [2, 3], "score": 0.8}]}
    out = [r for seed in range(10) for r in build([rec], "align", negatives=3.0, pairs_per_sentence="all", seed=seed)]
    assert len({r["input"] for r in out if r["output"] == "False"}) >= 8
    for r in out:
        a, b = ASSERTION.search(r["input"]).groups()
        s_text, t_text = (a, b) if r["src_lang"] == "en" else (b, a)
        assert s_text in src and t_text in tgt, (s_text, t_text)
    revised = build([DOG, rec], "revise", pairs_per_sentence=1)
    assert revised[0]["input"].endswith("Kazakh: Ит, досым.")
    assert revised[0]["output"] == 'The incorrectly translated word is "Ит". It should be "Тоқтама".'
    assert revised[1]["input"].endswith("English: dog, friend.")

"""ait align, library level: symmetrization, span pairs, tokenizers, the EM model, save/load."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligninstruct_cli.align import symmetrize as sym
from aligninstruct_cli.align.model import LengthClasses, diagonal_prior, empirical_feature_matrix
from aligninstruct_cli.align.persist import AlignmentModel
from aligninstruct_cli.align.pipeline import AlignOptions, CorpusAligner, align_records
from aligninstruct_cli.align.spans import candidate_spans, extract_pairs
from aligninstruct_cli.align.tokenize import get_tokenizer, get_word_splitter, parse_tokenize_option
from aligninstruct_cli.records import validate_aligned

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------------------- symmetrize
# Worked by hand (see the comments): 6 source x 6 target words.
#   forward (one source word per target word): t0<-s0 t1<-s1 t2<-s3 t3<-s3 t4<-s0 t5<-s5
#   reverse (one target word per source word): s0->t0 s1->t1 s2->t2 s3->t3 s4->t2 (s5 unaligned)
FWD = {(0, 0), (1, 1), (3, 2), (3, 3), (0, 4), (5, 5)}
REV = {(0, 0), (1, 1), (2, 2), (3, 3), (4, 2)}
# grow-diag: start {00,11,33}; sweep in (i,j) order over 04,22,32,42,55:
#   04: t4 unaligned but no aligned neighbour -> no; 22: both unaligned, diagonal neighbour 11 -> add;
#   32: s3 and t2 now aligned -> no; 42: s4 unaligned, diagonal neighbour 33 -> add; 55: no neighbour.
#   The second sweep adds nothing.
GROW_DIAG = {(0, 0), (1, 1), (2, 2), (3, 3), (4, 2)}
EXPECTED = {
    "forward": FWD,
    "reverse": REV,
    "intersect": {(0, 0), (1, 1), (3, 3)},
    "union": FWD | REV,
    "grow-diag": GROW_DIAG,
    # final: forward links 04 (t4 unaligned: yes for -final, no for -final-and since s0 is aligned)
    # and 55 (neither aligned: yes for both); the reverse links add nothing new
    "grow-diag-final": GROW_DIAG | {(0, 4), (5, 5)},
    "grow-diag-final-and": GROW_DIAG | {(5, 5)},
}


@pytest.mark.parametrize("heuristic", sym.HEURISTICS)
def test_heuristics_match_the_hand_worked_example(heuristic):
    assert sym.symmetrize(FWD, REV, heuristic) == sorted(EXPECTED[heuristic])


def test_grow_diag_needs_several_sweeps_when_growth_runs_against_the_sweep_order():
    # the intersection is the last diagonal point; each sweep can add only the next point towards 00
    fwd = {(0, 0), (1, 1), (2, 2), (3, 3)}
    rev = {(3, 3)}
    assert sym.symmetrize(fwd, rev, "grow-diag") == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_grow_diag_final_and_never_adds_a_link_between_two_aligned_words():
    fwd = {(0, 0), (1, 1), (0, 1)}
    rev = {(0, 0), (1, 1), (1, 0)}
    # 01 and 10 touch aligned words on both ends and are neighbours of 00/11, but both words are
    # already aligned, so grow-diag rejects them; -final-and rejects them too, -final as well
    for heuristic in ("grow-diag", "grow-diag-final", "grow-diag-final-and"):
        assert sym.symmetrize(fwd, rev, heuristic) == [(0, 0), (1, 1)]


def test_unknown_heuristic_is_an_error():
    with pytest.raises(ValueError):
        sym.symmetrize(set(), set(), "grow")


# ----------------------------------------------------------------------------------------- spans
def _consistent(links, s, e, t, u):
    inside = [(i, j) for i, j in links if s <= i < e or t <= j < u]
    return inside and all(s <= i < e and t <= j < u for i, j in inside)


@st.composite
def _alignments(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    cells = [(i, j) for i in range(n) for j in range(m)]
    links = draw(st.sets(st.sampled_from(cells), max_size=min(len(cells), 14)))
    return n, m, sorted(links)


@settings(max_examples=300, deadline=None)
@given(_alignments(), st.integers(1, 4), st.integers(0, 2**31))
def test_span_pairs_are_always_consistent_with_the_links(alignment, max_span, seed):
    n, m, links = alignment
    rng = random.Random(seed)
    tf = [[rng.random() for _ in range(n)] for _ in range(m)]
    tr = [[rng.random() for _ in range(n)] for _ in range(m)]
    src = [f"s{i}" for i in range(n)]
    tgt = [f"t{j}" for j in range(m)]
    pairs = extract_pairs(links, src, tgt, tf, tr, max_span=max_span, min_score=0.0, max_pairs=1000)
    for p in pairs:
        (s, e), (t, u) = p["src_span"], p["tgt_span"]
        assert 1 <= e - s <= max_span and 1 <= u - t <= max_span
        assert _consistent(links, s, e, t, u), (links, p)
        linked_src = {i for i, _ in links}
        linked_tgt = {j for _, j in links}
        assert {s, e - 1} <= linked_src and {t, u - 1} <= linked_tgt  # tight spans
        assert 0.0 <= p["score"] <= 1.0
        assert p["src"] == " ".join(src[s:e]) and p["tgt"] == " ".join(tgt[t:u])
    # and no consistent tight pair is missed
    found = {(tuple(p["src_span"]), tuple(p["tgt_span"])) for p in pairs}
    assert found == {((s, e), (t, u)) for s, e, t, u in candidate_spans(links, n, m, max_span)}


def test_span_pairs_hand_worked_score_order_and_filters():
    # "the house ." -> "das haus ." with links 0-0 1-1 2-2
    links = [(0, 0), (1, 1), (2, 2)]
    src, tgt = ["the", "house", "."], ["das", "haus", "."]
    tf = [[0.5, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.9]]  # [target j][source i]
    tr = [[0.5, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.9]]
    pairs = extract_pairs(links, src, tgt, tf, tr, min_score=0.0)
    got = [(p["src"], p["tgt"], p["score"]) for p in pairs]
    # the -> das: sqrt(0.5*0.5)=0.5; house -> haus: sqrt(0.8*0.2)=0.4; "." alone is punctuation, and so
    # are the edges of "house ." and "the house ." (dropped on purpose since the default tokenizer splits
    # punctuation off: the pairs without it are there)
    # the house -> das haus: exp((mean(log .5, log .8) + mean(log .5, log .2)) / 2) = (0.5*0.8*0.5*0.2)^(1/4)
    two = round((0.5 * 0.8 * 0.5 * 0.2) ** 0.25, 6)
    three = round((0.5 * 0.8 * 0.9 * 0.5 * 0.2 * 0.9) ** (1 / 6), 6)
    house_dot = round((0.8 * 0.9 * 0.2 * 0.9) ** 0.25, 6)
    expected = sorted([("the", "das", 0.5), ("house", "haus", 0.4), ("the house", "das haus", two)],
                      key=lambda x: -x[2])
    assert got == expected
    with_punct = [(p["src"], p["tgt"], p["score"]) for p in extract_pairs(links, src, tgt, tf, tr, min_score=0.0,
                                                                          keep_punct=True)]
    assert ("the house .", "das haus .", three) in with_punct and ("house .", "haus .", house_dot) in with_punct
    assert [p["src"] for p in extract_pairs(links, src, tgt, tf, tr, min_score=0.45)] == \
        [p for p, _, s in expected if s >= 0.45]
    assert len(extract_pairs(links, src, tgt, tf, tr, min_score=0.0, max_pairs=2)) == 2
    assert any(p["src"] == "." for p in extract_pairs(links, src, tgt, tf, tr, min_score=0.0, keep_punct=True))


def test_span_with_an_unaligned_inner_word_uses_the_best_word_of_the_other_span():
    # source "a x b" (x unaligned) -> target "A B"
    links = [(0, 0), (2, 1)]
    tf = [[0.5, 0.1, 0.1], [0.1, 0.1, 0.5]]
    tr = [[0.5, 0.3, 0.1], [0.1, 0.2, 0.5]]
    pairs = {tuple(p["src_span"]): p for p in extract_pairs(links, ["a", "x", "b"], ["A", "B"], tf, tr, min_score=0)}
    # reverse side of [0,3): a 0.5, x -> max(0.3, 0.2) = 0.3, b 0.5; forward side: A 0.5, B 0.5
    expected = math.exp((math.log(0.5) + (math.log(0.5) + math.log(0.3) + math.log(0.5)) / 3) / 2)
    assert pairs[(0, 3)]["score"] == round(expected, 6)
    assert (1, 2) not in pairs and (0, 2) not in pairs  # spans must start and end on aligned words


# ----------------------------------------------------------------------------------------- tokenizers
def test_tokenizers():
    assert get_word_splitter("whitespace")("a  b\tc\u3000d") == ["a", "b", "c\u3000d"]
    assert get_word_splitter("simple")("Don't stop, «now»!") == ["Don", "'", "t", "stop", ",", "«", "now", "»", "!"]
    khmer = "ខ្ញុំស្រលាញ់ 2024 OK"
    toks = get_word_splitter("chars")(khmer)
    assert "".join(toks) == khmer.replace(" ", "")
    assert toks[0] == "ខ្ញុំ" and "2024" in toks and "OK" in toks  # coeng joins the next consonant
    text = "Hello,  world"
    assert [text[a:b] for a, b in get_tokenizer("simple")(text)] == ["Hello", ",", "world"]
    assert parse_tokenize_option("simple,chars") == ("simple", "chars")
    with pytest.raises(ValueError):
        parse_tokenize_option("words")


# ----------------------------------------------------------------------------------------- model
def test_diagonal_prior_rows_sum_to_one_minus_p0_and_peak_on_the_diagonal():
    prior = diagonal_prior(7, 5, tension=4.0, p0=0.08)
    assert np.allclose(prior.sum(axis=1), 0.92)
    assert prior[0].argmax() == 0 and prior[-1].argmax() == 4
    feat = empirical_feature_matrix(4, 4)  # 0-based target position, as fast_align
    assert feat[0, 0] == pytest.approx(-0.25) and feat[3, 3] == pytest.approx(-0.25)  # never 0 on the diagonal
    assert feat[2, 1] == 0.0  # source 2/4 (1-based) vs target 2/4 (0-based)


def test_model_feature_closed_form_equals_the_direct_sum_for_square_classes():
    # for m == n swapping the lengths changes nothing, so fast_align's closed form is the plain
    # expectation sum_j sum_i h exp(lam h) / Z_j
    lam, m = 5.5, 9
    classes = LengthClasses(np.array([m, m]), np.array([m, m]))
    direct = 0.0
    for j in range(1, m + 1):
        h = np.array([-abs(i / m - j / m) for i in range(1, m + 1)])
        w = np.exp(lam * h)
        direct += (h * w).sum() / w.sum()
    assert classes.model_feature(lam) == pytest.approx(2 * direct, rel=1e-9)


def _dictionary_corpus(n_sent=400, seed=0):
    """Word-for-word translations with local swaps: the gold links are known."""
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(40)]
    trans = {w: f"T{k}" for k, w in enumerate(words)}
    records, gold = [], []
    for k in range(n_sent):
        src = [rng.choice(words) for _ in range(rng.randint(3, 9))]
        order = list(range(len(src)))
        for p in range(len(order) - 1):
            if rng.random() < 0.2:
                order[p], order[p + 1] = order[p + 1], order[p]
        tgt = [trans[src[i]] for i in order]
        records.append({"id": k, "src_lang": "en", "tgt_lang": "de", "src": " ".join(src), "tgt": " ".join(tgt)})
        gold.append({(i, j) for j, i in enumerate(order)})
    return records, gold


def test_em_recovers_word_for_word_links():
    records, gold = _dictionary_corpus()
    out = align_records(records, AlignOptions(links="intersect", progress=False))
    hits = sum(len({tuple(link) for link in rec["links"]} & g) for rec, g in zip(out, gold))
    total = sum(len(g) for g in gold)
    predicted = sum(len(rec["links"]) for rec in out)
    assert hits / total > 0.9 and hits / predicted > 0.97
    for rec in out:
        validate_aligned(rec)


def test_output_keeps_extra_fields_surface_tokens_and_is_deterministic():
    records, _ = _dictionary_corpus(120, seed=3)
    records[0] = dict(records[0], src="W0 w1,  w2", meta={"keep": True})
    config = lambda: AlignOptions(lowercase=True, tokenize=("simple", "whitespace"), progress=False)  # noqa: E731
    first = align_records(records, config())
    assert first == align_records(records, config())
    assert first[0]["meta"] == {"keep": True}
    assert first[0]["src_tokens"] == ["W0", "w1", ",", "w2"]  # surface case kept, model lowercased
    for rec in first:
        for p in rec["pairs"]:
            s, e = p["src_span"]
            assert p["src"] in rec["src"] and p["src"].split()[0].startswith(rec["src_tokens"][s][:1])


def test_saved_and_reloaded_model_aligns_new_sentences_identically(tmp_path):
    records, _ = _dictionary_corpus(300, seed=1)
    train, new = records[:250], records[250:]
    new = [dict(r) for r in new]
    new[0]["src"] += " unseenword"  # an unknown word must not break anything
    new[1]["tgt"] = "T0 NEWWORD T1"
    config = lambda: AlignOptions(progress=False)  # noqa: E731
    with CorpusAligner(config()) as aligner:
        for r in train:
            aligner.add(dict(r))
        trained_out = list(aligner.aligned_records())
        in_memory = aligner.trained_model()
        in_memory.save(tmp_path / "model")
    reloaded = AlignmentModel.load(tmp_path / "model")
    assert reloaded.tables["forward"]["tension"] == in_memory.tables["forward"]["tension"]
    a = align_records(new, config(), model=in_memory)
    b = align_records(new, config(), model=reloaded)
    assert a == b
    assert all(rec["links"] for rec in a)
    # the training sentences, re-aligned with the saved model, get the training run's links
    again = align_records(train, config(), model=reloaded)
    assert [r["links"] for r in again] == [r["links"] for r in trained_out]
    assert [r["pairs"] for r in again] == [r["pairs"] for r in trained_out]


def test_real_data_enfr_aer_is_close_to_fast_align(shared_data):
    gold_dir = shared_data / "align-gold" / "enfr"
    read = lambda name: (gold_dir / name).read_text(encoding="utf-8").split("\n")[:-1]  # noqa: E731
    src = read("test.src") + read("train.src")
    tgt = read("test.tgt") + read("train.tgt")
    records = [{"id": k, "src_lang": "en", "tgt_lang": "fr", "src": s, "tgt": t} for k, (s, t) in enumerate(zip(src, tgt))]
    # the gold links index the corpus's own (pre-tokenized) whitespace tokens: not ait's default `simple`
    config = AlignOptions(tokenize=("whitespace", "whitespace"), lowercase=True, max_pairs=0, progress=False)
    out = align_records(records, config)
    a_s = a_p = n_a = n_s = 0
    for rec, line in zip(out, read("test.gold")):
        sure = {tuple(map(int, x.split("-"))) for x in line.split() if "-" in x}
        possible = sure | {tuple(map(int, x.split("?"))) for x in line.split() if "?" in x}
        links = {tuple(link) for link in rec["links"]}
        a_s += len(links & sure)
        a_p += len(links & possible)
        n_a += len(links)
        n_s += len(sure)
    aer = 1 - (a_s + a_p) / (n_a + n_s)
    assert aer < 0.245  # C++ fast_align: 0.2381 (grow-diag-final-and); ait measured 0.2378


def test_memory_mapped_cell_ids_and_lanes_give_the_same_links(monkeypatch):
    """Above the memmap threshold the cell ids live in a file; two lanes split the chunks. The links
    must not change (lanes only reorder float additions; this small corpus has no near-ties)."""
    from aligninstruct_cli.align import corpus

    records, _ = _dictionary_corpus(200, seed=5)
    plain = align_records(records, AlignOptions(progress=False))
    monkeypatch.setattr(corpus, "DEFAULT_MEMMAP_CELLS", 0)
    monkeypatch.setattr(corpus, "DEFAULT_CHUNK_CELLS", 64)
    monkeypatch.setattr(corpus, "DEFAULT_SHARD_CELLS", 2048)
    with CorpusAligner(AlignOptions(progress=False, threads=2)) as aligner:
        for r in records:
            aligner.add(dict(r))
        aligner.fit()
        assert aligner.layout._memmap_path and len(aligner.layout.chunks) > 10
        mapped = list(aligner.aligned_records())
    assert [r["links"] for r in mapped] == [r["links"] for r in plain]

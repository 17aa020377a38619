"""`ait build --objective align` as the paper builds it: one record per sentence pair and direction,
True or False in equal shares, on real OPUS-100 be–en data; hints that never overlap."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from conftest import read_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.instructions.objectives import BuildStats, InstructionBuilder, build_instructions

runner = CliRunner()


@pytest.fixture(scope="module")
def be_aligned(shared_data, tmp_path_factory):
    """`ait align` output of the first 300 OPUS-100 be–en training pairs."""
    out = tmp_path_factory.mktemp("be-en")
    res = runner.invoke(app, ["data", "opus100", "--pair", "be-en", "--split", "train", "--source",
                              str(shared_data / "opus100"), "--limit", "300", "-o", str(out / "be.jsonl")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["align", str(out / "be.jsonl"), "-o", str(out / "be.aligned.jsonl")])
    assert res.exit_code == 0, res.output
    return out / "be.aligned.jsonl"


def build_cli(path, *args):
    res = runner.invoke(app, ["build", str(path), "--objective", *args])
    assert res.exit_code == 0, res.output
    return res


def test_default_align_is_one_record_per_sentence_and_direction_half_true(be_aligned):
    res = build_cli(be_aligned, "align")
    out = [orjson.loads(line) for line in res.stdout_bytes.splitlines()]
    aligned = read_jsonl(be_aligned)
    with_pairs = sum(1 for r in aligned if r["pairs"])
    assert 0 < with_pairs < len(aligned) == 300  # some sentences have no gold pair: they are reported
    assert len(out) == 2 * with_pairs
    n_true = sum(r["output"] == "True" for r in out)
    assert 0.48 <= n_true / len(out) <= 0.52
    assert {r["id"].rsplit(":", 1)[1] for r in out} == {"0"}  # one record per sentence and direction
    assert len({(r["source_id"], r["src_lang"]) for r in out}) == len(out)
    # The summary: counts by output, sentences without gold pairs, the fallback used.
    assert f"{len(out):,} record(s): {n_true:,} True" in res.stderr
    assert f"{300 - with_pairs} of 300 sentence pair(s) have no gold pair" in res.stderr
    assert "span of an earlier sentence" in res.stderr
    # The default is --pairs-per-sentence 1 with one False per True.
    explicit = build_cli(be_aligned, "align", "--pairs-per-sentence", "1", "--negatives", "1")
    assert explicit.stdout_bytes == res.stdout_bytes


def test_default_align_same_seed_same_bytes(be_aligned):
    runs = [build_cli(be_aligned, "align", "--seed", seed).stdout_bytes for seed in ("4", "4", "5")]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_more_pairs_per_sentence_give_more_records_in_the_same_shares(be_aligned):
    records = read_jsonl(be_aligned)
    stats = BuildStats()
    out = list(build_instructions(records, "align", pairs_per_sentence="all", stats=stats))
    distinct = sum(len({(p["src"], p["tgt"]) for p in r["pairs"]}) for r in records)
    assert len(out) == 2 * distinct  # one record per distinct gold pair and direction
    assert stats.outputs["True"] == stats.outputs["False"] + stats.negatives_missing
    two = list(build_instructions(records, "align", pairs_per_sentence=2))
    assert 2 * sum(1 for r in records if r["pairs"]) < len(two) < len(out)


def test_pairs_per_sentence_accepts_all_and_names_the_flag(be_aligned):
    assert build_cli(be_aligned, "align", "--pairs-per-sentence", "all").stdout_bytes.count(b"\n") > 600
    for bad in ("0", "some", "-1"):
        res = runner.invoke(app, ["build", str(be_aligned), "--objective", "align", "--pairs-per-sentence", bad])
        assert res.exit_code == 2, bad
        assert "--pairs-per-sentence must be a whole number of at least 1, or all" in res.stderr


def _pair(src, tgt, s_span, t_span, score):
    return {"src": src, "tgt": tgt, "src_span": s_span, "tgt_span": t_span, "score": score}


THANKS = {
    "id": "t1", "src_lang": "en", "tgt_lang": "be", "src": "Thank you, friend!", "tgt": "Дзякуй, сябар!",
    "src_tokens": ["Thank", "you", ",", "friend", "!"], "tgt_tokens": ["Дзякуй", ",", "сябар", "!"],
    "links": [[0, 0], [1, 0], [3, 2], [4, 3]],
    "pairs": [_pair("friend!", "сябар!", [3, 5], [2, 4], 0.95),
              _pair("Thank you", "Дзякуй", [0, 2], [0, 1], 0.9),
              _pair("friend", "сябар", [3, 4], [2, 3], 0.85),  # inside the best pair on both sides
              _pair("Thank", "Дзякуй", [0, 1], [0, 1], 0.8),  # overlaps "Thank you" on both sides
              _pair("you", "Дзякуй", [1, 2], [0, 1], 0.7)],  # overlaps on both sides too
}


def test_hints_never_overlap_keeping_the_best():
    out = list(build_instructions([THANKS], "hint", direction="en-xx"))
    hints = [line for line in out[0]["input"].splitlines() if line.startswith("\u2013 (")]
    assert hints == ["\u2013 (Дзякуй, Thank you),", "\u2013 (сябар!, friend!),"]  # in target order
    # Overlap on one side is enough to leave a pair out.
    one_side = dict(THANKS, pairs=[_pair("Thank", "Дзякуй", [0, 1], [0, 1], 0.9),
                                   _pair("you", "Дзякуй", [1, 2], [0, 1], 0.8),
                                   _pair("friend", "сябар", [3, 4], [2, 3], 0.7)])
    out = list(build_instructions([one_side], "hint", direction="xx-en"))
    assert [line for line in out[0]["input"].splitlines() if line.startswith("\u2013 (")] == [
        "\u2013 (Thank, Дзякуй),", "\u2013 (friend, сябар),"]


def test_hints_on_real_data_are_distinct_non_overlapping_spans(be_aligned):
    builder = InstructionBuilder("hint")
    n_hints = 0
    for record in read_jsonl(be_aligned):
        kept = builder._hint_pairs(record, builder._selected_pairs(record))
        spans = [(record["pairs"][i]["src_span"], record["pairs"][i]["tgt_span"]) for i in kept]
        n_hints += len(spans)
        for a, (a_src, a_tgt) in enumerate(spans):
            for b_src, b_tgt in spans[a + 1:]:
                assert a_src[1] <= b_src[0] or b_src[1] <= a_src[0]
                assert a_tgt[1] <= b_tgt[0] or b_tgt[1] <= a_tgt[0]
    assert n_hints > 300

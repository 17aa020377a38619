"""records.py: every record kind validates its fields and names the bad one."""

from __future__ import annotations

import copy

import pytest

from aligninstruct_cli.errors import RecordError
from aligninstruct_cli.records import (OBJECTIVES, SCHEMA_VERSION, validate_aligned, validate_hypothesis,
                                       validate_instruction, validate_parallel, validate_source)

PAR = {"id": "p1", "src_lang": "en", "tgt_lang": "kk", "src": "The cat", "tgt": "Мысық"}
ALIGNED = dict(PAR, src_tokens=["The", "cat"], tgt_tokens=["Мысық"], links=[[1, 0]],
               pairs=[{"src": "cat", "tgt": "Мысық", "src_span": [1, 2], "tgt_span": [0, 1], "score": 0.9}])
INSTRUCTION = {"id": "p1:mt:en-kk:0", "objective": "mt", "src_lang": "en", "tgt_lang": "kk",
               "input": "Translate from English to Kazakh.\nEnglish: The cat\nKazakh:", "output": "Мысық",
               "source_id": "p1"}


def field_error(validate, record) -> str | None:
    with pytest.raises(RecordError) as err:
        validate(record)
    return err.value.field


def test_valid_records_pass_unchanged_with_extra_fields_kept():
    assert SCHEMA_VERSION >= 1 and OBJECTIVES == ("mt", "align", "hint", "revise", "mono-full", "mono-half")
    for validate, rec in ((validate_parallel, PAR), (validate_aligned, ALIGNED), (validate_instruction, INSTRUCTION),
                          (validate_source, {k: v for k, v in PAR.items() if k != "tgt"}),
                          (validate_hypothesis, dict(PAR, hyp=""))):
        rec = dict(rec, meta={"kept": True})
        assert validate(rec) is rec
    assert validate_parallel(dict(PAR, id=7))["id"] == 7  # integer ids are fine
    assert validate_parallel(dict(PAR, src_lang="eng_Latn", tgt_lang="Kazakh"))  # any code style


@pytest.mark.parametrize("change,field", [
    ({"id": ""}, "id"), ({"id": True}, "id"), ({"id": 1.5}, "id"),
    ({"src": "   "}, "src"), ({"tgt": 3}, "tgt"), ({"src_lang": "xx"}, "src_lang"), ({"tgt_lang": None}, "tgt_lang"),
])
def test_parallel_field_errors(change, field):
    assert field_error(validate_parallel, dict(PAR, **change)) == field


@pytest.mark.parametrize("missing", ["id", "src_lang", "tgt_lang", "src", "tgt"])
def test_missing_fields(missing):
    rec = {k: v for k, v in PAR.items() if k != missing}
    with pytest.raises(RecordError, match="missing") as err:
        validate_parallel(rec)
    assert err.value.field == missing


def test_not_an_object():
    with pytest.raises(RecordError, match="expected a JSON object, got list"):
        validate_parallel([1])


def test_unknown_language_hint():
    with pytest.raises(RecordError) as err:
        validate_parallel(dict(PAR, tgt_lang="kaz_Cyr"))
    assert "kk (kaz_Cyrl, Kazakh)" in err.value.hint


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.update(src_tokens=[]), "src_tokens"),
    (lambda r: r.update(tgt_tokens=["ok", ""]), "tgt_tokens"),
    (lambda r: r.update(links="0-1"), "links"),
    (lambda r: r.update(links=[[2, 0]]), "links"),
    (lambda r: r.update(links=[[0, True]]), "links"),
    (lambda r: r.update(pairs={}), "pairs"),
    (lambda r: r["pairs"].append("x"), "pairs[1]"),
    (lambda r: r["pairs"][0].update(src_span=[1, 3]), "pairs[0].src_span"),
    (lambda r: r["pairs"][0].update(tgt_span=[0, 0]), "pairs[0].tgt_span"),
    (lambda r: r["pairs"][0].update(tgt=""), "pairs[0].tgt"),
    (lambda r: r["pairs"][0].update(score="high"), "pairs[0].score"),
])
def test_aligned_field_errors(mutate, field):
    rec = copy.deepcopy(ALIGNED)
    mutate(rec)
    assert field_error(validate_aligned, rec) == field


@pytest.mark.parametrize("change,field", [
    ({"objective": "summarise"}, "objective"), ({"input": ""}, "input"), ({"output": " "}, "output"),
    ({"source_id": None}, "source_id"), ({"src_lang": "zz"}, "src_lang"),
])
def test_instruction_field_errors(change, field):
    assert field_error(validate_instruction, dict(INSTRUCTION, **change)) == field


def test_hypothesis_may_be_empty_but_must_be_a_string():
    assert validate_hypothesis(dict(PAR, hyp=""))
    assert field_error(validate_hypothesis, dict(PAR, hyp=None)) == "hyp"

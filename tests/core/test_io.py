"""io.py: the one reader/writer of every stage."""

from __future__ import annotations

import gzip
import io
import sys

import orjson
import pytest

from conftest import jsonl_bytes
from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.io import (ErrorPolicy, RecordWriter, atomic_path, detect_format, read_json, read_records,
                                  write_json, write_records)
from aligninstruct_cli.textfile import iter_lines

PAR = {"id": "a", "src_lang": "en", "tgt_lang": "kk", "src": "Hello", "tgt": "Сәлем"}


def test_tsv_fast_align_and_jsonl_give_the_same_parallel_records(tmp_path):
    (tmp_path / "a.tsv").write_text("Hello\tСәлем\nBye now\tСау бол\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("Hello ||| Сәлем\nBye now ||| Сау бол\n", encoding="utf-8")
    tsv = list(read_records(str(tmp_path / "a.tsv"), "parallel", src_lang="en", tgt_lang="kk"))
    fa = list(read_records(str(tmp_path / "a.txt"), "parallel", src_lang="en", tgt_lang="kk", id_prefix="opus."))
    assert tsv == [{"id": "1", "src_lang": "en", "tgt_lang": "kk", "src": "Hello", "tgt": "Сәлем"},
                   {"id": "2", "src_lang": "en", "tgt_lang": "kk", "src": "Bye now", "tgt": "Сау бол"}]
    assert [r["id"] for r in fa] == ["opus.1", "opus.2"] and [r["src"] for r in fa] == ["Hello", "Bye now"]
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes(*tsv))
    assert list(read_records(str(tmp_path / "a.jsonl"), "parallel")) == tsv


def test_format_detection():
    assert detect_format("x.jsonl.gz", "whatever") == "jsonl"
    assert detect_format("x.tsv", "a b") == "tsv"
    assert detect_format("x", '{"id": 1}') == "jsonl"
    assert detect_format("x", "a ||| b") == "fast_align"
    assert detect_format("x", "a\tb") == "tsv"
    with pytest.raises(InputError, match="cannot tell the input format"):
        detect_format("x", "just text")


def test_tsv_needs_languages(tmp_path):
    (tmp_path / "a.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(AitError, match="needs src_lang and tgt_lang"):
        list(read_records(str(tmp_path / "a.tsv"), "parallel"))


def test_gzip_in_and_out(tmp_path):
    out = tmp_path / "o.jsonl.gz"
    assert write_records(str(out), [PAR, dict(PAR, id="b")]) == 2
    assert gzip.decompress(out.read_bytes()) == jsonl_bytes(PAR, dict(PAR, id="b"))
    assert [r["id"] for r in read_records(str(out), "parallel")] == ["a", "b"]


def test_blank_lines_carry_no_record_and_locations_and_offsets_are_exact(tmp_path):
    data = jsonl_bytes(PAR) + b"\n   \n" + jsonl_bytes(dict(PAR, id="b"))
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    located = list(read_records(str(path), "parallel", with_location=True, with_offset=True))
    assert [(line, off) for line, off, _ in located] == [(1, 0), (4, len(jsonl_bytes(PAR)) + 5)]
    for _, off, rec in located:
        assert orjson.loads(data[off:].split(b"\n", 1)[0]) == rec
    assert [r["id"] for _, r in read_records(str(path), with_location=True)] == ["a", "b"]


def test_crlf_invalid_utf8_and_errors_name_file_line_field(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"a\tb\r\n")
    with pytest.raises(InputError, match=r"a\.tsv:1: line ends in CRLF"):
        list(iter_lines(str(path)))
    array = tmp_path / "a.json"  # a JSON array file is read whole: the same error, the line of its first CR
    array.write_bytes(b'[{"id": "a", "src_lang": "en", "tgt_lang": "kk", "src": "x",\n "tgt": "y"},\r\n]\n')
    for read, where in ((lambda: list(read_records(str(array), "parallel")), r"a\.json:2"),
                        (lambda: list(iter_lines(str(path))), r"a\.tsv:1")):
        with pytest.raises(InputError, match=where + r": line ends in CRLF \(Windows line ending\)") as error:
            read()
        assert error.value.hint == "convert the file first, e.g. `sed -i 's/\\r$//' FILE` or dos2unix"
    path.write_bytes(b"a\tb\nc\t\xe9\n")
    with pytest.raises(InputError, match=r"a\.tsv:2: invalid UTF-8 at byte 2"):
        list(iter_lines(str(path)))
    path = tmp_path / "b.jsonl"
    path.write_bytes(jsonl_bytes(PAR) + orjson.dumps(dict(PAR, tgt_lang=5)) + b"\n")
    with pytest.raises(InputError) as err:
        list(read_records(str(path), "parallel"))
    assert (err.value.line, err.value.field) == (2, "tgt_lang")
    assert str(err.value).startswith(f"{path}:2: field 'tgt_lang': expected a string")


def test_error_name_replaces_the_path(tmp_path):
    path = tmp_path / "spool.jsonl"
    path.write_bytes(b"{bad\n")
    with pytest.raises(InputError, match=r"^original\.jsonl\.gz:1: malformed JSON"):
        list(read_records(str(path), name="original.jsonl.gz"))


def test_skip_policy_counts_and_reports(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes(PAR) + b"[1, 2]\n" + b"\xff\n" + jsonl_bytes({**PAR, "id": "b"}))
    policy = ErrorPolicy("skip")
    assert len(list(read_records(str(path), "parallel", policy=policy))) == 2
    assert policy.skipped == 2
    report = policy.report()
    assert "skipped 2 bad record(s)" in report and "a.jsonl:2: expected a JSON object" in report
    assert "a.jsonl:3: invalid UTF-8" in report
    with pytest.raises(AitError):
        ErrorPolicy("ignore")


def test_stdin_is_dash(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(jsonl_bytes(PAR))))
    assert list(read_records("-", "parallel")) == [PAR]


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_bytes(b"old\n")
    with pytest.raises(RuntimeError):
        with RecordWriter(str(out)) as writer:
            writer.write(PAR)
            raise RuntimeError("boom")
    assert out.read_bytes() == b"old\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]  # no temporary left
    with RecordWriter(str(out)) as writer:
        writer.write(PAR)
        writer.write_raw(b'{"raw":1}\n')
        writer.write_line("plain")
    assert out.read_bytes() == jsonl_bytes(PAR) + b'{"raw":1}\nplain\n' and writer.count == 3


def test_missing_file_directory_and_json_helpers(tmp_path):
    with pytest.raises(AitError, match="no such file"):
        list(iter_lines(str(tmp_path / "nope")))
    with pytest.raises(AitError, match="is a directory"):
        list(iter_lines(str(tmp_path)))
    write_json(tmp_path / "s.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "s.json") == {"a": [1, 2], "b": 1}
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(AitError, match="malformed JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "plot.png") as tmp:
            tmp.write_bytes(b"x")
            raise ValueError
    assert not (tmp_path / "plot.png").exists()


def test_bad_gzip_is_a_user_error(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(b"not gzip at all\n")
    with pytest.raises(AitError, match="cannot read"):
        list(read_records(str(path)))

"""`ait mix`: caps and weights hold exactly, deterministic shuffles, byte-identical records."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import orjson
import pytest
from typer.testing import CliRunner

from conftest import flat, read_jsonl, write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions.mixing import (MixInput, apply_weights, language_key, mix, parse_inputs,
                                                   parse_weight, summary_json)
from train_helpers import mt_record

runner = CliRunner()


def instruction(source_id, objective="mt", src="en", tgt="kk", k=0):
    return {"id": f"{source_id}:{objective}:{src}-{tgt}:{k}", "objective": objective, "src_lang": src,
            "tgt_lang": tgt, "input": f"in {source_id} ü", "output": f"out {source_id}", "source_id": source_id}


def write(path, records, *, trailing_newline=True):
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if not trailing_newline:
        data = data[:-1]
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


def read(path):
    return [orjson.loads(line) for line in open(path, "rb")]


def both_directions(ids, objective="mt", lang="kk"):
    return [r for i in ids for r in (instruction(i, objective, "en", lang), instruction(i, objective, lang, "en"))]


# ----------------------------------------------------------------------------------------------- options
def test_parse_inputs_names_and_errors(tmp_path):
    ins = parse_inputs(["mt=a/b.jsonl", "c/align.jsonl.gz", "-"])
    assert [(i.name, i.path) for i in ins] == [("mt", "a/b.jsonl"), ("align", "c/align.jsonl.gz"), ("stdin", "-")]
    with pytest.raises(AitError, match="used twice"):
        parse_inputs(["x/mt.jsonl", "y/mt.jsonl"])
    with pytest.raises(AitError):
        parse_inputs([])
    apply_weights(ins, ["mt=2.5", "align=1/3"])
    assert ins[0].weight == Fraction(5, 2) and ins[1].weight == Fraction(1, 3)
    for bad in (["nope=2"], ["mt"], ["mt=abc"], ["mt=-1"]):
        with pytest.raises(AitError):
            apply_weights(ins, bad)
    assert parse_weight("0.29") == Fraction(29, 100)


def test_language_key():
    assert language_key("en", "kk") == language_key("kk", "en") == language_key("kk", "kk") == "kk"
    assert language_key("fr", "de") == language_key("de", "fr") == "de-fr"


# ----------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("weight,expected", [("2.5", 25), ("1", 10), ("0.3", 3), ("1/3", 3), ("0.25", 3),
                                             ("0.24", 2), ("0", 0), ("3", 30)])
def test_weights_hold_exactly(tmp_path, weight, expected):
    src = write(tmp_path / "a.jsonl", [instruction(i) for i in range(10)])
    out = tmp_path / "out.jsonl"
    ins = parse_inputs([src])
    apply_weights(ins, [f"a={weight}"])
    plan = mix(ins, str(out), mode="concat", seed=3)
    recs = read(out)
    assert len(recs) == plan.total == expected
    counts = Counter(r["source_id"] for r in recs)
    w = Fraction(weight)
    full = int(w * 10 + Fraction(1, 2)) // 10
    # Every record appears floor(c/n) or floor(c/n)+1 times.
    assert set(counts.values()) <= {full, full + 1}
    assert sum(counts.values()) == expected


def test_concat_keeps_input_order_and_bytes(tmp_path):
    a = write(tmp_path / "a.jsonl", [instruction(i) for i in range(5)])
    b = write(tmp_path / "b.jsonl", [instruction(i, "align") for i in range(3)], trailing_newline=False)
    out = tmp_path / "out.jsonl"
    mix(parse_inputs([a, b]), str(out), mode="concat")
    expected = open(a, "rb").read() + open(b, "rb").read() + b"\n"
    assert out.read_bytes() == expected


def test_interleave_is_a_seeded_permutation(tmp_path):
    a = write(tmp_path / "a.jsonl", [instruction(i) for i in range(200)])
    b = write(tmp_path / "b.jsonl", [instruction(i, "align") for i in range(100)])
    outs = []
    for seed, name in ((1, "x"), (1, "y"), (2, "z")):
        mix(parse_inputs([a, b]), str(tmp_path / name), seed=seed)
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]
    assert sorted(outs[0].splitlines()) == sorted((open(a, "rb").read() + open(b, "rb").read()).splitlines())
    # Really mixed: the align records are spread over the whole output, not in one block.
    objectives = [orjson.loads(line)["objective"] for line in outs[0].splitlines()]
    assert "align" in objectives[:100] and "align" in objectives[-100:]


# ----------------------------------------------------------------------------------------------- caps
def test_max_per_lang_caps_source_pairs_exactly_across_inputs(tmp_path):
    mt = write(tmp_path / "mt.jsonl", both_directions(range(100)) + both_directions(range(40), lang="be"))
    align = write(tmp_path / "align.jsonl",
                  both_directions(range(100), "align") +
                  [{**r, "id": r["id"][:-1] + "1"} for r in both_directions(range(100), "align")] +  # k = 1
                  [instruction(i, "mono-half", "kk", "kk") for i in range(100)])
    out = tmp_path / "out.jsonl"
    plan = mix(parse_inputs([mt, align]), str(out), max_per_lang=25, seed=5)
    recs = read(out)
    by_lang: dict[str, set] = {}
    for r in recs:
        by_lang.setdefault(language_key(r["src_lang"], r["tgt_lang"]), set()).add(r["source_id"])
    assert len(by_lang["kk"]) == 25 and len(by_lang["be"]) == 25
    kept = by_lang["kk"]
    # The same pairs in every input and direction, and every record of a kept pair stays.
    for objective, per_pair in (("mt", 2), ("align", 4), ("mono-half", 1)):
        ids = Counter(r["source_id"] for r in recs if r["objective"] == objective
                      and language_key(r["src_lang"], r["tgt_lang"]) == "kk")
        assert set(ids) == kept and set(ids.values()) == {per_pair}
    assert plan.pairs_by_language == {"kk": (100, 25), "be": (40, 25)}
    # A language under the cap keeps everything; a different seed samples different pairs.
    mix(parse_inputs([mt]), str(tmp_path / "o2.jsonl"), max_per_lang=50, seed=5)
    assert len({r["source_id"] for r in read(tmp_path / "o2.jsonl") if r["tgt_lang"] == "be" or r["src_lang"] == "be"}) == 40
    mix(parse_inputs([mt, align]), str(tmp_path / "o3.jsonl"), max_per_lang=25, seed=6)
    assert {r["source_id"] for r in read(tmp_path / "o3.jsonl") if "kk" in (r["src_lang"], r["tgt_lang"])} != kept


def test_cap_then_weight(tmp_path):
    mt = write(tmp_path / "mt.jsonl", both_directions(range(50)))
    out = tmp_path / "out.jsonl"
    ins = parse_inputs([mt])
    apply_weights(ins, ["mt=0.5"])
    plan = mix(ins, str(out), max_per_lang=10, seed=0)
    assert plan.total == 10  # 10 pairs × 2 directions × 0.5
    assert len({r["source_id"] for r in read(out)}) <= 10


def test_codes_are_merged_in_the_summary(tmp_path):
    a = write(tmp_path / "a.jsonl", [instruction(1, src="eng_Latn", tgt="kaz_Cyrl"), instruction(2)])
    plan = mix(parse_inputs([a]), str(tmp_path / "o.jsonl"), max_per_lang=1)
    report = summary_json(plan)
    assert report["records"] == [{"direction": "en→kk", "objective": "mt", "count": 1}]
    assert report["pairs_per_language"] == {"kk": {"available": 2, "kept": 1}}


# ----------------------------------------------------------------------------------------------- inputs
def test_gz_and_stdin_inputs_give_the_same_bytes(tmp_path):
    recs = [instruction(i) for i in range(50)]
    plain = write(tmp_path / "a.jsonl", recs)
    gz = write(tmp_path / "b.jsonl.gz", recs)
    mix([MixInput("a", plain)], str(tmp_path / "1.jsonl"), seed=4)
    mix([MixInput("a", gz)], str(tmp_path / "2.jsonl"), seed=4)
    assert (tmp_path / "1.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "mix", "a=-", "--seed", "4"],
                          input=open(plain, "rb").read(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == (tmp_path / "1.jsonl").read_bytes()


def test_skipped_and_blank_lines_never_leak_into_neighbours(tmp_path):
    good = [orjson.dumps(instruction(i)) for i in range(4)]
    src = tmp_path / "a.jsonl"
    src.write_bytes(good[0] + b"\n\n" + good[1] + b"\n{broken\n" + good[2] + b"\n" + good[3] + b"\n")
    res = runner.invoke(app, ["mix", str(src), "--mode", "concat", "--on-error", "skip"])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes == b"".join(g + b"\n" for g in good)
    assert "skipped 1 bad record" in res.stderr


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_summary_table_and_json(tmp_path):
    mt = write(tmp_path / "mt.jsonl", both_directions(range(30)))
    al = write(tmp_path / "al.jsonl", both_directions(range(30), "align"))
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    res = runner.invoke(app, ["mix", f"MT={mt}", al, "--weight", "MT=2", "--max-per-lang", "20", "--seed", "1",
                              "-o", str(out), "--summary", str(summary)])
    assert res.exit_code == 0, res.output
    report = orjson.loads(summary.read_bytes())
    assert report["total"] == 20 * 2 * 2 + 20 * 2 == len(read(out))
    assert [i["name"] for i in report["inputs"]] == ["MT", "al"]
    assert report["inputs"][0]["weight"] == "2" and report["inputs"][0]["written"] == 80
    for text in ("en→kk", "kk→en", "align", "mt", "records written", "120"):
        assert text in res.stderr
    assert res.stdout == ""


def test_cli_bad_input_names_file_and_line_and_leaves_no_output(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_bytes(orjson.dumps(instruction(1)) + b"\n" + b'{"id": 2, "objective": "mt"}\n')
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["mix", str(src), "-o", str(out)])
    assert res.exit_code == 2
    assert f"{src}:2: field 'src_lang': missing" in res.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]


def test_cli_unknown_weight_name(tmp_path):
    src = write(tmp_path / "a.jsonl", [instruction(1)])
    res = runner.invoke(app, ["mix", src, "--weight", "b=2"])
    assert res.exit_code == 2 and "no input named 'b'" in res.stderr


def test_cli_bad_mode_and_cap(tmp_path):
    src = write(tmp_path / "a.jsonl", [instruction(1)])
    res = runner.invoke(app, ["mix", src, "--mode", "zip"])
    assert res.exit_code == 2 and "'zip' is not one of 'interleave', 'concat'" in flat(res.stderr)
    res = runner.invoke(app, ["mix", src, "--max-per-lang", "-1"])
    assert res.exit_code == 2 and "Invalid value for '--max-per-lang'" in flat(res.stderr)  # Typer's range check


def test_mix_refuses_duplicate_ids_in_an_input(tmp_path):
    rec = mt_record(1, "a", "b")
    path = write_jsonl(tmp_path / "mt.jsonl", [rec, mt_record(2, "c", "d"), rec])
    result = runner.invoke(app, ["mix", str(path), "-o", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 2 and "mt.jsonl:3: field 'id': duplicate id" in result.output
    result = runner.invoke(app, ["mix", str(path), "-o", str(tmp_path / "m.jsonl"), "--on-error", "skip"])
    assert result.exit_code == 0 and len(read_jsonl(tmp_path / "m.jsonl")) == 2

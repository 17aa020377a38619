"""`ait data`: OPUS-100 / FLORES-200 from local copies in the release layout and the hub's parquet layout."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from aligninstruct_cli import data_sources
from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError, InputError

runner = CliRunner()


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_opus100_release_layout_matches_the_files(shared_data):
    recs = list(data_sources.opus100("be-en", "test", source=str(shared_data / "opus100")))
    en = _lines(shared_data / "opus100/be-en/opus.be-en-test.en")
    be = _lines(shared_data / "opus100/be-en/opus.be-en-test.be")
    assert len(recs) == len(en) == 2000
    assert recs[0] == {"id": "opus100.be-en.test.1.en-be", "src_lang": "en", "tgt_lang": "be",
                       "src": en[0], "tgt": be[0]}
    assert recs[-1]["src"] == en[-1] and recs[-1]["tgt"] == be[-1]


def test_opus100_pair_in_either_order_and_both_directions(shared_data):
    recs = list(data_sources.opus100("en-be", "dev", source=str(shared_data / "opus100"), direction="both", limit=4))
    assert [(r["src_lang"], r["tgt_lang"]) for r in recs] == [("en", "be"), ("be", "en")] * 2
    assert recs[0]["src"] == recs[1]["tgt"] and recs[0]["tgt"] == recs[1]["src"]
    assert len({r["id"] for r in recs}) == 4


def test_flores_pairs_any_two_languages_by_line(shared_data):
    recs = list(data_sources.flores200("deu_Latn", "dev", with_lang="fr", source=str(shared_data / "flores200"),
                               direction="xx-en", limit=3))
    de = _lines(shared_data / "flores200/dev/deu_Latn.dev")
    fr = _lines(shared_data / "flores200/dev/fra_Latn.dev")
    assert [r["src"] for r in recs] == de[:3] and [r["tgt"] for r in recs] == fr[:3]
    assert recs[0]["src_lang"] == "de" and recs[0]["tgt_lang"] == "fr"
    assert recs[0]["id"] == "flores200.dev.1.de-fr"


def test_hub_parquet_layout(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "en-kk").mkdir()
    rows = [{"en": f"hello {i}", "kk": f"сәлем {i}"} for i in range(5)]
    pq.write_table(pa.table({"translation": rows}), tmp_path / "en-kk" / "test-00000-of-00001.parquet")
    recs = list(data_sources.opus100("kk-en", "test", source=str(tmp_path)))
    assert [(r["src"], r["tgt"]) for r in recs] == [(f"hello {i}", f"сәлем {i}") for i in range(5)]

    for split_dir, code, texts in (("devtest", "eng_Latn", ["a", "b"]), ("devtest", "kaz_Cyrl", ["ә", "б"])):
        (tmp_path / "fl" / split_dir).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [1, 2], "text": texts}), tmp_path / "fl" / split_dir / f"{code}.parquet")
    recs = list(data_sources.flores200("kk", "devtest", source=str(tmp_path / "fl")))
    assert [(r["src"], r["tgt"]) for r in recs] == [("a", "ә"), ("b", "б")]


def test_mismatched_line_counts_name_the_longer_file(tmp_path):
    (tmp_path / "devtest").mkdir()
    (tmp_path / "devtest" / "eng_Latn.devtest").write_text("a\nb\nc\n")
    (tmp_path / "devtest" / "kaz_Cyrl.devtest").write_text("ә\nб\n")
    with pytest.raises(InputError) as err:
        list(data_sources.flores200("kaz_Cyrl", "devtest", source=str(tmp_path)))
    assert "eng_Latn.devtest:3" in str(err.value)


def test_cli_writes_jsonl_and_reports_errors(shared_data, tmp_path):
    out = tmp_path / "kk.jsonl"
    result = runner.invoke(app, ["data", "opus100", "--pair", "en-kk", "--split", "test", "--source",
                                 str(shared_data / "opus100"), "--limit", "3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["id"] for r in recs] == [f"opus100.en-kk.test.{i}.en-kk" for i in (1, 2, 3)]

    bad = runner.invoke(app, ["data", "opus100", "--pair", "en-xq", "--source", str(shared_data / "opus100")])
    assert bad.exit_code == 2 and "unknown language 'xq'" in bad.output
    missing = runner.invoke(app, ["data", "opus100", "--pair", "en-kk", "--split", "train", "--source",
                                  str(shared_data / "opus100"), "-o", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "no OPUS-100 en-kk train data" in missing.output
    assert not (tmp_path / "none.jsonl").exists()


def test_non_english_opus_pair_is_rejected():
    with pytest.raises(AitError, match="English-centric"):
        list(data_sources.opus100("de-kk", "test", source="."))
    with pytest.raises(AitError, match="English-centric"):
        list(data_sources.opus100("de-de", "test", source="."))
    with pytest.raises(AitError, match="no train split for de-fr"):
        list(data_sources.opus100("de-fr", "train", source="."))


def test_opus100_zero_shot_test_pairs_from_the_release_layout(tmp_path):
    """OPUS-100 v1.0 ships `zero-shot/<pair>/opus.<pair>-test.<lang>` beside `supervised/`: the 15 pairs among
    ar, de, fr, nl, ru, zh, test split only."""
    pairs = data_sources.opus100_zero_shot_pairs()
    assert len(pairs) == 15 and pairs[:2] == ["ar-de", "ar-fr"]
    pair = tmp_path / "v1.0" / "zero-shot" / "de-fr"
    pair.mkdir(parents=True)
    (pair / "opus.de-fr-test.de").write_text("Hallo Welt\nGuten Morgen\n")
    (pair / "opus.de-fr-test.fr").write_text("Bonjour le monde\nBonjour\n")
    out = tmp_path / "de-fr.jsonl"
    result = runner.invoke(app, ["data", "opus100", "--pair", "de-fr", "--split", "test", "--source",
                                 str(tmp_path / "v1.0"), "--direction", "both", "-o", str(out)])
    assert result.exit_code == 0, result.output
    recs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(r["id"], r["src"], r["tgt"]) for r in recs] == [
        ("opus100.de-fr.test.1.de-fr", "Hallo Welt", "Bonjour le monde"),
        ("opus100.de-fr.test.1.fr-de", "Bonjour le monde", "Hallo Welt"),
        ("opus100.de-fr.test.2.de-fr", "Guten Morgen", "Bonjour"),
        ("opus100.de-fr.test.2.fr-de", "Bonjour", "Guten Morgen")]
    # the pair in the other order: fr is the source, the same files are read
    recs = list(data_sources.opus100("fr-de", "test", source=str(tmp_path / "v1.0")))
    assert [(r["src_lang"], r["tgt_lang"], r["src"]) for r in recs][0] == ("fr", "de", "Bonjour le monde")
    # the supervised pairs are found under supervised/ in the same tree
    (tmp_path / "v1.0" / "supervised" / "en-kk").mkdir(parents=True)
    for code, text in (("en", "hello"), ("kk", "сәлем")):
        (tmp_path / "v1.0" / "supervised" / "en-kk" / f"opus.en-kk-test.{code}").write_text(text + "\n")
    assert [r["tgt"] for r in data_sources.opus100("en-kk", "test", source=str(tmp_path / "v1.0"))] == ["сәлем"]
    bad = runner.invoke(app, ["data", "opus100", "--pair", "de-fr", "--split", "dev", "--source",
                              str(tmp_path / "v1.0"), "-o", str(tmp_path / "none.jsonl")])
    assert bad.exit_code == 2 and "no dev split for de-fr" in " ".join(bad.output.split())
    assert not (tmp_path / "none.jsonl").exists()


def test_hub_unreachable_is_a_clean_error(tmp_path, monkeypatch):
    """The test session runs with HF_HUB_OFFLINE=1 (conftest): the hub path must fail cleanly, at once."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    out = tmp_path / "kk.jsonl"
    result = runner.invoke(app, ["data", "opus100", "--pair", "en-kk", "--split", "test", "-o", str(out)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "dataset 'Helsinki-NLP/opus-100' is not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message and "--source DIR" in message
    assert not out.exists()


def test_flores_plus_code_for_mandarin():
    assert data_sources.FLORES_PLUS_CODES["zho_Hans"] == "cmn_Hans"

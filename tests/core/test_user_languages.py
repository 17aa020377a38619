"""Every language a user brings: standard codes from the library, a private language from a user file
through the whole chain, Japanese–English by code, and bad language files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.languages import (FLORES200_CODES, LANGUAGES_ENV, find_language, get_language,
                                         reset_languages, use_language_file)
from conftest import flat, read_jsonl, write_jsonl

runner = CliRunner()
AIT = [sys.executable, "-m", "aligninstruct_cli"]

# The paper's prompt names (and ait's for de/nl/ru, ar/fr/zh, en): the library must not change them.
PAPER_NAMES = {
    "af": "Afrikaans", "am": "Amharic", "be": "Belarusian", "cy": "Welsh", "ga": "Irish", "gd": "Scottish Gaelic",
    "gl": "Galician", "ha": "Hausa", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "ky": "Kyrgyz",
    "li": "Limburgish", "my": "Burmese", "nb": "Norwegian Bokmål", "nn": "Norwegian Nynorsk", "oc": "Occitan",
    "si": "Sinhala", "tg": "Tajik", "tk": "Turkmen", "tt": "Tatar", "ug": "Uyghur", "uz": "Uzbek", "yi": "Yiddish",
    "de": "German", "nl": "Dutch", "ru": "Russian", "ar": "Arabic", "fr": "French", "zh": "Chinese", "en": "English",
}


@pytest.fixture(autouse=True)
def _fresh_languages():
    reset_languages()
    yield
    reset_languages()


def test_the_papers_prompt_names_stay(tmp_path):
    for code, name in PAPER_NAMES.items():
        assert get_language(code).name == name, code
        assert get_language(get_language(code).flores).name == name, code


def test_every_flores_code_and_iso_code_resolves():
    assert len(FLORES200_CODES) == 204
    for code in FLORES200_CODES:
        lang = find_language(code)
        assert lang is not None and lang.name, code
    assert get_language("quy_Latn").name == "Ayacucho Quechua" and get_language("quy").code == "quy"
    assert (get_language("ja").code, get_language("jpn").code, get_language("jpn_Jpan").flores) == ("ja", "ja", "jpn_Jpan")
    assert get_language("zho_Hant").code == "zh" and get_language("arb_Latn").code == "ar"
    assert find_language("qxx") is None and find_language("klingon") is None


def test_languages_lists_204_flores_codes_and_filters():
    res = runner.invoke(app, ["languages", "--flores", "--format", "tsv"])
    assert res.exit_code == 0
    rows = [line.split("\t") for line in res.stdout.splitlines()[1:]]
    assert len(rows) == 204 and {r[1] for r in rows} == set(FLORES200_CODES)
    res = runner.invoke(app, ["languages", "--search", "ayacucho", "--format", "tsv"])
    assert res.stdout.splitlines()[1:] == ["quy\tquy_Latn\tAyacucho Quechua\tno\tlangcodes"]
    seen = runner.invoke(app, ["languages", "--seen", "--format", "tsv"]).stdout.splitlines()[1:]
    assert len(seen) == 45 and all(r.split("\t")[3] == "yes" for r in seen)  # BLOOM's 45 (card: 46 with zh twice)
    assert find_language("qaa") is None  # the demo's toy languages are the demo's (demo-languages.tsv), not ait's


def test_build_names_quechua_in_prompts(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("Good morning.\tAllin p'unchaw.\n", encoding="utf-8")
    res = runner.invoke(app, ["build", str(tsv), "--objective", "mt", "--src-lang", "en", "--tgt-lang", "quy_Latn"])
    assert res.exit_code == 0, res.output
    first, second = (json.loads(line) for line in res.stdout.splitlines())
    assert "from English to Ayacucho Quechua" in first["input"] and first["tgt_lang"] == "quy"
    assert "from Ayacucho Quechua to English" in second["input"]


def _japanese_pairs(path: Path) -> Path:
    pairs = [("猫 が 好き です", "I like cats"), ("犬 が 好き です", "I like dogs"), ("猫 は 白い", "the cat is white"),
             ("犬 は 黒い", "the dog is black"), ("白い 猫 が 好き です", "I like white cats")] * 4
    path.write_text("".join(f"{ja}\t{en}\n" for ja, en in pairs), encoding="utf-8")
    return path


def test_japanese_english_aligns_and_builds_by_code(tmp_path):
    aligned = tmp_path / "ja.aligned.jsonl"
    res = runner.invoke(app, ["align", str(_japanese_pairs(tmp_path / "jaen.tsv")), "--src-lang", "ja",
                              "--tgt-lang", "en", "-o", str(aligned)])
    assert res.exit_code == 0, res.output
    records = read_jsonl(aligned)
    assert len(records) == 20 and records[0]["src_lang"] == "ja" and any(r["pairs"] for r in records)
    res = runner.invoke(app, ["build", str(aligned), "--objective", "align"])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert out and {r["src_lang"] for r in out} == {"en", "ja"}
    assert any("Japanese" in r["input"] for r in out)


LANGS_TSV = "code\tflores\tname\tseen\nqxx\tqxx_Latn\tMarsian\tno\n"


def _marsian_pairs(path: Path, n: int = 24) -> Path:
    from aligninstruct_cli.tiny import sample_texts

    texts = sample_texts(n, seed=5)
    # a toy "Marsian": the English words reversed, so an aligner finds word pairs
    path.write_text("".join(json.dumps({"id": f"m{i}", "src_lang": "en", "tgt_lang": "qxx", "src": t,
                                        "tgt": " ".join(w[::-1] for w in t.split())}) + "\n"
                            for i, t in enumerate(texts)), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_private_language_goes_through_the_whole_chain(tmp_path, tiny_bloom_dir):
    """AIT_LANGUAGES names qxx (Marsian): align → build (six objectives) → mix → train → translate → score →
    probe, as subprocesses that inherit the variable."""
    langs = tmp_path / "langs.tsv"
    langs.write_text(LANGS_TSV, encoding="utf-8")
    env = dict(os.environ, **{LANGUAGES_ENV: str(langs)}, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu",
               TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")

    def ait(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*AIT, "-q", *map(str, args)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    pairs = _marsian_pairs(tmp_path / "pairs.jsonl")
    ait("align", pairs, "-o", tmp_path / "aligned.jsonl")
    built = {}
    for objective in ("mt", "mono-full", "mono-half"):
        ait("build", pairs, "--objective", objective, "-o", tmp_path / f"{objective}.jsonl")
    for objective in ("align", "hint", "revise"):
        ait("build", tmp_path / "aligned.jsonl", "--objective", objective, "-o", tmp_path / f"{objective}.jsonl")
    for objective in ("mt", "align", "hint", "revise", "mono-full", "mono-half"):
        built[objective] = read_jsonl(tmp_path / f"{objective}.jsonl")
        assert built[objective], objective
    assert "from English to Marsian" in built["mt"][0]["input"]
    assert {r["src_lang"] for r in built["mono-full"]} == {"qxx"}  # qxx is unseen: its side gives mono records
    ait("mix", f"mt={tmp_path / 'mt.jsonl'}", f"align={tmp_path / 'align.jsonl'}", "-o", tmp_path / "mix.jsonl")
    run = tmp_path / "run"
    ait("train", "--model", tiny_bloom_dir, "--data", f"mix={tmp_path / 'mix.jsonl'}", "--output", run,
        "--launcher", "none", "--epochs", "1", "--batch-size", "8", "--cache-dir", tmp_path / "cache")
    assert (run / "final" / "adapter_config.json").is_file()
    test = write_jsonl(tmp_path / "test.jsonl", read_jsonl(pairs)[:4])
    ait("translate", test, "--model", tiny_bloom_dir, "--adapter", run / "final", "--max-new-tokens", "8",
        "-o", tmp_path / "hyps.jsonl")
    hyps = read_jsonl(tmp_path / "hyps.jsonl")
    assert len(hyps) == 4 and hyps[0]["tgt_lang"] == "qxx"
    report = json.loads(ait("score", tmp_path / "hyps.jsonl", "--metrics", "bleu,chrf", "--format", "json").stdout)
    assert [d["key"] for d in report["directions"]] == ["en-qxx"]
    assert "en→unseen" in [g["key"] for g in report["groups"]]  # a BLOOM base: BLOOM's list + the file's `seen`
    probe = json.loads(ait("probe", test, "--model", tiny_bloom_dir, "--adapter", run / "final").stdout)
    assert list(probe["by_direction"]) == ["en-qxx"]



@pytest.mark.slow
def test_a_language_file_given_by_flag_reaches_the_translate_workers(tmp_path, tiny_bloom_dir, monkeypatch):
    """`--languages FILE` (no AIT_LANGUAGES): two translate workers build Marsian prompts with the file the
    command loaded, handed to them by the parent; the output is the one process's."""
    monkeypatch.delenv(LANGUAGES_ENV, raising=False)
    langs = tmp_path / "langs.tsv"
    langs.write_text(LANGS_TSV, encoding="utf-8")
    test = write_jsonl(tmp_path / "test.jsonl", read_jsonl(_marsian_pairs(tmp_path / "pairs.jsonl", n=4)))
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"hyps{workers}.jsonl"
        res = runner.invoke(app, ["translate", str(test), "--model", str(tiny_bloom_dir), "--languages", str(langs),
                                  "--num-gpus", workers, "--max-new-tokens", "4", "-o", str(out)])
        assert res.exit_code == 0, res.output
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1] and '"tgt_lang":"qxx"' in outputs[0].replace(" ", "")

def test_bad_language_files_exit_2_with_file_and_line(tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("hello\tolleh\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    for text, message in [
        ("code\tname\nqxx\tMarsian\n", "bad.tsv:1: missing column(s) flores"),
        ("code\tflores\tname\nqxx\t\tMarsian\nqxx\t\tMarsian2\n", "bad.tsv:3: field 'code': code 'qxx' is given twice"),
        ("code\tflores\tname\nkk\tkaz_Cyrl\tKazakhish\n", "bad.tsv:2: field 'code': code 'kk' is already Kazakh"),
        ("code\tflores\tname\tseen\nqxx\t\tMarsian\tperhaps\n", "bad.tsv:2: field 'seen': expected yes or no"),
    ]:
        bad = tmp_path / "bad.tsv"
        bad.write_text(text, encoding="utf-8")
        res = runner.invoke(app, ["build", str(src), "--languages", str(bad), "--src-lang", "en", "--tgt-lang", "qxx",
                                  "-o", str(out)])
        assert res.exit_code == 2 and message in flat(res.stderr), (message, res.stderr)
        assert "Traceback" not in res.output and not out.exists()
        reset_languages()
    env = dict(os.environ, **{LANGUAGES_ENV: str(bad)})
    done = subprocess.run([*AIT, "build", str(src), "--src-lang", "en", "--tgt-lang", "qxx", "-o", str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "bad.tsv:2: field 'seen'" in done.stderr and not out.exists()


def test_a_user_file_renames_and_the_option_wins_over_the_environment(tmp_path, monkeypatch):
    rename = tmp_path / "rename.tsv"
    rename.write_text("code\tflores\tname\toverride\nuz\tuzn_Latn\tNorthern Uzbek\tyes\n", encoding="utf-8")
    other = tmp_path / "other.tsv"
    other.write_text("code\tflores\tname\nqxx\t\tMarsian\n", encoding="utf-8")
    monkeypatch.setenv(LANGUAGES_ENV, str(other))
    src = tmp_path / "in.tsv"
    src.write_text("hello\tsalom\n", encoding="utf-8")
    res = runner.invoke(app, ["build", str(src), "--languages", str(rename), "--src-lang", "en", "--tgt-lang", "uzn"])
    assert res.exit_code == 0, res.output
    assert "from English to Northern Uzbek" in json.loads(res.stdout.splitlines()[0])["input"]
    assert find_language("qxx") is None  # --languages replaced the AIT_LANGUAGES file
    use_language_file(str(other))
    assert get_language("qxx").name == "Marsian" and get_language("uz").name == "Uzbek"


def test_building_options_checks_a_language_file_but_loads_nothing(tmp_path, monkeypatch):
    """Options with a `languages` field only check the file (FILE:LINE for a bad row): the table and the
    environment change only when a caller loads it (`use_language_file`), as the command layer does."""
    from aligninstruct_cli.languages import ListOptions, child_environment, user_language_file
    from aligninstruct_cli.options import OptionError

    monkeypatch.delenv(LANGUAGES_ENV, raising=False)
    langs = tmp_path / "langs.tsv"
    langs.write_text("code\tflores\tname\nqxx\tqxx_Latn\tMarsian\n", encoding="utf-8")
    assert ListOptions(languages=str(langs)).languages == str(langs)
    assert find_language("qxx") is None and LANGUAGES_ENV not in os.environ
    assert child_environment() == {} and user_language_file() is None
    bad = tmp_path / "bad.tsv"
    bad.write_text("code\tflores\tname\nkk\tkaz_Cyrl\tKazakhish\n", encoding="utf-8")
    with pytest.raises(OptionError, match="bad.tsv:2: field 'code'"):
        ListOptions(languages=str(bad))
    monkeypatch.chdir(tmp_path)
    use_language_file("langs.tsv")
    assert get_language("qxx").name == "Marsian" and LANGUAGES_ENV not in os.environ
    assert child_environment() == {LANGUAGES_ENV: str(langs.resolve())}  # what a started process is given


def test_a_command_reads_its_language_file_once(tmp_path, monkeypatch):
    """The command layer loads `--languages FILE` before it builds the options, whose check then does not read
    the loaded file again; a file not loaded (a library user's options) is still read and checked."""
    from aligninstruct_cli import languages
    from aligninstruct_cli.languages import ListOptions
    from aligninstruct_cli.options import OptionError

    monkeypatch.delenv(LANGUAGES_ENV, raising=False)
    reads = []
    read = languages.read_language_file
    monkeypatch.setattr(languages, "read_language_file", lambda path: reads.append(path) or read(path))
    langs = tmp_path / "langs.tsv"
    langs.write_text("code\tflores\tname\nqxx\tqxx_Latn\tMarsian\n", encoding="utf-8")
    src = tmp_path / "in.tsv"
    src.write_text("hello\tolleh\n", encoding="utf-8")
    res = runner.invoke(app, ["build", str(src), "--languages", str(langs), "--src-lang", "en", "--tgt-lang", "qxx"])
    assert res.exit_code == 0, res.output
    assert "to Marsian" in json.loads(res.stdout.splitlines()[0])["input"] and reads == [str(langs)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("code\tflores\tname\nkk\tkaz_Cyrl\tKazakhish\n", encoding="utf-8")
    with pytest.raises(OptionError, match="bad.tsv:2: field 'code'"):  # langs.tsv is loaded, bad.tsv is not
        ListOptions(languages=str(bad))
    assert ListOptions(languages=str(langs)).languages == str(langs) and reads == [str(langs), str(bad)]


def test_the_training_ranks_get_the_language_file_in_their_environment(tmp_path, monkeypatch):
    """`ait train --languages FILE`: the deepspeed launcher (and so every rank) finds the file in the `env=`
    it is started with; this process's own environment stays as it was."""
    from aligninstruct_cli.training import launch
    from aligninstruct_cli.registry import STAGE_OPTIONS

    monkeypatch.delenv(LANGUAGES_ENV, raising=False)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setattr(launch, "_cuda_available", lambda: False)
    langs = tmp_path / "langs.tsv"
    langs.write_text("code\tflores\tname\nqxx\tqxx_Latn\tMarsian\n", encoding="utf-8")
    use_language_file(str(langs))
    started: list[dict] = []
    monkeypatch.setattr(launch, "run_launcher", lambda command, env: started.append(env) or 0)
    before = dict(os.environ)
    options = STAGE_OPTIONS["train"](model="m", data={"mt": "x.jsonl"}, output=str(tmp_path / "run"), languages=str(langs))
    launch.launch(SimpleNamespace(options=options), ["deepspeed", "worker"])
    assert started[0][LANGUAGES_ENV] == str(langs.resolve()) and started[0]["DS_ACCELERATOR"] == "cpu"
    assert dict(os.environ) == before


def test_the_demos_languages_are_the_demos(tmp_path):
    """qaa and qab are in the demo's own language file, not ait's table: its seen column makes the toy base
    model's list (BLOOM's + qaa), so the demo's direction groups are what they were."""
    from aligninstruct_cli.demo import LANGUAGE_FILE
    from aligninstruct_cli.languages import bloom_seen, direction_groups

    assert find_language("qaa") is None and "qaa" not in bloom_seen().codes
    use_language_file(str(LANGUAGE_FILE))
    assert (get_language("qaa").name, get_language("qab").name) == ("Sunlandic", "Moonlandic")
    assert "qaa" in bloom_seen().codes and "qab" not in bloom_seen().codes
    assert direction_groups("en", "qab") == ["en→xx", "en→unseen"]
    assert direction_groups("qab", "en") == ["xx→en", "unseen→en"]
    assert direction_groups("qaa", "qab") == ["seen→unseen"]

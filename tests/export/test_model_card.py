"""The model card: its title and example come from the objectives and languages actually trained,
a base that is itself an `ait train` output is followed back to the model it started from, the license is
the base's (or the one asked for), and the card's generation snippet gives what `ait translate` gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from conftest import read_jsonl, write_jsonl
from aligninstruct_cli.cli import app
from aligninstruct_cli.export import base_license, card_base, model_card

runner = CliRunner()


def facts(objectives: dict[str, int], directions: dict[str, int]) -> dict:
    summary = {"data": {"examples": sum(objectives.values()), "tokens": 100, "objectives": objectives,
                        "directions": directions, "languages": sorted({c for d in directions for c in d.split("-")})}}
    return {"manifest": {"curriculum": [["data"]], "hyperparameters": {"epochs": [1], "lr": [1e-4]}},
            "summary": summary}


def test_title_and_example_follow_the_objectives_and_languages():
    card = model_card(base="bigscience/bloomz-560m", kind="adapter", facts=facts({"mt": 10}, {"kk-en": 7, "en-kk": 3}),
                      label="run/final")
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert title == "# bigscience/bloomz-560m + MTInstruct (run/final)"  # only MTInstruct was trained
    assert "Translate from Kazakh to English.\\nKazakh: <sentence>\\nEnglish:" in card  # the most frequent MT pair
    assert "English to Kazakh" not in card
    card = model_card(base="bigscience/bloomz-560m", kind="merged",
                      facts=facts({"mt": 10, "align": 5, "general": 4}, {"en-fr": 15}))
    assert "# bigscience/bloomz-560m + MTInstruct + AlignInstruct + general instructions\n" in card
    assert "Translate from English to French." in card


def test_a_base_trained_by_ait_is_followed_back_to_its_hub_id(tmp_path):
    first = tmp_path / "seen-base"
    (first / "final").mkdir(parents=True)
    (first / "final" / "config.json").write_text("{}")
    (first / "run.json").write_text(json.dumps({"model": {"name": "bigscience/bloomz-560m"}}))
    second = tmp_path / "more"
    (second / "final").mkdir(parents=True)
    (second / "final" / "config.json").write_text("{}")
    (second / "run.json").write_text(json.dumps({"model": {"name": str(first / "final")}}))
    hub_id, name, origin, load_name = card_base(str(second / "final"))
    assert (hub_id, origin, load_name) == ("bigscience/bloomz-560m", "bigscience/bloomz-560m", "more/final")
    assert name == "bigscience/bloomz-560m (further trained by ait: seen-base → more)"
    card = model_card(base=str(second / "final"), kind="adapter", facts=facts({"mt": 1}, {"en-kk": 1}))
    assert card.startswith("---\nbase_model: bigscience/bloomz-560m\n")
    assert "--model more/final --adapter THIS_DIR" in card and "from_pretrained('more/final')" in card
    assert str(tmp_path) not in card and "**final**" not in card


def test_license_is_the_bases_or_the_one_asked_for(tmp_path):
    base = tmp_path / "my-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    assert base_license(str(base)) is None
    card = model_card(base=str(base), kind="adapter")
    assert "\nlicense:" not in card and "License: not stated here" in card
    (base / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: [en]\n---\n# my base\n")
    assert base_license(str(base)) == "apache-2.0"
    assert "\nlicense: apache-2.0\n" in model_card(base=str(base), kind="adapter")
    assert "\nlicense: mit\n" in model_card(base=str(base), kind="adapter", license="mit")


def test_a_license_that_is_not_an_id_never_reaches_the_cards_front_matter(tmp_path):
    """A license is written into YAML front matter: a value with a newline or a colon (from the flag, a config file
    or the base model's own card) would add metadata, so only a license id passes."""
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app

    base = tmp_path / "my-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "README.md").write_text('---\nlicense: "mit\\nbase_model: evil/model"\n---\n')
    assert base_license(str(base)) is None
    assert "evil" not in model_card(base=str(base), kind="adapter")
    for command in (["export", str(tmp_path / "run"), "-o", str(tmp_path / "out")],
                    ["train", "--model", str(base), "--data", "mt=x.jsonl", "--output", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, [*command, "--license", "mit\nbase_model: evil/model"])
        assert result.exit_code == 2, result.output
        assert "--license 'mit\\nbase_model: evil/model': not a license id" in result.output


def test_the_cards_snippet_generates_and_cuts_what_ait_translate_gives(tiny_bloom_dir, tmp_path):
    card = model_card(base="x", kind="merged", facts=facts({"mt": 1}, {"en-kk": 1}))
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    sentence = "the cat sees the dog"
    snippet = snippet.replace("THIS_DIR", str(tiny_bloom_dir)).replace('sentence="..."', f"sentence={sentence!r}")
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - the card's own code, on the tiny model
    test = write_jsonl(tmp_path / "test.jsonl", [{"id": 1, "src_lang": "en", "tgt_lang": "kk", "src": sentence}])
    hyps = tmp_path / "hyps.jsonl"
    result = runner.invoke(app, ["-q", "translate", str(test), "--model", str(tiny_bloom_dir), "--max-new-tokens",
                                 "256", "-o", str(hyps)])
    assert result.exit_code == 0, result.output
    assert namespace["translation"] == read_jsonl(hyps)[0]["hyp"]
    assert Path(tiny_bloom_dir).is_dir()

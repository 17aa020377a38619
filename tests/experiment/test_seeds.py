"""Seeds: `systems.NAME.seeds: [0, 1, 2]` trains once per seed (what does not depend on the seed stays one
step), scores each seed's table and reports the table over seeds as mean ± sd with Welch's t-test."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.study_config import load_experiment
from aligninstruct_cli.experiment.graph import build_graph
from aligninstruct_cli.experiment.report import write_report
from aligninstruct_cli.experiment.steps import finish_step
from aligninstruct_cli.experiment.seeds import mean_sd, welch_t_test

LANG_PAIRS = (("en", "kk"), ("kk", "en"))


def _records(path: Path, quality: int | None = None) -> None:
    """A small parallel test set (hyp: the first `quality` of 10 words right; None: no hyp)."""
    lines = []
    for n in range(1, 7):
        for src, tgt in LANG_PAIRS:
            ref = f"a {n} cat sat on the mat {n} times today"
            rec = {"id": f"opus100.en-kk.test.{n}.{src}-{tgt}", "src_lang": src, "tgt_lang": tgt, "src": ref,
                   "tgt": ref}
            if quality is not None:
                rec["hyp"] = " ".join(w if k < quality else "dog" for k, w in enumerate(ref.split()))
            lines.append(orjson.dumps(rec))
    path.write_bytes(b"\n".join(lines) + b"\n")


def _config(tmp_path: Path, **systems_extra) -> Path:
    test = tmp_path / "test.jsonl"
    _records(test)
    config = {
        "output": str(tmp_path / "out"),
        "corpora": {"train": {"file": str(test)}, "test": {"file": str(test)}},
        "datasets": {"mt": {"corpus": "train"}},
        "test_sets": ["test"],
        "systems": {"w/o fine-tuning": {"model": "bigscience/bloomz-560m"},
                    "MTInstruct": {"model": "bigscience/bloomz-560m", "curriculum": "mt", "seeds": [0, 1, 2]},
                    "MT long": {"model": "bigscience/bloomz-560m", "curriculum": "mt", "seeds": [0, 1, 2],
                                "train": {"epochs": 2}}, **systems_extra},
        "score": {"metrics": ["bleu"]},
        "tables": {"t": {"baseline": "MTInstruct", "systems": ["w/o fine-tuning", "MT long"],
                         "paper": {"table": 1, "model": "bloomz-7b1"}}},
        "compare_to": "paper",
    }
    path = tmp_path / "seeds.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_welch_t_test_and_spread():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_sd([4.0]) == (4.0, None)
    t, df, p = welch_t_test([1.0, 2.0, 3.5], [2.5, 3.9, 4.4, 6.0])
    # scipy.stats.ttest_ind(b, a, equal_var=False): t 1.98486, df 4.78868, p 0.10645
    assert math.isclose(t, 1.9848553118017744) and math.isclose(df, 4.788683458653679)
    assert math.isclose(p, 0.1064504986532427, rel_tol=1e-9)
    assert welch_t_test([1.0], [2.0, 3.0]) is None
    assert welch_t_test([1.0, 1.0], [1.0, 1.0])[2] == 1.0


def test_seeds_train_per_seed_and_share_the_rest(tmp_path):
    exp = load_experiment(_config(tmp_path))
    assert exp.seed_runs["MTInstruct"] == ["MTInstruct seed=0", "MTInstruct seed=1", "MTInstruct seed=2"]
    graph = build_graph(exp)
    trains = [s for s in graph if s.kind == "train"]
    assert len(trains) == 6
    shells = [graph.shell(graph.by_name[f"train/MTInstruct seed={k}"]) for k in range(3)]
    assert "--seed" not in shells[0]  # seed 0 is ait train's default: the same run as a system without seeds
    assert "--seed 1 " in shells[1] + " " and "--seed 2 " in shells[2] + " "
    assert len([s for s in graph if s.kind == "build"]) == 1  # the instruction data is one step for all
    assert len([s for s in graph if s.kind == "translate"]) == 7  # 6 runs + the untrained model, once
    assert [s.name for s in graph if s.kind == "score"] == ["score/t seed=0", "score/t seed=1", "score/t seed=2"]
    assert "--names 'w/o fine-tuning,MT long seed=1'" in graph.shell(graph.by_name["score/t seed=1"])


@pytest.mark.parametrize("edit, message", [
    ({"bad": {"model": "m", "curriculum": "mt", "seeds": [1, 1]}}, "systems.bad.seeds: expected a list of different"),
    ({"bad": {"model": "m", "seeds": [1]}}, "systems.bad.seeds: an untrained system"),
])
def test_bad_seeds_are_config_errors(tmp_path, edit, message):
    with pytest.raises(AitError, match=message):
        load_experiment(_config(tmp_path, **edit))


def test_a_table_of_different_seeds_is_an_error(tmp_path):
    path = _config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["systems"]["MT long"]["seeds"] = [3, 4]
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    with pytest.raises(AitError, match="tables.t: its systems list different seeds"):
        load_experiment(path)


def test_three_seed_study_reports_mean_and_sd_with_welchs_test(tmp_path):
    """A 3-seed study whose translations are faked (the real `ait score` scores each seed's table)."""
    graph = build_graph(load_experiment(_config(tmp_path)))
    quality = {"w/o fine-tuning": 2, "MTInstruct seed=0": 5, "MTInstruct seed=1": 5, "MTInstruct seed=2": 6,
               "MT long seed=0": 8, "MT long seed=1": 9, "MT long seed=2": 8}
    for name, q in quality.items():
        key = graph.by_name[f"translate/{name}"]
        graph.directory(key).mkdir(parents=True, exist_ok=True)
        _records(graph.output(key), q)
        finish_step(graph.directory(key), graph.steps[key].names, "translate", key, "fake", 0, 0.0, "")
    for k in range(3):
        key = graph.by_name[f"score/t seed={k}"]
        graph.directory(key).mkdir(parents=True)
        argv = [graph.resolve(t, key) for t in graph.steps[key].argv[2:]]  # `ait score ...` as planned
        result = CliRunner().invoke(app, ["score", *argv])
        assert result.exit_code == 0, result.output
        finish_step(graph.directory(key), graph.steps[key].names, "score", key, "fake", 0, 0.0, "")
    path, _ = write_report(graph)
    summary = orjson.loads((tmp_path / "out" / "tables" / "t.json").read_bytes())
    per_seed = [orjson.loads(graph.output(graph.by_name[f"score/t seed={k}"]).read_bytes()) for k in range(3)]
    group = summary["groups"][0]
    def scores(system):
        return [next(s for s in r["systems"] if s["name"] == f"{system} seed={k}")["groups"][group]["bleu"]["score"]
                for k, r in enumerate(per_seed)]

    long, base = scores("MT long"), scores("MTInstruct")
    row = next(r for r in summary["rows"] if r["system"] == "MT long")["cells"][group]["bleu"]
    assert row["scores"] == long and math.isclose(row["mean"], sum(long) / 3)
    assert math.isclose(row["sd"], mean_sd(long)[1]) and row["sd"] > 0
    assert row["test"]["p"] == welch_t_test(base, long)[2] and row["test"]["p"] < 0.05  # far better than MTInstruct
    untrained = next(r for r in summary["rows"] if r["system"] == "w/o fine-tuning")
    assert untrained["n"] == 1 and untrained["cells"][group]["bleu"]["sd"] is None
    assert untrained["cells"][group]["bleu"]["test"] is None  # one run: no t-test
    report = path.read_text(encoding="utf-8")
    assert "### t (over seeds)" in report and "Welch's two-sided t-test" in report
    line = next(x for x in report.splitlines() if x.startswith("| MT long | 3 |"))
    assert f"{row['mean']:.2f}† ± {row['sd']:.2f}" in line
    assert "### t seed=2" in report
    # beside the paper: the seeds' mean under each name (MT long is no row of the paper's Table 1)
    block = report.split("### t (over seeds)")[1].split("### t seed=0")[0]
    beside = block.split("**Beside the paper** (Table 1, bloomz-7b1)")[1]
    base = next(r for r in summary["rows"] if r["system"] == "MTInstruct")["cells"][group]["bleu"]["mean"]
    assert f"| MTInstruct | ait | {base:.2f} |" in beside and "| MT long | ait |" in beside
    assert "|  | paper: MTInstruct |" in beside and "paper: no such row" in beside


def test_a_table_of_single_runs_says_its_numbers_are_one_draw(tmp_path):
    """Under a table of one run per trained system, the report says another seed or machine moves the numbers
    (on toy data: by several points, either side); per-seed tables and tables of untrained rows say nothing."""
    from aligninstruct_cli.experiment.report_sections import single_run_note

    seeded = load_experiment(_config(tmp_path))
    assert [single_run_note(seeded, f"t seed={k}", seeded.tables[f"t seed={k}"]) for k in range(3)] == [[], [], []]
    path = _config(tmp_path, **{"MT once": {"model": "bigscience/bloomz-560m", "curriculum": "mt"}})
    config = yaml.safe_load(path.read_text())
    config["tables"] = {"once": {"systems": ["w/o fine-tuning", "MT once"]},
                        "untrained": {"systems": ["w/o fine-tuning"]}}
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    exp = load_experiment(path)
    note = " ".join(single_run_note(exp, "once", exp.tables["once"]))
    assert "One run per system" in note and "another seed or another machine" in note
    assert "seeds: [0, 1, 2]" in note and "toy data" not in note
    assert single_run_note(exp, "untrained", exp.tables["untrained"]) == []
    exp.toy = {"seen": 10}  # a study on the demo's toy data
    assert "either side" in " ".join(single_run_note(exp, "once", exp.tables["once"]))

"""`ait experiment`'s health checks over synthetic outputs (metrics.jsonl, hypotheses, manifests), the
`health:` config section, their docs table, and the live view's progress figures."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from aligninstruct_cli.experiment.health import (HealthOptions, check_identical, check_training,
                                                 check_translations, is_repetitive, script_share, target_script)

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def run_dir(tmp_path: Path, lines: list[dict], curriculum=(("mt",),), lrs=(1e-3,)) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "run.json").write_bytes(orjson.dumps({"curriculum": [list(s) for s in curriculum], "lrs": list(lrs)}))
    write_jsonl(run / "metrics.jsonl", lines)
    return run


def by_check(findings) -> dict:
    return {f.check: f for f in findings}


def test_flat_loss_is_not_falling_with_its_numbers_and_a_falling_one_passes(tmp_path):
    flat = [{"stage": 1, "step": s, "loss": 7.5 - 0.0001 * s} for s in range(1, 21)]
    found = by_check(check_training("train/MT", run_dir(tmp_path, flat), HealthOptions()))
    f = found["loss not falling"]
    assert f.failed and f.threshold == 0.02 and abs(f.value - (7.4999 - 7.4981) / 7.4999) < 1e-6
    assert "stage 1 (mt): 7.4999 → 7.4981 over 20 log lines (0.0 % lower; at least 2.0 % expected)" in f.detail
    falling = [{"stage": 1, "step": s, "loss": 7.5 / s} for s in range(1, 21)]
    assert not by_check(check_training("t", run_dir(tmp_path, falling), HealthOptions()))["loss not falling"].failed
    # the threshold is an option
    assert check_training("t", run_dir(tmp_path, flat), HealthOptions(min_loss_drop=0))[1].failed is False


def test_nan_loss_and_rising_validation_per_stage_and_learning_rate(tmp_path):
    # the training writes metrics with orjson, which writes NaN and infinity as null
    lines = [{"lr_index": 1, "stage": 2, "step": 1, "loss": 3.0}, {"lr_index": 1, "stage": 2, "step": 2, "loss": math.nan},
             {"lr_index": 1, "stage": 2, "step": 2, "val_loss": 2.0}, {"lr_index": 1, "stage": 2, "step": 4, "val_loss": 2.5}]
    run = run_dir(tmp_path, lines, curriculum=(("mt", "align"), ("mt",)), lrs=(1e-4, 3e-4))
    assert b'"loss":null' in (run / "metrics.jsonl").read_bytes()
    found = by_check(check_training("train/X", run, HealthOptions()))
    assert found["loss not finite"].failed and "lr 0.0003 stage 2 (mt): 1 of 4" in found["loss not finite"].detail
    rising = found["validation loss rising"]
    assert rising.failed and abs(rising.value - 0.25) < 1e-9 and "last epoch 2.5000, best earlier 2.0000" in rising.detail
    assert "loss not falling" not in found  # one finite training loss: nothing to compare


def hyp(i, src, out, src_lang="en", tgt_lang="kk"):
    return {"id": str(i), "src": src, "tgt": "ref", "hyp": out, "src_lang": src_lang, "tgt_lang": tgt_lang}


def test_translation_checks_count_empty_copies_repetition_one_output_and_script(tmp_path):
    records = [hyp(0, "a b", ""), hyp(1, "copy me", "copy me"), hyp(2, "x", ",,,,,,,,,,,,"),
               hyp(3, "y", "бір екі бір екі бір екі бір екі"), hyp(4, "z", "сәлем"), hyp(5, "w", "hello world"),
               hyp(6, "v", "сәлем"), hyp(7, "u", "сәлем")]
    path = write_jsonl(tmp_path / "hyps.jsonl", records)
    (tmp_path / "hyps.jsonl.run.json").write_bytes(orjson.dumps(
        {"decoding": {"max_new_tokens": 64}, "generated": 8, "stopped_at_max_new_tokens": 6}))
    found = by_check(check_translations("translate/S", path, HealthOptions()))
    assert (found["empty hypotheses"].value, found["empty hypotheses"].failed) == (1 / 8, True)
    assert (found["copying the source"].value, found["copying the source"].failed) == (1 / 8, False)
    assert found["degenerate repetition"].value == 2 / 8 and found["degenerate repetition"].failed
    assert found["stopped at max_new_tokens"].failed and "6 of 8 (75.0 %" in found["stopped at max_new_tokens"].detail
    same = found["one hypothesis for most inputs"]
    assert same.value == 3 / 8 and not same.failed and "'сәлем'" in same.detail
    # kk is kaz_Cyrl: "copy me", "hello world" (Latin) of the 6 outputs with letters are in the wrong script
    wrong = found["wrong script"]
    assert wrong.value == 2 / 6 and wrong.failed and "2 of 6" in wrong.detail


def test_one_hypothesis_for_every_input_is_named(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", [hyp(i, f"s{i}", ", , , ,") for i in range(5)])
    f = by_check(check_translations("translate/S", path, HealthOptions()))["one hypothesis for most inputs"]
    assert f.failed and "en-kk: 5 of 5 inputs get ', , , ,' (100.0 %" in f.detail


def test_identical_hypotheses_between_systems(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [hyp(i, "s", f"out {i}") for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [hyp(i, "s", f"out {i}") for i in range(10)])
    c = write_jsonl(tmp_path / "c.jsonl", [hyp(i, "s", f"other {i}" if i < 5 else f"out {i}") for i in range(10)])
    found = check_identical("score/t", {"A": a, "B": b, "C": c}, HealthOptions())
    assert [(f.detail.split(":")[0], f.value, f.failed) for f in found] == [
        ("A and B", 1.0, True), ("A and C", 0.5, False), ("B and C", 0.5, False)]
    assert "A and B: 10 of 10 records (100.0 %; at most 90.0 %)" in found[0].detail


@pytest.mark.parametrize("text, repetitive", [
    (",,,,,,,,", True), ("ha ha ha ha", True), ("the cat sat on the mat", False), ("a b a b a b a b", True),
    ("hahaha", False), ("Mississippi", False), ("я я я", False)])
def test_degenerate_repetition(text, repetitive):
    assert is_repetitive(text) is repetitive


def test_scripts_from_flores_codes_and_letters():
    assert target_script("kk") == "Cyrl" and target_script("zh") in ("Hans", "Hant") and target_script("en") == "Latn"
    assert target_script("qqq_Zzzz") is None
    assert script_share("Сәлем, world", "Cyrl") == 5 / 10 and script_share("123 ,", "Latn") is None
    assert script_share("你好", "Hans") == 1.0


def test_health_section_of_the_config_is_checked(tmp_path):
    from aligninstruct_cli.experiment.study_config import read_health_section
    from aligninstruct_cli.errors import AitError

    assert read_health_section({"min_loss_drop": 0.1, "max-identical": 1}, "x.yaml") == {
        "min_loss_drop": 0.1, "max_identical": 1}
    with pytest.raises(AitError, match="x.yaml: health: unknown key 'min_los_drop' .did you mean 'min_loss_drop'"):
        read_health_section({"min_los_drop": 0.1}, "x.yaml")
    with pytest.raises(AitError, match="x.yaml: health.max_empty must be at most 1, not 2"):
        read_health_section({"max_empty": 2}, "x.yaml")


def test_docs_list_every_threshold_with_its_default_and_help():
    doc = (ROOT / "docs" / "experiment.md").read_text(encoding="utf-8")
    table = doc.split("<!-- health-options -->")[1].split("<!-- /health-options -->")[0]
    for f in fields(HealthOptions):
        spec = f.metadata["ait"]
        assert f"| `{f.name}` | `{f.default:g}` | {spec.help} |" in table, f.name


# ---------------------------------------------------------------------------------------------- progress
def test_train_progress_counts_finished_stages_and_the_current_step(tmp_path):
    from aligninstruct_cli.experiment.live import train_progress

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_bytes(orjson.dumps({
        "curriculum": [["mt", "align"], ["mt"]], "lrs": [1e-3], "hyperparameters": {"epochs": [2, 1]},
        "batch": {"global": None, "micro": 4, "accumulation": 2, "ranks": None},
        "data_stats": {"mt": {"examples": 30}, "align": {"examples": 10}}}))
    (run / "checkpoints" / "state.json").write_bytes(orjson.dumps({"done": [[0, 0]], "world_size": 2}))
    write_jsonl(run / "metrics.jsonl", [{"lr_index": 0, "stage": 2, "step": 1, "loss": 2.5, "tokens_per_s": 1234.4}])
    p = train_progress(run)
    # global batch 16: stage 1 = ceil(40/16) × 2 epochs = 6 steps (done), stage 2 = ceil(30/16) = 2 steps
    assert (p.done, p.total) == (7, 8)
    assert p.text == "stage 2 (mt) step 1/2 · loss 2.5000 · 1,234 tok/s"


def test_study_view_writes_run_log_lines_with_an_eta_without_a_terminal(tmp_path):
    from tests.experiment.test_plan_and_run import shell_graph

    from aligninstruct_cli.experiment.live import StudyView

    graph = shell_graph(tmp_path, {"a": ("true", []), "b": ("true", [])})
    lines: list[str] = []
    view = StudyView(graph, list(graph.order), lines.append, live=False, every=0)
    a, b = graph.order
    view.event("started a")
    view.started(a)
    view.finished(a, 10.0)
    view.started(b)
    view.last_read = 0
    view.tick()
    view.close()
    log = (tmp_path / "run.log").read_text()
    assert "started a" in log and "progress: 1/2 steps done" in log
    assert "ETA ≥ 0 s" not in log and "ETA ?" in log  # b's own ETA is unknown: a cat step has no progress
    assert lines[-1].startswith("progress: 1/2 steps done")


def test_durations_read():
    from aligninstruct_cli.experiment.live import duration

    assert [duration(x) for x in (5, 65, 3725, None)] == ["5 s", "1 min 05 s", "1 h 02 min", "?"]


# ---------------------------------------------------------------------------------------------- the report
def test_loss_panels_are_per_stage_with_every_system_and_named_objectives(tmp_path):
    from types import SimpleNamespace

    from aligninstruct_cli.experiment.plots import loss_panels, plot_losses

    runs = {}
    for name, curriculum in (("MT", [["mt"], ["mt"]]), ("MT+Align", [["mt", "align"], ["mt"]])):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_bytes(orjson.dumps({"curriculum": curriculum, "lrs": [1e-3]}))
        write_jsonl(run / "metrics.jsonl", [
            {"stage": 1, "step": 5, "loss": 3.0}, {"stage": 1, "step": 10, "loss": 2.0},
            {"stage": 1, "step": 10, "val_loss": 2.5}, {"stage": 2, "step": 4, "loss": 1.5}])
        runs[name] = run
    exp = SimpleNamespace(systems={"MT": SimpleNamespace(val="dev"), "MT+Align": SimpleNamespace(val="dev")},
                          datasets={"dev": SimpleNamespace(objective="mt")})
    graph = SimpleNamespace(exp=exp)
    first, second = loss_panels(graph, runs)
    assert first["names"] == {"MT": "mt", "MT+Align": "mt+align"}
    assert [(l["label"], l["steps"]) for l in first["lines"]] == [
        ("MT (train: mt)", [5, 10]), ("MT (val: mt)", [10]), ("MT+Align (train: mt+align)", [5, 10]),
        ("MT+Align (val: mt)", [10])]
    assert [(l["label"], l["steps"]) for l in second["lines"]] == [("MT (train: mt)", [4]), ("MT+Align (train: mt)", [4])]
    assert plot_losses(graph, runs, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_notes_explain_every_column_prefix_with_n_per_direction():
    from aligninstruct_cli.experiment.report_sections import table_notes

    report = {"directions": [{"key": "flores200.devtest:en-kk", "n": 100}, {"key": "flores200.devtest:kk-en", "n": 99}],
              "groups": [{"key": "flores200.devtest:en→xx", "testset": "flores200.devtest", "name": "en→xx",
                          "directions": ["flores200.devtest:en-kk"]},
                         {"key": "flores200.devtest:xx→en", "testset": "flores200.devtest", "name": "xx→en",
                          "directions": ["flores200.devtest:kk-en"]}]}
    text = "\n".join(table_notes(report))
    assert ("- `flores200.devtest:en→xx`: test set flores200.devtest, from English into the other languages: "
            "en-kk (n 100)") in text
    assert "- `flores200.devtest:xx→en`: test set flores200.devtest, from the other languages into English: kk-en (n 99)" in text


def test_samples_show_the_first_records_of_each_direction_that_every_system_translated(tmp_path):
    from aligninstruct_cli.experiment.graph import Graph, Step
    from aligninstruct_cli.experiment.report_sections import samples_section
    from aligninstruct_cli.experiment.steps import finish_step
    from aligninstruct_cli.experiment.study_config import Experiment

    exp = Experiment(path="t.yaml", output=str(tmp_path), languages=[])
    exp.systems = {"A": None, "B": None, "C": None}  # C has not translated: no row
    steps = {f"{i:016x}": Step(f"{i:016x}", "translate", [f"translate/{name}"], ["true"], [], main="hyps.jsonl")
             for i, name in enumerate(["A", "B"])}
    graph = Graph(exp, steps)
    a = [hyp(i, f"source {i}", f"A says {i}") for i in range(5)] + [hyp(9, "kk text", "A en", "kk", "en")]
    b = [hyp(i, f"source {i}", f"B | says {i}") for i in range(5) if i != 1] + [hyp(9, "kk text", "", "kk", "en")]
    for key, records in zip(steps, (a, b)):
        graph.directory(key).mkdir(parents=True)
        write_jsonl(graph.output(key), records)
        finish_step(graph.directory(key), steps[key].names, "translate", key, "true", 0, 1.0, "log")
    assert samples_section(graph) == [
        "## Sample translations", "", "The first 3 records of each direction, as every system translated them.", "",
        "### en→kk", "", "| id | | text |", "|---|---|---|",
        *[line for i in (0, 2, 3) for line in (f"| `{i}` | source | source {i} |", "| | reference | ref |",
                                                f"| | **A** | A says {i} |", f"| | **B** | B \\| says {i} |")],
        "", "### kk→en", "", "| id | | text |", "|---|---|---|",
        "| `9` | source | kk text |", "| | reference | ref |", "| | **A** | A en |", "| | **B** | (empty) |", ""]


# ---------------------------------------------------------------------------------------------- a real run
@pytest.mark.slow
def test_a_study_that_cannot_learn_is_caught_while_it_runs_and_in_the_report(tmp_path, tiny_bloom_dir):
    """A LoRA system with a learning rate of 1e-12 (it learns nothing: its outputs are the base model's).
    Without a terminal: the run warns "loss not falling" after the training and "identical hypotheses" after
    the score, run.log has progress lines with an ETA, status shows durations, report.md's Health section
    names both with numbers and loss.png is drawn; `run --strict` fails the training for its health."""
    import os
    import subprocess
    import sys

    import yaml

    from aligninstruct_cli.demo import LANGUAGE_FILE
    from aligninstruct_cli.demo.build import make_toy_data

    make_toy_data(tmp_path / "data", seen=1, unseen=120, dev=2, test=3)
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "output": str(tmp_path / "out"),
        "env": {"OMP_NUM_THREADS": "1"},
        "language_file": str(LANGUAGE_FILE),  # the toy languages qaa, qab
        "corpora": {"train": {"file": str(tmp_path / "data" / "unseen-train.jsonl"), "languages": ["qab"]},
                    "test": {"file": str(tmp_path / "data" / "unseen-test.jsonl"), "languages": ["qab"]}},
        "datasets": {"mt": {"corpus": "train"}},
        "train": {"launcher": "none", "epochs": 1, "batch_size": 2, "lora_r": 4, "lr": 1e-12, "log_every": 5},
        "systems": {"base": {"model": str(tiny_bloom_dir)}, "MT": {"model": str(tiny_bloom_dir), "curriculum": "mt"}},
        "test_sets": ["test"],
        "translate": {"max_new_tokens": 4, "batch_size": 8},
        "score": {"metrics": ["chrf"], "bootstrap_samples": 20},
        "baseline": "base",
        "tables": {"t": {"systems": ["MT"]}},
    }))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu", PYTHONWARNINGS="ignore")

    def ait(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aligninstruct_cli", "experiment", *args, str(config)],
                              env=env, capture_output=True, text=True, timeout=900)

    run = ait("run", "--progress-every", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stderr
    assert "warning: train/MT: loss not falling: stage 1 (mt): " in out
    assert "warning: score/t: identical hypotheses: base and MT: 6 of 6 records (100.0 %; at most 90.0 %)" in out
    assert out.index("loss not falling") < out.index("translate/MT: started")  # right after its step
    log = (tmp_path / "out" / "run.log").read_text()
    progress = [line for line in log.splitlines() if " progress: " in line]
    assert any("train/MT: stage 1 (mt) step" in line and "ETA" in line for line in progress), log
    assert "loss not falling" in log

    status = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "experiment", "status", str(config)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "started" in status.stdout and "duration" in status.stdout
    train_row = next(line for line in status.stdout.splitlines() if line.startswith("train/MT"))
    assert " done " in train_row and (" s " in train_row or " min " in train_row), status.stdout

    report = ait("report")
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    health = md.split("## Health")[1].split("\n## ")[0]
    assert "| train/MT | **warning** | loss not falling | stage 1 (mt): " in health
    assert "| score/t | **warning** | identical hypotheses | base and MT: 6 of 6 records (100.0 %" in health
    assert "## Step durations" in md and "## Sample translations" in md and "(n 3)" in md
    assert (tmp_path / "out" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --strict: the same training (its done.json removed, so it runs again: a finished run resumes at once)
    # now fails for its health, and what needs it does not run
    import glob

    (done,) = glob.glob(str(tmp_path / "out" / "steps" / "train" / "*" / "done.json"))
    os.unlink(done)
    strict = ait("run", "--strict")
    assert strict.returncode == 1, strict.stderr
    assert "train/MT: FAILED (exit 3)" in strict.stderr and "loss not falling" in strict.stderr
    failed = orjson.loads(Path(done).with_name("failed.json").read_bytes())
    assert failed["exit_code"] == 3


# ---------------------------------------------------------------------------------------------- preflight
def small_config(tmp_path: Path, model: str, **extra) -> Path:
    import yaml

    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, [{"id": str(i), "src": f"s {i}", "tgt": f"t {i}", "src_lang": "en", "tgt_lang": "kk"}
                       for i in range(4)])
    config = {"output": str(tmp_path / "out"), "corpora": {"c": {"file": str(data), "languages": ["kk"]}},
              "datasets": {"mt": {"corpus": "c"}},
              "systems": {"base": {"model": model}, "MT": {"model": model, "curriculum": "mt"}},
              "test_sets": ["c"], "score": {"metrics": ["chrf", "comet"]}, "baseline": "base",
              "tables": {"t": {"systems": ["MT"]}}, **extra}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_plan_and_run_stop_with_exit_2_before_any_step_when_comet_cannot_be_had(tmp_path, monkeypatch):
    """COMET in the metrics, HF_HUB_OFFLINE=1 and an empty hub cache: `plan` prints the commands, then lists
    the problem and exits 2; `run` exits 2 before its first step (no step directory, no log)."""
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    config = small_config(tmp_path, str(model))
    runner = CliRunner()
    plan = runner.invoke(app, ["experiment", "plan", str(config)])
    assert plan.exit_code == 2, plan.output
    assert "1 problem(s) found before running anything" in plan.output
    assert "COMET model (needed by score/t) 'Unbabel/wmt22-comet-da' is not in the local Hugging Face cache" in plan.output
    assert "HF_HUB_OFFLINE is set" in plan.output and "ait train" in plan.stdout
    run = runner.invoke(app, ["experiment", "run", str(config)])
    assert run.exit_code == 2 and "problem(s) found before running anything" in run.output
    assert not (tmp_path / "out" / "steps").exists() and not (tmp_path / "out" / "logs").exists()
    # without COMET, nothing is missing
    assert runner.invoke(app, ["experiment", "plan", str(config), "--set", "score.metrics=[chrf]"]).exit_code == 0


def test_preflight_lists_every_problem_at_once(tmp_path, monkeypatch):
    import importlib.util

    from aligninstruct_cli.commands.experiment import load
    from aligninstruct_cli.experiment.preflight import preflight_problems

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("deepspeed", "submitit", "comet") else real(name, *a))
    config = small_config(tmp_path, "some-org/some-model")
    problems = preflight_problems(load(str(config), None, []), executor="slurm")
    assert len(problems) == 4, problems
    assert problems[0].startswith("model (needed by train/MT) 'some-org/some-model' is not in the local Hugging Face cache")
    assert problems[1].startswith("COMET model (needed by score/t) 'Unbabel/wmt22-comet-da'")
    assert "training (train/MT) needs the deepspeed package, which is not installed (pip install deepspeed)" in problems
    assert "--executor slurm needs the submitit package, which is not installed (pip install submitit)" in problems
    assert not any("unbabel-comet" in p for p in problems)  # ait scores COMET itself
    monkeypatch.setattr(importlib.util, "find_spec", real)
    local = small_config(tmp_path, str(tmp_path / "no-such-model"), score={"metrics": ["chrf"]})
    assert preflight_problems(load(str(local), None, [])) == [
        f"model (needed by train/MT) {tmp_path / 'no-such-model'}: no such file or directory"]


# ---------------------------------------------------------------------------------------------- small ones
@pytest.mark.parametrize("command, required", [("train", ["model", "data", "output"]), ("translate", ["model"])])
def test_print_config_without_the_required_options_shows_the_defaults(command, required):
    import yaml
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app

    result = CliRunner().invoke(app, [command, "--print-config"])
    assert result.exit_code == 0, result.output
    for name in required:
        assert f"\n{name}: null  # required (--{name})" in "\n" + result.stdout
    shown = yaml.safe_load(result.stdout)
    assert all(shown[name] is None for name in required)
    assert shown["num_beams" if command == "translate" else "epochs"] == (1 if command == "translate" else [5])
    given = CliRunner().invoke(app, [command, "--print-config", "--model", "m"] + (["--max-new-tokens", "7"]
                                                                                 if command == "translate" else []))
    if command == "translate":  # nothing missing: the resolved, checked options
        assert given.exit_code == 0 and "# required" not in given.stdout and "max_new_tokens: 7" in given.stdout
    else:
        assert "model: m\n" in given.stdout and "data: null  # required (--data)" in given.stdout


def test_a_file_corpus_in_both_directions_goes_through_ait_data_file(tmp_path):
    from aligninstruct_cli.commands.experiment import load
    from aligninstruct_cli.data_sources import FileOptions, file_records

    config = small_config(tmp_path, str(tmp_path), score={"metrics": ["chrf"]})
    graph = load(str(config), None, ["corpora.c.direction=both"])
    step = graph.step("data/c.kk")
    assert graph.argv(step.key)[:3] == ["ait", "data", "file"] and "--direction" in step.argv
    translate = graph.argv(graph.by_name["translate/base"])
    assert translate[2] == str(graph.output(step.key))
    records = list(file_records(str(tmp_path / "pairs.jsonl"), FileOptions(direction="both")))
    assert [(r["id"], r["src_lang"], r["src"]) for r in records[:2]] == [("0", "en", "s 0"), ("0.reversed", "kk", "t 0")]
    from aligninstruct_cli.errors import AitError

    with pytest.raises(AitError, match="corpora.c.direction: expected one of as-is, reversed, both"):
        load(str(config), None, ["corpora.c.direction=sideways"])


def test_the_script_of_a_language_from_your_language_file(tmp_path):
    from aligninstruct_cli.languages import reset_languages, use_language_file

    langs = tmp_path / "langs.tsv"
    langs.write_text("code\tflores\tname\nqxx\tqxx_Cyrl\tExamplish\n", encoding="utf-8")
    try:
        use_language_file(str(langs))
        assert target_script("qxx") == "Cyrl"
        path = write_jsonl(tmp_path / "h.jsonl", [hyp(i, f"s{i}", w, "en", "qxx") for i, w in
                                                  enumerate(["мир", "world", "дом", "house"])])
        f = by_check(check_translations("translate/S", path, HealthOptions()))["wrong script"]
        assert (f.value, f.failed) == (0.5, True)
    finally:
        reset_languages()

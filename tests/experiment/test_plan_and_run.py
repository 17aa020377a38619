"""`ait experiment`: config checks, the plan (a graph of ordinary ait commands, content-keyed), the runner
(done markers, failures, kills and resumes, signals, --jobs, submitit), the report, and one real run of a
tiny experiment that is killed during training and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.commands.experiment import load
from aligninstruct_cli.experiment.study_config import KEYS, Experiment, load_experiment
from aligninstruct_cli.experiment.graph import Graph, Step, build_graph, render_plan
from aligninstruct_cli.experiment.paths import log_path
from aligninstruct_cli.experiment.run import StepsFailed, run_graph
from aligninstruct_cli.experiment.steps import DONE, FAILED, PENDING, STALE, read_pid_file, status_rows, step_state

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"
PAPER24 = ROOT / "examples" / "paper" / "bloomz24.yaml"
PAPER3 = ROOT / "examples" / "paper" / "bloomz3.yaml"
runner = CliRunner()


def ait(*args: str):
    return runner.invoke(app, list(args))


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def demo_config() -> dict:
    """The demo's config, its language file named by an absolute path (for a copy written elsewhere)."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["language_file"] = str(DEMO.parent / config["language_file"])
    return config


# ---------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(sytems={}), "paper.yaml: unknown key 'sytems' (did you mean 'systems'?)"),
    (lambda c: c["systems"]["MTInstruct"].update(curriculum="mt+nope"),
     "paper.yaml: systems.MTInstruct.curriculum: 'nope' is not a data set"),
    (lambda c: c["systems"]["MTInstruct"]["train"].update(lora_rr=3),
     "paper.yaml: systems.MTInstruct.train: unknown key 'lora_rr' (did you mean 'lora_r'?)"),
    (lambda c: c["systems"]["MTInstruct"]["train"].update(lora_r="big"),
     "paper.yaml: systems.MTInstruct.train.lora_r: the value must be an integer, not 'big'"),
    (lambda c: c["systems"]["MTInstruct"]["train"].update(lora_r=0),
     "paper.yaml: systems.MTInstruct.train.lora_r must be at least 1, not 0"),
    (lambda c: c["systems"]["MTInstruct"]["train"].update(lr="fast"),
     "paper.yaml: systems.MTInstruct.train.lr 'fast': expected a number"),
    (lambda c: c["train"].update(warmup_ratio=2), "paper.yaml: train.warmup_ratio must be below 1, not 2"),
    (lambda c: c["train"].update(model="x"), "paper.yaml: train.model: set by the experiment; use systems.NAME.model"),
    (lambda c: c["corpora"].update(extra={"file": "no/such.jsonl"}), "paper.yaml: corpora.extra.file: no/such.jsonl: no such file"),
    (lambda c: c["datasets"]["mt"].update(corpus="nope"), "paper.yaml: datasets.mt.corpus: unknown corpus 'nope'"),
    (lambda c: c["tables"]["demo"].update(systems=["MTInstruct", "ghost"]),
     "paper.yaml: tables.demo.systems[1]: unknown system 'ghost'"),
    (lambda c: c["translate"].update(max_new_tokens=-1), "paper.yaml: translate.max_new_tokens must be at least 1"),
])
def test_config_errors_name_the_file_and_key_and_exit_2(tmp_path, monkeypatch, edit, message):
    monkeypatch.chdir(tmp_path)
    config = demo_config()
    edit(config)
    write_config(tmp_path / "paper.yaml", config)
    result = ait("experiment", "plan", "paper.yaml")
    assert result.exit_code == 2, result.output
    assert f"ait: error: {message}" in result.output


# ---------------------------------------------------------------------------------------------- the plan
def test_demo_plan_runs_the_demos_chain_and_every_command_parses_back(tmp_path):
    """Every stage command the plan prints is one the CLI reads to the options the config gave (the
    stage sections are the dataclasses' keys: --print-config shows what the command would run with)."""
    graph = build_graph(load_experiment(DEMO, output=str(tmp_path / "out")))
    names = [n for step in graph for n in step.names]
    assert names == ["toy-data", "toy-model", "toy-comet", "align/train.qab", "build/seen-mt.qaa", "build/mt.qab",
                     "build/val.qab", "build/align.qab", "mix/align", "train/untrained", "train/MTInstruct", "train/MT+Align",
                     "translate/untrained", "translate/MTInstruct", "translate/MT+Align", "score/demo",
                     "probe/untrained", "probe/MTInstruct", "probe/MT+Align", "probe/compare"]
    resolved = {}
    for step in graph:
        argv = graph.argv(step.key)
        if argv[0] != "ait" or argv[1] in ("demo",) or "--compare" in argv:
            continue
        result = ait(*argv[1:], "--print-config")
        assert result.exit_code == 0, (step.name, result.output)
        resolved[step.name] = yaml.safe_load(result.stdout)
    lora = resolved["train/MT+Align"]
    assert (lora["lora_r"], lora["lora_alpha"], lora["lr"], lora["epochs"], lora["batch_size"], lora["num_gpus"]) == \
        (64, 128, [0.003], [3], 16, 2)
    assert lora["lora_targets"] == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
    assert lora["curriculum"] == [["mt", "align"]] and set(lora["data"]) == {"mt", "align"}
    assert lora["val"] == str(graph.output(graph.by_name["build/val.qab"]))
    assert lora["model"] == str(graph.output(graph.by_name["train/untrained"]) / "final")
    base = resolved["train/untrained"]
    assert base["full"] is True and base["lr"] == [0.002] and base["epochs"] == [1]
    assert resolved["mix/align"]["weight"] == {"align": "0.5"} and resolved["mix/align"]["seed"] == 1
    assert resolved["build/align.qab"]["objective"] == "align"
    assert resolved["build/align.qab"]["pairs_per_sentence"] == 1
    score = resolved["score/demo"]
    assert score["names"] == ["untrained", "MT+Align"] and score["baseline_name"] == "MTInstruct"
    assert score["layout"] == "table1" and score["format"] == "json"
    assert resolved["translate/MT+Align"]["max_new_tokens"] == 48
    assert resolved["probe/MT+Align"]["label"] == "MT+Align" and resolved["probe/MT+Align"]["limit"] == 200


def test_paper_bloomz24_plan_offline_is_the_whole_graph_of_its_tables():
    result = ait("experiment", "plan", str(PAPER24), "--no-preflight")  # its models are on the hub
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith(("ait ", "cat ", "{ "))]
    langs = "af am be cy ga gd gl ha ka kk km ky li my nb nn oc si tg tk tt ug uz yi".split()
    for lang in langs:
        assert sum(f"--pair en-{lang} " in c for c in commands) == 3  # train, dev, test
        assert sum(f"--lang {lang} " in c for c in commands) == 1  # FLORES-200 devtest
    assert len([c for c in commands if c.startswith("ait data")]) == 96
    assert len([c for c in commands if c.startswith("ait align")]) == 24
    assert len([c for c in commands if c.startswith("ait build")]) == 24 * 7  # mt, align, hint, revise, mono ×2, val
    trains = [c for c in commands if c.startswith("ait train")]
    curricula = [c.split("--curriculum ")[1].split()[0] for c in trains]
    # 7b1: Tables 1-4 (18 systems); 3b and 1b1: Tables 1-2 (7 each); Table 9's systems reuse 7b1's trainings
    assert len(trains) == 17 + 7 + 7 and curricula.count("mt") == 3 and curricula.count("mt+align") == 3
    assert all("--lr 0.0001,0.0002,0.0003" in c for c in trains)
    assert sum("--global-batch 1024" in c for c in trains) == 14
    assert sum("--model bigscience/bloomz-7b1" in c and "--global-batch 512" in c for c in trains) == 17
    translations = [c for c in commands if c.startswith("ait translate")]
    assert sum(f"--prompt {k}" in c for c in translations for k in "12345") == 10
    scores = [c for c in commands if c.startswith("ait score")]
    assert len(scores) == 9 + 3  # Tables 1, 2 (×3 models), 3, 4, 9 and 11-13
    table1 = next(c for c in scores if "--baseline-name MTInstruct" in c and "AlignInstruct" in c)
    assert "--layout table1" in table1
    assert "--names 'w/o fine-tuning,AlignInstruct,MT+Align,Align→MT,MT+Align→MT'" in table1
    assert any(c.startswith("ait align") and "train.km" in c and "--tokenize simple,chars" in c for c in commands)


def test_paper_bloomz3_plan_shares_trainings_and_samples_the_same_pairs():
    graph = build_graph(load_experiment(PAPER3))
    trains = [s for s in graph if s.kind == "train"]
    assert len(trains) == 6  # the pivot and direct systems share their trainings
    assert graph.step("train/6 MTInstruct pivot") is graph.step("train/6 MTInstruct")
    assert len([s for s in graph if s.kind == "translate"]) == 11
    mix = graph.shell(graph.by_name["mix/mt3"])
    assert "--max-per-lang 200000" in mix and "--weight align3.de=0" in mix and "mt3.ru=" in mix
    assert "--pivot en" in graph.shell(graph.by_name["translate/6 MT+Align pivot"])
    assert all("--global-batch 128" in graph.shell(s.key) for s in trains)
    zero_shot = [s for s in graph if s.kind == "data" and "opus-zs" in s.name]
    assert len(zero_shot) == 15 and all("--split test" in graph.shell(s.key) for s in zero_shot)


def test_a_setting_changes_the_keys_of_its_step_and_what_depends_on_it_only(tmp_path):
    before = build_graph(load_experiment(DEMO, output=str(tmp_path)))
    after = build_graph(load_experiment(DEMO, output=str(tmp_path), overrides=["translate.batch_size=8"]))
    changed = sorted(name for step in after for name in step.names if step.key not in before.steps)
    assert changed == ["score/demo", "translate/MT+Align", "translate/MTInstruct", "translate/untrained"]
    # how a training is launched is not part of its key (a relaunch elsewhere continues the same run)
    relaunched = build_graph(load_experiment(DEMO, output=str(tmp_path), overrides=["train.num_gpus=4"]))
    assert set(relaunched.steps) == set(before.steps)
    assert "--num-gpus 4" in relaunched.shell(relaunched.by_name["train/MTInstruct"])
    lr = build_graph(load_experiment(DEMO, output=str(tmp_path), overrides=["systems.MT+Align.train.lr=1e-3"]))
    changed = sorted(name for step in lr for name in step.names if step.key not in before.steps)
    assert changed == ["probe/MT+Align", "probe/compare", "score/demo", "train/MT+Align", "translate/MT+Align"]


def test_your_input_files_are_keyed_by_their_content(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "1", "src_lang": "en", "tgt_lang": "kk", "src": "a", "tgt": "b"}\n')
    config = {"output": str(tmp_path / "out"), "corpora": {"train": {"file": str(data), "languages": ["kk"]}},
              "datasets": {"mt": {"corpus": "train"}},
              "systems": {"s": {"model": "some/model", "curriculum": "mt"}}}
    path = write_config(tmp_path / "e.yaml", config)
    from aligninstruct_cli.experiment.steps import FileHasher

    first = build_graph(load_experiment(path), FileHasher(tmp_path / "out"))
    data.write_text('{"id": "1", "src_lang": "en", "tgt_lang": "kk", "src": "a", "tgt": "c"}\n')
    second = build_graph(load_experiment(path), FileHasher(tmp_path / "out"))
    assert first.by_name["build/mt.kk"] != second.by_name["build/mt.kk"]
    assert first.by_name["train/s"] != second.by_name["train/s"]


def test_the_plan_is_a_bash_script_with_inputs_and_outputs(tmp_path):
    graph = build_graph(load_experiment(DEMO, output=str(tmp_path / "o")))
    script = render_plan(graph)
    assert script.startswith("#!/usr/bin/env bash\n") and "export OMP_NUM_THREADS=1" in script
    assert "#   reads:  build/mt.qab, mix/align" not in script  # train/MT+Align reads the base too
    assert "#   reads:  train/untrained, build/mt.qab, mix/align" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # valid bash


def test_docs_list_every_config_key():
    doc = (ROOT / "docs" / "experiment.md").read_text(encoding="utf-8")
    for key in KEYS:
        assert f"| `{key}` |" in doc, key


# ---------------------------------------------------------------------------------------------- the runner
def shell_graph(out: Path, steps: dict[str, tuple[str, list[str]]]) -> Graph:
    """A graph of bash steps: name -> (script, input names); @{name} in a script = that step's directory."""
    exp = Experiment(path="t.yaml", output=str(out), languages=[])
    built: dict[str, Step] = {}
    keys: dict[str, str] = {}
    for i, (name, (script, inputs)) in enumerate(steps.items()):
        key = f"{i:016x}"
        keys[name] = key
        for other, other_key in keys.items():
            script = script.replace(f"@{{{other}}}", f"@{{{other_key}}}")
        built[key] = Step(key, "cat", [name], ["bash", "-c", script], [keys[n] for n in inputs])
    return Graph(exp, built)


def test_dependents_are_every_step_reading_a_step_directly_or_not(tmp_path):
    graph = shell_graph(tmp_path, {"a": ("", []), "b": ("", ["a"]), "c": ("", ["a"]), "d": ("", ["b", "c"]),
                                   "e": ("", ["d"]), "other": ("", [])})

    def dependents(name: str) -> list[str]:
        return sorted(graph.steps[k].name for k in graph.dependents(graph.by_name[name]))

    assert dependents("a") == ["b", "c", "d", "e"]
    assert dependents("c") == ["d", "e"]
    assert graph.dependents(graph.by_name["e"]) == graph.dependents(graph.by_name["other"]) == set()


def test_runner_skips_done_steps_redoes_half_made_ones_and_stops_only_dependents(tmp_path):
    graph = shell_graph(tmp_path, {
        "a": ("echo a > @{out}/x", []),
        "b": ("cat @{a}/x > @{out}/x; echo b >> @{out}/x", ["a"]),
        "bad": ("echo oops; exit 3", ["a"]),
        "after-bad": ("echo never > @{out}/x", ["bad"]),
        "c": ("cat @{b}/x > @{out}/x", ["b"]),
    })
    with pytest.raises(StepsFailed, match=r"1 step\(s\) failed \(1 not run"):
        run_graph(graph, echo=lambda _: None)
    states = {row[0]: row[1] for row in status_rows(graph)}
    assert states == {"a": DONE, "b": DONE, "bad": FAILED, "after-bad": PENDING, "c": DONE}
    assert (graph.directory(graph.by_name["c"]) / "x").read_text() == "a\nb\n"
    assert "oops" in Path(status_rows(graph)[2][3]).read_text()
    # a rerun runs only what is not done; a half-made output (no done.json) is made again from scratch
    c = graph.directory(graph.by_name["c"])
    (c / "done.json").unlink()
    (c / "junk").write_text("half")
    graph.steps[graph.by_name["bad"]].argv[2] = "echo fixed"
    outcome = run_graph(graph, echo=lambda _: None)
    assert sorted(graph.steps[k].name for k in outcome.done) == ["after-bad", "bad", "c"]
    assert not (c / "junk").exists() and (c / "x").read_text() == "a\nb\n"
    assert len(outcome.skipped) == 2


def test_status_shows_stale_when_only_other_settings_output_exists(tmp_path):
    old = shell_graph(tmp_path, {"a": ("echo 1 > @{out}/x", [])})
    run_graph(old, echo=lambda _: None)
    new = Graph(old.exp, {"ffffffffffffffff": Step("ffffffffffffffff", "cat", ["a"], ["bash", "-c", "echo 2"], [])})
    assert step_state(new, "ffffffffffffffff") == STALE


def test_jobs_run_independent_steps_at_once(tmp_path):
    # each step waits until the other has started: only passes when both run at the same time
    graph = shell_graph(tmp_path, {
        "a": (f"touch {tmp_path}/a-started; for i in $(seq 100); do [ -e {tmp_path}/b-started ] && exit 0; "
              "sleep 0.05; done; exit 1", []),
        "b": (f"touch {tmp_path}/b-started; for i in $(seq 100); do [ -e {tmp_path}/a-started ] && exit 0; "
              "sleep 0.05; done; exit 1", []),
    })
    outcome = run_graph(graph, jobs=2, echo=lambda _: None)
    assert len(outcome.done) == 2


def test_a_signal_to_the_run_reaches_its_steps_and_a_second_run_is_refused_meanwhile(tmp_path):
    config = tmp_path / "g.py"
    config.write_text(
        "import sys\nsys.path.insert(0, %r)\n" % str(ROOT)
        + "from tests.experiment.test_plan_and_run import shell_graph\n"
        + "from aligninstruct_cli.experiment.run import run_graph\n"
        + "from pathlib import Path\n"
        + "g = shell_graph(Path(%r), {'slow': ('trap \"echo got-term > %s/term; exit 9\" TERM; touch %s/up; "
          "sleep 30 & wait', [])})\n" % (str(tmp_path / "out"), tmp_path, tmp_path)
        + "run_graph(g)\n")
    proc = subprocess.Popen([sys.executable, str(config)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    graph = shell_graph(tmp_path / "out", {"slow": ("true", [])})
    with pytest.raises(Exception, match="another `ait experiment run`"):
        run_graph(graph, echo=lambda _: None)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert (tmp_path / "term").read_text().strip() == "got-term"
    assert "interrupted" in err
    assert step_state(graph, graph.by_name["slow"]) == PENDING  # neither done nor failed: the next run redoes it


def test_submitit_local_executor_runs_the_steps_as_jobs(tmp_path):
    pytest.importorskip("submitit")
    graph = shell_graph(tmp_path, {"a": ("echo a > @{out}/x", []), "b": ("cat @{a}/x > @{out}/x", ["a"]),
                                   "bad": ("exit 4", []), "after-bad": ("true", ["bad"])})
    with pytest.raises(StepsFailed):
        run_graph(graph, executor="submitit-local", echo=lambda _: None)
    assert (graph.directory(graph.by_name["b"]) / "x").read_text() == "a\n"
    states = {row[0]: row[1] for row in status_rows(graph)}
    assert states == {"a": DONE, "b": DONE, "bad": FAILED, "after-bad": PENDING}


# ---------------------------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory, tiny_bloom_dir):
    """A tiny experiment of real commands: a base model and one LoRA system on toy data, scored with BLEU and
    chrF++ (a few seconds per step)."""
    from aligninstruct_cli.demo import LANGUAGE_FILE
    from aligninstruct_cli.demo.build import make_toy_data

    root = tmp_path_factory.mktemp("experiment")
    make_toy_data(root / "data", seen=1, unseen=80, dev=2, test=3)
    config = {
        "output": str(root / "out"),
        "env": {"OMP_NUM_THREADS": "1"},
        "language_file": str(LANGUAGE_FILE),  # the toy languages qaa, qab
        "corpora": {"train": {"file": str(root / "data" / "unseen-train.jsonl"), "languages": ["qab"]},
                    "test": {"file": str(root / "data" / "unseen-test.jsonl"), "languages": ["qab"]}},
        "datasets": {"mt": {"corpus": "train"}},
        "train": {"launcher": "none", "epochs": 1, "batch_size": 2, "save_every": 4, "lora_r": 4, "lr": 1e-3,
                  "report_to": "tensorboard"},
        "systems": {"base": {"model": str(tiny_bloom_dir)}, "MT": {"model": str(tiny_bloom_dir), "curriculum": "mt"}},
        "test_sets": ["test"],
        "translate": {"max_new_tokens": 4, "batch_size": 8},
        "score": {"metrics": ["bleu", "chrf"], "bootstrap_samples": 50},
        "baseline": "base",
        "tables": {"t": {"systems": ["MT"], "score": {"layout": "table1"}}},
    }
    return write_config(root / "exp.yaml", config), root


def experiment_cli(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DS_ACCELERATOR="cpu",
               PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "aligninstruct_cli", "experiment", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow  # a training killed and rerun: ~27 s
def test_killed_during_training_then_run_again_finishes_and_reruns_nothing(tiny_experiment):
    """SIGKILL of `ait experiment run` during training; `run` again ends the orphaned training, resumes it
    (ait train --resume) and finishes; the adapter equals an uninterrupted training's, bit for bit. Then a
    third run does no training, is quick, and leaves the tables byte-identical."""
    config, root = tiny_experiment
    started = time.monotonic()
    proc = experiment_cli("run", str(config))
    graph = load(str(config), None, [])  # as the command builds it: your files keyed by their content
    train = graph.by_name["train/MT"]
    state = graph.directory(train) / "checkpoints" / "state.json"
    while proc.poll() is None:
        if state.exists() and (orjson.loads(state.read_bytes()).get("resume") or {}).get("global_step", 0) >= 4:
            proc.kill()  # the runner only: its training goes on, orphaned
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill: make it longer"
    # the orphan is stopped, so that it is still there (mid-training) however fast this machine trains; the next
    # run must end it all the same (SIGTERM, then SIGCONT) before resuming
    orphan = read_pid_file(log_path(graph, train).with_suffix(".pid"))
    assert orphan is not None
    os.killpg(orphan["pgid"], signal.SIGSTOP)
    second = experiment_cli("run", str(config))
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    first_seconds = time.monotonic() - started
    log = Path(status_rows(graph)[[r[0] for r in status_rows(graph)].index("train/MT")][3]).read_text()
    assert "ending process group" in out  # the orphaned training, still running
    assert "--resume" in log and "resuming at step" in log
    report = experiment_cli("report", str(config))
    out, _ = report.communicate(timeout=120)
    assert report.returncode == 0, out
    tables = {p.name: p.read_bytes() for p in sorted((root / "out" / "tables").iterdir())}
    assert set(tables) == {"t.md", "t.tsv", "t.json"}
    assert b" [" in tables["t.md"]  # intervals (table1 layout)
    assert (root / "out" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((graph.directory(train) / "tensorboard").rglob("events.out.tfevents.*"))

    # the same training, uninterrupted, gives the same adapter
    argv = [t.replace(str(graph.directory(train)), str(root / "straight")) for t in graph.argv(train)]
    subprocess.run([sys.executable, "-m", "aligninstruct_cli", *argv[1:]], check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu"))
    adapter = "final/adapter_model.safetensors"
    assert (graph.directory(train) / adapter).read_bytes() == (root / "straight" / adapter).read_bytes()

    again = time.monotonic()
    third = experiment_cli("run", str(config))
    out, _ = third.communicate(timeout=120)
    assert third.returncode == 0 and "0 step(s) run, 5 already done" in out, out
    subprocess.run([sys.executable, "-m", "aligninstruct_cli", "experiment", "report", str(config)], check=True,
                   capture_output=True)
    assert time.monotonic() - again < 0.1 * first_seconds + 5
    assert {p.name: p.read_bytes() for p in sorted((root / "out" / "tables").iterdir())} == tables
    report_md = (root / "out" / "report.md").read_text()
    assert "### t" in report_md and "![training and validation loss](loss.png)" in report_md
    assert os.readlink(root / "out" / "train" / "MT") == f"../steps/train/{train}"


def test_slurm_executor_submits_every_step_with_afterok_dependencies(tmp_path, monkeypatch):
    """Without a cluster: a stand-in for submitit records each job's parameters and runs it at once."""
    from aligninstruct_cli.experiment import executors

    submitted = []

    class Job:
        def __init__(self, fn, spec, params):
            self.job_id = str(100 + len(submitted))
            self.params = params
            self.error = None
            try:
                fn(spec)
            except RuntimeError as exc:
                self.error = exc

        def done(self):
            return True

        def result(self):
            if self.error:
                raise self.error

    class AutoExecutor:
        def __init__(self, folder, cluster):
            assert cluster == "slurm"
            self.params = {}

        def update_parameters(self, **params):
            self.params.update(params)

        def submit(self, fn, spec):
            submitted.append(Job(fn, spec, dict(self.params)))
            return submitted[-1]

    monkeypatch.setattr(executors, "_submitit", lambda: type("submitit", (), {"AutoExecutor": AutoExecutor}))
    graph = shell_graph(tmp_path, {"a": ("echo a > @{out}/x", []), "b": ("cat @{a}/x > @{out}/x", ["a"])})
    graph.exp.slurm = {"all": {"slurm_partition": "cpu"}, "gpu": {"gpus_per_node": 8}}
    run_graph(graph, executor="slurm", echo=lambda _: None)
    a, b = submitted
    assert "dependency" not in a.params.get("slurm_additional_parameters", {})
    assert b.params["slurm_additional_parameters"]["dependency"] == "afterok:100"
    assert b.params["slurm_partition"] == "cpu" and "gpus_per_node" not in b.params  # shell steps are CPU steps
    assert (graph.directory(graph.by_name["b"]) / "x").read_text() == "a\n"
    assert all(step_state(graph, k) == DONE for k in graph.steps)


def test_loss_curves_follow_the_chosen_learning_rate_across_stages(tmp_path):
    from aligninstruct_cli.experiment.plots import loss_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes(orjson.dumps({"lrs": [0.1, 0.2], "result": {"chosen_lr": 0.2}}))
    lines = [{"lr_index": 0, "stage": 1, "step": 10, "loss": 9.0},
             {"lr_index": 1, "stage": 1, "step": 10, "loss": 3.0}, {"lr_index": 1, "stage": 1, "step": 20, "loss": 2.0},
             {"lr_index": 1, "stage": 1, "step": 20, "val_loss": 2.5},
             {"lr_index": 1, "stage": 2, "step": 5, "loss": 1.5}, {"lr_index": 1, "stage": 2, "step": 5, "val_loss": 1.8}]
    (run / "metrics.jsonl").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    first, second = loss_curves(run)
    assert (first["steps"], first["loss"], first["val_steps"], first["val_loss"]) == ([10, 20], [3.0, 2.0], [20], [2.5])
    assert (second["stage"], second["steps"], second["val_steps"]) == (2, [25], [25])  # after stage 1's 20 steps


def test_report_to_tensorboard_without_tensorboard_is_a_clear_error(monkeypatch, tmp_path):
    import importlib.util

    from aligninstruct_cli.training.train_options import TrainOptions

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    data = tmp_path / "mt.jsonl"
    data.write_text("{}\n")
    result = ait("train", "--model", "m", "--data", f"mt={data}", "-o", str(tmp_path / "r"), "--report-to",
                 "tensorboard", "--print-config")
    assert result.exit_code == 2
    assert "--report-to tensorboard needs the tensorboard package" in result.output
    assert "pip install 'aligninstruct-cli[tensorboard]'" in result.output
    assert TrainOptions(model="m", data={"mt": "x"}, output="o").report_to == "none"


def test_only_runs_a_step_and_what_it_needs(tmp_path):
    graph = shell_graph(tmp_path, {"a": ("true", []), "b": ("true", ["a"]), "c": ("true", ["b"]), "d": ("true", [])})
    run_graph(graph, only={graph.by_name["b"]}, echo=lambda _: None)
    assert {row[0]: row[1] for row in status_rows(graph)} == {"a": DONE, "b": DONE, "c": PENDING, "d": PENDING}

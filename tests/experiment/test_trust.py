"""A study you can trust: no config value reaches a shell or leaves OUTPUT (hostile names and values
are refused at `plan` or stay inert), config loading is bounded and strict, `done` means verified (deleting,
truncating or editing any step's output makes it stale and it is redone with its dependants; `report` never
builds a table from fewer segments than the test set has), and ait never takes over what it did not write
(link locations, pid files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tracemalloc
from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.commands.experiment import load
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.run import reap_leftovers, run_graph
from aligninstruct_cli.experiment.steps import (DONE, STALE, check_outputs, finish_step, is_ours, pid_record,
                                                process_start, status_rows, step_state)
from aligninstruct_cli.options import read_config_file

from tests.experiment.test_plan_and_run import shell_graph

runner = CliRunner()
CANARY = "CANARY"


def ait(*args: str):
    return runner.invoke(app, list(args))


def pair(i: int, lang: str) -> dict:
    return {"id": f"{lang}-{i}", "src_lang": "en", "tgt_lang": lang, "src": f"the house {i} is red",
            "tgt": f"yi {i} qizil"}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def study(tmp_path: Path) -> dict:
    """A small study whose data steps run in seconds (no model is loaded): two languages built and mixed, two
    test sets joined into one test file, a table over two untrained systems."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for lang in ("kk", "ky"):
        write_jsonl(data / f"train.{lang}.jsonl", [pair(i, lang) for i in range(6)])
    write_jsonl(data / "t1.jsonl", [pair(i, "kk") for i in range(3)])
    write_jsonl(data / "t2.jsonl", [pair(i, "ky") for i in range(2)])
    return {"output": str(tmp_path / "out"), "languages": ["kk", "ky"],
            "corpora": {"train": {"file": str(data / "train.{lang}.jsonl")},
                        "t1": {"file": str(data / "t1.jsonl"), "languages": ["kk"]},
                        "t2": {"file": str(data / "t2.jsonl"), "languages": ["ky"]}},
            "datasets": {"mt": {"corpus": "train"}},
            "systems": {"base": {"model": "some/model"}, "other": {"model": "other/model"},
                        "trained": {"model": "some/model", "curriculum": "mt"}},
            "test_sets": ["t1", "t2"], "score": {"metrics": ["bleu", "chrf"]},
            "baseline": "base", "tables": {"main": {"systems": ["other"]}}}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------------------- hostile configs
HOSTILE_REFUSED = [
    (lambda c: c["corpora"].update({"a$(touch CANARY)": c["corpora"]["t1"]}), "corpora.a$(touch CANARY)"),
    (lambda c: c["corpora"].update({"a`touch CANARY`": c["corpora"]["t1"]}), "corpora.a`touch CANARY`"),
    (lambda c: c["corpora"].update({"a;touch CANARY": c["corpora"]["t1"]}), "corpora.a;touch CANARY"),
    (lambda c: c["corpora"].update({"../../../../tmp/x": c["corpora"]["t1"]}), "corpora.../../../../tmp/x"),
    (lambda c: c["corpora"].update({"/tmp/x": c["corpora"]["t1"]}), "corpora./tmp/x"),
    (lambda c: c["datasets"].update({"..": {"corpus": "train", "objective": "mt"}}), "datasets..."),
    (lambda c: c["datasets"].update({"a b": {"corpus": "train", "objective": "mt"}}), "datasets.a b"),
    (lambda c: c["systems"].update({"s\ntouch CANARY": {"model": "m"}}), "not a safe name"),
    (lambda c: c["systems"].update({"s$(touch CANARY)": {"model": "m"}}), "systems.s$(touch CANARY)"),
    (lambda c: c["systems"].update({".": {"model": "m"}}), "systems..: '.' is not a safe name"),
    (lambda c: c["systems"].update({"..": {"model": "m"}}), "systems...: '..' is not a safe name"),
    (lambda c: c["systems"].update({"a,b": {"model": "m"}}), "systems.a,b"),
    (lambda c: c["systems"].update({"Base": {"model": "m"}}), "'Base' and 'base' give one file name"),
    (lambda c: c["systems"].update({"x y": {"model": "m"}, "x_y": {"model": "m"}}), "give one file name (x_y)"),
    (lambda c: c["tables"].update({"t;rm -rf ~": {"systems": ["other"]}}), "tables.t;rm -rf ~"),
    (lambda c: c.update(languages=["kk", "../x"]), "languages[1]: '../x' is not a safe name"),
    (lambda c: c.update(languages=["kk", "$(touch CANARY)"]), "languages[1]"),
    (lambda c: c["corpora"]["t1"].update(languages=["k k"]), "corpora.t1.languages[0]"),
    (lambda c: c.update(align_per_language={"../kk": {}}), "align_per_language.../kk"),
    (lambda c: c["systems"]["base"].update(data={"a=b": "mt"}), "systems.base.data.a=b"),
    (lambda c: c.update(env={"A;touch CANARY": 1}), "env.A;touch CANARY: not a variable name"),
    (lambda c: c.update(env={"A=B": 1}), "env.A=B: not a variable name"),
    (lambda c: c.update(env={"A": {"b": 1}}), "env.A: expected text or a number"),
    (lambda c: c.update(env={"A": "x\0y"}), "env.A: the value holds a NUL character"),
    (lambda c: c.update(env={1: "x"}), "env: the key 1 is a number"),
    (lambda c: c.update(output="out\0x"), "output: the text holds a NUL character"),
    (lambda c: c["corpora"]["t1"].update(file="a\0b"), "corpora.t1.file: the text holds a NUL character"),
]


@pytest.mark.parametrize("edit, message", HOSTILE_REFUSED)
def test_hostile_names_are_refused_at_plan_naming_the_key(tmp_path, monkeypatch, edit, message):
    monkeypatch.chdir(tmp_path)
    config = study(tmp_path)
    edit(config)
    write_config(tmp_path / "paper.yaml", config)
    before = listing(tmp_path)
    result = ait("experiment", "plan", "paper.yaml")
    assert result.exit_code == 2, result.output
    assert "ait: error: paper.yaml: " in result.output and message in result.output
    assert "Traceback" not in result.output
    assert listing(tmp_path) == before  # plan writes nothing


def test_derived_names_that_collide_are_refused(tmp_path, monkeypatch):
    # corpus a.b in language c and corpus a in language b.c would both be data/a.b.c
    monkeypatch.chdir(tmp_path)
    config = study(tmp_path)
    config["corpora"] = {"a.b": {"opus100": {}, "languages": ["c"]}, "a": {"opus100": {}, "languages": ["b.c"]},
                         "t1": config["corpora"]["t1"], "t2": config["corpora"]["t2"]}
    config["datasets"] = {"x": {"corpus": "a.b", "objective": "mt"}, "y": {"corpus": "a", "objective": "mt"}}
    config["systems"] = {"s": {"model": "m", "curriculum": "x+y"}}
    config.pop("tables"), config.pop("baseline")
    write_config(tmp_path / "paper.yaml", config)
    result = ait("experiment", "plan", "paper.yaml")
    assert result.exit_code == 2, result.output
    assert "would share the name data/a.b.c" in result.output


def test_hostile_values_stay_inert_and_nothing_is_written_outside_output(tmp_path, monkeypatch):
    """Values that are not names (the output folder, your file names, env values, labels) reach no shell: the
    plan quotes them and the run passes them as argv words; everything is written inside OUTPUT."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = study(work)
    hostile_file = work / "data" / "t1 $(touch CANARY);`touch CANARY`.jsonl"
    os.rename(work / "data" / "t1.jsonl", hostile_file)
    config["corpora"]["t1"]["file"] = str(hostile_file)
    config["output"] = "out dir $(touch CANARY) `touch CANARY`; touch CANARY"
    config["env"] = {"HOSTILE": "$(touch CANARY); `touch CANARY`\ntouch CANARY"}
    config["systems"]["other (v2)/../../../x → y"] = config["systems"].pop("other")
    config["tables"] = {"main table w/o /tmp": {"systems": ["other (v2)/../../../x → y"]}}
    path = write_config(work / "paper.yaml", config)
    before = listing(tmp_path)
    result = ait("experiment", "plan", "paper.yaml", "--no-preflight")  # its models are made-up hub ids
    assert result.exit_code == 0, result.output
    # the plan is a script that runs no value of the config as a command
    subprocess.run(["bash", "-n"], input=result.output, text=True, check=True)
    # the whole plan runs (in a sandbox, `ait` a stub that records its words): no value runs as a command
    sandbox = tmp_path / "sandbox"
    (sandbox / "bin").mkdir(parents=True)
    stub = sandbox / "bin" / "ait"
    stub.write_text('#!/usr/bin/env python3\nimport json, os, sys\nwith open(os.environ["STUB_LOG"], "a") as fh:\n'
                    '    fh.write(json.dumps([sys.argv[1:], os.environ["HOSTILE"]]) + "\\n")\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{sandbox / 'bin'}:{os.environ['PATH']}", "STUB_LOG": str(tmp_path / "stub.log")}
    subprocess.run(["bash", "-c", result.output], cwd=sandbox, env=env, check=True)
    calls = [json.loads(line) for line in (tmp_path / "stub.log").read_text().splitlines()]
    assert len(calls) == result.output.count("\nait ") == 9 and all(value == config["env"]["HOSTILE"] for _, value in calls)
    concat = [argv for argv, _ in calls if argv[:2] == ["experiment", "concat"]]
    assert len(concat) == 1 and str(hostile_file) in concat[0]
    assert not any(Path(p).name == CANARY for p in listing(tmp_path)), "a value ran as a command"
    (tmp_path / "stub.log").unlink()
    before = listing(tmp_path)
    graph = load(str(path), None, None, create=True)
    run_graph(graph, only={graph.by_name["mix/mt"], graph.by_name["cat/test.t1+t2"]}, echo=lambda _: None)
    assert step_state(graph, graph.by_name["cat/test.t1+t2"]) == DONE
    test_file = graph.output(graph.by_name["cat/test.t1+t2"])
    assert len(test_file.read_text().splitlines()) == 5
    assert not any(Path(p).name == CANARY for p in listing(tmp_path)), "a value ran as a command"
    out = config["output"] + "/"
    assert {p for p in listing(tmp_path) - before if not (p.startswith("work/" + out) or p == "work/" + out[:-1])} \
        == set(), "written outside OUTPUT"


def test_a_step_writing_through_a_symlink_out_of_output_is_refused(tmp_path):
    config = study(tmp_path)
    path = write_config(tmp_path / "paper.yaml", config)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "steps").symlink_to(outside)
    graph = load(str(path), None, None)
    with pytest.raises(AitError, match="outside the experiment's output"):
        run_graph(graph, only={graph.by_name["mix/mt"]}, echo=lambda _: None)
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------------------------------- config loading
def test_a_yaml_alias_bomb_is_refused_quickly_in_little_memory(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    with pytest.raises(AitError, match="more than 1,000,000 values once its aliases are expanded"):
        read_config_file(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6
    result = ait("translate", "x.jsonl", "--config", str(bomb))  # every command's --config, the same loader
    assert result.exit_code == 2 and "alias" in result.output


@pytest.mark.parametrize("name, text, message", [
    ("dup.yaml", "output: a\nlanguages: [kk]\noutput: b\n", "dup.yaml:3: duplicate key 'output' (first at line 1)"),
    ("nested.yaml", "systems:\n  s: {model: a}\n  s: {model: b}\n", "nested.yaml:3: duplicate key 's'"),
    ("dup.json", '{"output": "a",\n "languages": [],\n "output": "b"}', "dup.json:3: duplicate key 'output'"),
    ("dup.toml", 'output = "a"\noutput = "b"\n', "dup.toml: malformed TOML"),
    ("many.yaml", "a: &a 1\nb: [" + ",".join(["*a"] * 1001) + "]\n", "more than 1,000 aliases"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep.yaml", "[" * 100_000 + "]" * 100_000, "deep.yaml"),
])
def test_config_files_are_strict(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    result = ait("experiment", "plan", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("data, message", [(b"output: \xff\xfe\n", ":1: not UTF-8 text (byte 8)"),
                                           (b"\x7fELF\x02\x01\x00\x00", "a binary file, not a config")])
def test_binary_and_non_utf8_config_files_are_one_line_errors(tmp_path, data, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    for args in (["experiment", "plan", str(path)], ["mix", "x=y.jsonl", "--config", str(path)]):
        result = ait(*args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_merge_key_is_not_a_duplicate(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")
    assert read_config_file(path)["other"] == {"x": 2}


# ---------------------------------------------------------------------------------------------- done means verified
def chain(tmp_path: Path):
    return shell_graph(tmp_path / "out", {
        "a": ("echo a > @{out}/x", []),
        "b": ("cat @{a}/x > @{out}/x; echo b >> @{out}/x", ["a"]),
        "c": ("cat @{b}/x > @{out}/x; echo c >> @{out}/x", ["b"]),
    })


def states(graph) -> dict[str, str]:
    return {row[0]: row[1] for row in status_rows(graph)}


@pytest.mark.parametrize("damage, redone", [
    ("delete a", ["a", "b", "c"]), ("truncate b", ["b", "c"]), ("edit b", ["b", "c"]),
    ("empty done.json of b", ["b", "c"]), ("delete c", ["c"]), ("append to a", ["a", "b", "c"]),
])
def test_a_damaged_output_is_stale_and_redone_with_its_dependants(tmp_path, damage, redone):
    graph = chain(tmp_path)
    run_graph(graph, echo=lambda _: None)
    assert states(graph) == {"a": DONE, "b": DONE, "c": DONE}
    action, _, step = damage.partition(" ")
    directory = graph.directory(graph.by_name[step.split()[-1]])
    if action == "delete":
        (directory / "x").unlink()
    elif action == "truncate":
        (directory / "x").write_text("a\n")
    elif action == "edit":
        (directory / "x").write_text("a\nB\n")  # same size
    elif action == "append":
        with open(directory / "x", "a") as fh:
            fh.write("more\n")
    else:
        (directory / "done.json").write_text("")
    rows = {row[0]: row for row in status_rows(graph, reasons=True)}
    assert {name for name, row in rows.items() if row[1] == STALE} == set(redone)
    assert all(rows[name][4] for name in redone)  # each says why
    outcome = run_graph(graph, echo=lambda _: None)
    assert sorted(graph.steps[k].name for k in outcome.done) == redone
    assert states(graph) == {"a": DONE, "b": DONE, "c": DONE}
    assert (graph.directory(graph.by_name["c"]) / "x").read_text() == "a\nb\nc\n"


def test_status_shows_why_a_step_is_stale(tmp_path):
    graph = chain(tmp_path)
    run_graph(graph, echo=lambda _: None)
    (graph.directory(graph.by_name["b"]) / "x").write_text("")
    rows = {row[0]: row for row in status_rows(graph, reasons=True)}
    assert rows["b"][4] == "x is 0 bytes, not the 4 it had when done"
    assert rows["c"][4] == "its input b is stale"


def test_a_step_is_done_only_when_its_output_is_complete_for_its_kind(tmp_path):
    source = write_jsonl(tmp_path / "test.jsonl", [pair(i, "kk") for i in range(4)])
    step_dir = tmp_path / "step"
    step_dir.mkdir()
    hyps = [{**pair(i, "kk"), "hyp": "x"} for i in range(4)]
    spec = {"kind": "translate", "main": "hyps.jsonl", "inputs": {}, "source": str(source)}
    write_jsonl(step_dir / "hyps.jsonl", hyps[:3])
    assert check_outputs(step_dir, spec) == "hyps.jsonl has no hypothesis for 1 of the 4 source ids"
    log = tmp_path / "log"
    assert finish_step(step_dir, ["translate/s"], "translate", "k", "cmd", 0, 1.0, str(log), spec) == 1
    assert not (step_dir / "done.json").exists()
    assert "incomplete" in orjson.loads((step_dir / "failed.json").read_bytes())
    assert "output is incomplete: hyps.jsonl has no hypothesis" in log.read_text()
    write_jsonl(step_dir / "hyps.jsonl", hyps)
    assert check_outputs(step_dir, spec) is None
    score = {"kind": "score", "main": "scores.json", "inputs": {}, "source": str(source)}
    (step_dir / "scores.json").write_text(json.dumps({"n_segments": 3}))
    assert check_outputs(step_dir, score) == "scores.json scores 3 segments, the test set has 4"
    (step_dir / "scores.json").write_text("{")
    assert "unreadable" in check_outputs(step_dir, score)
    train = {"kind": "train", "main": "", "inputs": {}}
    final = step_dir / "final"
    final.mkdir()
    assert check_outputs(step_dir, train) == "final/ holds neither an adapter nor a model"
    (final / "adapter_config.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = len(header).to_bytes(8, "little") + header + bytes(16)
    (final / "adapter_model.safetensors").write_bytes(whole[:-5])
    assert "incomplete safetensors file: its tensors need" in check_outputs(step_dir, train)
    (final / "adapter_model.safetensors").write_bytes(whole)
    assert check_outputs(step_dir, train) is None


def fake_translation(graph, system: str, n: int | None = None) -> None:
    """What `ait translate` writes for a system (its source's records with a hypothesis), recorded as done."""
    key = graph.by_name[f"translate/{system}"]
    directory = graph.directory(key)
    directory.mkdir(parents=True, exist_ok=True)
    source = graph.argv(key)[2]
    records = [orjson.loads(line) for line in Path(source).read_bytes().splitlines()]
    write_jsonl(directory / "hyps.jsonl", [{**r, "hyp": r["tgt"] if system == "base" else r["src"]}
                                           for r in records[:n]])
    from aligninstruct_cli.experiment.steps import check_spec

    step = graph.steps[key]
    assert finish_step(directory, step.names, step.kind, key, graph.shell(key), 0, 1.0, "log", check_spec(graph, key)) == 0


def test_report_never_builds_a_table_from_fewer_segments_than_the_test_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "paper.yaml", study(tmp_path))
    graph = load(str(path), None, None, create=True)
    run_graph(graph, only={graph.by_name["cat/test.t1+t2"]}, echo=lambda _: None)
    for system in ("base", "other"):
        fake_translation(graph, system)
    run_graph(graph, only={graph.by_name["score/main"]}, echo=lambda _: None)
    result = ait("experiment", "report", "paper.yaml")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "tables" / "main.md").exists()
    report = orjson.loads((tmp_path / "out" / "tables" / "main.json").read_bytes())
    assert report["n_segments"] == 5
    # the hypotheses of one system are cut to 2 of 5 lines after the table was scored
    hyps = graph.output(graph.by_name["translate/other"])
    hyps.write_text("".join(hyps.read_text().splitlines(keepends=True)[:2]))
    result = ait("experiment", "report", "paper.yaml")
    assert result.exit_code == 2, result.output
    assert "table main: step score/main is stale (its input translate/other is stale)" in result.output
    result = ait("experiment", "status", "paper.yaml")
    assert "translate/other" in result.output and "hyps.jsonl is" in result.output
    # a scores.json damaged after it was done: refused too, one line
    fake_translation(graph, "other")
    run_graph(graph, only={graph.by_name["score/main"]}, echo=lambda _: None)
    assert ait("experiment", "report", "paper.yaml").exit_code == 0
    graph.output(graph.by_name["score/main"]).write_text("{not json")
    result = ait("experiment", "report", "paper.yaml")
    assert result.exit_code == 2 and "step score/main is stale (scores.json is" in result.output
    assert "Traceback" not in result.output


def test_corrupt_run_files_in_report_are_one_line_errors(tmp_path):
    from aligninstruct_cli.experiment.plots import loss_curves

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{")
    with pytest.raises(AitError, match="run.json: corrupt or unreadable"):
        loss_curves(run)
    (run / "run.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n')
    with pytest.raises(AitError, match=r"metrics.jsonl:2: corrupt line"):
        loss_curves(run)


# ---------------------------------------------------------------------------------------------- what ait did not write
@pytest.mark.parametrize("what", ["file", "folder", "foreign link"])
def test_a_link_location_holding_something_else_is_an_error_and_kept(tmp_path, what):
    graph = shell_graph(tmp_path / "out", {"a": ("echo a > @{out}/x", [])})
    link = tmp_path / "out" / "cat" / "a"
    link.parent.mkdir(parents=True)
    if what == "file":
        link.write_text("mine")
    elif what == "folder":
        link.mkdir()
    else:
        link.symlink_to(tmp_path)
    with pytest.raises(AitError, match=f"{link}: a .*ait did not make"):
        run_graph(graph, echo=lambda _: None)
    assert link.is_symlink() if what == "foreign link" else link.exists() and not link.is_symlink()


@pytest.mark.slow  # the ended sleep stays our zombie child, so ending its group waits the 20 s grace
def test_a_pid_file_is_acted_on_only_while_its_process_is_the_same(tmp_path):
    graph = shell_graph(tmp_path / "out", {"a": ("true", [])})
    logs = tmp_path / "out" / "logs"
    logs.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pid_file = logs / "cat.a.0000000000000000.pid"
        assert process_start(proc.pid) is not None
        stranger = {**pid_record(proc.pid, "t"), "start": process_start(proc.pid) - 1}  # the pid, reused since
        assert not is_ours(stranger)
        pid_file.write_bytes(orjson.dumps(stranger))
        reap_leftovers(graph)
        assert proc.poll() is None and not pid_file.exists()  # left alone; the stale file removed
        pid_file.write_text(str(proc.pid))  # an old-style bare pid: never acted on
        reap_leftovers(graph)
        assert proc.poll() is None
        pid_file.write_bytes(orjson.dumps(pid_record(proc.pid, "t")))
        reap_leftovers(graph)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_slurm_executor_without_slurm_is_a_one_line_error(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")

    def no_slurm(*args, **kwargs):
        raise RuntimeError('Could not detect "srun", are you indeed on a slurm cluster?')

    monkeypatch.setattr(submitit, "AutoExecutor", no_slurm)
    graph = chain(tmp_path)
    with pytest.raises(AitError, match='--executor slurm: Could not detect "srun"'):
        run_graph(graph, executor="slurm", echo=lambda _: None)

"""Every command's options, walked from the options dataclasses (`registry.STAGE_OPTIONS`), given extreme and
hostile values (huge numbers, NaN, infinities, empty text, control characters, non-UTF-8 and hostile paths): each
run ends with exit 0, 1 or 2 and a one-paragraph message, never a traceback. In-process (CliRunner); the
inputs do not exist or are tiny, so no model is ever loaded. Also: the outputs of one command are distinct,
checked before any work, and `score` reads a pipe once."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.registry import STAGE_OPTIONS as REGISTRY
from aligninstruct_cli.options import flag_of, option_fields, spec_of, strip_optional, type_hints

runner = CliRunner()

# how each command is reached, and the words that make it run up to its first use of an input (which does not
# exist, so that no model or data is loaded once the options pass)
COMMANDS = {
    "align": ["align", "missing.jsonl"],
    "build-instructions": ["build-instructions", "missing.jsonl"],
    "build": ["build", "missing.jsonl"],
    "mix": ["mix", "a=missing.jsonl"],
    "train": ["train", "--model", "missing-model/", "--data", "mt=missing.jsonl", "--output", "run-out"],
    "translate": ["translate", "missing.jsonl", "--model", "missing-model/"],
    "score": ["score", "missing.jsonl"],
    "probe": ["probe", "missing.jsonl", "--model", "missing-model/"],
    "export": ["export", "missing-run", "--output", "export-out"],
    "opus100": ["data", "opus100", "--pair", "en-kk", "--data-dir", "missing-dir", "-o", "o.jsonl"],
    "flores200": ["data", "flores200", "--lang", "kk", "--data-dir", "missing-dir", "-o", "o.jsonl"],
    "file": ["data", "file", "missing.jsonl", "-o", "o.jsonl"],
    "languages": ["languages"],
}
NUMBERS = ["0", "-1", "99999999999999999999999", "-99999999999999999999999", "nan", "inf", "-inf", "1e309", ""]
TEXTS = ["", "\x01\x07\x1b[2J\n", "../fuzz-escape/x", "/dev/null/x", "x" * 5000, "\udcff\udcfe.jsonl",
         "-", "a$(touch CANARY)`touch CANARY`;"]


def values_for(cls: type, f) -> list[str]:
    hint, _ = strip_optional(spec_of(f).cli_type or type_hints(cls)[f.name])
    if hint is bool:
        return []
    if hint in (int, float):
        return NUMBERS
    if typing.get_origin(hint) is typing.Literal:
        return ["", "nope", "\udcff"]
    return TEXTS + ["nan", ",,", "a=1e309", "=", "x=nan"]


def cases(full: bool):
    """Every field of every command; `full`: with every value of its kind (slow), else one of them, a different
    one for each field in turn (so that most values are tried on some field of each command)."""
    for command, cls in REGISTRY.items():
        assert command in COMMANDS, f"the fuzz test does not know how to reach {command}: add it to COMMANDS"
        for index, f in enumerate(option_fields(cls)):
            values = values_for(cls, f)
            if not full and values:
                values = [values[index % len(values)]]
            for value in values:
                yield pytest.param(command, flag_of(f), value, id=f"{command}-{f.name}-{value[:12]!a}",
                                   marks=[pytest.mark.slow] if full else [])


# the commands that are not a stage (no options dataclass): their base command lines, every option fuzzed from
# the click parameters instead
OTHER_COMMANDS = {
    "experiment plan": ["experiment", "plan", "missing.yaml"],
    "experiment run": ["experiment", "run", "missing.yaml"],
    "experiment status": ["experiment", "status", "missing.yaml"],
    "experiment report": ["experiment", "report", "missing.yaml"],
    "experiment concat": ["experiment", "concat", "missing.jsonl", "-o", "c.jsonl"],
    "demo run": ["demo", "run", "--show-config"],  # never the demo itself
    "demo toy-data": ["demo", "toy-data", "-o", "toy", "--seen", "1", "--unseen", "1", "--dev", "1", "--test", "1"],
    "demo toy-model": ["demo", "toy-model", "--data", "missing", "-o", "model"],
    "demo toy-comet": ["demo", "toy-comet", "--data", "missing", "-o", "comet"],
}


def other_cases(full: bool):
    from aligninstruct_cli.docgen import leaf_commands

    for name, command in sorted(leaf_commands().items()):
        if name.split()[-1] in REGISTRY or name == "languages":
            continue
        assert name in OTHER_COMMANDS, f"the fuzz test does not know how to reach `ait {name}`"
        for index, param in enumerate(command.params):
            if param.param_type_name != "option" or param.is_flag or param.opts[0] == "--help":
                continue
            hint, _ = strip_optional(param.type_descriptor.annotation)
            values = NUMBERS if hint in (int, float) else TEXTS
            for value in values if full else values[index % len(values)::4]:
                yield pytest.param(name, param.opts[0], value, id=f"{name}-{param.opts[0]}-{value[:12]!a}",
                                   marks=[pytest.mark.slow] if full else [])


def test_every_command_is_covered():
    from aligninstruct_cli.docgen import leaf_commands

    assert set(COMMANDS) == set(REGISTRY)
    stages = {name for name in leaf_commands() if name.split()[-1] in REGISTRY}
    assert set(leaf_commands()) == stages | set(OTHER_COMMANDS)


@pytest.mark.parametrize("command, flag, value", list(other_cases(full=False)))
def test_extreme_values_for_the_other_commands_end_in_a_message_not_a_traceback(workdir, monkeypatch, command,
                                                                                   flag, value):
    check_value(workdir, monkeypatch, OTHER_COMMANDS[command], flag, value)


@pytest.mark.parametrize("command, flag, value", [
    c for c in other_cases(full=True) if c.values not in {q.values for q in other_cases(full=False)}])
def test_every_extreme_value_for_the_other_commands_ends_in_a_message(workdir, monkeypatch, command, flag, value):
    check_value(workdir, monkeypatch, OTHER_COMMANDS[command], flag, value)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("command, flag, value", list(cases(full=False)))
def test_extreme_option_values_end_in_a_message_not_a_traceback(workdir, monkeypatch, command, flag, value):
    check_value(workdir, monkeypatch, COMMANDS[command], flag, value)


@pytest.mark.parametrize("command, flag, value", [
    c for c in cases(full=True) if c.values not in {q.values for q in cases(full=False)}])
def test_every_extreme_option_value_ends_in_a_message_not_a_traceback(workdir, monkeypatch, command, flag, value):
    check_value(workdir, monkeypatch, COMMANDS[command], flag, value)


def check_value(workdir, monkeypatch, base: list[str], flag: str, value: str) -> None:
    """`base` with `flag value` (replacing the value the base command line gives) ends in exit 0, 1 or 2, never a
    traceback, and runs nothing a value holds."""
    monkeypatch.chdir(workdir)
    args = list(base)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output
    assert not (workdir / "CANARY").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("path", ["", "\udcff\udcfe.jsonl", "/dev/null/x", ".", "x" * 5000, "/proc/version"])
def test_hostile_input_paths_end_in_a_message_not_a_traceback(workdir, monkeypatch, command, path):
    monkeypatch.chdir(workdir)
    args = list(COMMANDS[command])
    if "missing.jsonl" in args:
        args[args.index("missing.jsonl")] = path
    elif "a=missing.jsonl" in args:
        args[args.index("a=missing.jsonl")] = f"a={path}"
    elif "missing-run" in args:
        args[args.index("missing-run")] = path
    else:
        args += ["--config", path]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))


@pytest.mark.parametrize("args, message", [
    (["mix", "a=in.jsonl", "-o", "x.jsonl", "--summary", "x.jsonl"], "-o and --summary name one file"),
    (["score", "in.jsonl", "-o", "x.json", "--sentence-level", "./x.json"], "-o and --sentence-level name one file"),
    (["align", "in.jsonl", "-o", "x", "--save-model", "x"], "-o and --save-model name one file"),
    (["align", "in.jsonl", "-o", "x/a.jsonl", "--save-model", "x"], "-o x/a.jsonl lies inside --save-model x"),
    (["train", "--model", "base", "--data", "mt=in.jsonl", "--output", "base"], "-o base is the folder of --model base"),
    (["train", "--model", "base", "--data", "mt=in.jsonl", "--output", "base/run"],
     "-o base/run is inside the folder of --model base"),
])
def test_the_outputs_of_one_command_are_distinct_and_checked_before_any_work(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"id": "1", "src_lang": "en", "tgt_lang": "kk", "src": "a", "tgt": "b"}\n')
    (tmp_path / "base").mkdir()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "in.jsonl"]  # nothing written


def test_score_reads_a_pipe_given_as_a_file_name_once(tmp_path):
    lines = [f'{{"id": "{i}", "src_lang": "en", "tgt_lang": "kk", "src": "s {i}", "tgt": "the ref {i}", '
             f'"hyp": "the ref {i}"}}\n' for i in range(20)]
    hyps = "".join(lines)
    result = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "score", "/dev/stdin", "-m", "bleu",
                             "-f", "json"], input=hyps, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout)["n_segments"] == 20
    (tmp_path / "sys.jsonl").write_text(hyps)
    result = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "score", "sys.jsonl", "--baseline",
                             "/dev/stdin", "-m", "bleu", "-f", "json", "--bootstrap-samples", "10"], input=hyps,
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_segments"] == 20
    # plain text with two references, one of them the pipe (sacrebleu's nrefs:2)
    (tmp_path / "hyp.txt").write_text("the cat sat on the red mat\n")
    (tmp_path / "ref2.txt").write_text("a cat sat\n")
    result = subprocess.run([sys.executable, "-m", "aligninstruct_cli", "score", "hyp.txt", "--refs", "/dev/stdin",
                             "--refs", "ref2.txt", "-tok", "13a", "-m", "bleu", "-f", "json"], input="the cat sat on the red mat\n",
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    bleu = report["systems"][0]["directions"]
    assert [v["bleu"]["signature"].split("|")[0] for v in bleu.values()] == ["nrefs:2"]
    assert [round(v["bleu"]["score"], 2) for v in bleu.values()] == [100.0]


def test_a_non_utf8_file_name_in_an_error_is_shown_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"\xff\xfe.jsonl")
    result = runner.invoke(app, ["build", name])
    assert result.exit_code == 2 and "\\udcff" in result.output


def fake_adapter(folder: Path, *, cut: int = 0) -> Path:
    """An adapter folder as PEFT writes it (safetensors' 0600 weights), `cut` bytes short of whole."""
    import json

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "some/model",
                                                             "peft_type": "LORA"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    data = len(header).to_bytes(8, "little") + header + bytes(16)
    (folder / "adapter_model.safetensors").write_bytes(data[:len(data) - cut])
    (folder / "adapter_model.safetensors").chmod(0o600)
    return folder


def test_export_respects_the_umask_and_refuses_a_truncated_adapter_or_a_linked_output(tmp_path):
    old = os.umask(0o022)
    try:
        result = runner.invoke(app, ["export", str(fake_adapter(tmp_path / "a")), "--adapter-only",
                                     "-o", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
        assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}["adapter_model.safetensors"] \
            == 0o644
    finally:
        os.umask(old)
    result = runner.invoke(app, ["export", str(fake_adapter(tmp_path / "cut", cut=5)), "--adapter-only",
                                 "-o", str(tmp_path / "out2")])
    assert result.exit_code == 2
    assert "adapter_model.safetensors: incomplete safetensors file: its tensors need" in result.output
    assert not (tmp_path / "out2").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    result = runner.invoke(app, ["export", str(tmp_path / "a"), "--adapter-only", "-o", str(tmp_path / "link")])
    assert result.exit_code == 2 and "is a symlink" in result.output


@pytest.mark.parametrize("args, message", [
    (["mix", "a=in.jsonl", "--weight", "a=1e309", "-o", "o.jsonl"], "weight '1e309' is too large"),
    (["mix", "a=in.jsonl", "--seed", str(2**64), "-o", "o.jsonl"], "--seed is too large (20 digits; at most 2^63-1)"),
])
def test_numbers_beyond_any_use_are_refused(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"id": "1", "objective": "mt", "src_lang": "en", "tgt_lang": "kk", '
                                       '"input": "a", "output": "b", "source_id": "1"}\n')
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.jsonl").exists()

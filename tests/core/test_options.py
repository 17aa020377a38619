"""One definition per option: every command's options come from its dataclass (defaults, choices, ranges),
config files fill the same dataclass with flags winning, and errors name the flag or the config key."""

from __future__ import annotations

import json
import typing

import pytest
from typer.testing import CliRunner

from aligninstruct_cli.cli import app
from aligninstruct_cli.registry import STAGE_OPTIONS as REGISTRY
from aligninstruct_cli.docgen import leaf_commands
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.instructions.objectives import BuildOptions
from aligninstruct_cli.options import (OptionError, choices_of, default_of, has_default, option_fields, spec_of,
                                       type_hints)
from conftest import flat, read_jsonl, write_jsonl

runner = CliRunner()
STAGES = ("align", "build-instructions", "mix", "train", "translate", "score", "probe")


COMMANDS = leaf_commands()
DERIVED = sorted(name for name in COMMANDS if name.split()[-1] in REGISTRY)


def test_every_stage_has_an_options_dataclass():
    assert set(STAGES) <= set(REGISTRY), sorted(set(STAGES) - set(REGISTRY))


@pytest.mark.parametrize("command_name", DERIVED)
def test_typer_options_equal_their_dataclass_fields(command_name):
    """Each option's default, choices and range are the dataclass field's: defined in one place."""
    cls = REGISTRY[command_name.split()[-1]]
    params = {p.name: p for p in COMMANDS[command_name].params}
    hints = type_hints(cls)
    for f in option_fields(cls):
        spec = spec_of(f)
        param = params[f.name]
        plain = isinstance(default_of(f), (str, int, float, bool))
        if has_default(f) and plain:
            assert param.default == default_of(f), f"{command_name} {param.opts}: default differs"
        else:  # required, or a list/mapping the command line spells as text: the dataclass gives it
            assert param.default is None, f"{command_name} {param.opts}: the CLI must not type a default"
        choices = choices_of(hints[f.name])
        if choices and spec.cli_type is None:  # (a cli_type takes text that `parse` maps, e.g. old spellings)
            assert _cli_choices(param) == tuple(choices), f"{command_name} {param.opts}"
        if spec.min is not None and not (spec.min_open or spec.max_open):
            assert _cli_bound(param, "min") == spec.min, f"{command_name} {param.opts}: range differs"
        if spec.max is not None and not (spec.min_open or spec.max_open):
            assert _cli_bound(param, "max") == spec.max, f"{command_name} {param.opts}: range differs"


def _cli_choices(param) -> tuple:
    """The choices Typer enforces (typer 0.29 keeps the annotation; older ones a click Choice type)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return tuple(choices_of(descriptor.annotation) or ())
    return tuple(param.type.choices)


def _cli_bound(param, which: str):
    return getattr(param, which) if hasattr(param, which) else getattr(param.type, which)


def test_library_errors_name_fields_not_flags():
    with pytest.raises(OptionError) as err:
        BuildOptions(max_hints=0)
    assert str(err.value) == "max_hints must be at least 1, not 0"
    with pytest.raises(OptionError, match="objective must be one of mt, align"):
        BuildOptions(objective="nope")
    with pytest.raises(OptionError, match="seed must be an integer, not 'x'"):
        BuildOptions(seed="x")


@pytest.fixture
def parallel(tmp_path):
    return write_jsonl(tmp_path / "p.jsonl", [
        {"id": i, "src_lang": "en", "tgt_lang": "kk", "src": f"hello world {i}", "tgt": f"сәлем әлем {i}"}
        for i in range(3)])


def _build(*args):
    return runner.invoke(app, ["build", *map(str, args)])


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "objective: mono-full\ndirection: en-xx\n"),
    (".json", json.dumps({"objective": "mono-full", "direction": "en-xx"})),
    (".toml", 'objective = "mono-full"\ndirection = "en-xx"\n'),
])
def test_config_file_fills_the_options(parallel, tmp_path, suffix, text):
    config = tmp_path / f"c{suffix}"
    config.write_text(text, encoding="utf-8")
    res = _build(parallel, "--config", config)
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["objective"] for line in res.stdout.splitlines()} == {"mono-full"}


def test_flags_win_over_the_config_and_defaults_do_not(parallel, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("objective: mono-full\ndirection: en-xx\nseed: 7\n", encoding="utf-8")
    res = _build(parallel, "--config", config, "--objective", "mt")
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["objective"] for r in out} == {"mt"}  # the flag won
    assert {(r["src_lang"], r["tgt_lang"]) for r in out} == {("en", "kk")}  # direction en-xx from the file
    # a flag at its default value does not undo the file: --print-config shows what runs
    res = _build(parallel, "--config", config, "--print-config")
    assert res.exit_code == 0
    import yaml

    printed = yaml.safe_load(res.stdout)
    assert printed["objective"] == "mono-full" and printed["seed"] == 7 and printed["max_hints"] == 5


def test_print_config_reads_the_config_file_once(parallel, tmp_path, monkeypatch):
    from aligninstruct_cli import options

    reads = []
    read = options.read_config_file
    monkeypatch.setattr(options, "read_config_file", lambda path: reads.append(path) or read(path))
    config = tmp_path / "c.yaml"
    config.write_text("objective: mono-full\nseed: 7\n", encoding="utf-8")
    res = _build(parallel, "--config", config, "--print-config")
    assert res.exit_code == 0, res.output
    assert "objective: mono-full" in res.stdout and reads == [str(config)]


def test_print_config_round_trips(parallel, tmp_path):
    res = _build(parallel, "--objective", "mt", "--direction", "xx-en", "--seed", "3", "--print-config")
    config = tmp_path / "printed.yaml"
    config.write_text(res.stdout, encoding="utf-8")
    direct = _build(parallel, "--objective", "mt", "--direction", "xx-en", "--seed", "3")
    via_file = _build(parallel, "--config", config)
    assert via_file.exit_code == 0 and via_file.stdout == direct.stdout


def test_config_errors_name_the_file_and_key(parallel, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("objectiv: mt\n", encoding="utf-8")
    res = _build(parallel, "--config", config)
    assert res.exit_code == 2 and f"{config}: unknown key 'objectiv' (did you mean 'objective'?)" in flat(res.stderr)
    config.write_text("max_hints: 0\n", encoding="utf-8")
    res = _build(parallel, "--config", config)
    assert res.exit_code == 2 and f"{config}: max_hints must be at least 1, not 0" in flat(res.stderr)
    config.write_text("seed: seven\n", encoding="utf-8")
    res = _build(parallel, "--config", config)
    assert res.exit_code == 2 and "seed must be an integer, not 'seven'" in flat(res.stderr)
    config.write_text("objective: [mt\n", encoding="utf-8")
    res = _build(parallel, "--config", config)
    assert res.exit_code == 2 and f"{config}:2: malformed YAML" in flat(res.stderr)
    assert "Traceback" not in res.output
    res = _build(parallel, "--config", tmp_path / "missing.yaml")
    assert res.exit_code == 2 and "no such config file" in res.stderr


def test_cross_field_errors_name_flags_on_the_command_line(tmp_path):
    aligned = write_jsonl(tmp_path / "a.tsv", [])
    res = _build(aligned, "--objective", "align", "--input-format", "tsv", "--src-lang", "en", "--tgt-lang", "kk")
    assert res.exit_code == 2
    assert "--objective align needs aligned JSONL records (run `ait align` first), not tsv input" in flat(res.stderr)


def test_required_options_may_come_from_the_config(tmp_path):
    res = runner.invoke(app, ["data", "flores200", "--source", str(tmp_path)])
    assert res.exit_code == 2 and "missing option --lang" in res.stderr
    config = tmp_path / "f.yaml"
    config.write_text("lang: kk\nsplit: dev\nlimit: 2\n", encoding="utf-8")
    res = runner.invoke(app, ["data", "flores200", "--source", str(tmp_path), "--config", str(config)])
    assert res.exit_code == 2 and "no FLORES-200" in res.stderr  # got past the options to the data


def test_library_and_cli_give_the_same_records(parallel, tmp_path):
    from aligninstruct_cli.instructions.objectives import build_instructions
    from aligninstruct_cli.io import read_records

    lib = list(build_instructions(read_records(str(parallel), "parallel"), "mt", seed=2))
    res = _build(parallel, "--seed", "2", "-o", tmp_path / "o.jsonl")
    assert res.exit_code == 0 and read_jsonl(tmp_path / "o.jsonl") == lib


def test_option_help_texts_name_no_removed_flag():
    """Help texts are the docs' source: every flag a help text mentions exists on some command."""
    import re

    flags = {o for cmd in COMMANDS.values() for p in cmd.params for o in p.opts + p.secondary_opts}
    for name in DERIVED:
        cls = REGISTRY[name.split()[-1]]
        for f in option_fields(cls):
            spec = spec_of(f)
            for mentioned in re.findall(r"--[a-z][a-z0-9_-]+", spec.help + " " + spec.details):
                if "_" not in mentioned:  # `--num_gpus` and the like are the deepspeed launcher's
                    assert mentioned in flags, f"{name} {f.name}: help mentions unknown {mentioned}"


def test_typing_of_config_values_is_checked():
    assert typing.get_origin(type_hints(BuildOptions)["objective"]) is typing.Literal
    with pytest.raises(AitError):
        BuildOptions(pairs_per_sentence=True)  # a bool is not an int

"""An experiment config file (YAML, JSON or TOML) as a checked `Experiment`.

The stage sections (`align`, `datasets.*.build`, `datasets.*.mix`, `train`, `systems.*.train`, `translate`,
`score`, `tables.*.score`, `probe.options`, corpus `opus100:` / `flores200:` sources) take exactly the keys
of the stage's options dataclass (the keys of that command's `--config FILE`), checked here against the
dataclass and again, with their values, when the graph builds each command. Keys the experiment sets itself
(a stage's model, data, inputs and outputs) are refused with a pointer to where they belong.

Every error names the file and the key path: `paper.yaml: systems.MT+Align.curriculum: ...`, exit 2."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aligninstruct_cli import paper
from aligninstruct_cli.data_sources import FILE_DIRECTIONS
from aligninstruct_cli.demo.build import FILES
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.experiment.health import HealthOptions
from aligninstruct_cli.experiment.paths import slug
from aligninstruct_cli.experiment.seeds import expand_seeds
from aligninstruct_cli.instructions.mixing import parse_weight
from aligninstruct_cli.instructions.objectives import OBJECTIVES
from aligninstruct_cli.options import (OptionError, config_values, yaml_text, coerce, option_fields,
                                       read_config_file, type_hints)
from aligninstruct_cli.registry import EXPERIMENT_SECTIONS

# top-level key -> what it holds (docs/experiment.md's key table is checked against this)
KEYS: dict[str, str] = {
    "output": "Directory for every step's output (`steps/`), the logs (`logs/`), the tables and the report. "
              "Relative paths here and everywhere in the file (but `language_file`) are relative to the current "
              "directory. Required.",
    "languages": "The languages the per-language corpora are made for (codes), e.g. the paper's 24.",
    "language_file": "A language file (`--languages FILE` of every stage): your own codes and names; a relative "
                     "path is read from the config file's folder (a language file travels with its study).",
    "env": "Environment variables for every step (e.g. `OMP_NUM_THREADS: 1`); the plan exports them.",
    "toy": "The demo's generated toy data: keys of `ait demo toy-data` (seen, unseen, dev, test, seed).",
    "corpora": "Named parallel corpora: `{file: PATH}` (`{lang}` in the path: one file per language), "
               "`{opus100: {...}}` / `{flores200: {...}}` (`ait data` per language, its keys but pair/lang), "
               "`{toy: FILE}` (a file of the toy data); optional `languages` (a subset) and `each: pair` "
               "(flores200 between every two languages, for zero-shot tests).",
    "align": "`ait align` keys for every aligned corpus; `align_per_language` overrides them per language.",
    "align_per_language": "Language code -> `ait align` keys for that language (e.g. km: {tokenize: simple,chars}).",
    "datasets": "Named instruction data sets: `corpus`, `objective` (default: the name), `build` (`ait build` "
                "keys), `mix` (`ait mix` keys for joining the languages), `weight` (each language's share, as "
                "`ait mix --weight`), `languages` (a subset), `sample_with` (data sets whose records count "
                "towards mix.max_per_lang so that both keep the same pairs, as the paper's BLOOMZ+3).",
    "train": "`ait train` keys for every system (model, data, curriculum, val and output come from the systems).",
    "translate": "`ait translate` keys for every system (model and adapter come from the systems).",
    "test_sets": "Corpora every system translates (concatenated into one test file) and the tables score.",
    "score": "`ait score` keys for every table (baseline, names and format come from the tables).",
    "systems": "Named systems: `model` (a hub id or directory, `{system: NAME}` for another system's fully "
               "trained model, or `{toy: {seed: N}}`), `curriculum` (none: the model as it is), `data` (curriculum "
               "name -> data set; default: the names are data sets), `val` (a data set), `train` and `translate` "
               "(keys that override the top-level sections), `test_sets` (a subset), `seeds` (a list: one training "
               "per seed, the tables as mean ± sd over them; experiment/seeds.py).",
    "baseline": "The system every table compares against (paired bootstrap), unless a table names its own.",
    "tables": "Named tables: `systems` (rows, default every system but the baseline), `baseline`, `score` "
              "(`ait score` keys, e.g. layout: table1), `paper` (the published table it reproduces: `table`, "
              "`model`, `setting`, `rows`: system -> the paper's row where the name is not the row, or is not "
              "the row after a first word such as `3b `).",
    "compare_to": "`paper`: the report puts the paper's published row under each reproduced row (tables with "
                  "`paper`), with the difference, and says what cannot be compared.",
    "probe": "The layer-wise probe: `corpus`, `head` (first N pairs a language), `systems` (in order: Δ1, Δ2, "
             "...), `options` (`ait probe` keys), `plot` (true: the Δ plot in the report).",
    "health": "Thresholds of the health checks (`run` warns after each step, `--strict` fails it; the report's "
              "Health section), e.g. {min_loss_drop: 0.05, max_identical: 0.8}; see the table below.",
    "slurm": "submitit parameters for `--executor slurm`: `all` (every step) and `gpu` (training, translation, "
             "probe and score steps), e.g. {all: {slurm_partition: x}, gpu: {gpus_per_node: 8}}.",
}

# Every name that becomes part of a path or a command-line word (corpora, data sets, systems, tables, language
# codes, curriculum members): letters, digits and `_+-.`, not starting with `.` or `-`, at most 64 characters.
# So no name can leave OUTPUT (`..`, `/`), hide a file, read as an option, or carry a shell character.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,63}")
SAFE_NAME_RULE = "letters, digits and . _ + - only, not starting with . or -, at most 64 characters"
# System and table names are labels (the rows and titles of the tables, as the paper writes them: `w/o
# fine-tuning`, `MT+Align→MT`): also letters of any script, spaces, `/`, `→` and parentheses, starting with a
# letter, digit, `_` or `+`. They reach files only through `paths.slug` (`w_o_fine-tuning`: one path component),
# and two that give one file name are refused.
LABEL = re.compile(r"(?=.{1,64}\Z)[\w+](?:[\w .+\-→()/]*[\w+)])?")
LABEL_RULE = ("letters, digits, spaces and . _ + - / → ( ) only, starting with a letter, digit, _ or +, at most 64 "
              "characters")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

CORPUS_KEYS = ("file", "opus100", "flores200", "toy", "languages", "each", "direction")
DATASET_KEYS = ("corpus", "objective", "build", "mix", "weight", "languages", "sample_with")
SYSTEM_KEYS = ("model", "curriculum", "data", "val", "train", "translate", "test_sets", "seeds")
TABLE_KEYS = ("systems", "baseline", "score", "paper")
PAPER_KEYS = ("table", "model", "setting", "rows")
PROBE_KEYS = ("corpus", "head", "systems", "options", "plot")
# key -> the whole numbers it may be (the ranges of `ait demo toy-data` and `ait demo toy-model`)
TOY_KEYS = {"seen": (1, 10**7), "unseen": (1, 10**7), "dev": (1, 10**7), "test": (1, 10**7), "seed": (0, 2**63 - 1)}
TOY_MODEL_KEYS = {"seed": (0, 2**32 - 1), "vocab_size": (300, 10**6)}

# keys of a stage section that the experiment fills in itself -> where to say it instead
RESERVED = {
    "align": {"languages": "language_file"},
    "build": {"objective": "datasets.NAME.objective", "languages": "language_file"},
    "mix": {"weight": "datasets.NAME.weight", "languages": "language_file"},
    "train": {"model": "systems.NAME.model", "data": "systems.NAME.data", "curriculum": "systems.NAME.curriculum",
              "val": "systems.NAME.val", "output": "output (each system's run gets its own directory)",
              "languages": "language_file"},
    "translate": {"model": "systems.NAME.model", "adapter": "systems.NAME (its training)",
                  "languages": "language_file"},
    "score": {"baseline": "tables.NAME.baseline or baseline", "names": "the system names",
              "baseline_name": "the system names", "format": "the report (it writes markdown, TSV and JSON)",
              "languages": "language_file"},
    "probe": {"model": "systems.NAME.model", "adapter": "systems.NAME (its training)", "label": "the system names",
              "languages": "language_file"},
    "opus100": {"pair": "languages (each language is paired with English)", "languages": "language_file"},
    "flores200": {"lang": "languages", "languages": "language_file"},
}


class ConfigError(AitError):
    """A problem in an experiment config file, at a key path."""

    def __init__(self, path: str, where: str, message: str, *, hint: str | None = None):
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}", hint=hint)


@dataclass
class Corpus:
    name: str
    kind: str  # file | opus100 | flores200 | toy
    source: Any  # the path (file, toy) or the `ait data` keys
    languages: list[str]
    each: str = "language"  # or "pair"
    direction: str = "as-is"  # a file's records: as-is, reversed or both (`ait data file --direction`)


@dataclass
class Dataset:
    name: str
    corpus: str
    objective: str
    build: dict[str, Any]
    mix: dict[str, Any]
    weight: str | None
    languages: list[str] | None
    sample_with: list[str]


@dataclass
class System:
    name: str
    model: Any  # str | {"system": NAME} | {"toy": {...}}
    curriculum: Any  # as written (text or list) or None
    data: dict[str, str]  # curriculum name -> data set
    val: str | None
    train: dict[str, Any]
    translate: dict[str, Any]
    test_sets: list[str]
    seeds: list[int] | None = None  # one run per seed (expanded at load: experiment/seeds.py)


@dataclass
class Table:
    name: str
    systems: list[str]
    baseline: str | None
    score: dict[str, Any]
    paper: dict[str, Any] | None = None  # {table, model, setting, rows: {system: paper row}} (paper_rows())


@dataclass
class Probe:
    corpus: str
    head: int | None
    systems: list[str]
    options: dict[str, Any]
    plot: bool


@dataclass
class Experiment:
    path: str  # the config file, as given (error messages name it)
    output: str
    languages: list[str]
    language_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    toy: dict[str, int] | None = None
    corpora: dict[str, Corpus] = field(default_factory=dict)
    align: dict[str, Any] = field(default_factory=dict)
    align_per_language: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    translate: dict[str, Any] = field(default_factory=dict)
    test_sets: list[str] = field(default_factory=list)
    score: dict[str, Any] = field(default_factory=dict)
    systems: dict[str, System] = field(default_factory=dict)
    baseline: str | None = None
    tables: dict[str, Table] = field(default_factory=dict)
    probe: Probe | None = None
    slurm: dict[str, dict[str, Any]] = field(default_factory=dict)
    health: dict[str, float] = field(default_factory=dict)  # health-check thresholds (experiment/health.py)
    compare_to: str | None = None  # "paper"
    seed_runs: dict[str, list[str]] = field(default_factory=dict)  # seeded system -> its per-seed systems
    seed_tables: dict[str, tuple[Any, list[str]]] = field(default_factory=dict)  # table -> (as written, per seed)

    def error(self, where: str, message: str, *, hint: str | None = None) -> ConfigError:
        return ConfigError(self.path, where, message, hint=hint)


# ---------------------------------------------------------------------------------------------- helpers
class _Reader:
    def __init__(self, path: str):
        self.path = path
        self.toy_missing = True

    def fail(self, where: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(self.path, where, message, hint=hint)

    def name(self, value: Any, where: str) -> str:
        """A name that becomes part of a path (see SAFE_NAME)."""
        if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
            raise self.fail(where, f"{value!r} is not a safe name ({SAFE_NAME_RULE})")
        return value

    def named(self, value: Any, where: str, *, labels: bool = False) -> dict[str, Any]:
        """A mapping whose keys are names (corpora, data sets; with `labels`, systems and tables): each key safe,
        no two that give one file name (equal once sanitised, or but for case: a case-insensitive file system)."""
        data = self.mapping(value, where)
        seen: dict[str, str] = {}
        for key in data:
            if labels and not LABEL.fullmatch(key):
                raise self.fail(f"{where}.{key}", f"{key!r} is not a safe name ({LABEL_RULE})")
            if not labels:
                self.name(key, f"{where}.{key}")
            file_name = slug(key).casefold()
            if file_name in seen:
                raise self.fail(f"{where}.{key}", f"{key!r} and {seen[file_name]!r} give one file name "
                                f"({slug(key)}): rename one")
            seen[file_name] = key
        return data

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"the key {key!r} is {_kind(key)}; keys are text")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.unknown(where, key, allowed)
        return {str(k): v for k, v in value.items()}

    def unknown(self, where: str, key: Any, known: Any) -> ConfigError:
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        return self.fail(where, f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                         hint=f"the keys here: {', '.join(sorted(known))}")

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected text, not {_kind(value)}")
        if "\0" in value:
            raise self.fail(where, "the text holds a NUL character")
        return value.strip()

    def strings(self, value: Any, where: str) -> list[str]:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(where, f"expected a list of names, not {_kind(value)}")
        return [v.strip() for v in value]

    def whole(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(where, f"expected a whole number from {low:,} to {high:,}, not {_kind(value)}")
        return value

    def languages(self, value: Any, where: str) -> list[str]:
        """Language codes (they name files and steps: safe names)."""
        codes = self.strings(value, where)
        for k, code in enumerate(codes):
            self.name(code, f"{where}[{k}]")
        return codes

    def stage(self, value: Any, where: str, section: str) -> dict[str, Any]:
        """A stage section: the keys of the stage's options dataclass, each value of the field's type (what the
        field's own parser accepts is checked when the graph builds the command)."""
        data = self.mapping(value, where)
        cls = EXPERIMENT_SECTIONS[section]
        fields = {f.name: f for f in option_fields(cls)}
        hints = type_hints(cls)
        out: dict[str, Any] = {}
        for key, item in data.items():
            name = key.replace("-", "_")
            if name in RESERVED.get(section, {}):
                raise self.fail(f"{where}.{key}", f"set by the experiment; use {RESERVED[section][name]}")
            if name not in fields:
                raise self.unknown(where, key, [k for k in fields if k not in RESERVED.get(section, {})])
            if section == "score" and name == "comet_model" and isinstance(item, dict):
                item = self.mapping(item, f"{where}.{key}", ("toy",))  # {toy: {}}: the demo's tiny COMET
                if self.toy_missing:
                    raise self.fail(f"{where}.{key}.toy", "a toy COMET needs the `toy` section")
            elif fields[name].metadata["ait"].parse is None:
                try:
                    item = coerce(item, hints[name], name)
                except OptionError as exc:
                    raise self.fail(f"{where}.{key}", exc.render(lambda n: "the value")) from None
            out[name] = item
        return out


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__) + (
        f" ({value!r})" if isinstance(value, (str, int, float, bool)) else "")


# ---------------------------------------------------------------------------------------------- loading
def apply_overrides(raw: dict[str, Any], overrides: list[str], path: str) -> dict[str, Any]:
    """`KEY.PATH=VALUE` (`--set`; VALUE read as YAML) into the config mapping, e.g.
    systems.MTInstruct.train.epochs=1."""
    raw = dict(raw)
    for item in overrides:
        dotted, sep, text = item.partition("=")
        if not sep or not dotted.strip():
            raise AitError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.epochs=1")
        try:
            value = yaml_text(text, f"--set {dotted.strip()}")
        except yaml.YAMLError as exc:
            raise AitError(f"--set {item!r}: the value is not YAML: {exc}") from None
        node = raw
        parts = dotted.strip().split(".")
        for k, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(path, ".".join(parts[:k + 1]), f"--set {item!r}: not a mapping")
            node[part] = child = dict(child)  # a copy: a YAML anchor may share this mapping with other keys
            node = child
        node[parts[-1]] = value
    return raw


def load_experiment(path: str | Path, *, output: str | None = None, overrides: list[str] = ()) -> Experiment:
    """Read and check an experiment config; `output` overrides its `output` key, `overrides` (KEY.PATH=VALUE)
    any key."""
    path = str(path)
    raw = apply_overrides(read_config_file(path), list(overrides), path)
    r = _Reader(path)
    for key in raw:
        if key not in KEYS:
            raise r.unknown("", key, KEYS)
    out_dir = output or raw.get("output")
    if not out_dir:
        raise r.fail("output", "missing: the directory for the experiment's outputs")
    exp = Experiment(path=path, output=r.string(out_dir, "output"),
                     languages=r.languages(raw.get("languages", []), "languages"))
    if raw.get("language_file") is not None:  # a relative path is read from the config's folder (as the demo's)
        exp.language_file = str(Path(path).parent / r.string(raw["language_file"], "language_file"))
        if not Path(exp.language_file).is_file():
            raise r.fail("language_file", f"{exp.language_file}: no such file")
    exp.env = _read_env(r, r.mapping(raw.get("env"), "env"))
    if "toy" in raw:
        toy = r.mapping(raw["toy"], "toy", tuple(TOY_KEYS))
        for key, value in toy.items():
            r.whole(value, f"toy.{key}", *TOY_KEYS[key])
        exp.toy = toy
        r.toy_missing = False
    _read_corpora(exp, r, r.named(raw.get("corpora"), "corpora"))
    exp.align = r.stage(raw.get("align"), "align", "align")
    for lang, section in r.named(raw.get("align_per_language"), "align_per_language").items():
        exp.align_per_language[lang] = r.stage(section, f"align_per_language.{lang}", "align")
    _read_datasets(exp, r, r.named(raw.get("datasets"), "datasets"))
    exp.train = r.stage(raw.get("train"), "train", "train")
    exp.translate = r.stage(raw.get("translate"), "translate", "translate")
    exp.score = r.stage(raw.get("score"), "score", "score")
    exp.test_sets = r.strings(raw.get("test_sets", []), "test_sets")
    for k, name in enumerate(exp.test_sets):
        if name not in exp.corpora:
            raise r.fail(f"test_sets[{k}]", f"unknown corpus {name!r}", hint=f"the corpora: {', '.join(exp.corpora)}")
    _read_systems(exp, r, r.named(raw.get("systems"), "systems", labels=True))
    if raw.get("baseline") is not None:
        exp.baseline = r.string(raw["baseline"], "baseline")
        if exp.baseline not in exp.systems:
            raise r.fail("baseline", f"unknown system {exp.baseline!r}", hint=f"the systems: {', '.join(exp.systems)}")
    _read_tables(exp, r, r.named(raw.get("tables"), "tables", labels=True))
    if raw.get("probe") is not None:
        _read_probe(exp, r, r.mapping(raw["probe"], "probe", PROBE_KEYS))
    slurm = r.mapping(raw.get("slurm"), "slurm", ("all", "gpu"))
    exp.slurm = {k: r.mapping(v, f"slurm.{k}") for k, v in slurm.items()}
    if raw.get("compare_to") is not None:
        if raw["compare_to"] != "paper":
            raise r.fail("compare_to", f"expected paper (the published scores), not {_kind(raw['compare_to'])}")
        exp.compare_to = "paper"
    expand_seeds(exp)
    exp.health = read_health_section(raw.get("health"), path)
    return exp


def read_health_section(value: Any, path: str) -> dict[str, Any]:
    """The experiment config's `health:` section, checked (unknown keys, types, ranges): {threshold: value}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, "health", "expected a mapping of thresholds, e.g. {min_loss_drop: 0.05}")
    try:
        values = config_values(value, HealthOptions, f"{path}: health")
        HealthOptions(**values)
    except OptionError as exc:
        raise ConfigError(path, "", exc.render(lambda name: f"health.{name}")) from None
    return values


def _read_env(r: _Reader, env: dict[str, Any]) -> dict[str, str]:
    """Environment variables: names a shell accepts, values text, numbers or true/false (no NUL: exec refuses
    it)."""
    out = {}
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise r.fail(f"env.{key}", "not a variable name (letters, digits and _, not starting with a digit)")
        if not isinstance(value, (str, int, float, bool)):
            raise r.fail(f"env.{key}", f"expected text or a number, not {_kind(value)}")
        if "\0" in str(value):
            raise r.fail(f"env.{key}", "the value holds a NUL character")
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)  # as YAML spells it
    return out


def _read_corpora(exp: Experiment, r: _Reader, corpora: dict[str, Any]) -> None:
    for name, spec in corpora.items():
        where = f"corpora.{name}"
        spec = r.mapping(spec, where, CORPUS_KEYS)
        kinds = [k for k in ("file", "opus100", "flores200", "toy") if k in spec]
        if len(kinds) != 1:
            raise r.fail(where, "give exactly one source: file, opus100, flores200 or toy")
        kind = kinds[0]
        languages = r.languages(spec["languages"], f"{where}.languages") if "languages" in spec else list(exp.languages)
        each = spec.get("each", "language")
        if each not in ("language", "pair"):
            raise r.fail(f"{where}.each", f"expected language or pair, not {_kind(each)}")
        if each == "pair" and kind not in ("flores200", "opus100"):
            raise r.fail(f"{where}.each", "pair needs a flores200 source (every two languages, paired by sentence) "
                         "or opus100 (its zero-shot test pairs)")
        direction = spec.get("direction", "as-is")
        if "direction" in spec:
            if kind != "file":
                raise r.fail(f"{where}.direction", f"only for a file: source (a {kind} source has its own "
                             f"`direction` key inside {kind}:)")
            if direction not in FILE_DIRECTIONS:
                raise r.fail(f"{where}.direction", f"expected one of {', '.join(FILE_DIRECTIONS)}, not {_kind(direction)}")
        if kind == "file":
            source: Any = r.string(spec["file"], f"{where}.file")
            files = [source.replace("{lang}", lang) for lang in languages] if "{lang}" in source else [source]
            for file in files:
                if not Path(file).is_file():
                    raise r.fail(f"{where}.file", f"{file}: no such file")
        elif kind == "toy":
            if exp.toy is None:
                raise r.fail(f"{where}.toy", "a toy corpus needs the `toy` section (the generated data)")
            source = r.string(spec["toy"], f"{where}.toy")
            if source.removesuffix(".jsonl") + ".jsonl" not in FILES:
                raise r.fail(f"{where}.toy", f"unknown toy file {source!r}",
                             hint="one of " + ", ".join(f.removesuffix(".jsonl") for f in FILES))
            source = source.removesuffix(".jsonl") + ".jsonl"
        else:
            source = r.stage(spec[kind], f"{where}.{kind}", kind)
        if kind in ("opus100", "flores200", "file") and not languages and (kind != "file" or "{lang}" in spec["file"]):
            raise r.fail(f"{where}.languages", "no languages: give `languages` at the top or here")
        exp.corpora[name] = Corpus(name, kind, source, languages, each, direction)


def _read_datasets(exp: Experiment, r: _Reader, datasets: dict[str, Any]) -> None:
    for name, spec in datasets.items():
        where = f"datasets.{name}"
        spec = r.mapping(spec, where, DATASET_KEYS)
        corpus = r.string(spec.get("corpus"), f"{where}.corpus")
        if corpus not in exp.corpora:
            raise r.fail(f"{where}.corpus", f"unknown corpus {corpus!r}", hint=f"the corpora: {', '.join(exp.corpora)}")
        objective = spec.get("objective", name)
        if objective not in OBJECTIVES:
            raise r.fail(f"{where}.objective" if "objective" in spec else where,
                         f"unknown objective {objective!r} (give `objective`: one of {', '.join(OBJECTIVES)})")
        weight = spec.get("weight")
        if weight is not None:
            if isinstance(weight, bool) or not isinstance(weight, (int, float, str)):
                raise r.fail(f"{where}.weight", f"expected a number such as 0.5 or 1/3, not {_kind(weight)}")
            try:
                parse_weight(str(weight))
            except (AitError, ValueError) as exc:
                raise r.fail(f"{where}.weight", str(exc)) from None
            weight = str(weight)
        languages = r.languages(spec["languages"], f"{where}.languages") if "languages" in spec else None
        for lang in languages or ():
            if lang not in corpus_units(exp.corpora[corpus]):
                raise r.fail(f"{where}.languages", f"{lang!r} is not among corpus {corpus!r}'s languages "
                             f"({', '.join(corpus_units(exp.corpora[corpus]))})")
        exp.datasets[name] = Dataset(name, corpus, objective, r.stage(spec.get("build"), f"{where}.build", "build"),
                                     r.stage(spec.get("mix"), f"{where}.mix", "mix"), weight, languages,
                                     r.strings(spec.get("sample_with", []), f"{where}.sample_with"))
    for name, dataset in exp.datasets.items():
        for k, other in enumerate(dataset.sample_with):
            if other not in exp.datasets or other == name:
                raise r.fail(f"datasets.{name}.sample_with[{k}]", f"unknown data set {other!r}")


def corpus_units(corpus: Corpus) -> list[str]:
    """A corpus's parts: one per language, every two languages (`each: pair`), or one file."""
    if corpus.kind == "toy" or (corpus.kind == "file" and "{lang}" not in corpus.source):
        return ["+".join(corpus.languages) or "all"]
    if corpus.each == "pair":
        return [f"{a}-{b}" for i, a in enumerate(corpus.languages) for b in corpus.languages[i + 1:]]
    return list(corpus.languages)


def _read_systems(exp: Experiment, r: _Reader, systems: dict[str, Any]) -> None:
    for name, spec in systems.items():
        where = f"systems.{name}"
        spec = r.mapping(spec, where, SYSTEM_KEYS)
        model = spec.get("model")
        if isinstance(model, dict):
            model = r.mapping(model, f"{where}.model", ("system", "toy"))
            if len(model) != 1:
                raise r.fail(f"{where}.model", "give one of system: NAME or toy: {seed: N}")
            if "toy" in model:
                if exp.toy is None:
                    raise r.fail(f"{where}.model.toy", "a toy model needs the `toy` section (its tokenizer is "
                                 "trained on the toy data)")
                toy = r.mapping(model["toy"], f"{where}.model.toy", tuple(TOY_MODEL_KEYS))
                for key, value in toy.items():
                    r.whole(value, f"{where}.model.toy.{key}", *TOY_MODEL_KEYS[key])
                model = {"toy": toy}
            else:
                model = {"system": r.string(model["system"], f"{where}.model.system")}
        elif model is None:
            raise r.fail(f"{where}.model", "missing: a hub id or directory, {system: NAME} or {toy: {}}")
        else:
            model = r.string(model, f"{where}.model")
        curriculum = spec.get("curriculum")
        if curriculum is not None and not isinstance(curriculum, (str, list)):
            raise r.fail(f"{where}.curriculum", f"expected text such as mt+align,mt or a list, not {_kind(curriculum)}")
        data = {k: r.string(v, f"{where}.data.{k}") for k, v in r.named(spec.get("data"), f"{where}.data").items()}
        val = r.string(spec["val"], f"{where}.val") if spec.get("val") is not None else None
        for key, dataset in list(data.items()) + ([("val", val)] if val else []):
            if dataset not in exp.datasets:
                raise r.fail(f"{where}.{'val' if key == 'val' and dataset == val else 'data.' + key}",
                             f"unknown data set {dataset!r}", hint=f"the data sets: {', '.join(exp.datasets)}")
        test_sets = r.strings(spec["test_sets"], f"{where}.test_sets") if "test_sets" in spec else list(exp.test_sets)
        for k, test in enumerate(test_sets):
            if test not in exp.test_sets:
                raise r.fail(f"{where}.test_sets[{k}]", f"{test!r} is not one of the experiment's test_sets")
        seeds = spec.get("seeds")
        if seeds is not None:
            if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
                    or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
                raise r.fail(f"{where}.seeds", f"expected a list of different whole numbers ≥ 0, not {_kind(seeds)}")
            if curriculum is None:
                raise r.fail(f"{where}.seeds", "an untrained system has nothing the seed changes (give a curriculum)")
        exp.systems[name] = System(name, model, curriculum, data, val,
                                   r.stage(spec.get("train"), f"{where}.train", "train"),
                                   r.stage(spec.get("translate"), f"{where}.translate", "translate"), test_sets,
                                   seeds)
    for name, system in exp.systems.items():
        other = system.model.get("system") if isinstance(system.model, dict) else None
        if other is not None:
            if other not in exp.systems or other == name:
                raise r.fail(f"systems.{name}.model.system", f"unknown system {other!r}")
            if exp.systems[other].curriculum is None or not {**exp.train, **exp.systems[other].train}.get("full"):
                raise r.fail(f"systems.{name}.model.system", f"system {other!r} must train the whole model "
                             "(a curriculum and train: {full: true}) to be a base model")


def _read_tables(exp: Experiment, r: _Reader, tables: dict[str, Any]) -> None:
    for name, spec in tables.items():
        where = f"tables.{name}"
        spec = r.mapping(spec, where, TABLE_KEYS)
        baseline = r.string(spec["baseline"], f"{where}.baseline") if spec.get("baseline") else exp.baseline
        if baseline is not None and baseline not in exp.systems:
            raise r.fail(f"{where}.baseline", f"unknown system {baseline!r}")
        rows = (r.strings(spec["systems"], f"{where}.systems") if "systems" in spec
                else [s for s in exp.systems if s != baseline])
        for k, system in enumerate(rows):
            if system not in exp.systems:
                raise r.fail(f"{where}.systems[{k}]", f"unknown system {system!r}",
                             hint=f"the systems: {', '.join(exp.systems)}")
        if not rows:
            raise r.fail(f"{where}.systems", "no systems to score")
        if not exp.test_sets:
            raise r.fail("test_sets", "tables need test_sets (the corpora the systems translate)")
        exp.tables[name] = Table(name, rows, baseline, r.stage(spec.get("score"), f"{where}.score", "score"),
                                 _read_paper(r, spec.get("paper"), f"{where}.paper", [baseline, *rows] if baseline else rows))


def _read_paper(r: _Reader, value: Any, where: str, systems: list[str]) -> dict[str, Any] | None:
    """A table's `paper` section: which published table (and model, setting) it reproduces; each system's row."""
    if value is None:
        return None
    spec = r.mapping(value, where, PAPER_KEYS)
    table = str(spec.get("table", "")).strip()
    tables = list(dict.fromkeys(s.table for s in paper.paper_scores()))
    if table not in tables:
        raise r.fail(f"{where}.table", f"the paper has no scores for table {table!r}", hint=f"tables: {', '.join(tables)}")
    narrow = {}
    for key in ("model", "setting"):
        if spec.get(key) is not None:
            known = sorted({getattr(s, key) for s in paper.paper_table(table)} - {""})
            narrow[key] = r.string(spec[key], f"{where}.{key}")
            if narrow[key] not in known:
                raise r.fail(f"{where}.{key}", f"table {table} has no {key} {narrow[key]!r}", hint=f"its {key}s: {', '.join(known)}")
    rows = {k: r.string(v, f"{where}.rows.{k}") for k, v in r.mapping(spec.get("rows"), f"{where}.rows").items()}
    known_rows = paper.paper_systems(table, **narrow)
    for system, row in rows.items():
        if system not in systems:
            raise r.fail(f"{where}.rows.{system}", "not one of the table's systems")
        if row not in known_rows:
            raise r.fail(f"{where}.rows.{system}", f"table {table} has no row {row!r}", hint=f"its rows: {', '.join(known_rows)}")
    return {"table": table, **narrow, "rows": rows}


def _read_probe(exp: Experiment, r: _Reader, spec: dict[str, Any]) -> None:
    corpus = r.string(spec.get("corpus"), "probe.corpus")
    if corpus not in exp.corpora:
        raise r.fail("probe.corpus", f"unknown corpus {corpus!r}")
    head = spec.get("head")
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or head < 1):
        raise r.fail("probe.head", f"expected a whole number ≥ 1, not {_kind(head)}")
    systems = r.strings(spec.get("systems", []), "probe.systems")
    for k, system in enumerate(systems):
        if system not in exp.systems:
            raise r.fail(f"probe.systems[{k}]", f"unknown system {system!r}")
    if not systems:
        raise r.fail("probe.systems", "name the systems to probe (in order: Δ1 = 2nd − 1st, ...)")
    plot = spec.get("plot", True)
    if not isinstance(plot, bool):
        raise r.fail("probe.plot", f"expected true or false, not {_kind(plot)}")
    exp.probe = Probe(corpus, head, systems, r.stage(spec.get("options"), "probe.options", "probe"), plot)

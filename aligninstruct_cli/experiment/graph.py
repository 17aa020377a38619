"""An `Experiment` as a graph of ordinary `ait` stage commands.

Each step is one command line, as a user would type it (`ait build DATA --objective mt -o OUT`), with
its inputs (other steps' outputs, or files of yours) and one output directory. A step's key is a hash of
its command line, with every input step written as that step's key and every input file of yours as its
content hash; the output directory is `OUTPUT/steps/<kind>/<key>`. So editing one setting changes the keys
of that step and of what depends on it, nothing else; and two systems that need the same step (same
command, same inputs) get the same key, and share it.

A stage section's values become flags through the stage's options dataclass: the same field names, the
same parsers (`options.option`), so a config key and a `--config FILE` key of that command are the same
thing. Options that do not change what a training computes (how it is launched, how often it logs) are
left out of its key, so that relaunching on another machine resumes the same run.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import shlex
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aligninstruct_cli.experiment.paths import slug
from aligninstruct_cli.experiment.study_config import Experiment, System, corpus_units
from aligninstruct_cli.instructions.objectives import INPUT_KIND
from aligninstruct_cli.options import (OptionError, default_of, flag_of, has_default, option_fields, option_ref,
                                       spec_of, strip_optional, type_hints)
from aligninstruct_cli.registry import EXPERIMENT_SECTIONS
from aligninstruct_cli.training.train_options import parse_curriculum
from aligninstruct_cli.training.launch import LAUNCH_ONLY, RESULT_NEUTRAL

KEY_VERSION = 1  # bump when the way steps are made changes what they compute
KEY_LENGTH = 16
# The order `plan` prints the kinds in (a step still comes after what it reads).
KIND_ORDER = ("toy-data", "toy-model", "toy-comet", "data", "align", "build", "mix", "cat", "train", "translate",
              "score", "probe")
DEVICE_KINDS = ("train", "translate", "probe", "score")  # they use the GPU(s): one at a time
REF = re.compile(r"@\{([0-9a-f]+|out)\}")
AIT = "ait"


@dataclass
class Step:
    key: str
    kind: str
    names: list[str]  # every name the experiment gives it ("train/MT+Align", ...): shared steps have several
    argv: list[str]  # tokens; @{KEY} = that step's directory, @{out} = this one's
    inputs: list[str]  # keys of the steps it reads
    files: dict[str, str] = field(default_factory=dict)  # your files it reads -> content hash
    resumable: bool = False  # runs in place and continues after a kill (train, translate)
    main: str = ""  # its main output, relative to its directory ("" = the directory)

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def device(self) -> bool:
        return self.kind in DEVICE_KINDS


class Graph:
    """The steps, in an order where every step comes after its inputs (the plan's order)."""

    def __init__(self, exp: Experiment, steps: dict[str, Step]):
        self.exp = exp
        self.steps = steps
        self.order = _ordered(steps)
        self.by_name = {name: key for key, step in steps.items() for name in step.names}
        self.readers: dict[str, list[str]] = {}  # key -> the steps that read its output directly
        for step in steps.values():
            for k in step.inputs:
                self.readers.setdefault(k, []).append(step.key)

    def __iter__(self):
        return (self.steps[key] for key in self.order)

    def __len__(self) -> int:
        return len(self.steps)

    def step(self, name: str) -> Step:
        return self.steps[self.by_name[name]]

    def directory(self, key: str) -> Path:
        return Path(self.exp.output) / "steps" / self.steps[key].kind / key

    def output(self, key: str) -> Path:
        step = self.steps[key]
        return self.directory(key) / step.main if step.main else self.directory(key)

    def resolve(self, token: str, key: str) -> str:
        return REF.sub(lambda m: str(self.directory(key if m.group(1) == "out" else m.group(1))), token)

    def argv(self, key: str) -> list[str]:
        """The step's command line with real paths."""
        return [self.resolve(token, key) for token in self.steps[key].argv]

    def shell(self, key: str) -> str:
        """The step's command line as one line of shell, every word quoted (the plan; the runner runs the argv
        list itself, without a shell)."""
        return " ".join(shlex.quote(t) for t in self.argv(key))

    def dependents(self, key: str) -> set[str]:
        """Every step that reads `key`'s output, directly or not."""
        out: set[str] = set()
        frontier = [key]
        while frontier:
            for reader in self.readers.get(frontier.pop(), ()):
                if reader not in out:
                    out.add(reader)
                    frontier.append(reader)
        return out


def _ordered(steps: dict[str, Step]) -> list[str]:
    """Inputs first; among the steps that are ready, by kind (the plan reads as the stages go), then as made."""
    made = {key: i for i, key in enumerate(steps)}
    waiting = {key: set(step.inputs) for key, step in steps.items()}
    heap = [(KIND_ORDER.index(steps[k].kind), made[k], k) for k, inputs in waiting.items() if not inputs]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, _, key = heapq.heappop(heap)
        order.append(key)
        for other, inputs in waiting.items():
            if key in inputs:
                inputs.discard(key)
                if not inputs:
                    heapq.heappush(heap, (KIND_ORDER.index(steps[other].kind), made[other], other))
    return order


def argument_path(path: str) -> str:
    """A file of yours as a command-line word that no command reads as an option (`./-x`, not `-x`)."""
    return f"./{path}" if path.startswith("-") else path


# ---------------------------------------------------------------------------------------------- flags
def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def cli_tokens(cls: type, values: dict[str, Any], parsed: Any, always: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The flags that set `values` (field -> raw value) on the command line, one entry per field, from the
    options object `parsed` (the values after the dataclass's parsers): the spelling the command reads. A
    value equal to the default is left out, unless its field is in `always` (what the experiment sets)."""
    hints = type_hints(cls)
    out: dict[str, list[str]] = {}
    for f in option_fields(cls):
        if f.name not in values:
            continue
        value = getattr(parsed, f.name)
        if has_default(f) and value == default_of(f) and f.name not in always:
            continue
        if isinstance(values[f.name], str) and not isinstance(value, bool):
            value = values[f.name]  # as written (`simple`, `mt+align,mt`): the field's parser reads it the same way
        flag = flag_of(f)
        spec = spec_of(f)
        cli_type, _ = strip_optional(spec.cli_type if spec.cli_type is not None else hints[f.name])
        repeated = typing.get_origin(cli_type) in (list, tuple)
        if isinstance(value, bool):
            if value:
                out[f.name] = [flag]
            elif spec.negatable:
                out[f.name] = ["--no-" + flag[2:]]
            else:
                raise OptionError(f"{option_ref(f.name)}: false cannot be given on the command line (only the flag {flag})")
        elif value is None:
            continue
        elif isinstance(value, dict):
            out[f.name] = [t for k, v in value.items() for t in (flag, f"{k}={_text(v)}")]
        elif isinstance(value, (list, tuple)):
            if repeated:
                out[f.name] = [t for v in value for t in (flag, _text(v))]
            elif value and isinstance(value[0], (list, tuple)):  # a curriculum
                out[f.name] = [flag, ",".join("+".join(map(str, stage)) for stage in value)]
            else:
                out[f.name] = [flag, ",".join(_text(v) for v in value)]
        else:
            out[f.name] = [flag, _text(value)]
    return out


# ---------------------------------------------------------------------------------------------- building
class Builder:
    def __init__(self, exp: Experiment, hasher: Any = None):
        self.exp = exp
        self.steps: dict[str, Step] = {}
        self.hasher = hasher or (lambda path: "unhashed")
        self.memo: dict[Any, Any] = {}

    # --- primitives
    def add(self, name: str, kind: str, argv: list[str], *, inputs: list[str] = (), files: list[str] = (),
            key_argv: list[str] | None = None, resumable: bool = False, main: str = "") -> str:
        """A step (or, when one with the same key exists, that step under one more name); its key. `key_argv`:
        the command line the key is made of, when some of `argv` does not change the result."""
        hashed = {path: self.hasher(path) for path in files}
        key_argv = argv if key_argv is None else key_argv
        payload = {"v": KEY_VERSION, "kind": kind, "argv": key_argv, "files": hashed}
        key = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:KEY_LENGTH]
        if key in self.steps:
            if name not in self.steps[key].names:
                self.steps[key].names.append(name)
        else:
            self.steps[key] = Step(key, kind, [name], list(argv), list(dict.fromkeys(inputs)), hashed, resumable,
                                   main)
        return key

    def stage_args(self, section: str, values: dict[str, Any], where: Any, *, skip: tuple[str, ...] = (),
                   always: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
        """(flags for `values` through the stage's dataclass, the same without the fields in `skip`: what the
        key is made of). `where(field)` names a field's key in the config for an error."""
        cls = EXPERIMENT_SECTIONS[section]
        if self.exp.language_file and any(f.name == "languages" for f in option_fields(cls)):
            values = {**values, "languages": self.exp.language_file}
        try:
            tokens = cli_tokens(cls, values, cls(**values), always)
        except OptionError as exc:
            raise self.exp.error("", exc.render(where), hint=exc.hint) from None
        except TypeError as exc:  # a required field the experiment did not fill (a bug, or an odd config)
            raise self.exp.error(where("") or section, str(exc)) from None
        flat = [t for f in tokens for t in tokens[f]]
        kept = [t for f in tokens if f not in skip for t in tokens[f]]
        return flat, kept

    @staticmethod
    def ref(key: str, sub: str = "") -> str:
        return f"@{{{key}}}" + (f"/{sub}" if sub else "")

    def files_of(self, *paths: str | None) -> list[str]:
        return [p for p in paths if p and Path(p).exists()]

    # --- sources
    def toy_data(self) -> str:
        if "toy" not in self.memo:
            argv = [AIT, "demo", "toy-data", "--output", "@{out}"]
            for k, v in (self.exp.toy or {}).items():
                argv += [f"--{k}", str(v)]
            self.memo["toy"] = self.add("toy-data", "toy-data", argv)
        return self.memo["toy"]

    def corpus(self, name: str) -> list[tuple[str, str, list[str]]]:
        """A corpus's parts: (unit, path or @{ref}, input keys)."""
        memo = ("corpus", name)
        if memo in self.memo:
            return self.memo[memo]
        corpus = self.exp.corpora[name]
        parts: list[tuple[str, str, list[str]]] = []
        units = corpus_units(corpus)
        if corpus.kind == "toy":
            toy = self.toy_data()
            parts = [(units[0], self.ref(toy, corpus.source), [toy])]
        elif corpus.kind == "file":
            for unit in units:
                path = argument_path(corpus.source.replace("{lang}", unit))
                if corpus.direction != "as-is":  # reversed or both: `ait data file` writes them
                    out = f"{name}.{unit}.jsonl"
                    languages = ["--languages", self.exp.language_file] if self.exp.language_file else []
                    key = self.add(f"data/{name}.{unit}", "data", [AIT, "data", "file", path, *languages,
                                                                   "--direction", corpus.direction, "-o",
                                                                   f"@{{out}}/{out}"],
                                   files=self.files_of(path, self.exp.language_file), main=out)
                    parts.append((unit, self.ref(key, out), [key]))
                    continue
                parts.append((unit, path, []))
        else:
            for unit in units:
                values = dict(corpus.source)
                if corpus.kind == "opus100":
                    values["pair"] = unit if corpus.each == "pair" else f"en-{unit}"
                elif corpus.each == "pair":
                    first, second = unit.split("-", 1)
                    values.update(lang=second, with_lang=first)
                else:
                    values["lang"] = unit
                flags, _ = self.stage_args(corpus.kind, values,
                                           lambda f: f"corpora.{name}.{corpus.kind}.{f}" if f in corpus.source
                                           else f"corpora.{name}.languages")
                out = f"{name}.{unit}.jsonl"
                key = self.add(f"data/{name}.{unit}", "data", [AIT, "data", corpus.kind, *flags, "-o", f"@{{out}}/{out}"],
                               files=self.files_of(self.exp.language_file), main=out)
                parts.append((unit, self.ref(key, out), [key]))
        self.memo[memo] = parts
        return parts

    def file_input(self, path: str) -> list[str]:
        return [path] if not path.startswith("@{") else []

    def aligned(self, corpus: str, unit: str, path: str, inputs: list[str]) -> tuple[str, str]:
        values = {**self.exp.align, **self.exp.align_per_language.get(unit, {})}
        flags, _ = self.stage_args("align", values, lambda f: f"align_per_language.{unit}.{f}" if f in
                                   self.exp.align_per_language.get(unit, {}) else f"align.{f}")
        out = f"{corpus}.{unit}.aligned.jsonl"
        key = self.add(f"align/{corpus}.{unit}", "align", [AIT, "align", path, *flags, "-o", f"@{{out}}/{out}"],
                       inputs=inputs, files=self.files_of(*self.file_input(path), self.exp.language_file), main=out)
        return key, self.ref(key, out)

    def built(self, dataset_name: str) -> dict[str, tuple[str, str]]:
        """unit -> (key, @{ref}) of each language's `ait build` output for a data set."""
        memo = ("built", dataset_name)
        if memo in self.memo:
            return self.memo[memo]
        dataset = self.exp.datasets[dataset_name]
        out: dict[str, tuple[str, str]] = {}
        for unit, path, inputs in self.corpus(dataset.corpus):
            if dataset.languages is not None and unit not in dataset.languages:
                continue
            if INPUT_KIND[dataset.objective] == "aligned":
                align_key, path = self.aligned(dataset.corpus, unit, path, inputs)
                inputs = [align_key]
            values = {**dataset.build, "objective": dataset.objective}
            flags, _ = self.stage_args("build", values, lambda f: f"datasets.{dataset_name}.build.{f}"
                                       if f in dataset.build else f"datasets.{dataset_name}.objective",
                                       always=("objective",))
            name = f"{dataset_name}.{unit}.jsonl"
            key = self.add(f"build/{dataset_name}.{unit}", "build", [AIT, "build", path, *flags, "-o", f"@{{out}}/{name}"],
                           inputs=inputs, files=self.files_of(*self.file_input(path), self.exp.language_file), main=name)
            out[unit] = (key, self.ref(key, name))
        self.memo[memo] = out
        return out

    def dataset(self, name: str) -> tuple[str, str]:
        """(key, @{ref}) of a data set's file: its one `ait build` output, or the `ait mix` of its languages."""
        memo = ("dataset", name)
        if memo in self.memo:
            return self.memo[memo]
        dataset = self.exp.datasets[name]
        built = self.built(name)
        if len(built) == 1 and not dataset.mix and dataset.weight is None and not dataset.sample_with:
            self.memo[memo] = next(iter(built.values()))
            return self.memo[memo]
        single = len(built) == 1
        inputs, args, weights = [], [], {}
        for unit, (key, ref) in built.items():
            label = name if single else f"{name}.{unit}"
            inputs.append(key)
            args.append(f"{label}={ref}")
            if dataset.weight is not None:
                weights[label] = dataset.weight
        for other in dataset.sample_with:  # their pairs count towards the cap; none of their records is written
            for unit, (key, ref) in self.built(other).items():
                if unit in built:
                    label = f"{other}.{unit}"
                    inputs.append(key)
                    args.append(f"{label}={ref}")
                    weights[label] = "0"
        values = {**dataset.mix, **({"weight": weights} if weights else {})}
        flags, _ = self.stage_args("mix", values, lambda f: f"datasets.{name}.mix.{f}" if f in dataset.mix
                                   else f"datasets.{name}.weight")
        out = f"{name}.jsonl"
        key = self.add(f"mix/{name}", "mix", [AIT, "mix", *args, *flags, "-o", f"@{{out}}/{out}"], inputs=inputs,
                       files=self.files_of(self.exp.language_file), main=out)
        self.memo[memo] = (key, self.ref(key, out))
        return self.memo[memo]

    def concat(self, name: str, parts: list[tuple[str, str, list[str]]], head: int | None = None) -> tuple[list[str], str]:
        """(input keys, path or @{ref}) of the parts as one file: an `ait experiment concat` step when several
        (or to keep each part's first `head` lines)."""
        if len(parts) == 1 and head is None:
            unit, path, inputs = parts[0]
            return inputs, path
        out = f"{name}.jsonl"
        argv = [AIT, "experiment", "concat", *[argument_path(p) for _, p, _ in parts]]
        argv += ["--head", str(head)] if head is not None else []
        inputs = [k for _, _, keys in parts for k in keys]
        files = [p for _, p, _ in parts if not p.startswith("@{")]
        key = self.add(f"cat/{name}", "cat", [*argv, "-o", f"@{{out}}/{out}"], inputs=inputs, files=files, main=out)
        return [key], self.ref(key, out)

    # --- systems
    def model(self, system: System) -> tuple[str, list[str], list[str], bool]:
        """(the --model value, input keys, files, whether it is a trained system's own model)."""
        model = system.model
        if isinstance(model, dict) and "toy" in model:
            toy = self.toy_data()
            argv = [AIT, "demo", "toy-model", "--data", self.ref(toy), "--output", "@{out}"]
            for k, v in model["toy"].items():
                argv += [f"--{k.replace('_', '-')}", str(v)]
            key = self.add("toy-model", "toy-model", argv, inputs=[toy])
            return self.ref(key), [key], [], False
        if isinstance(model, dict):
            key = self.train(self.exp.systems[model["system"]])
            return self.ref(key, "final"), [key], [], False
        return model, [], self.files_of(model), False

    def train(self, system: System) -> str | None:
        """The key of a system's `ait train` step (None: the system is its model, untrained)."""
        if system.curriculum is None:
            return None
        memo = ("train", system.name)
        if memo in self.memo:
            return self.memo[memo]
        where = f"systems.{system.name}"
        try:
            stages = parse_curriculum(system.curriculum) or []
        except OptionError as exc:
            raise self.exp.error(f"{where}.curriculum", exc.render(lambda f: "curriculum")) from None
        model, inputs, files, _ = self.model(system)
        data: dict[str, str] = {}
        for member in dict.fromkeys(m for stage in stages for m in stage):
            dataset = system.data.get(member, member)
            if dataset not in self.exp.datasets:
                raise self.exp.error(f"{where}.curriculum", f"{member!r} is not a data set",
                                     hint=f"the data sets: {', '.join(self.exp.datasets)}; or map it in {where}.data")
            key, ref = self.dataset(dataset)
            inputs.append(key)
            data[member] = ref
        values = {**self.exp.train, **system.train, "model": model, "data": data, "curriculum": system.curriculum,
                  "output": "@{out}"}
        if system.val:
            key, ref = self.dataset(system.val)
            inputs.append(key)
            values["val"] = ref

        def key_of(f: str) -> str:
            if f in system.train:
                return f"{where}.train.{f}"
            if f in self.exp.train:
                return f"train.{f}"
            return f"{where}.{f}" if f in ("model", "data", "curriculum", "val") else where

        # how the run is launched and logged does not change what it computes: not part of the key
        skip = LAUNCH_ONLY + RESULT_NEUTRAL
        flags, key_flags = self.stage_args("train", values, key_of, skip=skip)
        key = self.add(f"train/{system.name}", "train", [AIT, "train", *flags], inputs=inputs,
                       files=files + self.files_of(self.exp.language_file), key_argv=[AIT, "train", *key_flags],
                       resumable=True)
        self.memo[memo] = key
        return key

    def served(self, system: System) -> tuple[str, str | None, list[str], list[str]]:
        """(--model, --adapter or None, input keys, files) a system translates and probes with."""
        model, inputs, files, _ = self.model(system)
        train = self.train(system)
        if train is None:
            return model, None, inputs, files
        full = {**self.exp.train, **system.train}.get("full", False)
        if full:
            return self.ref(train, "final"), None, [train], []
        return model, self.ref(train, "final"), inputs + [train], files

    def test_file(self, test_sets: list[str]) -> tuple[list[str], str]:
        parts = [part for name in test_sets for part in self.corpus(name)]
        return self.concat("test." + "+".join(test_sets), parts)

    def translate(self, system: System) -> str:
        memo = ("translate", system.name)
        if memo in self.memo:
            return self.memo[memo]
        if not system.test_sets:
            raise self.exp.error(f"systems.{system.name}.test_sets", "empty: nothing to translate or score")
        model, adapter, inputs, files = self.served(system)
        test_inputs, test = self.test_file(system.test_sets)
        values = {**self.exp.translate, **system.translate, "model": model,
                  **({"adapter": adapter} if adapter else {})}
        where = f"systems.{system.name}"
        flags, _ = self.stage_args("translate", values, lambda f: f"{where}.translate.{f}" if f in system.translate
                                   else f"translate.{f}" if f in self.exp.translate else f"{where}.model")
        key = self.add(f"translate/{system.name}", "translate",
                       [AIT, "translate", test, *flags, "-o", "@{out}/hyps.jsonl", "--resume"],
                       inputs=inputs + test_inputs, files=files + self.files_of(*self.file_input(test), self.exp.language_file),
                       resumable=True, main="hyps.jsonl")
        self.memo[memo] = key
        return key

    def toy_comet(self) -> str:
        toy = self.toy_data()
        return self.add("toy-comet", "toy-comet", [AIT, "demo", "toy-comet", "--data", self.ref(toy), "--output",
                                                   "@{out}"], inputs=[toy])

    def score(self, table_name: str) -> str:
        table = self.exp.tables[table_name]
        rows = [s for s in table.systems if s != table.baseline]
        hyps = [self.translate(self.exp.systems[s]) for s in rows]
        values = {**self.exp.score, **table.score, "format": "json", "names": rows}
        inputs = list(hyps)
        if table.baseline:
            base = self.translate(self.exp.systems[table.baseline])
            inputs.append(base)
            values.update(baseline=self.ref(base, "hyps.jsonl"), baseline_name=table.baseline)
        if isinstance(values.get("comet_model"), dict):
            comet = self.toy_comet()
            inputs.append(comet)
            values["comet_model"] = self.ref(comet)
        where = f"tables.{table_name}"
        flags, _ = self.stage_args("score", values, lambda f: f"{where}.score.{f}" if f in table.score
                                   else f"score.{f}" if f in self.exp.score else where)
        return self.add(f"score/{table_name}", "score",
                        [AIT, "score", *[self.ref(h, "hyps.jsonl") for h in hyps], *flags, "-o",
                         "@{out}/scores.json"], inputs=inputs, files=self.files_of(self.exp.language_file),
                        main="scores.json")

    def probe(self) -> str:
        probe = self.exp.probe
        assert probe is not None
        pair_inputs, pairs = self.concat(f"probe-pairs.{probe.corpus}", self.corpus(probe.corpus), probe.head)
        results = []
        for name in probe.systems:
            model, adapter, inputs, files = self.served(self.exp.systems[name])
            values = {**probe.options, "model": model, "label": name, **({"adapter": adapter} if adapter else {})}
            flags, _ = self.stage_args("probe", values, lambda f: f"probe.options.{f}" if f in probe.options
                                       else "probe.systems")
            results.append(self.add(f"probe/{name}", "probe",
                                    [AIT, "probe", pairs, *flags, "-o", "@{out}/probe.json"],
                                    inputs=inputs + pair_inputs, files=files + self.files_of(*self.file_input(pairs)),
                                    main="probe.json"))
        plot = ["--plot", "@{out}/probe.png"] if probe.plot else []
        return self.add("probe/compare", "probe", [AIT, "probe", "--compare", *[self.ref(r, "probe.json") for r in results],
                                                   *plot, "-o", "@{out}/compare.json"], inputs=results,
                        main="compare.json")


def build_graph(exp: Experiment, hasher: Any = None) -> Graph:
    """Every step of the experiment: each system's training and translation, each table's score, the probe."""
    b = Builder(exp, hasher)
    for system in exp.systems.values():
        b.train(system)
    if exp.test_sets:
        for system in exp.systems.values():
            if system.test_sets:
                b.translate(system)
    for table in exp.tables:
        b.score(table)
    if exp.probe is not None:
        b.probe()
    graph = Graph(exp, b.steps)
    check_distinct_links(graph)
    return graph


def link_name(name: str) -> str:
    """The readable name of a step under OUTPUT/<kind>/ (`train/MTInstruct` -> MTInstruct)."""
    kind, _, rest = name.partition("/")
    return slug(rest or kind)


def check_distinct_links(graph: Graph) -> None:
    """Two different steps may not get one readable link (`corpus a.b` in language `c` and `corpus a` in
    language `b.c` both make `data/a.b.c`), not even one that differs only in case."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for step in graph:
        for name in step.names:
            link = (step.kind, link_name(name).casefold())
            if link in seen and seen[link][0] != step.key:
                raise graph.exp.error("", f"steps {seen[link][1]!r} and {name!r} would share the name "
                                      f"{step.kind}/{link_name(name)}", hint="rename a corpus, data set, "
                                      "system or language so that the two differ")
            seen[link] = (step.key, name)


def table_step(graph: Graph, table: str) -> Step:
    return graph.step(f"score/{table}")


def render_plan(graph: Graph, *, done: set[str] = frozenset()) -> str:
    """The experiment as a bash script a user could run by hand: every step's command, with its inputs and
    output in a comment above it (`done`: keys to mark as already done)."""
    exp = graph.exp
    lines = ["#!/usr/bin/env bash",
             f"# ait experiment plan {exp.path}: {len(graph)} steps. `ait experiment run` runs the same commands,",
             "# skipping steps already done (each step's directory is keyed by its command and inputs).",
             "set -euo pipefail"]
    lines += [f"# languages: {' '.join(exp.languages) or '(per corpus)'}"]
    for name, system in exp.systems.items():
        train = {**exp.train, **system.train}
        what = f"curriculum {system.curriculum}" if system.curriculum else "not trained"
        extra = ", ".join(f"{k} {v}" for k, v in train.items() if k in ("global_batch", "lr", "epochs", "full")
                          ) if system.curriculum else ""
        model = system.model if isinstance(system.model, str) else str(system.model)
        lines.append(f"# system {name}: {model}, {what}" + (f" ({extra})" if extra else ""))
    for name, table in exp.tables.items():
        lines.append(f"# table {name}: {', '.join(table.systems)}"
                     + (f" against {table.baseline}" if table.baseline else ""))
    lines += [f"export {k}={shlex.quote(v)}" for k, v in exp.env.items()]  # keys: checked names (study_config.py)
    for n, step in enumerate(graph, 1):
        names = ", ".join(step.names)
        reads = [graph.steps[k].name for k in step.inputs] + list(step.files)
        lines += ["", f"# [{n}/{len(graph)}] {names}" + (" (done)" if step.key in done else "")]
        if reads:
            lines.append("#   reads:  " + ", ".join(reads))
        lines.append(f"#   writes: {graph.output(step.key)}")
        if step.kind == "train":
            lines.append("#   (after an interruption, the same command with --resume continues the run)")
        lines.append(f"mkdir -p {shlex.quote(str(graph.directory(step.key)))}")
        lines.append(graph.shell(step.key))
    # a comment stays one comment line whatever a name or path holds (commands are quoted word by word)
    lines = [_CONTROL.sub(lambda m: repr(m.group())[1:-1], line) if line.startswith("#") else line for line in lines]
    return "\n".join(lines) + "\n"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

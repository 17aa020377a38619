"""The stages' options dataclasses by command name: the one table the CLI (`commands/`), the experiment config
(`experiment/study_config.py`) and the docs generator read, so a stage's name and its options cannot drift apart.

A new stage = its options dataclass in its library module and one line here (plus its command)."""

from __future__ import annotations

from aligninstruct_cli.align.pipeline import AlignOptions
from aligninstruct_cli.data_sources import FileOptions, Flores200Options, Opus100Options
from aligninstruct_cli.export import ExportOptions
from aligninstruct_cli.generation import TranslateOptions
from aligninstruct_cli.instructions.mixing import MixOptions
from aligninstruct_cli.instructions.objectives import BuildOptions
from aligninstruct_cli.languages import ListOptions
from aligninstruct_cli.metrics.score_options import ScoreOptions
from aligninstruct_cli.probe import ProbeOptions
from aligninstruct_cli.training.train_options import TrainOptions

# command name (an alias too; `ait data NAME` by its leaf NAME) -> its options dataclass
STAGE_OPTIONS: dict[str, type] = {
    "align": AlignOptions,
    "build-instructions": BuildOptions,
    "build": BuildOptions,
    "mix": MixOptions,
    "train": TrainOptions,
    "translate": TranslateOptions,
    "score": ScoreOptions,
    "probe": ProbeOptions,
    "export": ExportOptions,
    "languages": ListOptions,
    "file": FileOptions,
    "opus100": Opus100Options,
    "flores200": Flores200Options,
}

# an experiment config's sections that configure a stage -> the stage's options dataclass
EXPERIMENT_SECTIONS: dict[str, type] = {name: STAGE_OPTIONS[name] for name in (
    "align", "build", "mix", "train", "translate", "score", "probe", "opus100", "flores200")}

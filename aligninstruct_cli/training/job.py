"""What the workers run: `Job`, written once by the launching process as OUTPUT/job.json and read by every
rank (`python -m aligninstruct_cli.training.loop --job OUTPUT/job.json`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from aligninstruct_cli.io import atomic_path
from aligninstruct_cli.options import to_dict as plain_options
from aligninstruct_cli.training.train_options import TrainOptions


@dataclass(frozen=True)
class Job:
    """The resolved `ait train` options and what the launching process found out before any worker
    started: the model, its LoRA targets, the precision, the batch split, the DeepSpeed config and the
    tokenized inputs."""

    options: TrainOptions
    model_path: str  # a local directory (absolute) or a hub id
    model_type: str  # config.model_type, e.g. "bloom"
    lora_targets: list[str]  # empty with `full`
    precision: str  # resolved: bf16, fp16 or fp32
    ds_config: dict[str, Any]
    world_size: int | None  # ranks the launch will have (counted with a global batch); None: the launcher decides
    batch: dict[str, Any] = field(default_factory=dict)  # batch.BatchPlan.to_dict(): global, micro, accumulation, ...
    caches: dict[str, str] = field(default_factory=dict)  # data name → tokenized-cache directory
    val_cache: str | None = None
    input_hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # name → {"path", "sha256"}
    data_stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → examples, tokens, truncated, ...
    command: list[str] = field(default_factory=list)  # the `ait train` command line
    quiet: bool = False  # `ait -q`: no progress or summaries from the workers either

    @property
    def zero3(self) -> bool:
        """ZeRO stage 3 (weights partitioned across ranks), whether from the options or a DeepSpeed config file."""
        return self.ds_config.get("zero_optimization", {}).get("stage") == 3

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the options as their plain values, everything else as is."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["options"] = plain_options(self.options)
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "Job":
        data = orjson.loads(text)
        return cls(**{**data, "options": TrainOptions(**data["options"])})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write job.json atomically."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Job":
        with open(path, "rb") as fh:
            return cls.from_json(fh.read())

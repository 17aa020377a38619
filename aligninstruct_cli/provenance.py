"""What a run records about itself so that it can be reproduced and resumed safely: its manifest
(`RunManifest`: `ait train`'s run.json, `ait translate`'s OUTPUT.run.json), package versions and input file
hashes."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import time

from aligninstruct_cli import __version__
from aligninstruct_cli.io import read_json, write_json
from aligninstruct_cli.records import SCHEMA_VERSION

PACKAGES = ("torch", "transformers", "peft", "deepspeed", "tokenizers", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # lazy: importlib.metadata (~15 ms at start-up)

    out = {"ait": __version__, "python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string: "4.57.6" -> (4, 57), "2.13.0+cpu" -> (2, 13)."""
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def installed_version(name: str) -> tuple[int, ...] | None:
    """(major, minor) of an installed package, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version  # lazy: importlib.metadata (~15 ms at start-up)

    try:
        return version_tuple(version(name))
    except PackageNotFoundError:
        return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RunManifest:
    """A run's manifest: `ait train`'s run.json, `ait translate`'s OUTPUT.run.json. What was run (command,
    settings), with which versions and inputs, and how it went (status, times, results), so a run can be
    reproduced and a resumed run checked. The process that started the run is its only writer; each
    write replaces the file atomically.

    `schema_version` is the record schema (records.SCHEMA_VERSION) of what the run read and wrote."""

    def __init__(self, path: str | os.PathLike[str], data: dict | None = None):
        self.path = path
        self.data: dict = data if data is not None else {}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "RunManifest | None":
        """The manifest at `path`, or None when there is none yet."""
        return cls(path, read_json(path)) if os.path.exists(path) else None

    def start(self, command: list[str], **fields) -> "RunManifest":
        """A new run: its command line, start time, versions, status running, and `fields`."""
        self.data = {"command": list(command), "started_at": now(), "status": "running",
                     "schema_version": SCHEMA_VERSION, **fields}
        self.data.setdefault("versions", package_versions())
        return self.write()

    def resumed(self, command: list[str], **fields) -> "RunManifest":
        """A resumed run: appends {command, at, ...} to `resumed` and sets the status back to running."""
        self.data.setdefault("resumed", []).append({"command": list(command), "at": now(), **fields})
        self.data["status"] = "running"
        return self.write()

    def update(self, **fields) -> "RunManifest":
        self.data.update(fields)
        return self.write()

    def finish(self, status: str = "finished", **fields) -> "RunManifest":
        return self.update(status=status, finished_at=now(), **fields)

    def write(self) -> "RunManifest":
        write_json(self.path, self.data)
        return self


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")

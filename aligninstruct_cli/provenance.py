"""What a run records about itself so that it can be reproduced and resumed safely: package versions and
input file hashes (`ait train`'s run.json, `ait translate`'s OUTPUT.run.json)."""

from __future__ import annotations

import hashlib
import os
import platform

from aligninstruct_cli import __version__

PACKAGES = ("torch", "transformers", "peft", "deepspeed", "tokenizers", "numpy")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"ait": __version__, "python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

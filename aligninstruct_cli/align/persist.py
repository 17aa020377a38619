"""A trained alignment model on disk (`--save-model DIR`, `--model DIR`).

DIR/model.json      format version, EM options, tension per direction, tokenizers, lowercase, sizes
DIR/src.vocab       source words, one per line, line k = word id k (tokens never contain whitespace)
DIR/tgt.vocab       target words
DIR/tables.npz      keys (int64, sorted: src_id * n_tgt_words + tgt_id, pair id = position),
                    t_forward / t_reverse (float32, one per pair; t(tgt|src) and t(src|tgt)),
                    null_forward (float32 per target word), null_reverse (float32 per source word)

Only the directions that were trained are saved. Loading never unpickles anything.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aligninstruct_cli.align.model import EMOptions
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import atomic_path, read_json, write_json
from aligninstruct_cli.options import OptionError, option_ref

FORMAT = "ait-align-model"
VERSION = 1


@dataclass
class AlignmentModel:
    src_words: list[str]
    tgt_words: list[str]
    keys: np.ndarray  # int64 [P], sorted
    tables: dict[str, dict] = field(default_factory=dict)  # direction -> {t, null, tension}
    options: EMOptions = field(default_factory=EMOptions)
    tokenize: tuple[str, str] = ("whitespace", "whitespace")
    lowercase: bool = False

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(d for d in ("forward", "reverse") if d in self.tables)

    def save(self, directory: str | os.PathLike[str]) -> None:
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise AitError(f"{directory}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"keys": np.asarray(self.keys, dtype=np.int64)}
        for name, table in self.tables.items():
            arrays[f"t_{name}"] = np.asarray(table["t"], dtype=np.float32)
            arrays[f"null_{name}"] = np.asarray(table["null"], dtype=np.float32)
        with atomic_path(path / "tables.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        for name, words in (("src.vocab", self.src_words), ("tgt.vocab", self.tgt_words)):
            with atomic_path(path / name) as tmp:
                tmp.write_text("".join(w + "\n" for w in words), encoding="utf-8")
        write_json(path / "model.json", {
            "format": FORMAT, "version": VERSION, "options": asdict(self.options),
            "tension": {name: table["tension"] for name, table in self.tables.items()},
            "tokenize": list(self.tokenize), "lowercase": self.lowercase,
            "n_src_words": len(self.src_words), "n_tgt_words": len(self.tgt_words), "n_pairs": int(len(self.keys)),
        })

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> "AlignmentModel":
        path = Path(directory)
        if not (path / "model.json").is_file():
            raise OptionError(f"{option_ref('model')} {directory}: not an alignment model (no model.json)",
                           hint="create one with `ait align ... --save-model DIR`")
        meta = read_json(path / "model.json")
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise OptionError(f"{option_ref('model')} {directory}: unsupported model format {meta.get('format')!r} "
                           f"version {meta.get('version')!r}")
        try:
            src_words = (path / "src.vocab").read_text(encoding="utf-8").split("\n")[:-1]
            tgt_words = (path / "tgt.vocab").read_text(encoding="utf-8").split("\n")[:-1]
            with np.load(path / "tables.npz", allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise OptionError(f"{option_ref('model')} {directory}: cannot read the model: {exc}") from None
        if len(src_words) != meta["n_src_words"] or len(tgt_words) != meta["n_tgt_words"]:
            raise OptionError(f"{option_ref('model')} {directory}: vocabulary files do not match model.json")
        tables = {}
        for name, tension in meta["tension"].items():
            tables[name] = {"t": arrays[f"t_{name}"], "null": arrays[f"null_{name}"], "tension": float(tension)}
        return cls(src_words, tgt_words, arrays["keys"], tables, EMOptions(**meta["options"]),
                   tuple(meta["tokenize"]), bool(meta["lowercase"]))

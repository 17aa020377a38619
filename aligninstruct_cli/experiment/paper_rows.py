"""Which published rows a study's table reproduces (a table's `paper:` section, docs/experiment.md): read by
the seeds' expansion (each seed's table keeps the paper's rows) and by the report's comparison with the paper."""

from __future__ import annotations

from typing import Any

from aligninstruct_cli import paper


def paper_rows(table: Any) -> dict[str, str | None]:
    """system -> the paper's row it reproduces (None: the paper has none): `paper.rows`, else the system's name if
    it is a row, else its name without the first word (`3b MT+Align`, `6 MTInstruct pivot`)."""
    if table.paper is None:
        return {}
    narrow = {k: table.paper[k] for k in ("model", "setting") if k in table.paper}
    known = paper.paper_systems(table.paper["table"], **narrow)
    out: dict[str, str | None] = {}
    for system in ([table.baseline] if table.baseline else []) + table.systems:
        rest = system.split(" ", 1)[1] if " " in system else None
        out[system] = table.paper["rows"].get(system) or (system if system in known else rest if rest in known else None)
    return out

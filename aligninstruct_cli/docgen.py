"""The option tables in docs/, generated from the commands (and so from the options dataclasses).

A page marks each table with `<!-- options: COMMAND -->` ... `<!-- /options -->`; `python -m
aligninstruct_cli.docgen` (`make docs`) rewrites what lies between, and `--check` exits 1 naming every
table that differs (tests/docs/test_option_docs.py runs the check, as sqlite-utils checks its CLI reference).

A row: the option's flags (`--flag`, `-f`; `--x` / `--no-x`; an argument in capitals), its default (the
dataclass default, or the field's `default_doc`), and its meaning: the field's `help`, then its
`details` (docs only), its choices and its range."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer

from aligninstruct_cli.cli import app
from aligninstruct_cli.options import (choices_of, default_of, describe_range, flag_of, has_default, option_fields,
                                       spec_of, type_hints)
from aligninstruct_cli.registry import STAGE_OPTIONS

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- options: (?P<command>[\w -]+?) -->\n)(?P<table>.*?)(<!-- /options -->)", re.S)
HEADER = "| option | default | meaning |\n|---|---|---|\n"


def leaf_commands() -> dict[str, Any]:
    """Every leaf command of the app by its full name (`align`, `data opus100`, ...)."""
    out: dict[str, Any] = {}
    stack = [("", typer.main.get_command(app))]
    while stack:
        prefix, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [((prefix + " " + name).strip(), sub) for name, sub in subs.items()]
        elif prefix:
            out[prefix] = cmd
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _code(value: Any) -> str:
    if value is None or value == []:
        return "–"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, (list, tuple)):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def _row(param: Any, fields: dict[str, Any], hints: dict[str, Any]) -> str | None:
    if param.name in ("help", "ctx"):
        return None
    if param.param_type_name == "argument":
        label = f"`{(param.metavar or param.name).upper().strip('{}')}`" + ("..." if param.nargs == -1 else "")
        default = _code(param.default) if param.default is not None else "–"
        return f"| {label} (argument) | {default} | {_cell(getattr(param, 'help', '') or '')} |"
    f = fields.get(param.name)
    if f is None and "__alias" in param.name:  # a deprecated spelling, still accepted with a note
        return f"| `{param.opts[0]}` | | deprecated spelling of `{flag_of(fields[param.name.split('__alias')[0]])}` |"
    flags = [f"`{o}`" for o in param.opts]
    if param.secondary_opts:
        flags = [f"`{param.opts[0]}` / `{param.secondary_opts[0]}`"] + flags[1:]
    metavar = getattr(f.metadata.get("ait"), "metavar", None) if f is not None else None
    if metavar and not param.is_flag:
        flags[0] = flags[0][:-1] + f" {metavar}`"
    label = ", ".join(flags)
    if f is None:  # a command-level option (output, --config, ...)
        if param.metavar and not param.is_flag:
            label = f"`{param.opts[0]} {param.metavar}`" + "".join(f", `{o}`" for o in param.opts[1:])
        default = _code(param.default) if param.default not in (None, False) else "–"
        return f"| {_cell(label)} | {default} | {_cell(param.help or '')} |"
    spec = spec_of(f)
    if spec.default_doc is not None:
        default = spec.default_doc
    elif not has_default(f):
        default = "required"
    else:
        default = _code(default_of(f))
    meaning = spec.help
    if spec.details:
        meaning += " " + spec.details
    choices = choices_of(hints[f.name])
    if choices:
        meaning += " Choices: " + ", ".join(f"`{c}`" for c in choices) + "."
    rng = describe_range(spec)
    if rng:
        meaning += f" Range: {rng}."
    return f"| {_cell(label)} | {_cell(default)} | {_cell(meaning)} |"


def table(command_name: str) -> str:
    """The markdown option table of `ait COMMAND_NAME`."""
    command = leaf_commands()[command_name]
    leaf = command_name.split()[-1]
    cls = STAGE_OPTIONS.get(leaf) or STAGE_OPTIONS.get(command_name)
    fields = {f.name: f for f in option_fields(cls)} if cls else {}
    hints = type_hints(cls) if cls else {}
    rows = [r for r in (_row(p, fields, hints) for p in command.params) if r]
    return HEADER + "\n".join(rows) + "\n"


def render(text: str) -> str:
    """A page's text with every marked table regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + table(m.group("command")) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(page.name)
            if not check:
                page.write_text(new, encoding="utf-8")
    if check and stale:
        print(f"option tables out of date in {', '.join(stale)}: run `make docs`", file=sys.stderr)
        return 1
    if not check:
        print(f"regenerated option tables in {', '.join(stale) or 'no page (all current)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

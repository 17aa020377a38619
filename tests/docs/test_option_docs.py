"""The docs cover every option `--help` shows: a new option without documentation fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aligninstruct_cli.docgen import leaf_commands

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Which page documents which command; aliases share their command's page.
PAGES = {"build-instructions": "build.md", "build": "build.md", "data opus100": "data.md",
         "data flores200": "data.md"}


COMMANDS = sorted(leaf_commands().items())


@pytest.mark.parametrize("name,command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_option_is_documented(name, command):
    page = DOCS / PAGES.get(name, name.split()[0] + ".md")
    assert page.exists(), f"`ait {name}` has no page {page.name} in docs/"
    text = page.read_text(encoding="utf-8")
    missing = [opt for param in command.params for opt in param.opts
               if opt.startswith("--") and opt != "--help" and not re.search(re.escape(opt) + r"\b", text)]
    assert not missing, f"{page.name} does not mention {missing} of `ait {name}`"


def test_readme_starts_with_the_two_setup_commands():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_option_tables_are_generated_from_the_options():
    """The docs' option tables are `make docs` output: an option's help changed in its dataclass and not
    regenerated here fails."""
    from aligninstruct_cli.docgen import BLOCK, render

    stale = [page.name for page in sorted(DOCS.glob("*.md"))
             if render(page.read_text(encoding="utf-8")) != page.read_text(encoding="utf-8")]
    assert not stale, f"option tables out of date in {stale}: run `make docs`"
    marked = {m.group("command") for page in DOCS.glob("*.md") for m in BLOCK.finditer(page.read_text("utf-8"))}
    assert {"align", "build-instructions", "mix", "data opus100", "data flores200"} <= marked

"""Every shell example of README.md and docs/*.md is checked (tests/docs_examples.py says how): each block
carries a docs-test marker, every `ait` command line of every block parses against the real CLI (so a
renamed flag or command in a doc fails here), and the blocks marked `run` are executed with bash in a
fixture folder (local data from ../shared/data, no hub) and must exit 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docs_examples import ROOT, Block, ait_commands, all_blocks, blocks, check_command, shell_variables

BLOCKS = all_blocks()


def _commands() -> list[tuple[str, list[str]]]:
    out, env, page = [], {}, None
    for block in BLOCKS:
        if block.path != page:  # a page's blocks run in one shell: its variables carry over
            env, page = {}, block.path
        out += [(f"{block.where}#{k}", args) for k, args in enumerate(ait_commands(block, env), 1)]
        env = shell_variables(block.substituted(), env)
    return out


COMMANDS = _commands()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_every_shell_example_is_marked(block: Block):
    block.substituted()  # a `sub` whose text is not in the block is an error too
    assert not block.errors, f"{block.where}: {'; '.join(block.errors)}"


@pytest.mark.parametrize("where,args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_ait_command_in_the_docs_parses(where: str, args: list[str]):
    check_command(args)


def test_the_docs_examples_cover_every_command_line():
    """The collector finds the examples (a parse error in it would silently check nothing)."""
    assert len(BLOCKS) >= 35 and len(COMMANDS) >= 100
    pages = {b.path for b in BLOCKS}
    assert {"README.md", "docs/getting-started.md", "docs/score.md", "docs/reproduce-the-paper.md"} <= pages
    assert ["align", "train.jsonl", "--lowercase", "-o", "aligned.jsonl"] in [a for _, a in COMMANDS]


def test_a_renamed_flag_or_command_in_a_doc_fails():
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert "--lowercase" in page and "ait mix " in page
    for old, new in (("--lowercase", "--lower-case"), ("ait mix ", "ait mixx "), ("--val val.jsonl", "--val")):
        changed = blocks("docs/getting-started.md", page.replace(old, new, 1))
        failures = []
        for block in changed:
            for args in ait_commands(block):
                try:
                    check_command(args)
                except AssertionError as exc:
                    failures.append(str(exc))
        assert failures, f"{old} -> {new} went unnoticed"


def test_a_bad_value_and_an_unexpanded_variable_fail():
    with pytest.raises(AssertionError, match="print-config"):
        check_command(["align", "x.jsonl", "--tokenize", "no-such-tokenizer"])
    with pytest.raises(AssertionError, match="sub OLD => NEW"):
        check_command(["train", "--model", "$M"])


def test_an_unmarked_block_is_an_error():
    text = "intro\n\n```bash\nait languages\n```\n\n<!-- docs-test: needs lunch: x -->\n```bash\nait languages\n```\n"
    first, second = blocks("x.md", text)
    assert "no docs-test marker" in first.errors[0]
    assert "bad marker" in second.errors[0]


# ------------------------------------------------------------------------------------- executed blocks
RUN = [b for b in BLOCKS if b.run]


@pytest.fixture(scope="module")
def fixture_folder(tmp_path_factory, shared_data) -> Path:
    """The files the `run` blocks name: 100 English-Kazakh pairs of OPUS-100's dev split (../shared/data) as
    kk.jsonl, my-test.jsonl, big.jsonl, new.jsonl, my-pairs.tsv, and their alignment as aligned.jsonl."""
    folder = tmp_path_factory.mktemp("docs-examples")
    ait = str(Path(sys.executable).parent / "ait")
    subprocess.run([ait, "data", "opus100", "--pair", "en-kk", "--split", "dev", "--source",
                    str(shared_data / "opus100"), "-o", "all.jsonl"], cwd=folder, check=True, capture_output=True)
    lines = (folder / "all.jsonl").read_text(encoding="utf-8").splitlines()[:100]
    (folder / "kk.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("my-test.jsonl", "big.jsonl", "new.jsonl"):
        shutil.copy(folder / "kk.jsonl", folder / name)
    import json

    with open(folder / "my-pairs.tsv", "w", encoding="utf-8") as tsv:
        for line in lines:
            record = json.loads(line)
            tsv.write(f"{record['src']}\t{record['tgt']}\n")
    subprocess.run([ait, "-q", "align", "kk.jsonl", "-o", "aligned.jsonl"], cwd=folder, check=True, capture_output=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_the_run_examples_run(block: Block, fixture_folder: Path, tmp_path: Path):
    work = tmp_path / "work"
    shutil.copytree(fixture_folder, work)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.substituted()], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{block.where}: exit {result.returncode}\n{result.stderr[-3000:]}"

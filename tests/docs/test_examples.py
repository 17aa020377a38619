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

from docs_examples import (ROOT, Block, Output, ait_commands, all_blocks, all_outputs, blocks, check_command, check_names,
                           doc_files, hidden_commands, inline_commands, shell_variables)

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


INLINE = [c for p in doc_files() for c in inline_commands(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]


def test_every_ait_command_named_in_the_docs_prose_exists():
    """The `ait ...` code spans of the prose: their commands and flags exist (values are often placeholders)."""
    wrong = []
    for where, args in INLINE:
        try:
            check_names(args)
        except AssertionError as exc:
            wrong.append(f"{where}: {exc}")
    assert len(INLINE) > 300 and not wrong, "\n".join(wrong)
    with pytest.raises(AssertionError, match="no option --lower-case"):
        check_names(["align", "x.jsonl", "--lower-case"])
    with pytest.raises(AssertionError, match="no command 'mixx'"):
        check_names(["mixx", "a.jsonl"])
    assert [a for _, a in inline_commands("x.md", "`ait align x | ait build --objective align > y`")] == [
        ["align", "x"], ["build", "--objective", "align"]]


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


def test_no_ait_command_hides_in_an_untagged_fence():
    """A shell example in a plain ``` fence would escape the collector: it must be ```bash."""
    hidden = [h for p in doc_files() for h in hidden_commands(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]
    assert not hidden, "tag these blocks ```bash and mark them:\n" + "\n".join(hidden)
    assert hidden_commands("x.md", "```\nait align x.jsonl\n```\n") == ["x.md:1: ait align x.jsonl"]


def test_checking_install_completion_installs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    check_command(["--install-completion"])
    assert list(tmp_path.iterdir()) == []


def test_an_unmarked_block_is_an_error():
    text = "intro\n\n```bash\nait languages\n```\n\n<!-- docs-test: needs lunch: x -->\n```bash\nait languages\n```\n"
    first, second = blocks("x.md", text)
    assert "no docs-test marker" in first.errors[0]
    assert "bad marker" in second.errors[0]


# ------------------------------------------------------------------------------------- executed blocks
RUN = [b for b in BLOCKS if b.run]


@pytest.fixture(scope="module")
def fixture_folder(tmp_path_factory, shared_data) -> Path:
    """The files the `run` blocks and the shown outputs name: 100 English-Kazakh pairs of OPUS-100's dev split
    (../shared/data, linked as opus100/) as kk.jsonl, my-test.jsonl, big.jsonl, new.jsonl; as TSV my-pairs.tsv,
    en-kk.tsv, big.tsv, new.tsv, km.tsv, pairs.tsv; as `src ||| tgt` corpus.fa; their alignment aligned.jsonl
    and kk.aligned.jsonl; MTInstruct and AlignInstruct records mt.jsonl (also .gz, de/nl/ru.mt.jsonl) and
    align.jsonl; the pairs with their reference as hypothesis, hyps.jsonl."""
    import gzip
    import json

    folder = tmp_path_factory.mktemp("docs-examples")
    ait = str(Path(sys.executable).parent / "ait")

    def run(*args: str) -> None:
        subprocess.run([ait, "-q", *args], cwd=folder, check=True, capture_output=True)

    (folder / "opus100").symlink_to(shared_data / "opus100")
    run("data", "opus100", "--pair", "en-kk", "--split", "dev", "--source", "opus100", "-o", "all.jsonl")
    records = [json.loads(line) for line in (folder / "all.jsonl").read_text(encoding="utf-8").splitlines()[:100]]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tsv = "".join(f"{r['src']}\t{r['tgt']}\n" for r in records)
    for name in ("kk.jsonl", "my-test.jsonl", "big.jsonl", "new.jsonl"):
        (folder / name).write_text(text, encoding="utf-8")
    for name in ("my-pairs.tsv", "en-kk.tsv", "big.tsv", "new.tsv", "km.tsv", "pairs.tsv"):
        (folder / name).write_text(tsv, encoding="utf-8")
    (folder / "corpus.fa").write_text(tsv.replace("\t", " ||| "), encoding="utf-8")
    (folder / "hyps.jsonl").write_text("".join(json.dumps({**r, "hyp": r["tgt"]}, ensure_ascii=False) + "\n"
                                               for r in records), encoding="utf-8")
    run("align", "kk.jsonl", "-o", "aligned.jsonl")
    shutil.copy(folder / "aligned.jsonl", folder / "kk.aligned.jsonl")
    run("build", "kk.jsonl", "--objective", "mt", "-o", "mt.jsonl")
    run("build", "aligned.jsonl", "--objective", "align", "-o", "align.jsonl")
    for lang in ("de", "nl", "ru"):
        shutil.copy(folder / "mt.jsonl", folder / f"{lang}.mt.jsonl")
    (folder / "mt.jsonl.gz").write_bytes(gzip.compress((folder / "mt.jsonl").read_bytes()))
    return folder


def _bash(command: str, folder: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    shutil.copytree(folder, work, symlinks=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}
    # `bash -e` as a reader's shell runs them (no pipefail: `cat x | ait build - | head -2` ends cat with SIGPIPE)
    return subprocess.run(["bash", "-e", "-c", command], cwd=work, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)


OUTPUTS = all_outputs()


@pytest.mark.parametrize("shown", OUTPUTS, ids=[o.where for o in OUTPUTS])
def test_the_outputs_shown_in_the_docs_are_what_ait_prints(shown: Output, fixture_folder: Path, tmp_path: Path):
    """The command's stderr and stdout are the block's text; the hub cache, an empty folder here, is shown as
    its default place (/root/.cache/huggingface)."""
    hf_home = tmp_path / "hf-home"
    result = _bash(shown.command, fixture_folder, tmp_path, HF_HOME=str(hf_home))
    printed = result.stdout.replace(str(hf_home), "/root/.cache/huggingface").rstrip()
    assert printed == shown.expected.rstrip(), f"{shown.where}: `{shown.command}` printed\n{printed}"


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_the_run_examples_run(block: Block, fixture_folder: Path, tmp_path: Path):
    result = _bash(block.substituted(), fixture_folder, tmp_path)
    assert result.returncode == 0, f"{block.where}: exit {result.returncode}\n{result.stdout[-3000:]}"

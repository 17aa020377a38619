"""The shell examples of README.md and docs/*.md, as the docs-examples tests see them (tests/docs/test_examples.py).

Every fenced ```bash block carries a marker, an HTML comment on the line(s) right above its fence
(docs/index.md, "Examples that are tested"):

    <!-- docs-test: run; sub OLD => NEW -->       executed with bash in a fixture folder (tiny models, local data)
    <!-- docs-test: needs hub: why -->            not executed (gpu | hub | cluster | slow | install), with why

Directives are separated by `;`. `sub OLD => NEW` replaces text in the block before anything else (a hub
model by a local one, `…` by real options, a shell function's output by its value). Whatever the marker,
every `ait ...` command line of every block is parsed against the real CLI: the command and each flag
exist and the values pass the options' parsers (`--print-config` where the command has it, which
resolves and checks the options without running; otherwise click's own parse). Shell variables assigned
in the block (`M=...`, the first word of `for X in ...`) are expanded; any other `$` in an `ait` line is
an error that asks for a `sub`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REASONS = ("gpu", "hub", "cluster", "slow", "install")
MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->", re.S)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Block:
    path: str  # relative to the repository root
    line: int  # the fence's line, 1-based
    text: str
    run: bool = False
    needs: str | None = None  # one of REASONS
    why: str = ""
    subs: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a missing or malformed marker

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def substituted(self) -> str:
        text = self.text
        for old, new in self.subs:
            if old not in text:
                self.errors.append(f"sub {old!r}: not in the block")
            text = text.replace(old, new)
        return text


def blocks(path: str, text: str) -> list[Block]:
    """The ```bash blocks of one Markdown text, with their markers."""
    lines = text.split("\n")
    found = []
    k = 0
    while k < len(lines):
        if lines[k].strip() != "```bash":
            k += 1
            continue
        end = k + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        block = Block(path, k + 1, "\n".join(lines[k + 1:end]))
        comment: list[str] = []  # the HTML comment(s) on the lines right above the fence
        above, inside = k - 1, False
        while above >= 0 and (inside or lines[above].strip().endswith("-->")):
            comment.insert(0, lines[above])
            inside = "<!--" not in lines[above]
            above -= 1
        markers = MARKER.findall("\n".join(comment))
        if not markers:
            block.errors.append("no docs-test marker above the block (`<!-- docs-test: run -->` or "
                                f"`<!-- docs-test: needs {'|'.join(REASONS)}: why -->`)")
        for directive in (d.strip() for m in markers for d in m.split(";")):
            if directive == "run":
                block.run = True
            elif directive.startswith("needs "):
                reason, _, why = directive[len("needs "):].partition(":")
                if reason.strip() not in REASONS or not why.strip():
                    block.errors.append(f"bad marker {directive!r}: needs {'|'.join(REASONS)}: why")
                block.needs, block.why = reason.strip(), why.strip()
            elif directive.startswith("sub ") and " => " in directive:
                old, new = directive[len("sub "):].split(" => ", 1)
                block.subs.append((old.strip(), new.strip()))
            elif directive:
                block.errors.append(f"unknown docs-test directive {directive!r}")
        if markers and block.run == (block.needs is not None):
            block.errors.append("a block is either `run` or `needs REASON: why`")
        found.append(block)
        k = end + 1
    return found


def all_blocks() -> list[Block]:
    return [b for p in doc_files() for b in blocks(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]


@dataclass
class Output:
    """A shown output: a plain ``` block under `<!-- docs-test: output of: COMMAND -->`, or a transcript
    whose first line is `$ COMMAND`; the command's stderr and stdout together must be the block's text."""
    path: str
    line: int
    command: str
    expected: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def fences(text: str) -> list[tuple[int, str, list[str], list[str]]]:
    """Every fenced block: (the fence's line, its info string, its lines, the lines above it)."""
    lines = text.split("\n")
    out, k = [], 0
    while k < len(lines):
        if not lines[k].strip().startswith("```"):
            k += 1
            continue
        end = k + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        out.append((k + 1, lines[k].strip()[3:], lines[k + 1:end], lines[:k]))
        k = end + 1
    return out


def outputs(path: str, text: str) -> list[Output]:
    found = []
    for line, info, body, above in fences(text):
        if info:
            continue
        marker = MARKER.findall(above[-1]) if above else []
        if marker and marker[0].strip().startswith("output of:"):
            found.append(Output(path, line, marker[0].strip()[len("output of:"):].strip(), "\n".join(body)))
        elif body and body[0].startswith("$ ait "):
            found.append(Output(path, line, body[0][2:], "\n".join(body[1:])))
    return found


def all_outputs() -> list[Output]:
    return [o for p in doc_files() for o in outputs(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))]


def hidden_commands(path: str, text: str) -> list[str]:
    """`ait` command lines in fences other than ```bash (which the collector would not see)."""
    return [f"{path}:{line}: {row.strip()}" for line, info, body, _ in fences(text) if info != "bash"
            for row in body if row.startswith("ait ") and not (body[0].startswith("$ ait ") or info)]


# ------------------------------------------------------------------------------------------ shell words
def _strip_comments(text: str) -> str:
    """Text without shell comments (`#` starting a word, outside quotes) and line continuations; an unquoted
    newline becomes `;` (a command boundary), a quoted one a space."""
    out, quote, k = [], None, 0
    while k < len(text):
        c = text[k]
        if quote:
            out.append(" " if c == "\n" else c)
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "\\" and text[k + 1:k + 2] == "\n":
            out.append(" ")
            k += 1
        elif c == "#" and (k == 0 or text[k - 1] in " \t\n;"):
            while k < len(text) and text[k] != "\n":
                k += 1
            continue
        elif c == "\n":
            out.append(" ; ")
        else:
            out.append(c)
        k += 1
    return "".join(out)


ASSIGNMENT = re.compile(r"(?:^|[\s;])([A-Za-z_]\w*)=(\"[^\"]*\"|'[^']*'|[^\s;]*)")
FOR_LOOP = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\s+([^;]+);")
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)")


def _expand(text: str, env: dict[str, str]) -> str:
    for _ in range(5):  # values that name other variables (A=$RUNS/x)
        text = VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)
    return text


def shell_variables(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a block assigns (`M=...`; a loop's variable: its first word), on top of `env` (those of
    the page's earlier blocks, which a reader has run in the same shell)."""
    env = dict(env or {})
    text = _strip_comments(text)
    for m in ASSIGNMENT.finditer(text):
        env[m.group(1)] = _expand(m.group(2).strip("'\""), env)
    for m in FOR_LOOP.finditer(text):  # a loop's first value stands for all
        words = _expand(m.group(2), env).split()
        env[m.group(1)] = words[0] if words else ""
    return {name: _expand(value, env) for name, value in env.items()}


def ait_commands(block: Block, env: dict[str, str] | None = None) -> list[list[str]]:
    """The argument lists of the block's `ait` commands (after `sub`s and the shell variables)."""
    text = _strip_comments(block.substituted())
    env = shell_variables(text, env)
    commands = []
    for statement in re.split(r"(?<![<>&|;]);(?!;)|&&|\|\||(?<![<>|])\|(?!\|)|(?<![<>&])&(?!&)", text):
        if "ait" not in statement:
            continue
        words = shlex.split(_expand(statement, env))
        # redirections end the command's words (`> out.jsonl`, `2> log`)
        for k, word in enumerate(words):
            if word[:1] in "<>" or re.fullmatch(r"\d?[<>]+.*", word):
                words = words[:k]
                break
        while words and (re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]) or words[0] in ("do", "then", "else", "time")):
            words = words[1:]
        if words and words[0] == "ait":
            commands.append(words[1:])
    return commands


# ------------------------------------------------------------------------------------------ the real CLI
def check_command(args: list[str]) -> str:
    """Parse `ait ARGS` against the real CLI without running it; returns how ('print-config' or 'parse'),
    raises AssertionError naming what is wrong. ait's global state (`-q`) is left as it was."""
    from aligninstruct_cli import console

    quiet = console.is_quiet()
    try:
        return _check_command(args)
    finally:
        console.set_quiet(quiet)


def _check_command(args: list[str]) -> str:
    from typer.main import get_command
    from typer.testing import CliRunner

    from aligninstruct_cli.cli import app

    unexpanded = [a for a in args if "$" in a or "…" in a]
    if unexpanded:
        raise AssertionError(f"unexpanded {unexpanded}: declare `sub OLD => NEW` in the block's marker")
    if args[:1] in (["--version"], ["--help"], ["-h"]) or "--help" in args or "-h" in args:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return "parse"
    cli = get_command(app)
    # eager options that act when parsed (`--install-completion` writes to ~/.bashrc): only their names checked
    acting = {"--install-completion", "--show-completion"}
    if acting & set(args):
        names = {o for p in cli.params for o in p.opts}
        assert acting & set(args) <= names, f"ait {shlex.join(args)}: no such option"
        return "parse"
    try:
        ctx = cli.make_context("ait", list(args))
        command, rest, parents = cli, ctx._protected_args + ctx.args, [ctx]
        while hasattr(command, "resolve_command") and rest:
            name, command, rest = command.resolve_command(parents[-1], rest)
            parents.append(command.make_context(name, list(rest), parent=parents[-1]))
            rest = parents[-1]._protected_args + parents[-1].args if hasattr(command, "resolve_command") else []
    except Exception as exc:  # click's UsageError, BadParameter, NoSuchOption ...
        raise AssertionError(f"ait {shlex.join(args)}: {type(exc).__name__}: {exc}") from None
    if any(p.name == "print_config" for p in command.params) and "--print-config" not in args:
        if "--config" in args and not Path(args[args.index("--config") + 1]).exists():
            at = args.index("--config")  # a config file the example writes first: its values are not checked
            args = args[:at] + args[at + 2:]
        result = CliRunner().invoke(app, [*args, "--print-config"])
        assert result.exit_code == 0, f"ait {shlex.join(args)} --print-config: exit {result.exit_code}: {result.output}"
        return "print-config"
    return "parse"


INLINE = re.compile(r"`(ait [^`]+)`")


def inline_commands(path: str, text: str) -> list[tuple[str, list[str]]]:
    """The `ait ...` code spans of a page's prose (fragments such as `ait train --output`, often with
    placeholders), outside fenced blocks; a span with `:` quotes a message and is left out."""
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    found = []
    for m in INLINE.finditer(prose):
        if ":" in m.group(1):
            continue
        try:
            words = shlex.split(m.group(1))
        except ValueError:
            words = m.group(1).split()
        segment: list[str] = []
        for word in [*words, "|"]:  # `ait align x | ait build ... > y`: each ait command on its own
            if word in ("|", ";", "&&", "||") or word[:1] in "<>":
                if segment[:1] == ["ait"]:
                    found.append((f"{path}:{prose.count(chr(10), 0, m.start()) + 1}", segment[1:]))
                segment = [] if word[:1] not in "<>" else ["<redirect>"]
            else:
                segment.append(word)
    return found


def check_names(args: list[str]) -> None:
    """The command path of an inline `ait ...` span exists and each of its flags is an option of that
    command (values and placeholders are not checked)."""
    from typer.main import get_command

    from aligninstruct_cli.cli import app
    from aligninstruct_cli.commands.score import sacrebleu_argv

    def options(command) -> set[str]:
        return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}

    command, k, path = get_command(app), 0, ["ait"]
    while k < len(args) and args[k].startswith("-"):
        assert args[k].split("=", 1)[0] in options(command), f"{' '.join(path)}: no option {args[k]}"
        k += 1
    while hasattr(command, "commands") and k < len(args) and not args[k].startswith("-"):
        if args[k] in ("...", "…"):
            return
        assert args[k] in command.commands, f"{' '.join(path)}: no command {args[k]!r}"
        command = command.commands[args[k]]
        path.append(args[k])
        k += 1
    known = options(command)
    for word in sacrebleu_argv(args[k:]) if path[-1] == "score" else args[k:]:
        if word.startswith("-") and word != "-" and not re.fullmatch(r"-[\d.]+", word):
            assert word.split("=", 1)[0] in known, f"{' '.join(path)}: no option {word.split('=', 1)[0]}"


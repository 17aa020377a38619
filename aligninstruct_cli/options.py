"""One definition per option: a stage's options are a dataclass whose fields carry their default, type,
choices (a `Literal` type), range and help, as peft's `LoraConfig` does.

Everything else is derived from these fields: the Typer command's options (`commands/command_factory.py`),
`--config FILE` files (`load_config`), the experiment configs and the option tables in `docs/`
(`docgen.py`). Validation lives in the dataclass too: `check_options` (called from each options
class's `__post_init__`) parses, type-checks and range-checks every field, and raises `OptionError`,
whose message names the field; the CLI shows the flag instead, and a config file its key.

    @dataclass(kw_only=True)
    class ProbeOptions:
        batch_size: int = option(16, help="Sentences per forward pass.", min=1)

        def __post_init__(self) -> None:
            check_options(self)
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

from aligninstruct_cli.errors import AitError

OPTION_KEY = "ait"


@dataclass(frozen=True)
class OptionSpec:
    """What a field needs beyond its type and default to become a command-line option and a docs row."""

    help: str
    flags: tuple[str, ...] = ()  # default: ("--field-name",)
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # the bound itself is not allowed (checked here; Typer only knows closed ranges)
    max_open: bool = False
    parse: Callable[[Any], Any] | None = None  # raw value (CLI text or config value) -> field value
    cli_type: Any = None  # the type Typer reads when it is not the field's (e.g. text that `parse` splits)
    metavar: str | None = None
    panel: str | None = None  # a help panel of the command (rich_help_panel)
    default_doc: str | None = None  # how --help and the docs show a default that is computed later
    details: str = ""  # more for the docs' option table (after `help`)
    negatable: bool = False  # a bool shown as --x/--no-x
    aliases: tuple[str, ...] = ()  # deprecated flag spellings, still accepted with a note


def option(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field that is a user-facing option (see `OptionSpec` for `spec`)."""
    return field(default=default, default_factory=default_factory,
                 metadata={OPTION_KEY: OptionSpec(help=help, **spec)})


# ---------------------------------------------------------------------------------------------- errors
_NAME = re.compile(r"\x00(\w+)\x00")


def option_ref(field_name: str) -> str:
    """A placeholder for a field's name inside an `OptionError` message (rendered as field, flag or key)."""
    return f"\x00{field_name}\x00"


class OptionError(AitError):
    """A bad option value. The message holds field placeholders (`option_ref(field)`): the library shows the field name,
    the CLI the flag (`--max-tokens`), a config file its key (`train.yaml: max_tokens`)."""

    def __init__(self, message: str, *, hint: str | None = None):
        self.template = message
        super().__init__(_NAME.sub(lambda m: m.group(1), message), hint=hint)

    @property
    def fields(self) -> list[str]:
        return _NAME.findall(self.template)

    def render(self, display: Callable[[str], str]) -> str:
        return _NAME.sub(lambda m: display(m.group(1)), self.template)


# ---------------------------------------------------------------------------------------------- fields
def option_fields(cls: type) -> list[Any]:
    """The dataclass fields of `cls` that are options, in definition order."""
    return [f for f in fields(cls) if OPTION_KEY in f.metadata]


def spec_of(f: Any) -> OptionSpec:
    return f.metadata[OPTION_KEY]


@lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flags_of(f: Any) -> tuple[str, ...]:
    spec = spec_of(f)
    return spec.flags or ("--" + f.name.replace("_", "-"),)


def flag_of(f: Any) -> str:
    return flags_of(f)[0]


def has_default(f: Any) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def default_of(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def strip_optional(hint: Any) -> tuple[Any, bool]:
    """(X, True) for Optional[X], else (hint, False)."""
    if typing.get_origin(hint) is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def choices_of(hint: Any) -> tuple | None:
    base, _ = strip_optional(hint)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


# ---------------------------------------------------------------------------------------------- checks
def _type_name(hint: Any) -> str:
    base, _ = strip_optional(hint)
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(base, str(base))


def coerce(value: Any, hint: Any, field_name: str) -> Any:
    """`value` as the field's type (ints become floats for float fields, tuples lists); OptionError if it
    is not of that type."""
    base, optional = strip_optional(hint)
    if value is None:
        if optional:
            return None
        raise OptionError(f"{option_ref(field_name)} must be given (it has no default)")
    origin = typing.get_origin(base)
    bad = OptionError(f"{option_ref(field_name)} must be {_type_name(base)}, not {value!r}")
    if origin is Literal:
        choices = typing.get_args(base)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            raise OptionError(f"{option_ref(field_name)} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(base)[:1] or (Any,)
        return [coerce(v, item, field_name) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        key_t, value_t = typing.get_args(base) or (Any, Any)
        return {coerce(k, key_t, field_name): coerce(v, value_t, field_name) for k, v in value.items()}
    return value


MAX_INT = 2**63 - 1


def check_range(value: Any, spec: OptionSpec, field_name: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and math.isnan(value):
        raise OptionError(f"{option_ref(field_name)} must be a number, not nan")
    if isinstance(value, int) and abs(value) > MAX_INT:  # seeds, counts and limits all end in 64-bit integers
        raise OptionError(f"{option_ref(field_name)} is too large ({len(str(abs(value)))} digits; at most 2^63-1)")
    low, high = spec.min, spec.max
    if low is not None and (value < low or (spec.min_open and value == low)):
        raise OptionError(f"{option_ref(field_name)} must be {'above' if spec.min_open else 'at least'} {low:g}, "
                          f"not {value:g}")
    if high is not None and (value > high or (spec.max_open and value == high)):
        raise OptionError(f"{option_ref(field_name)} must be {'below' if spec.max_open else 'at most'} {high:g}, "
                          f"not {value:g}")


def check_options(obj: Any) -> None:
    """Parse, type-check and range-check every option field of `obj` in place (its `__post_init__`)."""
    hints = type_hints(type(obj))
    for f in option_fields(type(obj)):
        spec = spec_of(f)
        value = getattr(obj, f.name)
        if spec.parse is not None and value is not None:
            try:
                value = spec.parse(value)
            except OptionError:
                raise
            except AitError as exc:
                raise OptionError(f"{option_ref(f.name)}: {exc.message}", hint=exc.hint) from None
            except (ValueError, TypeError) as exc:
                raise OptionError(f"{option_ref(f.name)}: {exc}") from None
        value = coerce(value, hints[f.name], f.name)
        check_range(value, spec, f.name)
        object.__setattr__(obj, f.name, value)


def describe_range(spec: OptionSpec) -> str:
    """`x>=1`, `0<=x<1`, ... for ranges Typer cannot show itself (open bounds)."""
    low = "" if spec.min is None else f"{spec.min:g}{'<' if spec.min_open else '<='}"
    high = "" if spec.max is None else f"{'<' if spec.max_open else '<='}{spec.max:g}"
    if not low and not high:
        return ""
    if not high:
        return f"x{'>' if spec.min_open else '>='}{spec.min:g}"
    return f"{low}x{high}"


def to_dict(obj: Any) -> dict[str, Any]:
    """The option fields of `obj` as plain JSON-ready values (for manifests and config files)."""
    return {f.name: plain_value(getattr(obj, f.name)) for f in option_fields(type(obj))}


def plain_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------- config files
CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


CONFIG_MAX_BYTES = 10 << 20  # a config is a few KB; anything this big is not one
YAML_MAX_ALIASES = 1000  # aliases (*name) in one YAML config
YAML_MAX_NODES = 1_000_000  # values once every alias is expanded (a "billion laughs" file has 10^9)


def _config_text(path: str | Path) -> str:
    """A config file's text: strict UTF-8, no NUL byte (a binary file), at most CONFIG_MAX_BYTES."""
    p = Path(path)
    try:
        if p.stat().st_size > CONFIG_MAX_BYTES:
            raise AitError(f"{path}: {p.stat().st_size:,} bytes: too large for a config file "
                           f"(at most {CONFIG_MAX_BYTES >> 20} MB)")
        data = p.read_bytes()
    except OSError as exc:
        raise AitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise AitError(f"{path}: a binary file, not a config (YAML, JSON or TOML text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise AitError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); a config file is UTF-8 YAML, JSON or "
                       "TOML") from None


def yaml_text(text: str, path: str | Path) -> Any:
    """YAML through the safe loader, with its aliases bounded (count, and values once expanded: no "billion
    laughs") and duplicate keys refused (FILE:LINE), before any Python object is built."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_node(node, str(path))
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml_node(root: Any, path: str) -> None:
    sizes: dict[int, int] = {}  # node id -> values under it, aliases expanded (each node counted once here)
    seen_ids: set[int] = set()
    aliases = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:  # iterative: a deeply nested file must not overflow Python's stack
        node, children_done = stack.pop()
        if children_done:
            children = _yaml_children(node)
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), YAML_MAX_NODES + 1)
            if sizes[id(node)] > YAML_MAX_NODES:
                raise AitError(f"{path}: more than {YAML_MAX_NODES:,} values once its aliases are expanded: not a "
                               "config (an alias bomb?)")
            continue
        if id(node) in seen_ids:
            aliases += 1  # a node reached again is an alias (the composer shares the anchored node)
            if aliases > YAML_MAX_ALIASES:
                raise AitError(f"{path}:{node.start_mark.line + 1}: more than {YAML_MAX_ALIASES:,} aliases "
                               "(*name): not a config")
            if id(node) not in sizes:
                raise AitError(f"{path}:{node.start_mark.line + 1}: a recursive alias")
            continue
        seen_ids.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[Any, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in keys:
                        raise AitError(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key_node.value!r} "
                                       f"(first at line {keys[key]})")
                    keys[key] = key_node.start_mark.line + 1
        stack.append((node, True))
        stack.extend((c, False) for c in _yaml_children(node))


def _yaml_children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _json_config(text: str, path: str | Path) -> Any:
    """JSON with duplicate keys refused (FILE:LINE of the second), as YAML's."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _DuplicateKey(key)
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _DuplicateKey as exc:
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(exc.key)) + r"\s*:", text)]
        line = text[:hits[1]].count("\n") + 1 if len(hits) > 1 else None
        raise AitError(f"{path}{f':{line}' if line else ''}: duplicate key {exc.key!r}") from None
    except json.JSONDecodeError as exc:
        raise AitError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    except RecursionError:
        raise AitError(f"{path}: nested too deeply for a config") from None


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file (YAML, JSON or TOML, by suffix; YAML otherwise) as a mapping; AitError naming the file
    (and line, where the parser gives one) when it cannot be read, is not UTF-8 text, repeats a key or expands
    its YAML aliases beyond any config's size. Every `--config FILE` and experiment config is read here."""
    p = Path(path)
    if not p.is_file():
        raise AitError(f"{path}: no such config file")
    text = _config_text(p)
    suffix = p.suffix.lower()
    if suffix == ".json":
        data = _json_config(text, path)
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AitError(f"{path}: malformed TOML: {exc}") from None
        except RecursionError:
            raise AitError(f"{path}: nested too deeply for a config") from None
    else:
        try:
            data = yaml_text(text, path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise AitError(f"{where}: malformed YAML: {problem}") from None
        except RecursionError:
            raise AitError(f"{path}: nested too deeply for a config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AitError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    return data


def config_values(data: dict[str, Any], cls: type, source: str, *, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The entries of a config mapping as field values of `cls`: keys are field names (`max_tokens`; the flag
    spelling `max-tokens` works too). An unknown key is an error naming `source` and the key."""
    known = {f.name for f in option_fields(cls)} | set(allowed)
    out: dict[str, Any] = {}
    for key, value in data.items():
        field_name = str(key).replace("-", "_")
        if field_name not in known:
            close = difflib.get_close_matches(field_name, sorted(known), n=1)
            raise AitError(f"{source}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                           hint=f"the keys are the options' names: {', '.join(sorted(known))}")
        out[field_name] = value
    return out


def load_config(path: str | Path, cls: type) -> dict[str, Any]:
    """Field values for `cls` from a config file."""
    return config_values(read_config_file(path), cls, str(path))

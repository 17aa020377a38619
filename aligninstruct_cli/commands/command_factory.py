"""How a stage's options dataclass becomes a Typer command, and the few parameters that are not stage
options (inputs, stream outputs), defined once each and shared by the commands.

`stage_command(app, "probe", ProbeOptions, run, extras=[...])` registers a command whose options are the
dataclass's fields (flags, defaults, choices, ranges and help from `options.option(...)`), plus
`--config FILE` and `--print-config`. When it runs, the values come from the dataclass defaults, then
the config file, then the flags the user typed (only those: a flag left at its default does not undo a
config value); the dataclass checks them, and an `OptionError` names the flag (or the config key)."""

from __future__ import annotations

import inspect
import sys
from typing import Any, Callable, Optional

import typer
import yaml
from rich.markup import escape
from typing_extensions import Annotated

from aligninstruct_cli import console
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import ErrorPolicy, check_distinct_outputs, check_outputs_are_not_inputs
from aligninstruct_cli.languages import use_language_file
from aligninstruct_cli.options import (OptionError, default_of, describe_range, flag_of, flags_of, has_default,
                                       load_config, option_fields, option_ref, plain_value, spec_of, to_dict,
                                       type_hints)
from aligninstruct_cli.registry import STAGE_OPTIONS

InputArg = Annotated[str, typer.Argument(help="Input file (JSONL, TSV or `src ||| tgt`; .gz ok); - for stdin.",
                                         show_default=True)]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output file (written atomically; .gz ok); - for stdout.")]
ConfigOpt = Annotated[Optional[str], typer.Option(
    "--config", metavar="FILE", help="Read options from a YAML, JSON or TOML file whose keys are the options' "
    "names (e.g. max_new_tokens: 256); flags typed on the command line win over it.", show_default=False)]
PrintConfigOpt = Annotated[bool, typer.Option(
    "--print-config", help="Print the resolved options as YAML (a config file for --config) and exit.")]

# The parameters (extras or options) that name a command's input files and its output files: an output
# may never be one of the inputs (`io.check_outputs_are_not_inputs`, before anything is read).
INPUT_PARAMETERS = ("input", "inputs", "hyps", "baseline", "refs")
OUTPUT_PARAMETERS = {"output": "-o", "sentence_level": "--sentence-level", "plot": "--plot", "summary": "--summary",
                     "save_model": "--save-model"}
# Input folders no output may be or lie inside (`train --output` in the base model's folder would fill it).
FOLDER_PARAMETERS = {"model": "--model"}


def _check_registered(command_name: str, cls: type) -> None:
    """A command's options dataclass is the one the library's registry names for it (one table, not two)."""
    if STAGE_OPTIONS.get(command_name) is not cls:
        raise RuntimeError(f"command {command_name!r}: its options {cls.__name__} are not "
                           f"registry.STAGE_OPTIONS[{command_name!r}]")


def _paths(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def check_no_overwrite(options: Any, extras: dict[str, Any]) -> None:
    """The command's outputs are none of its inputs, each is a file of its own, and none is in the model's
    folder (named by the parameters above); checked before any work."""
    def value(name: str) -> Any:
        return extras[name] if name in extras else getattr(options, name, None)

    inputs = [p for name in INPUT_PARAMETERS for p in _paths(value(name))]
    outputs = [(flag, p) for name, flag in OUTPUT_PARAMETERS.items() for p in _paths(value(name))]
    if inputs and outputs:
        check_outputs_are_not_inputs(inputs, outputs)
    folders = [(flag, p) for name, flag in FOLDER_PARAMETERS.items() for p in _paths(value(name))]
    check_distinct_outputs(outputs, folders)


def finish(policy: ErrorPolicy) -> None:
    """Report skipped records (if any) on stderr at the end of a command."""
    report = policy.report()
    if report:
        console.warn(report)


class Extra:
    """A command parameter that is not a stage option: an input argument, a stream output, an action flag."""

    def __init__(self, name: str, annotation: Any, default: Any = inspect.Parameter.empty):
        self.name, self.annotation, self.default = name, annotation, default


def _typer_parameter(f: Any, hints: dict[str, Any]) -> inspect.Parameter:
    spec = spec_of(f)
    cli_type = spec.cli_type if spec.cli_type is not None else hints[f.name]
    required = not has_default(f)
    default = cli_default(f)
    if spec.negatable:
        flags = (f"{flag_of(f)}/--no-{flag_of(f)[2:]}",) + flags_of(f)[1:]
    else:
        flags = flags_of(f)
    help_text = spec.help
    if spec.min_open or spec.max_open:
        help_text += f" [{describe_range(spec)}]"
    if required:
        help_text += " [required]"
    if spec.default_doc is not None:
        show_default: Any = spec.default_doc
    elif default is None and not required and default_of(f) is not None:
        show_default = _shown(default_of(f))
    else:
        show_default = default is not None and default is not False
    closed = not (spec.min_open or spec.max_open)  # Typer shows closed ranges itself; open ones are in the help
    # help is plain text; Typer reads rich markup, where "[required]" would vanish as a tag
    info = typer.Option(*flags, help=escape(help_text), show_default=show_default, metavar=spec.metavar,
                        min=spec.min if closed else None, max=spec.max if closed else None,
                        rich_help_panel=spec.panel)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[cli_type, info])


def cli_default(f: Any) -> Any:
    """The default Typer gets: the field's when it is a plain value; None for a required option and for a
    list or mapping the command line spells as text (its `default_doc` shows it)."""
    if not has_default(f):
        return None
    value = default_of(f)
    return value if isinstance(value, (str, int, float, bool)) else None


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _alias_parameters(f: Any, hints: dict[str, Any]) -> list[inspect.Parameter]:
    spec = spec_of(f)
    cli_type = spec.cli_type if spec.cli_type is not None else hints[f.name]
    return [inspect.Parameter(f"{f.name}__alias{k}", inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[Optional[cli_type], typer.Option(  # type: ignore[valid-type]
                                  alias, hidden=True, help=f"Deprecated spelling of {flag_of(f)}.")])
            for k, alias in enumerate(spec.aliases)]


def _given(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def resolve_options(cls: type, ctx: typer.Context, values: dict[str, Any], config: str | None,
                    from_file: dict[str, Any]):
    """The options dataclass from defaults < config file (`from_file`: `config` read by `load_config`) < typed
    flags, and how to word an OptionError for this command line (each field as its flag, or as its key in the
    config file)."""
    typed: dict[str, Any] = {}
    for f in option_fields(cls):
        for k, alias in enumerate(spec_of(f).aliases):
            value = values.pop(f"{f.name}__alias{k}", None)
            if value is not None:
                console.warn(f"{alias} is deprecated; use {flag_of(f)}")
                typed[f.name] = value
        if _given(ctx, f.name):
            typed[f.name] = values[f.name]
    merged = {**from_file, **typed}
    flags = {f.name: flag_of(f) for f in option_fields(cls)}

    def render(exc: OptionError) -> str:
        """The message with flags for what was typed (or defaulted) and keys for what the config file gave;
        then it starts with the file's name."""
        from_config = [name for name in exc.fields if name in from_file and name not in typed]
        message = exc.render(lambda name: name if name in from_config else flags.get(name, name))
        return f"{config}: {message}" if from_config else message

    missing = [f for f in option_fields(cls) if not has_default(f) and f.name not in merged]
    if missing:
        names = ", ".join(flag_of(f) for f in missing)
        raise AitError(f"missing option{'s' if len(missing) > 1 else ''} {names}",
                       hint="give them as flags or as keys of a --config file")
    try:
        load_language_file(merged.get("languages") if "languages" in flags else None)
        return cls(**merged), render
    except OptionError as exc:
        raise AitError(render(exc), hint=exc.hint) from None


def load_language_file(path: Any) -> None:
    """`--languages FILE`: load it for this command before its options are built, so that they (and the
    stage) may name its codes. The one place a command changes the language table."""
    if not isinstance(path, str):
        return  # none given (AIT_LANGUAGES applies), or not a path: the options' own check words the error
    try:
        use_language_file(path)
    except AitError as exc:  # worded as the options' check words a bad value: the flag, or the config key
        raise OptionError(f"{option_ref('languages')}: {exc.message}", hint=exc.hint) from None


def config_without_required(cls: type, ctx: typer.Context, values: dict[str, Any],
                            from_file: dict[str, Any]) -> str | None:
    """`--print-config` while required options are missing: the defaults and what was given (`from_file`: the
    config file's), as YAML, each missing option `null` and marked `# required`; None when nothing is missing
    (the options are then resolved and checked as for a run)."""
    given = {**from_file, **{f.name: values[f.name] for f in option_fields(cls) if _given(ctx, f.name)}}
    missing = {f.name: flag_of(f) for f in option_fields(cls) if not has_default(f) and f.name not in given}
    if not missing:
        return None
    shown = {f.name: plain_value(given[f.name] if f.name in given else default_of(f) if has_default(f) else None)
             for f in option_fields(cls)}
    lines = []
    for line in yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).splitlines():
        name = line.split(":", 1)[0]
        lines.append(f"{line}  # required ({missing[name]})" if name in missing and not line.startswith(" ") else line)
    console.info(f"required, not given: {', '.join(missing.values())} (marked `# required`)")
    return "\n".join(lines) + "\n"


def stage_command(app: typer.Typer, command_name: str, cls: type, run: Callable[..., Any], *,
                  extras: tuple[Extra, ...] = (), help: str | None = None, aliases: tuple[str, ...] = (),
                  short_help: str | None = None) -> Callable[..., Any]:
    """Register `ait COMMAND_NAME` (and `aliases`): options from `cls`, the `extras` parameters, `--config`
    and `--print-config`. `run(options, **extras)` does the work."""
    hints = type_hints(cls)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    params += [inspect.Parameter(e.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=e.default,
                                 annotation=e.annotation) for e in extras]
    # required options first, then the command's own, then each help panel's (input, EM, ...) together
    panels = list(dict.fromkeys(spec_of(f).panel for f in option_fields(cls) if spec_of(f).panel))
    ordered = sorted(option_fields(cls), key=lambda f: (has_default(f), panels.index(spec_of(f).panel) + 1
                                                         if spec_of(f).panel else 0))
    params += [_typer_parameter(f, hints) for f in ordered]
    params += [p for f in option_fields(cls) for p in _alias_parameters(f, hints)]
    params += [inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
               inspect.Parameter("print_config", inspect.Parameter.KEYWORD_ONLY, default=False,
                                 annotation=PrintConfigOpt)]
    extra_names = [e.name for e in extras]

    def command(ctx: typer.Context, **values: Any) -> None:
        config = values.pop("config")
        print_config = values.pop("print_config")
        extra_values = {k: values.pop(k) for k in extra_names}
        from_file = load_config(config, cls) if config else {}
        if print_config:
            partial = config_without_required(cls, ctx, values, from_file)
            if partial is not None:
                sys.stdout.write(partial)
                return
        options, render = resolve_options(cls, ctx, values, config, from_file)
        if print_config:
            sys.stdout.write(yaml.safe_dump(to_dict(options), sort_keys=False, allow_unicode=True))
            return
        check_no_overwrite(options, extra_values)
        try:
            run(options, **extra_values)
        except OptionError as exc:  # a check the library makes later (e.g. against the data)
            raise AitError(render(exc), hint=exc.hint) from None

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = command_name.replace("-", "_")
    command.__doc__ = help or run.__doc__
    _check_registered(command_name, cls)
    app.command(command_name, help=help or run.__doc__, short_help=short_help)(command)
    for alias in aliases:
        _check_registered(alias, cls)
        app.command(alias, help=help or run.__doc__, short_help=f"Alias of {command_name}.")(command)
    return command

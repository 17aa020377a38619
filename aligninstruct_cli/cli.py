"""The `ait` Typer app: one command per stage, registered from `aligninstruct_cli.commands`.

User errors (`AitError`) become one message on stderr and exit code 2, and so do the system's refusals of a
file (permission denied, a read-only file system, a name too long, a disk full: `ENVIRONMENT_ERRNOS`); a
closed output pipe ends the run quietly with exit code 0; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from aligninstruct_cli import __version__, console
from aligninstruct_cli.commands.score import sacrebleu_argv
from aligninstruct_cli.errors import AitError
from aligninstruct_cli.io import Terminated, install_termination_handlers

# One module per stage; each exposes `register(app)`.
COMMAND_MODULES = ("align", "build", "mix", "train", "translate", "score", "probe", "export", "data", "demo",
                   "languages", "experiment")


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. under CliRunner)
        pass


# errors the system gives for a file the user named, never a bug of ait's
ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOSPC, errno.EDQUOT,
                      errno.EFBIG, errno.ELOOP, errno.EISDIR, errno.ENOTDIR, errno.EMFILE, errno.ENFILE, errno.ENOENT,
                      errno.ENXIO)


def report_error(exc: Exception) -> None:
    # a file name that is not UTF-8 (surrogate-escaped bytes) is shown escaped, not a UnicodeEncodeError
    text = f"ait: error: {exc}\n".encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(text)
    sys.stderr.flush()


def environment_error(exc: OSError) -> AitError:
    where = f"{exc.filename}: " if exc.filename else ""
    return AitError(f"{where}{exc.strerror or exc}")


class AitGroup(TyperGroup):
    def parse_args(self, ctx, args):  # click API: sacrebleu's spellings rewritten before click parses them
        return super().parse_args(ctx, sacrebleu_argv(list(args)))

    def invoke(self, ctx):  # click API; typer>=0.29 vendors click, so no click import
        try:
            return super().invoke(ctx)
        except AitError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            error = environment_error(exc)
            report_error(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("ait: interrupted\n")
            raise typer.Exit(130) from None
        except Terminated as exc:  # SIGTERM/SIGHUP: temporary files were removed on the way out
            sys.stderr.write(f"ait: stopped by {exc}\n")
            raise typer.Exit(128 + exc.signum) from None


app = typer.Typer(
    name="ait",
    cls=AitGroup,
    help="ait: teach multilingual LLMs unseen languages with AlignInstruct. Stages read and write JSONL "
         "(use - for stdin/stdout) so they chain with pipes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ait {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars, summaries or DeepSpeed INFO lines on stderr (errors and warnings still show)."),
) -> None:
    console.set_quiet(quiet)
    for key, value in console.quiet_environment().items():  # the entry point's settings for the libraries
        os.environ.setdefault(key, value)


for _name in COMMAND_MODULES:
    importlib.import_module(f"aligninstruct_cli.commands.{_name}").register(app)


def main() -> None:
    install_termination_handlers()
    app()

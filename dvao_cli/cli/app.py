"""The `dvao` command line: parse options, call the core, render. No math here.

Every command module under `dvao_cli/cli/commands/` imports only typer at module level, so that
`dvao --help` starts without torch or matplotlib.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

# Help and usage errors in plain text when piped or with NO_COLOR (typer reads this at import).
if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
    os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # noqa: E402

from dvao_cli import __version__
from dvao_cli.cli import values as cli_values  # noqa: E402
from dvao_cli.cli.commands import analyze, importer, plot, report, simulate, train
from dvao_cli.cli.console import dvao_warnings, is_debug, printable, set_debug, set_quiet
from dvao_cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    DvaoError,
    is_panic,
    panic_error,
)

cli_values.install()  # plain option values without pydantic (60 ms of a run)

QUIET_HELP = "No progress bars or status lines; results only."
DEBUG_HELP = "Show the traceback of any error."

app = typer.Typer(
    name="dvao",
    help="Which of your rewards still carries a learning signal, and what DVAO would weight.\n\n"
    "Reads multi-reward GRPO rollout logs (Parquet), computes per-objective within-group "
    "variance, DVAO weights and the advantages of every multi-reward scheme.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"dvao {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
) -> None:
    set_quiet(quiet)
    set_debug(debug)


class _PipeClosed(Exception):
    """stdout's reader went away (`dvao analyze LOG | head -1`)."""


def _as_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The command `fn` with the root flags as its own options too, so `dvao analyze LOG -q`
    works as `dvao -q analyze LOG` does (they only switch on: a flag before the command stays);
    a broken pipe is handed to `run` past click (which would exit 1 for it)."""
    extra = [
        inspect.Parameter(
            "_quiet_flag",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)],
        ),
        inspect.Parameter(
            "_debug_flag",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)],
        ),
    ]

    @functools.wraps(fn)
    def command(*args: Any, _quiet_flag: bool = False, _debug_flag: bool = False, **kw: Any) -> Any:
        if _quiet_flag:
            set_quiet(True)
        if _debug_flag:
            set_debug(True)
        try:
            return fn(*args, **kw)
        except BrokenPipeError as err:  # past click, which would exit 1 for it
            raise _PipeClosed() from err

    sig = inspect.signature(fn, eval_str=True)
    command.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *extra])  # type: ignore[attr-defined]
    command.__annotations__ = {**fn.__annotations__, **{p.name: p.annotation for p in extra}}
    return command


for _name, _module in (
    ("analyze", analyze),
    ("plot", plot),
    ("report", report),
    ("simulate", simulate),
    ("train", train),
    ("import", importer),
):
    app.command(_name, help=_module.HELP)(_as_command(_module.command))


def _os_error(err: OSError) -> str:
    """`PATH: strerror` for an OS error (a missing, unreadable or full destination...)."""
    reason = err.strerror or (str(err).strip().splitlines() or [type(err).__name__])[0]
    if err.filename is not None:
        return f"{os.fsdecode(err.filename)}: {reason}"
    return reason


def _from_stdout(err: OSError) -> bool:
    """Whether an OS error came from writing stdout (a full disk or /dev/full behind it): one
    of a full or failing destination that names no file (dvao's own writes name theirs)."""
    return err.filename is None and err.errno in (
        errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
    )  # fmt: skip


def _detach_stdout() -> None:
    """After a broken pipe (`dvao analyze LOG | head -1`): point stdout at /dev/null, so the
    interpreter's final flush does not print "Exception ignored ... BrokenPipeError"."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture it)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (used by tests and `main`).

    Every error a user can fix is one line on stderr and exit 2 (3 for a tripped gate): dvao's
    typed errors, OS errors (naming the path), a reader's panic on a damaged file. Exit 1 is
    only for dvao's own bugs. `--debug` adds the traceback.
    """
    command = typer.main.get_command(app)
    set_quiet(False)
    set_debug(False)
    try:
        with dvao_warnings():  # the library's warnings as `warning: ...` lines
            result = command.main(args=argv, prog_name="dvao", standalone_mode=False)
    except DvaoError as err:
        return _fail(err.render(), err.exit_code)
    except typer.Exit as err:
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BrokenPipeError, _PipeClosed):  # `dvao analyze LOG | head -1`: cut short, quietly
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as err:  # the user's environment: a path that cannot be read or written
        if _from_stdout(err):  # `dvao analyze LOG --json > /dev/full`
            _detach_stdout()
            return _fail(f"stdout: cannot write ({_os_error(err)})", EXIT_INPUT)
        return _fail(_os_error(err), EXIT_INPUT)
    except Exception as err:
        if hasattr(err, "show") and hasattr(err, "exit_code"):  # click/typer usage errors
            err.show()
            return err.exit_code or EXIT_INPUT
        # anything else is a bug: say so, exit 1
        return _fail(
            f"{type(err).__name__}: {err} (rerun with --debug for the traceback)",
            EXIT_INTERNAL,
            prefix="internal error",
        )
    except BaseException as err:
        if is_panic(err):  # polars on a damaged file; commands name the file where they know it
            return _fail(panic_error(err).render(), EXIT_INPUT)
        raise
    return result if isinstance(result, int) else 0


def _fail(message: str, code: int, prefix: str = "error") -> int:
    if is_debug():
        traceback.print_exc()
    # plain print: a message holds data (paths, column names), never markup
    print(f"{prefix}: {printable(message, one_line=True)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
        code = EXIT_BROKEN_PIPE
    except OSError as err:  # what was left in stdout's buffer could not be written
        _detach_stdout()
        code = _fail(f"stdout: cannot write ({_os_error(err)})", EXIT_INPUT)
    sys.exit(code)

"""The `dvao` command line: parse options, call the core, render. No math here.

Every command module under `dvao_cli/commands/` imports only typer at module level, so that
`dvao --help` starts without torch or matplotlib.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

# Help and usage errors in plain text when piped or with NO_COLOR (typer reads this at import).
if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
    os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # noqa: E402

from dvao_cli import __version__  # noqa: E402
from dvao_cli.commands import analyze, importer, plot, simulate, train
from dvao_cli.console import is_debug, set_debug, set_quiet
from dvao_cli.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, DvaoError

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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or status lines; results only.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of any error.")
    ] = False,
) -> None:
    set_quiet(quiet)
    set_debug(debug)


app.command("analyze", help=analyze.HELP)(analyze.command)
app.command("plot", help=plot.HELP)(plot.command)
app.command("simulate", help=simulate.HELP)(simulate.command)
app.command("train", help=train.HELP)(train.command)
app.command("import", help=importer.HELP)(importer.command)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting (used by tests and `main`)."""
    command = typer.main.get_command(app)
    set_quiet(False)
    set_debug(False)
    try:
        result = command.main(args=argv, prog_name="dvao", standalone_mode=False)
    except DvaoError as err:
        if is_debug():
            traceback.print_exc()
        print(f"error: {err.render()}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as err:
        return err.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as err:
        if hasattr(err, "show") and hasattr(err, "exit_code"):  # click/typer usage errors
            err.show()
            return err.exit_code or EXIT_INPUT
        # anything else is a bug: say so, exit 1
        if is_debug():
            traceback.print_exc()
        print(
            f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))

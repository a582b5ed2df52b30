"""Terminal output: rich on a terminal, plain when piped, with NO_COLOR, or with --quiet.

Consoles are created per call (never at import) so that tests capturing sys.stdout see output.
They never read markup: what they print holds data (objective names such as `[/bold]` or
`a[b]`, paths), which must come out verbatim; style is given with `style=`, never in the text.
Nor do they pass on terminal control characters from data (an ESC sequence in a column name
would restyle or rewrite the user's terminal): `printable` shows them escaped, as `\x1b`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_STATE = {"quiet": False, "debug": False}


def set_quiet(value: bool) -> None:
    _STATE["quiet"] = value


def is_quiet() -> bool:
    return _STATE["quiet"]


def set_debug(value: bool) -> None:
    _STATE["debug"] = value


def is_debug() -> bool:
    return _STATE["debug"] or os.environ.get("DVAO_DEBUG", "") not in ("", "0")


def is_rich(stream: Any = None) -> bool:
    """Rich styling only on a real terminal and without NO_COLOR."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _broken_pipe() -> None:
    """Rich's own handler exits 1 on a broken pipe; dvao's CLI handles it (quietly, exit 141)."""
    raise BrokenPipeError(32, "Broken pipe")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1, but tab and newline
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # and those too: one line


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with the terminal control characters from data escaped (`\x1b`, `\r`, and with
    `one_line` `\n` and `\t` too), so that what is printed is what the data holds and a
    message stays one line."""
    pattern = _CONTROL_LINE if one_line else _CONTROL
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def get_console(stderr: bool = False) -> Console:
    console = _make_console(stderr)
    console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    return console


def _make_console(stderr: bool) -> Console:
    from rich.console import Console

    class DataConsole(Console):
        """Every string it renders (table cells, headers, lines) has its control characters
        escaped (`printable`); rich's own styling is added after, so it is kept."""

        def render_str(self, text: str, **kwargs: Any) -> Any:
            return super().render_str(printable(text), **kwargs)

    stream = sys.stderr if stderr else sys.stdout
    if is_rich(stream):
        return DataConsole(file=stream, stderr=stderr, markup=False, emoji=False)
    # plain: no colour, no markup-driven cursor tricks, a fixed wide width so tables do not wrap
    return DataConsole(
        file=stream,
        stderr=stderr,
        no_color=True,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        markup=False,
        width=int(os.environ.get("COLUMNS", "120")),
    )


def table_box(plain: bool | None = None) -> Any:
    """Box style for tables: drawn on a terminal, plain columns (no box characters) when piped
    or `plain`, so `grep`, `awk` and CI logs read them as text."""
    from rich import box

    if plain is None:
        plain = not is_rich()
    return box.SIMPLE_HEAD if plain else box.HEAVY_HEAD


def info(message: str) -> None:
    """A status line on stderr; silent with --quiet."""
    if not is_quiet():
        get_console(stderr=True).print(message, markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning on stderr; printed even with --quiet (warnings matter), one line."""
    print(f"warning: {printable(message, one_line=True)}", file=sys.stderr)


@contextmanager
def dvao_warnings() -> Iterator[None]:
    """Within: every `DvaoWarning` the library raises (`warnings.warn`) printed by `warn`, each
    time it is raised, --quiet or not (a `DvaoInfo` by `info`: silent with --quiet); other
    warnings shown as Python shows them."""
    import warnings

    from dvao_cli.errors import DvaoInfo, DvaoWarning

    with warnings.catch_warnings():  # restores the filters and showwarning on the way out
        warnings.simplefilter("always", DvaoWarning)
        python_show = warnings.showwarning

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if issubclass(category, DvaoInfo):
                info(str(message))
            elif issubclass(category, DvaoWarning):
                warn(str(message))
            else:
                python_show(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


class _NullProgress:
    def update(self, advance: float = 0, description: str | None = None, **fields: Any) -> None:
        pass

    def set_total(self, total: float | None) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def update(self, advance: float = 0, description: str | None = None, **fields: Any) -> None:
        kwargs: dict[str, Any] = {"advance": advance}
        if description is not None:
            kwargs["description"] = description
        if fields:
            kwargs.update(fields)
        self._progress.update(self._task, **kwargs)

    def set_total(self, total: float | None) -> None:
        self._progress.update(self._task, total=total)


@contextmanager
def progress(
    description: str, total: float | None = None, *, extra_column: str | None = None
) -> Iterator[_NullProgress | _RichProgress]:
    """A progress bar on stderr when it is a terminal; a no-op when piped or with --quiet.

    `extra_column` names a task field (e.g. "stats") rendered after the bar; pass it with
    `bar.update(stats="acc 0.41 ...")`.
    """
    if is_quiet() or not is_rich(sys.stderr):
        yield _NullProgress()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    fields: dict[str, Any] = {}
    if extra_column:
        columns.append(TextColumn("{task.fields[" + extra_column + "]}", markup=False))
        fields[extra_column] = ""
    with Progress(*columns, console=get_console(stderr=True), transient=True) as prog:
        task = prog.add_task(description, total=total, **fields)
        yield _RichProgress(prog, task)

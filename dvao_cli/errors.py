"""Typed errors. The core raises them; the CLI maps them to one line and an exit code.

Exit codes: 0 ok, 1 internal failure (a bug), 2 bad input or usage, 3 a `--fail-on` gate tripped,
130 interrupted, 141 the output's reader went away (a broken pipe, as with `| head`; quietly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_GATE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for `yes | head -1`


class DvaoError(Exception):
    """An error the user can fix. Rendered as one line: `FILE: column 'COL': MESSAGE`."""

    exit_code: int = EXIT_INPUT

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        column: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.column = column
        self.line = line
        super().__init__(self.render())

    def __reduce__(self) -> tuple[object, ...]:
        # pickled whole (a worker process sends it to the parent): the keyword-only fields
        # are not in `args`, which is all that Exception's own pickling keeps
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    def render(self) -> str:
        parts: list[str] = []
        if self.path is not None:
            parts.append(self.path if self.line is None else f"{self.path}:{self.line}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        parts.append(self.message)
        return ": ".join(parts)


def _restore(cls: type[DvaoError], args: tuple[object, ...], state: dict[str, object]) -> DvaoError:
    """A pickled DvaoError, rebuilt without calling its __init__."""
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class InputError(DvaoError):
    """The input data (a log, a trainer's dump) is missing, unreadable or malformed."""


class UsageError(DvaoError):
    """An option or argument is malformed (a bad `--weight`, `--fail-on`, `--reward` ...)."""


class OutputError(DvaoError):
    """An output cannot be written: a read-only or full destination, a path that is not a
    file or a folder as asked. The user's environment, not a bug: exit 2."""


class GateFailure(DvaoError):
    """One or more `--fail-on` conditions tripped."""

    exit_code = EXIT_GATE


class DvaoWarning(UserWarning):
    """A doubt the library raises while it reads or computes (`warnings.warn`): groups of size
    1 skipped, steps spread across a log. The command line prints each one as a
    `warning: MESSAGE` line on stderr (`cli.console.dvao_warnings`); a library user gets a
    Python warning to show, filter or make an error. Not `LogWarning`, which is a doubt about
    the answer kept in the summary."""


class DvaoInfo(DvaoWarning):
    """A status line the library has for the user (which folder below the one named it read,
    that a table without a step column is one step): the command line prints it as `info`
    does, on stderr and silent with --quiet."""


def is_panic(err: BaseException) -> bool:
    """A Rust panic surfaced by polars (`pyo3_runtime.PanicException`, a BaseException): polars
    panics on some damaged Parquet files (a footer that points past missing data pages)."""
    return type(err).__name__ == "PanicException"


def panic_error(err: BaseException, path: str | Path | None = None) -> InputError:
    """The InputError for a reader's panic: a damaged input file, not a dvao bug."""
    text = str(err).strip()
    reason = text.splitlines()[0][:200] if text else "no message"
    return InputError(
        f"cannot read: a damaged file (the Parquet reader failed: {reason})", path=path
    )


@contextmanager
def reading(path: str | Path | None) -> Iterator[None]:
    """Turn a reader's panic inside the block into an InputError naming `path`."""
    try:
        yield
    except BaseException as err:
        if is_panic(err):
            raise panic_error(err, path) from None
        raise


class RewardValueError(InputError):
    """A reward the core cannot use: NaN or inf (without nan='ignore'), or too large in
    magnitude for float64 (tolerances.MAX_REWARD). `objective` is the column's index, so that
    the reader can name the column and the rows."""

    def __init__(self, message: str, *, objective: int, non_finite: bool) -> None:
        self.objective = objective
        self.non_finite = non_finite
        super().__init__(message)


def not_found(path: str | Path) -> InputError:
    """The error for an input that is neither a regular file nor a folder, naming what it is:
    missing, a broken link, or a FIFO, socket or device (which dvao does not read: a FIFO would
    block, Parquet needs to seek)."""
    import os
    import stat

    text = os.fspath(path)
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        if os.path.islink(text):
            return InputError(f"is a broken link (to {os.readlink(text)})", path=text)
        return InputError("no such file or directory", path=text)
    except OSError as err:
        return InputError(f"cannot read ({err.strerror or err})", path=text)
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return InputError(
        f"is {kind}, not a regular file or folder: give a file dvao can read", path=text
    )


def unreadable_parquet(err: BaseException, path: str | Path) -> InputError:
    """The error for a Parquet file a reader refused: the OS's reason when the OS refused it
    (permission denied, an I/O error), else "not a readable Parquet file (why)"."""
    import errno
    import os

    text = str(err).strip()
    reason = text.splitlines()[0] if text else type(err).__name__
    code = getattr(err, "errno", None)
    for number in (errno.EACCES, errno.EPERM, errno.EIO, errno.EISDIR):
        if code == number or f"(os error {number})" in text:
            return InputError(f"cannot read ({os.strerror(number)})", path=path)
    return InputError(f"not a readable Parquet file ({reason[:160]})", path=path)


@dataclass(frozen=True)
class LogWarning:
    """A doubt the data raises about the answer, kept with it: summary.json's `warnings` list,
    the terminal's Reading and every report show each one.

    `code` is stable (users' scripts read it): `scale_mismatch`, `combined_score`,
    `small_groups`, `oversized_group`. `objective` is the objective it is about, or None.
    """

    code: str
    objective: str | None
    message: str

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "objective": self.objective, "message": self.message}


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 step", "2 steps", "1,024 responses": a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"

"""Typed errors. The core raises them; the CLI maps them to one line and an exit code.

Exit codes: 0 ok, 1 internal failure (a bug), 2 bad input or usage, 3 a `--fail-on` gate tripped,
130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_GATE = 3
EXIT_INTERRUPTED = 130


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

    def render(self) -> str:
        parts: list[str] = []
        if self.path is not None:
            parts.append(self.path if self.line is None else f"{self.path}:{self.line}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        parts.append(self.message)
        return ": ".join(parts)


class InputError(DvaoError):
    """The input data (a log, a trainer's dump) is missing, unreadable or malformed."""


class UsageError(DvaoError):
    """An option or argument is malformed (a bad `--weight`, `--fail-on`, `--reward` ...)."""


class GateFailure(DvaoError):
    """One or more `--fail-on` conditions tripped."""

    exit_code = EXIT_GATE


class RewardValueError(InputError):
    """A reward the core cannot use: NaN or inf (without nan='ignore'), or too large in
    magnitude for float64 (tolerances.MAX_REWARD). `objective` is the column's index, so that
    the reader can name the column and the rows."""

    def __init__(self, message: str, *, objective: int, non_finite: bool) -> None:
        self.objective = objective
        self.non_finite = non_finite
        super().__init__(message)

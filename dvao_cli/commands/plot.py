"""`dvao plot` (being built: this placeholder is replaced by its owner)."""

from __future__ import annotations

from dvao_cli.errors import DvaoError

HELP = "(being built)"


def command() -> None:
    """(being built)"""
    raise DvaoError("dvao plot is being built")

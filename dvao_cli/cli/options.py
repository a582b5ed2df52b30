"""Options shared by several commands, and their parsing. No math here."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from dvao_cli.core.schemes import SCHEMES, check_schemes
from dvao_cli.objective_names import (
    MAX_WEIGHT,
    QUOTING,
    did_you_mean,
    parse_weights,
    quoted_name,
    resolve_weights,
)

# the scheme names live in the core's table; the parsing of names and weights with the
# library (objective_names, no typer): the commands find both here
__all__ = [
    "MAX_WEIGHT",
    "QUOTING",
    "SCHEMES",
    "check_schemes",
    "did_you_mean",
    "parse_weights",
    "quoted_name",
    "resolve_weights",
]


class NanPolicy(str, Enum):
    error = "error"
    drop = "drop"
    ignore = "ignore"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


Scheme = Enum("Scheme", {name: name for name in SCHEMES}, type=str)  # the table's names


ObjectiveOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--objective",
        "-O",
        metavar="NAME",
        help="Reward column to treat as an objective (repeatable). Default: every numeric "
        "column outside the reserved names.",
        show_default=False,
    ),
]
WeightOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--weight",
        "-w",
        metavar="NAME=W",
        help="Preference weight NAME=W (repeatable), used as given. Default: 1/K each. "
        "Quote a name holding = or brackets: '\"a=b\"=0.5'.",
        show_default=False,
    ),
]
NanOpt = Annotated[
    NanPolicy,
    typer.Option(
        "--nan",
        help="NaN/inf rewards: error (default), drop the rows, or ignore them as TRL does "
        "(skipped in sums and means).",
    ),
]
DdofOpt = Annotated[
    int,
    typer.Option(
        "--ddof",
        min=0,
        max=1,
        metavar="0|1",
        help="Std degrees of freedom: 0 population (paper), 1 Bessel (TRL).",
    ),
]
EpsOpt = Annotated[
    float,
    typer.Option(
        "--eps", min=0.0, metavar="X", help="Added to every std that divides (TRL uses 1e-4)."
    ),
]
DeviceOpt = Annotated[
    Device,
    typer.Option("--device", help="Torch device: auto uses CUDA when present."),
]


def given(ctx: Any, name: str) -> bool:
    """Whether the option `name` was given on the command line (`ctx`, click's context), not
    left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


GroupKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group-key",
        metavar="COL",
        help="A trainer's log: group the rows by this column within a step (repeatable: by "
        "several), wherever the rows are, instead of rebuilding groups from the prompts. "
        "A verl dump with uid is grouped by it without this option.",
        show_default=False,
    ),
]
AllowLargeGroupsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-large-groups",
        help="Go on past implausible groups (one group holding a step of more than 64 rows, "
        "or one more than 4x the median group size), each kept as an oversized_group "
        "warning. Without it they stop the command (exit 2): they usually mean prompts that "
        "share text.",
    ),
]

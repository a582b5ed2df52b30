"""The LOG options of `dvao analyze` and `dvao plot`: which layout a log is read as (`--format`;
in plot, `--format` takes an image format or a log format, `--log-format` a log format), the
importer's grouping options for a trainer's log read in place (`--group-size`, `--ragged`) and
a table's columns (`--step`, `--group`, `--advantage`; `dvao import` has them too)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dvao_cli.reader.discovery import LogSource

if TYPE_CHECKING:
    from dvao_cli.importers.table import TableOptions

_FORMAT_HELP = (
    "Read LOG as: dvao (a dvao log), trl (a TRL completions/ folder), verl (a verl "
    "rollout_data_dir), swift (an ms-swift completions.jsonl), table (any trainer's JSON "
    "lines, CSV or Parquet table, with --step and --group), or auto: detect the trainer as "
    "`dvao import` does, else a dvao log. A trainer's log is imported in memory as `dvao "
    "import` would import it; nothing is written."
)
LogFormatOpt = Annotated[
    str,
    typer.Option("--format", "--log-format", metavar="FORMAT", help=_FORMAT_HELP),
]
PlotLogFormatOpt = Annotated[
    str,
    typer.Option("--log-format", metavar="FORMAT", help=_FORMAT_HELP),
]
GroupSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--group-size",
        "-g",
        min=1,
        metavar="N",
        help="A trainer's log: cut groups as fixed blocks of N rows, as `dvao import "
        "--group-size` does.",
        show_default=False,
    ),
]
RaggedOpt = Annotated[
    bool,
    typer.Option(
        "--ragged",
        help="A trainer's log: accept groups of different sizes, as `dvao import --ragged` does.",
    ),
]


StepOpt = Annotated[
    str | None,
    typer.Option(
        "--step",
        metavar="COL",
        help="A table: the column holding the training step (a nested JSON field as a.b). "
        "Without it the whole table is one step.",
        show_default=False,
    ),
]
TableGroupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--group",
        metavar="COL",
        help="A table: a column of the group key (repeatable): the rows of one step with the "
        "same values there are one group (the responses to one prompt).",
        show_default=False,
    ),
]
AdvantageOpt = Annotated[
    str | None,
    typer.Option(
        "--advantage",
        metavar="COL",
        help="A table: the column holding the advantage the trainer trained on (read as "
        "logged_advantage).",
        show_default=False,
    ),
]


def table_options(
    step: str | None, group: Sequence[str] | None, advantage: str | None
) -> TableOptions | None:
    """A table's columns as named by --step, --group and --advantage (None: none named)."""
    if step is None and not group and advantage is None:
        return None
    from dvao_cli.importers.table import TableOptions

    return TableOptions(step, tuple(group or ()), advantage)


def log_source(
    paths: str | Path | Sequence[str | Path],
    fmt: str,
    group_size: int | None,
    ragged: bool,
    option: str = "--format",
    table: TableOptions | None = None,
    group_keys: Sequence[str] | None = None,
    allow_large_groups: bool = False,
) -> LogSource:
    """The `LogSource` of a command's LOG arguments and options (`option` names the format
    option in messages; `group_keys` and `allow_large_groups` are `--group-key` and
    `--allow-large-groups`, defined in `cli.options`)."""
    source = LogSource.of(paths)
    return LogSource(
        source.paths,
        fmt.lower(),
        group_size,
        ragged,
        option,
        table=table,
        group_keys=tuple(group_keys or ()),
        allow_large_groups=allow_large_groups,
    )

"""The LOG options of `dvao analyze` and `dvao plot`: which layout a log is read as (`--format`;
in plot, `--format` takes an image format or a log format, `--log-format` a log format) and the
importer's grouping options for a trainer's log read in place (`--group-size`, `--ragged`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from dvao_cli.reader.discovery import LogSource

_FORMAT_HELP = (
    "Read LOG as: dvao (a dvao log), trl (a TRL completions/ folder), verl (a verl "
    "rollout_data_dir), swift (an ms-swift completions.jsonl), or auto: detect the trainer as "
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


def log_source(
    paths: str | Path | Sequence[str | Path],
    fmt: str,
    group_size: int | None,
    ragged: bool,
    option: str = "--format",
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
        group_keys=tuple(group_keys or ()),
        allow_large_groups=allow_large_groups,
    )

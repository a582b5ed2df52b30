"""`dvao plot`: parse options, load the SOURCE, build the figures, write one file each."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dvao_cli.cli.commands.log_source import (
    AdvantageOpt,
    GroupSizeOpt,
    PlotLogFormatOpt,
    RaggedOpt,
    StepOpt,
    TableGroupOpt,
    log_source,
    table_options,
)
from dvao_cli.cli.options import (
    AllowLargeGroupsOpt,
    Device,
    DeviceOpt,
    GroupKeyOpt,
    NanPolicy,
)

HELP = (
    "Figures from a rollout log, a `dvao analyze --out` folder or a `dvao train` folder: DVAO "
    "weights, saturation, rewards, advantage scale, correlation (and the Pareto front of a "
    "`dvao train --compare` folder). One file per figure."
)


class Format(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


def command(
    source: Annotated[
        str,
        typer.Argument(
            help="A rollout log (Parquet file, folder of part files or glob; or a trainer's log "
            "read in place: a TRL completions/ folder, a verl rollout_data_dir, an ms-swift "
            "completions.jsonl), a `dvao analyze --out` folder, a `dvao train` run folder or a "
            "`dvao train --compare` folder.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the figures, written as one set (the old figures or the new ones, "
            "never a mix). Default: SOURCE/plots for a folder, else ./dvao-plots.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="Image format of every figure: png, svg or pdf. A log format instead (dvao, "
            "trl, verl, swift, table: see --log-format) reads SOURCE as that log, as in "
            "`dvao analyze --format`, and the figures are png.",
        ),
    ] = Format.png.value,
    smooth: Annotated[
        int | None,
        typer.Option(
            "--smooth",
            min=1,
            help="Rolling mean over N logged steps (1: none). Default: max(1, steps // 50).",
            show_default=False,
        ),
    ] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            "-O",
            help="Objective to draw (repeatable). For a log: the reward columns to analyze, as "
            "in `dvao analyze`; for a folder: the ones drawn (the rest form one grey band in "
            "weights); for a compare folder: the Pareto axes, x then y. Default: all.",
            show_default=False,
        ),
    ] = None,
    weight: Annotated[
        list[str] | None,
        typer.Option(
            "--weight",
            "-w",
            help="Preference weight NAME=W (repeatable): passed to the analysis of a log or a "
            "train run; for an analyze folder it only moves the dashed reference lines. "
            "Default: the stored weights, else 1/K each.",
            show_default=False,
        ),
    ] = None,
    nan: Annotated[
        NanPolicy | None,
        typer.Option(
            "--nan",
            help="NaN/inf rewards in a log: error, drop the rows, or ignore them as TRL does. "
            "Default: the run's setting for a train folder, else error.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOpt = Device.auto,
    log_format: PlotLogFormatOpt = "auto",
    group_size: GroupSizeOpt = None,
    ragged: RaggedOpt = False,
    step: StepOpt = None,
    group: TableGroupOpt = None,
    advantage: AdvantageOpt = None,
    group_key: GroupKeyOpt = None,
    allow_large_groups: AllowLargeGroupsOpt = False,
) -> None:
    from dvao_cli.cli.console import get_console, info, progress
    from dvao_cli.cli.options import parse_weights
    from dvao_cli.errors import reading
    from dvao_cli.io import input_files, output_set
    from dvao_cli.plot.source import build_figures, load_source, save_figure, select_objectives

    image, log_format, option = _formats(fmt, log_format)
    weights = parse_weights(weight)
    with progress("analyze", total=None) as bar, reading(source):
        src = load_source(
            log_source(
                source,
                log_format,
                group_size,
                ragged,
                option,
                table=table_options(step, group, advantage),
                group_keys=group_key,
                allow_large_groups=allow_large_groups,
            ),
            objectives=objective,
            weights=weights,
            nan=None if nan is None else nan.value,
            device=device.value,
            on_progress=lambda done, total: bar.update(completed=done, total=total or None),
        )
    chosen = select_objectives(src.objectives, objective, keep_order=src.kind == "compare")
    figures, skipped = build_figures(src, chosen, smooth=smooth)
    out_dir = out if out is not None else src.default_out
    written = [out_dir / f"{name}.{image}" for name in figures]
    inputs = input_files([source], ("*.parquet", "*.json"))  # what a SOURCE folder is read from
    with output_set(out_dir, inputs=inputs) as stage:  # the figures as one set
        for name, fig in figures.items():
            save_figure(fig, stage / f"{name}.{image}", image)
    for path in written:
        info(f"wrote {path}")
    for name, reason in skipped.items():
        info(f"skipped {name}.{image}: {reason}")
    names = ", ".join(p.stem for p in written)
    get_console().print(
        f"{len(written)} figure{'s' if len(written) != 1 else ''} in {out_dir}: {names}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _formats(fmt: str, log_format: str) -> tuple[str, str, str]:
    """(image format, log format, the option that named the log format) from `--format`, which
    takes an image format or, as in `dvao analyze`, a log format (the two sets share no name),
    and `--log-format`."""
    from dvao_cli.errors import UsageError
    from dvao_cli.reader.discovery import LOG_FORMATS

    value = fmt.lower()
    images = [f.value for f in Format]
    if value in images:
        return value, log_format, "--log-format"
    if value not in LOG_FORMATS:
        raise UsageError(
            f"--format '{fmt}' is neither an image format ({', '.join(images)}) nor a log "
            f"format ({', '.join(LOG_FORMATS)})"
        )
    if log_format.lower() not in ("auto", value):
        raise UsageError(f"--format {fmt} and --log-format {log_format} name two log formats")
    return Format.png.value, value, "--format"

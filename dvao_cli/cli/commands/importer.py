"""`dvao import FORMAT SOURCE -o OUT`: a trainer's completion logs -> a dvao rollout log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dvao_cli.cli.commands.log_source import AdvantageOpt, StepOpt, TableGroupOpt, table_options
from dvao_cli.cli.console import get_console, is_quiet, progress
from dvao_cli.cli.options import AllowLargeGroupsOpt, GroupKeyOpt, did_you_mean
from dvao_cli.errors import UsageError, counted, reading

if TYPE_CHECKING:
    from dvao_cli.importers.batch import ImportReport

HELP = (
    "Convert a trainer's completion logs (TRL, verl, ms-swift, or any table of rollouts) into "
    "a dvao rollout log.\n\n"
    "FORMAT is trl, verl, swift, table or auto (detect from the files); SOURCE is the directory "
    "the trainer wrote (or one file; a table: a file, a folder or a glob of JSON lines, CSV or "
    "Parquet files, with --step COL and --group COL naming its step and group key). "
    "`--format F SOURCE` is the same as `F SOURCE`, and a lone SOURCE means auto. Groups are "
    "rebuilt (TRL, ms-swift: runs of consecutive rows with one prompt; verl: rows with the same "
    "step and prompt; a table: rows with the same step and --group values) and must all have "
    "one size unless --group-size or --ragged says otherwise.\n\n"
    "Examples:\n\n"
    "  dvao import trl runs/grpo-1/completions -o rollouts.parquet\n\n"
    "  dvao import verl rollout_dump/ -o rollouts.parquet -O acc -O format_reward\n\n"
    "  dvao import auto output/v0-20260101/ -o rollouts.parquet\n\n"
    "  dvao import table 'rollouts/*.jsonl' -o rollouts.parquet --step step --group example_id"
)

_FORMATS = ("trl", "verl", "swift", "table", "auto")


def _resolve(first: str, second: str | None, fmt: str | None) -> tuple[str, str]:
    """(format, source) from the positional arguments and --format."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in _FORMATS:
            raise UsageError(
                f"--format '{fmt}' is not a format"
                + did_you_mean(fmt, list(_FORMATS))
                + "; choose trl, verl, swift, table or auto"
            )
        if second is not None:
            raise UsageError(
                "the format is given twice (as FORMAT and as --format); "
                "use `dvao import FORMAT SOURCE` or `dvao import --format FORMAT SOURCE`"
            )
        return fmt, first
    if second is None:
        if first.lower() in _FORMATS and not Path(first).exists():
            raise UsageError(f"missing SOURCE: dvao import {first} SOURCE -o OUT")
        return "auto", first  # a lone SOURCE: detect the trainer
    if first.lower() not in _FORMATS:
        raise UsageError(
            f"unknown format '{first}'"
            + did_you_mean(first.lower(), list(_FORMATS))
            + "; choose trl, verl, swift, table or auto"
        )
    return first.lower(), second


def command(
    first: Annotated[
        str,
        typer.Argument(
            metavar="FORMAT",
            help="trl, verl, swift, table or auto; with --format (or alone) this is SOURCE.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="The Parquet file to write (atomically: a failed import leaves no partial file).",
            show_default=False,
        ),
    ],
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="The directory the trainer wrote (or one of its files).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="trl, verl, swift, table or auto; then the one positional argument is SOURCE.",
            show_default=False,
        ),
    ] = None,
    group_size: Annotated[
        int | None,
        typer.Option(
            "--group-size",
            "-g",
            min=1,
            help="Cut groups as fixed blocks of N rows (each must hold one prompt) instead of "
            "rebuilding them from the prompts; verl: split each prompt's rows into blocks of N.",
            show_default=False,
        ),
    ] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            "-O",
            help="Reward column to import as an objective (repeatable); the other columns are "
            "kept as extra columns. Default: TRL every float column, verl every numeric key, "
            "ms-swift every float list, except the known non-reward ones.",
            show_default=False,
        ),
    ] = None,
    ragged: Annotated[
        bool,
        typer.Option(
            "--ragged",
            help="Accept groups of different sizes (by default they are refused).",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the import report as JSON instead of a table."),
    ] = False,
    step: StepOpt = None,
    group: TableGroupOpt = None,
    advantage: AdvantageOpt = None,
    group_key: GroupKeyOpt = None,
    allow_large_groups: AllowLargeGroupsOpt = False,
) -> None:
    """Import a trainer's completion logs."""
    from dvao_cli.importers import run_import
    from dvao_cli.io import dumps_json
    from dvao_cli.reader.combined import imported_warnings
    from dvao_cli.reader.spec import open_spec

    fmt_name, source = _resolve(first, second, fmt)
    with progress("importing", total=None) as bar, reading(source):
        seen = {"done": 0}

        def on_file(done: int, total: int) -> None:
            bar.set_total(total)
            bar.update(advance=done - seen["done"])
            seen["done"] = done

        report = run_import(
            source,
            out,
            fmt_name,
            objectives=list(objective) if objective else None,
            group_size=group_size,
            ragged=ragged,
            table=table_options(step, group, advantage),
            group_keys=tuple(group_key or ()),
            allow_large_groups=allow_large_groups,
            on_file=on_file,
        )
        # said now, not first by `dvao analyze`: a combined score among the written objectives
        report.warnings += imported_warnings(open_spec(report.out, report.objectives))
    if as_json:
        print(dumps_json(report.to_dict()))
        return
    if is_quiet():
        print(
            f"wrote {report.out}: {counted(report.rows, 'row')}, "
            f"{counted(report.steps, 'step')}, {counted(report.groups, 'group')}"
        )
        return
    render(report)


def _counts(items: dict[Any, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in items.items()) if items else "none"


def render(report: ImportReport) -> None:
    from rich.table import Table

    from dvao_cli.cli.console import table_box
    from dvao_cli.importers import format_label

    label = format_label(report.format)
    table = Table(title=f"dvao import: {label} -> {report.out}", show_header=True, box=table_box())
    table.add_column("", style="bold")
    table.add_column("read")
    table.add_row("source", f"{report.source} ({counted(report.files, 'file')}, {label})")
    table.add_row("steps", f"{report.steps:,}")
    table.add_row("groups", f"{report.groups:,} ({report.grouping})")
    sizes = ", ".join(f"{size} ({counted(n, 'group')})" for size, n in report.group_sizes.items())
    table.add_row("group sizes", sizes)
    table.add_row("rows", f"{report.rows:,}")
    table.add_row("objectives", ", ".join(report.objectives))
    table.add_row("extra columns", ", ".join(report.extra_columns) or "none")
    none = "no (name its column with --advantage COL)" if report.format == "table" else None
    table.add_row(
        "logged advantage",
        "yes (as logged_advantage)"
        if report.logged_advantage
        else none or "no (the trainer logs none)",
    )
    table.add_row("missing rewards", _counts(report.missing_rewards))
    if report.renamed:
        table.add_row(
            "renamed", ", ".join(f"{a} -> {b} (reserved name)" for a, b in report.renamed.items())
        )
    table.add_row("rows dropped", _counts(report.dropped) if report.dropped else "0")
    if report.skipped:
        table.add_row("skipped", _counts(report.skipped))
    if report.reordered:
        table.add_row("note", "steps were out of order in the source; the output is sorted")
    singles = report.group_sizes.get(1, 0)
    if singles:
        table.add_row(
            "note", f"{counted(singles, 'group')} of size 1: analyze skips them (no variance)"
        )
    for warning in report.warnings:
        table.add_row("warning", f"{warning.code}: {warning.message}")
    get_console().print(table)

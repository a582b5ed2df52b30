"""`dvao analyze`: parse options, call `dvao_cli.analysis.pipeline.analyze`, render the report."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from dvao_cli.cli.commands.log_source import GroupSizeOpt, LogFormatOpt, RaggedOpt, log_source
from dvao_cli.cli.options import (
    AllowLargeGroupsOpt,
    DdofOpt,
    Device,
    EpsOpt,
    GroupKeyOpt,
    NanOpt,
    NanPolicy,
    ObjectiveOpt,
    Scheme,
    WeightOpt,
)

HELP = (
    "Per-objective within-group variance, DVAO weights, saturation, correlation and the "
    "advantages of every multi-reward scheme, from a rollout log. Exit 3 when a --fail-on "
    "condition trips."
)


def command(
    log: Annotated[
        list[str],
        typer.Argument(
            metavar="LOG",
            help="Rollout log: Parquet file(s), a directory of part files (hive-partitioned "
            "included) or a glob; or a trainer's log read in place: a TRL completions/ folder, "
            "a verl rollout_data_dir, an ms-swift completions.jsonl.",
            show_default=False,
        ),
    ],
    objective: ObjectiveOpt = None,
    weight: WeightOpt = None,
    scheme: Annotated[
        list[Scheme] | None,
        typer.Option(
            "--scheme",
            "-s",
            metavar="SCHEME",
            help="Scheme to compute (repeatable): grpo, rc, ac, gdpo, dvao. Default: all five.",
            show_default=False,
        ),
    ] = None,
    ddof: DdofOpt = 0,
    eps: EpsOpt = 0.0,
    nan: NanOpt = NanPolicy.error,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Write advantages.parquet, steps.parquet, schemes.parquet and summary.json "
            "to this folder, as one set: after any interruption it holds the old set or the new "
            "one, never a mix; it never replaces a file the log is read from.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print summary.json to stdout and nothing else.")
    ] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            metavar="EXPR",
            help="CI gate, repeatable: METRIC[NAME]OP NUMBER, e.g. 'saturation[format]>0.9', "
            "'dvao_weight[accuracy]<0.2'. Exit 3 when any holds. Quote a name holding brackets or "
            "commas: 'dvao_weight[\"fmt[x]\"]<0.05'.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        Device,
        typer.Option(
            "--device",
            help="Where the advantage engine runs (auto: CUDA when present). Chunks whose "
            "objectives take few distinct rewards (pass/fail, partial credit) are summarised on "
            "the CPU from reward-pattern counts and need the engine only for --out and "
            "logged_advantage.",
        ),
    ] = Device.auto,
    chunk_rows: Annotated[
        int,
        typer.Option(
            "--chunk-rows",
            metavar="N",
            min=1000,
            help="Rows per streamed chunk (whole steps are kept together); bounds memory.",
        ),
    ] = 1_000_000,
    log_format: LogFormatOpt = "auto",
    group_size: GroupSizeOpt = None,
    ragged: RaggedOpt = False,
    group_key: GroupKeyOpt = None,
    allow_large_groups: AllowLargeGroupsOpt = False,
) -> None:
    from dvao_cli.analysis.runtime import stream_workers, tune_for_streaming
    from dvao_cli.analysis.workers import start_early

    tune_for_streaming()  # before numpy and torch load: it sets their thread counts
    workers = stream_workers()
    # a large log's worker processes start now: their imports overlap the ones below
    with start_early(log, workers) or nullcontext() as early:
        from dvao_cli.analysis.pipeline import analyze
        from dvao_cli.cli.console import get_console, info, printable, progress
        from dvao_cli.cli.options import SCHEMES, parse_weights
        from dvao_cli.errors import GateFailure, reading
        from dvao_cli.io import dumps_json
        from dvao_cli.reader.chunk import warn_skipped

        weights = parse_weights(weight)
        schemes = [s.value for s in scheme] if scheme else list(SCHEMES)
        label = log[0] if len(log) == 1 else f"{log[0]} (+{len(log) - 1} more)"
        with progress("analyze", total=None) as bar, reading(label):
            result = analyze(
                log_source(
                    log,
                    log_format,
                    group_size,
                    ragged,
                    group_keys=group_key,
                    allow_large_groups=allow_large_groups,
                ),
                objectives=objective,
                weights=weights,
                schemes=schemes,
                ddof=ddof,
                eps=eps,
                nan=nan.value,
                device=device.value,
                out_dir=out,
                fail_on=fail_on or (),
                chunk_rows=chunk_rows,
                workers=workers,
                processes=early or True,
                on_progress=lambda done, total: bar.update(completed=done, total=total or None),
            )
        summary = result.summary
        if summary.skipped_groups:
            warn_skipped(label, summary.skipped_groups)
        if json_out:
            print(dumps_json(summary.to_json()))
        else:
            from dvao_cli.cli.report import render  # rich: not for --json (20 ms of start-up)

            render(summary, get_console(), label)
        for path in result.written:
            info(f"wrote {path}")
        if result.trips:
            for trip in result.trips:
                print(f"gate tripped: {printable(trip.message(), one_line=True)}", file=sys.stderr)
            n = len(result.trips)
            raise GateFailure(f"{n} --fail-on condition{'s' if n > 1 else ''} tripped")

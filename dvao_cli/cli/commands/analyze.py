"""`dvao analyze`: parse options, call `dvao_cli.analysis.pipeline.analyze`, render the report.

The options that choose and run the analysis are one set, `analysis_options`, turned into the
analysis call by one function, `run_analysis`: `dvao report` takes the same set (an option
added there reaches both commands).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dvao_cli.cli.commands.log_source import (
    AdvantageOpt,
    GroupSizeOpt,
    LogFormatOpt,
    RaggedOpt,
    StepOpt,
    TableGroupOpt,
    log_source,
    table_options,
)
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

if TYPE_CHECKING:
    from dvao_cli.analysis.gate import Trip
    from dvao_cli.analysis.pipeline import Analysis

PIPELINE = "dvao_cli.analysis.pipeline"  # what the worker processes import as they start

HELP = (
    "Per-objective within-group variance, DVAO weights, saturation, correlation and the "
    "advantages of every multi-reward scheme, from a rollout log. Exit 3 when a --fail-on "
    "condition trips."
)


LOG_HELP = (
    "Rollout log: Parquet file(s), a directory of part files (hive-partitioned included) or a "
    "glob; or a trainer's log read in place: a TRL completions/ folder, a verl "
    "rollout_data_dir, an ms-swift completions.jsonl."
)


def analysis_options(
    log: Annotated[
        list[str],
        typer.Argument(metavar="LOG", help=LOG_HELP, show_default=False),
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
    step: StepOpt = None,
    group: TableGroupOpt = None,
    advantage: AdvantageOpt = None,
    group_key: GroupKeyOpt = None,
    allow_large_groups: AllowLargeGroupsOpt = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="NAME",
            help="How the figures are computed, all to the same numbers: rows (every "
            "advantage; the reference), sums (GDPO and a 0/1 GRPO described exactly), patterns "
            "(reward-pattern counts, for few distinct rewards), alike (patterns, each distinct "
            "group once) or auto (per chunk, the fastest that takes it). Exit 2 when the one "
            "named cannot take the log.",
        ),
    ] = "auto",
) -> None:
    """The options that choose and run an analysis: `dvao analyze`'s and `dvao report`'s."""


# the shared set, as the commands' parameters (typer reads a command's signature)
ANALYSIS_OPTIONS = tuple(inspect.signature(analysis_options, eval_str=True).parameters.values())
ANALYSIS_NAMES = tuple(p.name for p in ANALYSIS_OPTIONS)


def log_label(log: Sequence[str]) -> str:
    """How the LOG arguments are named in messages and titles."""
    return log[0] if len(log) == 1 else f"{log[0]} (+{len(log) - 1} more)"


def run_analysis(options: dict[str, Any], *, out_dir: Path | None = None) -> Analysis:
    """The analysis `options` (the parameters of `analysis_options`, as typer passes them)
    ask for, with its progress bar and the warning on skipped groups; with `out_dir`, its
    tables written there as one set."""
    from dvao_cli.analysis.runtime import stream_workers, tune_for_streaming
    from dvao_cli.analysis.workers import start_early

    o = dict(options)
    log: list[str] = o["log"]
    tune_for_streaming()  # before numpy and torch load: it sets their thread counts
    workers = stream_workers()
    # a large log's worker processes start now: their imports overlap the ones below
    with start_early(log, workers, warm=PIPELINE) or nullcontext() as early:
        from dvao_cli.analysis.pipeline import analyze
        from dvao_cli.cli.console import progress
        from dvao_cli.cli.options import SCHEMES, parse_weights
        from dvao_cli.errors import reading
        from dvao_cli.reader.chunk import warn_skipped

        weights = o["weight"] if isinstance(o["weight"], dict) else parse_weights(o["weight"])
        schemes = [s.value for s in o["scheme"]] if o["scheme"] else list(SCHEMES)
        with progress("analyze", total=None) as bar, reading(log_label(log)):
            result = analyze(
                log_source(
                    log,
                    o["log_format"],
                    o["group_size"],
                    o["ragged"],
                    table=table_options(o["step"], o["group"], o["advantage"]),
                    group_keys=o["group_key"],
                    allow_large_groups=o["allow_large_groups"],
                ),
                objectives=o["objective"],
                weights=weights,
                schemes=schemes,
                ddof=o["ddof"],
                eps=o["eps"],
                nan=NanPolicy(o["nan"]).value,
                device=Device(o["device"]).value,
                out_dir=out_dir,
                fail_on=o["fail_on"] or (),
                chunk_rows=o["chunk_rows"],
                workers=workers,
                processes=early or True,
                on_progress=lambda done, total: bar.update(completed=done, total=total or None),
                backend=o["backend"],
            )
        if result.summary.skipped_groups:
            warn_skipped(log_label(log), result.summary.skipped_groups)
        return result


def raise_if_tripped(trips: Sequence[Trip]) -> None:
    """Each tripped `--fail-on` condition on stderr, then exit 3 (GateFailure)."""
    from dvao_cli.cli.console import printable
    from dvao_cli.errors import GateFailure

    for trip in trips:
        print(f"gate tripped: {printable(trip.message(), one_line=True)}", file=sys.stderr)
    if trips:
        n = len(trips)
        raise GateFailure(f"{n} --fail-on condition{'s' if n > 1 else ''} tripped")


def _own_options(
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
) -> None:
    """The options of `dvao analyze` alone."""


def command(**params: Any) -> None:
    from dvao_cli.cli.console import get_console, info
    from dvao_cli.io import dumps_json

    out: Path | None = params.pop("out")
    json_out: bool = params.pop("json_out")
    result = run_analysis(params, out_dir=out)
    label = log_label(params["log"])
    summary = result.summary
    if json_out:
        print(dumps_json(summary.to_json()))
    else:
        from dvao_cli.cli.report import render  # rich: not for --json (20 ms of start-up)

        render(summary, get_console(), label)
    for path in result.written:
        info(f"wrote {path}")
    raise_if_tripped(result.trips)


def with_analysis_options(*own: Any, log_help: str = LOG_HELP) -> inspect.Signature:
    """The shared analysis options, then a command's own (functions holding them); `log_help`
    says what else the command's LOG may be."""
    extra = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)  # a required one may follow defaults
        for fn in own
        for p in inspect.signature(fn, eval_str=True).parameters.values()
    ]
    log = ANALYSIS_OPTIONS[0].replace(
        annotation=Annotated[
            list[str], typer.Argument(metavar="LOG", help=log_help, show_default=False)
        ]
    )
    return inspect.Signature([log, *ANALYSIS_OPTIONS[1:], *extra])


command.__signature__ = with_analysis_options(_own_options)  # type: ignore[attr-defined]

"""`dvao report`: the analysis of `dvao analyze` (the same options, shared), or a `dvao analyze
--out` folder, a `dvao train` run or a `dvao train --compare` folder, as one self-contained HTML
page (`dvao_cli/cli/html_report.py`), written atomically. Exit 3, page written, when a
`--fail-on` condition trips."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dvao_cli.cli.commands.analyze import (
    ANALYSIS_NAMES,
    LOG_HELP,
    raise_if_tripped,
    with_analysis_options,
)
from dvao_cli.cli.options import given

if TYPE_CHECKING:
    from dvao_cli.analysis.gate import Trip
    from dvao_cli.analysis.summary import Summary
    from dvao_cli.cli.html_report import Comparison, Page, Verdict
    from dvao_cli.plot.source import PlotSource

HELP = (
    "One self-contained HTML page (figures embedded, no network) from a rollout log, with "
    "every option of `dvao analyze`, or from a `dvao analyze --out` folder, a `dvao train` run "
    "or a `dvao train --compare` folder. Exit 3, with the page written, when a --fail-on "
    "condition trips."
)
# what a SOURCE folder other than a log is read from: an output may not replace one
_READ = ("*.parquet", "*.json", "*.jsonl")
# the analysis options a folder that is not a log takes (the rest would be ignored: refused)
_FOLDER_OPTIONS = {"analysis": ("log", "fail_on"), "compare": ("log",)}
# a train run's settings shown on its page (config.json key: label)
_RUN_KEYS = {"task": "task", "scheme": "trained with", "seed": "seed"}


def _own_options(
    ctx: typer.Context,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The HTML page to write (atomically: the old page or the new one, never a "
            "part; never a file the report reads).",
            show_default=False,
        ),
    ],
) -> None:
    """The options of `dvao report` alone."""


def command(**params: Any) -> None:
    from dvao_cli import __version__
    from dvao_cli.cli.console import info
    from dvao_cli.cli.html_report import render_page
    from dvao_cli.io import atomic_path, check_outputs, input_files
    from dvao_cli.plot.source import source_kind

    ctx: typer.Context = params.pop("ctx")
    output: Path = params.pop("output")
    log: list[str] = params["log"]
    kind, path = ("log", Path(log[0]))
    if len(log) == 1:
        kind, path = source_kind(log[0], params["log_format"].lower())
    kind = "log" if kind == "glob" else kind
    _refuse_unused(ctx, kind)
    # the same checks as `analyze --out` / `plot --out`, before anything is read
    inputs = input_files(log, None if kind == "log" else _READ)
    check_outputs([output], inputs, option="--output")
    if kind == "log":  # a page in a log folder would be a file its reader skips: the user's
        _outside_log_folders(output, [Path(p) for p in log if Path(p).is_dir()])
    version = __version__
    trips: list[Trip] = []
    if kind == "compare":
        page = _compare_page(path, version)
    elif kind == "analysis":
        page, trips = _analysis_page(path, params, version)
    else:
        page, trips = _log_page(ctx, kind, path, params, version)
    text = render_page(page)
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    info(f"wrote {output}")
    raise_if_tripped(trips)


command.__signature__ = with_analysis_options(  # type: ignore[attr-defined]
    _own_options,
    log_help=LOG_HELP + " Or one folder: a `dvao analyze --out` folder (read as is), a `dvao "
    "train` run (its rollouts and learning curves) or a `dvao train --compare` folder (its "
    "comparison).",
)


def _outside_log_folders(output: Path, folders: list[Path]) -> None:
    """Refuse a page inside a log folder read (as `analyze --out` is refused there): the next
    run would count it among the files the reader skips, which are never overwritten."""
    import os

    from dvao_cli.errors import UsageError

    real = os.path.realpath(output)
    for folder in folders:
        if real.startswith(os.path.realpath(folder) + os.sep):
            raise UsageError(
                f"is inside the log folder {folder}, which this report reads; --output must be "
                "outside it",
                path=output,
            )


def _refuse_unused(ctx: typer.Context, kind: str) -> None:
    """An analysis option given for a source that would ignore it is a usage error, not silence."""
    allowed = _FOLDER_OPTIONS.get(kind)
    if allowed is None:
        return
    from dvao_cli.errors import UsageError

    what = {
        "analysis": "a `dvao analyze --out` folder, read as is; pass the log to analyze it "
        "with this option",
        "compare": "a `dvao train --compare` folder, which holds no analysis to read or gate; "
        "pass one of its runs for that",
    }[kind]
    for param in ctx.command.params:
        name = param.name or ""
        if name in ANALYSIS_NAMES and name not in allowed and given(ctx, name):
            flag = max(param.opts, key=len)
            raise UsageError(f"{flag} does not apply here: the source is {what}")


def _verdicts(summary: Summary, conditions: list[str], trips: list[Trip]) -> list[Verdict]:
    """Every condition with its value, tripped or not (the gate has checked each one)."""
    from dvao_cli.analysis import gate
    from dvao_cli.cli.html_report import Verdict

    tripped = {t.condition.text for t in trips}
    out = []
    for text in conditions:
        cond = gate.parse_condition(text)
        value = gate.metric_value(cond, summary)
        assert value is not None  # evaluate() refused an undefined one
        out.append(Verdict(text, float(value), text in tripped))
    return out


def _figures(src: PlotSource, page: Page) -> None:
    """`dvao plot`'s figures of `src`, as PNG, onto the page."""
    from dvao_cli.errors import UsageError
    from dvao_cli.plot.source import build_figures, figure_bytes

    try:
        figures, skipped = build_figures(src, src.objectives)
    except UsageError as err:  # a comparison of one objective has no Pareto figure
        figures, skipped = {}, {"pareto": err.render()}
    page.figures.update({name: figure_bytes(fig, "png") for name, fig in figures.items()})
    page.skipped.update(skipped)


def _log_page(
    ctx: typer.Context, kind: str, path: Path, params: dict[str, Any], version: str
) -> tuple[Page, list[Trip]]:
    """A log, or a train run's rollouts with the run's settings (where not given)."""
    from dvao_cli.cli.commands.analyze import log_label, run_analysis
    from dvao_cli.cli.html_report import Page
    from dvao_cli.cli.options import parse_weights
    from dvao_cli.plot.source import from_analysis, train_run

    options = dict(params)
    label = log_label(options["log"])
    config: dict[str, Any] = {}
    if kind == "train":
        run = train_run(path, parse_weights(options["weight"]))
        config = run.config
        options.update(log=[str(run.rollouts)], weight=run.weights)
        options["objective"] = options["objective"] or run.objectives
        for name, value in (("nan", run.nan), ("ddof", run.ddof), ("eps", run.eps)):
            if not given(ctx, name):
                options[name] = value
    analysis = run_analysis(options)
    title = path.resolve().name or label
    src = from_analysis(analysis, title, path, kind=kind, config=config)
    page = Page(
        label=title,
        source=label,
        kind=kind,
        version=version,
        summary=analysis.summary,
        summary_json=src.summary,
        steps=analysis.steps,
        schemes=analysis.schemes,
        run={label: config[k] for k, label in _RUN_KEYS.items() if k in config},
    )
    _figures(src, page)
    if kind == "train":
        _curves(path, config, list(analysis.summary.objective_order), page)
    if options["fail_on"]:
        page.gate = _verdicts(analysis.summary, options["fail_on"], analysis.trips)
    return page, analysis.trips


def _curves(path: Path, config: dict[str, Any], objectives: list[str], page: Page) -> None:
    """A train run's learning curves (its metrics.parquet), drawn as a comparison's are."""
    import polars as pl

    from dvao_cli.plot.compare import CURVES, curves_figure, read_curves
    from dvao_cli.plot.source import figure_bytes

    one = pl.DataFrame(
        {
            "scheme": [str(config.get("scheme") or "run")],
            "seed": [int(config.get("seed") or 0)],
            "run": ["."],
        }
    )
    curves = read_curves(path, one, objectives)
    if curves.height:
        fig = curves_figure(curves, objectives, label=page.label)
        page.figures[CURVES] = figure_bytes(fig, "png")
    else:
        page.skipped[CURVES] = "the run has no metrics.parquet"


def _analysis_page(path: Path, params: dict[str, Any], version: str) -> tuple[Page, list[Trip]]:
    """A `dvao analyze --out` folder, read as is; --fail-on is checked on its summary.json."""
    from dvao_cli.analysis import gate
    from dvao_cli.analysis.summary import summary_from_json
    from dvao_cli.cli.html_report import Page
    from dvao_cli.errors import InputError
    from dvao_cli.plot.source import load_source

    src = load_source(path)
    try:
        summary = summary_from_json(src.summary)
    except ValueError as err:
        raise InputError(
            f"not a summary this dvao can read ({err})", path=path / "summary.json"
        ) from None
    page = Page(
        label=src.label,
        source=str(path),
        kind="analysis",
        version=version,
        summary=summary,
        summary_json=src.summary,
        steps=src.steps,
        schemes=src.schemes,
    )
    _figures(src, page)
    # the conditions given, else the ones `dvao analyze --fail-on` recorded (shown, no exit 3)
    texts = list(params["fail_on"] or (summary.gate.conditions if summary.gate else ()))
    conditions = [gate.parse_condition(text) for text in texts]
    gate.check_names(
        conditions,
        list(summary.objective_order),
        list(summary.schemes),
        summary.has_logged_advantage,
    )
    trips = gate.evaluate(conditions, summary)
    if texts:
        page.gate = _verdicts(summary, texts, trips)
        page.gate_recorded = not params["fail_on"]
    return page, trips if params["fail_on"] else []


def _compare_page(path: Path, version: str) -> Page:
    """A `dvao train --compare` folder: its table, learning curves and Pareto figure."""
    from dvao_cli.cli.html_report import Page
    from dvao_cli.plot.source import load_source
    from dvao_cli.train.compare import comparison_table, summarize

    src = load_source(path, incomplete=True)
    assert src.compare is not None
    objectives = src.objectives
    seeds = int(src.compare["seed"].n_unique())
    note, headers, rows = comparison_table(
        summarize(src.compare, objectives),
        objectives,
        seeds=seeds,
        sweep=src.config.get("sweep_weights") is not None,
    )
    page = Page(
        label=src.label,
        source=str(path),
        kind="compare",
        version=version,
        comparison=_comparison(note, headers, rows, path),
        run={
            "objectives": ", ".join(objectives),
            "runs": f"{src.compare.height} ({seeds} seed{'s' if seeds != 1 else ''} per scheme)",
        },
    )
    _figures(src, page)
    return page


def _comparison(note: str, headers: list[str], rows: list[list[str]], path: Path) -> Comparison:
    """The comparison table, with the runs config.json plans that compare.parquet lacks (a
    comparison stopped before its end)."""
    from dvao_cli.cli.html_report import Comparison
    from dvao_cli.train.compare_runs import missing_runs

    return Comparison(note, headers, rows, missing_runs(path))

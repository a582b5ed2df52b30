"""What `dvao plot` draws from: load a SOURCE into frames, and write figure files.

A SOURCE is one of:

1. an analysis folder written by `dvao analyze --out` (summary.json, steps.parquet,
   schemes.parquet): read as is, nothing recomputed;
2. a `dvao train` run folder (config.json + rollouts/ or rollouts.parquet): its rollouts are
   analyzed with the run's objectives, weights, ddof and eps;
3. a `dvao train --compare` folder (compare.parquet + config.json with "compare": true): the
   final rewards per run, for the Pareto figure;
4. anything else is a rollout log (a Parquet file, a folder of part files or a glob), analyzed
   on the fly with `dvao_cli.analysis.pipeline.analyze`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.analysis import summary as summary_tables
from dvao_cli.errors import InputError, UsageError, not_found, unreadable_parquet
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.discovery import LogSource
from dvao_cli.reader.format import STEP

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from dvao_cli.analysis.pipeline import Analysis

ANALYSIS_FILES = ("summary.json", "steps.parquet", "schemes.parquet")
# what the figures read from an analysis folder (names: dvao_cli/analysis/summary.py)
STEPS_COLUMNS = (
    STEP,
    summary_tables.OBJECTIVE,
    *summary_tables.figure_names(summary_tables.ObjectiveSummary, per_step=True),
)
SCHEMES_COLUMNS = summary_tables.checked(
    summary_tables.SCHEME_COLUMNS, STEP, summary_tables.SCHEME, "mean_square", "max_abs"
)
ORDER_KEY, WEIGHTS_KEY = summary_tables.checked(
    summary_tables.figure_names(summary_tables.Summary), "objective_order", "weights"
)
COMPARE_COLUMNS = ("scheme", "seed")
FORMATS = ("png", "svg", "pdf")
EXPECTED = (
    "a `dvao analyze --out` folder (summary.json, steps.parquet, schemes.parquet), a `dvao "
    "train` run (config.json with rollouts/), a `dvao train --compare` folder (compare.parquet "
    "with config.json) or a rollout log (Parquet files)"
)


@dataclass
class PlotSource:
    """Frames to draw from. `kind` is "analysis", "train", "compare" or "log"."""

    kind: str
    label: str  # short name for titles
    default_out: Path
    objectives: list[str]  # every objective of the source, in order (fixes the colours)
    weights: dict[str, float]  # preference weight per objective
    steps: pl.DataFrame | None = None
    schemes: pl.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json's content
    compare: pl.DataFrame | None = None
    config: dict[str, Any] = field(default_factory=dict)
    curves: pl.DataFrame | None = None  # compare folder: per-run curves (`plot_compare`)


def _read_json(path: Path) -> dict[str, Any]:
    from dvao_cli.io import loads_json

    try:
        data = loads_json(path.read_text(), path=path)  # too long or too deep: InputError
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read ({err.__class__.__name__})", path=path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path=path)
    return data


def _read_parquet(path: Path, required: Sequence[str]) -> pl.DataFrame:
    import polars as pl

    from dvao_cli.reader.footer import check_pages

    check_pages(path)  # a file cut short would make polars panic
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises several types for a bad file
        raise unreadable_parquet(err, path) from None
    for column in required:
        if column not in frame.columns:
            raise InputError(
                "missing column" + did_you_mean(column, frame.columns), path=path, column=column
            )
    if frame.height == 0:
        raise InputError("no rows", path=path)
    return frame


def detect_kind(path: Path) -> str:
    """ "analysis", "train", "compare" or "log" for an existing path (see the module doc)."""
    if not path.is_dir():
        return "log"
    present = [name for name in ANALYSIS_FILES if (path / name).is_file()]
    if present:
        missing = [name for name in ANALYSIS_FILES if name not in present]
        if missing:
            raise InputError(
                f"looks like a `dvao analyze --out` folder but {missing[0]} is missing "
                f"(it holds {', '.join(ANALYSIS_FILES)})",
                path=path,
            )
        return "analysis"
    config_path = path / "config.json"
    if (path / "compare.parquet").is_file():
        if not config_path.is_file():
            raise InputError("compare.parquet without config.json: expected " + EXPECTED, path=path)
        return "compare"
    if config_path.is_file():
        if _read_json(config_path).get("compare") is True:
            return "compare"  # no run has finished yet: `_from_compare` names them all
        if (path / "rollouts").is_dir() or (path / "rollouts.parquet").is_file():
            return "train"
        raise InputError(
            "config.json without rollouts/ or rollouts.parquet: expected " + EXPECTED, path=path
        )
    if any(p.suffix == ".parquet" and p.is_file() for p in path.rglob("*.parquet")):
        return "log"
    from dvao_cli.importers.in_place import is_trainer_log

    if is_trainer_log(path):  # a verl rollout_data_dir: .jsonl files, read in place
        return "log"
    raise InputError("nothing to plot here: expected " + EXPECTED, path=path)


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def source_kind(text: str, fmt: str = "auto") -> tuple[str, Path]:
    """(kind, path) of a SOURCE argument: "analysis", "train", "compare" or "log" (see
    `detect_kind`; a log whatever it holds with a log format other than auto), or "glob" for a
    pattern that names no file. A file of a known folder (e.g. .../summary.json) stands for its
    folder. A path that does not exist is an InputError."""
    path = Path(text)
    if not path.is_file() and not path.is_dir():
        if _is_glob(text) and not os.path.lexists(text):
            return "glob", path
        raise not_found(text)
    if path.is_file() and path.name in (*ANALYSIS_FILES, "compare.parquet", "config.json"):
        try:
            if detect_kind(path.parent) in ("analysis", "compare", "train"):
                path = path.parent
        except InputError:
            pass
    return ("log" if fmt != "auto" else detect_kind(path)), path


@dataclass(frozen=True)
class TrainRun:
    """How a `dvao train` run folder is analyzed: its rollouts with the run's settings."""

    rollouts: Path
    objectives: list[str] | None  # None: every reward column
    weights: dict[str, float]  # the run's, updated with the ones given
    nan: str
    ddof: int
    eps: float
    config: dict[str, Any]  # config.json


def train_run(path: Path, weights: Mapping[str, float] | None = None) -> TrainRun:
    """The analysis settings of the run in `path` (config.json); `weights` given on the
    command line replace the run's for the objectives they name."""
    config = _read_json(path / "config.json")
    rollouts = path / "rollouts" if (path / "rollouts").is_dir() else path / "rollouts.parquet"
    names = config.get("objectives")
    stored = config.get("weights") or {}
    if not isinstance(stored, dict):
        raise InputError('"weights" must be an object {name: weight}', path=path / "config.json")
    merged = {str(k): float(v) for k, v in stored.items()}
    for name in weights or {}:
        if isinstance(names, list) and name not in names:
            raise UsageError(
                f"--weight names '{name}', which is not an objective" + did_you_mean(name, names)
            )
    merged.update(weights or {})
    return TrainRun(
        rollouts=rollouts,
        objectives=[str(n) for n in names] if isinstance(names, list) and names else None,
        weights=merged,
        nan=str(config.get("nan") or "error"),
        ddof=int(config.get("ddof", 0) or 0),
        eps=float(config.get("eps", 0.0) or 0.0),
        config=config,
    )


def load_source(
    source: str | Path | LogSource,
    *,
    objectives: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    nan: str | None = None,
    device: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    incomplete: bool = False,
) -> PlotSource:
    """Load SOURCE. `objectives` is passed to the analysis of a log (which columns are
    objectives); for the other kinds pick them with `select_objectives`. `weights` are the
    preference weights: passed to the analysis of a log or a run, they replace the stored
    ones of an analysis folder (reference lines only). `nan` (the NaN policy of the analysis)
    defaults to the run's configured one for a train folder, else "error". A comparison
    missing runs is refused unless `incomplete` (a page that names the missing runs)."""
    log = LogSource.of(source)  # a log's format and grouping options (trainer logs)
    text = str(log.paths[0])
    weights = dict(weights or {})
    kind, path = source_kind(text, log.format)
    if kind == "glob":
        return _from_log(
            log,
            text,
            Path("dvao-plots"),
            objectives,
            weights,
            nan or "error",
            device,
            on_progress,
        )
    default_out = path / "plots" if path.is_dir() else Path("dvao-plots")
    if kind == "log" and path.is_dir():
        from dvao_cli.importers.in_place import resolve_format

        if resolve_format(log) != "dvao":  # never inside a trainer's folder
            default_out = Path("dvao-plots")
    label = path.resolve().name or text
    if kind == "analysis":
        return _from_analysis(path, label, default_out, weights)
    if kind == "compare":
        if weights:
            raise UsageError(
                "--weight does not apply to a compare folder: "
                "each run's weights are in compare.parquet"
            )
        return _from_compare(path, label, default_out, incomplete)
    if kind == "train":
        run = train_run(path, weights)
        return _from_log(
            run.rollouts,
            label,
            default_out,
            run.objectives,
            run.weights,
            nan or run.nan,
            device,
            on_progress,
            ddof=run.ddof,
            eps=run.eps,
            kind="train",
            config=run.config,
        )
    return _from_log(
        log, label, default_out, objectives, weights, nan or "error", device, on_progress
    )


def _from_log(
    paths: str | Path | LogSource,
    label: str,
    default_out: Path,
    objectives: Sequence[str] | None,
    weights: dict[str, float],
    nan: str,
    device: str,
    on_progress: Callable[[int, int], None] | None,
    *,
    ddof: int = 0,
    eps: float = 0.0,
    kind: str = "log",
    config: dict[str, Any] | None = None,
) -> PlotSource:
    from dvao_cli.analysis.pipeline import analyze

    analysis = analyze(
        paths,
        objectives=list(objectives) if objectives else None,
        weights=weights or None,
        ddof=ddof,
        eps=eps,
        nan=nan,
        device=device,
        on_progress=on_progress,
    )
    return from_analysis(analysis, label, default_out, kind=kind, config=config)


def from_analysis(
    analysis: Analysis,
    label: str,
    default_out: Path,
    *,
    kind: str = "log",
    config: dict[str, Any] | None = None,
) -> PlotSource:
    """What the figures draw from an analysis just run (of a log, or of a train run's)."""
    summary = analysis.summary
    return PlotSource(
        kind=kind,
        label=label,
        default_out=default_out,
        objectives=list(summary.objective_order),
        weights={str(k): float(v) for k, v in summary.weights.items()},
        steps=analysis.steps,
        schemes=analysis.schemes,
        summary=summary.to_json(),
        config=config or {},
    )


def _check_correlation(table: Any, path: Path) -> None:
    """summary.json's "correlation" must be {name: {name: number or null}} (the heatmap's)."""
    if table is None:
        return
    rows = table.values() if isinstance(table, dict) else None
    if rows is None or not all(isinstance(row, dict) for row in rows):
        raise InputError('"correlation" must be an object {name: {name: number}}', path=path)
    for a, row in table.items():
        for b, value in row.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise InputError(
                    f"\"correlation\": the value for '{a}', '{b}' must be a number or null, "
                    f"not {value!r}",
                    path=path,
                )


def _with_signal_share(steps: pl.DataFrame) -> pl.DataFrame:
    """steps.parquet as the figures read it. A table written before `no_signal_share` existed
    held `dvao_weight` as the mean over ALL groups (0 where nothing varies): its sum over the
    objectives is the share of groups with a signal, so the current figures follow from it."""
    import polars as pl

    if summary_tables.NO_SIGNAL in steps.columns:
        return steps
    signal = pl.col("dvao_weight").fill_null(0.0).sum().over(STEP)
    return steps.with_columns(
        pl.when(signal > 0).then(pl.col("dvao_weight") / signal).alias("dvao_weight"),
        (1.0 - signal).alias(summary_tables.NO_SIGNAL),
    )


def _from_analysis(
    path: Path, label: str, default_out: Path, override: dict[str, float]
) -> PlotSource:
    summary = _read_json(path / "summary.json")
    steps = _with_signal_share(_read_parquet(path / "steps.parquet", STEPS_COLUMNS))
    schemes = _read_parquet(path / "schemes.parquet", SCHEMES_COLUMNS)
    order = summary.get(ORDER_KEY)
    in_steps = list(dict.fromkeys(steps.get_column("objective").cast(str).to_list()))
    names = [str(n) for n in order] if isinstance(order, list) and order else in_steps
    for name in in_steps:
        if name not in names:
            raise InputError(
                f"objective '{name}' is in steps.parquet but not in summary.json's objective_order",
                path=path / "summary.json",
            )
    _check_correlation(summary.get("correlation"), path / "summary.json")
    stored = summary.get(WEIGHTS_KEY) or {}
    if not isinstance(stored, dict):
        raise InputError(
            f'"{WEIGHTS_KEY}" must be an object {{name: weight}}', path=path / "summary.json"
        )
    weights = {}
    for name in names:
        value = stored.get(name, 1.0 / len(names))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InputError(
                f"\"{WEIGHTS_KEY}\": the weight of '{name}' must be a number, not {value!r}",
                path=path / "summary.json",
            )
        weights[name] = float(value)
    for name, value in override.items():
        if name not in names:
            raise UsageError(
                f"--weight names '{name}', which is not an objective" + did_you_mean(name, names)
            )
        weights[name] = value
    return PlotSource(
        kind="analysis",
        label=label,
        default_out=default_out,
        objectives=names,
        weights=weights,
        steps=steps,
        schemes=schemes,
        summary=summary,
    )


def _from_compare(path: Path, label: str, default_out: Path, incomplete: bool) -> PlotSource:
    """A comparison's figures; refused (exit 2) while runs are missing, naming them: figures
    of some seeds or schemes would read as the whole comparison. `incomplete` lets the caller
    take what is there (it names the missing runs itself)."""
    from dvao_cli.train.compare_runs import missing_runs, planned_runs

    config = _read_json(path / "config.json")
    missing = [] if incomplete else missing_runs(path)  # the caller reads them itself
    if missing:
        total = len(planned_runs(config, path / "config.json"))
        raise InputError(
            f"the comparison is missing {len(missing)} of its {total} runs ("
            + ", ".join(missing)
            + f"): finish it with `dvao train --resume {path}`, then plot it",
            path=path,
        )
    compare = _read_parquet(path / "compare.parquet", COMPARE_COLUMNS)
    finals = [c[len("final_") :] for c in compare.columns if c.startswith("final_")]
    order = config.get("objectives")
    names = [str(n) for n in order] if isinstance(order, list) and order else finals
    for name in names:
        if f"final_{name}" not in compare.columns:
            raise InputError(
                "missing column (one final_<objective> per objective of config.json)",
                path=path / "compare.parquet",
                column=f"final_{name}",
            )
    weights = {name: float("nan") for name in names}
    from dvao_cli.plot.compare import read_curves

    swept = config.get("sweep_weights") is not None  # a weight sweep keeps its Pareto figure
    return PlotSource(
        kind="compare",
        label=label,
        default_out=default_out,
        objectives=names,
        weights=weights,
        compare=compare,
        config=config,
        curves=None if swept else read_curves(path, compare, names),
    )


def select_objectives(
    available: Sequence[str], requested: Sequence[str] | None, *, keep_order: bool = False
) -> list[str]:
    """The objectives to draw: `requested` in the source's order (in the order given with
    `keep_order`, e.g. the Pareto figure's x then y), or all of them."""
    if not requested:
        return list(available)
    for name in requested:
        if name not in available:
            raise UsageError(
                f"--objective '{name}' is not an objective of this source"
                + did_you_mean(name, list(available))
            )
    if keep_order:
        return list(dict.fromkeys(requested))
    chosen = set(requested)
    return [name for name in available if name in chosen]


def build_figures(
    src: PlotSource,
    objectives: Sequence[str],
    *,
    smooth: int | None = None,
) -> tuple[dict[str, Figure], dict[str, str]]:
    """Figures for the source: file stem -> Figure, and stem -> why a figure was skipped."""
    from dvao_cli.plot import figures as plots

    if src.kind == "compare":
        from dvao_cli.plot.compare import CURVES, curves_figure

        curves = {}
        if src.curves is not None and src.curves.height:
            curves[CURVES] = curves_figure(src.curves, objectives, smooth=smooth, label=src.label)
            if len(objectives) < 2:
                return curves, {"pareto": "needs at least two objectives"}
        if len(objectives) < 2:
            raise UsageError(
                "the Pareto figure needs two objectives; this comparison has "
                + ", ".join(f"'{n}'" for n in objectives)
            )
        x_obj, y_obj = objectives[0], objectives[1]
        fig = plots.pareto_figure(src.compare, src.objectives, x_obj, y_obj, label=src.label)
        return {**curves, "pareto": fig}, {}
    assert src.steps is not None and src.schemes is not None
    result = plots.analysis_figures(
        src.steps,
        src.schemes,
        src.summary,
        src.objectives,
        objectives,
        src.weights,
        smooth=smooth,
        label=src.label,
    )
    return result.figures, result.skipped


def save_figure(fig: Figure, target: Path, fmt: str) -> Path:
    """Write `fig` to `target` atomically (temp file beside it, renamed on success)."""
    from dvao_cli.io import atomic_path

    data = figure_bytes(fig, fmt)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """`fig` as a file of format `fmt` (png, svg or pdf), as `dvao plot` writes it."""
    import io

    from dvao_cli.plot import figures as plots

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    # no timestamps in the files: regenerating the docs' figures changes nothing
    metadata: dict[str, Any] = {
        "png": {"Software": None},
        "svg": {"Date": None},
        "pdf": {"CreationDate": None, "ModDate": None},
    }[fmt]
    buffer = io.BytesIO()
    with plots.style():
        fig.savefig(buffer, format=fmt, dpi=plots.DPI, metadata=metadata)
    return buffer.getvalue()

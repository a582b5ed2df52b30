"""Learning curves of a `dvao train --compare` folder: per objective, each scheme's mean reward
over steps across seeds, with a band over seeds (the 95% t-interval of the mean, as in the
comparison table).

The curves come from each run's `metrics.parquet` (`rewards/<objective>/mean`, one row per step),
the runs from `compare.parquet` (`scheme`, `seed`, `run`). A weight sweep keeps its Pareto figure
only: its runs differ by weights, not by seed alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from dvao_cli.errors import InputError
from dvao_cli.reader.footer import check_pages

CURVES = "learning_curves"
CURVES_FIGSIZE = (9.0, 3.0)  # per objective panel: width, height


def read_curves(folder: Path, compare: pl.DataFrame, objectives: Sequence[str]) -> pl.DataFrame:
    """Long frame (scheme, seed, step, objective, value) from every run's metrics.parquet.

    Empty when compare.parquet names no run folders (no `run` column) or none of them holds a
    metrics.parquet (a comparison table alone); a run folder missing among others is an error.
    """
    empty = pl.DataFrame(
        schema={
            "scheme": pl.Utf8,
            "seed": pl.Int64,
            "step": pl.Int64,
            "objective": pl.Utf8,
            "value": pl.Float64,
        }
    )
    if "run" not in compare.columns:
        return empty
    runs = compare.select("scheme", "seed", "run").to_dicts()
    paths = [folder / str(r["run"]) / "metrics.parquet" for r in runs]
    if not any(p.is_file() for p in paths):
        return empty
    parts = []
    for run, path in zip(runs, paths, strict=True):
        cols = [f"rewards/{name}/mean" for name in objectives]
        try:
            check_pages(path)  # a file cut short would make polars panic
            frame = pl.read_parquet(path, columns=["step", *cols])
        except FileNotFoundError:
            raise InputError("missing: the comparison lists this run", path=path) from None
        except Exception as err:  # noqa: BLE001 - polars' many errors: one line, exit 2
            raise InputError(f"cannot read: {str(err).splitlines()[0]}", path=path) from None
        long = frame.unpivot(index="step", on=cols, variable_name="objective", value_name="value")
        parts.append(
            long.with_columns(
                pl.lit(str(run["scheme"])).alias("scheme"),
                pl.lit(int(run["seed"]), dtype=pl.Int64).alias("seed"),
                pl.col("step").cast(pl.Int64),
                pl.col("objective").str.slice(len("rewards/")).str.strip_suffix("/mean"),
                pl.col("value").cast(pl.Float64),
            ).select(empty.columns)
        )
    return pl.concat(parts)


def curve_bands(
    curves: pl.DataFrame, scheme: str, objective: str, smooth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """steps (S,), mean over seeds (S,), band half-width (S,) and the number of seeds.

    Each seed's curve is smoothed first (rolling mean over `smooth` steps); the band is the 95%
    t-interval of the mean over seeds (NaN with one seed)."""
    from dvao_cli.plot import figures as plots
    from dvao_cli.train.compare import t_quantile_975

    part = curves.filter((pl.col("scheme") == scheme) & (pl.col("objective") == objective))
    seeds = sorted(part["seed"].unique().to_list())
    steps, values = plots.pivot(part, "value", "seed", seeds)  # (S,), (S, seeds)
    values = plots.rolling_mean(values, smooth)
    n = len(seeds)
    mean = np.nanmean(values, axis=1) if n else np.full(steps.shape, np.nan)
    if n < 2:
        return steps, mean, np.full(steps.shape, np.nan), n
    sd = np.nanstd(values, axis=1, ddof=1)
    return steps, mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n


def curves_figure(
    curves: pl.DataFrame, objectives: Sequence[str], *, smooth: int | None = None, label: str = ""
) -> Figure:
    """One panel per objective: each scheme's mean curve over seeds with its band."""
    from dvao_cli.plot import figures as plots

    n_steps = int(curves["step"].n_unique())
    window = plots.default_smooth(n_steps) if smooth is None else smooth
    found = list(dict.fromkeys(curves["scheme"].to_list()))
    schemes = [s for s in plots.SCHEME_STYLE if s in found]
    schemes += [s for s in found if s not in plots.SCHEME_STYLE]
    width, height = CURVES_FIGSIZE
    with plots.style():
        fig = Figure(figsize=(width, 1.2 + height * len(objectives)), dpi=plots.DPI)
        fig.set_layout_engine("constrained")
        axes = fig.subplots(len(objectives), 1, sharex=True, squeeze=False)[:, 0]
        handles: list[Any] = []
        labels: list[str] = []
        n_seeds = 0
        for ax, objective in zip(axes, objectives, strict=True):
            for i, scheme in enumerate(schemes):
                steps, mean, half, n = curve_bands(curves, scheme, objective, window)
                n_seeds = max(n_seeds, n)
                style = plots.scheme_style(scheme, i)
                style.pop("marker", None)
                (line,) = ax.plot(
                    steps, mean, gid=f"curve:{objective}:{scheme}", label=scheme, **style
                )
                if n >= 2:
                    ax.fill_between(
                        steps,
                        mean - half,
                        mean + half,
                        color=style["color"],
                        alpha=0.18,
                        linewidth=0,
                        gid=f"band:{objective}:{scheme}",
                    )
                if objective == objectives[0]:
                    handles.append(line)
                    labels.append(scheme)
            ax.set_ylabel(f"{objective} (mean reward)")
        axes[-1].set_xlabel(plots._step_label(window))
        plots._integer_steps(axes[-1], np.sort(curves["step"].unique().to_numpy()))
        plots._legend(fig, handles, labels)
        band = f"band: 95% t-interval over {n_seeds} seeds" if n_seeds >= 2 else "one seed"
        fig.suptitle(plots._title(f"Learning curves, mean over seeds ({band})", label))
    return fig

"""Figure builders for `dvao plot`: pure functions from frames to matplotlib Figures, no I/O.

Every builder returns a `matplotlib.figure.Figure` made without pyplot (no GUI backend, so
it works headless), under the print-friendly `style()` (white background, light grid). Each
objective keeps one colour across every figure: its position in the analysis's objective order
picks it from the Okabe-Ito palette (colour-blind safe); past eight objectives the colours repeat
with another line style. Time series are drawn after a centred rolling mean over `smooth`
logged steps (`default_smooth` picks max(1, steps // 50)).

Inputs follow the `dvao analyze --out` contract: `steps` is long, one row per (step, objective)
with `mean`, `within_group_std`, `saturation`, `saturation_pass`, `saturation_fail`,
`dvao_weight` (the mean over the groups with a signal) and `no_signal_share`; `schemes` has
one row per (step, scheme) with `mean_square` and `max_abs`; `compare` has one row per
training run with `scheme`, `seed`, `w_<objective>` and `final_<objective>`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from dvao_cli.analysis.summary import NO_SIGNAL

# Okabe & Ito (2008), reordered so that the first colours contrast most on white; yellow late
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
LINESTYLES = ("-", "--", ":", "-.")
OTHER_COLOR = "#BBBBBB"  # objectives left out by --objective
NO_SIGNAL_COLOR = "#999999"

# schemes are not objectives: Paul Tol's "bright" palette (also colour-blind safe), each with
# its own line style and marker so that they read in greyscale too
SCHEME_STYLE: dict[str, dict[str, Any]] = {
    "grpo": {"color": "#BBBBBB", "linestyle": ":", "marker": "v", "linewidth": 1.6},
    # RC is wide so that it shows under GDPO where both are exactly 1 (mean square)
    "rc": {"color": "#4477AA", "linestyle": "--", "marker": "s", "linewidth": 3.2},
    "ac": {"color": "#CCBB44", "linestyle": "-.", "marker": "^", "linewidth": 1.6},
    "gdpo": {
        "color": "#AA3377",
        "linestyle": (0, (5, 1, 1, 1, 1, 1)),
        "marker": "D",
        "linewidth": 1.4,
    },
    "dvao": {"color": "#EE6677", "linestyle": "-", "marker": "o", "linewidth": 2.4},
}
_EXTRA_SCHEME_COLORS = ("#228833", "#66CCEE", "#000000")

DPI = 120
FIGSIZE: dict[str, tuple[float, float]] = {
    "weights": (9.0, 6.0),
    "saturation": (9.0, 6.5),
    "rewards": (9.0, 6.5),
    "advantages": (9.0, 6.5),
    "correlation": (7.0, 6.0),
    "pareto": (8.0, 6.5),
}
FIGURES = ("weights", "saturation", "rewards", "advantages", "correlation")
MARKERS_UP_TO = 60  # draw point markers when there are this many steps or fewer

STYLE: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.edgecolor": "#333333",
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "figure.titlesize": 13,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
    "font.family": "DejaVu Sans",
    "svg.hashsalt": "dvao",  # stable element ids: regenerated SVGs do not churn
    "svg.fonttype": "path",
    "text.parse_math": False,  # names are data: `$x$` in an objective name prints as typed
}


@contextmanager
def style() -> Iterator[None]:
    """The print-friendly style, active while a figure is built and while it is saved."""
    with mpl.rc_context(STYLE):
        yield


@dataclass(frozen=True)
class LineStyle:
    color: str
    linestyle: Any


def objective_styles(objectives: Sequence[str]) -> dict[str, LineStyle]:
    """One colour (and line style past eight objectives) per objective, by position."""
    n = len(OKABE_ITO)
    return {
        name: LineStyle(OKABE_ITO[i % n], LINESTYLES[(i // n) % len(LINESTYLES)])
        for i, name in enumerate(objectives)
    }


def scheme_style(name: str, index: int = 0) -> dict[str, Any]:
    if name in SCHEME_STYLE:
        return dict(SCHEME_STYLE[name])
    return {
        "color": _EXTRA_SCHEME_COLORS[index % len(_EXTRA_SCHEME_COLORS)],
        "linestyle": "-",
        "marker": "x",
        "linewidth": 1.6,
    }


def default_smooth(n_steps: int) -> int:
    """Rolling-mean window: one point per ~2% of the run, so 10,000 steps stay readable."""
    return max(1, n_steps // 50)


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling mean along axis 0 over `window` rows, skipping NaN.

    values: (S,) or (S, K). A window with no finite value gives NaN. Shorter windows at the ends.
    """
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.shape[0] == 0:
        return v.copy()
    valid = np.isfinite(v)
    zeroed = np.where(valid, v, 0.0)
    pad = np.zeros((1,) + v.shape[1:])
    csum = np.concatenate([pad, np.cumsum(zeroed, axis=0)])  # (S+1, ...)
    ccount = np.concatenate([pad, np.cumsum(valid, axis=0)])
    s = v.shape[0]
    idx = np.arange(s)
    lo = np.clip(idx - (window - 1) // 2, 0, s)
    hi = np.clip(idx + window // 2 + 1, 0, s)
    total = csum[hi] - csum[lo]
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def pivot(
    frame: pl.DataFrame, column: str, by: str, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Long (step, `by`, column) -> steps (S,) sorted, values (S, len(names)); missing = NaN."""
    steps = np.sort(frame.get_column("step").unique().to_numpy()).astype(np.int64)  # (S,)
    out = np.full((steps.shape[0], len(names)), np.nan)  # (S, K)
    for j, name in enumerate(names):
        part = frame.filter(pl.col(by) == name)
        if part.height == 0:
            continue
        rows = np.searchsorted(steps, part.get_column("step").to_numpy())  # (rows of name,)
        out[rows, j] = part.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()
    return steps, out


def _integer_steps(ax: Any, steps: np.ndarray) -> None:
    """Steps are integers: no tick at step 0.5, and a few steps get room on both sides."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    if steps.shape[0] and steps.max() - steps.min() < 2:
        ax.set_xlim(steps.min() - 1, steps.max() + 1)


def _step_label(smooth: int) -> str:
    return "training step" + (f" (rolling mean over {smooth} logged steps)" if smooth > 1 else "")


def _title(text: str, label: str) -> str:
    return f"{text} \u2014 {label}" if label else text


def _marker(n_steps: int) -> str | None:
    return "o" if n_steps <= MARKERS_UP_TO else None


def isolated(values: np.ndarray) -> np.ndarray:
    """(S,) bool: a finite value whose neighbours are not (or absent): a line through it has
    no length, so without a marker that step would not show."""
    finite = np.isfinite(values)
    before = np.concatenate([[False], finite[:-1]])
    after = np.concatenate([finite[1:], [False]])
    return finite & ~before & ~after


def _mark_isolated(ax: Any, x: np.ndarray, y: np.ndarray, color: Any, marker: str = "o") -> None:
    """A marker on each isolated point of a line drawn without markers."""
    alone = isolated(np.asarray(y, dtype=np.float64))
    if alone.any():
        ax.plot(x[alone], y[alone], linestyle="none", marker=marker, markersize=3.5, color=color)


def _legend(
    fig: Figure, handles: list[Any], labels: list[str], loc: str = "outside right center"
) -> None:
    """Outside the axes (never over the data), clear of the centred suptitle."""
    if handles:
        ncol = 1 if "right" in loc else min(3, len(handles))
        fig.legend(handles, labels, loc=loc, ncol=ncol)


def _new_figure(
    name: str, nrows: int = 1, height_ratios: Sequence[float] | None = None
) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=FIGSIZE[name], dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False, height_ratios=height_ratios)
    return fig, [ax for row in axes for ax in row]


def _series(
    ax: Any,
    steps: np.ndarray,
    values: np.ndarray,
    names: Sequence[str],
    styles: Mapping[str, LineStyle],
) -> list[Any]:
    """One line per objective; values (S, len(names)). Returns the line artists."""
    marker = _marker(steps.shape[0])
    lines = []
    for j, name in enumerate(names):
        st = styles[name]
        (line,) = ax.plot(
            steps,
            values[:, j],
            color=st.color,
            linestyle=st.linestyle,
            marker=marker,
            markersize=3.5,
            label=name,
            gid=f"objective:{name}",
        )
        if marker is None:
            _mark_isolated(ax, steps, values[:, j], st.color)
        lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------
# Per-step figures (from an analysis)
# --------------------------------------------------------------------------------------------


def weight_shares(
    steps: pl.DataFrame, all_objectives: Sequence[str], *, smooth: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps (S,), mean w~_k over the groups with a signal (S, K), share of groups without (S,).

    Both come from the steps table as they are (`dvao_weight`, `no_signal_share`): per step,
    the summary's DVAO weight, which sums to 1 over the objectives (NaN at a step without any
    signal; an objective missing at a step has weight 0 there). Both are then smoothed; the
    rows still sum to 1.
    """
    x, w = pivot(steps, "dvao_weight", "objective", list(all_objectives))  # (S,), (S, K)
    _, per_objective = pivot(steps, NO_SIGNAL, "objective", list(all_objectives))
    with np.errstate(invalid="ignore"):  # alike for every objective of a step
        no_signal = np.nanmax(per_objective, axis=1)  # (S,)
    share = np.where((no_signal < 1.0)[:, None], np.nan_to_num(w, nan=0.0), np.nan)
    return x, rolling_mean(share, smooth), rolling_mean(no_signal, smooth)


def weights_figure(
    steps: pl.DataFrame,
    all_objectives: Sequence[str],
    objectives: Sequence[str],
    preference: Mapping[str, float],
    *,
    smooth: int = 1,
    label: str = "",
) -> Figure:
    """DVAO weight per objective over steps, a stacked area summing to 1 (see `weight_shares`).

    The lower panel is the share of groups with no signal at all. Dashed lines: the band
    boundaries the normalised preference weights w_k / sum w would give (DVAO's weights when
    every objective has the same spread); the right margin prints each preference share.
    Objectives left out by `objectives` form one grey band, so the stack still sums to 1.
    """
    styles = objective_styles(all_objectives)
    x, share, no_signal = weight_shares(steps, all_objectives, smooth=smooth)

    drawn = [name for name in all_objectives if name in objectives]
    others = [name for name in all_objectives if name not in objectives]
    index = {name: j for j, name in enumerate(all_objectives)}
    bands: list[tuple[str, np.ndarray, str]] = [
        (name, share[:, index[name]], styles[name].color) for name in drawn
    ]
    if others:
        bands.append(
            (
                f"other objectives ({len(others)})",
                share[:, [index[o] for o in others]].sum(axis=1),
                OTHER_COLOR,
            )
        )

    total_pref = sum(max(0.0, float(preference.get(name, 0.0))) for name in all_objectives)
    pref = {
        name: (
            float(preference.get(name, 0.0)) / total_pref
            if total_pref > 0
            else 1.0 / len(all_objectives)
        )
        for name in all_objectives
    }
    pref_bands = [pref[name] for name in drawn] + ([sum(pref[o] for o in others)] if others else [])

    with style():
        fig, (ax, ax_sig) = _new_figure("weights", 2, height_ratios=(3, 1))
        xs, ys = x, [b[1] for b in bands]
        if x.shape[0] == 1:  # one step: give the area a width so it shows
            xs = np.array([x[0] - 0.5, x[0] + 0.5])
            ys = [np.repeat(y, 2) for y in ys]
            no_signal_x, no_signal_y = xs, np.repeat(no_signal, 2)
        else:
            no_signal_x, no_signal_y = x, no_signal
        lower = np.zeros_like(xs, dtype=np.float64)
        handles, labels = [], []
        for (name, _, color), y in zip(bands, ys, strict=True):
            upper = lower + y
            poly = ax.fill_between(
                xs,
                lower,
                upper,
                color=color,
                alpha=0.85,
                linewidth=0,
                label=name,
                gid=f"objective:{name}",
            )
            _mark_isolated(ax, xs, upper, color)  # an area of no width: a marker shows it
            handles.append(poly)
            labels.append(name)
            lower = upper
        boundary = 0.0
        ref = None
        for (_name, _, color), p in zip(bands, pref_bands, strict=True):
            ax.text(
                1.005,
                boundary + p / 2,
                f"{p:.2f}",
                transform=ax.get_yaxis_transform(),
                color=color if color != OKABE_ITO[6] else "#8a7f00",
                fontsize=8,
                va="center",
                clip_on=False,
            )
            boundary += p
            if boundary < 1.0 - 1e-9:
                ref = ax.axhline(boundary, color="black", linestyle="--", linewidth=1.1)
        # legend top-down like the stack
        handles, labels = handles[::-1], labels[::-1]
        if ref is not None:
            handles.append(ref)
            labels.append("preference weights\n(band boundaries)")
        ax.set_ylim(0, 1)
        ax.set_ylabel("DVAO weight (share, sums to 1)")
        ax.set_title(
            "mean w\u0303_k over the groups with a signal; right: preference share w_k / \u03a3w"
        )
        ax_sig.fill_between(
            no_signal_x, 0, no_signal_y, color=NO_SIGNAL_COLOR, alpha=0.4, linewidth=0
        )
        ax_sig.plot(no_signal_x, no_signal_y, color="black", linewidth=1.2)
        _mark_isolated(ax_sig, no_signal_x, no_signal_y, "black")
        ax_sig.set_ylim(0, 1)
        ax_sig.set_ylabel("share of groups")
        ax_sig.set_title("groups with no signal (every objective has zero within-group variance)")
        ax_sig.set_xlabel(_step_label(smooth))
        _integer_steps(ax_sig, x)
        fig.suptitle(_title("DVAO weight per objective", label))
        _legend(fig, handles, labels)
    return fig


def saturation_figure(
    steps: pl.DataFrame,
    all_objectives: Sequence[str],
    objectives: Sequence[str],
    *,
    smooth: int = 1,
    label: str = "",
) -> Figure:
    """Share of zero-variance groups per objective: all-pass and all-fail in two panels.

    A binary objective (rewards in {0, 1}) has `saturation_pass`/`saturation_fail`; a
    non-binary one only `saturation` (every response got the same value), in a third panel.
    """
    styles = objective_styles(all_objectives)
    names = list(objectives)
    x, sat = pivot(steps, "saturation", "objective", names)
    _, sat_pass = pivot(steps, "saturation_pass", "objective", names)
    _, sat_fail = pivot(steps, "saturation_fail", "objective", names)
    binary = [j for j in range(len(names)) if np.isfinite(sat_pass[:, j]).any()]
    other = [j for j in range(len(names)) if j not in binary]
    panels: list[tuple[str, np.ndarray, list[int]]] = []
    if binary:
        panels.append(("all pass: every response scored 1 (binary objectives)", sat_pass, binary))
        panels.append(("all fail: every response scored 0 (binary objectives)", sat_fail, binary))
    if other:
        panels.append(("every response scored the same (non-binary objectives)", sat, other))

    with style():
        fig, axes = _new_figure("saturation", len(panels))
        handles: dict[str, Any] = {}
        for ax, (title, values, cols) in zip(axes, panels, strict=True):
            sel = [names[j] for j in cols]
            lines = _series(ax, x, rolling_mean(values[:, cols], smooth), sel, styles)
            for name, line in zip(sel, lines, strict=True):
                handles.setdefault(name, line)
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("share of groups")
            ax.set_title(title)
        axes[-1].set_xlabel(_step_label(smooth))
        _integer_steps(axes[-1], x)
        fig.suptitle(_title("Saturated groups (zero within-group variance)", label))
        order = [n for n in names if n in handles]
        _legend(fig, [handles[n] for n in order], order)
    return fig


def rewards_figure(
    steps: pl.DataFrame,
    all_objectives: Sequence[str],
    objectives: Sequence[str],
    *,
    smooth: int = 1,
    label: str = "",
) -> Figure:
    """Per objective: mean reward (top) and mean within-group std (bottom) over steps."""
    styles = objective_styles(all_objectives)
    names = list(objectives)
    x, mean = pivot(steps, "mean", "objective", names)
    _, std = pivot(steps, "within_group_std", "objective", names)
    with style():
        fig, (ax_mean, ax_std) = _new_figure("rewards", 2)
        lines = _series(ax_mean, x, rolling_mean(mean, smooth), names, styles)
        _series(ax_std, x, rolling_mean(std, smooth), names, styles)
        ax_mean.set_ylabel("mean reward (reward units)")
        ax_mean.set_title("mean reward over every response of the step")
        ax_std.set_ylabel("within-group std (reward units)")
        ax_std.set_title("within-group standard deviation, mean over the step's groups")
        ax_std.set_ylim(bottom=0)
        ax_std.set_xlabel(_step_label(smooth))
        _integer_steps(ax_std, x)
        fig.suptitle(_title("Rewards and their within-group spread", label))
        _legend(fig, lines, names)
    return fig


def advantages_figure(
    schemes: pl.DataFrame,
    scheme_names: Sequence[str],
    *,
    smooth: int = 1,
    label: str = "",
) -> Figure:
    """Per scheme: mean square (top) and max |advantage| (bottom) over steps."""
    names = list(scheme_names)
    x, ms = pivot(schemes, "mean_square", "scheme", names)
    _, mx = pivot(schemes, "max_abs", "scheme", names)
    ms, mx = rolling_mean(ms, smooth), rolling_mean(mx, smooth)
    marker_on = x.shape[0] <= MARKERS_UP_TO
    with style():
        fig, (ax_ms, ax_mx) = _new_figure("advantages", 2)
        lines = []
        for j, name in enumerate(names):
            st = scheme_style(name, j)
            kw = {
                "color": st["color"],
                "linestyle": st["linestyle"],
                "marker": st["marker"] if marker_on else None,
                "markersize": 4,
                "label": name,
                "gid": f"scheme:{name}",
                "linewidth": st["linewidth"],
            }
            (line,) = ax_ms.plot(x, ms[:, j], **kw)
            ax_mx.plot(x, mx[:, j], **kw)
            if not marker_on:
                _mark_isolated(ax_ms, x, ms[:, j], st["color"], st["marker"])
                _mark_isolated(ax_mx, x, mx[:, j], st["color"], st["marker"])
            lines.append(line)
        ref = ax_ms.axhline(1.0, color="black", linestyle=(0, (1, 3)), linewidth=1.0, zorder=1)
        ax_ms.set_ylabel("mean square advantage")
        ax_ms.set_title(
            "mean of A\u00b2 over the step's responses (RC gives 1 on a group with a signal)"
        )
        ax_ms.set_ylim(bottom=0)
        ax_mx.set_ylabel("max |advantage|")
        ax_mx.set_title("largest |A| of the step")
        ax_mx.set_ylim(bottom=0)
        ax_mx.set_xlabel(_step_label(smooth))
        _integer_steps(ax_mx, x)
        fig.suptitle(_title("Advantage scale per scheme", label))
        _legend(fig, [*lines, ref], [*names, "1 (reference)"])
    return fig


def correlation_figure(
    correlation: Mapping[str, Mapping[str, float | None]],
    all_objectives: Sequence[str],
    objectives: Sequence[str],
    *,
    label: str = "",
) -> Figure:
    """Heatmap of the within-group correlation between objectives, values in the cells."""
    from matplotlib.colors import ListedColormap

    styles = objective_styles(all_objectives)
    names = list(objectives)
    k = len(names)
    matrix = np.full((k, k), np.nan)  # (K, K)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            value = (correlation.get(a) or {}).get(b)
            if value is not None:
                matrix[i, j] = float(value)
    base = mpl.colormaps["RdBu_r"]
    cmap = ListedColormap(base(np.linspace(0, 1, 256))).with_extremes(bad="#EEEEEE")
    size = (
        max(FIGSIZE["correlation"][0], 3.0 + 0.9 * k),
        max(FIGSIZE["correlation"][1], 2.0 + 0.9 * k),
    )
    with style():
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        ax = fig.subplots()
        ax.grid(False)
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=-1, vmax=1)
        fontsize = 11 if k <= 4 else 9 if k <= 6 else 8
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                text = "n/a" if not np.isfinite(v) else f"{v:+.2f}"
                color = "white" if np.isfinite(v) and abs(v) > 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
        ax.set_xticks(
            range(k), names, rotation=30 if k > 3 else 0, ha="right" if k > 3 else "center"
        )
        ax.set_yticks(range(k), names)
        for tick, name in zip(ax.get_xticklabels(), names, strict=True):
            tick.set_color(styles[name].color if styles[name].color != OKABE_ITO[6] else "#8a7f00")
        for tick, name in zip(ax.get_yticklabels(), names, strict=True):
            tick.set_color(styles[name].color if styles[name].color != OKABE_ITO[6] else "#8a7f00")
        ax.set_xlabel("objective")
        ax.set_ylabel("objective")
        ax.set_title("Pearson correlation inside each group, averaged over groups")
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label("within-group correlation (-1 to 1)")
        fig.suptitle(_title("Within-group correlation between objectives", label))
    return fig


# --------------------------------------------------------------------------------------------
# Scheme comparison (from `dvao train --compare`)
# --------------------------------------------------------------------------------------------


@dataclass
class ParetoPoint:
    scheme: str
    weights: tuple[float, ...]  # preference weight per objective (NaN when not recorded)
    x: float
    y: float
    x_std: float
    y_std: float
    seeds: int


def pareto_points(
    compare: pl.DataFrame, objectives: Sequence[str], x_obj: str, y_obj: str
) -> list[ParetoPoint]:
    """Mean (and std over seeds, population) of the final rewards per (scheme, weights)."""
    w_cols = [f"w_{name}" for name in objectives if f"w_{name}" in compare.columns]
    keys = ["scheme", *w_cols]
    agg = (
        compare.group_by(keys, maintain_order=True)
        .agg(
            pl.col(f"final_{x_obj}").cast(pl.Float64).mean().alias("x"),
            pl.col(f"final_{y_obj}").cast(pl.Float64).mean().alias("y"),
            pl.col(f"final_{x_obj}").cast(pl.Float64).std(ddof=0).alias("x_std"),
            pl.col(f"final_{y_obj}").cast(pl.Float64).std(ddof=0).alias("y_std"),
            pl.len().alias("seeds"),
        )
        .sort(keys)
    )
    points = []
    for row in agg.iter_rows(named=True):
        weights = tuple(
            float(row[f"w_{name}"])
            if f"w_{name}" in row and row[f"w_{name}"] is not None
            else float("nan")
            for name in objectives
        )
        points.append(
            ParetoPoint(
                scheme=str(row["scheme"]),
                weights=weights,
                x=float(row["x"]) if row["x"] is not None else float("nan"),
                y=float(row["y"]) if row["y"] is not None else float("nan"),
                x_std=float(row["x_std"] or 0.0),
                y_std=float(row["y_std"] or 0.0),
                seeds=int(row["seeds"]),
            )
        )
    return points


def non_dominated(xy: np.ndarray) -> np.ndarray:
    """Indices of the points (rows of xy, (P, 2)) no other point beats on both axes (maximise).

    A point is dominated when another is >= on both and > on one. Sorted by x ascending.
    """
    keep = []
    for i in range(xy.shape[0]):
        if not np.isfinite(xy[i]).all():
            continue
        ge = (xy >= xy[i]).all(axis=1)
        gt = (xy > xy[i]).any(axis=1)
        if not (ge & gt).any():
            keep.append(i)
    keep_arr = np.array(keep, dtype=np.int64)
    return keep_arr[np.lexsort((-xy[keep_arr, 1], xy[keep_arr, 0]))] if keep else keep_arr


def pareto_figure(
    compare: pl.DataFrame,
    objectives: Sequence[str],
    x_obj: str,
    y_obj: str,
    *,
    label: str = "",
) -> Figure:
    """Final reward on `x_obj` vs `y_obj`, one marker per scheme, the overall non-dominated front.

    Points are means over seeds (error bars: std over seeds when there are several); when the
    preference weights were swept each point is labelled with its weights.
    """
    points = pareto_points(compare, objectives, x_obj, y_obj)
    found = list(dict.fromkeys(p.scheme for p in points))
    schemes = [s for s in SCHEME_STYLE if s in found] + [s for s in found if s not in SCHEME_STYLE]
    swept = len({p.weights for p in points if all(np.isfinite(p.weights))}) > 1
    xy = np.array([[p.x, p.y] for p in points], dtype=np.float64).reshape(-1, 2)  # (P, 2)
    front = non_dominated(xy)
    with style():
        fig = Figure(figsize=FIGSIZE["pareto"], dpi=DPI, layout="constrained")
        ax = fig.subplots()
        handles, labels = [], []
        shared: dict[tuple[float, float], int] = {}  # points per location
        for p in points:
            key = (round(p.x, 9), round(p.y, 9))
            shared[key] = shared.get(key, 0) + 1
        placed: dict[tuple[float, float], int] = {}
        for s_index, scheme in enumerate(schemes):
            st = scheme_style(scheme, s_index)
            mine = [p for p in points if p.scheme == scheme]
            xs = np.array([p.x for p in mine])
            ys = np.array([p.y for p in mine])
            several = any(p.seeds > 1 for p in mine)
            container = ax.errorbar(
                xs,
                ys,
                xerr=np.array([p.x_std for p in mine]) if several else None,
                yerr=np.array([p.y_std for p in mine]) if several else None,
                fmt=st["marker"],
                color=st["color"],
                markersize=8,
                markeredgecolor="black",
                markeredgewidth=0.6,
                ecolor=st["color"],
                elinewidth=1.0,
                capsize=3,
                label=scheme,
                gid=f"scheme:{scheme}",
            )
            handles.append(container)
            seeds = max(p.seeds for p in mine)
            labels.append(f"{scheme}" + (f" (mean \u00b1 std, {seeds} seeds)" if seeds > 1 else ""))
            if swept:
                for p in mine:
                    key = (round(p.x, 9), round(p.y, 9))
                    rank = placed.get(key, 0)  # points already labelled at this spot
                    placed[key] = rank + 1
                    text = _weight_label(p.weights)
                    ax.annotate(
                        f"{p.scheme} {text}" if shared[key] > 1 else text,
                        (p.x, p.y),
                        xytext=(6, 5 + 10 * rank),  # coinciding points: labels stacked
                        textcoords="offset points",
                        fontsize=8,
                        color="#333333",
                    )
        if front.size:
            (line,) = ax.step(
                xy[front, 0],
                xy[front, 1],
                where="pre",
                color="black",
                linestyle="--",
                linewidth=1.2,
                zorder=0,
            )
            handles.append(line)
            labels.append("non-dominated front\n(over all schemes)")
        ax.set_xlabel(f"final {x_obj} reward (mean over the last 10% of steps)")
        ax.set_ylabel(f"final {y_obj} reward (mean over the last 10% of steps)")
        ax.set_title(
            "higher is better on both axes"
            + ("; labels: preference weights " + "/".join(objectives) if swept else "")
        )
        fig.suptitle(_title(f"Pareto: final {x_obj} vs {y_obj} per scheme", label))
        _legend(fig, handles, labels, loc="outside lower center")
    return fig


def _weight_label(weights: tuple[float, ...]) -> str:
    return "w=" + "/".join(f"{w:g}" for w in weights)


# --------------------------------------------------------------------------------------------
# The set of figures for one source
# --------------------------------------------------------------------------------------------


@dataclass
class FigureSet:
    figures: dict[str, Figure] = field(default_factory=dict)  # file stem -> figure
    skipped: dict[str, str] = field(default_factory=dict)  # file stem -> reason


def analysis_figures(
    steps: pl.DataFrame,
    schemes: pl.DataFrame,
    summary: Mapping[str, Any],
    all_objectives: Sequence[str],
    objectives: Sequence[str],
    preference: Mapping[str, float],
    *,
    smooth: int | None = None,
    label: str = "",
) -> FigureSet:
    """weights, saturation, rewards, advantages and correlation for one analysis."""
    n_steps = steps.get_column("step").n_unique()
    window = default_smooth(n_steps) if smooth is None else max(1, smooth)
    out = FigureSet()
    out.figures["weights"] = weights_figure(
        steps, all_objectives, objectives, preference, smooth=window, label=label
    )
    out.figures["saturation"] = saturation_figure(
        steps, all_objectives, objectives, smooth=window, label=label
    )
    out.figures["rewards"] = rewards_figure(
        steps, all_objectives, objectives, smooth=window, label=label
    )
    scheme_names = list(dict.fromkeys(schemes.get_column("scheme").to_list()))
    if scheme_names:
        out.figures["advantages"] = advantages_figure(
            schemes, scheme_names, smooth=window, label=label
        )
    else:
        out.skipped["advantages"] = "no scheme in schemes.parquet"
    if len(objectives) >= 2:
        out.figures["correlation"] = correlation_figure(
            summary.get("correlation") or {}, all_objectives, objectives, label=label
        )
    else:
        out.skipped["correlation"] = "needs at least two objectives"
    return out

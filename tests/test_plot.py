"""`dvao plot`: every figure is written, decodes at the expected size, is not blank, carries the
expected titles, labels and one artist per objective; every SOURCE kind; bad SOURCEs exit 2."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.errors import InputError, UsageError
from dvao_cli.plot import figures as plots
from dvao_cli.plot.source import build_figures, load_source, select_objectives

OBJ3 = ["accuracy", "format", "rm_score"]
SCHEMES = ["grpo", "rc", "ac", "gdpo", "dvao"]
FIVE = ["weights", "saturation", "rewards", "advantages", "correlation"]


# --------------------------------------------------------------------------------------------
# Sources built by hand, following the `dvao analyze --out` / `dvao train` contracts
# --------------------------------------------------------------------------------------------


def _steps_frame(n_steps: int, names: list[str], binary: list[bool], seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(n_steps):
        raw = rng.uniform(0.1, 1.0, len(names))
        signal = 1.0 if step % 7 else 0.8  # every 7th step: 20% of the groups carry no signal
        weights = raw / raw.sum()  # the mean over the groups with a signal: sums to 1
        for j, name in enumerate(names):
            sat_pass = float(rng.uniform(0, 0.5)) if binary[j] else None
            sat_fail = float(rng.uniform(0, 0.3)) if binary[j] else None
            rows.append(
                {
                    "step": step,
                    "objective": name,
                    "mean": float(rng.uniform(0, 1)),
                    "within_group_std": float(rng.uniform(0, 0.5)),
                    "saturation": (sat_pass + sat_fail)
                    if binary[j]
                    else float(rng.uniform(0, 0.1)),
                    "saturation_pass": sat_pass,
                    "saturation_fail": sat_fail,
                    "dvao_weight": float(weights[j]),
                    "groups": 32,
                    "no_signal_share": 1.0 - signal,
                }
            )
    return pl.DataFrame(rows, schema_overrides={"step": pl.Int64, "groups": pl.Int64})


def _schemes_frame(n_steps: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "step": step,
            "scheme": scheme,
            "mean_square": float(rng.uniform(0.2, 1.0)),
            "max_abs": float(rng.uniform(1.0, 3.0)),
            "zero_share": float(rng.uniform(0, 0.2)),
        }
        for step in range(n_steps)
        for scheme in SCHEMES
    ]
    return pl.DataFrame(rows, schema_overrides={"step": pl.Int64})


def write_analysis(
    folder: Path,
    names: list[str] = OBJ3,
    binary: list[bool] | None = None,
    n_steps: int = 20,
    weights: dict[str, float] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = binary if binary is not None else [n != "rm_score" for n in names]
    _steps_frame(n_steps, names, binary).write_parquet(folder / "steps.parquet")
    _schemes_frame(n_steps).write_parquet(folder / "schemes.parquet")
    corr = {a: {b: (1.0 if a == b else -0.35) for b in names} for a in names}
    if len(names) >= 2:
        corr[names[0]][names[1]] = corr[names[1]][names[0]] = None  # never both varying
    summary = {
        "rows": n_steps * 256,
        "steps": n_steps,
        "groups": n_steps * 32,
        "skipped_groups": 0,
        "objectives": {n: {"binary": b} for n, b in zip(names, binary, strict=True)},
        "schemes": {},
        "correlation": corr,
        "weights": weights or {n: 1.0 / len(names) for n in names},
        "objective_order": names,
        "settings": {},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_log(
    path: Path, n_steps: int = 3, names: tuple[str, ...] = ("a", "b"), seed: int = 0
) -> Path:
    """A small rollout log: 4 groups of 4 per step, binary rewards."""
    rng = np.random.default_rng(seed)
    n = n_steps * 4 * 4
    frame = pl.DataFrame(
        {
            "step": np.repeat(np.arange(n_steps), 16).astype(np.int64),
            "group_id": np.tile(np.repeat(np.arange(4), 4), n_steps).astype(np.int64),
            "sample_id": np.tile(np.arange(4), n_steps * 4).astype(np.int64),
            **{name: rng.integers(0, 2, n).astype(np.float64) for name in names},
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def write_compare(
    folder: Path, seeds: int = 2, names: tuple[str, ...] = ("accuracy", "length")
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    table = {  # (scheme, w1) -> (final x, final y); the seeds add +-0.01
        ("rc", 0.3): (0.40, 0.90),
        ("rc", 0.7): (0.50, 0.80),
        ("dvao", 0.3): (0.45, 0.95),
        ("dvao", 0.7): (0.60, 0.85),
        ("ac", 0.3): (0.30, 0.70),
        ("ac", 0.7): (0.55, 0.60),
    }
    for (scheme, w1), (x, y) in table.items():
        for seed in range(seeds):
            delta = 0.01 if seed % 2 else -0.01
            row = {"scheme": scheme, "seed": seed, "run": f"{scheme}-w{w1}-s{seed}"}
            row[f"w_{names[0]}"] = w1
            row[f"final_{names[0]}"] = x + (delta if seeds > 1 else 0.0)
            for extra in names[1:]:
                row[f"w_{extra}"] = round(1 - w1, 6)
                row[f"final_{extra}"] = y + (delta if seeds > 1 else 0.0)
            row["wall_s"] = 1.5
            rows.append(row)
    pl.DataFrame(rows, schema_overrides={"seed": pl.Int64}).write_parquet(
        folder / "compare.parquet"
    )
    config = {
        "compare": True,
        "objectives": list(names),
        "schemes": ["rc", "dvao", "ac"],
        "seeds": list(range(seeds)),
        "sweep_weights": [0.3, 0.7],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def distinct_colours(path: Path) -> int:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)  # (H, W, 3|4) floats in [0, 1]
    channels = (pixels.reshape(-1, pixels.shape[-1])[:, :3] * 255).round().astype(np.uint32)
    packed = (channels[:, 0] << 16) | (channels[:, 1] << 8) | channels[:, 2]  # one int per colour
    return np.unique(packed).shape[0]


def expected_px(name: str) -> tuple[int, int]:
    w, h = plots.FIGSIZE[name]
    return round(w * plots.DPI), round(h * plots.DPI)


def gids(fig, prefix: str) -> list[str]:
    """The gid of every artist in the figure starting with `prefix`, in drawing order."""
    return [a.get_gid() for a in fig.findobj() if (a.get_gid() or "").startswith(prefix)]


# --------------------------------------------------------------------------------------------
# Files: names, sizes, not blank, atomic, messages
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_analysis_folder_writes_every_figure(cli, tmp_path: Path) -> None:
    src = write_analysis(tmp_path / "an")
    out = tmp_path / "figs"
    result = cli("plot", src, "--out", out)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [f"wrote {out / n}.png" for n in FIVE]
    assert result.out == f"5 figures in {out}: {', '.join(FIVE)}\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in FIVE)  # no temp left
    for name in FIVE:
        path = out / f"{name}.png"
        assert png_size(path) == expected_px(name), name
        assert distinct_colours(path) > 50, f"{name}.png looks blank"


@pytest.mark.slow
def test_quiet_prints_only_the_result_and_default_out_is_source_plots(cli, tmp_path: Path) -> None:
    src = write_analysis(tmp_path / "an", n_steps=3)
    result = cli("--quiet", "plot", src)
    assert result.code == 0
    assert result.err == ""
    assert result.out == f"5 figures in {src / 'plots'}: {', '.join(FIVE)}\n"
    assert sorted(p.name for p in (src / "plots").iterdir()) == sorted(f"{n}.png" for n in FIVE)


@pytest.mark.slow
def test_default_out_is_dvao_plots_for_a_file(cli, tmp_path: Path, monkeypatch) -> None:
    log = write_log(tmp_path / "log.parquet")
    monkeypatch.chdir(tmp_path)
    result = cli("plot", "log.parquet", "--smooth", "1", "--weight", "a=0.8", "--weight", "b=0.2")
    assert result.code == 0, result.err
    assert result.out == f"5 figures in dvao-plots: {', '.join(FIVE)}\n"
    assert png_size(tmp_path / "dvao-plots" / "weights.png") == expected_px("weights")
    assert log.is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_vector_formats_are_valid_and_reproducible(
    cli, tmp_path: Path, fmt: str, magic: bytes
) -> None:
    folder = write_compare(tmp_path / "cmp")
    for out in ("o1", "o2"):  # built twice from scratch: no date, no random ids in the file
        result = cli("plot", folder, "--out", tmp_path / out, "--format", fmt)
        assert result.code == 0, result.err
        assert result.err == f"wrote {tmp_path / out / 'pareto'}.{fmt}\n"
    data = (tmp_path / "o1" / f"pareto.{fmt}").read_bytes()
    assert data.startswith(magic)
    assert len(data) > 5000
    assert data == (tmp_path / "o2" / f"pareto.{fmt}").read_bytes()


# --------------------------------------------------------------------------------------------
# Figure objects: titles, labels, one artist per objective, colours kept
# --------------------------------------------------------------------------------------------


@pytest.fixture
def analysis_figs(tmp_path: Path):
    src = load_source(
        write_analysis(tmp_path / "an", weights={"accuracy": 0.5, "format": 0.3, "rm_score": 0.2})
    )
    figures, skipped = build_figures(src, src.objectives, smooth=1)
    assert skipped == {}
    return src, figures


def test_figure_titles_and_axis_labels(analysis_figs) -> None:
    _, figs = analysis_figs
    titles = {name: fig.get_suptitle() for name, fig in figs.items()}
    assert titles == {
        "weights": "DVAO weight per objective \u2014 an",
        "saturation": "Saturated groups (zero within-group variance) \u2014 an",
        "rewards": "Rewards and their within-group spread \u2014 an",
        "advantages": "Advantage scale per scheme \u2014 an",
        "correlation": "Within-group correlation between objectives \u2014 an",
    }
    ylabels = {
        name: [ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>"]
        for name, fig in figs.items()
    }
    assert ylabels == {
        "weights": ["DVAO weight (share, sums to 1)", "share of groups"],
        "saturation": ["share of groups"] * 3,
        "rewards": ["mean reward (reward units)", "within-group std (reward units)"],
        "advantages": ["mean square advantage", "max |advantage|"],
        "correlation": ["objective"],
    }
    for name in ("weights", "saturation", "rewards", "advantages"):
        assert figs[name].axes[-1].get_xlabel() == "training step"
    assert [ax.get_title() for ax in figs["saturation"].axes] == [
        "all pass: every response scored 1 (binary objectives)",
        "all fail: every response scored 0 (binary objectives)",
        "every response scored the same (non-binary objectives)",
    ]


def test_one_artist_per_objective_and_scheme(analysis_figs) -> None:
    _, figs = analysis_figs
    per = [f"objective:{n}" for n in OBJ3]
    assert gids(figs["weights"], "objective:") == per
    assert gids(figs["rewards"], "objective:") == per * 2  # mean panel, std panel
    # binary accuracy and format in the pass and fail panels, rm_score in the non-binary panel
    assert gids(figs["saturation"], "objective:") == per[:2] * 2 + per[2:]
    assert gids(figs["advantages"], "scheme:") == [f"scheme:{s}" for s in SCHEMES] * 2
    legend = figs["rewards"].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == OBJ3
    # the weights legend reads top-down like the stack
    texts = [t.get_text() for t in figs["weights"].legends[0].get_texts()]
    assert texts == ["rm_score", "format", "accuracy", "preference weights\n(band boundaries)"]


def test_one_colour_per_objective_across_figures(analysis_figs) -> None:
    from matplotlib.colors import to_hex

    _, figs = analysis_figs
    expected = dict(zip(OBJ3, plots.OKABE_ITO[:3], strict=True))
    for name in ("weights", "rewards", "saturation"):
        for artist in figs[name].findobj():
            gid = artist.get_gid() or ""
            if gid.startswith("objective:"):
                colour = artist.get_facecolor()[0] if name == "weights" else artist.get_color()
                assert to_hex(colour) == expected[gid.split(":", 1)[1]].lower(), (name, gid)


def test_weights_stack_sums_to_one_and_reference_lines(analysis_figs) -> None:
    src, figs = analysis_figs
    ax = figs["weights"].axes[0]
    # the stack is the steps table's weight, the mean over the groups with a signal: it sums
    # to 1 at a step where 20% of the groups carry none as anywhere else
    x, share, no_signal = plots.weight_shares(src.steps, src.objectives, smooth=1)
    assert np.array_equal(x, np.arange(20))
    assert np.allclose(share.sum(axis=1), 1.0)
    raw = src.steps.filter(pl.col("step") == 7).get_column("dvao_weight").to_numpy()
    assert np.array_equal(share[7], raw)
    assert np.allclose(no_signal, np.where(np.arange(20) % 7 == 0, 0.2, 0.0))
    assert len(ax.collections) == 3  # one band per objective
    top = ax.collections[-1].get_paths()[0].vertices
    assert top[:, 1].max() == pytest.approx(1.0)
    # dashed lines at the cumulative normalised preference weights 0.5 and 0.8
    dashed = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    assert dashed == pytest.approx([0.5, 0.8])
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.30", "0.20"]
    # the no-signal panel: 20% every 7th step, 0 elsewhere
    no_signal = figs["weights"].axes[1].get_lines()[0].get_ydata()
    expected = np.where(np.arange(20) % 7 == 0, 0.2, 0.0)
    assert np.allclose(no_signal, expected)


@pytest.mark.slow
def test_weight_option_overrides_the_reference_lines(tmp_path: Path) -> None:
    src = load_source(
        write_analysis(tmp_path / "an"), weights={"accuracy": 2.0, "format": 1.0, "rm_score": 1.0}
    )
    figs, _ = build_figures(src, src.objectives, smooth=1)
    assert [t.get_text() for t in figs["weights"].axes[0].texts] == ["0.50", "0.25", "0.25"]


def test_rewards_lines_hold_the_step_values(tmp_path: Path) -> None:
    folder = write_analysis(tmp_path / "an")
    steps = pl.read_parquet(folder / "steps.parquet")
    figs, _ = build_figures(load_source(folder), OBJ3, smooth=1)
    line = figs["rewards"].axes[0].get_lines()[1]  # format
    expected = (
        steps.filter(pl.col("objective") == "format").sort("step").get_column("mean").to_numpy()
    )
    assert np.array_equal(line.get_xdata(), np.arange(20))
    assert np.allclose(line.get_ydata(), expected)


def test_correlation_cells_print_values(analysis_figs) -> None:
    _, figs = analysis_figs
    ax = figs["correlation"].axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["+1.00", "n/a", "-0.35", "n/a", "+1.00", "-0.35", "-0.35", "-0.35", "+1.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == OBJ3
    assert ax.get_title() == "Pearson correlation inside each group, averaged over groups"


def test_objective_option_restricts_and_groups_the_rest(cli, tmp_path: Path) -> None:
    src = load_source(write_analysis(tmp_path / "an"))
    chosen = select_objectives(src.objectives, ["rm_score", "accuracy"])
    assert chosen == ["accuracy", "rm_score"]  # the source's order
    figs, _ = build_figures(src, chosen, smooth=1)
    assert gids(figs["rewards"], "objective:") == ["objective:accuracy", "objective:rm_score"] * 2
    labels = [t.get_text() for t in figs["weights"].legends[0].get_texts()]
    assert labels[:3] == ["other objectives (1)", "rm_score", "accuracy"]
    # rm_score keeps its colour (third objective of the source) when drawn without format
    line = figs["rewards"].axes[0].get_lines()[1]
    assert line.get_color() == plots.OKABE_ITO[2]


def test_unknown_objective_is_a_usage_error(cli, tmp_path: Path) -> None:
    src = write_analysis(tmp_path / "an")
    result = cli("plot", src, "--objective", "acuracy")
    assert result.code == 2
    assert result.err == (
        "error: --objective 'acuracy' is not an objective of this source "
        "(did you mean 'accuracy'?)\n"
    )
    result = cli("plot", src, "--weight", "formt=1")
    assert result.code == 2
    assert (
        result.err
        == "error: --weight names 'formt', which is not an objective (did you mean 'format'?)\n"
    )


def test_smoothing_default_and_option(tmp_path: Path) -> None:
    src = load_source(write_analysis(tmp_path / "an", n_steps=150))
    figs, _ = build_figures(src, src.objectives)
    assert (
        figs["rewards"].axes[-1].get_xlabel() == "training step (rolling mean over 3 logged steps)"
    )
    figs, _ = build_figures(src, src.objectives, smooth=10)
    assert (
        figs["advantages"].axes[-1].get_xlabel()
        == "training step (rolling mean over 10 logged steps)"
    )


@pytest.mark.slow
def test_ten_thousand_steps_and_eight_objectives(tmp_path: Path) -> None:
    names = [f"obj{i}" for i in range(8)]
    steps = _steps_frame(10_000, names, [True] * 8)
    fig = plots.weights_figure(steps, names, names, {}, smooth=plots.default_smooth(10_000))
    assert fig.axes[-1].get_xlabel() == "training step (rolling mean over 200 logged steps)"
    assert gids(fig, "objective:") == [f"objective:{n}" for n in names]
    colours = {plots.objective_styles(names)[n].color for n in names}
    assert len(colours) == 8
    nine = plots.objective_styles([*names, "ninth"])
    assert (nine["ninth"].color, nine["ninth"].linestyle) == (plots.OKABE_ITO[0], "--")


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def test_rolling_mean_exact() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    assert np.allclose(plots.rolling_mean(values, 1), values, equal_nan=True)
    # centred window of 3, NaN skipped, shorter windows at the ends
    assert np.allclose(plots.rolling_mean(values, 3), [1.5, 1.5, 3.0, 4.5, 4.5])
    # window 2: [i, i+1]
    assert np.allclose(plots.rolling_mean(values, 2), [1.5, 2.0, 4.0, 4.5, 5.0])
    two = plots.rolling_mean(np.array([[0.0, 1.0], [2.0, 3.0]]), 5)
    assert np.allclose(two, [[1.0, 2.0], [1.0, 2.0]])
    assert np.isnan(plots.rolling_mean(np.array([np.nan, np.nan]), 3)).all()


def test_default_smooth() -> None:
    assert [plots.default_smooth(n) for n in (1, 10, 49, 50, 120, 10_000)] == [1, 1, 1, 1, 2, 200]


def test_non_dominated() -> None:
    xy = np.array([[0.4, 0.9], [0.5, 0.8], [0.45, 0.95], [0.6, 0.85], [0.3, 0.7], [0.6, 0.85]])
    # (0.45, 0.95) beats (0.4, 0.9); (0.6, 0.85) beats (0.5, 0.8); ties are both kept
    assert plots.non_dominated(xy).tolist() == [2, 3, 5]


# --------------------------------------------------------------------------------------------
# Logs, runs, comparisons
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_log_source_is_analyzed_on_the_fly(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.parquet", n_steps=4)
    src = load_source(log)
    assert (src.kind, src.objectives, src.weights) == ("log", ["a", "b"], {"a": 0.5, "b": 0.5})
    figs, _ = build_figures(src, src.objectives, smooth=1)
    frame = pl.read_parquet(log)
    expected = (
        frame.group_by("step").agg(pl.col("b").mean()).sort("step").get_column("b").to_numpy()
    )
    assert np.allclose(figs["rewards"].axes[0].get_lines()[1].get_ydata(), expected)
    src = load_source(log, weights={"a": 0.8, "b": 0.2})
    assert src.weights == {"a": 0.8, "b": 0.2} and src.summary["weights"] == src.weights


@pytest.mark.slow
def test_one_step_log(cli, tmp_path: Path) -> None:
    log = write_log(tmp_path / "one.parquet", n_steps=1)
    result = cli("plot", log, "--out", tmp_path / "o")
    assert result.code == 0, result.err
    for name in FIVE:
        assert distinct_colours(tmp_path / "o" / f"{name}.png") > 50, name


@pytest.mark.slow
def test_one_objective_log_skips_correlation(cli, tmp_path: Path) -> None:
    log = write_log(tmp_path / "one.parquet", n_steps=3, names=("a",))
    out = tmp_path / "o"
    result = cli("plot", log, "--out", out)
    assert result.code == 0, result.err
    four = ["weights", "saturation", "rewards", "advantages"]
    assert result.err.splitlines() == [f"wrote {out / n}.png" for n in four] + [
        "skipped correlation.png: needs at least two objectives"
    ]
    assert result.out == f"4 figures in {out}: {', '.join(four)}\n"


def test_train_run_folder_uses_its_config(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_log(run / "rollouts" / "step-000001.parquet", n_steps=2, names=("a", "b", "junk"))
    (run / "config.json").write_text(
        json.dumps({"objectives": ["a", "b"], "weights": {"a": 0.75, "b": 0.25}})
    )
    src = load_source(run)
    assert (src.kind, src.label, src.objectives, src.weights) == (
        "train",
        "run",
        ["a", "b"],
        {"a": 0.75, "b": 0.25},
    )
    assert src.default_out == run / "plots"
    assert load_source(run, weights={"a": 0.5}).weights == {"a": 0.5, "b": 0.25}
    result = cli("plot", run, "--weight", "c=0.5")
    assert result.code == 2
    assert (
        result.err == "error: --weight names 'c', which is not an objective (available: 'a', 'b')\n"
    )


@pytest.mark.slow
def test_compare_folder_draws_pareto(cli, tmp_path: Path) -> None:
    folder = write_compare(tmp_path / "cmp", seeds=2)
    result = cli("plot", folder)
    assert result.code == 0, result.err
    out = folder / "plots"
    assert result.out == f"1 figure in {out}: pareto\n"
    path = out / "pareto.png"
    assert png_size(path) == expected_px("pareto")
    assert distinct_colours(path) > 50


def test_pareto_figure_content(tmp_path: Path) -> None:
    src = load_source(write_compare(tmp_path / "cmp", seeds=2))
    figs, _ = build_figures(src, src.objectives)
    fig = figs["pareto"]
    ax = fig.axes[0]
    assert fig.get_suptitle() == "Pareto: final accuracy vs length per scheme \u2014 cmp"
    assert ax.get_xlabel() == "final accuracy reward (mean over the last 10% of steps)"
    assert ax.get_ylabel() == "final length reward (mean over the last 10% of steps)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [  # in the order grpo, rc, ac, gdpo, dvao
        "rc (mean \u00b1 std, 2 seeds)",
        "ac (mean \u00b1 std, 2 seeds)",
        "dvao (mean \u00b1 std, 2 seeds)",
        "non-dominated front\n(over all schemes)",
    ]
    # weights swept: every point labelled; the seeds' +-0.01 average out
    assert sorted(t.get_text() for t in ax.texts) == ["w=0.3/0.7"] * 3 + ["w=0.7/0.3"] * 3
    points = plots.pareto_points(src.compare, src.objectives, "accuracy", "length")
    dvao = [
        (p.weights, round(p.x, 9), round(p.y, 9), round(p.x_std, 9), p.seeds)
        for p in points
        if p.scheme == "dvao"
    ]
    assert dvao == [((0.3, 0.7), 0.45, 0.95, 0.01, 2), ((0.7, 0.3), 0.6, 0.85, 0.01, 2)]
    front = [line for line in ax.get_lines() if line.get_linestyle() == "--"][0]
    # the step line visits dvao (0.45, 0.95) then dvao (0.6, 0.85)
    assert front.get_xdata()[0] == pytest.approx(0.45) and front.get_ydata()[0] == pytest.approx(
        0.95
    )
    assert front.get_xdata()[-1] == pytest.approx(0.6) and front.get_ydata()[-1] == pytest.approx(
        0.85
    )


def test_pareto_axes_follow_the_objective_option(tmp_path: Path) -> None:
    src = load_source(write_compare(tmp_path / "cmp", names=("accuracy", "length", "format")))
    chosen = select_objectives(src.objectives, ["length", "accuracy"], keep_order=True)
    fig = build_figures(src, chosen)[0]["pareto"]
    assert fig.axes[0].get_xlabel().startswith("final length reward")
    assert fig.axes[0].get_ylabel().startswith("final accuracy reward")
    # three objectives: the point labels hold the three preference weights
    assert sorted({t.get_text() for t in fig.axes[0].texts}) == ["w=0.3/0.7/0.7", "w=0.7/0.3/0.3"]


def test_pareto_coinciding_points_get_stacked_labels(tmp_path: Path) -> None:
    folder = write_compare(tmp_path / "cmp", seeds=1)
    frame = pl.read_parquet(folder / "compare.parquet")
    frame.with_columns(final_accuracy=pl.lit(0.5), final_length=pl.lit(0.5)).write_parquet(
        folder / "compare.parquet"
    )
    fig = build_figures(load_source(folder), ["accuracy", "length"])[0]["pareto"]
    texts = fig.axes[0].texts
    assert [t.get_text() for t in texts] == [
        "rc w=0.3/0.7",
        "rc w=0.7/0.3",
        "ac w=0.3/0.7",
        "ac w=0.7/0.3",
        "dvao w=0.3/0.7",
        "dvao w=0.7/0.3",
    ]
    assert [t.xyann[1] for t in texts] == [5, 15, 25, 35, 45, 55]


def test_pareto_one_seed_has_no_error_bars(tmp_path: Path) -> None:
    src = load_source(write_compare(tmp_path / "cmp", seeds=1))
    fig = build_figures(src, src.objectives)[0]["pareto"]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == ["rc", "ac", "dvao"]
    assert all(not c.has_xerr and not c.has_yerr for c in fig.axes[0].containers)


def test_compare_needs_two_objectives_and_no_weight(cli, tmp_path: Path) -> None:
    one = write_compare(tmp_path / "one", names=("accuracy",))
    result = cli("plot", one)
    assert result.code == 2
    assert (
        result.err
        == "error: the Pareto figure needs two objectives; this comparison has 'accuracy'\n"
    )
    two = write_compare(tmp_path / "two")
    result = cli("plot", two, "--weight", "accuracy=1")
    assert result.code == 2
    assert result.err == (
        "error: --weight does not apply to a compare folder: "
        "each run's weights are in compare.parquet\n"
    )


# --------------------------------------------------------------------------------------------
# Bad sources: exit 2, one line
# --------------------------------------------------------------------------------------------


def test_missing_source(cli, tmp_path: Path) -> None:
    result = cli("plot", tmp_path / "nope")
    assert result.code == 2
    assert result.err == f"error: {tmp_path / 'nope'}: no such file or directory\n"
    assert result.out == ""


def test_empty_folder(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("plot", tmp_path / "empty")
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(
        f"error: {tmp_path / 'empty'}: nothing to plot here: expected a `dvao analyze --out` folder"
    )


def test_half_an_analysis_folder(cli, tmp_path: Path) -> None:
    folder = write_analysis(tmp_path / "an")
    (folder / "schemes.parquet").unlink()
    result = cli("plot", folder)
    assert result.code == 2
    assert result.err == (
        f"error: {folder}: looks like a `dvao analyze --out` folder but schemes.parquet is missing "
        "(it holds summary.json, steps.parquet, schemes.parquet)\n"
    )


def test_bad_files_in_an_analysis_folder(cli, tmp_path: Path) -> None:
    folder = write_analysis(tmp_path / "an")
    (folder / "steps.parquet").write_bytes(b"not parquet at all")
    result = cli("plot", folder)
    assert result.code == 2
    assert result.err.startswith(
        f"error: {folder / 'steps.parquet'}: not a readable Parquet file ("
    )
    assert len(result.err.splitlines()) == 1

    folder = write_analysis(tmp_path / "an2")
    pl.read_parquet(folder / "steps.parquet").drop("dvao_weight").write_parquet(
        folder / "steps.parquet"
    )
    result = cli("plot", folder)
    assert result.code == 2
    assert result.err.startswith(
        f"error: {folder / 'steps.parquet'}: column 'dvao_weight': missing column"
    )
    assert len(result.err.splitlines()) == 1

    folder = write_analysis(tmp_path / "an3")
    (folder / "summary.json").write_text("{\n  oops")
    result = cli("plot", folder)
    assert result.code == 2
    assert result.err.startswith(f"error: {folder / 'summary.json'}:2: not valid JSON (")


def test_bad_log_is_one_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("hello")
    result = cli("plot", bad)
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(f"error: {bad}: ")


def test_config_without_rollouts(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    result = cli("plot", run)
    assert result.code == 2
    assert result.err.startswith(
        f"error: {run}: config.json without rollouts/ or rollouts.parquet: expected "
    )


def test_load_source_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_source(tmp_path / "nope")
    with pytest.raises(UsageError):
        select_objectives(["a", "b"], ["c"])


# --------------------------------------------------------------------------------------------
# The shipped sample data
# --------------------------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "rollouts.parquet"


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.is_file(), reason="sample_data/rollouts.parquet not generated")
def test_plot_sample_data(cli, tmp_path: Path) -> None:
    result = cli("plot", SAMPLE, "--out", tmp_path / "o")
    assert result.code == 0, result.err
    for name in FIVE:
        path = tmp_path / "o" / f"{name}.png"
        assert distinct_colours(path) > 50, name

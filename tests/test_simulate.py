"""`dvao simulate` and its core: determinism, schema, dynamics, options, atomic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli import simulate as sim
from dvao_cli.errors import UsageError
from dvao_cli.simulate import simulate, simulate_frames, write_simulated

ALL = "accuracy,format,length,rm_score"
REPO = Path(__file__).resolve().parents[1]


def _group_stats(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (step, group): within-group population std, min and correlation."""
    objectives = [c for c in ("accuracy", "format", "length", "rm_score") if c in frame.columns]
    return frame.group_by("step", "group_id").agg(
        *[pl.col(c).std(ddof=0).alias(f"{c}_sd") for c in objectives],
        *[pl.col(c).min().alias(f"{c}_min") for c in objectives],
        *[pl.col(c).mean().alias(f"{c}_mean") for c in objectives],
        pl.corr("accuracy", "length").alias("corr") if "length" in objectives else pl.lit(0.0),
    )


# ------------------------------------------------------------------------------------------
# the core
# ------------------------------------------------------------------------------------------


def test_schema_order_and_ids() -> None:
    frame = simulate(steps=3, groups=4, group_size=5, objectives=ALL)
    assert frame.schema == pl.Schema(
        {
            "step": pl.Int64,
            "group_id": pl.Int64,
            "sample_id": pl.Int64,
            "prompt": pl.String,
            "completion": pl.String,
            "accuracy": pl.Float64,
            "format": pl.Float64,
            "length": pl.Float64,
            "rm_score": pl.Float64,
        }
    )
    assert frame.height == 3 * 4 * 5
    assert frame["step"].to_list() == [s for s in range(3) for _ in range(20)]
    assert frame["group_id"].to_list() == [g for g in range(12) for _ in range(5)]
    assert frame["sample_id"].to_list() == list(range(5)) * 12
    assert frame.row(7, named=True)["prompt"] == "prompt-1"
    assert frame.row(7, named=True)["completion"] == "resp s0 g1 #2"
    assert frame.row(59, named=True)["completion"] == "resp s2 g11 #4"
    assert frame.equals(frame.sort("step", "group_id", "sample_id"))


def test_default_objectives_and_no_text() -> None:
    frame = simulate(text=False)
    assert frame.columns == ["step", "group_id", "sample_id", "accuracy", "format", "length"]
    assert frame.height == 50 * 32 * 8
    with_text = simulate()
    assert with_text.drop("prompt", "completion").equals(frame)


def test_same_arguments_same_data_other_seed_other_data() -> None:
    a = simulate(steps=10, objectives=ALL, seed=3)
    b = simulate(steps=10, objectives=ALL, seed=3)
    c = simulate(steps=10, objectives=ALL, seed=4)
    assert a.equals(b)
    assert not a.equals(c)


def test_pinned_values_seed_0() -> None:
    """The default log is pinned: a change in the generator shows up here."""
    frame = simulate(objectives=ALL, seed=0)
    assert frame.head(3).select("accuracy", "format", "length").rows() == [
        (0.0, 0.0, 0.0),
        (0.0, 1.0, 1.0),
        (0.0, 0.0, 0.0),
    ]
    assert int(frame["accuracy"].sum()) == PINNED_ACCURACY_SUM
    assert int(frame["format"].sum()) == PINNED_FORMAT_SUM


PINNED_ACCURACY_SUM = 5990
PINNED_FORMAT_SUM = 12220


def test_data_do_not_depend_on_chunking() -> None:
    whole = simulate(steps=7, groups=10, group_size=4, objectives=ALL)
    chunks = list(simulate_frames(steps=7, groups=10, group_size=4, objectives=ALL, chunk_rows=100))
    # whole steps of 40 rows: two fit in 100 rows, three do not
    assert [chunk.height for chunk in chunks] == [80, 80, 80, 40]
    assert pl.concat(chunks).equals(whole)


def test_a_step_larger_than_a_piece_is_drawn_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "PIECE_ROWS", 12)  # 3 groups of 4 per piece
    frame = simulate(steps=2, groups=7, group_size=4, objectives=ALL, text=False)
    assert frame.height == 56
    assert frame["group_id"].to_list() == [g for g in range(14) for _ in range(4)]
    assert frame["sample_id"].to_list() == list(range(4)) * 14
    # each piece has its own generator: the three pieces of a step are not copies of each other
    acc = frame.filter(pl.col("step") == 0)["rm_score"].to_numpy().reshape(7, 4)
    assert not np.array_equal(acc[0:3], acc[3:6])


def test_a_column_does_not_depend_on_the_other_objectives() -> None:
    both = simulate(steps=5, objectives=ALL)
    assert simulate(steps=5, objectives="accuracy")["accuracy"].equals(both["accuracy"])
    assert simulate(steps=5, objectives="rm_score,format")["format"].equals(both["format"])
    assert simulate(steps=5, objectives="length")["length"].equals(both["length"])
    assert simulate(steps=5, objectives=["length", "accuracy"]).columns[-2:] == [
        "length",
        "accuracy",
    ]


@pytest.mark.parametrize("scenario", list(sim.SCENARIOS))
def test_value_ranges(scenario: str) -> None:
    frame = simulate(steps=20, objectives=ALL, scenario=scenario, text=False)
    for name in ("accuracy", "format", "length"):
        assert set(frame[name].unique().to_list()) <= {0.0, 1.0}
    rm = frame["rm_score"]
    assert rm.min() >= 0.0 and rm.max() <= 1.0
    assert rm.n_unique() > frame.height // 2  # continuous
    assert frame.null_count().sum_horizontal().item() == 0
    assert not any(frame.select(pl.col(c).is_nan().any() for c in ALL.split(",")).row(0))


def test_format_saturates_early_and_accuracy_rises() -> None:
    stats = _group_stats(simulate(steps=50, objectives=ALL, text=False))
    all_pass = stats.group_by("step").agg((pl.col("format_min") == 1).mean().alias("share"))
    early = all_pass.filter(pl.col("step") < 5)["share"].mean()
    late = all_pass.filter(pl.col("step") >= 25)["share"].mean()
    assert early < 0.5
    assert late > 0.8
    acc = stats.group_by("step").agg(pl.col("accuracy_mean").mean()).sort("step")
    first, last = acc.head(10)["accuracy_mean"].mean(), acc.tail(10)["accuracy_mean"].mean()
    assert first < 0.3
    assert last > first + 0.3


def test_length_conflicts_with_accuracy_and_conflict_scenario_is_stronger() -> None:
    standard = _group_stats(simulate(steps=30, objectives=ALL, text=False))
    conflict = _group_stats(simulate(steps=30, objectives=ALL, scenario="conflict", text=False))
    corr_standard = standard["corr"].fill_nan(None).mean()
    corr_conflict = conflict["corr"].fill_nan(None).mean()
    assert -0.4 < corr_standard < -0.05
    assert corr_conflict < -0.5


def test_noisy_rm_score_dominates_the_within_group_variance() -> None:
    noisy = _group_stats(simulate(steps=30, objectives=ALL, scenario="noisy", text=False))
    means = noisy.select(pl.col("^.*_sd$").mean()).row(0, named=True)
    assert means["rm_score_sd"] > max(means["accuracy_sd"], means["length_sd"])
    assert means["rm_score_sd"] > means["format_sd"]
    standard = _group_stats(simulate(steps=30, objectives=ALL, text=False))
    assert standard["rm_score_sd"].mean() < means["rm_score_sd"]


def test_saturating_accuracy_goes_all_pass_late() -> None:
    stats = _group_stats(simulate(steps=30, objectives="accuracy", scenario="saturating"))
    late = stats.filter(pl.col("step") >= 20)
    assert (late["accuracy_min"] == 1).mean() > 0.8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "--steps must be a positive integer, got 0"),
        ({"groups": -2}, "--groups must be a positive integer, got -2"),
        (
            {"group_size": 1},
            "--group-size must be at least 2 (a group of one has no variance), got 1",
        ),
        ({"seed": -1}, "--seed must be a non-negative integer, got -1"),
        (
            {"scenario": "chaos"},
            "--scenario: unknown scenario 'chaos'; choose from standard, saturating, "
            "conflict, noisy",
        ),
        (
            {"objectives": "accuracy,speed"},
            "--objectives: unknown objective 'speed'; choose from accuracy, format, length, "
            "rm_score",
        ),
        ({"objectives": "format,format"}, "--objectives: 'format' is listed twice"),
        (
            {"objectives": " , "},
            "--objectives is empty; choose from accuracy, format, length, rm_score",
        ),
    ],
)
def test_core_rejects_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        simulate(**kwargs)
    assert info.value.render() == message


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------


def test_write_is_byte_identical_and_streams_row_groups(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    summary = write_simulated(a, steps=6, groups=5, group_size=4, objectives=ALL, chunk_rows=40)
    write_simulated(b, steps=6, groups=5, group_size=4, objectives=ALL, chunk_rows=40)
    assert a.read_bytes() == b.read_bytes()
    assert summary.rows == 120
    assert summary.objectives == ALL.split(",")
    assert pq.ParquetFile(a).metadata.num_row_groups == 3  # two 20-row steps per 40-row group
    assert pl.read_parquet(a).equals(simulate(steps=6, groups=5, group_size=4, objectives=ALL))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")
    real = sim._fill_piece
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        real(*args, **kwargs)

    monkeypatch.setattr(sim, "_fill_piece", failing)
    with pytest.raises(RuntimeError, match="boom"):
        write_simulated(target, steps=5, groups=2, group_size=2, chunk_rows=4)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_written_log_passes_through_read_log(tmp_path: Path) -> None:
    memory = pytest.importorskip("dvao_cli.reader.memory")
    path = tmp_path / "log.parquet"
    write_simulated(path, steps=4, groups=3, group_size=4, objectives=ALL)
    data = memory.read_log(path)
    assert data.objectives == ALL.split(",")
    assert data.frame.height == 48
    assert data.skipped_groups == 0
    assert data.frame["step"].dtype == pl.Int64


def test_shipped_sample_matches_its_readme_command(tmp_path: Path) -> None:
    shipped = REPO / "sample_data" / "rollouts.parquet"
    readme = (REPO / "sample_data" / "README.md").read_text()
    assert "--steps 60 --groups 32 --group-size 8" in readme
    assert "--objectives accuracy,format,length,rm_score --seed 0" in readme
    fresh = tmp_path / "rollouts.parquet"
    write_simulated(fresh, steps=60, groups=32, group_size=8, objectives=ALL, seed=0)
    assert fresh.read_bytes() == shipped.read_bytes()
    assert shipped.stat().st_size < 2_000_000


# ------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------


def test_cli_writes_the_log_and_one_summary_line(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("simulate", "-o", "out.parquet", "--steps", "4", "--groups", "3", "-G", "4")
    assert result.code == 0
    assert result.out == ""
    assert result.err == (
        "wrote 48 rows (4 steps x 3 groups x 4; objectives accuracy, format, length; "
        "scenario standard) to out.parquet\n"
    )
    frame = pl.read_parquet(tmp_path / "out.parquet")
    assert frame.equals(simulate(steps=4, groups=3, group_size=4))


def test_cli_options_reach_the_core(cli, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "x.parquet"
    result = cli(
        "--quiet",
        "simulate",
        "--out",
        out,
        "--steps",
        "3",
        "--groups",
        "2",
        "--group-size",
        "3",
        "--objectives",
        "rm_score,accuracy",
        "--seed",
        "7",
        "--scenario",
        "noisy",
        "--no-text",
    )
    assert (result.code, result.out, result.err) == (0, "", "")
    expected = simulate(3, 2, 3, "rm_score,accuracy", "noisy", 7, text=False)
    assert pl.read_parquet(out).equals(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--groups", "0"], "--groups must be a positive integer, got 0"),
        (
            ["--group-size", "1"],
            "--group-size must be at least 2 (a group of one has no variance), got 1",
        ),
        (["--seed", "-3"], "--seed must be a non-negative integer, got -3"),
        (
            ["--objectives", "accuracy,bogus"],
            "--objectives: unknown objective 'bogus'; choose from accuracy, format, length, "
            "rm_score",
        ),
        (
            ["--scenario", "calm"],
            "--scenario: unknown scenario 'calm'; choose from standard, saturating, conflict, "
            "noisy",
        ),
    ],
)
def test_cli_bad_options(cli, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.parquet"
    result = cli("simulate", "-o", out, *args)
    assert result.code == 2
    assert result.err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_out_must_be_a_regular_file(cli, tmp_path: Path) -> None:
    result = cli("simulate", "-o", tmp_path)
    assert result.code == 2
    assert result.err == (
        f"error: {tmp_path}: --out is a directory; give a file name such as rollouts.parquet\n"
    )
    link = tmp_path / "link.parquet"
    link.symlink_to(tmp_path / "elsewhere.parquet")
    result = cli("simulate", "-o", link)
    assert result.code == 2
    assert result.err == (
        f"error: {link}: --out must be a regular file, not a link, device or pipe (Parquet "
        "cannot be streamed)\n"
    )


@pytest.mark.slow
def test_cli_out_is_required(cli) -> None:
    result = cli("simulate")
    assert result.code == 2
    assert "Missing option '--out' / '-o'" in result.err


def test_cli_help_documents_every_scenario_and_objective(cli) -> None:
    result = cli("simulate", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for word in (*sim.SCENARIOS, *sim.OBJECTIVES, "--no-text", "--seed", "--group-size"):
        assert word in text

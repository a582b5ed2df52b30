"""Every bad input with its exact message and exit code: one line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dvao_cli.reader.chunk import non_finite_error
from dvao_cli.reader.opening import open_log
from dvao_cli.reader.stream import iter_chunks

from .logs import one_error_line, small_log


def test_path_not_found(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    result = cli("analyze", missing)
    assert result.code == 2
    assert one_error_line(result) == f"error: {missing}: no such file or directory"


def test_empty_file(cli, tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    path.write_bytes(b"")
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result) == f"error: {path}: empty file"


def test_empty_directory(cli, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    result = cli("analyze", folder)
    assert result.code == 2
    assert one_error_line(result) == f"error: {folder}: empty directory: no Parquet files in it"
    for name in ("notes.txt", "b.csv", "c.md", "d.json"):
        (folder / name).write_text("x")
    result = cli("analyze", folder)  # not empty: what it holds, and what dvao reads
    assert one_error_line(result) == (
        f"error: {folder}: no Parquet files here (found 4 entries: b.csv, c.md, d.json, ...); "
        "dvao reads dvao logs (Parquet files: .parquet, folders of them, globs), TRL "
        "completions_<step>.parquet files (or their completions/ folder), verl rollout dumps "
        "(<step>.jsonl), ms-swift completions.jsonl files and tables of rollouts (--format "
        "table: JSON lines, CSV or Parquet)"
    )


def test_a_file_dvao_cannot_read_lists_what_it_reads(cli, tmp_path: Path) -> None:
    path = tmp_path / "rollouts.csv"
    path.write_text("step,group_id,acc\n0,0,1\n")
    line = one_error_line(cli("analyze", path))
    assert line.startswith(f"error: {path}: not a readable Parquet file (")
    assert line.endswith(
        "; dvao reads dvao logs (Parquet files: .parquet, folders of them, globs), TRL "
        "completions_<step>.parquet files (or their completions/ folder), verl rollout dumps "
        "(<step>.jsonl), ms-swift completions.jsonl files and tables of rollouts (--format "
        "table: JSON lines, CSV or Parquet)"
    )


def test_glob_matching_nothing(cli, tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.parquet")
    result = cli("analyze", pattern)
    assert result.code == 2
    assert one_error_line(result) == f"error: {pattern}: the pattern matches no file"


def test_corrupt_file(cli, tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_text("step,group_id,accuracy\n0,0,1\n")
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result).startswith(f"error: {path}: not a readable Parquet file (")


def test_truncated_parquet(cli, tmp_path: Path, log: Path) -> None:
    path = tmp_path / "truncated.parquet"
    path.write_bytes(log.read_bytes()[:-100])
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result).startswith(f"error: {path}: not a readable Parquet file (")


@pytest.mark.parametrize("column", ["step", "group_id"])
def test_missing_required_column(cli, tmp_path: Path, column: str) -> None:
    path = tmp_path / "missing.parquet"
    small_log().drop(column).write_parquet(path)
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {path}: column '{column}': missing required column (a dvao log needs 'step' "
        "and 'group_id'; bring trainer logs in with `dvao import`)"
    )


@pytest.mark.parametrize(("dtype", "shown"), [(pl.Float64, "Float64"), (pl.String, "String")])
def test_step_not_integer(cli, tmp_path: Path, dtype, shown: str) -> None:
    path = tmp_path / "step.parquet"
    small_log().with_columns(pl.col("step").cast(dtype)).write_parquet(path)
    result = cli("analyze", path)
    assert result.code == 2
    assert (
        one_error_line(result) == f"error: {path}: column 'step': must be an integer, found {shown}"
    )


def test_no_objective_columns(cli, tmp_path: Path) -> None:
    path = tmp_path / "noobj.parquet"
    small_log().drop("accuracy", "format").write_parquet(path)
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {path}: no objective columns: every column is reserved or not numeric "
        "(a reward column must be numeric; pick one with --objective)"
    )


def test_objective_not_numeric(cli, tmp_path: Path) -> None:
    path = tmp_path / "judge.parquet"
    small_log().with_columns(pl.lit("good").alias("judge")).write_parquet(path)
    result = cli("analyze", path, "--objective", "judge")
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {path}: column 'judge': an objective must be numeric, found String"
    )


def test_unknown_objective_suggests_closest(cli, log: Path) -> None:
    result = cli("analyze", log, "--objective", "acuracy")
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {log}: column 'acuracy': no such objective column (did you mean 'accuracy'?)"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_non_finite_rewards_error_by_default(cli, tmp_path: Path, bad) -> None:
    frame = small_log().with_columns(
        pl.when(pl.col("sample_id") < 2)
        .then(pl.lit(bad, dtype=pl.Float64))
        .otherwise(pl.col("format"))
        .alias("format")
    )
    path = tmp_path / "nan.parquet"
    frame.write_parquet(path)
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {path}: column 'format': 8 NaN, infinite or missing rewards (of 16 rows); "
        "use --nan drop to drop those rows or --nan ignore to skip them as TRL does"
    )


def test_nan_error_names_the_file_holding_it(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    good = tmp_path / "a.parquet"
    bad = tmp_path / "b.parquet"
    frame.filter(pl.col("step") == 0).write_parquet(good)
    frame.filter(pl.col("step") == 1).with_columns(
        pl.when(pl.col("sample_id") == 0)
        .then(float("nan"))
        .otherwise(pl.col("accuracy"))
        .alias("accuracy")
    ).write_parquet(bad)
    result = cli("analyze", tmp_path)
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {bad}: column 'accuracy': 2 NaN, infinite or missing rewards (of 16 rows); "
        "use --nan drop to drop those rows or --nan ignore to skip them as TRL does"
    )


def test_clashing_schemas(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame.filter(pl.col("step") == 0).write_parquet(a)
    frame.filter(pl.col("step") == 1).with_columns(pl.col("format").cast(pl.String)).write_parquet(
        b
    )
    result = cli("analyze", tmp_path)
    assert result.code == 2
    assert one_error_line(result) == (
        f"error: {b}: column 'format': type String here but Float64 in {a}"
    )


def test_clashing_schemas_missing_column(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame.filter(pl.col("step") == 0).write_parquet(a)
    frame.filter(pl.col("step") == 1).drop("format").write_parquet(b)
    result = cli("analyze", tmp_path)
    assert result.code == 2
    assert one_error_line(result) == f"error: {b}: column 'format': missing here but present in {a}"


def test_null_group_id(cli, tmp_path: Path) -> None:
    path = tmp_path / "nullgid.parquet"
    small_log().with_columns(
        pl.when(pl.col("sample_id") == 0).then(None).otherwise(pl.col("group_id")).alias("group_id")
    ).write_parquet(path)
    result = cli("analyze", path)
    assert result.code == 2
    assert one_error_line(result) == f"error: {path}: column 'group_id': 4 missing (null) values"


def test_debug_shows_a_traceback(cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    result = cli("--debug", "analyze", missing)
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.strip().splitlines()[-1] == f"error: {missing}: no such file or directory"


def test_overflowing_finite_rewards_are_named_not_called_nan(tmp_path: Path) -> None:
    """When group sums of finite rewards overflow, the message says so (never '0 NaN')."""
    frame = small_log().with_columns(
        pl.when(pl.col("sample_id") < 2).then(1e308).otherwise(-1e308).alias("format")
    )
    path = tmp_path / "huge.parquet"
    frame.write_parquet(path)
    spec = open_log(path)
    chunk = next(iter_chunks(spec))
    assert str(non_finite_error(spec, chunk.frame)) == (
        f"{path}: column 'format': rewards as large as 1e+308 in magnitude: their group sums "
        "overflow float64 (no reward is NaN); rescale this column (rewards of all objectives "
        "should share one scale, such as [0, 1])"
    )

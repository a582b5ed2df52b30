"""The long layout's own messages (numbers at the edges): a response given an objective twice, or
none (a gap), says so, naming the response and the file, never "0 NaN"."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.errors import InputError
from dvao_cli.reader.memory import read_log

from .logs import one_error_line, small_log


def long_log(with_sample_id: bool = True) -> pl.DataFrame:
    wide = small_log()
    index = ["step", "group_id", "sample_id"]
    long = wide.unpivot(index=index, on=["accuracy", "format"], variable_name="objective")
    long = long.rename({"value": "reward"})
    return long if with_sample_id else long.drop("sample_id")


def test_a_gap_is_named_under_nan_error(cli, tmp_path: Path) -> None:
    long = long_log()
    path = tmp_path / "long.parquet"
    gap = (pl.col("objective") == "format") & (pl.col("step") == 1) & (pl.col("sample_id") == 2)
    long.filter(~gap).write_parquet(path)  # 2 responses (groups 0 and 1) lack 'format'
    res = cli("analyze", path)
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {path}: column 'format': 2 responses have no row for this objective in the "
        "long layout (the first: step 1, group_id 0, sample_id 2); use --nan drop to drop those "
        "responses or --nan ignore to skip the missing rewards"
    )
    ignored = read_log(path, nan="ignore")
    assert ignored.rows == 16
    assert sum(math.isnan(x) for x in ignored.frame["format"].to_list()) == 2
    assert read_log(path, nan="drop").rows == 14


def test_a_gap_without_sample_id_names_the_response_by_position(tmp_path: Path) -> None:
    long = long_log(with_sample_id=False)
    path = tmp_path / "long.parquet"
    # the last 'accuracy' row of step 0, group 1: that group's 4th response has none
    drop = (
        long.with_row_index()
        .filter(
            (pl.col("objective") == "accuracy") & (pl.col("step") == 0) & (pl.col("group_id") == 1)
        )["index"]
        .max()
    )
    long.with_row_index().filter(pl.col("index") != drop).drop("index").write_parquet(path)
    with pytest.raises(InputError) as err:
        read_log(path)
    assert str(err.value) == (
        f"{path}: column 'accuracy': 1 response has no row for this objective in the long "
        "layout (the first: step 0, group_id 1, response 4); use --nan drop to drop those "
        "responses or --nan ignore to skip the missing rewards"
    )


def test_an_objective_twice_for_one_response_names_it_and_its_file(cli, tmp_path: Path) -> None:
    long = long_log()
    a, b = tmp_path / "log" / "a.parquet", tmp_path / "log" / "b.parquet"
    a.parent.mkdir()
    long.write_parquet(a)
    long.filter((pl.col("step") == 1) & (pl.col("group_id") == 1)).write_parquet(b)
    res = cli("analyze", tmp_path / "log")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {b}: column 'objective': step 1, group_id 1, sample_id 0 has two rows for "
        "objective 'accuracy' (8 rows repeat an objective for the same response)"
    )


def test_a_null_reward_is_a_missing_reward_not_a_gap(cli, tmp_path: Path) -> None:
    long = long_log().with_columns(
        pl.when((pl.col("objective") == "format") & (pl.col("sample_id") == 0))
        .then(None)
        .otherwise(pl.col("reward"))
        .alias("reward")
    )
    path = tmp_path / "long.parquet"
    long.write_parquet(path)
    res = cli("analyze", path)
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {path}: column 'format': 4 NaN, infinite or missing rewards (of 16 rows); "
        "use --nan drop to drop those rows or --nan ignore to skip them as TRL does"
    )

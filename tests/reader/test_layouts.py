"""The reader's layouts: objectives, files, folders, globs, hive partitions, the long layout,
ragged and unsorted groups, the NaN policies."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.errors import DvaoWarning, InputError
from dvao_cli.reader.memory import read_log
from dvao_cli.reader.opening import open_log
from dvao_cli.reader.stream import iter_chunks

from .logs import small_log


def test_objectives_default_to_numeric_non_reserved_columns(log: Path) -> None:
    data = read_log(log)
    assert data.objectives == ["accuracy", "format"]
    assert data.frame.columns == ["row", "step", "group_id", "accuracy", "format"]
    assert data.rows == 16
    assert data.sizes.tolist() == [4, 4, 4, 4]
    assert data.group.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


def test_objective_option_selects_and_orders(log: Path) -> None:
    assert read_log(log, objectives=["format", "accuracy"]).objectives == ["format", "accuracy"]


def test_text_columns_are_never_read(log: Path) -> None:
    spec = open_log(log)
    chunk = next(iter_chunks(spec))
    assert "prompt" not in chunk.frame.columns and "completion" not in chunk.frame.columns


def test_directory_glob_and_several_files_read_as_one_log(tmp_path: Path) -> None:
    frame = small_log(steps=3)
    parts = tmp_path / "parts"
    parts.mkdir()
    for s in range(3):
        frame.filter(pl.col("step") == s).write_parquet(parts / f"part-{s}.parquet")
    by_dir = read_log(parts)
    by_glob = read_log(str(parts / "part-*.parquet"))
    by_list = read_log(
        [parts / "part-0.parquet", parts / "part-1.parquet", parts / "part-2.parquet"]
    )
    for data in (by_dir, by_glob, by_list):
        assert data.rows == 24
        assert data.frame["row"].to_list() == list(range(24))
        assert data.frame["accuracy"].to_list() == frame["accuracy"].to_list()


def test_hive_partitioned_directory(tmp_path: Path) -> None:
    frame = small_log(steps=2)
    for s in range(2):
        folder = tmp_path / "log" / f"step={s}"
        folder.mkdir(parents=True)
        frame.filter(pl.col("step") == s).drop("step").write_parquet(folder / "part.parquet")
    data = read_log(tmp_path / "log")
    assert data.frame["step"].to_list() == frame["step"].to_list()
    assert data.objectives == ["accuracy", "format"]


def test_long_layout_is_pivoted(tmp_path: Path) -> None:
    wide = small_log()
    long = wide.unpivot(
        index=["step", "group_id", "sample_id"],
        on=["accuracy", "format"],
        variable_name="objective",
        value_name="reward",
    )
    path = tmp_path / "long.parquet"
    long.write_parquet(path)
    data = read_log(path)
    assert data.objectives == ["accuracy", "format"]
    assert data.frame["accuracy"].to_list() == wide["accuracy"].to_list()
    assert data.frame["format"].to_list() == wide["format"].to_list()
    assert data.frame["row"].to_list() == list(range(16))


def test_string_group_ids_and_ragged_unsorted_groups(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "step": [0, 0, 0, 0, 0, 1, 1],
            "group_id": ["b", "a", "b", "a", "a", "x", "x"],
            "accuracy": [1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.25],
        }
    )
    path = tmp_path / "ragged.parquet"
    frame.write_parquet(path)
    data = read_log(path)
    # sorted by (step, group), input order kept inside a group; `row` maps back
    assert data.frame["group_id"].to_list() == ["a", "a", "a", "b", "b", "x", "x"]
    assert data.frame["row"].to_list() == [1, 3, 4, 0, 2, 5, 6]
    assert data.sizes.tolist() == [3, 2, 2]


def test_nan_drop_and_ignore(tmp_path: Path) -> None:
    frame = small_log().with_columns(
        pl.when(pl.col("sample_id") == 0).then(None).otherwise(pl.col("accuracy")).alias("accuracy")
    )
    path = tmp_path / "nan.parquet"
    frame.write_parquet(path)
    dropped = read_log(path, nan="drop")
    assert dropped.rows == 12 and dropped.dropped_rows == 4
    ignored = read_log(path, nan="ignore")
    assert ignored.rows == 16
    assert sum(math.isnan(x) for x in ignored.frame["accuracy"].to_list()) == 4


def test_size_one_groups_are_skipped_and_counted(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"step": [0, 0, 0, 1], "group_id": [0, 0, 1, 0], "r": [1.0, 0.0, 1.0, 0.5]}
    )
    path = tmp_path / "ones.parquet"
    frame.write_parquet(path)
    with pytest.warns(DvaoWarning) as caught:
        data = read_log(path)
    assert data.rows == 2 and data.skipped_groups == 2
    assert [str(w.message) for w in caught] == [
        f"{path}: column 'group_id': skipped 2 groups of size 1 (no within-group variance)"
    ]


def test_reader_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        read_log(tmp_path / "nope.parquet")
    assert err.value.exit_code == 2


def test_objectives_recorded_in_the_file_metadata_are_the_default(tmp_path: Path) -> None:
    import json

    import pyarrow.parquet as pq

    table = small_log().with_columns(pl.lit(512).alias("tokens")).to_arrow()
    meta = {b"dvao": json.dumps({"objectives": ["format"]}).encode()}
    path = tmp_path / "imported.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    assert read_log(path).objectives == ["format"]
    assert read_log(path, objectives=["accuracy", "tokens"]).objectives == ["accuracy", "tokens"]
    plain = tmp_path / "plain.parquet"
    pq.write_table(table, plain)
    assert read_log(plain).objectives == ["accuracy", "format", "tokens"]

"""The log reader: layouts, streaming, and every bad input with its exact message and exit code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.errors import InputError
from dvao_cli.schema import _read_length, iter_chunks, iter_frames, open_log, read_log


def small_log(steps: int = 2, groups: int = 2, size: int = 4, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = steps * groups * size
    return pl.DataFrame(
        {
            "step": np.repeat(np.arange(steps), groups * size),
            "group_id": np.tile(np.repeat(np.arange(groups), size), steps),
            "sample_id": np.tile(np.arange(size), steps * groups),
            "prompt": ["p"] * n,
            "completion": ["c"] * n,
            "accuracy": rng.integers(0, 2, n).astype(float),
            "format": rng.integers(0, 2, n).astype(float),
        }
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.parquet"
    small_log().write_parquet(path)
    return path


def one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


# ---- layouts ---------------------------------------------------------------------------------


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


def test_streaming_in_small_chunks_keeps_steps_whole(tmp_path: Path) -> None:
    frame = small_log(steps=10, groups=3, size=5)
    path = tmp_path / "log.parquet"
    frame.write_parquet(path, row_group_size=7)
    chunks = list(iter_chunks(open_log(path), chunk_rows=1000 // 20))
    assert len(chunks) > 1
    seen: list[int] = []
    for chunk in chunks:
        steps = chunk.frame["step"].unique().to_list()
        assert not set(steps) & set(seen)
        seen += steps
    assert sorted(seen) == list(range(10))
    assert sum(c.rows for c in chunks) == 150


@pytest.mark.parametrize("row_group_size", [7, 40, 64, 1000])
@pytest.mark.parametrize("chunk_rows", [20, 50, 120])
def test_frames_hold_every_row_once_in_order(
    tmp_path: Path, row_group_size: int, chunk_rows: int
) -> None:
    """Frames are read in pieces of about chunk_rows rounded to row groups, and the rows after
    the last complete step are read again with the next piece: nothing lost or repeated."""
    frame = small_log(steps=12, groups=3, size=5).with_row_index("original")
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]  # two files: offsets carry over
    frame.slice(0, 95).write_parquet(paths[0], row_group_size=row_group_size)
    frame.slice(95).write_parquet(paths[1], row_group_size=row_group_size)
    spec = open_log([str(p) for p in paths])
    frames = list(iter_frames(spec, chunk_rows=chunk_rows, extra_columns=["original"]))
    joined = pl.concat(frames)
    assert joined["row"].to_list() == list(range(180))
    assert joined["original"].to_list() == list(range(180))
    for i, part in enumerate(frames[:-1]):  # whole steps: no step continues in the next frame
        assert part["step"].max() < frames[i + 1]["step"].min()
    assert max(f.height for f in frames) <= max(4 * chunk_rows, 2 * row_group_size) + 15


def test_read_length_rounds_up_to_a_row_group_end() -> None:
    ends = np.array([100, 200, 300, 1000])
    assert _read_length(ends, 0, 60, 1000) == 100  # to the end of the row group
    assert _read_length(ends, 150, 60, 1000) == 150  # 210 -> 300: at most 4x the batch
    assert _read_length(ends, 300, 60, 1000) == 60  # 1000 is too far: a plain batch
    assert _read_length(ends, 990, 60, 1000) == 10  # the end of the file


def test_interleaved_steps_are_held_until_complete(tmp_path: Path) -> None:
    frame = small_log(steps=2, groups=4)
    # groups of step 0 and step 1 alternate: a step comes back after another one started
    shuffled = frame.sort(["group_id", "step"], maintain_order=True)
    path = tmp_path / "shuffled.parquet"
    shuffled.write_parquet(path, row_group_size=4)
    chunks = list(iter_chunks(open_log(path), chunk_rows=8))
    assert sum(c.rows for c in chunks) == 32
    steps = [s for c in chunks for s in c.frame["step"].unique().to_list()]
    assert sorted(steps) == [0, 1]
    rows = sorted(r for c in chunks for r in c.frame["row"].to_list())
    assert rows == list(range(32))
    for chunk in chunks:  # no step is split across chunks
        for step in chunk.frame["step"].unique().to_list():
            assert chunk.frame.filter(pl.col("step") == step).height == 16


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


def test_size_one_groups_are_skipped_and_counted(tmp_path: Path, capsys) -> None:
    frame = pl.DataFrame(
        {"step": [0, 0, 0, 1], "group_id": [0, 0, 1, 0], "r": [1.0, 0.0, 1.0, 0.5]}
    )
    path = tmp_path / "ones.parquet"
    frame.write_parquet(path)
    data = read_log(path)
    assert data.rows == 2 and data.skipped_groups == 2
    assert capsys.readouterr().err.strip() == (
        f"warning: {path}: column 'group_id': skipped 2 groups of size 1 (no within-group variance)"
    )


# ---- bad input: exact message, exit code 2, one line, no traceback ---------------------------


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


def test_a_chunk_splits_into_whole_steps(tmp_path: Path) -> None:
    frame = small_log(steps=6, groups=3, size=4)  # 12 rows per step
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    (chunk,) = iter_chunks(open_log(path), chunk_rows=1000)
    pieces = chunk.split(30)  # steps end at rows 12, 24, 36, ...: cuts after 24 and 60
    assert [p.rows for p in pieces] == [24, 36, 12]
    assert [p.frame["step"].unique().sort().to_list() for p in pieces] == [[0, 1], [2, 3, 4], [5]]
    assert pl.concat([p.frame for p in pieces])["row"].to_list() == list(range(72))
    assert [p.sizes.tolist() for p in pieces] == [[4] * 6, [4] * 9, [4] * 3]
    assert chunk.split(1000) == [chunk]


@pytest.mark.parametrize("statistics", [True, False])
def test_a_log_in_one_big_row_group_still_streams(tmp_path: Path, statistics: bool) -> None:
    """Without statistics, or with one row group far larger than a chunk, the floors come from
    one read of the step column: frames stay about chunk_rows, not the whole log."""
    frame = small_log(steps=40, groups=3, size=5)  # 600 rows, 15 per step
    path = tmp_path / "log.parquet"
    frame.write_parquet(path, row_group_size=600, statistics=statistics)
    frames = list(iter_frames(open_log(path), chunk_rows=50))
    assert max(f.height for f in frames) <= 50 + 15
    assert pl.concat(frames)["row"].to_list() == list(range(600))

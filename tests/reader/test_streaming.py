"""Streaming in chunks of whole steps: row groups, step floors, interleaved steps, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.reader.opening import open_log
from dvao_cli.reader.stream import _read_length, iter_chunks, iter_frames

from .logs import small_log


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


def _plan_rows(ranges) -> list[int]:
    return [sum(rows for _, _, rows in reads) for reads in ranges]


def test_planned_ranges_end_only_between_whole_steps(tmp_path: Path) -> None:
    from dvao_cli.reader.stream import plan_ranges, read_range

    frame = small_log(steps=12, groups=2, size=5)  # 10 rows a step
    path = tmp_path / "log.parquet"
    frame.write_parquet(path, row_group_size=15)  # row groups cut steps in half
    spec = open_log(path)
    ranges = plan_ranges(spec, chunk_rows=20)
    assert ranges is not None and len(ranges) > 1
    assert sum(_plan_rows(ranges)) == 120
    seen: list[int] = []
    for reads in ranges:
        steps = read_range(spec, reads)["step"].to_list()
        assert not set(steps) & set(seen)  # no step in two ranges
        seen += sorted(set(steps))
    assert seen == list(range(12))
    # the frames the streaming reader makes hold the same rows, in the same order
    planned = pl.concat([read_range(spec, reads) for reads in ranges])
    streamed = pl.concat(list(iter_frames(spec, chunk_rows=20, row_index=False)))
    assert planned.equals(streamed)


def test_planned_ranges_span_files(tmp_path: Path) -> None:
    from dvao_cli.reader.stream import plan_ranges, read_range

    frame = small_log(steps=6, groups=2, size=4)  # 8 rows a step
    frame.slice(0, 20).write_parquet(tmp_path / "a.parquet")  # step 2 is in both files
    frame.slice(20).write_parquet(tmp_path / "b.parquet")
    spec = open_log(tmp_path)
    ranges = plan_ranges(spec, chunk_rows=8)
    assert ranges is not None
    assert ranges[0] == [(0, 0, 20), (1, 0, 28)]  # no clean cut inside step 2: one range
    assert pl.concat([read_range(spec, r) for r in ranges])["step"].to_list() == (
        frame["step"].to_list()
    )


def test_no_plan_where_the_footers_promise_nothing(tmp_path: Path) -> None:
    from dvao_cli.reader.stream import plan_ranges

    frame = small_log(steps=8, groups=2, size=4)
    plain = tmp_path / "plain.parquet"
    frame.write_parquet(plain, statistics=False)
    assert plan_ranges(open_log(plain), chunk_rows=8) is None  # no step statistics
    big = tmp_path / "big.parquet"
    frame.write_parquet(big, row_group_size=64)
    assert plan_ranges(open_log(big), chunk_rows=8) is None  # a row group of 8 x chunk_rows
    spread = tmp_path / "spread.parquet"  # steps 0..7 then 0..7 again: never a clean cut
    pl.concat([frame, frame.with_columns(pl.col("sample_id") + 4)]).write_parquet(
        spread, row_group_size=8
    )
    assert plan_ranges(open_log(spread), chunk_rows=2) is None
    assert plan_ranges(open_log(spread), chunk_rows=64) == [[(0, 0, 128)]]  # one range

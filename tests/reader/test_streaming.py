"""Streaming in chunks of whole steps: row groups, step floors, interleaved steps, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.reader.spec import open_log
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

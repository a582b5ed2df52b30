"""Streaming a log in frames of whole steps: `iter_frames`, `iter_chunks`.

Only the needed columns are read (text columns never), in blocks of rows. A step is handed on
once the footers promise that no later row belongs to it (the step floors), so any row order is
correct and a log written step after step streams in bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dvao_cli.errors import DvaoWarning, InputError, UsageError
from dvao_cli.reader.chunk import Chunk, prepare_chunk
from dvao_cli.reader.format import (
    DEFAULT_CHUNK_ROWS,
    GROUP,
    LOGGED,
    NAN_POLICIES,
    SAMPLE,
    STEP,
)
from dvao_cli.reader.spec import LogSpec, polars_source, read_error

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def columns_for(spec: LogSpec, extra_columns: Sequence[str]) -> list[str]:
    """The columns read besides the objectives: the keys (`sample_id` too when the log has one,
    to check that no response is logged twice), `logged_advantage`, then `extra_columns`."""
    columns = [STEP, GROUP]
    if SAMPLE in spec.columns:
        columns.append(SAMPLE)
    if spec.has_logged_advantage:
        columns.append(LOGGED)
    for name in extra_columns:
        if name not in spec.columns:
            raise InputError("no such column", path=spec.label, column=name)
        if name not in columns and name not in spec.objectives:
            columns.append(name)
    return columns


def _step_floors(spec: LogSpec, batch_rows: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Where each block of rows ends (global row count), the smallest step in that block or any
    later one, and the rows of each part.

    Once the rows before a block are read, every step below its floor is complete, whatever the
    order of the log: that is what lets unsorted logs stream correctly. Blocks are the row
    groups, with their minimum step from the footers. A part whose footers cannot promise that
    at a useful grain (no statistics, or row groups of more than 4 x batch_rows rows, which
    would have to be held whole) gets blocks of batch_rows rows instead, from one extra read of
    its step column alone, so that it streams in bounded memory too.
    """
    import re
    from pathlib import Path

    import numpy as np
    import polars as pl

    ends: list[int] = []
    mins: list[float] = []
    part_rows: list[int] = []
    total = 0
    for part, meta in zip(spec.parts, spec.footers, strict=True):
        hive_step = None
        if spec.hive and isinstance(part, Path):
            for name in part.parts:
                match = re.fullmatch(rf"{STEP}=(-?\d+)", name)
                if match:
                    hive_step = float(match.group(1))
        part_rows.append(meta.num_rows)
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        col = names.index(STEP) if STEP in names else None
        blocks: list[tuple[int, float]] = []  # (rows, smallest step)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            low = None
            if hive_step is not None:
                low = hive_step
            elif col is not None:
                stats = group.column(col).statistics
                if stats is not None and stats.has_min_max and group.num_rows <= 4 * batch_rows:
                    low = float(stats.min)
            if low is None:
                blocks = []
                break
            blocks.append((group.num_rows, low))
        if not blocks and col is not None and meta.num_rows:  # read the step column once
            steps = pl.scan_parquet(polars_source(part), hive_partitioning=False).select(STEP)
            for offset in range(0, meta.num_rows, batch_rows):
                rows = min(batch_rows, meta.num_rows - offset)
                low = steps.slice(offset, rows).select(pl.col(STEP).min()).collect().item()
                blocks.append((rows, -math.inf if low is None else float(low)))
        if not blocks and meta.num_rows:  # no promise about this part's steps
            blocks = [(meta.num_rows, -math.inf)]
        for rows, low in blocks:
            total += rows
            ends.append(total)
            mins.append(low)
    floors = np.minimum.accumulate(np.array(mins[::-1] or [math.inf]))[::-1]
    return np.array(ends, dtype=np.int64), np.append(floors, math.inf), part_rows


# A read of the planned ranges: (index of the part in LogSpec.parts, its first row, rows)
Read = tuple[int, int, int]


def plan_ranges(spec: LogSpec, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[list[Read]] | None:
    """The log as ranges of whole steps of about `chunk_rows` rows, from the footers alone:
    what lets separate processes each read and analyze their own ranges (`read_range`).

    A range ends after a row group only where every step before is below every step after
    (the row groups' step minima and maxima): no step is cut, whatever the files' order. None
    when the footers cannot promise that at a useful grain, and `iter_frames` (which looks at
    the steps it reads) takes the log instead: no step statistics, a row group of more than
    4 x chunk_rows rows, steps spread further than 8 x chunk_rows rows, hive partitions, a
    trainer log built in memory, or the long layout.
    """
    from pathlib import Path

    if spec.long or spec.hive or not all(isinstance(part, Path) for part in spec.parts):
        return None
    blocks: list[tuple[int, int, int]] = []  # (part, first row, rows) of each row group
    lows: list[float] = []
    highs: list[float] = []
    for index, meta in enumerate(spec.footers):
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if STEP not in names:
            return None
        col = names.index(STEP)
        offset = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            rows = group.num_rows
            if rows == 0:
                continue
            stats = group.column(col).statistics
            if stats is None or not stats.has_min_max or rows > 4 * chunk_rows:
                return None
            blocks.append((index, offset, rows))
            lows.append(float(stats.min))
            highs.append(float(stats.max))
            offset += rows
    if not blocks:
        return None
    # after block j the cut is clean when max(highs[:j + 1]) < min(lows[j + 1:])
    before = list(highs)
    for j in range(1, len(before)):
        before[j] = max(before[j], before[j - 1])
    after = [*lows[1:], math.inf]  # after[j]: the smallest step after block j
    for j in range(len(after) - 2, -1, -1):
        after[j] = min(after[j], after[j + 1])
    ranges: list[list[Read]] = []
    current: list[Read] = []
    rows_in = 0
    for j, (part, offset, rows) in enumerate(blocks):
        last_part, first, length = current[-1] if current else (-1, 0, 0)
        if last_part == part and first + length == offset:  # the next row group of that file
            current[-1] = (part, first, length + rows)  # one read per file
        else:
            current.append((part, offset, rows))
        rows_in += rows
        if before[j] < after[j] and (rows_in >= chunk_rows or j == len(blocks) - 1):
            ranges.append(current)
            current, rows_in = [], 0
        elif rows_in > 8 * chunk_rows:
            return None
    return ranges


def read_range(spec: LogSpec, reads: Sequence[Read]) -> pl.DataFrame:
    """One planned range (`plan_ranges`) as a frame of whole steps: the columns `iter_frames`
    reads, without `row`."""
    import polars as pl

    columns = [*columns_for(spec, ()), *spec.objectives]
    try:
        frames = [
            spec.read(spec.parts[part], first, rows, columns, None) for part, first, rows in reads
        ]
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
    except InputError:
        raise
    except Exception as err:
        raise read_error(spec, err) from None


def iter_frames(
    spec: LogSpec,
    *,
    nan: str = "error",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    extra_columns: Sequence[str] = (),
    row_index: bool = True,
) -> Iterator[pl.DataFrame]:
    """Stream the log as frames of whole steps (about `chunk_rows` rows each), as read: each
    goes through `prepare_chunk` next (a separate step, so that it can run on a worker).

    Any row order is correct: a step is handed on only once the footers promise that no later
    row belongs to it. A log written step after step streams in bounded memory; one whose steps
    are spread over the whole file is held until they are complete (with a warning). Frames
    hold `row` (the position in the log) first unless `row_index` is False.
    """
    import warnings

    import numpy as np
    import polars as pl

    if nan not in NAN_POLICIES:
        raise UsageError(f"--nan must be one of {', '.join(NAN_POLICIES)}, not '{nan}'")
    if spec.long:
        from dvao_cli.reader.long_layout import read_long

        yield read_long(spec, columns_for(spec, extra_columns), nan)
        return
    columns = [*columns_for(spec, extra_columns), *spec.objectives]
    batch_rows = min(chunk_rows, 1_000_000)
    ends, floors, part_rows = _step_floors(spec, batch_rows)

    pending: list[pl.DataFrame] = []
    pending_rows = 0
    part, offset, start = 0, 0, 0  # reading position: part index, row in it, its first row
    warned = False
    try:
        while part < len(spec.parts):
            if offset >= part_rows[part]:
                part, offset, start = part + 1, 0, start + part_rows[part]
                continue
            length = _read_length(ends, start + offset, batch_rows, start + part_rows[part])
            batch = spec.read(
                spec.parts[part], offset, length, columns, start + offset if row_index else None
            )
            offset += length
            if batch.height == 0:
                continue
            pending.append(batch)
            pending_rows += batch.height
            if pending_rows < chunk_rows:
                continue
            # every later row has a step >= floor: the steps below it are complete
            floor = floors[int(np.searchsorted(ends, start + offset, side="right"))]
            frame = pending[0] if len(pending) == 1 else pl.concat(pending, how="vertical_relaxed")
            steps = frame.get_column(STEP)
            # compare as integers: an Int64 column against a float casts every row
            is_done = steps < int(floor) if math.isfinite(floor) else steps.is_not_null()
            cut = int(is_done.sum())
            if cut == 0:
                if not warned and pending_rows > 4 * chunk_rows:
                    warned = True
                    warnings.warn(
                        f"{spec.label}: steps are spread across the log; holding "
                        f"{pending_rows:,} rows until they are complete (write steps in order "
                        "to stream in bounded memory)",
                        DvaoWarning,
                        stacklevel=2,
                    )
                pending = [frame]
                continue
            if bool(is_done.slice(0, cut).all()):  # the usual case: a prefix, no copy
                done, rest = frame.slice(0, cut), frame.slice(cut)
                if rest.height <= batch.height // 2:
                    # the rest is the end of the last batch: read it again with the next rows,
                    # so that every frame is one contiguous piece (no copies downstream)
                    offset -= rest.height
                    rest = rest.clear()
            else:
                done, rest = frame.filter(is_done), frame.filter(~is_done)
            pending, pending_rows = ([rest], rest.height) if rest.height else ([], 0)
            yield done
    except (InputError, DvaoWarning):  # a DvaoWarning raised as an error (`-W error`)
        raise
    except Exception as err:
        raise read_error(spec, err) from None
    if pending_rows:
        yield pl.concat(pending, how="vertical_relaxed")


def _read_length(ends: np.ndarray, position: int, batch_rows: int, part_end: int) -> int:
    """Rows to read from `position` (in the log): about `batch_rows`, rounded up to the end of a
    row group when that is not far, so that frames end where the footers' step floors apply
    (they are per row group) and hold one contiguous piece."""
    import numpy as np

    wanted = min(position + batch_rows, part_end)
    group_end = int(ends[min(int(np.searchsorted(ends, wanted)), len(ends) - 1)])
    if wanted < group_end <= min(position + 4 * batch_rows, part_end):
        return group_end - position
    return wanted - position


def iter_chunks(
    spec: LogSpec,
    *,
    nan: str = "error",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    extra_columns: Sequence[str] = (),
    check_finite: bool = True,
    row_index: bool = True,
) -> Iterator[Chunk]:
    """`iter_frames`, each frame validated and put in engine order by `prepare_chunk`."""
    for frame in iter_frames(
        spec, nan=nan, chunk_rows=chunk_rows, extra_columns=extra_columns, row_index=row_index
    ):
        yield prepare_chunk(frame, spec, nan, check_finite, keep_sample=SAMPLE in extra_columns)

"""One frame of whole steps made ready for the advantage engine: `prepare_chunk` -> `Chunk`.

It checks the keys (no null step or group_id; no response logged twice), casts the rewards to
Float64, applies the NaN policy, sorts the rows by (step, group) when they are not already, and
finds the group boundaries (group codes, sizes; groups of one response are skipped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import DvaoWarning, InputError, counted
from dvao_cli.reader.format import GROUP, LOGGED, LONG_OBJECTIVE, LONG_REWARD, SAMPLE, STEP
from dvao_cli.reader.spec import FILE, LogSpec, read_error

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


@dataclass
class Chunk:
    """Whole steps of a log, ready for the advantage engine.

    Rows are sorted by (step, group) and each group's rows are contiguous; the groups are
    numbered 0..n_groups-1 in that order. Groups of size 1 and (with --nan drop) rows with a
    non-finite reward are already removed.
    """

    frame: pl.DataFrame  # [row], step, group_id, [logged_advantage], objectives (Float64)
    sizes: np.ndarray  # (n_groups,) int64
    skipped_groups: int = 0
    skipped_rows: int = 0
    dropped_rows: int = 0
    uniform: int = 0  # the common group size when every group has it, else 0

    @property
    def rows(self) -> int:
        return self.frame.height

    @property
    def n_groups(self) -> int:
        return int(self.sizes.shape[0])

    @cached_property
    def group(self) -> np.ndarray:
        """(N,) int64 group code of each row, non-decreasing (made on first use)."""
        return group_codes(self.sizes)

    def split(self, max_rows: int) -> list[Chunk]:
        """This chunk in pieces of whole steps of about `max_rows` rows (a step is never cut,
        so a piece can be larger); the skipped and dropped counts stay with the first."""
        import numpy as np

        if self.rows <= max_rows:
            return [self]
        _, group_step = self.group_steps()
        ends = np.cumsum(self.sizes)  # (G,) the row after each group
        last = np.flatnonzero(np.diff(group_step, append=group_step[-1] + 1))  # (S,) last group
        piece = (ends[last] - 1) // max_rows  # (S,) which piece each step falls in
        cut = last[np.flatnonzero(np.diff(piece))]  # the last group before each cut
        bounds = [0, *(cut + 1).tolist(), self.n_groups]  # in groups
        pieces = []
        for first, stop in zip(bounds[:-1], bounds[1:], strict=True):
            row = int(ends[first - 1]) if first else 0
            sizes = self.sizes[first:stop]
            pieces.append(
                Chunk(self.frame.slice(row, int(sizes.sum())), sizes, uniform=self.uniform)
            )
        pieces[0].skipped_groups = self.skipped_groups
        pieces[0].skipped_rows = self.skipped_rows
        pieces[0].dropped_rows = self.dropped_rows
        return pieces

    def group_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """(S,) the step values, in order, and (G,) each group's step code 0..S-1."""
        return self._group_steps

    @cached_property
    def _group_steps(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        step = self.frame.get_column(STEP).to_numpy()
        if self.uniform:
            first = step[:: self.uniform].copy()  # (G,) each group's first step, contiguous
        else:
            first = step[np.cumsum(self.sizes) - self.sizes]
        change = first[1:] != first[:-1]
        group_step = np.concatenate([[0], np.cumsum(change)]).astype(np.int64)
        return first[np.concatenate([[True], change])], group_step


def group_codes(sizes: np.ndarray) -> np.ndarray:
    """Group sizes (G,) of contiguous groups -> (N,) int64 group code of each row."""
    import numpy as np

    return np.repeat(np.arange(sizes.shape[0], dtype=np.int64), sizes)


def warn_skipped(label: str, skipped_groups: int) -> None:
    """A `DvaoWarning` that `skipped_groups` groups of size 1 were left out."""
    import warnings

    plural = "group" if skipped_groups == 1 else "groups"
    warnings.warn(
        f"{label}: column '{GROUP}': skipped {skipped_groups} {plural} of size 1 "
        "(no within-group variance)",
        DvaoWarning,
        stacklevel=2,
    )


# --------------------------------------------------------------------------------------------
# Non-finite rewards
# --------------------------------------------------------------------------------------------


def _finite_problem_counts(frame: pl.DataFrame, objectives: Sequence[str]) -> dict[str, int]:
    import polars as pl

    counts = frame.select(
        [(~pl.col(o).is_finite()).fill_null(True).sum().alias(o) for o in objectives]
    ).row(0)
    return {o: int(c) for o, c in zip(objectives, counts, strict=True) if c}


def non_finite_error(spec: LogSpec, frame: pl.DataFrame) -> InputError:
    """The one-line error for a frame whose group statistics came out non-finite: the first
    objective holding a non-finite reward, else (every reward finite) the objective whose
    rewards are so large that their sums overflow."""
    problems = _finite_problem_counts(frame, spec.objectives)
    if problems:
        return _nan_error(spec, next(iter(problems)))
    return _overflow_error(spec, frame)


def _overflow_error(spec: LogSpec, frame: pl.DataFrame) -> InputError:
    import polars as pl

    largest = frame.select([pl.col(o).abs().max().alias(o) for o in spec.objectives]).row(0)
    sizes = {o: float(v) for o, v in zip(spec.objectives, largest, strict=True) if v is not None}
    column = max(sizes, key=lambda o: sizes[o]) if sizes else spec.objectives[0]
    where = spec.label
    if sizes:
        found = (
            spec.scan_with_files()
            .filter(pl.col(column).cast(pl.Float64).abs() == sizes[column])
            .select(pl.col(FILE).first())
            .collect()
            .item()
        )
        where = found or where
    return InputError(
        f"rewards as large as {sizes.get(column, math.inf):.3g} in magnitude: their group sums "
        "overflow float64 (no reward is NaN); rescale this column (rewards of all objectives "
        "should share one scale, such as [0, 1])",
        path=where,
        column=column,
    )


def _nan_error(spec: LogSpec, column: str) -> InputError:
    """Count the non-finite rewards of `column` over the whole log and name the first file."""
    import polars as pl

    bad = (~pl.col(column).cast(pl.Float64).is_finite()).fill_null(True)
    lf = spec.scan_with_files()
    if spec.long:
        lf = lf.filter(pl.col(LONG_OBJECTIVE).cast(pl.String) == column).with_columns(
            pl.col(LONG_REWARD).alias(column)
        )
    stats = lf.select(
        bad.sum().alias("n"), pl.len().alias("rows"), pl.col(FILE).filter(bad).first()
    ).collect()
    n, rows, where = stats.row(0)
    return InputError(
        f"{n} NaN, infinite or missing reward{'s' if n != 1 else ''} (of {counted(rows, 'row')}); "
        "use --nan drop to drop those rows or --nan ignore to skip them as TRL does",
        path=where or spec.label,
        column=column,
    )


# --------------------------------------------------------------------------------------------
# Group boundaries
# --------------------------------------------------------------------------------------------


def _key_arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """step and integer group_id as numpy arrays (fast comparisons), or None for string ids."""
    if not frame.schema[GROUP].is_integer():
        return None
    return frame.get_column(STEP).to_numpy(), frame.get_column(GROUP).to_numpy()


def _in_engine_order(frame: pl.DataFrame, keys: tuple[np.ndarray, np.ndarray] | None) -> bool:
    if keys is not None:
        s, g = keys
        same = s[1:] == s[:-1]
        return bool(((s[1:] > s[:-1]) | (same & (g[1:] >= g[:-1]))).all())
    step, gid = frame.get_column(STEP), frame.get_column(GROUP)
    step_prev, gid_prev = step.shift(1), gid.shift(1)
    ordered = (step > step_prev) | ((step == step_prev) & (gid >= gid_prev))
    return bool(ordered.fill_null(True).all())


def _uniform_size(keys: tuple[np.ndarray, np.ndarray]) -> int:
    """The group size m >= 2 when the rows are in engine order in groups of m rows each (the
    usual log: checked with flat passes over the keys instead of the general ones), else 0."""
    import numpy as np

    s, g = keys
    rows = s.shape[0]
    probe = min(rows, 4096)
    differs = np.flatnonzero((s[:probe] != s[0]) | (g[:probe] != g[0]))
    size = int(differs[0]) if differs.size else 0
    if size < 2 or rows % size:
        return 0
    # the key changes only where a block of m rows ends: flat comparisons of neighbours (a
    # (G, m) comparison with the block's first row loops per block, 10x slower)
    for key in (s, g):
        change = key[1:] != key[:-1]  # (N-1,) row i+1 differs from row i
        change[size - 1 :: size] = False  # row i+1 starts a block
        if change.any():
            return 0
    # (G,) group keys, strictly increasing in (step, group): copied once from the strided
    # view (each comparison of the view would read a cache line per element)
    sf, gf = s[::size].copy(), g[::size].copy()
    increasing = (sf[1:] > sf[:-1]) | ((sf[1:] == sf[:-1]) & (gf[1:] > gf[:-1]))
    return size if bool(increasing.all()) else 0


def _group_starts(frame: pl.DataFrame, keys: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(N,) bool: the row starts a group (rows in engine order)."""
    import numpy as np

    if keys is not None:
        s, g = keys
        starts = np.empty(s.shape[0], dtype=bool)
        starts[0] = True
        np.not_equal(s[1:], s[:-1], out=starts[1:])
        starts[1:] |= g[1:] != g[:-1]
        return starts
    step, gid = frame.get_column(STEP), frame.get_column(GROUP)
    return ((step != step.shift(1)) | (gid != gid.shift(1))).fill_null(True).to_numpy()


# --------------------------------------------------------------------------------------------
# No response twice: (step, group_id, sample_id) is a key
# --------------------------------------------------------------------------------------------


def _check_unique_samples(
    spec: LogSpec, frame: pl.DataFrame, starts: np.ndarray | None, uniform: int
) -> None:
    """Raise naming the first repeated (step, group_id, sample_id) of `frame` (in engine order,
    whole steps). `starts` (N,) marks group starts; with `uniform` m the groups are the rows'
    consecutive blocks of m instead.

    One vectorised pass when every group lists its sample ids increasing (every dvao writer
    does): then none repeats. Otherwise the rows of the groups that do not are sorted by
    (group, sample_id) and neighbours compared.
    """
    import numpy as np
    import polars as pl

    column = frame.get_column(SAMPLE)
    if not column.dtype.is_integer():  # documented as an integer; other ids are rare: polars
        dup = frame.select(pl.struct(STEP, GROUP, SAMPLE).is_duplicated()).to_series()
        if dup.any():
            first = int(dup.arg_true()[0])
            raise _repeat_error(spec, frame.row(first, named=True))
        return
    s = column.to_numpy()  # (N,)
    bad = s[1:] <= s[:-1]  # (N-1,) row i+1 not above row i: one flat pass (2 ms at 4M rows)
    if uniform:
        bad[uniform - 1 :: uniform] = False  # row i+1 starts a group
    else:
        assert starts is not None
        bad &= ~starts[1:]
    if not bad.any():
        return
    if starts is None:
        starts = np.zeros(s.shape[0], dtype=bool)
        starts[::uniform] = True
    bad = np.concatenate([[False], bad])  # (N,)
    group = np.cumsum(starts) - 1  # (N,) group code
    suspect = np.isin(group, np.unique(group[bad]))  # rows of the groups to sort
    rows = np.flatnonzero(suspect)
    order = rows[np.lexsort((s[rows], group[rows]))]  # stable: engine order among equals
    same = (group[order[1:]] == group[order[:-1]]) & (s[order[1:]] == s[order[:-1]])
    if same.any():
        raise _repeat_error(spec, frame.row(int(order[1:][same].min()), named=True))


def _repeat_error(spec: LogSpec, row: dict[str, Any]) -> InputError:
    """Name the repeated response and the file(s) holding it (one filtered scan: error path)."""
    import polars as pl

    step, gid, sample = row[STEP], row[GROUP], row[SAMPLE]
    what = f"step {step}, group_id {gid!r}, sample_id {sample}"
    key = (pl.col(STEP) == step) & (pl.col(GROUP) == gid) & (pl.col(SAMPLE) == sample)
    where = spec.scan_with_files().filter(key).select(FILE).collect().to_series().to_list()
    if len(where) >= 2 and where[0] != where[1]:
        return InputError(
            f"{what} is already in {where[0]}: a response must be one row (is a file in the "
            "log twice?)",
            path=where[1],
        )
    count = f" ({len(where)} rows)" if len(where) > 1 else ""
    return InputError(
        f"{what} is repeated{count}: a response must be one row",
        path=where[0] if where else spec.label,
    )


# --------------------------------------------------------------------------------------------
# prepare_chunk
# --------------------------------------------------------------------------------------------


def prepare_chunk(
    frame: pl.DataFrame,
    spec: LogSpec,
    nan: str = "error",
    check_finite: bool = True,
    *,
    keep_sample: bool = False,
) -> Chunk:
    """Validate one frame of whole steps (from `iter_frames`) and put it in engine order.

    `check_finite=False` (with nan="error") leaves the NaN check to a caller that finds
    non-finite rewards anyway, as the advantage engine does from the group means. A `sample_id`
    column, when the frame has one, is checked to repeat no response, then left out unless
    `keep_sample`.
    """
    try:
        chunk = _prepare(frame, spec, nan, check_finite)
    except InputError:
        raise
    except Exception as err:
        raise read_error(spec, err) from None
    if not keep_sample and SAMPLE in chunk.frame.columns:
        chunk.frame = chunk.frame.drop(SAMPLE)
    return chunk


def _prepare(frame: pl.DataFrame, spec: LogSpec, nan: str, check_finite: bool) -> Chunk:
    import numpy as np
    import polars as pl

    objectives = spec.objectives
    samples = SAMPLE in frame.columns

    for name in (STEP, GROUP, SAMPLE) if samples else (STEP, GROUP):
        nulls = frame.get_column(name).null_count()
        if nulls:
            raise InputError(f"{nulls} missing (null) values", path=spec.label, column=name)
    wanted = {STEP: pl.Int64, **{o: pl.Float64 for o in objectives}}
    if LOGGED in frame.columns:
        wanted[LOGGED] = pl.Float64
    casts = [pl.col(c).cast(t) for c, t in wanted.items() if frame.schema[c] != t]
    if casts:
        frame = frame.with_columns(casts)

    dropped = 0
    check = check_finite or nan != "error"
    problems = _finite_problem_counts(frame, objectives) if check else {}
    if problems:
        if nan == "error":
            raise _nan_error(spec, next(iter(problems)))
        finite = pl.all_horizontal([pl.col(o).is_finite().fill_null(False) for o in objectives])
        if nan == "drop":
            before = frame.height
            frame = frame.filter(finite)
            dropped = before - frame.height
        else:  # ignore: every non-finite reward is a missing one (NaN), skipped by the engine
            frame = frame.with_columns(
                [
                    pl.when(pl.col(o).is_finite()).then(pl.col(o)).otherwise(float("nan")).alias(o)
                    for o in objectives
                ]
            )

    # engine order: sorted by (step, group); most logs already are, so check before sorting
    if frame.height == 0:
        return Chunk(frame, np.zeros(0, dtype=np.int64), dropped_rows=dropped)
    keys = _key_arrays(frame)
    uniform = _uniform_size(keys) if keys is not None else 0
    if uniform:
        if samples:
            _check_unique_samples(spec, frame, None, uniform)
        sizes = np.full(frame.height // uniform, uniform, dtype=np.int64)
        return Chunk(frame, sizes, dropped_rows=dropped, uniform=uniform)
    if not _in_engine_order(frame, keys):
        frame = frame.sort([STEP, GROUP], maintain_order=True)
        keys = _key_arrays(frame)
    starts = _group_starts(frame, keys)
    if samples:
        _check_unique_samples(spec, frame, starts, 0)
    first = np.flatnonzero(starts)  # (G,) first row of each group
    sizes = np.diff(first, append=frame.height)  # (G,)
    skipped_groups = int((sizes == 1).sum())
    skipped_rows = skipped_groups
    if skipped_groups:
        frame = frame.filter(pl.Series(np.repeat(sizes > 1, sizes)))
        sizes = sizes[sizes > 1]
    sizes = sizes.astype(np.int64)
    return Chunk(
        frame,
        sizes,
        skipped_groups=skipped_groups,
        skipped_rows=skipped_rows,
        dropped_rows=dropped,
        uniform=int(sizes[0]) if sizes.size and bool((sizes == sizes[0]).all()) else 0,
    )

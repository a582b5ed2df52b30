"""The dvao rollout-log format and its reader.

A log is one row per sampled response: `step` (integer), `group_id` (integer or string; the
responses to one prompt at one step share it), optional `sample_id`, `prompt`, `completion`,
`logged_advantage`, and one numeric column per reward objective. The long layout (`objective` +
`reward` columns, one row per response and objective) is pivoted to the wide one.

The reader is lazy: it opens Parquet footers first (schema checks cost no data), then streams only
the needed columns in chunks of whole steps, so text columns are never read and memory does not
grow with the log. Every problem is an `InputError` naming the file and the column.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, UsageError
from dvao_cli.options import did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

STEP = "step"
GROUP = "group_id"
SAMPLE = "sample_id"
LOGGED = "logged_advantage"
ROW = "row"
LONG_OBJECTIVE = "objective"
LONG_REWARD = "reward"
RESERVED = (STEP, GROUP, SAMPLE, "prompt", "completion", LOGGED, LONG_OBJECTIVE, LONG_REWARD, ROW)
NAN_POLICIES = ("error", "drop", "ignore")
DEFAULT_CHUNK_ROWS = 1_000_000


# --------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _parquet_files_under(directory: Path) -> list[Path]:
    files = []
    for path in directory.rglob("*.parquet"):
        rel = path.relative_to(directory).parts
        if any(part.startswith((".", "_")) for part in rel):  # temp files, _SUCCESS markers
            continue
        if path.is_file():
            files.append(path)
    return sorted(files)


def resolve_paths(paths: str | Path | Sequence[str | Path]) -> tuple[list[Path], bool]:
    """Expand files, directories (recursively, hive-partitioned included) and globs.

    Returns the files in sorted path order and whether a `key=value` folder (hive partitioning)
    was seen.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UsageError("no LOG given")
    files: list[Path] = []
    hive = False
    for raw in paths:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            found = _parquet_files_under(path)
            if not found:
                raise InputError("empty directory: no Parquet files in it", path=path)
            hive = hive or any(
                "=" in part for f in found for part in f.relative_to(path).parts[:-1]
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif _is_glob(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            matched = [p for p in matched if p.is_file()] + [
                f for p in matched if p.is_dir() for f in _parquet_files_under(p)
            ]
            if not matched:
                raise InputError("the pattern matches no file", path=text)
            files.extend(sorted(matched))
        else:
            raise InputError("no such file or directory", path=text)
    # one file named twice is read once; order is sorted path order
    unique = sorted(set(files), key=lambda p: str(p))
    return unique, hive


# --------------------------------------------------------------------------------------------
# Schema: footers only
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogSpec:
    """What a log holds, learned from its Parquet footers (no data read yet)."""

    files: list[Path]
    hive: bool
    columns: dict[str, pl.DataType]
    objectives: list[str]
    long: bool
    has_logged_advantage: bool

    @property
    def label(self) -> str:
        """The file named in messages about the log as a whole."""
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0]} (and others)"

    @cached_property
    def footers(self) -> list[Any]:
        """Each file's Parquet metadata (pyarrow FileMetaData), read once."""
        import pyarrow.parquet as pq

        return [pq.ParquetFile(path).metadata for path in self.files]

    def scan(self, columns: Sequence[str] | None = None) -> pl.LazyFrame:
        import polars as pl

        lf = pl.scan_parquet(
            [str(f) for f in self.files],
            hive_partitioning=self.hive,
            row_index_name=ROW,
        )
        return lf if columns is None else lf.select([ROW, *columns])

    def read(
        self, path: Path, offset: int, length: int, columns: Sequence[str], row: int | None
    ) -> pl.DataFrame:
        """Rows offset..offset+length of one file, `columns` only (polars decodes just the
        pages those rows are in). Hive partition columns come from the folder names; `row`
        (the log position of the first row) adds the `row` column first, None leaves it out."""
        import polars as pl

        partitions = _hive_values(path) if self.hive else {}
        in_file = [c for c in columns if c not in partitions]
        lazy = pl.scan_parquet(str(path), hive_partitioning=False).select(in_file)
        frame = lazy.slice(offset, length).collect()
        added = [
            pl.lit(partitions[c]).cast(self.columns[c]).alias(c) for c in columns if c in partitions
        ]
        if row is not None:
            added.append(pl.int_range(row, row + frame.height, dtype=pl.Int64).alias(ROW))
        if added:
            frame = frame.with_columns(added)
        return frame.select([ROW, *columns] if row is not None else columns)


def _hive_values(path: Path) -> dict[str, str]:
    """`.../step=3/part.parquet` -> {"step": "3"} (the innermost folder wins)."""
    values: dict[str, str] = {}
    for part in path.parts[:-1]:
        if "=" in part:
            key, _, value = part.partition("=")
            values[key] = value
    return values


def _file_schema(path: Path, hive: bool) -> dict[str, pl.DataType]:
    import polars as pl

    try:
        if path.stat().st_size == 0:
            raise InputError("empty file", path=path)
        schema = pl.scan_parquet(str(path), hive_partitioning=False).collect_schema()
    except InputError:
        raise
    except Exception as err:  # polars raises several types for a non-Parquet or truncated file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"not a readable Parquet file ({reason[:160]})", path=path) from None
    return dict(schema)


def _family(dtype: pl.DataType) -> str:
    """Dtypes that read as the same thing count as one (Int32 vs Int64 is no clash)."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if dtype.is_numeric():
        return "numeric"
    name = str(dtype)
    if name in ("String", "Utf8", "Categorical", "Enum") or name.startswith(
        ("Categorical", "Enum")
    ):
        return "string"
    return name


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or str(dtype) == "Boolean"


def open_log(
    paths: str | Path | Sequence[str | Path], objectives: Sequence[str] | None = None
) -> LogSpec:
    """Resolve the LOG arguments and check their schemas; pick the objectives."""
    import polars as pl

    files, hive = resolve_paths(paths)
    first = files[0]
    schema = _file_schema(first, hive)
    for path in files[1:]:
        other = _file_schema(path, hive)
        for name in sorted(set(schema) | set(other)):
            if name not in other:
                raise InputError(f"missing here but present in {first}", path=path, column=name)
            if name not in schema:
                raise InputError(f"present here but missing in {first}", path=path, column=name)
            if _family(schema[name]) != _family(other[name]):
                raise InputError(
                    f"type {other[name]} here but {schema[name]} in {first}",
                    path=path,
                    column=name,
                )
    if hive:
        # partition columns (e.g. step=3/) come from the folder names
        lf = pl.scan_parquet([str(f) for f in files], hive_partitioning=True)
        try:
            schema = dict(lf.collect_schema())
        except Exception as err:
            raise InputError(f"cannot read hive partitions ({err})", path=first) from None

    long = LONG_OBJECTIVE in schema and LONG_REWARD in schema
    for required in (STEP, GROUP):
        if required not in schema:
            raise InputError(
                "missing required column (a dvao log needs 'step' and 'group_id'; "
                "bring trainer logs in with `dvao import`)",
                path=first,
                column=required,
            )
    if not schema[STEP].is_integer():
        raise InputError(f"must be an integer, found {schema[STEP]}", path=first, column=STEP)
    if _family(schema[GROUP]) not in ("integer", "string"):
        raise InputError(
            f"must be an integer or a string, found {schema[GROUP]}", path=first, column=GROUP
        )
    if LOGGED in schema and not _is_numeric(schema[LOGGED]):
        raise InputError(f"must be numeric, found {schema[LOGGED]}", path=first, column=LOGGED)

    if long:
        chosen = _long_objectives(files, hive, schema, objectives)
    else:
        chosen = _wide_objectives(first, schema, objectives)
    return LogSpec(
        files=files,
        hive=hive,
        columns=schema,
        objectives=chosen,
        long=long,
        has_logged_advantage=LOGGED in schema,
    )


METADATA_KEY = b"dvao"  # Parquet key-value metadata written by dvao: {"objectives": [...], ...}


def recorded_objectives(path: Path) -> list[str]:
    """The objectives a dvao writer (import, train) recorded in the file's metadata, if any.

    Imported logs keep numeric extra columns (token counts, entropy) that are not rewards; the
    importer knows which columns are rewards and says so here.
    """
    import json

    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        names = json.loads(meta[METADATA_KEY]).get("objectives", []) if METADATA_KEY in meta else []
    except Exception:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _wide_objectives(
    first: Path, schema: dict[str, pl.DataType], objectives: Sequence[str] | None
) -> list[str]:
    if objectives:
        chosen: list[str] = []
        for name in objectives:
            if name not in schema:
                candidates = [c for c in schema if c not in RESERVED and _is_numeric(schema[c])]
                raise InputError(
                    "no such objective column" + did_you_mean(name, candidates),
                    path=first,
                    column=name,
                )
            if name in RESERVED:
                raise InputError("is a reserved column, not an objective", path=first, column=name)
            if not _is_numeric(schema[name]):
                raise InputError(
                    f"an objective must be numeric, found {schema[name]}", path=first, column=name
                )
            if name not in chosen:
                chosen.append(name)
        return chosen
    recorded = recorded_objectives(first)
    if recorded:
        chosen = [c for c in recorded if c in schema and _is_numeric(schema[c])]
        if chosen:
            return chosen
    chosen = [c for c in schema if c not in RESERVED and _is_numeric(schema[c])]
    if not chosen:
        raise InputError(
            "no objective columns: every column is reserved or not numeric "
            "(a reward column must be numeric; pick one with --objective)",
            path=first,
        )
    return chosen


def _long_objectives(
    files: list[Path], hive: bool, schema: dict[str, pl.DataType], objectives: Sequence[str] | None
) -> list[str]:
    import polars as pl

    first = files[0]
    if _family(schema[LONG_OBJECTIVE]) != "string":
        raise InputError(
            f"must hold objective names (strings), found {schema[LONG_OBJECTIVE]}",
            path=first,
            column=LONG_OBJECTIVE,
        )
    if not _is_numeric(schema[LONG_REWARD]):
        raise InputError(
            f"must be numeric, found {schema[LONG_REWARD]}", path=first, column=LONG_REWARD
        )
    names = (
        pl.scan_parquet([str(f) for f in files], hive_partitioning=hive)
        .select(pl.col(LONG_OBJECTIVE).cast(pl.String).unique(maintain_order=True))
        .collect()
        .to_series()
        .drop_nulls()
        .to_list()
    )
    if not names:
        raise InputError("no objective names in the long layout", path=first, column=LONG_OBJECTIVE)
    if not objectives:
        return names
    for name in objectives:
        if name not in names:
            raise InputError(
                "no such objective in the long layout" + did_you_mean(name, names),
                path=first,
                column=name,
            )
    return list(dict.fromkeys(objectives))


# --------------------------------------------------------------------------------------------
# Data: streamed in chunks of whole steps
# --------------------------------------------------------------------------------------------


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
        import numpy as np

        step = self.frame.get_column(STEP).to_numpy()
        if self.uniform:
            first = step[:: self.uniform]  # (G,) the step of each group's first row
        else:
            first = step[np.cumsum(self.sizes) - self.sizes]
        change = first[1:] != first[:-1]
        group_step = np.concatenate([[0], np.cumsum(change)]).astype(np.int64)
        return first[np.concatenate([[True], change])], group_step


def group_codes(sizes: np.ndarray) -> np.ndarray:
    """Group sizes (G,) of contiguous groups -> (N,) int64 group code of each row."""
    import numpy as np

    return np.repeat(np.arange(sizes.shape[0], dtype=np.int64), sizes)


def _finite_problem_counts(frame: pl.DataFrame, objectives: Sequence[str]) -> dict[str, int]:
    import polars as pl

    counts = frame.select(
        [(~pl.col(o).is_finite()).fill_null(True).sum().alias(o) for o in objectives]
    ).row(0)
    return {o: int(c) for o, c in zip(objectives, counts, strict=True) if c}


def non_finite_error(spec: LogSpec, frame: pl.DataFrame) -> InputError:
    """The one-line error for the first objective of `frame` holding a non-finite reward."""
    problems = _finite_problem_counts(frame, spec.objectives)
    column = next(iter(problems), spec.objectives[0])
    return _nan_error(spec, spec.objectives, column)


def _nan_error(spec: LogSpec, objectives: Sequence[str], column: str) -> InputError:
    """Count the non-finite rewards of `column` over the whole log and name the first file."""
    import polars as pl

    bad = (~pl.col(column).cast(pl.Float64).is_finite()).fill_null(True)
    lf = pl.scan_parquet(
        [str(f) for f in spec.files], hive_partitioning=spec.hive, include_file_paths="__file"
    )
    if spec.long:
        lf = lf.filter(pl.col(LONG_OBJECTIVE).cast(pl.String) == column).with_columns(
            pl.col(LONG_REWARD).alias(column)
        )
    stats = lf.select(
        bad.sum().alias("n"), pl.len().alias("rows"), pl.col("__file").filter(bad).first()
    ).collect()
    n, rows, where = stats.row(0)
    return InputError(
        f"{n} NaN, infinite or missing rewards (of {rows} rows); "
        "use --nan drop to drop those rows or --nan ignore to skip them as TRL does",
        path=where or spec.label,
        column=column,
    )


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
    usual log: checked with two (G, m) comparisons instead of the general passes), else 0."""
    import numpy as np

    s, g = keys
    rows = s.shape[0]
    probe = min(rows, 4096)
    differs = np.flatnonzero((s[:probe] != s[0]) | (g[:probe] != g[0]))
    size = int(differs[0]) if differs.size else 0
    if size < 2 or rows % size:
        return 0
    s2, g2 = s.reshape(-1, size), g.reshape(-1, size)  # (G, m)
    if not ((s2 == s2[:, :1]).all() and (g2 == g2[:, :1]).all()):
        return 0
    sf, gf = s2[:, 0], g2[:, 0]  # (G,) group keys: strictly increasing in (step, group)
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


def prepare_chunk(
    frame: pl.DataFrame, spec: LogSpec, nan: str = "error", check_finite: bool = True
) -> Chunk:
    """Validate one frame of whole steps (from `iter_frames`) and put it in engine order.

    `check_finite=False` (with nan="error") leaves the NaN check to a caller that finds
    non-finite rewards anyway, as the advantage engine does from the group means.
    """
    try:
        return _prepare(frame, spec, nan, check_finite)
    except InputError:
        raise
    except Exception as err:
        raise _read_error(spec, err) from None


def _read_error(spec: LogSpec, err: Exception) -> InputError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputError(f"cannot read the log ({reason[:200]})", path=spec.label)


def _prepare(frame: pl.DataFrame, spec: LogSpec, nan: str, check_finite: bool) -> Chunk:
    import numpy as np
    import polars as pl

    objectives = spec.objectives

    for name in (STEP, GROUP):
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
            raise _nan_error(spec, objectives, next(iter(problems)))
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
        sizes = np.full(frame.height // uniform, uniform, dtype=np.int64)
        return Chunk(frame, sizes, dropped_rows=dropped, uniform=uniform)
    if not _in_engine_order(frame, keys):
        frame = frame.sort([STEP, GROUP], maintain_order=True)
        keys = _key_arrays(frame)
    starts = _group_starts(frame, keys)
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


def _columns_for(spec: LogSpec, extra_columns: Sequence[str]) -> list[str]:
    columns = [STEP, GROUP]
    if spec.has_logged_advantage:
        columns.append(LOGGED)
    for name in extra_columns:
        if name not in spec.columns:
            raise InputError("no such column", path=spec.label, column=name)
        if name not in columns and name not in spec.objectives:
            columns.append(name)
    return columns


def _read_long(spec: LogSpec, extra_columns: Sequence[str]) -> pl.DataFrame:
    """Pivot the long layout (one row per response and objective) to one row per response."""
    import polars as pl

    keys = [STEP, GROUP] + ([SAMPLE] if SAMPLE in spec.columns else [])
    carry = [c for c in _columns_for(spec, extra_columns) if c not in keys]
    lf = spec.scan([*keys, *carry, LONG_OBJECTIVE, LONG_REWARD]).with_columns(
        pl.col(LONG_OBJECTIVE).cast(pl.String)
    )
    lf = lf.filter(pl.col(LONG_OBJECTIVE).is_in(spec.objectives))
    if SAMPLE not in spec.columns:
        # the k-th reward of an objective within a group belongs to the group's k-th response
        lf = lf.with_columns(
            pl.int_range(pl.len()).over([STEP, GROUP, LONG_OBJECTIVE]).alias("__sample")
        )
        keys = [*keys, "__sample"]
    long = lf.collect()
    dup = long.select(keys + [LONG_OBJECTIVE]).is_duplicated()
    if dup.any():
        raise InputError(
            f"{int(dup.sum())} rows repeat an objective for the same response",
            path=spec.label,
            column=LONG_OBJECTIVE,
        )
    wide = long.pivot(
        on=LONG_OBJECTIVE,
        index=keys,
        values=LONG_REWARD,
        aggregate_function=None,
    )
    firsts = long.group_by(keys, maintain_order=True).agg(
        pl.col(ROW).min(), *[pl.col(c).first() for c in carry]
    )
    wide = firsts.join(wide, on=keys, how="left").sort(ROW)
    missing = [o for o in spec.objectives if o not in wide.columns]
    wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(o) for o in missing])
    # `row` of a pivoted response: its position among responses, in order of first appearance
    wide = wide.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
    keep = [ROW, STEP, GROUP, *[c for c in carry if c not in (STEP, GROUP)], *spec.objectives]
    return wide.select(keep)


def _step_floors(spec: LogSpec, batch_rows: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Where each block of rows ends (global row count), the smallest step in that block or any
    later one, and the rows of each file.

    Once the rows before a block are read, every step below its floor is complete, whatever the
    order of the log: that is what lets unsorted logs stream correctly. Blocks are the row
    groups, with their minimum step from the footers. A file whose footers cannot promise that
    at a useful grain (no statistics, or row groups of more than 4 x batch_rows rows, which
    would have to be held whole) gets blocks of batch_rows rows instead, from one extra read of
    its step column alone, so that it streams in bounded memory too.
    """
    import re

    import numpy as np
    import polars as pl

    ends: list[int] = []
    mins: list[float] = []
    file_rows: list[int] = []
    total = 0
    for path, meta in zip(spec.files, spec.footers, strict=True):
        hive_step = None
        if spec.hive:
            for part in path.parts:
                match = re.fullmatch(rf"{STEP}=(-?\d+)", part)
                if match:
                    hive_step = float(match.group(1))
        file_rows.append(meta.num_rows)
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
            steps = pl.scan_parquet(str(path), hive_partitioning=False).select(STEP)
            for offset in range(0, meta.num_rows, batch_rows):
                rows = min(batch_rows, meta.num_rows - offset)
                low = steps.slice(offset, rows).select(pl.col(STEP).min()).collect().item()
                blocks.append((rows, -math.inf if low is None else float(low)))
        if not blocks and meta.num_rows:  # no promise about this file's steps
            blocks = [(meta.num_rows, -math.inf)]
        for rows, low in blocks:
            total += rows
            ends.append(total)
            mins.append(low)
    floors = np.minimum.accumulate(np.array(mins[::-1] or [math.inf]))[::-1]
    return np.array(ends, dtype=np.int64), np.append(floors, math.inf), file_rows


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
    import numpy as np
    import polars as pl

    from dvao_cli.console import warn

    if nan not in NAN_POLICIES:
        raise UsageError(f"--nan must be one of {', '.join(NAN_POLICIES)}, not '{nan}'")
    if spec.long:
        yield _read_long(spec, extra_columns)
        return
    columns = [*_columns_for(spec, extra_columns), *spec.objectives]
    batch_rows = min(chunk_rows, 1_000_000)
    ends, floors, file_rows = _step_floors(spec, batch_rows)

    pending: list[pl.DataFrame] = []
    pending_rows = 0
    file, offset, start = 0, 0, 0  # reading position: file index, row in it, its first row
    warned = False
    try:
        while file < len(spec.files):
            if offset >= file_rows[file]:
                file, offset, start = file + 1, 0, start + file_rows[file]
                continue
            length = _read_length(ends, start + offset, batch_rows, start + file_rows[file])
            batch = spec.read(
                spec.files[file], offset, length, columns, start + offset if row_index else None
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
                    warn(
                        f"{spec.label}: steps are spread across the log; holding "
                        f"{pending_rows:,} rows until they are complete (write steps in order "
                        "to stream in bounded memory)"
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
    except InputError:
        raise
    except Exception as err:
        raise _read_error(spec, err) from None
    if pending_rows:
        yield pl.concat(pending, how="vertical_relaxed")


def _read_length(ends: np.ndarray, position: int, batch_rows: int, file_end: int) -> int:
    """Rows to read from `position` (in the log): about `batch_rows`, rounded up to the end of a
    row group when that is not far, so that frames end where the footers' step floors apply
    (they are per row group) and hold one contiguous piece."""
    import numpy as np

    wanted = min(position + batch_rows, file_end)
    group_end = int(ends[min(int(np.searchsorted(ends, wanted)), len(ends) - 1)])
    if wanted < group_end <= min(position + 4 * batch_rows, file_end):
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
        yield prepare_chunk(frame, spec, nan, check_finite)


# --------------------------------------------------------------------------------------------
# Whole log in memory
# --------------------------------------------------------------------------------------------


@dataclass
class LogData:
    """A whole log in memory, in engine order (see `Chunk`)."""

    frame: pl.DataFrame
    objectives: list[str]
    files: list[Path]
    group: np.ndarray
    sizes: np.ndarray
    skipped_groups: int = 0
    skipped_rows: int = 0
    dropped_rows: int = 0
    spec: LogSpec | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.frame.height


def read_log(
    paths: str | Path | Sequence[str | Path],
    objectives: Sequence[str] | None = None,
    nan: str = "error",
    extra_columns: Sequence[str] = (),
    *,
    quiet_warnings: bool = False,
) -> LogData:
    """Read and validate a whole log (for logs that fit in memory; `analyze` streams instead)."""
    import numpy as np
    import polars as pl

    spec = open_log(paths, objectives)
    chunks = list(iter_chunks(spec, nan=nan, extra_columns=extra_columns))
    frames = [c.frame for c in chunks if c.rows]
    if not frames:
        raise InputError("the log has no rows (after skipping groups of size 1)", path=spec.label)
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    sizes = np.concatenate([c.sizes for c in chunks])
    data = LogData(
        frame=frame,
        objectives=list(spec.objectives),
        files=spec.files,
        group=group_codes(sizes),
        sizes=sizes,
        skipped_groups=sum(c.skipped_groups for c in chunks),
        skipped_rows=sum(c.skipped_rows for c in chunks),
        dropped_rows=sum(c.dropped_rows for c in chunks),
        spec=spec,
    )
    if data.skipped_groups and not quiet_warnings:
        warn_skipped(spec.label, data.skipped_groups)
    return data


def warn_skipped(label: str, skipped_groups: int) -> None:
    from dvao_cli.console import warn

    plural = "group" if skipped_groups == 1 else "groups"
    warn(
        f"{label}: column '{GROUP}': skipped {skipped_groups} {plural} of size 1 "
        "(no within-group variance)"
    )

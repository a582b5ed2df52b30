"""What a log holds, from its Parquet footers alone: `open_spec` -> `LogSpec`.

`open_spec` resolves the LOG arguments (see discovery.py), checks that every file has the same
columns with compatible dtypes, that partition folders agree with the files' own columns, and
picks the objectives: `--objective` names, else those a dvao writer recorded in the file's
metadata, else every numeric column outside the reserved names. No row is read, except the
long layout's objective names and (rarely) a partition column whose footer has no statistics.
`opening.open_log`, what the commands call, then leaves out the combined scores (combined.py,
which reads the objective columns).

A trainer's own logs (TRL, verl, ms-swift) are read in place: see importers/in_place.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, LogWarning, UsageError, unreadable_parquet
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.discovery import READS, LogSource, hive_values, resolve_paths
from dvao_cli.reader.footer import check_pages, parquet_file, read_footer
from dvao_cli.reader.format import (
    GROUP,
    LOGGED,
    LONG_OBJECTIVE,
    LONG_REWARD,
    METADATA_KEY,
    RESERVED,
    ROW,
    SAMPLE,
    STEP,
    dtype_family,
    is_numeric,
)

if TYPE_CHECKING:
    import polars as pl

    from dvao_cli.importers.run import InMemoryImport

# What polars and pyarrow read: a Parquet file on disk, or one built in memory (a trainer log
# read in place). Messages never name an in-memory part: they name the LOG (`LogSpec.label`).
Part = Path | bytes
FILE = "__file"  # the column `LogSpec.scan_with_files` adds


@dataclass(frozen=True)
class LogSpec:
    """What a log holds, learned from its Parquet footers (no data read yet).

    `files` are the user's files the log is read from and `skipped` the files inside the named
    folders that are not read (hidden or `_` files, non-Parquet files, another trainer's files):
    together, every file a command must never overwrite. `parts` are what is scanned: the files
    themselves for a dvao log, the in-memory import of a trainer log (`format` "trl", "verl" or
    "swift"). `source` is the LOG as named, for messages about a trainer log.
    """

    files: list[Path]
    hive: bool
    columns: dict[str, pl.DataType]
    objectives: list[str]
    long: bool
    has_logged_advantage: bool
    skipped: list[Path] = field(default_factory=list)
    format: str = "dvao"
    parts: list[Part] = field(default_factory=list)
    source: str | None = None
    # doubts found while opening the log (e.g. `oversized_group`), carried into the summary
    warnings: list[LogWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", list(self.files))

    @property
    def label(self) -> str:
        """The file named in messages about the log as a whole."""
        if self.source is not None:
            return self.source
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0]} (and others)"

    def part_label(self, part: Part) -> str:
        """The file named in messages about one part."""
        return str(part) if isinstance(part, Path) else self.label

    @cached_property
    def footers(self) -> list[Any]:
        """Each part's Parquet metadata (`reader/footer.py`: pyarrow's FileMetaData, or the
        part of it the reader uses, decoded without pyarrow), read once."""
        return [read_footer(part) for part in self.parts]

    def scan(self, columns: Sequence[str] | None = None) -> pl.LazyFrame:
        """Every part as one lazy frame, with `row` (the position in the log) first."""
        import polars as pl

        lf = pl.scan_parquet(
            [polars_source(p) for p in self.parts],
            hive_partitioning=self.hive,
            row_index_name=ROW,
        )
        return lf if columns is None else lf.select([ROW, *columns])

    def scan_with_files(self) -> pl.LazyFrame:
        """Every part as one lazy frame with `FILE`, the file each row is in (for messages: the
        LOG itself for a part in memory)."""
        import polars as pl

        lf = pl.scan_parquet(
            [polars_source(p) for p in self.parts],
            hive_partitioning=self.hive,
            include_file_paths=FILE,
        )
        if any(not isinstance(p, Path) for p in self.parts):
            lf = lf.with_columns(pl.lit(self.label).alias(FILE))
        return lf

    def read(
        self, part: Part, offset: int, length: int, columns: Sequence[str], row: int | None
    ) -> pl.DataFrame:
        """Rows offset..offset+length of one part, `columns` only (polars decodes just the
        pages those rows are in). Hive partition columns come from the folder names; `row`
        (the log position of the first row) adds the `row` column first, None leaves it out."""
        import polars as pl

        partitions = hive_values(part) if self.hive and isinstance(part, Path) else {}
        in_file = [c for c in columns if c not in partitions]
        lazy = pl.scan_parquet(polars_source(part), hive_partitioning=False).select(in_file)
        frame = lazy.slice(offset, length).collect()
        added = [
            pl.lit(partitions[c]).cast(self.columns[c]).alias(c) for c in columns if c in partitions
        ]
        if row is not None:
            added.append(pl.int_range(row, row + frame.height, dtype=pl.Int64).alias(ROW))
        if added:
            frame = frame.with_columns(added)
        return frame.select([ROW, *columns] if row is not None else columns)


def polars_source(part: Part) -> str | bytes:
    return str(part) if isinstance(part, Path) else part


def read_error(spec: LogSpec, err: Exception) -> InputError:
    """A read that failed below the reader (polars, pyarrow), as one line naming the log."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputError(f"cannot read the log ({reason[:200]})", path=spec.label)


def _file_schema(path: Path) -> dict[str, pl.DataType]:
    import polars as pl

    try:
        if path.stat().st_size == 0:
            raise InputError("empty file", path=path)
        check_pages(path)  # before polars reads any page: it panics on chunks past the end
        schema = pl.scan_parquet(str(path), hive_partitioning=False).collect_schema()
    except InputError:
        raise
    except Exception as err:  # polars raises several types for a non-Parquet or truncated file
        error = unreadable_parquet(err, path)
        if path.suffix.lower() not in (".parquet", ".parq", ".pq"):  # not meant as one
            error = InputError(f"{error.message}; {READS}", path=path)
        raise error from None
    return dict(schema)


def _footer(path: Path) -> Any:
    try:
        return parquet_file(path).metadata
    except Exception as err:  # polars read the schema, pyarrow may still refuse the file
        raise unreadable_parquet(err, path) from None


def open_spec(
    paths: str | Path | Sequence[str | Path] | LogSource, objectives: Sequence[str] | None
) -> LogSpec:
    """The log's spec before its combined scores are looked for (`reader.opening.open_log`
    adds that): the LOG arguments resolved, their schemas checked, the objectives picked."""
    import polars as pl

    from dvao_cli.importers.in_place import import_trainer_log, resolve_format

    source = LogSource.of(paths)
    fmt = resolve_format(source)
    if fmt != "dvao":
        return _trainer_spec(import_trainer_log(source, fmt, objectives), str(source.paths[0]))
    if source.group_size is not None or source.ragged or source.group_keys:
        option = (
            "--group-size"
            if source.group_size is not None
            else "--ragged"
            if source.ragged
            else "--group-key"
        )
        raise UsageError(
            f"{option} applies to a trainer's log or a table read in place (TRL, verl, ms-swift, "
            "table), not to a dvao log, whose groups are its group_id column"
        )
    if source.table is not None:  # --step, --group, --advantage: a table's columns only
        from dvao_cli.importers.table import check_options

        check_options(source.table, "dvao")

    found = resolve_paths(source.paths)
    files, hive = found.files, found.hive
    first = files[0]
    schema = _file_schema(first)
    for path in files[1:]:
        other = _file_schema(path)
        for name in sorted(set(schema) | set(other)):
            if name not in other:
                raise InputError(f"missing here but present in {first}", path=path, column=name)
            if name not in schema:
                raise InputError(f"present here but missing in {first}", path=path, column=name)
            if dtype_family(schema[name]) != dtype_family(other[name]):
                raise InputError(
                    f"type {other[name]} here but {schema[name]} in {first}",
                    path=path,
                    column=name,
                )
    in_files = set(schema)
    footers = None
    if hive:
        footers = [_footer(path) for path in files]
        check_partitions(files, footers)
        # partition columns (e.g. step=3/) come from the folder names
        lf = pl.scan_parquet([str(f) for f in files], hive_partitioning=True)
        try:
            schema = dict(lf.collect_schema())
        except Exception as err:
            raise InputError(f"cannot read hive partitions ({err})", path=first) from None
    if hive and STEP in schema and STEP not in in_files and not schema[STEP].is_integer():
        for path in files:  # the folders give the step: name the one that is not an integer
            value = hive_values(path).get(STEP, "")
            if not re.fullmatch(r"-?\d+", value):
                raise InputError(
                    f"the folder says {STEP}={value}: a step must be an integer", path=path
                )
    spec = spec_from_schema(
        files,
        list(files),
        schema,
        objectives,
        hive=hive,
        skipped=found.skipped,
        folder_columns=set(schema) - in_files,
    )
    if footers is not None:  # each footer is read once: hand them to the cached property
        object.__setattr__(spec, "footers", footers)
    if SAMPLE not in schema:  # with sample_id, the chunks name the first repeated response
        check_no_copies(files, hive)
    return spec


def _trainer_spec(imported: InMemoryImport, named: str) -> LogSpec:
    """A trainer log imported into memory, opened as the dvao log it became (`named`: the LOG
    as the user wrote it, for messages)."""
    import polars as pl

    schema = dict(pl.scan_parquet(imported.parquet).collect_schema())
    spec = spec_from_schema(
        imported.files,
        [imported.parquet],
        schema,
        None,
        skipped=imported.others,
        format=imported.report.format,
        source=named,
    )
    spec.warnings.extend(imported.report.warnings)  # oversized_group, kept as asked
    return spec


def check_no_copies(files: list[Path], hive: bool) -> None:
    """Refuse a file whose bytes are another file's of the log (in the same partition): its
    rows would be read twice, doubling the groups. Only files of equal size are compared, and
    a comparison stops at the first differing block."""
    import filecmp

    seen: dict[tuple[int, tuple[tuple[str, str], ...]], list[Path]] = {}
    for path in files:
        key = (path.stat().st_size, tuple(sorted(hive_values(path).items())) if hive else ())
        for other in seen.get(key, []):
            if filecmp.cmp(other, path, shallow=False):
                raise InputError(
                    f"holds the same bytes as {other}: its rows would be read twice (is a file "
                    "in the log twice?)",
                    path=path,
                )
        seen.setdefault(key, []).append(path)


def spec_from_schema(
    files: list[Path],
    parts: list[Part],
    schema: dict[str, pl.DataType],
    objectives: Sequence[str] | None,
    *,
    hive: bool = False,
    skipped: Sequence[Path] = (),
    format: str = "dvao",
    source: str | None = None,
    folder_columns: set[str] | frozenset[str] = frozenset(),
) -> LogSpec:
    """Check the required columns of `schema` (the parts' common schema) and pick the
    objectives (see `LogSpec` for the other fields). `folder_columns` come from partition
    folder names alone: never objectives unless named."""
    spec = LogSpec(
        files=files,
        hive=hive,
        columns=schema,
        objectives=[],
        long=LONG_OBJECTIVE in schema and LONG_REWARD in schema,
        has_logged_advantage=LOGGED in schema,
        skipped=list(skipped),
        format=format,
        parts=parts,
        source=source,
    )
    first = spec.part_label(parts[0])
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
    if dtype_family(schema[GROUP]) not in ("integer", "string"):
        raise InputError(
            f"must be an integer or a string, found {schema[GROUP]}", path=first, column=GROUP
        )
    if LOGGED in schema and not is_numeric(schema[LOGGED]):
        raise InputError(f"must be numeric, found {schema[LOGGED]}", path=first, column=LOGGED)
    if spec.long:
        chosen = _long_objectives(spec, objectives)
    else:
        chosen = _wide_objectives(spec, objectives, folder_columns)
    return replace(spec, objectives=chosen)


def check_partitions(files: Sequence[Path], footers: Sequence[Any]) -> None:
    """Partition folders (`step=1/`) must name each column once, and agree with the file's own
    column of that name when it has one: the footers' min/max say so without reading rows."""
    import polars as pl

    first_keys: list[str] | None = None
    for path, meta in zip(files, footers, strict=True):
        folders = [part.partition("=") for part in path.parts[:-1] if "=" in part]
        keys = [key for key, _, _ in folders]
        twice = next((key for key in keys if keys.count(key) > 1), None)
        if twice is not None:
            named = ", ".join(f"{k}={v}" for k, _, v in folders if k == twice)
            raise InputError(
                f"the folders name partition column '{twice}' twice ({named})", path=path
            )
        if first_keys is None:
            first_keys = keys
        elif sorted(keys) != sorted(first_keys):
            here = ", ".join(f"{k}=" for k in keys) or "none"
            there = ", ".join(f"{k}=" for k in first_keys) or "none"
            raise InputError(
                f"partition folders {here} here but {there} in {files[0]}: every file of a "
                "partitioned log needs the same partition folders",
                path=path,
            )
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for key, value in hive_values(path).items():
            if key not in names:  # the folder gives the column: nothing to contradict
                continue
            col = names.index(key)
            stats = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
            if stats and all(s is not None and s.has_min_max for s in stats):
                low, high = min(s.min for s in stats), max(s.max for s in stats)
            else:  # no statistics: read the column (rare)
                values = (
                    pl.scan_parquet(str(path), hive_partitioning=False)
                    .select(pl.col(key).min().alias("lo"), pl.col(key).max().alias("hi"))
                    .collect()
                )
                low, high = values.row(0)
            if low is None:  # no rows, or only nulls: nothing contradicts the folder
                continue
            if low == high and _same_value(value, low):
                continue
            says = f"{key} {low}" if low == high else f"{key} from {low} to {high}"
            raise InputError(
                f"the folder says {key}={value} but the file's rows say {says}; "
                "rename the folder or drop the column",
                path=path,
                column=key,
            )


def _same_value(text: str, value: Any) -> bool:
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, int):
        try:
            return int(text) == value
        except ValueError:
            return False
    if isinstance(value, float):
        try:
            return float(text) == value
        except ValueError:
            return False
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return text == str(value)


def recorded_objectives(part: Part) -> list[str]:
    """The objectives a dvao writer (import, train) recorded in the file's metadata, if any.

    Imported logs keep numeric extra columns (token counts, entropy) that are not rewards; the
    importer knows which columns are rewards and says so here.
    """
    import json

    try:  # the file's key-value metadata (pyarrow's schema_arrow.metadata less ARROW:schema)
        meta = read_footer(part).metadata or {}
        names = json.loads(meta[METADATA_KEY]).get("objectives", []) if METADATA_KEY in meta else []
    except Exception:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _wide_objectives(
    spec: LogSpec, objectives: Sequence[str] | None, folder_columns: set[str] | frozenset[str]
) -> list[str]:
    schema = spec.columns
    first = spec.part_label(spec.parts[0])
    if objectives:
        chosen: list[str] = []
        for name in objectives:
            if name not in schema:
                candidates = [c for c in schema if c not in RESERVED and is_numeric(schema[c])]
                raise InputError(
                    "no such objective column" + did_you_mean(name, candidates),
                    path=first,
                    column=name,
                )
            if name in RESERVED:
                raise InputError("is a reserved column, not an objective", path=first, column=name)
            if not is_numeric(schema[name]):
                raise InputError(
                    f"an objective must be numeric, found {schema[name]}", path=first, column=name
                )
            if name not in chosen:
                chosen.append(name)
        return chosen
    recorded = recorded_objectives(spec.parts[0])
    if recorded:
        chosen = [c for c in recorded if c in schema and is_numeric(schema[c])]
        if chosen:
            return chosen
    chosen = [
        c for c in schema if c not in RESERVED and c not in folder_columns and is_numeric(schema[c])
    ]
    if not chosen:
        raise InputError(
            "no objective columns: every column is reserved or not numeric "
            "(a reward column must be numeric; pick one with --objective)",
            path=first,
        )
    return chosen


def _long_objectives(spec: LogSpec, objectives: Sequence[str] | None) -> list[str]:
    import polars as pl

    schema = spec.columns
    first = spec.part_label(spec.parts[0])
    if dtype_family(schema[LONG_OBJECTIVE]) != "string":
        raise InputError(
            f"must hold objective names (strings), found {schema[LONG_OBJECTIVE]}",
            path=first,
            column=LONG_OBJECTIVE,
        )
    if not is_numeric(schema[LONG_REWARD]):
        raise InputError(
            f"must be numeric, found {schema[LONG_REWARD]}", path=first, column=LONG_REWARD
        )
    names = (
        pl.scan_parquet([polars_source(p) for p in spec.parts], hive_partitioning=spec.hive)
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

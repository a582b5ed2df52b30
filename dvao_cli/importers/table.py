"""Any trainer's table of rollouts (`dvao import table`, `--format table`): JSON lines, CSV or
Parquet, one row per response, from a file, a folder (its files, recursively) or a glob.

The user names the columns a trainer of its own does not: `--step COL` (without it the whole
table is one step, 0), `--group COL` (repeatable: a group is the rows of one step with the same
values there, wherever they are in the files) and `--advantage COL` (a logged advantage). A
nested JSON field (or a Parquet struct field) is named with a dot: `--objective reward.acc`.

Objectives by default: every numeric column except the step and group columns, the known
non-rewards (ids, lengths, token counts, advantages, log-probs, times; `NOT_REWARDS`,
`NOT_REWARD_ENDINGS`). The table is read whole (its files into one batch), so that a step spread
over several files (one per rank, say) still makes whole groups.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, UsageError, not_found
from dvao_cli.importers.batch import BOOL, FLOAT, INT, MIXED, Batch, Trainer
from dvao_cli.importers.values import add_record, parse_int, short, to_text
from dvao_cli.objective_names import did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SUFFIXES = (*JSON_SUFFIXES, ".csv", ".parquet")
# known columns that are no reward, whatever their type
NOT_REWARDS = frozenset(
    {
        "id", "uid", "idx", "index", "example_id", "prompt_id", "problem_id", "task_id",
        "request_id", "rollout_id", "trajectory_id", "sample_idx", "group_idx", "epoch", "seed",
        "advantage", "advantages", "logprob", "logprobs", "generation_logprobs", "ref_logprobs",
        "length", "num_tokens", "input_lengths", "prompt_len", "completion_len",
        "response_length", "prompt_tokens", "completion_tokens", "total_tokens", "num_turns",
        "timestamp", "time", "duration", "temperature", "is_truncated", "truncated", "done",
    }
)  # fmt: skip
NOT_REWARD_ENDINGS = ("_id", "_idx", "_index", "_len", "_length", "_lengths", "_tokens", "_time")

TRAINER = Trainer(
    name="table",
    label="table",
    grouping="key",
    completion_key=None,  # "completion" when the table has one (`trainer_for`)
    advantage_key=None,  # --advantage
    not_rewards=NOT_REWARDS,
    text_keys=frozenset(),
    objective_kinds=(FLOAT, INT, BOOL, MIXED),
)


@dataclass(frozen=True)
class TableOptions:
    """The columns a table's rows are keyed by: `--step`, `--group` (one or more),
    `--advantage`."""

    step: str | None = None
    group: tuple[str, ...] = ()
    advantage: str | None = None

    def named(self) -> list[tuple[str, str]]:
        """(option, column) of every column named."""
        out = [] if self.step is None else [("--step", self.step)]
        out += [("--group", g) for g in self.group]
        return out + ([] if self.advantage is None else [("--advantage", self.advantage)])


def check_options(
    options: TableOptions | None, fmt: str, group_size: int | None = None
) -> tuple[str, TableOptions | None]:
    """(format, options): --step, --group and --advantage name a table's columns, so with
    format auto they make it a table; a table needs --group, or --group-size N (its rows in
    blocks of N, in file order, within a step)."""
    named = options.named() if options is not None else []
    if fmt == "auto" and named:
        fmt = "table"
    if fmt == "table":
        if (options is None or not options.group) and group_size is None:
            raise UsageError(
                "a table needs its group key: --group COL (repeatable; the rows of one step "
                "with the same values there are one group), or --group-size N where each "
                "group's N rows follow one another"
            )
        return fmt, options or TableOptions()
    if named:
        raise UsageError(
            f"{named[0][0]} names a column of a table (--format table), not of a {fmt} log"
        )
    return fmt, None


def _natural(path: Path) -> list[Any]:
    """Sort key: numbers in names by value (step_2 before step_10)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def find_files(source: str | Path) -> list[Path]:
    """The table's files: SOURCE itself, its folder's files (recursively, hidden ones left
    out) or a glob's, in natural name order; one format (JSON lines, CSV or Parquet)."""
    import glob

    text = str(source)
    path = Path(text)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = [
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        ]
        if not files:
            raise InputError(
                "no table files here (looked for " + ", ".join(f"*{s}" for s in SUFFIXES) + ")",
                path=path,
            )
    elif any(ch in text for ch in "*?["):
        files = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        if not files:
            raise InputError("the pattern matches no file", path=text)
    else:
        raise not_found(path)
    files = sorted(files, key=_natural)
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        first = {k: next(p for p in files if _kind(p) == k) for k in sorted(kinds)}
        raise InputError(
            "a table is files of one format; these differ: "
            + ", ".join(f"{p} ({k})" for k, p in first.items()),
            path=text,
        )
    return files


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "JSON"
    if suffix == ".csv":
        return "CSV"
    if suffix == ".parquet":
        return "Parquet"
    raise InputError(
        "not a table file (a table is JSON lines, CSV or Parquet: "
        + ", ".join(f"*{s}" for s in SUFFIXES)
        + ")",
        path=path,
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """One file's rows: columns of Python values (JSON, CSV) or Arrow arrays (Parquet)."""

    columns: dict[str, Any]
    n: int
    lines: list[int] | None  # 1-based line of each row (messages)
    source_rows: list[int]  # 0-based line (JSON lines) or row (CSV data rows, Parquet)


def _dig(record: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """A nested field `a.b.c` of a JSON record: (found, value)."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _read_json(path: Path, wanted: Sequence[str]) -> _Rows:
    from dvao_cli.importers.stream import parse_json_line
    from dvao_cli.io import loads_json

    records: list[tuple[int, Any]] = []  # (0-based line, record)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is no part of line 1
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
    if text.lstrip().startswith("["):  # one JSON array of records: row i is its item i
        import json

        try:
            items = loads_json(text, path=path)
        except json.JSONDecodeError as err:
            raise InputError(
                f"malformed JSON ({err.msg} at line {err.lineno})", path=path
            ) from None
        records = list(enumerate(items))
        lines = None
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                records.append((number - 1, parse_json_line(path, number, line)))
        lines = [at + 1 for at, _ in records]
    columns: dict[str, list[Any]] = {}
    for row, (at, record) in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(
                "expected one JSON object per row (a table row)",
                path=path,
                line=at + 1 if lines is not None else None,
            )
        values = dict(record)
        for name in wanted:  # dotted names of nested fields, when asked for
            if name not in values and "." in name:
                found, value = _dig(record, name)
                if found:
                    values[name] = value
        add_record(columns, row, values)
    for name, column in columns.items():  # one-element lists (NeMo-RL writes every value so)
        if any(isinstance(v, list) for v in column) and all(
            v is None or (isinstance(v, list) and len(v) == 1) for v in column
        ):
            columns[name] = [None if v is None else v[0] for v in column]
    return _Rows(columns, len(records), lines, [at for at, _ in records])


def _read_csv(path: Path) -> _Rows:
    columns: dict[str, list[Any]] = {}
    lines: list[int] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return _Rows({}, 0, [], [])
            twice = next((h for h in header if header.count(h) > 1), None)
            if twice is not None:
                raise InputError("named twice in the header", path=path, line=1, column=twice)
            for name in header:
                columns[name] = []
            start = reader.line_num + 1
            for record in reader:
                if not record:  # a blank line
                    start = reader.line_num + 1
                    continue
                if len(record) != len(header):
                    raise InputError(
                        f"{len(record)} fields, but the header names {len(header)}",
                        path=path,
                        line=start,
                    )
                for name, value in zip(header, record, strict=True):
                    columns[name].append(value)
                lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason})", path=path) from None
    except csv.Error as err:
        raise InputError(f"malformed CSV ({err})", path=path) from None
    return _Rows(columns, len(lines), lines, list(range(len(lines))))


def _read_parquet(path: Path, wanted: Sequence[str]) -> _Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dvao_cli.errors import unreadable_parquet

    try:
        table = pq.read_table(str(path))
    except (pa.ArrowException, OSError) as err:
        raise unreadable_parquet(err, path) from None
    # nested fields as dotted names (struct columns flattened), when asked for
    while any(name not in table.column_names and "." in name for name in wanted) and any(
        pa.types.is_struct(field.type) for field in table.schema
    ):
        table = table.flatten()
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    return _Rows(columns, table.num_rows, None, list(range(table.num_rows)))


def _read(path: Path, wanted: Sequence[str]) -> _Rows:
    kind = _kind(path)
    if kind == "JSON":
        return _read_json(path, wanted)
    if kind == "CSV":
        return _read_csv(path)
    return _read_parquet(path, wanted)


def _concat(parts: list[_Rows]) -> dict[str, Any]:
    """The files' columns end to end (a column a file lacks: nulls there)."""
    import pyarrow as pa

    names: list[str] = []
    for part in parts:
        names += [n for n in part.columns if n not in names]
    if parts and not isinstance(next(iter(parts[0].columns.values()), []), list):  # Arrow
        out: dict[str, Any] = {}
        for name in names:
            arrays = [p.columns.get(name) for p in parts]
            types = [a.type for a in arrays if a is not None and not pa.types.is_null(a.type)]
            dtype = types[0] if types else pa.null()
            if len(set(types)) > 1 and all(_is_number(t) for t in types):
                dtype = pa.float64()  # int64 in one file, double in another: numbers alike
            pieces = []
            for part, array in zip(parts, arrays, strict=True):
                if array is None or pa.types.is_null(array.type):
                    pieces.append(pa.nulls(part.n, type=dtype))
                else:
                    pieces.append(array)
            try:
                out[name] = pa.concat_arrays([a.cast(dtype) for a in pieces])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                other = next(a.type for a in pieces if a.type != dtype)
                raise InputError(
                    f"type {other} in one file but {dtype} in another", column=name
                ) from None
        return out
    lists: dict[str, list[Any]] = {}
    for name in names:
        values: list[Any] = []
        for part in parts:
            column = part.columns.get(name)
            values.extend(column if column is not None else [None] * part.n)
        lists[name] = values
    return lists


def _is_number(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype)


def read_table(files: Sequence[Path], options: TableOptions, objectives: Sequence[str]) -> Batch:
    """The table's files as one batch: steps from --step (0 without it), the group key (the
    --group values) as the batch's prompt."""
    wanted = [column for _, column in options.named()] + list(objectives)
    parts = [_read(path, wanted) for path in files]
    columns = _concat(parts)
    where = files[0] if len(files) == 1 else Path(str(files[0].parent))
    for option, column in options.named():
        if column not in columns:
            raise InputError(
                f"no such column (named by {option})" + did_you_mean(column, list(columns)),
                path=where,
                column=column,
            )
    file_of_row = [i for i, part in enumerate(parts) for _ in range(part.n)]
    lines = None
    if all(part.lines is not None for part in parts):
        lines = [line for part in parts for line in part.lines or []]
    batch = Batch(
        path=files[0],
        step=[],
        prompt=[],
        columns=columns,
        lines=lines,
        source_rows=[row for part in parts for row in part.source_rows],
        files=list(files),
        file_of_row=file_of_row,
    )
    n = len(file_of_row)
    batch.step = _steps(batch, options.step, n)
    batch.prompt = _group_keys(batch, options.group)
    # the step is the batch's step; a lone `prompt` group column is the batch's prompt
    drop = {options.step} if options.step is not None else set()
    if options.group == ("prompt",):
        drop.add("prompt")
    batch.columns = {k: v for k, v in columns.items() if k not in drop}
    return batch


def _values(batch: Batch, column: str) -> list[Any]:
    values = batch.columns[column]
    return values if isinstance(values, list) else values.to_pylist()


def _steps(batch: Batch, column: str | None, n: int) -> list[int]:
    if column is None:
        return [0] * n
    steps: list[int] = []
    for i, value in enumerate(_values(batch, column)):
        step = parse_int(value)
        if step is None:
            what = "no step (null)" if value is None else f"not an integer step: {short(value)}"
            raise InputError(what, column=column, **batch.where(i))
        steps.append(step)
    return steps


def _group_keys(batch: Batch, columns: Sequence[str]) -> list[Any]:
    """Each row's group key: the value of the one --group column, or the values of several as
    JSON text ("" without --group: --group-size cuts each step's rows into blocks). A null key
    is refused: those rows would silently form one group."""
    if not columns:
        return [""] * batch.rows
    lists = [_values(batch, c) for c in columns]
    for column, values in zip(columns, lists, strict=True):
        if None in values:
            row = values.index(None)
            raise InputError(
                "no group key (null) for a response: every row needs one (the rows without "
                "one would silently form one group)",
                column=column,
                **batch.where(row),
            )
    if len(lists) == 1:
        return lists[0]
    return [to_text(list(key)) for key in zip(*lists, strict=True)]


def trainer_for(batch: Batch, options: TableOptions) -> Trainer:
    """The table's Trainer: the named columns and the known non-rewards are never default
    objectives; `completion` (when there is one) is the completion."""
    names = set(batch.columns)
    not_rewards = set(NOT_REWARDS) | set(options.group)
    not_rewards |= {n for n in names if n.endswith(NOT_REWARD_ENDINGS) or n.startswith("num_")}
    return replace(
        TRAINER,
        completion_key="completion" if "completion" in names else None,
        advantage_key=options.advantage,
        not_rewards=frozenset(not_rewards),
    )

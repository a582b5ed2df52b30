"""What every trainer importer shares: value coercion, group rebuilding, the streaming writer.

An importer turns each unit of a trainer's dump (a TRL file, a verl file, a line of ms-swift's
`completions.jsonl`) into a `Batch`: per-row `step` and `prompt`, plus the other columns by
name, as Python lists (JSON formats) or Arrow arrays (Parquet). `import_batches` then picks the
objectives on the first batch, checks every later batch against it, rebuilds the groups, sorts
each batch by (step, group) and streams it into one Parquet file written atomically.

Memory holds one batch (one trainer file or line) plus a write buffer, never the whole log.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, UsageError
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.format import GROUP, LOGGED, METADATA_KEY, RESERVED, SAMPLE, STEP

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Columns of the dvao log format beyond those of dvao_cli.reader.format (docs/log-format.md).
PROMPT = "prompt"
COMPLETION = "completion"
RENAME_PREFIX = "raw_"  # a trainer column whose name is reserved is kept as raw_<name>
ROWS_PER_ROW_GROUP = 65_536
BYTES_PER_WRITE = 64 << 20  # flush the write buffer at this size (text dominates the bytes)

# Kinds of a column, decided from its values (JSON) or its Arrow type (Parquet).
FLOAT, INT, BOOL, STRING, MIXED, NULL, OTHER = (
    "float",
    "int",
    "bool",
    "string",
    "mixed",
    "null",
    "other",
)
NUMERIC_KINDS = (FLOAT, INT, BOOL, NULL)

_NULL_TEXT = {"none", "null", ""}
_TRUE_TEXT = {"true"}
_FALSE_TEXT = {"false"}
_NUMBER_RE = re.compile(
    r"^\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|nan|inf|infinity)\s*$", re.I
)


@dataclass
class Batch:
    """One unit of a trainer's dump, with its rows in file order.

    `columns` maps every other column (completion, rewards, advantages, extras) to a list of
    Python values (JSON formats) or an Arrow array (Parquet), each of length `len(step)`.
    `lines[i]` is the line of row i in the file (verl); `line` the line of the whole batch
    (ms-swift). They only serve error messages.
    """

    path: Path
    step: list[int]
    prompt: list[Any]
    columns: dict[str, Any]
    lines: list[int] | None = None
    line: int | None = None

    @property
    def rows(self) -> int:
        return len(self.step)

    def where(self, row: int | None = None) -> dict[str, Any]:
        """`path=`/`line=` keyword arguments for an error about `row` (or the whole batch)."""
        if self.lines is not None and row is not None and row < len(self.lines):
            return {"path": self.path, "line": self.lines[row]}
        return {"path": self.path, "line": self.line}


@dataclass
class Trainer:
    """How one trainer's columns map onto the dvao log format."""

    name: str  # "trl", "verl", "swift"
    label: str  # "TRL", "verl", "ms-swift"
    grouping: str  # "runs": consecutive rows with one prompt; "key": same (step, prompt) anywhere
    completion_key: str | None  # the trainer's column that becomes `completion`
    advantage_key: str | None  # the trainer's column that becomes `logged_advantage`
    not_rewards: frozenset[str]  # known columns that are never objectives by default
    text_keys: frozenset[str]  # known columns always kept as text
    objective_kinds: tuple[str, ...]  # kinds that make a column a default objective


@dataclass
class ImportReport:
    """What an import read and wrote (rendered by the command, also as --json)."""

    format: str
    source: str
    out: str
    files: int = 0
    batches: int = 0
    rows: int = 0
    steps: int = 0
    groups: int = 0
    group_sizes: dict[int, int] = field(default_factory=dict)  # size -> number of groups
    objectives: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    logged_advantage: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # trainer column -> output column
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (not rows)
    missing_rewards: dict[str, int] = field(default_factory=dict)  # objective -> null/NaN rows
    grouping: str = ""
    reordered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "out": self.out,
            "files": self.files,
            "batches": self.batches,
            "rows": self.rows,
            "steps": self.steps,
            "groups": self.groups,
            "group_sizes": {str(k): v for k, v in sorted(self.group_sizes.items())},
            "objectives": list(self.objectives),
            "extra_columns": list(self.extra_columns),
            "logged_advantage": self.logged_advantage,
            "renamed": dict(self.renamed),
            "dropped": dict(self.dropped),
            "skipped": dict(self.skipped),
            "missing_rewards": dict(self.missing_rewards),
            "grouping": self.grouping,
            "reordered": self.reordered,
        }


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def parse_int(value: Any) -> int | None:
    """A step: an int, an integral float or a string of digits ("12"); None when it is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return None


def value_kind(value: Any) -> str:
    """The kind of one JSON value; strings written by `default=str` count as what they spell."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _NULL_TEXT:
            return NULL
        if low in _TRUE_TEXT or low in _FALSE_TEXT:
            return BOOL
        if _NUMBER_RE.match(value):
            return INT if re.fullmatch(r"\s*[-+]?\d+\s*", value) else FLOAT
        return STRING
    return OTHER  # lists, dicts


def list_kind(values: Iterable[Any]) -> tuple[str, int | None]:
    """The kind of a JSON column and, for a MIXED one, the index of its first text value."""
    kinds: set[str] = set()
    first_text: int | None = None
    for i, value in enumerate(values):
        kind = value_kind(value)
        if kind in (STRING, OTHER) and first_text is None:
            first_text = i
        kinds.add(kind)
    kinds.discard(NULL)
    if not kinds:
        return NULL, None
    if kinds <= {FLOAT, INT, BOOL}:
        if kinds == {BOOL}:
            return BOOL, None
        return (INT if kinds <= {INT, BOOL} and INT in kinds else FLOAT), None
    if kinds & {FLOAT, INT, BOOL}:
        return MIXED, first_text
    return (STRING if kinds == {STRING} else OTHER), None


def arrow_kind(array: pa.Array | pa.ChunkedArray) -> str:
    import pyarrow as pa

    t = array.type
    if pa.types.is_floating(t):
        return FLOAT
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STRING
    if pa.types.is_null(t):
        return NULL
    return OTHER


def column_kind(values: Any) -> tuple[str, int | None]:
    if isinstance(values, list):
        return list_kind(values)
    return arrow_kind(values), None


def to_float(value: Any) -> float | None:
    """A reward: numbers, bools (1/0) and numeric text; None for null. Raises ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _NULL_TEXT:
            return None
        if low in _TRUE_TEXT:
            return 1.0
        if low in _FALSE_TEXT:
            return 0.0
        if _NUMBER_RE.match(value):
            return float(value)
    raise ValueError(value)


def to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# --------------------------------------------------------------------------------------------
# The output schema, decided on the first batch
# --------------------------------------------------------------------------------------------


@dataclass
class Layout:
    """Which trainer column becomes which output column, with its Arrow type."""

    trainer: Trainer
    first: Batch
    objectives: list[str]  # output names
    extras: list[str]  # output names
    source_of: dict[str, str]  # output name -> trainer column
    extra_types: dict[str, pa.DataType]
    completion: bool
    logged: bool
    renamed: dict[str, str]

    def schema(self, metadata: dict[str, Any], text: bool = True) -> pa.Schema:
        """The output schema; without `text`, no prompt, completion or text extra column."""
        import pyarrow as pa

        fields = [
            pa.field(STEP, pa.int64()),
            pa.field(GROUP, pa.int64()),
            pa.field(SAMPLE, pa.int64()),
        ]
        if text:
            fields += [pa.field(PROMPT, pa.string()), pa.field(COMPLETION, pa.string())]
        fields += [pa.field(name, pa.float64()) for name in self.objectives]
        if self.logged:
            fields.append(pa.field(LOGGED, pa.float64()))
        fields.extend(pa.field(name, self.extra_types[name]) for name in self.kept_extras(text))
        return pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata).encode()})

    def kept_extras(self, text: bool) -> list[str]:
        import pyarrow as pa

        return [n for n in self.extras if text or not pa.types.is_string(self.extra_types[n])]


def _output_name(column: str) -> str:
    return RENAME_PREFIX + column if column in RESERVED else column


def _bad_value_error(
    batch: Batch, column: str, values: list[Any], index: int, why: str
) -> InputError:
    return InputError(
        f"{why}: {short(values[index])} (row {index + 1})", column=column, **batch.where(index)
    )


def plan_layout(trainer: Trainer, batch: Batch, objectives: Sequence[str] | None) -> Layout:
    """Pick the objectives and the extra columns from the first batch."""
    import pyarrow as pa

    fixed = {trainer.completion_key, trainer.advantage_key}
    candidates = [name for name in batch.columns if name not in fixed]
    kinds = {name: column_kind(batch.columns[name]) for name in candidates}
    numeric = [n for n in candidates if kinds[n][0] in NUMERIC_KINDS or kinds[n][0] == MIXED]

    chosen: list[str] = []
    if objectives:
        for name in objectives:
            if name not in batch.columns or name in fixed:
                raise InputError(
                    "no such reward column" + did_you_mean(name, numeric),
                    path=batch.path,
                    column=name,
                )
            kind, first_text = kinds[name]
            if kind == MIXED and first_text is not None:
                raise _bad_value_error(
                    batch,
                    name,
                    batch.columns[name],
                    first_text,
                    "an objective must be numeric, found",
                )
            if kind not in NUMERIC_KINDS:
                raise InputError(
                    f"an objective must be numeric, but this {trainer.label} column holds text",
                    path=batch.path,
                    column=name,
                )
            if name not in chosen:
                chosen.append(name)
    else:
        for name in candidates:
            kind, first_text = kinds[name]
            if name in trainer.not_rewards or name in trainer.text_keys:
                continue
            if kind == MIXED and MIXED in trainer.objective_kinds and first_text is not None:
                raise _bad_value_error(
                    batch,
                    name,
                    batch.columns[name],
                    first_text,
                    "a reward column holds a value that is not a number (pick the objectives "
                    "with --objective to keep this column as text)",
                )
            if kind in trainer.objective_kinds:
                chosen.append(name)
        if not chosen:
            raise InputError(
                f"no reward columns found in this {trainer.label} log (a reward column is numeric; "
                "name the objectives with --objective)",
                path=batch.path,
            )

    extras = [n for n in candidates if n not in chosen]
    extra_types: dict[str, pa.DataType] = {}
    renamed: dict[str, str] = {}
    source_of: dict[str, str] = {}
    for name in [*chosen, *extras]:
        out = _output_name(name)
        if out != name:
            renamed[name] = out
        source_of[out] = name
    for name in extras:
        values = batch.columns[name]
        kind = kinds[name][0]
        if not isinstance(values, list):  # Arrow: keep the type (strings as plain strings)
            extra_types[_output_name(name)] = pa.string() if kind in (STRING, NULL) else values.type
        elif name in trainer.text_keys or kind in (STRING, MIXED, OTHER, NULL):
            extra_types[_output_name(name)] = pa.string()
        elif kind == BOOL:
            extra_types[_output_name(name)] = pa.bool_()
        else:  # numbers from JSON: float64 holds ints and floats alike across files
            extra_types[_output_name(name)] = pa.float64()
    return Layout(
        trainer=trainer,
        first=batch,
        objectives=[_output_name(n) for n in chosen],
        extras=[_output_name(n) for n in extras],
        source_of=source_of,
        extra_types=extra_types,
        completion=trainer.completion_key is not None and trainer.completion_key in batch.columns,
        logged=trainer.advantage_key is not None and trainer.advantage_key in batch.columns,
        renamed=renamed,
    )


def check_columns(layout: Layout, batch: Batch) -> None:
    """A later batch must hold the first batch's objectives and no column it lacked."""
    first = layout.first.path
    known = set(layout.source_of.values()) | {
        layout.trainer.completion_key,
        layout.trainer.advantage_key,
    }
    for name in batch.columns:
        if name not in known:
            raise InputError(
                f"present here but not in {first} (mixed columns across files: "
                "import the runs separately)",
                column=name,
                **batch.where(),
            )
    for out in layout.objectives:
        name = layout.source_of[out]
        if name not in batch.columns:
            raise InputError(
                f"reward column missing here but present in {first} (mixed reward columns "
                "across files: import the runs separately)",
                column=name,
                **batch.where(),
            )
    for flag, key in (
        (layout.logged, layout.trainer.advantage_key),
        (layout.completion, layout.trainer.completion_key),
    ):
        if key is not None and (key in batch.columns) != flag:
            where = "missing here but present" if flag else "present here but missing"
            raise InputError(f"{where} in {first}", column=key, **batch.where())


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


@dataclass
class GroupState:
    """Carried across batches: the next group id of each step and the group size in force."""

    group_size: int | None  # --group-size
    ragged: bool
    expected: int | None = None  # the size of every group so far (without --ragged)
    expected_from: str = ""
    next_id: dict[int, int] = field(default_factory=dict)
    sizes: Counter[int] = field(default_factory=Counter)
    steps: set[int] = field(default_factory=set)
    groups: int = 0


def _runs(batch: Batch) -> list[list[int]]:
    """Maximal runs of consecutive rows with the same step and prompt."""
    groups: list[list[int]] = []
    step, prompt = batch.step, batch.prompt
    for i in range(batch.rows):
        if i and step[i] == step[i - 1] and prompt[i] == prompt[i - 1]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _by_key(batch: Batch) -> list[list[int]]:
    """Rows with the same (step, prompt), wherever they are, in order of first appearance."""
    index: dict[tuple[int, Any], list[int]] = {}
    for i, (step, prompt) in enumerate(zip(batch.step, batch.prompt, strict=True)):
        key = (step, _hashable(prompt))
        rows = index.get(key)
        if rows is None:
            index[key] = [i]
        else:
            rows.append(i)
    return list(index.values())


def _blocks(batch: Batch, size: int, grouping: str) -> list[list[int]]:
    """Fixed blocks of `size` rows: of each step's rows (runs) or of each prompt's rows (key)."""
    blocks: list[list[int]] = []
    if grouping == "key":
        for rows in _by_key(batch):
            if len(rows) % size:
                step = batch.step[rows[0]]
                raise InputError(
                    f"step {step}: a prompt has {len(rows)} responses, not a multiple of "
                    f"--group-size {size}",
                    column=PROMPT,
                    **batch.where(rows[0]),
                )
            blocks.extend(rows[i : i + size] for i in range(0, len(rows), size))
        return blocks
    start = 0
    while start < batch.rows:  # one pass per contiguous run of a step
        end = start
        while end < batch.rows and batch.step[end] == batch.step[start]:
            end += 1
        if (end - start) % size:
            raise InputError(
                f"step {batch.step[start]} has {end - start} rows, not a multiple of "
                f"--group-size {size}",
                column=STEP,
                **batch.where(start),
            )
        for b in range(start, end, size):
            prompts = {_hashable(batch.prompt[i]) for i in range(b, b + size)}
            if len(prompts) > 1:
                raise InputError(
                    f"step {batch.step[start]}: the block of --group-size {size} rows starting "
                    f"at row {b + 1} holds {len(prompts)} different prompts "
                    "(is the group size right?)",
                    column=PROMPT,
                    **batch.where(b),
                )
            blocks.append(list(range(b, b + size)))
        start = end
    return blocks


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, type(None))) else to_text(value)


def _sizes_text(sizes: Counter[int]) -> str:
    parts = [f"{n} group{'s' if n != 1 else ''} of {s}" for s, n in sorted(sizes.items())]
    return ", ".join(parts)


def assign_groups(
    batch: Batch, grouping: str, state: GroupState
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rebuild the groups of one batch.

    Returns `order` (N,) the rows sorted by (step, group) with each group in file order, and
    for the sorted rows `step` (N,), `group_id` (N,) and `sample_id` (N,). Group ids count up
    from 0 within a step, in order of first appearance, continuing across batches.
    """
    import numpy as np

    if None in batch.prompt:  # a null prompt would join every other one in a group
        row = batch.prompt.index(None)
        raise InputError(
            "no prompt (null) for a response: groups are rebuilt from the prompts, so every "
            "row needs one (the rows without one would silently form one group)",
            column=PROMPT,
            **batch.where(row),
        )
    if state.group_size is not None:
        groups = _blocks(batch, state.group_size, grouping)
    else:
        groups = _runs(batch) if grouping == "runs" else _by_key(batch)

    sizes = Counter(len(g) for g in groups)
    if state.group_size is None and not state.ragged:
        expected = state.expected if state.expected is not None else len(groups[0])
        odd = next((g for g in groups if len(g) != expected), None)
        if odd is not None:
            step = batch.step[odd[0]]
            earlier = (
                f"; earlier groups have {expected} rows ({state.expected_from})"
                if state.expected is not None
                else ""
            )
            raise InputError(
                f"step {step}: inconsistent group sizes: {_sizes_text(sizes)}{earlier}. "
                "Pass --group-size N to cut fixed blocks of N rows, or --ragged to keep the "
                "groups as they are",
                **batch.where(odd[0]),
            )
        if state.expected is None:
            state.expected = expected
            state.expected_from = f"{batch.path}" + (f":{batch.line}" if batch.line else "")

    # group ids per step, in order of first appearance (groups are listed in that order)
    keyed: list[tuple[int, int, list[int]]] = []
    for rows in groups:
        step = batch.step[rows[0]]
        gid = state.next_id.get(step, 0)
        state.next_id[step] = gid + 1
        keyed.append((step, gid, rows))
    keyed.sort(key=lambda t: (t[0], t[1]))
    state.sizes.update(sizes)
    state.groups += len(groups)
    state.steps.update(t[0] for t in keyed)

    n = batch.rows
    order = np.empty(n, dtype=np.int64)
    steps = np.empty(n, dtype=np.int64)
    gids = np.empty(n, dtype=np.int64)
    samples = np.empty(n, dtype=np.int64)
    at = 0
    for step, gid, rows in keyed:
        k = len(rows)
        order[at : at + k] = rows
        steps[at : at + k] = step
        gids[at : at + k] = gid
        samples[at : at + k] = np.arange(k)
        at += k
    return order, steps, gids, samples


# --------------------------------------------------------------------------------------------
# Columns of one batch, in output order
# --------------------------------------------------------------------------------------------


def _take(values: Any, order: np.ndarray) -> Any:
    import pyarrow as pa

    if isinstance(values, list):
        return [values[i] for i in order]
    return values.take(pa.array(order))


def _float_column(batch: Batch, column: str, values: Any, order: np.ndarray) -> pa.Array:
    import pyarrow as pa

    if not isinstance(values, list):
        try:
            return values.take(pa.array(order)).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(
                f"must be numeric here as in the first file, found {values.type}",
                column=column,
                **batch.where(),
            ) from None
    out: list[float | None] = []
    for i in order:
        try:
            out.append(to_float(values[i]))
        except ValueError:
            raise _bad_value_error(batch, column, values, int(i), "not a number") from None
    return pa.array(out, type=pa.float64())


def _text_column(values: Any, order: np.ndarray) -> pa.Array:
    import pyarrow as pa

    if isinstance(values, list):
        return pa.array([to_text(values[i]) for i in order], type=pa.string())
    taken = values.take(pa.array(order))
    kind = arrow_kind(taken)
    if kind in (STRING, NULL):
        return taken.cast(pa.string())
    return pa.array([to_text(v) for v in taken.to_pylist()], type=pa.string())


def _extra_column(
    batch: Batch, column: str, values: Any, order: np.ndarray, dtype: pa.DataType
) -> pa.Array:
    import pyarrow as pa

    if pa.types.is_string(dtype):
        return _text_column(values, order)
    if pa.types.is_float64(dtype) and isinstance(values, list):
        return _float_column(batch, column, values, order)
    if pa.types.is_boolean(dtype) and isinstance(values, list):
        out: list[bool | None] = []
        for i in order:
            kind = value_kind(values[i])
            if kind == NULL:
                out.append(None)
            elif kind == BOOL:
                v = values[i]
                out.append(v if isinstance(v, bool) else v.strip().lower() == "true")
            else:
                raise _bad_value_error(
                    batch, column, values, int(i), "not true/false as in the first file"
                )
        return pa.array(out, type=pa.bool_())
    try:
        return _take(values, order).cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise InputError(
            f"type {values.type} here cannot be read as {dtype}, its type in the first file",
            column=column,
            **batch.where(),
        ) from None


def batch_table(
    layout: Layout, batch: Batch, state: GroupState, schema: pa.Schema, text: bool = True
) -> pa.Table:
    """One batch as an Arrow table in the output schema, sorted by (step, group)."""
    import pyarrow as pa

    order, steps, gids, samples = assign_groups(batch, layout.trainer.grouping, state)
    n = batch.rows
    arrays: list[pa.Array] = [
        pa.array(steps, type=pa.int64()),
        pa.array(gids, type=pa.int64()),
        pa.array(samples, type=pa.int64()),
    ]
    ckey = layout.trainer.completion_key
    if text:
        arrays.append(pa.array([to_text(batch.prompt[i]) for i in order], type=pa.string()))
        if layout.completion and ckey is not None:
            arrays.append(_text_column(batch.columns[ckey], order))
        else:
            arrays.append(pa.nulls(n, type=pa.string()))
    for out in layout.objectives:
        name = layout.source_of[out]
        arrays.append(_float_column(batch, name, batch.columns[name], order))
    akey = layout.trainer.advantage_key
    if layout.logged and akey is not None:
        arrays.append(_float_column(batch, akey, batch.columns[akey], order))
    for out in layout.kept_extras(text):
        name = layout.source_of[out]
        dtype = layout.extra_types[out]
        if name in batch.columns:
            arrays.append(_extra_column(batch, name, batch.columns[name], order, dtype))
        else:  # an extra column this batch lacks: nulls
            arrays.append(pa.nulls(n, type=dtype))
    return pa.Table.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------------------------
# The streaming import
# --------------------------------------------------------------------------------------------


def import_batches(
    trainer: Trainer,
    batches: Iterator[Batch],
    tmp: Path | None,
    report: ImportReport,
    *,
    objectives: Sequence[str] | None,
    group_size: int | None,
    ragged: bool,
) -> bytes | None:
    """Stream `batches` into the Parquet file `tmp` and fill `report`. With `tmp` None the file
    is built in memory, without the text columns (see `Layout.schema`), and returned."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if group_size is not None and group_size < 1:
        raise UsageError(f"--group-size must be at least 1, not {group_size}")
    state = GroupState(group_size=group_size, ragged=ragged)
    text = tmp is not None
    sink: Any = str(tmp) if tmp is not None else pa.BufferOutputStream()
    layout: Layout | None = None
    schema: pa.Schema | None = None
    writer: pq.ParquetWriter | None = None
    buffer: list[pa.Table] = []
    buffered = 0
    buffered_bytes = 0
    last_step: int | None = None  # the largest step written so far
    ordered = True  # every batch's steps follow the previous batches' steps
    missing: Counter[str] = Counter()
    step_batches: Counter[int] = Counter()

    def flush() -> None:
        nonlocal buffer, buffered, buffered_bytes
        if buffer and writer is not None:
            writer.write_table(pa.concat_tables(buffer), row_group_size=ROWS_PER_ROW_GROUP)
        buffer, buffered, buffered_bytes = [], 0, 0

    try:
        for batch in batches:
            report.batches += 1
            if batch.rows == 0:
                report.skipped["empty files or lines"] = (
                    report.skipped.get("empty files or lines", 0) + 1
                )
                continue
            if layout is None:
                layout = plan_layout(trainer, batch, objectives)
                metadata = {
                    "format": trainer.name,
                    "objectives": layout.objectives,
                    "extra_columns": layout.extras,
                    "group_size": group_size,
                    "grouping": trainer.grouping if group_size is None else "blocks",
                    "source": report.source,
                }
                schema = layout.schema(metadata, text)
                writer = pq.ParquetWriter(sink, schema, compression="zstd")
            else:
                check_columns(layout, batch)
            assert schema is not None
            table = batch_table(layout, batch, state, schema, text)
            steps = table.column(STEP)
            lo, hi = pc.min(steps).as_py(), pc.max(steps).as_py()
            if last_step is not None and lo < last_step:
                ordered = False
            for s in set(batch.step):
                step_batches[s] += 1
            last_step = hi if last_step is None else max(last_step, hi)
            for out in layout.objectives:
                col = table.column(out)
                bad = col.null_count + int(pc.sum(pc.is_nan(col.fill_null(0.0))).as_py() or 0)
                if bad:
                    missing[out] += bad
            report.rows += table.num_rows
            buffer.append(table)
            buffered += table.num_rows
            buffered_bytes += table.nbytes
            if buffered >= ROWS_PER_ROW_GROUP or buffered_bytes >= BYTES_PER_WRITE:
                flush()
        if layout is None or writer is None:
            raise InputError(f"the {trainer.label} log holds no rows", path=report.source)
        flush()
    finally:
        if writer is not None:
            writer.close()

    data = sink.getvalue().to_pybytes() if tmp is None else None
    if not ordered:
        # steps came out of order (e.g. a resumed run appended earlier steps again): sort the
        # whole file once; rare, and the file holds only what was imported
        table = pq.read_table(str(tmp) if tmp is not None else pa.BufferReader(data))
        keys = np.lexsort(
            (
                table.column(SAMPLE).to_numpy(),
                table.column(GROUP).to_numpy(),
                table.column(STEP).to_numpy(),
            )
        )
        table = table.take(pa.array(keys))
        sink = str(tmp) if tmp is not None else pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", row_group_size=ROWS_PER_ROW_GROUP)
        data = sink.getvalue().to_pybytes() if tmp is None else None
        report.reordered = True
    repeated = sum(1 for n in step_batches.values() if n > 1)
    if repeated and trainer.grouping != "key":
        report.skipped["steps logged more than once (groups kept, numbered on)"] = repeated

    report.objectives = list(layout.objectives)
    report.extra_columns = list(layout.extras)
    report.logged_advantage = layout.logged
    report.renamed = dict(layout.renamed)
    report.steps = len(state.steps)
    report.groups = state.groups
    report.group_sizes = dict(sorted(state.sizes.items()))
    report.missing_rewards = dict(missing)
    report.grouping = (
        f"fixed blocks of {group_size} rows"
        if group_size is not None
        else (
            "runs of consecutive rows with one prompt within a step"
            if trainer.grouping == "runs"
            else "rows with the same (step, prompt)"
        )
    )
    return data


def parse_json_line(path: Path, number: int, line: str) -> Any:
    """One JSON line of a trainer's dump; a truncated or malformed one is an InputError naming
    the file and the line."""
    from dvao_cli.io import loads_json

    try:
        return loads_json(line, path=path, line=number, what="line")
    except json.JSONDecodeError as err:
        raise InputError(
            f"truncated or malformed JSON line ({err.msg} at column {err.colno})",
            path=path,
            line=number,
        ) from None

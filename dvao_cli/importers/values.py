"""Values from a trainer's dump: ints, floats and text coerced; kinds decided from values or
Arrow types."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Any

from dvao_cli.importers.batch import BOOL, FLOAT, INT, MIXED, NULL, OTHER, STRING

if TYPE_CHECKING:
    import pyarrow as pa

_NULL_TEXT = {"none", "null", ""}
_TRUE_TEXT = {"true"}
_FALSE_TEXT = {"false"}
_NUMBER_RE = re.compile(
    r"^\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|nan|inf|infinity)\s*$", re.I
)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # a step is stored as int64


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return None


def parse_int(value: Any) -> int | None:
    """A step: an int, an integral float or a string of digits ("12") within int64; None when
    it is not (`step_problem` says why)."""
    n = _integer(value)
    return n if n is not None and INT64_MIN <= n <= INT64_MAX else None


def step_problem(value: Any) -> str:
    """Why `value` is not a step (`parse_int` returned None)."""
    if _integer(value) is not None:
        return f"step {short(value)} is past the int64 range a step must fit in"
    return f"not an integer step: {short(value)}"


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
    kind = combined_kind(kinds)
    return kind, first_text if kind == MIXED else None


def combined_kind(kinds: Iterable[str]) -> str:
    """The kind of a column whose values (or parts: batches, files) have these kinds: nulls
    say nothing, ints and floats make floats, numbers beside text make MIXED."""
    found = set(kinds) - {NULL}
    if not found:
        return NULL
    if MIXED in found:
        return MIXED
    if found <= {FLOAT, INT, BOOL}:
        if found == {BOOL}:
            return BOOL
        return INT if found <= {INT, BOOL} and INT in found else FLOAT
    if found & {FLOAT, INT, BOOL}:
        return MIXED
    return STRING if found == {STRING} else OTHER


def arrow_kind(array: pa.Array | pa.ChunkedArray) -> str:
    return type_kind(array.type)


def type_kind(t: pa.DataType) -> str:
    """The kind of an Arrow type (a Parquet file's column)."""
    import pyarrow as pa

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


def add_record(
    columns: dict[str, list[Any]], row: int, record: dict[str, Any], skip: Container[str] = ()
) -> None:
    """Append one JSON record as row `row` of `columns` (its keys but `skip`): a key first seen
    here gets None in the rows above, a key this record lacks gets None here."""
    for key, value in record.items():
        if key in skip:
            continue
        values = columns.get(key)
        if values is None:
            values = columns[key] = [None] * row
        values.append(value)
    for values in columns.values():
        if len(values) == row:
            values.append(None)

"""Columns of one batch, in output order."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError
from dvao_cli.importers.batch import BOOL, NULL, STRING, Batch
from dvao_cli.importers.groups import GroupState, assign_groups
from dvao_cli.importers.layout import Layout, _bad_value_error
from dvao_cli.importers.source import source_arrays
from dvao_cli.importers.values import arrow_kind, to_float, to_text, value_kind

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

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
                f"must be numeric here as elsewhere in the log, found {values.type}",
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
                    batch, column, values, int(i), "not true/false as elsewhere in the log"
                )
        return pa.array(out, type=pa.bool_())
    try:
        return _take(values, order).cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise InputError(
            f"type {values.type} here cannot be read as {dtype}, its type elsewhere in the log",
            column=column,
            **batch.where(),
        ) from None


def batch_table(
    layout: Layout,
    batch: Batch,
    state: GroupState,
    schema: pa.Schema,
    text: bool = True,
    root: Path = Path(),
) -> pa.Table:
    """One batch as an Arrow table in the output schema, sorted by (step, group); `root` is
    the folder its `source_file` names are relative to."""
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
        if name in batch.columns:
            arrays.append(_float_column(batch, name, batch.columns[name], order))
        else:  # a reward this batch lacks (it appears in other files): missing rewards
            arrays.append(pa.nulls(n, type=pa.float64()))
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
    arrays.extend(source_arrays(batch, order, root, layout.trainer.lists))
    return pa.Table.from_arrays(arrays, schema=schema)

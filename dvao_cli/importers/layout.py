"""The output schema of an import: objectives, extra columns and their types."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError
from dvao_cli.importers.batch import (
    BOOL,
    COMPLETION,
    MIXED,
    NULL,
    NUMERIC_KINDS,
    OTHER,
    PROMPT,
    RENAME_PREFIX,
    STRING,
    Batch,
    Trainer,
)
from dvao_cli.importers.source import source_fields
from dvao_cli.importers.values import column_kind, short
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.format import GROUP, LOGGED, METADATA_KEY, RESERVED, SAMPLE, STEP

if TYPE_CHECKING:
    import pyarrow as pa

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
        fields.extend(source_fields(self.trainer))
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

"""The output schema of an import: objectives, extra columns and their types."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from dvao_cli.importers.values import column_kind, combined_kind, short, type_kind
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.format import GROUP, LOGGED, METADATA_KEY, RESERVED, SAMPLE, STEP

if TYPE_CHECKING:
    import pyarrow as pa

# --------------------------------------------------------------------------------------------
# The columns of the whole log, then the output schema
# --------------------------------------------------------------------------------------------


@dataclass
class Survey:
    """Every column of a trainer's log over all its files (a first pass, before any row is
    written): the objectives and types come from the whole log, never from its first file,
    which may type a reward int or null, hold it null in every row, or lack it."""

    kinds: dict[str, str] = field(default_factory=dict)  # column -> kind, in order of appearance
    first: dict[str, Path] = field(default_factory=dict)  # column -> the first file holding it
    types: dict[str, Any] = field(default_factory=dict)  # Parquet: column -> first non-null type
    text_at: dict[str, tuple[dict[str, Any], Any, int]] = field(default_factory=dict)
    # column -> (where, value, row) of its first text value (for a MIXED column's error)
    path: Path | None = None  # the first file
    arrow: bool = False  # from Parquet schemas (types kept), else from JSON values

    def add(self, path: Path, kinds: dict[str, str], types: dict[str, Any] | None = None) -> None:
        if self.path is None:
            self.path = path
        for name, kind in kinds.items():
            self.first.setdefault(name, path)
            self.kinds[name] = combined_kind([self.kinds.get(name, NULL), kind])
            if types is not None and kind != NULL:
                self.types.setdefault(name, types[name])

    def add_batch(self, batch: Batch, text: Iterable[str] = ()) -> None:
        """A batch of Python values (JSON formats). The `text` columns (the completion, the
        trainer's text keys: the plan holds them as text whatever their values) are noted as
        text without a look at their values, which are most of a batch's bytes."""
        kinds: dict[str, str] = {}
        skip = set(text)
        for name, values in batch.columns.items():
            if name in skip:
                kinds[name] = STRING
                continue
            kind, first_text = column_kind(values)
            kinds[name] = kind
            if first_text is not None and name not in self.text_at:
                self.text_at[name] = (batch.where(first_text), values[first_text], first_text)
        self.add(batch.path, kinds)


def survey_batches(batches: Iterable[Batch]) -> Survey:
    survey = Survey()
    for batch in batches:
        survey.add_batch(batch)
    return survey


def survey_schemas(schemas: Iterable[tuple[Path, pa.Schema]], skip: Sequence[str]) -> Survey:
    """The survey of Parquet files from their schemas alone (no row read)."""
    survey = Survey(arrow=True)
    for path, schema in schemas:
        names = [n for n in schema.names if n not in skip]
        types = {n: schema.field(n).type for n in names}
        survey.add(path, {n: type_kind(t) for n, t in types.items()}, types)
    return survey


@dataclass
class Layout:
    """Which trainer column becomes which output column, with its Arrow type."""

    trainer: Trainer
    survey: Survey
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


def _text_value_error(survey: Survey, column: str, why: str) -> InputError:
    where, value, row = survey.text_at[column]
    return InputError(f"{why}: {short(value)} (row {row + 1})", column=column, **where)


def plan_layout(
    trainer: Trainer,
    survey: Survey,
    objectives: Sequence[str] | None,
    keys: Sequence[str] = (),
) -> Layout:
    """Pick the objectives and the extra columns from the survey of the whole log; the group
    key columns `keys` are never default objectives."""
    import pyarrow as pa

    fixed = {trainer.completion_key, trainer.advantage_key}
    candidates = [name for name in survey.kinds if name not in fixed]
    kinds = {name: survey.kinds[name] for name in candidates}
    numeric = [n for n in candidates if kinds[n] in NUMERIC_KINDS or kinds[n] == MIXED]

    chosen: list[str] = []
    if objectives:
        for name in objectives:
            if name not in survey.kinds or name in fixed:
                raise InputError(
                    "no such reward column" + did_you_mean(name, numeric),
                    path=survey.path,
                    column=name,
                )
            kind = kinds[name]
            if kind == MIXED and name in survey.text_at:
                raise _text_value_error(survey, name, "an objective must be numeric, found")
            if kind not in NUMERIC_KINDS:
                raise InputError(
                    f"an objective must be numeric, but this {trainer.label} column holds text",
                    path=survey.first[name],
                    column=name,
                )
            if name not in chosen:
                chosen.append(name)
    else:
        for name in candidates:
            kind = kinds[name]
            if name in trainer.not_rewards or name in trainer.text_keys or name in keys:
                continue
            if kind == MIXED and MIXED in trainer.objective_kinds and name in survey.text_at:
                raise _text_value_error(
                    survey,
                    name,
                    "a reward column holds a value that is not a number (pick the objectives "
                    "with --objective to keep this column as text)",
                )
            if kind in trainer.objective_kinds:
                chosen.append(name)
        if not chosen:
            raise InputError(
                f"no reward columns found in this {trainer.label} log (a reward column is numeric; "
                "name the objectives with --objective)",
                path=survey.path,
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
        kind = kinds[name]
        if survey.arrow:  # Parquet: keep the type (strings as plain strings)
            arrow = survey.types.get(name)
            extra_types[_output_name(name)] = (
                pa.string() if kind in (STRING, NULL) or arrow is None else arrow
            )
        elif name in trainer.text_keys or kind in (STRING, MIXED, OTHER, NULL):
            extra_types[_output_name(name)] = pa.string()
        elif kind == BOOL:
            extra_types[_output_name(name)] = pa.bool_()
        else:  # numbers from JSON: float64 holds ints and floats alike across files
            extra_types[_output_name(name)] = pa.float64()
    return Layout(
        trainer=trainer,
        survey=survey,
        objectives=[_output_name(n) for n in chosen],
        extras=[_output_name(n) for n in extras],
        source_of=source_of,
        extra_types=extra_types,
        completion=trainer.completion_key is not None and trainer.completion_key in survey.kinds,
        logged=trainer.advantage_key is not None and trainer.advantage_key in survey.kinds,
        renamed=renamed,
    )


def check_columns(layout: Layout, batch: Batch) -> None:
    """A batch must hold the completion and the logged advantage when any file of the log does
    (a reward column a batch lacks is a missing reward there: its rows hold null)."""
    for flag, key in (
        (layout.logged, layout.trainer.advantage_key),
        (layout.completion, layout.trainer.completion_key),
    ):
        if key is not None and flag and key not in batch.columns:
            raise InputError(
                f"missing here but present in {layout.survey.first[key]}",
                column=key,
                **batch.where(),
            )

"""The streaming import: batches checked, grouped, sorted and written into one Parquet file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, UsageError
from dvao_cli.importers.batch import (
    BYTES_PER_WRITE,
    ROWS_PER_ROW_GROUP,
    Batch,
    ImportReport,
    Trainer,
)
from dvao_cli.importers.columns import batch_table
from dvao_cli.importers.groups import GroupState
from dvao_cli.importers.layout import Layout, Survey, check_columns, plan_layout
from dvao_cli.importers.source import source_root
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.format import GROUP, SAMPLE, STEP
from dvao_cli.reader.plausible import check_groups

if TYPE_CHECKING:
    import pyarrow as pa

# --------------------------------------------------------------------------------------------
# The streaming import
# --------------------------------------------------------------------------------------------


def import_batches(
    trainer: Trainer,
    batches: Iterator[Batch],
    tmp: Path | None,
    report: ImportReport,
    *,
    survey: Survey,
    complete: bool = True,
    objectives: Sequence[str] | None,
    group_size: int | None,
    ragged: bool,
    group_keys: Sequence[str] = (),
    allow_large_groups: bool = False,
) -> bytes | None:
    """Stream `batches` into the Parquet file `tmp` and fill `report`. With `tmp` None the file
    is built in memory, without the text columns (see `Layout.schema`), and returned.

    `survey` holds every column of the log (`layout.Survey`, a first pass over its files); when
    it is not `complete` (JSON formats: a first pass costs as much as the import), each batch is
    added to it before it is written, and a batch that changes the plan (a reward first seen
    there, one null or int in the batches before) raises `Replan`: the caller imports again
    with the survey of the whole log.
    Groups are keyed on `group_keys` (`--group-key`), else on the trainer's own group key when
    the log has it (verl's `uid`), else rebuilt from the prompts. Implausible groups are
    refused, or with `allow_large_groups` kept as warnings in `report.warnings`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if group_size is not None and group_size < 1:
        raise UsageError(f"--group-size must be at least 1, not {group_size}")
    key_columns: tuple[str, ...] = ()
    # columns the plan holds as text whatever they hold: no need to look at their values
    text_columns = {trainer.completion_key, trainer.advantage_key, *trainer.text_keys}
    text_columns -= {None, *(objectives or ())}
    state = GroupState(group_size=group_size, ragged=ragged, prompt_key=trainer.prompt_key)
    root = source_root(report.source)  # source_file is relative to it
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
            if not complete:
                survey.add_batch(batch, text_columns)  # type: ignore[arg-type]
            if batch.rows == 0:
                report.skipped["empty files or lines"] = (
                    report.skipped.get("empty files or lines", 0) + 1
                )
                continue
            if layout is None:
                key_columns = state.keys = _group_keys(trainer, survey, group_keys, complete)
                layout = plan_layout(trainer, survey, objectives, key_columns)
                metadata = {
                    "format": trainer.name,
                    "objectives": layout.objectives,
                    "extra_columns": layout.extras,
                    "group_size": group_size,
                    "group_keys": list(key_columns),
                    "grouping": (
                        "blocks"
                        if group_size is not None
                        else "key"
                        if key_columns
                        else trainer.grouping
                    ),
                    "source": report.source,
                }
                schema = layout.schema(metadata, text)
                writer = pq.ParquetWriter(sink, schema, compression="zstd")
            else:
                if not complete:
                    keys = _group_keys(trainer, survey, group_keys, complete)
                    now = plan_layout(trainer, survey, objectives, keys)
                    if (keys, _plan(now)) != (key_columns, _plan(layout)):
                        raise Replan(batch.path)
                check_columns(layout, batch)
            assert schema is not None
            table = batch_table(layout, batch, state, schema, text, root)
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
    report.warnings.extend(check_groups(state.stats, allow_large_groups))

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
    if repeated:  # a resumed run (TRL, ms-swift), a step split over files (verl)
        report.skipped["steps logged more than once (groups kept, numbered on)"] = repeated

    report.objectives = list(layout.objectives)
    report.extra_columns = list(layout.extras)
    report.logged_advantage = layout.logged
    report.renamed = dict(layout.renamed)
    report.steps = len(state.steps)
    report.groups = state.groups
    report.group_sizes = dict(sorted(state.sizes.items()))
    report.missing_rewards = dict(missing)
    report.group_keys = list(key_columns)
    keyed = f"rows with the same (step, {', '.join(key_columns)})"
    report.grouping = (
        f"fixed blocks of {group_size} rows" + (f" of the {keyed}" if key_columns else "")
        if group_size is not None
        else keyed
        if key_columns
        else (
            "runs of consecutive rows with one prompt within a step"
            if trainer.grouping == "runs"
            else "rows with the same (step, prompt)"
        )
    )
    return data


class Replan(Exception):
    """A batch changed the plan made from the batches before it (see `import_batches`)."""


def _plan(layout: Layout) -> tuple[Any, ...]:
    """What the output schema depends on."""
    return (
        layout.objectives,
        layout.extras,
        layout.extra_types,
        layout.completion,
        layout.logged,
        layout.renamed,
    )


def _group_keys(
    trainer: Trainer, survey: Survey, group_keys: Sequence[str], complete: bool = True
) -> tuple[str, ...]:
    """The columns that key the groups: `--group-key`, else the trainer's own group key when
    the log holds it (verl's `uid`), else none (the prompts). A key missing from a `complete`
    survey is an error here; else the batch that lacks it says so."""
    for key in group_keys if complete else ():
        if key != trainer.prompt_key and key not in survey.kinds:
            raise InputError(
                "no such column for --group-key"
                + did_you_mean(key, [trainer.prompt_key, *survey.kinds]),
                path=survey.path,
                column=key,
            )
    if group_keys:
        return tuple(dict.fromkeys(group_keys))
    if trainer.group_key is not None and trainer.group_key in survey.kinds:
        return (trainer.group_key,)
    return ()


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

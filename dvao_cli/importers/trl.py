"""TRL (`GRPOConfig(log_completions=True)`): `completions/completions_<step:05d>.parquet`.

Columns: `step` (int64; a string in some versions), `prompt`, `completion`, one float64 column
per reward function (NaN where it returned None), optional extra logged columns, `advantage`
(the advantage TRL trained on). There is no group id: a group is a block of `num_generations`
consecutive rows with the same prompt. One file is one generation batch (one step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError, unreadable_parquet
from dvao_cli.importers.batch import FLOAT, NULL, Batch, Trainer
from dvao_cli.importers.detect import TRL_FILE
from dvao_cli.importers.values import parse_int, step_problem
from dvao_cli.reader.footer import check_pages

if TYPE_CHECKING:
    import pyarrow as pa

FILE_RE = TRL_FILE

TRAINER = Trainer(
    name="trl",
    label="TRL",
    grouping="runs",
    completion_key="completion",
    advantage_key="advantage",
    not_rewards=frozenset({"step", "prompt", "completion", "advantage", "mode"}),
    text_keys=frozenset({"mode", "image", "images"}),
    # over the whole log: a column float in any file (int or null in others) is a reward; one
    # int in every file (a token count an extra logs) is not: TRL writes rewards as floats
    objective_kinds=(FLOAT, NULL),
)


def step_of(path: Path) -> int | None:
    match = FILE_RE.match(path.name)
    return parse_int(match.group(1)) if match else None  # None past int64


def _parquet(path: Path, read: Callable[[str], Any]) -> Any:
    """`read(path)` (pyarrow's read_table or read_schema), its failure as one InputError."""
    import pyarrow as pa

    try:
        if path.stat().st_size == 0:
            raise InputError("empty file (not a TRL completions Parquet file)", path=path)
        check_pages(path)  # the same one line for a file cut short as every reader's
        return read(str(path))
    except InputError:
        raise
    except (pa.ArrowException, OSError) as err:
        raise unreadable_parquet(err, path) from None


def read_batch(path: Path) -> Batch:
    import pyarrow.parquet as pq

    table = _parquet(path, pq.read_table)
    names = table.column_names
    for required in ("prompt", "completion"):
        if required not in names:
            raise InputError(
                "missing: not a TRL completions file (TRL writes step, prompt, completion, "
                "one column per reward function and advantage)",
                path=path,
                column=required,
            )
    n = table.num_rows
    if "step" in names:
        raw = table.column("step").to_pylist()
        steps: list[int] = []
        for i, value in enumerate(raw):
            step = parse_int(value)
            if step is None:
                raise InputError(f"{step_problem(value)} (row {i + 1})", path=path, column="step")
            steps.append(step)
    else:
        name_step = step_of(path)
        if name_step is None:
            raise InputError(
                "no 'step' column and no step in the file name (completions_<step>.parquet)",
                path=path,
            )
        steps = [name_step] * n
    prompts = table.column("prompt").to_pylist()
    columns = {
        name: table.column(name).combine_chunks()
        for name in names
        if name not in ("step", "prompt")
    }
    return Batch(path=path, step=steps, prompt=prompts, columns=columns)


def schemas(files: Sequence[Path]) -> Iterator[tuple[Path, pa.Schema]]:
    """Each file's Arrow schema, read from its footer (no row read)."""
    import pyarrow.parquet as pq

    for path in files:
        yield path, _parquet(path, pq.read_schema)


def batches(files: Sequence[Path]) -> Iterator[Batch]:
    for path in files:
        yield read_batch(path)

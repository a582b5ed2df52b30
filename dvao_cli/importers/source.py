"""Where each imported row is in the trainer's own files: the output columns `source_file`,
`source_row` and, for ms-swift, `source_index` (docs/log-format.md), which lead from a dvao
log (and `advantages.parquet`) back to the trainer's rows.

  source_file   the file, relative to the folder the user named as SOURCE (its name when
                SOURCE is a file), dictionary-encoded: one string per file, not per row
  source_row    0-based: the line of a JSON-lines file (blank lines count, as an editor counts
                them), the row of a Parquet file, the data row of a CSV file (header excluded)
  source_index  ms-swift only, whose line holds a logging step's responses as lists: the
                response's 0-based position in those lists (source_row is the line)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dvao_cli.importers.batch import Batch, Trainer
from dvao_cli.reader.format import SOURCE_FILE, SOURCE_INDEX, SOURCE_ROW

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def source_root(source: str | Path) -> Path:
    """The folder `source_file` is relative to: SOURCE when it is a folder, the folder of a
    SOURCE file (so that its name is what is kept), a glob's folder (its parts before the first
    one with a wildcard)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    fixed = []
    for part in path.parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path()


def relative_name(path: Path, root: Path) -> str:
    """`path` as found from the folder `root` (`source_root`), with / between folders."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # another spelling of the folder (a link, `..`)
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def source_fields(trainer: Trainer) -> list[pa.Field]:
    import pyarrow as pa

    fields = [
        pa.field(SOURCE_FILE, pa.dictionary(pa.int32(), pa.string())),
        pa.field(SOURCE_ROW, pa.int64()),
    ]
    if trainer.lists:
        fields.append(pa.field(SOURCE_INDEX, pa.int64()))
    return fields


def source_arrays(batch: Batch, order: np.ndarray, root: Path, lists: bool) -> list[pa.Array]:
    """The source columns of `batch`'s rows taken in `order` (N,)."""
    import numpy as np
    import pyarrow as pa

    n = batch.rows
    if batch.source_rows is not None:
        rows = np.asarray(batch.source_rows, dtype=np.int64)
    elif batch.lines is not None:  # 1-based line numbers, kept for messages
        rows = np.asarray(batch.lines, dtype=np.int64) - 1
    elif batch.line is not None:  # one line holds the whole batch (ms-swift)
        rows = np.full(n, batch.line - 1, dtype=np.int64)
    else:
        rows = np.arange(n, dtype=np.int64)
    files = batch.files or [batch.path]
    names = pa.array([relative_name(Path(f), root) for f in files], type=pa.string())
    if batch.file_of_row is not None:
        codes = np.asarray(batch.file_of_row, dtype=np.int32)[order]
    else:
        codes = np.zeros(n, dtype=np.int32)
    arrays = [
        pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), names),
        pa.array(rows[order], type=pa.int64()),
    ]
    if lists:
        arrays.append(pa.array(np.asarray(order, dtype=np.int64), type=pa.int64()))
    return arrays

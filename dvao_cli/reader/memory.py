"""A whole log in memory: `read_log` -> `LogData` (for logs that fit; `analyze` streams)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dvao_cli.errors import InputError
from dvao_cli.reader.chunk import group_codes, warn_skipped
from dvao_cli.reader.discovery import LogSource
from dvao_cli.reader.opening import open_log
from dvao_cli.reader.spec import LogSpec
from dvao_cli.reader.stream import iter_chunks

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


@dataclass
class LogData:
    """A whole log in memory, in engine order (see `Chunk`)."""

    frame: pl.DataFrame
    objectives: list[str]
    files: list[Path]
    group: np.ndarray
    sizes: np.ndarray
    skipped_groups: int = 0
    skipped_rows: int = 0
    dropped_rows: int = 0
    spec: LogSpec | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.frame.height


def read_log(
    paths: str | Path | Sequence[str | Path] | LogSource,
    objectives: Sequence[str] | None = None,
    nan: str = "error",
    extra_columns: Sequence[str] = (),
    *,
    quiet_warnings: bool = False,
) -> LogData:
    """Read and validate a whole log (for logs that fit in memory; `analyze` streams instead)."""
    import numpy as np
    import polars as pl

    spec = open_log(paths, objectives)
    chunks = list(iter_chunks(spec, nan=nan, extra_columns=extra_columns))
    frames = [c.frame for c in chunks if c.rows]
    if not frames:
        raise InputError("the log has no rows (after skipping groups of size 1)", path=spec.label)
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    sizes = np.concatenate([c.sizes for c in chunks])
    data = LogData(
        frame=frame,
        objectives=list(spec.objectives),
        files=spec.files,
        group=group_codes(sizes),
        sizes=sizes,
        skipped_groups=sum(c.skipped_groups for c in chunks),
        skipped_rows=sum(c.skipped_rows for c in chunks),
        dropped_rows=sum(c.dropped_rows for c in chunks),
        spec=spec,
    )
    if data.skipped_groups and not quiet_warnings:
        warn_skipped(spec.label, data.skipped_groups)
    return data

"""Atomic output: write to a temp file in the target's folder, then rename over the target.

An interrupted run leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import UsageError

if TYPE_CHECKING:
    import polars as pl


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success rename it to `target`, on error delete it.

    A target that exists must be a regular file (a link to one is written through): renaming
    over `/dev/stdout` or a directory would do harm.
    """
    target = Path(target)
    if target.exists() and not target.is_file():
        raise UsageError("is not a regular file; write to a file path", path=target)
    if target.is_symlink():
        target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_parquet(df: pl.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        df.write_parquet(tmp)


def json_safe(obj: Any) -> Any:
    """Replace NaN and infinities by None (JSON has no NaN) and tuples by lists, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, allow_nan=False)


def write_json(obj: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(dumps_json(obj) + "\n")


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)

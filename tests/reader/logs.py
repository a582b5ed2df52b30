"""Small logs and checks shared by the reader's tests."""

from __future__ import annotations

import numpy as np
import polars as pl


def small_log(steps: int = 2, groups: int = 2, size: int = 4, seed: int = 0) -> pl.DataFrame:
    """steps x groups x size responses: ids, text and two binary objectives."""
    rng = np.random.default_rng(seed)
    n = steps * groups * size
    return pl.DataFrame(
        {
            "step": np.repeat(np.arange(steps), groups * size),
            "group_id": np.tile(np.repeat(np.arange(groups), size), steps),
            "sample_id": np.tile(np.arange(size), steps * groups),
            "prompt": ["p"] * n,
            "completion": ["c"] * n,
            "accuracy": rng.integers(0, 2, n).astype(float),
            "format": rng.integers(0, 2, n).astype(float),
        }
    )


def one_error_line(result) -> str:
    """The one line a failed command printed (no traceback)."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]

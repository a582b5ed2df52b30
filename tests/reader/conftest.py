"""Fixtures of the reader's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .logs import small_log


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.parquet"
    small_log().write_parquet(path)
    return path

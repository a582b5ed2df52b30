"""Atomic output: no half files, the usual file mode, no renaming over non-files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dvao_cli.errors import UsageError
from dvao_cli.io import atomic_path, write_json


def test_success_renames_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "summary.json"
    write_json({"a": float("nan"), "b": [1.5, float("inf")]}, target)
    assert target.read_text() == '{\n  "a": null,\n  "b": [\n    1.5,\n    null\n  ]\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_outputs_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "f.json"
        write_json({}, target)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_refuses_a_directory_target(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a regular file"), atomic_path(tmp_path):
        pass


def test_writes_through_a_link_to_a_file(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_json({"k": 1}, link)
    assert link.is_symlink()
    assert real.read_text() == '{\n  "k": 1\n}\n'

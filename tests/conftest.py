"""Shared fixtures. `cli` runs the dvao command line in-process and captures its output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """`cli("analyze", path, "--json")` -> Result(code, out, err); output is plain (not a tty)."""
    from dvao_cli.cli.app import run

    monkeypatch.setenv("COLUMNS", "120")

    def invoke(*args: object) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke

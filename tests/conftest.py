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


@pytest.fixture
def in_processes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Worker processes for any log size; the list gets the ranges of each run that used them."""
    import dvao_cli.analysis.pipeline as module

    used: list[int] = []
    real = module._in_processes

    def spy(ranges, cfg, pool, *rest):
        used.append(len(ranges))
        yield from real(ranges, cfg, pool, *rest)

    monkeypatch.setattr(module, "PROCESS_MIN_ROWS", 0)
    monkeypatch.setattr(module, "_in_processes", spy)
    return used

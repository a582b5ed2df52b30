"""An output set is whole (family 3 of test_hostile.py) under SIGKILL: `analyze --out DIR`
killed at random points while it writes its set; DIR must then hold one complete set, the old
one or the new one, checked byte by byte against sets written by runs that were not killed.
The next run cleans up what the killed ones left (hidden staging folders of up to hundreds of
MB).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OUT_FILES = ("advantages.parquet", "schemes.parquet", "steps.parquet", "summary.json")
KILLS = 4  # the first run measures the write, the others are killed
CHUNK_ROWS = 2048  # chunks of 2 steps: advantages.parquet is written over many chunks


@pytest.fixture(scope="session")
def kill_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with a continuous objective (the engine path, every response's advantages): a few
    seconds of analyze --out. Built once per session with `dvao simulate`."""
    path = tmp_path_factory.mktemp("kill") / "log.parquet"
    subprocess.run(
        [sys.executable, "-m", "dvao_cli", "simulate", "-o", str(path), "--steps", "16"]
        + ["--groups", "64", "-G", "16", "--objectives", "accuracy,format,length,rm_score"]
        + ["--no-text", "-q"],
        check=True,
    )
    return path


def _command(log: Path, out: Path, ddof: int) -> list[str]:
    args = ["analyze", str(log), "--out", str(out), "-q", "--ddof", str(ddof)]
    return [sys.executable, "-m", "dvao_cli", *args, "--chunk-rows", str(CHUNK_ROWS)]


def _staging(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.dvao-")]


def _digest(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in OUT_FILES}


def _run(log: Path, out: Path, ddof: int, kill_after: float | None = None) -> float:
    """Run analyze --out; with `kill_after`, SIGKILL it that many seconds after its staging
    folder appears. Returns the seconds from the staging folder's appearance to the end."""
    proc = subprocess.Popen(_command(log, out, ddof), stdout=subprocess.DEVNULL)
    while proc.poll() is None and not _staging(out):
        time.sleep(0.002)
    start = time.monotonic()
    if kill_after is None:
        assert proc.wait() == 0
        return time.monotonic() - start
    while proc.poll() is None and time.monotonic() - start < kill_after:
        time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.monotonic() - start


def _reference(log: Path, out: Path, ddof: int) -> dict[str, str]:
    """The set a run that is not killed writes (in-process: the same bytes, no start-up)."""
    from dvao_cli.analysis.pipeline import analyze

    analyze(log, out_dir=out, ddof=ddof, chunk_rows=CHUNK_ROWS)
    return _digest(out)


@pytest.mark.slow
def test_sigkill_leaves_the_old_set_or_the_new_one(kill_log: Path, tmp_path: Path) -> None:
    old_ref, out = tmp_path / "old-ref", tmp_path / "out"
    old, new = _reference(kill_log, old_ref, 0), _reference(kill_log, tmp_path / "new-ref", 1)
    assert old != new
    shutil.copytree(old_ref, out)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    writing = None
    for kill in range(KILLS):
        # the first run is not killed: how long does it write? (then put the old set back)
        delay = None if writing is None else rng.uniform(0, writing)
        if kill == KILLS - 1:
            delay = rng.uniform(0.85, 1.0) * writing  # the last tenth or so: the swap
        took = _run(kill_log, out, ddof=1, kill_after=delay)
        writing = writing or took
        state = _digest(out)
        where = f"seed {seed}, killed {delay} s into a {writing:.3f} s write"
        assert state in (old, new), where
        extra = sorted(p.name for p in out.iterdir() if p.name not in OUT_FILES)
        assert extra in ([], [".dvao-incomplete"]), (where, extra)
        if state == new:  # start again from the old set
            shutil.rmtree(out)
            shutil.copytree(old_ref, out)
    # the next complete run removes what the killed ones left, and installs its set
    _run(kill_log, out, ddof=1)
    assert _digest(out) == new
    assert _staging(out) == [] and sorted(p.name for p in out.iterdir()) == sorted(OUT_FILES)

"""A Parquet file whose footer survived but whose data pages are gone exits 2
with one line naming it, and no Rust panic text (nor, with RUST_BACKTRACE=1, a backtrace)
reaches stderr, on every reader path: analyze (also in worker processes), plot (a log, an
analysis folder, a comparison), import and a trainer's log read in place. The command runs in
a subprocess: a panic prints from Rust straight to file descriptor 2, which only a subprocess
captures."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from trainer_fixtures import write_trl_completions

from dvao_cli.errors import InputError
from dvao_cli.reader.footer import check_pages

ROOT = Path(__file__).parents[1]
# analyze in worker processes on any log: the command line's entry with the row threshold at 0
WORKERS = (
    "import sys; import dvao_cli.analysis.pipeline as p; p.PROCESS_MIN_ROWS = 0; "
    "from dvao_cli.cli.app import run; sys.exit(run(sys.argv[1:]))"
)


def small_log(path: Path) -> Path:
    """A dvao log with two 0/1 objectives, 4 steps x 4 groups x 4 responses."""
    import numpy as np
    import polars as pl

    rows = 64
    rng = np.random.default_rng(0)
    pl.DataFrame(
        {
            "step": [i // 16 for i in range(rows)],
            "group_id": [i // 4 for i in range(rows)],
            "sample_id": [i % 4 for i in range(rows)],
            "accuracy": rng.integers(0, 2, rows).astype(float),
            "format": rng.integers(0, 2, rows).astype(float),
        }
    ).write_parquet(path)
    return path


def cut(path: Path) -> Path:
    """Cut the data pages short by a third, keep the footer (polars panicked on such files)."""
    data = path.read_bytes()
    footer_len = struct.unpack("<i", data[-8:-4])[0]
    footer, body = data[-(footer_len + 8) :], data[: -(footer_len + 8)]
    path.write_bytes(body[: int(len(body) * 0.67)] + footer)
    return path


def _run(args: list[str], backtrace: bool, workers: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    env["PYTHONPATH"] = str(ROOT)
    if backtrace:
        env["RUST_BACKTRACE"] = "1"
    if workers:
        env["DVAO_WORKERS"] = "2"
    head = ["-c", WORKERS] if workers else ["-m", "dvao_cli"]
    return subprocess.run(
        [sys.executable, *head, *args], env=env, capture_output=True, text=True, timeout=120
    )


def _cases(tmp: Path) -> dict[str, tuple[list[str], Path, bool]]:
    """name -> (arguments, the damaged file the message must name, in worker processes)."""
    log = cut(small_log(tmp / "log.parquet"))
    analysis = tmp / "analysis"
    cmp = tmp / "cmp"
    from dvao_cli.cli.app import run

    assert run(["analyze", str(small_log(tmp / "ok.parquet")), "--out", str(analysis), "-q"]) == 0
    tiny = ["--sft-steps", "0", "--prompts-per-step", "2", "--group-size", "2", "--width", "16"]
    train = ["train", "--out", str(cmp), *tiny, "--steps", "2", "--compare", "rc,dvao"]
    assert run([*train, "--seeds", "1", "-q"]) == 0
    metrics = cmp / "dvao-s0" / "metrics.parquet"
    trl = tmp / "trl"
    write_trl_completions(trl)
    damaged_trl = cut(sorted(trl.glob("*.parquet"))[0])
    return {
        "analyze": (["analyze", str(log)], log, False),
        "analyze --out": (["analyze", str(log), "--out", str(tmp / "o")], log, False),
        "analyze in workers": (["analyze", str(log)], log, True),
        "plot a log": (["plot", str(log), "--out", str(tmp / "f1")], log, False),
        "plot an analysis folder": (
            ["plot", str(analysis), "--out", str(tmp / "f2")],
            cut(analysis / "steps.parquet"),
            False,
        ),
        "plot a comparison": (["plot", str(cmp), "--out", str(tmp / "f3")], cut(metrics), False),
        "import": (["import", "trl", str(trl), "-o", str(tmp / "t.parquet")], damaged_trl, False),
        "in place": (["analyze", str(trl)], damaged_trl, False),
    }


def test_every_reader_path_says_one_line_and_no_panic(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    jobs = [(name, bt) for name in cases for bt in (False, True)]
    with ThreadPoolExecutor(4) as pool:  # subprocesses: the threads only wait
        results = list(pool.map(lambda job: _run(cases[job[0]][0], job[1], cases[job[0]][2]), jobs))
    for (name, backtrace), res in zip(jobs, results, strict=True):
        where = (name, backtrace, res.stderr)
        damaged = cases[name][1]
        assert res.returncode == 2, where
        assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"error: {damaged}"), where
        assert "cannot read" in res.stderr, where
        for text in ("panicked", "backtrace", "Traceback", "thread '"):
            assert text not in res.stderr, where
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_check_pages_judges_by_the_footer(tmp_path: Path) -> None:
    good = small_log(tmp_path / "good.parquet")
    check_pages(good)  # nothing to say
    data = good.read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data)
    cut(bad)
    expected = (
        r"cannot read: a damaged file \(column '.*' of row group 0 is listed at bytes "
        r"\d+\.\.\d+, but the data ends at byte \d+"
    )
    with pytest.raises(InputError, match=expected):
        check_pages(bad)
    # not Parquet at all, or empty: left to the reader, whose error names it
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    check_pages(junk)
    check_pages(tmp_path / "missing.parquet")

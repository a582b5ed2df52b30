"""A `dvao train --compare --jobs 2` whose parent is killed (SIGKILL,
SIGTERM) leaves no process and no temp folder behind; `dvao train --resume DIR` finishes it
bit for bit as an uninterrupted comparison; `dvao plot` refuses a comparison with missing
runs and names them (`compare_runs.missing_runs`, the library fact)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.train.compare_runs import WARM_DIR, missing_runs

TINY = ("--sft-steps", "0", "--prompts-per-step", "4", "--group-size", "4", "--width", "32")
# long enough that a kill as the first run ends finds others part way
RUN = (*TINY, "--steps", "24", "--checkpoint-every", "4", "--compare", "grpo,dvao", "--seeds", "2")
RUNS = ["grpo-s0", "grpo-s1", "dvao-s0", "dvao-s1"]
TIMING = ("time_s", "rollouts_per_s")  # wall-clock columns: the only ones a kill may change


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same comparison, never interrupted (one process: a run's numbers do not depend on
    the process that ran it)."""
    from dvao_cli.cli.app import run

    out = tmp_path_factory.mktemp("reference") / "cmp"
    assert run(["train", "--out", str(out), *RUN, "--jobs", "1", "-q"]) == 0
    return out


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_as_first_run_ends(out: Path, tmp: Path, signum: int) -> float:
    """Start the comparison in a session of its own, send `signum` to its parent alone as the
    first run ends; the seconds until no process of the session is left (at most 10)."""
    cmd = [sys.executable, "-m", "dvao_cli", "train", "--out", str(out), *RUN, "--jobs", "2"]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (out / "compare.parquet").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signum)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    killed = time.monotonic()
    while _group_alive(proc.pid) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    survivors = _group_alive(proc.pid)
    if survivors:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not survivors, "a process of the killed comparison survived 10 s"
    return time.monotonic() - killed


def _same_numbers(got: Path, want: Path) -> None:
    a = pl.read_parquet(got / "compare.parquet").drop("wall_s")
    b = pl.read_parquet(want / "compare.parquet").drop("wall_s")
    assert a.equals(b) and a["run"].to_list() == RUNS
    for run in RUNS:
        m_got = pl.read_parquet(got / run / "metrics.parquet").drop(*TIMING)
        m_want = pl.read_parquet(want / run / "metrics.parquet").drop(*TIMING)
        assert m_got.equals(m_want), run
        parts = sorted(p.name for p in (want / run / "rollouts").iterdir())
        assert sorted(p.name for p in (got / run / "rollouts").iterdir()) == parts, run
        for name in (parts[0], parts[-1]):
            rollouts = pl.read_parquet(got / run / "rollouts" / name)
            assert rollouts.equals(pl.read_parquet(want / run / "rollouts" / name)), (run, name)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_comparison_leaves_nothing_and_resumes_bit_for_bit(
    cli, tmp_path: Path, reference: Path, signum: int
) -> None:
    out, tmp = tmp_path / "cmp", tmp_path / "tmp"
    tmp.mkdir()
    _kill_as_first_run_ends(out, tmp, signum)
    assert [p.name for p in tmp.iterdir() if p.name.startswith("dvao")] == []  # no temp folder
    missing = missing_runs(out)
    assert 1 <= len(missing) <= 3 and set(missing) < set(RUNS)
    assert missing == [r for r in RUNS if r in missing]  # in run order

    # a half-finished comparison is not drawn: exit 2 naming the missing runs
    res = cli("plot", out, "--out", tmp_path / "figs")
    assert res.code == 2
    assert res.err == (
        f"error: {out}: the comparison is missing {len(missing)} of its 4 runs "
        f"({', '.join(missing)}): finish it with `dvao train --resume {out}`, then plot it\n"
    )
    assert not (tmp_path / "figs").exists()

    # rerunning the command advises --resume, and that advice works
    res = cli("train", "--out", out, *RUN, "--jobs", "2")
    assert res.code == 2
    assert f"resume it with --resume {out}" in res.err
    res = cli("train", "--resume", out, "--jobs", "2" if signum == signal.SIGKILL else "1")
    assert res.code == 0, res.err
    assert f"wrote {out / 'compare.parquet'} and 4 run directories" in res.out
    assert not (out / WARM_DIR).exists()
    assert missing_runs(out) == []
    _same_numbers(out, reference)
    assert cli("plot", out, "--out", tmp_path / "figs").code == 0
    # a finished comparison resumes to the same table without running anything
    before = pl.read_parquet(out / "compare.parquet")
    assert cli("train", "--resume", out).code == 0
    assert pl.read_parquet(out / "compare.parquet").equals(before)


def test_resume_a_comparison_checks_its_options(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert (
        cli("train", "--out", out, *TINY, "--steps", "2", "--compare", "dvao", "--seeds", "1").code
        == 0
    )
    res = cli("train", "--resume", out, "--compare", "dvao")
    assert (res.code, res.err) == (
        2,
        "error: --resume continues the run or the comparison in DIR with its own options; do "
        "not pass --compare with it\n",
    )
    res = cli("train", "--resume", out, "--lr", "0.1", "--steps", "3")
    assert res.code == 0, res.err
    assert f"--resume takes the options from {out / 'config.json'}; ignored: --lr" in res.err
    assert pl.read_parquet(out / "dvao-s0" / "metrics.parquet")["step"].to_list() == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["base"]["steps"] == 3
    res = cli("train", "--resume", out, "--reward", "x.py:f")
    assert res.code == 2 and "the run has no --reward" in res.err
    # a run folder that does not belong to the plan is named, not overwritten
    config = json.loads((out / "dvao-s0" / "config.json").read_text())
    (out / "dvao-s0" / "config.json").write_text(json.dumps({**config, "seed": 7}))
    res = cli("train", "--resume", out, "--steps", "4")
    assert res.code == 2
    assert res.err.startswith(f"error: {out / 'dvao-s0' / 'config.json'}: the run does not match")


def test_plot_names_every_run_of_a_comparison_not_yet_finished(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    out.mkdir()
    config = {"compare": True, "objectives": ["accuracy", "format"], "schemes": ["rc", "dvao"]}
    (out / "config.json").write_text(json.dumps({**config, "seeds": [3], "sweep_weights": None}))
    assert missing_runs(out) == ["rc-s3", "dvao-s3"]
    res = cli("plot", out)
    assert res.code == 2 and "missing 2 of its 2 runs (rc-s3, dvao-s3)" in res.err

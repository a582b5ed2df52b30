"""The library's warnings: a `DvaoWarning` for a library user (filtered, recorded or made an
error with the `warnings` module), one `warning: ...` line on the command line's stderr, `-q`
or not, and raised again in the parent when a worker process raises one."""

from __future__ import annotations

import warnings
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.errors import DvaoWarning
from dvao_cli.reader.opening import open_log
from dvao_cli.reader.stream import iter_chunks


def _spread_log(path: Path, per_step: int = 8) -> Path:
    """Steps 0..7 of `per_step` rows, then 0..7 again, in row groups of `per_step` rows: the
    footers never promise that a step is complete, so the reader holds the rows to the end."""
    rows = 8 * per_step
    half = pl.DataFrame(
        {
            "step": [i // per_step for i in range(rows)],
            "group_id": [(i % per_step) // 4 for i in range(rows)],
            "accuracy": [float(i % 3 == 0) for i in range(rows)],
        }
    )
    pl.concat([half, half.with_columns(pl.col("accuracy") * 0.5)]).write_parquet(
        path, row_group_size=per_step
    )
    return path


def _spread_message(path: Path, held: int) -> str:
    return (
        f"{path}: steps are spread across the log; holding {held:,} rows until they are "
        "complete (write steps in order to stream in bounded memory)"
    )


def test_the_reader_raises_a_dvao_warning(tmp_path: Path) -> None:
    path = _spread_log(tmp_path / "spread.parquet")
    with pytest.warns(DvaoWarning) as caught:
        chunks = list(iter_chunks(open_log(path), chunk_rows=2))
    assert sum(c.rows for c in chunks) == 128
    assert [str(w.message) for w in caught] == [_spread_message(path, 16)]
    assert issubclass(DvaoWarning, UserWarning)
    with warnings.catch_warnings():  # a library user can make it an error
        warnings.simplefilter("error", DvaoWarning)
        with pytest.raises(DvaoWarning, match="steps are spread"):
            list(iter_chunks(open_log(path), chunk_rows=2))


@pytest.mark.parametrize("quiet", [False, True])
def test_the_command_line_prints_each_warning_as_one_line(cli, tmp_path: Path, quiet: bool) -> None:
    path = _spread_log(tmp_path / "spread.parquet", per_step=1000)  # --chunk-rows' least
    with warnings.catch_warnings(record=True) as python:
        warnings.simplefilter("always")
        args = ["analyze", path, "--chunk-rows", "1000", "--json", *(["-q"] if quiet else [])]
        result = cli(*args)
    assert result.code == 0, result.err
    assert result.err == f"warning: {_spread_message(path, 5000)}\n"
    assert not [w for w in python if issubclass(w.category, DvaoWarning)]  # none shown twice


def test_the_command_line_shows_other_warnings_as_python_does(capsys) -> None:
    from dvao_cli.cli.console import dvao_warnings

    with pytest.warns(RuntimeWarning, match="not dvao's"), dvao_warnings():
        warnings.warn("not dvao's", RuntimeWarning, stacklevel=1)
    assert capsys.readouterr().err == ""  # pytest's recorder got it, as Python's hook does


@pytest.mark.slow
def test_a_warning_in_a_worker_process_reaches_the_parent_once(capfd) -> None:
    """The worker prints nothing itself (its stderr is the parent's); `get()` raises the warning
    again in the parent, where the command line prints it once."""
    from dvao_cli.analysis.workers import WorkerPool
    from dvao_cli.cli.console import dvao_warnings
    from dvao_cli.reader.chunk import warn_skipped

    expected = (
        "log.parquet: column 'group_id': skipped 3 groups of size 1 (no within-group variance)"
    )
    with WorkerPool(2) as pool:
        with pytest.warns(DvaoWarning) as caught:
            assert pool.submit(warn_skipped, "log.parquet", 3).get() is None
        assert [str(w.message) for w in caught] == [expected]
        capfd.readouterr()
        with dvao_warnings():
            pool.submit(warn_skipped, "log.parquet", 3).get()
    assert capfd.readouterr().err == f"warning: {expected}\n"

"""The run directory: rollout part files, metrics.parquet, config.json.

One rollout part file per step (`rollouts/step-000001.parquet`), each written atomically, so a
crash loses at most the current step; the `rollouts/` directory reads as one dvao log.
`metrics.parquet` is rewritten atomically after every step (it has one small row per step).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from dvao_cli.errors import InputError
from dvao_cli.io import write_json, write_parquet

ROLLOUTS = "rollouts"
METRICS = "metrics.parquet"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """The OS's write errors on `path` as one line and exit 2: "PATH: disk full" for ENOSPC
    (also when polars or torch wrap it in their own exception), "PATH: cannot write: ..." for
    the rest. The writes are atomic, so a failed one leaves no partial file."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InputError("disk full", path=path) from None
        raise InputError(f"cannot write: {err.strerror or err}", path=path) from None
    except Exception as err:  # polars ComputeError, torch RuntimeError, ... around an OSError
        if "No space left on device" in str(err) or "os error 28" in str(err):
            raise InputError("disk full", path=path) from None
        raise


def write_json_file(obj: Any, path: Path) -> None:
    with writing(path):
        write_json(obj, path)


def write_parquet_file(frame: pl.DataFrame, path: Path) -> None:
    with writing(path):
        write_parquet(frame, path)


def check_out_keeps_inputs(out: Path, rewards: Sequence[str], runs: Sequence[str] = ()) -> None:
    """Refuse an --out that is, or whose run would write or remove, a file the run reads (a
    --reward file): a run writes config.json, metrics.parquet, rollouts/, checkpoints/ (and
    compare.parquet and one folder per run for --compare) and removes the old ones."""
    from dvao_cli.io import check_outputs
    from dvao_cli.train.rewards import reward_file

    written = [out / n for n in ("config.json", METRICS, ROLLOUTS, "checkpoints")]
    written += [out / "compare.parquet"] + [out / name for name in runs]
    inputs = [p for p in (reward_file(spec) for spec in rewards) if p is not None and p.exists()]
    check_outputs(written, inputs, option="--out")


def part_path(run_dir: Path, step: int) -> Path:
    return run_dir / ROLLOUTS / f"step-{step:06d}.parquet"


def write_rollouts(
    run_dir: Path,
    step: int,
    group_id: Sequence[int],
    sample_id: Sequence[int],
    prompts: Sequence[str],
    completions: Sequence[str],
    rewards: dict[str, Sequence[float]],
    logged_advantage: Sequence[float],
) -> Path:
    """One step's rollouts in the dvao log format (floats stay float64, NaN = no reward)."""
    n = len(prompts)
    columns: dict[str, pl.Series] = {
        "step": pl.Series("step", [step] * n, dtype=pl.Int64),
        "group_id": pl.Series("group_id", list(group_id), dtype=pl.Int64),
        "sample_id": pl.Series("sample_id", list(sample_id), dtype=pl.Int64),
        "prompt": pl.Series("prompt", list(prompts), dtype=pl.Utf8),
        "completion": pl.Series("completion", list(completions), dtype=pl.Utf8),
    }
    for name, values in rewards.items():
        columns[name] = pl.Series(name, list(values), dtype=pl.Float64, nan_to_null=False)
    columns["logged_advantage"] = pl.Series(
        "logged_advantage", list(logged_advantage), dtype=pl.Float64
    )
    path = part_path(run_dir, step)
    write_parquet_file(pl.DataFrame(list(columns.values())), path)
    return path


def remove_parts_after(run_dir: Path, step: int) -> int:
    """Delete rollout part files of steps > `step` (a resumed run redoes them). Returns a count."""
    removed = 0
    for path in sorted((run_dir / ROLLOUTS).glob("step-*.parquet")):
        try:
            part_step = int(path.stem.split("-", 1)[1])
        except ValueError:
            continue
        if part_step > step:
            path.unlink()
            removed += 1
    return removed


class MetricsWriter:
    """Accumulates one row per step and rewrites metrics.parquet atomically each time."""

    def __init__(self, run_dir: Path, columns: list[str]) -> None:
        self.path = run_dir / METRICS
        self.columns = columns
        self.schema = {c: (pl.Int64 if c == "step" else pl.Float64) for c in columns}
        self.rows: list[dict[str, Any]] = []
        self._frame = self._rows_frame([])

    def _rows_frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        return pl.DataFrame(
            [{c: r.get(c) for c in self.columns} for r in rows], schema=self.schema, orient="row"
        )

    def load_until(self, step: int) -> None:
        """Keep the rows of steps <= `step` from an existing metrics.parquet (resume)."""
        if self.path.is_file():
            frame = pl.read_parquet(self.path).filter(pl.col("step") <= step)
            # a run begun before the keys were unified: `rewards/<name>/within_std` is now
            # `dvao/within_std/<name>`, the integrations' key
            frame = frame.rename(
                {
                    c: f"dvao/within_std/{c[len('rewards/') : -len('/within_std')]}"
                    for c in frame.columns
                    if c.startswith("rewards/") and c.endswith("/within_std")
                }
            )
            self.rows = frame.to_dicts()
            self._frame = self._rows_frame(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._frame = pl.concat([self._frame, self._rows_frame([row])], rechunk=False)
        self.flush()

    def frame(self) -> pl.DataFrame:
        return self._frame

    def flush(self) -> None:
        write_parquet_file(self._frame, self.path)

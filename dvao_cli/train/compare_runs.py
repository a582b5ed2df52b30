"""Which runs a `dvao train --compare` folder plans, and which of them it lacks.

A comparison plans one run per (scheme, sweep weight, seed), named by `run_name`, in that order;
`DIR/config.json` records the schemes, seeds and sweep weights, and `DIR/compare.parquet` gets
a row as each run ends. `missing_runs` is the fact `dvao plot` (and `dvao report`) state before
drawing anything from a folder that a kill or a Ctrl-C left half done. Importing this module
loads neither torch nor polars.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvao_cli.errors import InputError, unreadable_parquet

COMPARE_FILE = "compare.parquet"
CONFIG_FILE = "config.json"
# the warm starts the worker processes share: inside the comparison's folder, so that a run
# killed before it could remove them leaves them to the next run there (which reuses them on
# --resume and removes them when it ends), never in the system's temp folder
WARM_DIR = ".dvao-warm"


def run_name(scheme: str, seed: int, w1: float | None) -> str:
    return f"{scheme}-s{seed}" if w1 is None else f"{scheme}-w{w1:g}-s{seed}"


def planned_names(
    schemes: Sequence[str], seeds: Sequence[int], sweep: Sequence[float] | None
) -> list[str]:
    """Every run's name, in the order the comparison runs them (scheme, then weight, then
    seed)."""
    return [
        run_name(scheme, seed, w1)
        for scheme in schemes
        for w1 in (sweep if sweep is not None else [None])
        for seed in seeds
    ]


def compare_config(folder: str | Path) -> dict[str, Any] | None:
    """`folder/config.json` of a comparison (`"compare": true`); None for any other folder
    (a single run, or no config.json)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"cannot read: {err}", path=path) from None
    return data if isinstance(data, dict) and data.get("compare") is True else None


def planned_runs(config: dict[str, Any], path: Path | None = None) -> list[str]:
    """The runs a comparison's config.json plans (its "schemes", "seeds", "sweep_weights")."""
    schemes, seeds, sweep = (config.get(k) for k in ("schemes", "seeds", "sweep_weights"))
    if not (
        isinstance(schemes, list)
        and all(isinstance(s, str) for s in schemes)
        and isinstance(seeds, list)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        and (sweep is None or isinstance(sweep, list))
    ):
        raise InputError(
            '"schemes", "seeds" and "sweep_weights" must list the comparison\'s schemes, seeds '
            "and weights (as `dvao train --compare` writes them)",
            path=path,
        )
    weights = None if sweep is None else [float(w) for w in sweep]
    return planned_names(schemes, seeds, weights)


def missing_runs(folder: str | Path) -> list[str]:
    """The planned runs of the comparison in `folder` that `compare.parquet` does not list yet
    (not started, or stopped part way by a kill or a Ctrl-C), in run order; [] for a complete
    comparison. `dvao train --resume FOLDER` finishes them. InputError for a folder that is not
    a comparison, or whose compare.parquet cannot be read."""
    folder = Path(folder)
    config = compare_config(folder)
    if config is None:
        raise InputError(
            'not a `dvao train --compare` folder (no config.json with "compare": true)',
            path=folder,
        )
    planned = planned_runs(config, folder / CONFIG_FILE)
    table = folder / COMPARE_FILE
    if not table.is_file():
        return planned
    import polars as pl

    from dvao_cli.reader.footer import check_pages

    check_pages(table)  # a file cut short would make polars panic
    try:
        done = set(pl.read_parquet(table, columns=["run"])["run"].cast(pl.Utf8).to_list())
    except Exception as err:  # noqa: BLE001 - polars' many errors: one line, exit 2
        raise unreadable_parquet(err, table) from None
    return [name for name in planned if name not in done]

"""`dvao train --compare`: every scheme on the same seeds and task (optionally across a sweep of
two-objective preference weights), one run directory each, and `compare.parquet` with one row per
run: scheme, seed, run, w_<objective>, final_<objective>, wall_s.

The warm start depends only on the seed (not on the scheme or the weights), so it is computed once
per seed and reused: every scheme starts from the same policy, as in the paper's comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from dvao_cli.errors import UsageError
from dvao_cli.io import write_json, write_parquet
from dvao_cli.options import SCHEMES, did_you_mean
from dvao_cli.train.config import CONFIG_FILE, TrainConfig
from dvao_cli.train.loop import RunResult, WarmCache, final_rewards, prepare, train_run

COMPARE_FILE = "compare.parquet"


def parse_schemes(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError("--compare needs a comma-separated list of schemes (e.g. rc,ac,gdpo,dvao)")
    for name in names:
        if name not in SCHEMES:
            raise UsageError(
                f"--compare: unknown scheme '{name}'" + did_you_mean(name, list(SCHEMES))
            )
    if len(set(names)) != len(names):
        raise UsageError("--compare names a scheme twice")
    return names


def parse_sweep(text: str) -> list[float]:
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"--sweep-weights: '{part}' is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--sweep-weights: {value:g} is outside [0, 1] (w_1 = x, w_2 = 1 - x)")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError("--sweep-weights repeats a value")
    return values


def run_name(scheme: str, seed: int, w1: float | None) -> str:
    return f"{scheme}-s{seed}" if w1 is None else f"{scheme}-w{w1:g}-s{seed}"


def plan(
    base: TrainConfig, schemes: Sequence[str], n_seeds: int, sweep: Sequence[float] | None
) -> tuple[list[str], list[int], list[tuple[str, int, float | None, TrainConfig]]]:
    """Objectives, seeds and the (scheme, seed, w1, config) of every run, validated up front."""
    if n_seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {n_seeds})")
    probe = replace(base, objectives=list(base.objectives), weights=dict(base.weights))
    prepare(probe)  # validates every option and resolves the objectives
    objectives = probe.objectives
    if sweep is not None:
        if len(objectives) != 2:
            raise UsageError(
                f"--sweep-weights needs exactly 2 objectives; this run has {len(objectives)} ("
                + ", ".join(objectives)
                + "): pick two with --objective"
            )
        if base.weights:
            raise UsageError("--sweep-weights sets the weights: do not pass --weight as well")
    seeds = [base.seed + i for i in range(n_seeds)]
    runs = []
    for scheme in schemes:
        for w1 in sweep if sweep is not None else [None]:
            weights = (
                dict(probe.weights)
                if w1 is None
                else {objectives[0]: w1, objectives[1]: round(1.0 - w1, 12)}
            )
            for seed in seeds:
                cfg = replace(
                    base, scheme=scheme, seed=seed, objectives=list(objectives), weights=weights
                )
                runs.append((scheme, seed, w1, cfg))
    return objectives, seeds, runs


def run_compare(
    base: TrainConfig,
    schemes: Sequence[str],
    n_seeds: int,
    sweep: Sequence[float] | None,
    out_dir: str | Path,
    *,
    on_run: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Run every (scheme, weights, seed) into `out_dir/<run>/`; write and return compare.parquet."""
    out = Path(out_dir)
    objectives, seeds, runs = plan(base, schemes, n_seeds, sweep)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        {
            "compare": True,
            "objectives": objectives,
            "schemes": list(schemes),
            "seeds": seeds,
            "sweep_weights": None if sweep is None else list(sweep),
            "base": base.to_json(),
        },
        out / CONFIG_FILE,
    )
    warm: WarmCache = {}
    rows: list[dict[str, Any]] = []
    for i, (scheme, seed, w1, cfg) in enumerate(runs):
        name = run_name(scheme, seed, w1)
        if on_run:
            on_run(name, i, len(runs))
        result: RunResult = train_run(
            cfg, out / name, on_step=on_step, on_info=on_info, warm_cache=warm
        )
        final = final_rewards(result.metrics, objectives)
        row: dict[str, Any] = {"scheme": scheme, "seed": seed, "run": name}
        for obj in objectives:
            row[f"w_{obj}"] = float(cfg.weights[obj])
        for obj in objectives:
            row[f"final_{obj}"] = final[obj]
        row["wall_s"] = result.wall_s
        rows.append(row)
        write_parquet(_frame(rows, objectives), out / COMPARE_FILE)  # partial results survive
    return _frame(rows, objectives)


def _frame(rows: list[dict[str, Any]], objectives: list[str]) -> pl.DataFrame:
    schema: dict[str, Any] = {"scheme": pl.Utf8, "seed": pl.Int64, "run": pl.Utf8}
    schema.update({f"w_{o}": pl.Float64 for o in objectives})
    schema.update({f"final_{o}": pl.Float64 for o in objectives})
    schema["wall_s"] = pl.Float64
    return pl.DataFrame(rows, schema=schema, orient="row")


def summarize(frame: pl.DataFrame, objectives: list[str]) -> pl.DataFrame:
    """Mean and spread (std over seeds, 0 for one seed) per scheme and weights, in run order."""
    keys = ["scheme"] + [f"w_{o}" for o in objectives]
    aggs: list[pl.Expr] = [pl.len().alias("seeds")]
    for o in objectives:
        aggs.append(pl.col(f"final_{o}").mean().alias(f"{o}_mean"))
        aggs.append(pl.col(f"final_{o}").std(ddof=1).fill_null(0.0).alias(f"{o}_spread"))
    aggs.append(pl.col("wall_s").mean().alias("wall_s"))
    return frame.group_by(keys, maintain_order=True).agg(aggs)


def fmt_pct(mean: float, spread: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{100 * mean:.1f} ± {100 * (spread or 0.0):.1f}"

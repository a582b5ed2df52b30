"""Benchmark of the advantage engine beside the time to read the same columns from Parquet.

Not a test. Writes a synthetic rollout log (step, group_id and K float reward columns; groups of
G responses, 128 prompts per step) to a temp dir, then times:
  * reading those columns from Parquet (polars) into numpy arrays,
  * compute_advantages for all five schemes, and each scheme alone, on the fast path
    (equal groups, contiguous rows), float64 and float32,
  * all five schemes on the ragged path (the same rows shuffled),
  * group_stats alone.
Each line gives the best and the median of --repeat runs (wall clock, after one warm-up run for
the engine; the Parquet read is timed cold and warm alike).

    .venv/bin/python benchmarks/advantages_bench.py                # 20M rows x 3, groups of 16
    .venv/bin/python benchmarks/advantages_bench.py --threads 1     # steadier on a busy machine
    .venv/bin/python benchmarks/advantages_bench.py --rows 2000000 --device cuda
    .venv/bin/python benchmarks/advantages_bench.py --torch         # torch tensors in (trainers)

numpy input runs the core's arithmetic on numpy (the CPU path of `dvao analyze`); with --torch
the same rows go in as torch tensors and torch computes them (the path of trainers and CUDA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import torch

from dvao_cli.advantages import SCHEMES, compute_advantages, group_stats


def timed(fn: Callable[[], object], repeat: int, warmup: bool = True) -> tuple[float, float]:
    """(best, median) wall-clock seconds over `repeat` runs; the best is the figure least
    disturbed by other work on a shared machine."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def write_log(path: Path, rows: int, size: int, k: int, prompts_per_step: int) -> list[str]:
    rng = np.random.default_rng(0)
    group = np.arange(rows // size, dtype=np.int64).repeat(size)
    columns: dict[str, np.ndarray] = {
        "step": group // prompts_per_step,
        "group_id": group,
    }
    names = [f"reward_{i}" for i in range(k)]
    for i, name in enumerate(names):
        if i % 2 == 0:  # a binary, often saturated objective
            p = rng.random(rows // size).repeat(size)
            columns[name] = (rng.random(rows) < p).astype(np.float64)
        else:  # a continuous one
            columns[name] = rng.random(rows)
    pl.DataFrame(columns).write_parquet(path)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--objectives", type=int, default=3)
    parser.add_argument("--prompts-per-step", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-ragged", action="store_true", help="skip the shuffled-rows run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--torch", action="store_true", help="pass torch tensors, not numpy")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows = args.rows - args.rows % args.group_size

    print(
        f"rows {rows:,}  objectives {args.objectives}  group size {args.group_size}  "
        f"torch threads {torch.get_num_threads()}  cpus {os.cpu_count()}  device {args.device}  "
        f"input {'torch' if args.torch else 'numpy'}"
    )
    results: list[tuple[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rollouts.parquet"
        start = time.perf_counter()
        names = write_log(path, rows, args.group_size, args.objectives, args.prompts_per_step)
        print(f"wrote {path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - start:.1f} s")

        loaded: dict[str, np.ndarray] = {}

        def read() -> None:
            frame = pl.read_parquet(path, columns=["step", "group_id", *names])
            loaded["rewards"] = frame.select(names).to_numpy()
            loaded["group"] = frame["group_id"].to_numpy()
            loaded["step"] = frame["step"].to_numpy()

        results.append(("read parquet (step, group_id, rewards)", timed(read, args.repeat, False)))
    rewards, group, step = loaded["rewards"], loaded["group"], loaded["step"]
    if args.torch:
        rewards, group, step = (torch.from_numpy(x) for x in (rewards, group, step))

    def run(schemes=SCHEMES, dtype=torch.float64, r=rewards, g=group, s=step):
        return lambda: compute_advantages(r, g, s, schemes=schemes, dtype=dtype, device=args.device)

    results.append(("all five schemes, float64", timed(run(), args.repeat)))
    results.append(("all five schemes, float32", timed(run(dtype=torch.float32), args.repeat)))
    for scheme in SCHEMES:
        results.append((f"{scheme} alone, float64", timed(run(schemes=(scheme,)), args.repeat)))
    results.append(
        (
            "group_stats, float64",
            timed(lambda: group_stats(rewards, group, device=args.device), args.repeat),
        )
    )
    if not args.skip_ragged:
        order = np.random.default_rng(1).permutation(rows)
        if args.torch:
            order = torch.from_numpy(order)
        shuffled = (rewards[order], group[order], step[order])
        del order
        results.append(
            (
                "all five, ragged path (rows shuffled), float64",
                timed(run(r=shuffled[0], g=shuffled[1], s=shuffled[2]), max(1, args.repeat - 1)),
            )
        )

    width = max(len(name) for name, _ in results)
    print(f"\n{'what':<{width}}  {'best s':>7}  {'median s':>8}  {'M rows/s':>8}")
    for name, (best, median) in results:
        print(f"{name:<{width}}  {best:7.2f}  {median:8.2f}  {rows / best / 1e6:8.1f}")


if __name__ == "__main__":
    main()

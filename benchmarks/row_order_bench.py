"""Benchmark of `dvao analyze --out` writing advantages.parquet in `row` order.

Not a test. Writes a `dvao simulate --no-text` log (--steps x 256 groups x 16; 2,048,000 rows at
the default 500 steps) and the same log with each step's rows shuffled (groups interleaved: the
engine takes them in another order than the file's, so each chunk is sorted back), then runs
`dvao analyze LOG --out DIR --json` --repeat times on each, for every tree given, and prints the
least user + system CPU seconds of the command (steadier than wall time on a shared machine),
and the wall time of that run.

    .venv/bin/python benchmarks/row_order_bench.py --tree after=. --tree before=/tmp/main-tree
    .venv/bin/python benchmarks/row_order_bench.py --steps 100 --repeat 3

A tree is a checkout of dvao (`git archive main | tar -x -C /tmp/main-tree` gives main's).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl


def _run(tree: Path, args: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `python -m dvao_cli ...` run from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dvao_cli", "-q", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    trees = [t.split("=", 1) for t in opts.tree] or [["here", "."]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = work / "log.parquet"
        _run(
            Path(trees[0][1]).resolve(),
            ["simulate", "--no-text", "-o", str(log), "--steps", str(opts.steps), "--groups",
             "256", "--group-size", "16", "--objectives", "accuracy,format,length,rm_score",
             "--seed", "0"],
        )  # fmt: skip
        frame = pl.read_parquet(log)
        rng = np.random.default_rng(0)
        shuffled = frame.with_columns(pl.Series("k", rng.random(frame.height)))
        shuffled.sort(["step", "k"]).drop("k").write_parquet(
            work / "interleaved.parquet", row_group_size=65_536
        )
        print(f"{frame.height:,} rows; least CPU (user + sys) of {opts.repeat} runs, its wall")
        for name in ("log.parquet", "interleaved.parquet"):
            for label, path in trees:
                runs = []
                for _ in range(opts.repeat):
                    out = work / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    args = ["analyze", str(work / name), "--out", str(out), "--json"]
                    runs.append(_run(Path(path).resolve(), args))
                cpu, wall = min(runs)
                print(f"  {name:<20} {label:<8} cpu {cpu:6.2f} s   wall {wall:6.2f} s")


if __name__ == "__main__":
    main()

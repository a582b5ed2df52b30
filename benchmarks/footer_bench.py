"""What reading Parquet footers costs a fresh process: pyarrow's `read_metadata` against the
Thrift decoder of `dvao_cli/reader/footer.py` (`decode_footer`).

Each measurement is a process of its own that imports polars and numpy first (every `dvao
analyze` does), then times the footer reader's import and the decoding of the first 1, 10 and
500 footers of a folder of Parquet parts (one per step, written by polars, as `dvao train`
writes its rollouts). Prints the medians over `--repeat` processes, the two readers alternating.

    python -m compileall -q dvao_cli    # as installed: this VM sets PYTHONDONTWRITEBYTECODE
    python benchmarks/footer_bench.py --repeat 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

COUNTS = (1, 10, 500)

# argv: READER FOLDER. Prints {"import": s, "1": s, "10": s, "500": s} (seconds).
CHILD = """
import json, sys, time
from pathlib import Path
import numpy, polars  # noqa: F401 (what every analyze has imported already)
reader, folder = sys.argv[1], Path(sys.argv[2])
parts = sorted(folder.glob("*.parquet"))
t = time.perf_counter()
if reader == "pyarrow":
    import pyarrow.parquet as pq
    read = lambda p: pq.read_metadata(p).num_rows
else:
    from dvao_cli.reader.footer import decode_footer
    read = lambda p: decode_footer(p).num_rows
out = {"import": time.perf_counter() - t}
done = 0
t = time.perf_counter()
for n in (1, 10, 500):
    for p in parts[done:n]:
        read(p)
    done = n
    out[str(n)] = time.perf_counter() - t
print(json.dumps(out))
"""


def make_parts(folder: Path, count: int) -> None:
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    for step in range(count):
        path = folder / f"step_{step:05d}.parquet"
        if path.exists():
            continue
        pl.DataFrame(
            {
                "step": [step] * 256,
                "group_id": [i // 8 for i in range(256)],
                "accuracy": [float(i % 2) for i in range(256)],
                "format": [1.0] * 256,
                "length": [i / 256 for i in range(256)],
            }
        ).write_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/data/footers"))
    args = parser.parse_args()
    make_parts(args.workdir, max(COUNTS))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    runs: dict[str, list[dict[str, float]]] = {"pyarrow": [], "dvao": []}
    for _ in range(args.repeat):
        for name in runs:
            argv = [sys.executable, "-c", CHILD, name, str(args.workdir)]
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout))
    print("| reader | import (ms) | 1 footer (ms) | 10 footers (ms) | 500 footers (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, got in runs.items():
        cells = [
            f"{1000 * statistics.median(r[key] for r in got):.1f}"
            for key in ("import", *map(str, COUNTS))
        ]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

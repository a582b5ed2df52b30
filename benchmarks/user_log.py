"""Write a log shaped like users' logs (a held-out log of this shape analysed at 4.8x a
streaming read): two pass/fail objectives and one continuous, in one Parquet file, streamed
(bounded memory).

    python benchmarks/user_log.py                     # 5,000 steps x 1,250 groups x 16 = 100M rows
    python benchmarks/user_log.py --steps 50 -o benchmarks/data/user-1M.parquet

Per group (prompt) of one step: `accuracy` ~ Bernoulli(p) with p ~ U(0, 1) drawn per group,
`format` ~ Bernoulli(0.95), `length` ~ U(0, 1) per response. Columns `step`, `group_id`
(unique over the run), `sample_id` (Int64), then the three rewards (Float64), one row group
per step range of about --chunk-rows rows, zstd, as `dvao simulate --no-text` writes. The data
depend only on --seed and the shape, not on --chunk-rows. Written to a temporary name and
renamed at the end (no partial file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=1250, help="groups (prompts) per step")
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=2_000_000)
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/data/user-100M.parquet"))
    args = parser.parse_args()

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_step = args.groups * args.group_size
    steps_per_chunk = max(1, args.chunk_rows // per_step)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    writer: pq.ParquetWriter | None = None
    try:
        for first in range(0, args.steps, steps_per_chunk):
            n_steps = min(steps_per_chunk, args.steps - first)
            shape = (n_steps, args.groups, args.group_size)
            # one generator per step: the data do not depend on the chunking
            accuracy = np.empty(shape)
            fmt = np.empty(shape)
            length = np.empty(shape)
            for i in range(n_steps):
                gen = np.random.default_rng([args.seed, first + i])
                p = gen.random(args.groups)  # (groups,) p ~ U(0, 1) per group
                accuracy[i] = gen.random((args.groups, args.group_size)) < p[:, None]
                fmt[i] = gen.random((args.groups, args.group_size)) < 0.95
                length[i] = gen.random((args.groups, args.group_size))
            steps = np.arange(first, first + n_steps, dtype=np.int64)
            table = pa.table(
                {
                    "step": np.repeat(steps, per_step),
                    "group_id": np.repeat(
                        np.arange(first * args.groups, (first + n_steps) * args.groups),
                        args.group_size,
                    ),
                    "sample_id": np.tile(
                        np.arange(args.group_size, dtype=np.int64), n_steps * args.groups
                    ),
                    "accuracy": accuracy.ravel(),
                    "format": fmt.ravel(),
                    "length": length.ravel(),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=len(table))
        if writer is not None:
            writer.close()
            writer = None
        os.replace(tmp, args.out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    rows = args.steps * per_step
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out}: {rows:,} rows, {size:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()

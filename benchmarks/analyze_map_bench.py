"""The map step of `dvao analyze` alone: ns per row on a log's first frames, in one process.

    python benchmarks/analyze_map_bench.py LOG [--frames 3] [--repeat 5] [--piece-rows N]

Reads the first --frames frames of whole steps (as `dvao analyze` plans them), then times
`analyze._map` over them --repeat times (best kept) on this process's one thread, with the
command line's allocator tuning. No reading, start-up or reduce: what the engine and the
diagnostics cost per row (docs/performance.md, "second pass").
"""

from __future__ import annotations

import argparse
import itertools
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--piece-rows", type=int, default=0, help="engine piece (0: dvao's)")
    args = parser.parse_args()

    from dvao_cli.analysis.runtime import tune_for_streaming

    tune_for_streaming()
    import dvao_cli.analysis.backends.rows as rows
    import dvao_cli.analysis.pipeline as analyze
    from dvao_cli.analysis.parts import Settings
    from dvao_cli.cli.options import resolve_weights
    from dvao_cli.reader.opening import open_log
    from dvao_cli.reader.stream import iter_frames

    if args.piece_rows:
        rows.ENGINE_PIECE_ROWS = args.piece_rows
    spec = open_log(args.log)
    frames = iter_frames(spec, chunk_rows=2_000_000, row_index=False)
    chosen = list(itertools.islice(frames, args.frames))
    names = list(spec.objectives)
    cfg = Settings(
        names, resolve_weights(names, {}), list(analyze.SCHEMES), 0, 0.0, "error", "cpu",
        False, False, spec, 1_000_000,
    )  # fmt: skip
    for frame in chosen:  # warm up
        analyze._map(frame, cfg)
    best = cpu = float("inf")
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for frame in chosen:
            analyze._map(frame, cfg)
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)  # steadier on a busy machine
    rows = sum(frame.height for frame in chosen)
    print(
        f"map: {best / rows * 1e9:.1f} ns a row, {cpu / rows * 1e9:.1f} of CPU ({rows:,} rows, "
        f"best of {args.repeat})"
    )


if __name__ == "__main__":
    main()

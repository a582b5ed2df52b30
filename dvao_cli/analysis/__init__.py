"""The analysis behind `dvao analyze`.

pipeline.py    a log -> summary: plan the ranges of whole steps, map each through a backend,
               reduce
parts.py       what the map step takes and gives (settings, a chunk's per-step sums)
accumulator.py the reduce step's state: every chunk's per-step sums, typed
workers.py     worker processes over ranges of whole steps (large logs)
runtime.py     allocator settings for the analysis processes
step_sums.py   the per-step sums every figure is made from, and the one zero rule
figures.py     per-step figures from rows, or from numerators times a scale per group
backends/      the named ways to compute the same figures (BACKENDS: rows, sums, patterns,
               alike)
summary.py     the summary (summary.json) and its tables
gate.py        `--fail-on` conditions over the summary
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """`BACKENDS`, loaded when asked for (the package itself stays import-light: the core's
    users import `backends.patterns` without polars)."""
    if name == "BACKENDS":
        from dvao_cli.analysis.backends.registry import BACKENDS

        return BACKENDS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

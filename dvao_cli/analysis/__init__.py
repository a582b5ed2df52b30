"""The analysis behind `dvao analyze`.

pipeline.py    a log -> summary: reading, grouping, the engine, the per-step sums
workers.py     worker processes over ranges of whole steps (large logs)
runtime.py     allocator settings for the analysis processes
step_sums.py   the per-step sums every figure is made from
figures.py     per-step figures from the rows of advantages
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

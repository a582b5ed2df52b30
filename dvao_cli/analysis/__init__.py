"""The analysis behind `dvao analyze`.

pipeline.py    a log -> summary: reading, grouping, the engine, the per-step sums
workers.py     worker processes over ranges of whole steps (large logs)
runtime.py     allocator settings for the analysis processes
step_sums.py   the per-step sums every figure is made from
figures.py     per-step figures from the rows of advantages
backends/      the ways to compute the same figures (patterns: from reward-pattern counts)
summary.py     the summary (summary.json) and its tables
gate.py        `--fail-on` conditions over the summary
"""

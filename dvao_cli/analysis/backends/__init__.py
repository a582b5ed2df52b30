"""The analysis backends: named ways to compute the same per-step figures of a chunk.

registry.py   BACKENDS (rows, sums, patterns, alike), `auto`'s choice, BackendError
rows.py       the row engine's two: every advantage computed, or two schemes described exactly
patterns.py   figures from per-group reward-pattern counts (numpy only)
"""

"""The computational core: the scheme table, its numerical conventions and the backends.

Imports neither typer, rich nor polars, and torch only for torch inputs (or CUDA): the command
line and the library both sit on top of it.

    schemes.py      the table of schemes: each one's numerator, per-group scale, whitening
    conventions.py  what "no signal", "rounding noise", "binary" and "too large" mean
    tolerances.py   the constants those rules use
    segments.py     group reductions over rows (numpy and torch; contiguous, ragged, interleaved)
    engine.py       the row backend: group moments and numerators from the rows, then the table
    counted.py      rewards with few values as pattern counts: every group sum over them
"""

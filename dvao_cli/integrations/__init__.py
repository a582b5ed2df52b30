"""DVAO inside the trainers users run: TRL (`trl.py`), verl (`verl.py`), ms-swift (`swift.py`).

Each module imports its trainer at import time, so import only the one you use. What they share,
the per-objective metrics every trainer logs, lives in `metrics.py`.
"""

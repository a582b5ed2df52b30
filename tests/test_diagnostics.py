"""Diagnostics (the engine path): the shortcuts agree with the plain counts."""

from __future__ import annotations

import numpy as np
import torch

from dvao_cli import diagnostics as dg
from dvao_cli.advantages import compute_advantages


def _batch(seed: int, k: int, ragged: bool):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, 40) if ragged else np.full(40, 8)
    steps = np.repeat(np.arange(4), 10)
    group = np.repeat(np.arange(40), sizes)
    step = np.repeat(steps, sizes)
    p = rng.random(k)
    rewards = (rng.random((group.shape[0], k)) < p).astype(np.float64)
    rewards[group % 7 == 0, 0] = 1.0  # some saturated objectives
    return (
        torch.from_numpy(rewards),
        torch.from_numpy(group),
        torch.from_numpy(step),
        torch.from_numpy(sizes.astype(np.int64)),
    )


def _index(step: torch.Tensor, group: torch.Tensor, sizes: torch.Tensor) -> dg.ChunkIndex:
    starts = torch.cumsum(sizes, 0) - sizes  # (G,) each group's first row
    steps, group_step = torch.unique_consecutive(step[starts], return_inverse=True)
    uniform = int(sizes[0]) if bool((sizes == sizes[0]).all()) else 0
    return dg.ChunkIndex(group, sizes, group_step, steps, uniform)


def test_grpo_shortcut_for_a_binary_primary_objective() -> None:
    rewards, group, step, sizes = _batch(0, 3, False)
    result = compute_advantages(rewards, group, step, dtype=torch.float64)
    ix = _index(step, group, sizes)
    fast = dg.distinct_advantages(
        result.advantages, ix, exact_shortcuts=True, stats=result.stats, primary_binary=True
    )
    slow = dg.distinct_advantages(result.advantages, ix, exact_shortcuts=False)
    for name in result.advantages:
        assert fast[name].tolist() == slow[name].tolist(), name


def test_binary_objectives_from_group_statistics() -> None:
    rewards, group, step, sizes = _batch(1, 3, True)
    rewards[5, 2] = 0.5  # one reward strictly between 0 and 1
    stats = compute_advantages(rewards, group, step, dtype=torch.float64).stats
    assert dg.binary_objectives(stats, ddof=0).tolist() == [True, True, False]
    stats1 = compute_advantages(rewards, group, step, ddof=1, dtype=torch.float64).stats
    assert dg.binary_objectives(stats1, ddof=1).tolist() == [True, True, False]

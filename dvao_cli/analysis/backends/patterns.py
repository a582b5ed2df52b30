"""The pattern backends: `dvao analyze` for rewards with few values, from per-group counts.

When each objective takes only a few distinct rewards in a chunk (pass/fail checks: 0 or 1;
partial credit: 0, 0.5, 1; penalties: -1, 0), a response's reward vector is one of at most
P = 64 patterns, and a group is described completely by how many of its responses show each
pattern: a (P, G) table of counts (`core.counted`). The rows are touched a few times (find each
objective's values, count); the engine then runs over the counts (`engine.run` with `counted`:
moments, each pattern's numerators, scales and sums of squares, the same bits as over the rows)
and the figures follow from each pattern's advantage (`figures.counted_sums`). The advantage
engine over rows makes several passes per objective and per scheme instead, so this is the path
for such logs; tests/test_backends.py checks that every backend gives the rows' numbers bit for
bit. Groups often share their counts (16 responses over 8 patterns: a 2M-row chunk's 125k groups
show about 37k distinct count columns), so on large chunks each distinct column is computed once
(`alike`) and its figures are spread to its groups only where per-step sums need them.

Numpy only: a run whose chunks all take this path never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dvao_cli.analysis.figures import CountedIndex, counted_sums
from dvao_cli.analysis.step_sums import (
    ObjectiveSums,
    PairSums,
    SchemeSums,
    StepIndex,
    counted_pair_sums,
    objective_sums,
)
from dvao_cli.core import engine
from dvao_cli.core import schemes as table
from dvao_cli.core.conventions import binary_objectives
from dvao_cli.core.counted import Counted

_DEDUP_MIN_GROUPS = 4096  # fewer groups: finding the alike ones costs more than it saves
_DEDUP_MAX_SHARE = 0.6  # more distinct count columns than this share of groups: no gain


Alike = tuple[np.ndarray, np.ndarray, np.ndarray]  # columns (P, U), inverse (G,), groups (U,)


def alike_of_counts(n: np.ndarray, force: bool = False) -> Alike | None:
    """Groups with the same count column have the same moments, numerators and per-group
    figures: (columns (P, U) int64 the distinct count columns, inverse (G,) each group's
    column, groups (U,) float how many groups show each), or None when few groups share one
    (unless `force`) or the columns do not fit an exact float key (unless `force`: then the
    columns themselves are compared, a slower sort).

    The key is the column read as a number in base (largest count + 1): integers below 2^53,
    so the matmul that forms it is exact."""
    n_patterns, n_groups = n.shape
    if n_groups < _DEDUP_MIN_GROUPS and not force:
        return None
    base = float(n.max()) + 1.0
    if base**n_patterns >= 2.0**53:
        if not force:
            return None
        found, inverse, groups = np.unique(n.T, axis=0, return_inverse=True, return_counts=True)
        return found.T.astype(np.int64), inverse.reshape(-1), groups.astype(np.float64)
    key = base ** np.arange(n_patterns, dtype=np.float64) @ n
    return _alike_of_keys(key, base, n_patterns, force)


def alike_groups(
    code: np.ndarray, n_patterns: int, n_groups: int, group_size: int, force: bool = False
) -> Alike | None:
    """`alike_of_counts` of the counts of rows in groups of `group_size` stored one after
    another, straight from their pattern codes (N,), without the (P, G) counts: each group's
    key is the sum over its rows of base^code, base = group_size + 1. None as there, or for
    groups not in blocks of one size (then `pattern_counts` and `alike_of_counts`)."""
    if group_size < 1 or (n_groups < _DEDUP_MIN_GROUPS and not force):
        return None
    base = float(group_size + 1)
    if base**n_patterns >= 2.0**53:
        return None
    power = base ** np.arange(n_patterns, dtype=np.float64)  # (P,)
    rows = code.reshape(n_groups, group_size)
    key = power.take(rows[:, 0])  # (G,) exact: integers below 2^53
    for i in range(1, group_size):
        key += power.take(rows[:, i])
    return _alike_of_keys(key, base, n_patterns, force)


def _alike_of_keys(key: np.ndarray, base: float, n_patterns: int, force: bool) -> Alike | None:
    """The distinct count columns from each group's key (G,): its counts as digits in `base`
    (None where too few groups share one, unless `force`)."""
    # return_counts: numpy's plain unique imports numpy.ma (6-15 ms of start-up)
    found, inverse, groups = np.unique(key, return_inverse=True, return_counts=True)
    if found.shape[0] > _DEDUP_MAX_SHARE * key.shape[0] and not force:
        return None
    place = np.int64(base) ** np.arange(n_patterns, dtype=np.int64)  # (P,) the key's digits
    columns = found.astype(np.int64)[None, :] // place[:, None] % np.int64(base)  # (P, U)
    return columns, inverse.reshape(-1), groups.astype(np.float64)


def pattern_sums(
    counted: Counted,
    group_step: np.ndarray,
    n_steps: int,
    weights: Sequence[float],
    schemes: Sequence[str],
    ddof: int = 0,
    eps: float = 0.0,
    primary: int = 0,
) -> tuple[ObjectiveSums, dict[str, SchemeSums], PairSums]:
    """A chunk's per-step sums from its pattern counts (`counted`, no rows): per group, or
    each distinct count column once (`Counted.inverse`: groups alike in their counts share
    every figure but the whitened schemes', whose scale is per step).

    group_step (G,) is each group's step code 0..S-1, non-decreasing (groups sorted by step);
    whole steps only, since GDPO whitens over a step. Moments, numerators per pattern, scales
    and sums of squares are the engine's over the same counts (`engine.run` with `counted`:
    the rows backends' sums, bit for bit); the largest |A|, the zero counts and the distinct
    values are found here from each pattern's advantage, where the rows backends find them
    from every response's.
    """
    result = engine.run(
        [], None, group_step, n_steps, list(weights), tuple(schemes), ddof=ddof, eps=eps,
        primary=primary, squares=True, counted=counted,
    )  # fmt: skip
    m = result.moments  # per column
    steps = StepIndex(group_step, n_steps)
    ix = CountedIndex.of(counted, steps)
    expand = ix.expand
    objective = objective_sums(
        steps, expand(m.size), expand(m.count), expand(m.mean), expand(m.std), expand(m.lo),
        expand(m.hi), expand(m.dvao_weight), ddof,
        # all or any over the groups: over the distinct ones is the same
        binary_objectives(m.count, m.mean, m.std, m.lo, m.hi, ddof),
    )  # fmt: skip
    twin = table.twins(schemes, missing=False)
    distinct_of: dict[str, np.ndarray] = {}
    sums: dict[str, SchemeSums] = {}
    for name in schemes:
        kind = table.numerator_of(name, missing=False)
        given = None  # the scheme's distinct values, where they are known already
        if name in twin:  # the same numerator times a positive scale: the same responses
            given = distinct_of[twin[name]]
        elif name == "grpo" and objective.binary[primary]:  # increasing in a binary reward
            given = 1 + (expand(m.std[primary]) > 0).astype(np.int64)  # 2 where it varies
        sums[name], distinct_of[name] = counted_sums(
            result.tables[kind],  # (P, U)
            result.scales[name],  # (G,) the whitening folded in
            result.squares[name],
            ix,
            per_group=table.BY_NAME[name].whitened,  # its scale per step, not per column
            distinct=given,
        )
    return objective, sums, counted_pair_sums(counted, m.mean, m.std, m.square, steps)

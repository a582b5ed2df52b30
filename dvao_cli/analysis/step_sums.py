"""What one chunk of a log contributes to `dvao analyze`: sums and counts per step, never means.

Chunks hold whole steps, so the per-step sums of every chunk are concatenated and the whole-log
figures are ratios of sums: the summary is the same whatever the chunk size. Every backend
(`analysis.backends`) fills these: the row backends from the engine's advantages, the pattern
backends from per-group reward-pattern counts. All give their group moments to
`objective_sums` and their correlations to `pair_sums`, so "saturated", "all-pass", "binary"
and the correlations are decided in one place. Arrays are numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dvao_cli.core.conventions import binary_objectives, near
from dvao_cli.core.counted import Counted
from dvao_cli.core.tolerances import DISTINCT_TOL, NOISE_ULPS, ZERO_TOL

__all__ = ["DISTINCT_TOL", "NOISE_ULPS", "ZERO_TOL"]  # the shared constants, from the core

Array = Any  # np.ndarray


class StepIndex:
    """Per-group values to per-step sums and maxima; the groups are sorted by step."""

    def __init__(self, group_step: np.ndarray, n_steps: int) -> None:
        self.group_step = group_step  # (G,) step code of each group, non-decreasing
        self.starts = np.searchsorted(group_step, np.arange(n_steps))  # (S,) first group

    def sum(self, values: np.ndarray, axis: int = -1) -> np.ndarray:  # groups on `axis`
        return np.add.reduceat(values, self.starts, axis=axis)

    def max(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.maximum.reduceat(values, self.starts, axis=axis)

    def min(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.minimum.reduceat(values, self.starts, axis=axis)

    def expand(self, values: np.ndarray) -> np.ndarray:  # (S,) -> (G,)
        return values[self.group_step]


@dataclass
class ObjectiveSums:
    """Per step (S,) or per step and objective (S, K)."""

    rows: Array  # (S,) responses
    groups: Array  # (S,) groups
    valid: Array  # (S, K) non-missing rewards
    reward_sum: Array  # (S, K)
    std_sum: Array  # (S, K) sum over groups of the within-group std
    saturated: Array  # (S, K) groups with a reward and zero within-group variance
    all_pass: Array  # (S, K) saturated groups whose reward is 1 (within BINARY_TOL)
    all_fail: Array  # (S, K) saturated groups whose reward is 0 (within BINARY_TOL)
    weight_sum: Array  # (S, K) sum over groups of the DVAO weight
    binary: Array  # (K,) every reward within BINARY_TOL of 0 or 1 (missing ones skipped)
    valid_groups: Array  # (S, K) groups with at least one reward of the objective
    signal_groups: Array  # (S,) groups where DVAO's weights are defined (some w_k sigma_k > 0)
    lo: Array  # (S, K) smallest reward (+inf where the objective has none in the step)
    hi: Array  # (S, K) largest reward (-inf where none)
    size_counts: Array  # (S, SIZE_BINS) groups of 1, 2, ... responses; the last bin: or more


SIZE_BINS = 9  # group sizes 1..8 counted one by one, then 9 or more: enough for a median <= 4


def objective_sums(
    steps: StepIndex,
    size: np.ndarray,
    count: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    dvao_weight: np.ndarray,
    ddof: int,
    binary: np.ndarray | None = None,
) -> ObjectiveSums:
    """A chunk's per-step objective sums from its group moments: size (G,) rows; count, mean,
    std, lo, hi (smallest / largest reward), dvao_weight (K, G). A group where the objective
    has no reward (all missing) is neither saturated nor part of its mean or std: it only
    counts in `groups`, not in `valid_groups`. binary (K,), when given, is `binary_objectives`
    of these moments already found (the pattern path: over its distinct groups, the same)."""
    present = count > 0  # (K, G)
    saturated = present & (std == 0)  # std is exactly 0 for a constant objective

    def per_step(values: np.ndarray) -> np.ndarray:  # (K, G) -> (S, K)
        return steps.sum(values.astype(np.float64, copy=False)).T

    size_bin = np.minimum(size, SIZE_BINS).astype(np.int64) - 1  # (G,)

    return ObjectiveSums(
        rows=steps.sum(size.astype(np.float64)),
        groups=steps.sum(np.ones(size.shape[0])),
        valid=per_step(count),
        reward_sum=per_step(np.where(present, mean * count, 0.0)),
        std_sum=per_step(std),
        saturated=per_step(saturated),
        all_pass=per_step(saturated & near(mean, 1.0)),
        all_fail=per_step(saturated & near(mean, 0.0)),
        weight_sum=per_step(dvao_weight),
        binary=binary_objectives(count, mean, std, lo, hi, ddof) if binary is None else binary,
        valid_groups=per_step(present),
        # a group carries a signal where DVAO's weights are defined: they sum to 1 there
        signal_groups=steps.sum((dvao_weight > 0).any(axis=0).astype(np.float64)),
        lo=steps.min(np.where(present, lo, np.inf)).T,
        hi=steps.max(np.where(present, hi, -np.inf)).T,
        size_counts=per_step(size_bin[None, :] == np.arange(SIZE_BINS)[:, None]),
    )


@dataclass
class SchemeSums:
    """One scheme's per-step sums (S,)."""

    square_sum: Array
    max_abs: Array
    zeros: Array
    distinct_adv: Array  # sum over groups of distinct advantage values
    distinct_rew: Array  # sum over groups of distinct reward vectors


@dataclass
class PairSums:
    """Within-group Pearson correlation sums per step, over groups where both objectives vary
    (per step, as every other sum: the whole-log figure is then the same whatever the chunks)."""

    corr_sum: Array  # (S, K, K)
    count: Array  # (S, K, K)


def pair_sums(
    centred_sq: np.ndarray,
    cross: Callable[[int, int], np.ndarray],
    varies: np.ndarray,
    steps: StepIndex,
    inverse: np.ndarray | None = None,
) -> PairSums:
    """Sums per step of the within-group Pearson correlation of every pair of objectives, over
    the groups where both vary.

    centred_sq (K, G): sum over each group of (r_k - mean_k)^2; cross(k, l) -> (G,): sum of
    (r_k - mean_k)(r_l - mean_l), asked for k < l only; varies (K, G) bool.
    Pearson = cross / sqrt(centred_sq_k centred_sq_l): the degrees of freedom cancel.
    inverse (G,), when given: the arrays are per distinct group (U,), and inverse says which
    one each group is (the pattern backends: each alike group computed once).
    """

    def total(values: np.ndarray) -> np.ndarray:  # (G,) or (U,) -> (S,)
        values = values.astype(np.float64, copy=False)
        return steps.sum(values if inverse is None else values.take(inverse))

    k_obj = varies.shape[0]
    n_steps = steps.starts.shape[0]
    centred_sq = np.maximum(centred_sq, 0.0)  # a sum of squares: never below 0 but by rounding
    corr_sum = np.zeros((n_steps, k_obj, k_obj))
    count = np.zeros((n_steps, k_obj, k_obj))
    for k in range(k_obj):
        count[:, k, k] = total(varies[k])
        corr_sum[:, k, k] = total(varies[k] & (centred_sq[k] > 0))  # rho_kk = 1
        for j in range(k + 1, k_obj):
            both = varies[k] & varies[j]  # (G,)
            denom = np.sqrt(centred_sq[k] * centred_sq[j])
            rho = np.divide(cross(k, j), denom, out=np.zeros_like(denom), where=both & (denom > 0))
            count[:, k, j] = count[:, j, k] = total(both)
            corr_sum[:, k, j] = corr_sum[:, j, k] = total(np.clip(rho, -1.0, 1.0))
    return PairSums(corr_sum, count)


def counted_pair_sums(
    counted: Counted, mean: np.ndarray, std: np.ndarray, square: np.ndarray, steps: StepIndex
) -> PairSums:
    """`pair_sums` of rewards given as pattern counts (`core.counted`): every backend's for
    such rewards. mean, std, square (K, n) per group (per distinct column with
    `counted.inverse`), as the engine gives them."""

    def cross(k: int, j: int) -> np.ndarray:
        return counted.cross(k, j, mean)

    return pair_sums(square, cross, std > 0, steps, counted.inverse)


@dataclass
class AgreementSums:
    """Agreement of one scheme with `logged_advantage` over rows where it is finite."""

    n: float
    max_diff: float
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float


def zero_limit(factor: np.ndarray) -> np.ndarray:
    """The largest x >= 0 with fl(x x factor) <= ZERO_TOL, for each factor >= 0 (inf where it
    is 0): ZERO_TOL / factor, moved by ulps to the exact boundary (its rounding can land on
    either side). The one zero rule of every backend: an advantage fl(a x factor) counts as
    zero exactly where |a| <= zero_limit(factor). A positive double's next one up or down is
    its bit pattern plus or minus 1; the steps touch only the entries that need them (full
    passes with np.nextafter cost 3 ns a row of the analysis, measured)."""
    factor = np.asarray(factor, dtype=np.float64)
    positive = factor > 0
    safe = factor.copy()
    safe[~positive] = 1.0
    limit = ZERO_TOL / safe  # positive and finite: safe is at most the largest double
    bits = limit.view(np.int64)
    over = np.flatnonzero(limit * safe > ZERO_TOL)
    for _ in range(8):  # down while over: one or two ulps at most
        if not over.shape[0]:
            break
        bits[over] -= 1
        over = over[limit[over] * safe[over] > ZERO_TOL]
    up = bits + 1
    within = np.flatnonzero(up.view(np.float64) * safe <= ZERO_TOL)
    for _ in range(8):  # up while the next one is still within
        if not within.shape[0]:
            break
        bits[within] += 1
        within = within[(bits[within] + 1).view(np.float64) * safe[within] <= ZERO_TOL]
    limit[~positive] = np.inf
    return limit

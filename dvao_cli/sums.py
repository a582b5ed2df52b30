"""What one chunk of a log contributes to `dvao analyze`: sums and counts per step, never means.

Chunks hold whole steps, so the per-step sums of every chunk are concatenated and the whole-log
figures are ratios of sums: the summary is the same whatever the chunk size. Two producers fill
these: `diagnostics` (torch, over the engine's advantages) and `patterns` (numpy, over per-group
reward-pattern counts when every objective is binary). Arrays are torch tensors or numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Array = Any  # torch.Tensor or np.ndarray

# Numerical conventions shared by every path:
# a combined std (RC's std of s, GDPO's step std) below this many ulps of its terms' magnitude
# is rounding noise (anti-correlated objectives whose weighted sum is constant) and counts as 0;
NOISE_ULPS = 64.0
# two advantages closer than 1e-8 count as one value when counting distinct values (the same
# advantage reached by different arithmetic differs in the last bits);
DISTINCT_SCALE = 1e8
# an advantage with |A| <= 1e-12 counts as zero.
ZERO_TOL = 1e-12


@dataclass
class ObjectiveSums:
    """Per step (S,) or per step and objective (S, K)."""

    rows: Array  # (S,) responses
    groups: Array  # (S,) groups
    valid: Array  # (S, K) non-missing rewards
    reward_sum: Array  # (S, K)
    std_sum: Array  # (S, K) sum over groups of the within-group std
    saturated: Array  # (S, K) groups with zero within-group variance
    all_pass: Array  # (S, K) groups where every reward is 1
    all_fail: Array  # (S, K) groups where every reward is 0
    weight_sum: Array  # (S, K) sum over groups of the DVAO weight
    binary: Array  # (K,) every reward in {0, 1} (missing ones skipped)


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
    """Within-group Pearson correlation sums over groups where both objectives vary."""

    corr_sum: Array  # (K, K)
    count: Array  # (K, K)


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

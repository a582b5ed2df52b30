"""What "no signal", "rounding noise", "binary" and "too large" mean: one function each, used
by every path (the row engine, the pattern counts, the diagnostics). docs/schemes.md states
the same rules for users.

Functions take numpy arrays or torch tensors (the array API, through array-api-compat).
"""

from __future__ import annotations

import math
from typing import Any

from dvao_cli.core.arrays import namespace
from dvao_cli.core.tolerances import BINARY_TOL, MAX_REWARD, NOISE_ULPS
from dvao_cli.errors import RewardValueError

Array = Any  # np.ndarray or torch.Tensor


def normaliser(std: Array, eps: float) -> Array:
    """1 / (std + eps) where std > 0, else 0: eps is added to every std that divides, and a
    std of 0 (no signal in the group) gives advantage 0, never NaN or inf. (std is never NaN:
    rewards are checked finite before any std is taken.)"""
    xp = namespace(std)
    signal = xp.astype(std > 0, std.dtype)  # 1 or 0
    # signal / (std + eps) where std > 0; 0 / (eps + 1) = 0 where not: exactly the two-where
    # form (adding 0 to std + eps changes no bit), at half its cost on per-group vectors
    return signal / (std + eps + (1.0 - signal))


def noise_free(std: Array, magnitude: Array) -> Array:
    """A combined std, or 0 where it is at most NOISE_ULPS ulps of `magnitude`, the size of
    the terms it was summed from: below that it is rounding noise (a weighted sum constant by
    cancellation), and so are the deviations it would divide."""
    xp = namespace(std, magnitude)
    floor = magnitude * (NOISE_ULPS * xp.finfo(std.dtype).eps)
    return xp.where(std > floor, std, 0.0)


def near(values: Array, target: float) -> Array:
    """Within float rounding (BINARY_TOL) of `target`: how a pass (1) or fail (0) is told."""
    xp = namespace(values)
    return xp.abs(values - target) <= BINARY_TOL


def binary_objectives(count: Array, mean: Array, std: Array, lo: Array, hi: Array, ddof: int):
    """(K,) bool from group statistics (K, G): every reward of the objective within float
    rounding of 0 or 1, groups without a reward skipped.

    In every group the rewards lie in [-tol, 1 + tol] and the mean of r (1 - r) is at most tol
    (tol = BINARY_TOL). For rewards in {0, 1}, r = r^2, so that mean, mean - mean^2 - var
    (population variance), is 0 up to rounding; a reward strictly inside (0, 1) makes it
    positive. count, mean, std (with `ddof`), lo and hi (smallest and largest reward) are what
    both backends compute, so a log is binary or not whatever path its chunks take.
    """
    xp = namespace(count, mean, std, lo, hi)
    n = xp.astype(count, mean.dtype)
    present = n > 0
    if ddof == 0 and n.shape[-1] and bool(xp.all(present)):  # all groups scored: per objective
        gap = mean - mean * mean - std * std  # (K, G) the mean of r (1 - r) over the group
        return (
            (xp.min(lo, axis=1) >= -BINARY_TOL)
            & (xp.max(hi, axis=1) <= 1.0 + BINARY_TOL)
            & (xp.max(gap, axis=1) <= BINARY_TOL)
        )
    to_population = xp.where(present, (n - ddof) / xp.where(present, n, 1.0), 0.0)
    var_pop = std * std * to_population
    gap = mean - mean * mean - var_pop  # mean of r (1 - r) over the group
    in_range = (lo >= -BINARY_TOL) & (hi <= 1.0 + BINARY_TOL) & (gap <= BINARY_TOL)
    return xp.all(~present | in_range, axis=1)


def check_rewards(k: int, count: Array, lo: Array, hi: Array, weight: float = 1.0) -> None:
    """Raise RewardValueError for objective k when a present reward (lo, hi (G,): the smallest
    and largest per group, count (G,)) is NaN or inf, or larger than MAX_REWARD in magnitude;
    with a preference `weight` above 1, when weight x reward is (RC's weighted sum squares it)."""
    xp = namespace(count, lo, hi)
    if count.shape[0] == 0:
        return
    present = count > 0
    if bool(xp.all(present)):  # every group has a reward: max |r| straight from the extremes
        top, bottom = float(xp.max(hi)), float(xp.min(lo))  # NaN propagates through both
        finite = math.isfinite(top) and math.isfinite(bottom)
        largest = max(top, -bottom)
    else:
        finite = bool(xp.all(~present | (xp.isfinite(lo) & xp.isfinite(hi))))
        if finite:
            largest = float(xp.max(xp.where(present, xp.maximum(xp.abs(lo), xp.abs(hi)), 0.0)))
    if not finite:
        raise RewardValueError(
            f"objective {k}: rewards contain NaN or inf; validate them or use nan='ignore'",
            objective=k,
            non_finite=True,
        )
    weight = float(weight)
    if weight > 1.0 and largest * weight > MAX_REWARD:
        raise RewardValueError(
            f"objective {k}: rewards reach {largest:.3g} in magnitude, and {weight:g} x that "
            f"passes {MAX_REWARD:.0e} (sums of the squares of weighted rewards must fit in "
            "float64): rescale the rewards or the weights",
            objective=k,
            non_finite=False,
        )
    if largest > MAX_REWARD:
        raise RewardValueError(
            f"objective {k}: rewards reach {largest:.3g} in magnitude; dvao needs |reward| <= "
            f"{MAX_REWARD:.0e} (sums of their squares must fit in float64): rescale them",
            objective=k,
            non_finite=False,
        )

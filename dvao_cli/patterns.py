"""`dvao analyze` for binary objectives: every figure from per-group reward-pattern counts.

When every reward is exactly 0 or 1, a response's reward vector is one of P = 2^K patterns and a
group is described completely by how many of its responses show each pattern: a (P, G) table of
counts. Group means and stds, DVAO weights, each scheme's advantage for each pattern and every
diagnostic `dvao analyze` reports follow from that table. Counting is one pass over the rows;
everything after works on (P, G), (K, G) or (G,) arrays, a fraction of the rows. The advantage
engine makes several passes over the rows per objective and per scheme instead, so this is the
path for the common pass/fail rewards; tests check that both give the same numbers.

Numpy only: a run whose chunks all take this path never imports torch.

Notation (docs/schemes.md): a group of n responses, n_p of them with pattern p whose reward for
objective k is b_pk; m_k = sum_p n_p b_pk responses with reward 1. Then

    mean_k = m_k / n        sum over the group of (r_k - mean_k)^2 = m_k (n - m_k) / n

and a scheme that is linear in the centred rewards with per-group coefficients c (K,) gives
pattern p the advantage c . (b_p - mean). The conventions are the engine's: ddof and eps as
given, sigma_k = 0 exactly when the objective is constant in the group (0 < m_k < n decides),
a normaliser of 0 gives advantage 0, and a combined std (RC's, GDPO's) below 64 ulps of its
terms is rounding noise: the advantage is then 0, whatever eps.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from dvao_cli.sums import (
    DISTINCT_SCALE,
    NOISE_ULPS,
    ZERO_TOL,
    ObjectiveSums,
    PairSums,
    SchemeSums,
    StepIndex,
    pair_sums,
)

MAX_OBJECTIVES = 6  # 2^6 = 64 patterns; past that the (P, G) tables outgrow the rows
_SORTING_NETWORK_MAX = 16  # distinct counts: a sorting network up to 16 patterns, np.sort past


def pattern_codes(columns: Sequence[np.ndarray]) -> np.ndarray | None:
    """(N,) uint8 pattern of each row (bit k = reward of objective k), or None unless every
    reward is exactly 0 or 1 (a NaN is neither, so a column with one also gives None)."""
    if not 0 < len(columns) <= MAX_OBJECTIVES:
        return None
    rows = columns[0].shape[0]
    code = np.zeros(rows, dtype=np.uint8)
    bit = np.empty(rows, dtype=np.uint8)
    for k, column in enumerate(columns):
        one = column == 1.0  # (N,) bool
        if np.count_nonzero(one) + np.count_nonzero(column == 0.0) != rows:
            return None
        np.left_shift(one.view(np.uint8), k, out=bit)
        code |= bit
    return code


def pattern_counts(
    code: np.ndarray,
    n_objectives: int,
    n_groups: int,
    group_size: int = 0,
    group: np.ndarray | None = None,
) -> np.ndarray:
    """(P, G) int64: how many responses of each group show each pattern.

    Rows are in groups of `group_size` stored one after another when it is given (no per-row
    group codes needed), else `group` (N,) holds each row's group code.
    """
    n_patterns = 1 << n_objectives
    if group_size:
        index = np.multiply(code.reshape(n_groups, group_size), n_groups, dtype=np.int64)
        index += np.arange(n_groups, dtype=np.int64)[:, None]  # (G, size): p * G + g
    else:
        assert group is not None
        index = np.multiply(code, n_groups, dtype=np.int64)
        index += group
    counts = np.bincount(index.reshape(-1), minlength=n_patterns * n_groups)
    return counts.reshape(n_patterns, n_groups)


_TINY = np.finfo(np.float64).tiny


def _inverse(denom: np.ndarray) -> np.ndarray:
    """1 / denom, 0 where denom is not positive (a normaliser of 0 gives advantage 0)."""
    return np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)


@cache
def _bits(n_objectives: int) -> np.ndarray:
    """(P, K) float: b_pk, the reward of objective k in pattern p."""
    patterns = np.arange(1 << n_objectives)[:, None] >> np.arange(n_objectives)
    return (patterns & 1).astype(np.float64)


@cache
def _comparators(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort for n (a power of 2) values: (i, j) pairs, i < j."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


def _distinct_present(values: np.ndarray, absent: np.ndarray, n_present: np.ndarray) -> np.ndarray:
    """(P, G) values -> (G,) distinct values among the present patterns of each group (absent
    (P, G) is inf where a pattern is absent, else 0; n_present (G,) counts the present ones),
    compared at 1e-8 as everywhere in `dvao analyze` (the same value reached by other sums
    counts once)."""
    keys = np.round(values * DISTINCT_SCALE)
    keys += absent  # absent patterns sort last, as inf
    n_patterns = keys.shape[0]
    if n_patterns <= _SORTING_NETWORK_MAX:  # P vectors of length G: a few fast vector ops
        rows = list(keys)
        for i, j in _comparators(n_patterns):
            low = np.minimum(rows[i], rows[j])
            np.maximum(rows[i], rows[j], out=rows[j])
            rows[i] = low
    else:
        rows = list(np.sort(keys, axis=0))
    changes = np.zeros(keys.shape[1], dtype=np.int64)  # (G,) steps between sorted neighbours
    for i in range(1, n_patterns):
        changes += rows[i] != rows[i - 1]
    # the absent patterns (all inf, last) add one step, from the largest present value
    return 1 + changes - (n_present < n_patterns)


_ABSENT = np.array([np.inf, 0.0])


def _absent(present: np.ndarray) -> np.ndarray:
    """inf where not present, 0 where present: x - absent and x + absent keep the present
    values for a max and a min (a lookup: faster than np.where)."""
    return _ABSENT.take(present.view(np.uint8))


def _zero_count(magnitude: np.ndarray, limit: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Responses per group whose advantage is zero: |A| = magnitude (Q, G) times a per-group
    factor, so |A| <= 1e-12 where magnitude <= limit (G,) (inf where the factor is 0)."""
    return np.einsum("qg,qg->g", magnitude <= limit, n)


def _zero_limit(factor: np.ndarray) -> np.ndarray:
    """(G,) 1e-12 / factor: the largest magnitude whose advantage counts as zero."""
    return np.divide(ZERO_TOL, factor, out=np.full_like(factor, np.inf), where=factor > 0)


def pattern_sums(
    counts: np.ndarray,
    group_step: np.ndarray,
    n_steps: int,
    weights: Sequence[float],
    schemes: Sequence[str],
    ddof: int = 0,
    eps: float = 0.0,
) -> tuple[ObjectiveSums, dict[str, SchemeSums], PairSums]:
    """A chunk's per-step sums from its pattern counts (P, G).

    group_step (G,) is each group's step code 0..S-1, non-decreasing (groups sorted by step);
    whole steps only, since GDPO whitens over a step. Same conventions as the engine.

    Every scheme is linear in the centred rewards inside a group: A = c . (r - mean) with
    per-group coefficients c (K, G), so the advantage of pattern p is c . b_p - c . mean.
    """
    n_patterns, n_groups = counts.shape
    k_obj = n_patterns.bit_length() - 1
    bits = _bits(k_obj)  # (P, K)
    w = np.asarray(weights, dtype=np.float64)  # (K,)
    steps = StepIndex(group_step, n_steps)
    n = counts.astype(np.float64)  # (P, G)
    present = counts > 0  # (P, G)
    absent = _absent(present)  # (P, G) inf where a pattern is absent, else 0

    size = n.sum(axis=0)  # (G,)
    ones = bits.T @ n  # (K, G) m_k: responses with reward 1
    mean = ones / size  # (K, G)
    inv_dof = _inverse(size - ddof)  # (G,)
    # constant in the group (min == max) or too few responses for ddof: sigma is exactly 0
    varies = (ones > 0) & (ones < size) & (inv_dof > 0)  # (K, G)
    std = np.sqrt(ones * (size - ones) / size * inv_dof) * varies  # (K, G) as the engine's
    inv_std = varies / np.maximum(std + eps, _TINY)  # (K, G) 1 / (sigma + eps), 0 if constant
    wsig = w @ std  # (G,) sum_l w_l sigma_l
    dvao_weight = std * (w[:, None] * _inverse(wsig))  # (K, G)

    want = set(schemes)
    distinct_rew = np.count_nonzero(present, axis=0)  # (G,) distinct reward vectors
    per_group: dict[str, tuple[np.ndarray, ...]] = {}  # name -> square, max_abs, zeros, distinct

    if "grpo" in want:  # the primary (first) objective alone: its rewards 1 and 0
        high, low = (1.0 - mean[0]) * inv_std[0], -mean[0] * inv_std[0]  # (G,) advantages
        n_high, n_low = ones[0], size - ones[0]
        per_group["grpo"] = (
            n_high * high**2 + n_low * low**2,
            np.maximum(np.where(n_high > 0, np.abs(high), 0.0), np.where(n_low > 0, -low, 0.0)),
            np.where(np.abs(high) <= ZERO_TOL, n_high, 0.0)
            + np.where(np.abs(low) <= ZERO_TOL, n_low, 0.0),
            1 + varies[0],  # increasing in the primary reward: 2 values where it varies
        )

    if want & {"rc", "dvao"}:
        # For the patterns present, sum_k w_k [sigma_k > 0] (r_k - mean_k) = s - mean s with
        # s = w . b (a constant objective has r_k = mean_k). RC and DVAO divide it by a
        # per-group constant, so patterns with the same s (the same in every group) share
        # their advantage: work on those classes of patterns.
        s_values, of_class = np.unique(bits @ w, return_inverse=True)  # (C,), (P,)
        member = (of_class[None, :] == np.arange(s_values.shape[0])[:, None]).astype(np.float64)
        class_n = member @ n  # (C, G)
        class_present = class_n > 0
        class_absent = _absent(class_present)
        s_mean = w @ mean  # (G,)
        hi = (s_values[:, None] - class_absent).max(axis=0) - s_mean  # over the present ones
        lo = (s_values[:, None] + class_absent).min(axis=0) - s_mean
        num_max = np.maximum(hi, -lo)  # (G,) max |s - mean s|
        deviation = np.abs(s_values[:, None] - s_mean)  # (C, G)
        # from the deviations, not c' Co c: s constant by cancellation must give a sum of
        # squares at the rounding noise of the deviations, as the engine's (see rc_std)
        num_square = (class_n * deviation * deviation).sum(axis=0)
        # distinct values at 1e-8: classes whose s rounds the same count once
        keys, of_key = np.unique(np.round(s_values * DISTINCT_SCALE), return_inverse=True)
        if keys.shape[0] < s_values.shape[0]:
            same = (of_key[None, :] == np.arange(keys.shape[0])[:, None]).astype(np.float64)
            class_present = (same @ class_present) > 0
        distinct = np.count_nonzero(class_present, axis=0)
        rc_std = np.sqrt(num_square * inv_dof)
        # below the rounding noise of s's terms, s is constant by cancellation: RC gives 0
        scale_s = np.abs(w) @ (ones > 0)  # (G,) sum_k |w_k| max|r_k| (binary: 1 unless all 0)
        rc_noise = rc_std <= scale_s * (NOISE_ULPS * np.finfo(np.float64).eps)
        rc_factor = np.where(rc_noise, 0.0, _inverse(rc_std + eps))
        for name, factor in (("rc", rc_factor), ("dvao", _inverse(wsig + eps))):
            if name in want:
                zeros = _zero_count(deviation, _zero_limit(factor), class_n)
                per_group[name] = (num_square * factor**2, num_max * factor, zeros, distinct)

    if want & {"ac", "gdpo"}:
        coef = w[:, None] * inv_std  # (K, G)
        raw = bits @ coef  # (P, G) c . b_p
        offset = (coef * mean).sum(axis=0)  # (G,) c . mean: A = raw - offset
        hi = (raw - absent).max(axis=0) - offset  # (G,) largest AC advantage present
        lo = (raw + absent).min(axis=0) - offset
        magnitude = np.abs(raw - offset[None, :])  # (P, G) |A| of each pattern
        ac_square = (n * magnitude * magnitude).sum(axis=0)  # not c' Co c: see num_square
        # GDPO is increasing in AC within a step: the same distinct values
        distinct = _distinct_present(raw, absent, distinct_rew)
        if "ac" in want:
            zeros = _zero_count(magnitude, np.full(n_groups, ZERO_TOL), n)
            per_group["ac"] = (ac_square, np.maximum(hi, -lo), zeros, distinct)
        if "gdpo" in want:  # AC whitened over each step's responses, as the engine's _whiten
            # AC sums to 0 over every group, so over the step: the step mean is 0
            count = steps.sum(size)  # (S,)
            step_dof = count - ddof
            total = steps.sum(ac_square)  # (S,) sum of AC^2 over the step
            step_var = np.divide(total, step_dof, out=np.zeros_like(total), where=step_dof > 0)
            step_std = np.sqrt(step_var)
            # below the rounding noise of AC's terms (|w_k| max|r_k - mean_k| / sigma_k; a
            # binary objective that varies has both rewards), AC is 0 by cancellation: so is GDPO
            spread = np.maximum(mean, 1.0 - mean)  # (K, G) max |r - mean| over rewards 0 and 1
            scale = steps.max((np.abs(w)[:, None] * inv_std * spread).sum(axis=0))  # (S,)
            noise = step_std <= scale * (NOISE_ULPS * np.finfo(np.float64).eps)
            factor = steps.expand(np.where(noise, 0.0, _inverse(step_std + eps)))  # (G,)
            zeros = _zero_count(magnitude, _zero_limit(factor), n)
            per_group["gdpo"] = (
                ac_square * factor**2,
                np.maximum(hi, -lo) * factor,
                zeros,
                distinct,
            )
    scheme = {
        name: SchemeSums(
            square_sum=steps.sum(square),
            max_abs=steps.max(max_abs),
            zeros=steps.sum(zeros),
            distinct_adv=steps.sum(distinct.astype(np.float64)),
            distinct_rew=steps.sum(distinct_rew.astype(np.float64)),
        )
        for name in schemes
        for square, max_abs, zeros, distinct in [per_group[name]]
    }

    saturated = ~varies  # (K, G)
    objective = ObjectiveSums(
        rows=steps.sum(size),
        groups=steps.sum(np.ones(n_groups)),
        valid=np.repeat(steps.sum(size)[:, None], k_obj, axis=1),
        reward_sum=steps.sum(ones).T,
        std_sum=steps.sum(std).T,
        saturated=steps.sum(saturated.astype(np.float64)).T,
        all_pass=steps.sum((saturated & (ones == size)).astype(np.float64)).T,
        all_fail=steps.sum((saturated & (ones == 0)).astype(np.float64)).T,
        weight_sum=steps.sum(dvao_weight).T,
        binary=np.ones(k_obj, dtype=bool),
    )
    # centred sums over the group: sum (r_k - mean_k)(r_l - mean_l) = m_kl - m_k m_l / n, with
    # m_kl the responses with both rewards 1 (for k = l: m_k (n - m_k) / n)
    pairs = pair_sums(
        ones * (1.0 - mean),
        lambda k, j: (bits[:, k] * bits[:, j]) @ n - ones[k] * mean[j],
        varies,
    )
    return objective, scheme, pairs

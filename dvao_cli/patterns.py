"""`dvao analyze` for rewards with few values: every figure from per-group pattern counts.

When each objective takes only a few distinct rewards in a chunk (pass/fail checks: 0 or 1;
partial credit: 0, 0.5, 1; penalties: -1, 0), a response's reward vector is one of at most
P = 64 patterns, and a group is described completely by how many of its responses show each
pattern: a (P, G) table of counts. Group means and stds, DVAO weights, each scheme's advantage
for each pattern and every diagnostic `dvao analyze` reports follow from that table. The rows
are touched a few times (find each objective's values, count); everything after works on
(P, G), (K, G) or (G,) arrays, a fraction of the rows. The advantage engine makes several passes
over the rows per objective and per scheme instead, so this is the path for such logs; tests
check that both give the same numbers.

Numpy only: a run whose chunks all take this path never imports torch.

Notation (docs/schemes.md): a group of n responses, n_p of them with pattern p whose reward for
objective k is v_pk. A scheme that is linear in the centred rewards with per-group coefficients
c (K,) gives pattern p the advantage c . (v_p - mean). The conventions are the engine's: ddof
and eps as given, sigma_k = 0 exactly when the objective is constant in the group (one value
present decides), a normaliser of 0 gives advantage 0, and a combined std (RC's, GDPO's) below
64 ulps of its terms is rounding noise: the advantage is then 0, whatever eps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from dvao_cli.sums import (
    DISTINCT_TOL,
    NOISE_ULPS,
    ZERO_TOL,
    ObjectiveSums,
    PairSums,
    SchemeSums,
    StepIndex,
    pair_sums,
)

MAX_PATTERNS = 64  # reward vectors a group can show; past that the tables outgrow the rows
MAX_VALUES = 8  # distinct rewards of one objective in a chunk
_SORTING_NETWORK_MAX = 16  # distinct counts: a sorting network up to 16 patterns, np.sort past


@dataclass(frozen=True)
class Patterns:
    """The reward vectors of a chunk: each row's pattern, and what the patterns hold."""

    code: np.ndarray  # (N,) uint8 pattern of each row
    levels: list[np.ndarray]  # per objective, its distinct rewards, ascending

    @property
    def n_patterns(self) -> int:
        return math.prod(len(values) for values in self.levels)


def pattern_digits(levels: Sequence[np.ndarray]) -> np.ndarray:
    """(P, K) int: the index of pattern p's reward among objective k's levels (objective 0 is
    the lowest digit of the code)."""
    sizes = [len(values) for values in levels]
    place = np.cumprod([1, *sizes[:-1]])  # (K,)
    return (np.arange(math.prod(sizes))[:, None] // place) % np.array(sizes)


def pattern_values(levels: Sequence[np.ndarray]) -> np.ndarray:
    """(P, K) float: v_pk, the reward of objective k in pattern p."""
    digits = pattern_digits(levels)
    return np.stack([values[digits[:, k]] for k, values in enumerate(levels)], axis=1)


def _levels(column: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A column's distinct values (ascending) and each row's index among them (uint8; None when
    there is one value), or None past MAX_VALUES values or with a NaN or inf. One comparison
    pass per value (a binary column: two, and its index is one of their masks)."""
    first = column[0]
    if not math.isfinite(first):  # NaN or inf: the engine's checks say where
        return None
    found = [first]
    masks: list[np.ndarray] = []  # rows holding each value after the first
    remaining = column != first  # (N,) bool: rows not matched yet
    left = int(np.count_nonzero(remaining))
    while left:
        value = column[int(np.argmax(remaining))]
        if len(found) == MAX_VALUES or not math.isfinite(value):
            return None
        same = column == value  # a subset of the remaining rows
        left -= int(np.count_nonzero(same))
        if left:
            np.logical_and(remaining, ~same, out=remaining)
        found.append(value)
        masks.append(same)
    levels = np.sort(np.array(found, dtype=np.float64))
    if not masks:
        return levels, None
    if len(masks) == 1:  # two values: the rows of the larger one
        digit = masks[0] if found[1] > found[0] else ~masks[0]
        return levels, digit.view(np.uint8)
    rank = np.empty(len(found), dtype=np.uint8)  # each found value's place in ascending order
    rank[np.argsort(found)] = np.arange(len(found))
    digit = np.full(column.shape[0], rank[0], dtype=np.uint8)  # rows of the first value
    for mask, place in zip(masks, rank[1:], strict=True):
        digit[mask] = place
    return levels, digit


def pattern_codes(columns: Sequence[np.ndarray]) -> Patterns | None:
    """Each row's pattern of rewards, or None when an objective has more than MAX_VALUES
    distinct rewards (or a NaN) or there would be more than MAX_PATTERNS patterns."""
    if not columns or columns[0].shape[0] == 0:
        return None
    for column in columns:  # a continuous column shows itself in its first rows: no full pass
        if np.unique(column[:1024]).shape[0] > MAX_VALUES:
            return None
    code = np.zeros(columns[0].shape[0], dtype=np.uint8)
    levels: list[np.ndarray] = []
    place = 1
    for column in columns:
        found = _levels(column)
        if found is None or place * len(found[0]) > MAX_PATTERNS:
            return None
        values, digit = found
        if digit is not None:
            code += digit * np.uint8(place) if place > 1 else digit
        levels.append(values)
        place *= len(values)
    return Patterns(code, levels)


def pattern_counts(
    code: np.ndarray,
    n_patterns: int,
    n_groups: int,
    group_size: int = 0,
    group: np.ndarray | None = None,
) -> np.ndarray:
    """(P, G) int64: how many responses of each group show each pattern.

    Rows are in groups of `group_size` stored one after another when it is given (no per-row
    group codes needed), else `group` (N,) holds each row's group code.
    """
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
    """(Q, G) values -> (G,) distinct values among the present rows of each group (absent
    (Q, G) is inf where a row is absent, else 0; n_present (G,) counts the present ones).
    Sorted, a value more than 1e-8 above the previous one is a new one, as the engine path
    counts them."""
    keys = values + absent  # absent rows sort last, as inf
    n_rows = keys.shape[0]
    if n_rows <= _SORTING_NETWORK_MAX:  # Q vectors of length G: a few fast vector ops
        width = 1 << (n_rows - 1).bit_length()  # the network sorts a power of 2: pad
        rows = list(keys) + [np.full(keys.shape[1], np.inf)] * (width - n_rows)
        for i, j in _comparators(width):
            low = np.minimum(rows[i], rows[j])
            np.maximum(rows[i], rows[j], out=rows[j])
            rows[i] = low
    else:
        rows = list(np.sort(keys, axis=0))
    changes = np.zeros(keys.shape[1], dtype=np.int64)  # (G,) gaps between sorted neighbours
    with np.errstate(invalid="ignore"):  # inf - inf between absent rows: NaN, no gap
        for i in range(1, len(rows)):
            changes += rows[i] - rows[i - 1] > DISTINCT_TOL
    # the absent rows (inf, last) add one gap, above the largest present value
    return 1 + changes - (n_present < len(rows))


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
    levels: Sequence[np.ndarray],
    group_step: np.ndarray,
    n_steps: int,
    weights: Sequence[float],
    schemes: Sequence[str],
    ddof: int = 0,
    eps: float = 0.0,
) -> tuple[ObjectiveSums, dict[str, SchemeSums], PairSums]:
    """A chunk's per-step sums from its pattern counts (P, G) and the objectives' levels (the
    `Patterns` the codes came with).

    group_step (G,) is each group's step code 0..S-1, non-decreasing (groups sorted by step);
    whole steps only, since GDPO whitens over a step. Same conventions as the engine.

    Every scheme is linear in the centred rewards inside a group: A = c . (r - mean) with
    per-group coefficients c (K, G), so the advantage of pattern p is c . v_p - c . mean.
    """
    digits, values = pattern_digits(levels), pattern_values(levels)  # (P, K) each
    n_patterns, n_groups = counts.shape
    k_obj = values.shape[1]
    w = np.asarray(weights, dtype=np.float64)  # (K,)
    steps = StepIndex(group_step, n_steps)
    n = counts.astype(np.float64)  # (P, G)
    present = counts > 0  # (P, G)
    absent = _absent(present)  # (P, G) inf where a pattern is absent, else 0

    size = n.sum(axis=0)  # (G,)
    total = values.T @ n  # (K, G) sum of each objective's rewards
    mean = total / size  # (K, G)
    inv_dof = _inverse(size - ddof)  # (G,)
    binary = np.array([set(lv.tolist()) <= {0.0, 1.0} for lv in levels])  # (K,) rewards 0 / 1
    # per objective, the responses holding each of its values: (V_k, G)
    level_n = [
        (digits[:, k][None, :] == np.arange(len(lv))[:, None]).astype(np.float64) @ n
        for k, lv in enumerate(levels)
    ]
    level_absent = [_absent(counts_k > 0) for counts_k in level_n]
    # constant in the group (one value present) or too few responses for ddof: sigma is 0
    varies = np.stack([np.count_nonzero(c > 0, axis=0) > 1 for c in level_n]) & (inv_dof > 0)
    # sum over the group of (r_k - mean_k)^2, from the deviations (as the engine sums them)
    centred_sq = np.stack(
        [
            (c * (lv[:, None] - mean[k]) ** 2).sum(axis=0)
            for k, (lv, c) in enumerate(zip(levels, level_n, strict=True))
        ]
    )  # (K, G)
    std = np.sqrt(centred_sq * inv_dof) * varies  # (K, G)
    inv_std = varies / np.maximum(std + eps, _TINY)  # (K, G) 1 / (sigma + eps), 0 if constant
    wsig = w @ std  # (G,) sum_l w_l sigma_l
    dvao_weight = std * (w[:, None] * _inverse(wsig))  # (K, G)
    # the largest and smallest reward present, per objective (K, G)
    high = np.stack(
        [(lv[:, None] - a).max(axis=0) for lv, a in zip(levels, level_absent, strict=True)]
    )
    low = np.stack(
        [(lv[:, None] + a).min(axis=0) for lv, a in zip(levels, level_absent, strict=True)]
    )

    want = set(schemes)
    distinct_rew = np.count_nonzero(present, axis=0)  # (G,) distinct reward vectors
    per_group: dict[str, tuple[np.ndarray, ...]] = {}  # name -> square, max_abs, zeros, distinct

    if "grpo" in want:  # the primary (first) objective alone: a table over its values
        adv = (levels[0][:, None] - mean[0]) * inv_std[0]  # (V_0, G)
        magnitude = np.abs(adv)
        if binary[0]:  # increasing in a binary reward: 2 values or 1
            distinct = 1 + varies[0]
        else:
            distinct = _distinct_present(adv, level_absent[0], np.count_nonzero(level_n[0], 0))
        per_group["grpo"] = (
            (level_n[0] * magnitude * magnitude).sum(axis=0),
            (magnitude - level_absent[0]).max(axis=0),
            _zero_count(magnitude, np.full(n_groups, ZERO_TOL), level_n[0]),
            distinct,
        )

    if want & {"rc", "dvao"}:
        # For the patterns present, sum_k w_k [sigma_k > 0] (r_k - mean_k) = s - mean s with
        # s = w . v (a constant objective has r_k = mean_k, up to rounding). RC and DVAO divide
        # it by a per-group constant, so patterns with the same s (the same in every group)
        # share their advantage: work on those classes of patterns.
        s_values, of_class = np.unique(values @ w, return_inverse=True)  # (C,), (P,)
        member = (of_class[None, :] == np.arange(s_values.shape[0])[:, None]).astype(np.float64)
        class_n = member @ n  # (C, G)
        class_present = class_n > 0
        class_absent = _absent(class_present)
        # a constant objective's mean is its value (n v / n can miss it by an ulp)
        s_mean = w @ np.where(varies, mean, high)  # (G,)
        hi = (s_values[:, None] - class_absent).max(axis=0) - s_mean  # over the present ones
        lo = (s_values[:, None] + class_absent).min(axis=0) - s_mean
        num_max = np.maximum(hi, -lo)  # (G,) max |s - mean s|
        deviation = np.abs(s_values[:, None] - s_mean)  # (C, G)
        # from the deviations, not c' Co c: s constant by cancellation must give a sum of
        # squares at the rounding noise of the deviations, as the engine's (see rc_std)
        num_square = (class_n * deviation * deviation).sum(axis=0)
        rc_std = np.sqrt(num_square * inv_dof)
        # below the rounding noise of s's terms, s is constant by cancellation: RC gives 0
        scale_s = np.abs(w) @ np.maximum(np.abs(low), np.abs(high))  # (G,) sum_k |w_k| max|r_k|
        rc_noise = rc_std <= scale_s * (NOISE_ULPS * np.finfo(np.float64).eps)
        rc_factor = np.where(rc_noise, 0.0, _inverse(rc_std + eps))
        # where no objective varies, the engine's deviations are exactly 0 (each is masked)
        dvao_factor = np.where(wsig > 0, _inverse(wsig + eps), 0.0)
        # distinct RC advantages among the classes present (1e-8, as the engine compares them);
        # DVAO is RC times a positive constant in each group: the same responses apart
        signed = (s_values[:, None] - s_mean) * rc_factor  # (C, G)
        distinct = _distinct_present(signed, class_absent, np.count_nonzero(class_present, 0))
        for name, factor in (("rc", rc_factor), ("dvao", dvao_factor)):
            if name in want:
                zeros = _zero_count(deviation, _zero_limit(factor), class_n)
                per_group[name] = (num_square * factor**2, num_max * factor, zeros, distinct)

    if want & {"ac", "gdpo"}:
        coef = w[:, None] * inv_std  # (K, G)
        ac = values @ coef  # (P, G) c . v_p
        ac -= (coef * mean).sum(axis=0)  # AC advantage of each pattern: c . (v_p - mean)
        hi = (ac - absent).max(axis=0)  # (G,) largest AC advantage present
        lo = (ac + absent).min(axis=0)
        magnitude = np.abs(ac)  # (P, G)
        ac_square = (n * magnitude * magnitude).sum(axis=0)  # not c' Co c: see num_square
        # GDPO is increasing in AC within a step: the same distinct values
        distinct = _distinct_present(ac, absent, distinct_rew)
        if "ac" in want:
            zeros = _zero_count(magnitude, np.full(n_groups, ZERO_TOL), n)
            per_group["ac"] = (ac_square, np.maximum(hi, -lo), zeros, distinct)
        if "gdpo" in want:  # AC whitened over each step's responses, as the engine's _whiten
            # AC sums to 0 over every group, so over the step: the step mean is 0
            count = steps.sum(size)  # (S,)
            step_dof = count - ddof
            step_total = steps.sum(ac_square)  # (S,) sum of AC^2 over the step
            step_var = np.divide(
                step_total, step_dof, out=np.zeros_like(step_total), where=step_dof > 0
            )
            step_std = np.sqrt(step_var)
            # below the rounding noise of AC's terms (|w_k| max|r_k - mean_k| / sigma_k), AC
            # is 0 by cancellation: so is GDPO
            spread = np.maximum(high - mean, mean - low)  # (K, G) max |r_k - mean_k|
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
        reward_sum=steps.sum(total).T,
        std_sum=steps.sum(std).T,
        saturated=steps.sum(saturated.astype(np.float64)).T,
        all_pass=steps.sum((saturated & (mean == 1.0)).astype(np.float64)).T,
        all_fail=steps.sum((saturated & (mean == 0.0)).astype(np.float64)).T,
        weight_sum=steps.sum(dvao_weight).T,
        binary=binary,
    )
    # centred cross sums over the group: sum (r_k - mean_k)(r_l - mean_l) = sum r_k r_l - n
    # mean_k mean_l (the engine's formula too)
    pairs = pair_sums(
        centred_sq,
        lambda k, j: (values[:, k] * values[:, j]) @ n - total[k] * mean[j],
        varies,
    )
    return objective, scheme, pairs

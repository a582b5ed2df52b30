"""`dvao analyze` for rewards with few values: every figure from per-group pattern counts.

When each objective takes only a few distinct rewards in a chunk (pass/fail checks: 0 or 1;
partial credit: 0, 0.5, 1; penalties: -1, 0), a response's reward vector is one of at most
P = 64 patterns, and a group is described completely by how many of its responses show each
pattern: a (P, G) table of counts. Group means and stds, DVAO weights, each scheme's advantage
for each pattern and every diagnostic `dvao analyze` reports follow from that table. The rows
are touched a few times (find each objective's values, count); everything after works on
(P, G), (K, G) or (G,) arrays, a fraction of the rows. The advantage engine makes several passes
over the rows per objective and per scheme instead, so this is the path for such logs; tests
check that both give the same numbers. Groups often share their counts (16 responses over 8
patterns: a 2M-row chunk's 125k groups show about 37k distinct count columns), so on large
chunks each distinct column is computed once and its figures are spread to its groups only
where per-step sums need them.

Numpy only: a run whose chunks all take this path never imports torch.

Notation (docs/schemes.md): a group of n responses, n_p of them with pattern p whose reward for
objective k is v_pk. Every scheme of the table (`dvao_cli.core.schemes`) is a numerator that is
linear in the centred rewards, with per-group coefficients c (K,), times a per-group scale:
pattern p gets c . (v_p - mean) times that scale. This module computes group moments and those
numerators from the counts; the formulas and conventions (`core.conventions`: sigma_k = 0
exactly when one value is present, a normaliser of 0 gives 0, rounding noise) are the table's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from dvao_cli.analysis.step_sums import (
    ObjectiveSums,
    PairSums,
    SchemeSums,
    StepIndex,
    objective_sums,
    pair_sums,
    zero_limit,
)
from dvao_cli.core import schemes as table
from dvao_cli.core.conventions import binary_objectives, check_rewards
from dvao_cli.core.tolerances import DISTINCT_TOL

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
        # return_counts: numpy's plain unique imports numpy.ma (6-15 ms of start-up)
        if np.unique(column[:1024], return_counts=True)[0].shape[0] > MAX_VALUES:
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


def _zeros_of_groups(
    size_u: np.ndarray,
    n_u: np.ndarray,
    absent_u: np.ndarray,
    largest: np.ndarray,
    limit: np.ndarray,
    inverse: np.ndarray,
) -> np.ndarray:
    """(G,) responses of each group whose |numerator| is at most the group's limit (G,), from
    the numerator's sizes, counts and absent marks per distinct column (U', U), its largest
    size present (U,) and each group's column (G,). A group whose largest size is within its
    limit counts all its responses, one whose smallest is above it none: only the groups in
    between compare pattern by pattern."""
    smallest = (size_u + absent_u).min(axis=0).take(inverse)  # (G,) over the vectors present
    top = largest.take(inverse)  # (G,)
    zeros = np.where(top <= limit, n_u.sum(axis=0).take(inverse), 0.0)
    mixed = np.flatnonzero((smallest <= limit) & (limit < top))
    if mixed.shape[0]:
        of = inverse[mixed]
        zeros[mixed] = np.einsum("pg,pg->g", size_u[:, of] <= limit[mixed], n_u[:, of])
    return zeros


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _absent(present: np.ndarray) -> np.ndarray:
    """inf where not present, 0 where present: x - absent and x + absent keep the present
    values for a max and a min (a lookup: faster than np.where)."""
    return _ABSENT.take(present.view(np.uint8))


def pattern_sums(
    counts: np.ndarray | None,
    levels: Sequence[np.ndarray],
    group_step: np.ndarray,
    n_steps: int,
    weights: Sequence[float],
    schemes: Sequence[str],
    ddof: int = 0,
    eps: float = 0.0,
    primary: int = 0,
    alike: Alike | None = None,
) -> tuple[ObjectiveSums, dict[str, SchemeSums], PairSums]:
    """A chunk's per-step sums from its pattern counts (P, G) and the objectives' levels (the
    `Patterns` the codes came with). `alike`, when given (`alike_groups`, `alike_of_counts`),
    stands for the counts (then None): their distinct columns and which group shows which,
    each column computed once.

    group_step (G,) is each group's step code 0..S-1, non-decreasing (groups sorted by step);
    whole steps only, since GDPO whitens over a step. The formulas are the scheme table's: each
    numerator is sum_k c_k (v_pk - mean_k) for pattern p, with the table's coefficients c (K, G)
    per group, and each scheme is its numerator times the table's scale.
    """
    digits, values = pattern_digits(levels), pattern_values(levels)  # (P, K) each
    k_obj = values.shape[1]
    w = np.asarray(weights, dtype=np.float64)  # (K,)
    for k, lv in enumerate(levels):  # NaN never takes this path; magnitude is checked here
        check_rewards(k, np.ones(1), lv[:1], lv[-1:], float(w[k]))
    steps = StepIndex(group_step, n_steps)
    # Everything per group is computed once per distinct count column (U <= G of them, "the
    # columns") and spread to the groups (`expand`) only where sums over steps need them.
    if alike is None:
        assert counts is not None
        n = counts.astype(np.float64)  # (P, G)
    groups = None  # (U,) groups per column; None: one each (the columns are the groups)
    if alike is None:

        def expand(a: np.ndarray) -> np.ndarray:
            return a

    else:
        counts, inverse, groups = alike
        n = counts.astype(np.float64)

        def expand(a: np.ndarray) -> np.ndarray:  # (..., U) -> (..., G)
            return a.take(inverse, axis=-1)

    present = counts > 0  # (P, G)
    absent = _absent(present)  # (P, G) inf where a pattern is absent, else 0

    size = n.sum(axis=0)  # (G,)
    total = values.T @ n  # (K, G) sum of each objective's rewards
    mean = total / size  # (K, G)
    inv_dof = _inverse(size - ddof)  # (G,)
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
    # the largest and smallest reward present, per objective (K, G)
    high = np.stack(
        [(lv[:, None] - a).max(axis=0) for lv, a in zip(levels, level_absent, strict=True)]
    )
    low = np.stack(
        [(lv[:, None] + a).min(axis=0) for lv, a in zip(levels, level_absent, strict=True)]
    )

    def numerator(kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The numerator sum_k c_k (v_k - mean_k) of each distinct reward vector over the
        objectives with a term in it (U, G), and the responses showing each (U, G): for the
        primary numerator, one row per value of the primary objective instead of P."""
        terms = [table.coefficients(kind, k, std[k], w[k], eps, primary) for k in range(k_obj)]
        used = [k for k, t in enumerate(terms) if t is not None]
        c = np.stack([terms[k] for k in used])  # (K', G)
        if len(used) == k_obj:
            rows, counts_u = values, n
        else:  # patterns alike on the objectives with a term share their numerator
            rows, of_row = np.unique(values[:, used], axis=0, return_inverse=True)
            member = of_row.reshape(-1)[None, :] == np.arange(rows.shape[0])[:, None]  # (U, P)
            counts_u = member.astype(np.float64) @ n
        return rows @ c - (c * mean[used]).sum(axis=0), counts_u

    @cache
    def magnitude(kind: str) -> np.ndarray:  # (G,) the size of the numerator's terms
        return table.magnitude(kind, w, mean, std, low, high, eps)

    size_g = expand(size)  # (G,)
    objective = objective_sums(
        steps,
        size_g,
        np.repeat(size_g[None, :], k_obj, axis=0),
        expand(mean),
        expand(std),
        expand(low),
        expand(high),
        expand(table.dvao_weight(std, w)),
        ddof,
        # all or any over the groups: over the distinct ones is the same
        binary_objectives(np.repeat(size[None, :], k_obj, axis=0), mean, std, low, high, ddof),
    )
    numerators: dict[str, tuple[np.ndarray, ...]] = {}  # kind -> its values and their sizes
    distinct_rew = expand(np.count_nonzero(present, axis=0))  # (G,) distinct reward vectors
    twin = table.twins(schemes, missing=False)
    per_group: dict[str, tuple[np.ndarray, ...]] = {}  # name -> square, max_abs, zeros, distinct
    for name in schemes:
        scheme = table.BY_NAME[name]
        kind = table.numerator_of(name, missing=False)
        if kind not in numerators:
            num, n_u = numerator(kind)  # (U, G) each
            absent_u = absent if n_u is n else _absent(n_u > 0)
            size_u = np.abs(num)  # (U, G)
            square = (n_u * size_u * size_u).sum(axis=0)  # (G,) from the deviations, as the engine
            largest = (size_u - absent_u).max(axis=0)  # (G,) over the vectors present
            numerators[kind] = (num, n_u, absent_u, size_u, square, largest)
        num, n_u, absent_u, size_u, square, largest = numerators[kind]
        own = table.own_std(square, inv_dof, magnitude(kind)) if scheme.uses_own_std else None
        scale = scheme.scale(table.Spread(std, w, primary, own), eps)  # (U,) >= 0
        spread = expand  # the figures below are per column, to be spread to the groups
        if scheme.whitened:  # the numerator sums to 0 over every group, so over the step
            factor = table.whitening(
                steps.sum(expand(square * scale * scale)),
                steps.sum(size_g),
                steps.max(expand(magnitude(kind))),
                ddof,
                eps,
            )  # (S,)
            scale = expand(scale) * steps.expand(factor)  # (G,): groups alike, steps not
            spread = _same
        # the advantage of pattern p is fl(num[p] x scale): |A| <= ZERO_TOL exactly where
        # |num| <= limit (the rows' rule, not ZERO_TOL / scale, which rounds either way)
        limit = zero_limit(scale)
        if spread is _same and alike is not None:  # this scheme's figures per group
            zeros = _zeros_of_groups(size_u, n_u, absent_u, largest, limit, inverse)
            square, largest = expand(square), expand(largest)
            if name not in twin:
                num, absent_u, size_u = expand(num), expand(absent_u), expand(size_u)
                n_u = expand(n_u)
        else:
            zeros = spread(np.einsum("pg,pg->g", size_u <= limit, n_u))
        if name in twin:
            distinct = per_group[twin[name]][3]
        elif name == "grpo" and objective.binary[primary]:  # increasing in a binary reward
            distinct = spread(1 + (std[primary] > 0))  # 2 values where it varies, else 1
        else:
            distinct = spread(
                _distinct_present(num * scale, absent_u, np.count_nonzero(n_u, axis=0))
            )
        per_group[name] = (
            spread(square * scale * scale),
            spread(largest * scale),
            zeros,
            distinct,
        )
    scheme_sums = {
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
    # centred cross sums over the group: sum (r_k - mean_k)(r_l - mean_l) = sum r_k r_l - n
    # mean_k mean_l (the engine's formula too)
    pairs = pair_sums(
        centred_sq,
        lambda k, j: (values[:, k] * values[:, j]) @ n - total[k] * mean[j],
        std > 0,
        groups,
    )
    return objective, scheme_sums, pairs

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
from dvao_cli.core import engine
from dvao_cli.core import schemes as table
from dvao_cli.core.conventions import binary_objectives
from dvao_cli.core.counted import Counted, pattern_digits
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


def _absent(present: np.ndarray) -> np.ndarray:
    """inf where not present, 0 where present: x - absent and x + absent keep the present
    values for a max and a min (a lookup: faster than np.where)."""
    return _ABSENT.take(present.view(np.uint8))


def first_of_columns(inverse: np.ndarray, n_columns: int) -> np.ndarray:
    """(U,) the first group that shows each distinct count column (inverse (G,))."""
    first = np.empty(n_columns, dtype=np.int64)
    first[inverse[::-1]] = np.arange(inverse.shape[0] - 1, -1, -1)
    return first


def _zeros_of_groups(
    size: np.ndarray, counts: np.ndarray, absent: np.ndarray, limit: np.ndarray, inverse
) -> np.ndarray:
    """(G,) responses of each group whose |numerator| is at most the group's limit (G,), from
    the numerator's sizes, counts and absent marks per distinct column (P, U) and each group's
    column (G,). A group whose largest size is within its limit counts all its responses, one
    whose smallest is above it none: only the groups in between compare pattern by pattern."""
    smallest = (size + absent).min(axis=0).take(inverse)  # (G,) over the patterns present
    top = (size - absent).max(axis=0).take(inverse)  # (G,)
    zeros = np.where(top <= limit, counts.sum(axis=0).take(inverse), 0.0)
    mixed = np.flatnonzero((smallest <= limit) & (limit < top))
    if mixed.shape[0]:
        of = inverse[mixed]
        zeros[mixed] = np.einsum("pg,pg->g", size[:, of] <= limit[mixed], counts[:, of])
    return zeros


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
    n_columns = counted.counts.shape[1]
    inverse = counted.inverse
    if inverse is None:  # one column per group
        inverse = first = np.arange(n_columns)

        def expand(a: np.ndarray) -> np.ndarray:
            return a

    else:
        first = first_of_columns(inverse, n_columns)  # (U,) a group showing each column

        def expand(a: np.ndarray) -> np.ndarray:  # (..., U) -> (..., G)
            return a.take(inverse, axis=-1)

    m = result.moments  # per column
    steps = StepIndex(group_step, n_steps)
    objective = objective_sums(
        steps, expand(m.size), expand(m.count), expand(m.mean), expand(m.std), expand(m.lo),
        expand(m.hi), expand(m.dvao_weight), ddof,
        # all or any over the groups: over the distinct ones is the same
        binary_objectives(m.count, m.mean, m.std, m.lo, m.hi, ddof),
    )  # fmt: skip
    counts = counted.counts  # (P, U)
    absent = _absent(counted.present)  # (P, U) inf where a column does not show the pattern
    shown = np.count_nonzero(counted.present, axis=0)  # (U,) distinct reward vectors
    distinct_rew = steps.sum(expand(shown).astype(np.float64))  # (S,)
    twin = table.twins(schemes, missing=False)
    distinct_of: dict[str, np.ndarray] = {}
    sums: dict[str, SchemeSums] = {}
    for name in schemes:
        kind = table.numerator_of(name, missing=False)
        numerator = result.tables[kind]  # (P, U)
        scale = result.scales[name]  # (G,) the whitening folded in
        size = np.abs(numerator)  # (P, U)
        # |fl(num x scale)| is fl(|num| x scale), and rounding is monotone: the largest |A|
        # of a group is fl(its largest |num| x scale), and |A| <= ZERO_TOL exactly where
        # |num| <= zero_limit(scale) (the rows' rule)
        largest = expand((size - absent).max(axis=0)) * scale  # (G,)
        whitened = table.BY_NAME[name].whitened  # its scale per group, else per column
        if whitened and counted.inverse is not None:
            zeros = _zeros_of_groups(size, counts, absent, zero_limit(scale), inverse)
        else:
            limit = zero_limit(scale[first])  # (U,)
            zeros = expand(np.einsum("pg,pg->g", size <= limit, counts))
        if name in twin:  # the same numerator times a positive scale: the same responses
            distinct = distinct_of[twin[name]]
        elif name == "grpo" and objective.binary[primary]:  # increasing in a binary reward
            distinct = 1 + (expand(m.std[primary]) > 0).astype(np.int64)  # 2 if it varies
        elif whitened and counted.inverse is not None:  # per group
            distinct = _distinct_present(expand(numerator) * scale, expand(absent), expand(shown))
        else:
            distinct = expand(_distinct_present(numerator * scale[first], absent, shown))
        distinct_of[name] = distinct
        sums[name] = SchemeSums(
            square_sum=steps.sum(result.squares[name]),
            max_abs=steps.max(largest),
            zeros=steps.sum(zeros),
            distinct_adv=steps.sum(distinct.astype(np.float64)),
            distinct_rew=distinct_rew,
        )
    pairs = pair_sums(
        m.square,
        lambda k, j: counted.cross(k, j, m.mean),
        m.std > 0,
        steps,
        counted.inverse,
    )  # every backend's for such rewards (`counted_pair_sums`), per column
    return objective, sums, pairs

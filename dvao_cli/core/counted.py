"""Rewards with few values, described by counts: the one definition of every group sum over
them.

When each objective takes a few distinct rewards (pass/fail checks: 0 or 1; partial credit: 0,
0.5, 1), a response's reward vector is one of P patterns, and a group is described completely
by how many of its responses show each pattern: a (P, n) table of counts. A sum over a group's
rows is then a sum over its patterns, each term times its count. Floating-point sums depend
on their order, so a sum over the rows and the same sum over the counts differ in the last
bits; for such rewards every backend (the engine over rows, the pattern backends over counts
alone) takes its group sums from here, and they agree bit for bit. Row-level figures that
need no sum (extremes, zero counts, distinct values) are still taken from each backend's own
values, which is what the equivalence test checks.

Rows become counts here too: `pattern_codes` finds each row's pattern (None past MAX_VALUES
rewards of an objective or MAX_PATTERNS patterns), `pattern_counts` counts them per group.

Notation: pattern p has reward v_pk for objective k (`values` (P, K)); objective 0 is the
lowest digit of a pattern's code. Arrays are numpy (the engine takes this path on the CPU),
patterns first: (P, n), each pattern's groups one long row (numpy reduces along it fast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

MAX_PATTERNS = 64  # reward vectors a group can show; past that the tables outgrow the rows
MAX_VALUES = 8  # distinct rewards of one objective in a chunk


def pattern_digits(levels: Sequence[np.ndarray]) -> np.ndarray:
    """(P, K) int: the index of pattern p's reward among objective k's levels."""
    sizes = [len(values) for values in levels]
    place = np.cumprod([1, *sizes[:-1]])  # (K,)
    return (np.arange(math.prod(sizes))[:, None] // place) % np.array(sizes)


def pattern_values(levels: Sequence[np.ndarray]) -> np.ndarray:
    """(P, K) float: v_pk, the reward of objective k in pattern p."""
    digits = pattern_digits(levels)
    return np.stack([values[digits[:, k]] for k, values in enumerate(levels)], axis=1)


@dataclass(frozen=True)
class Patterns:
    """The reward vectors of a chunk: each row's pattern, and what the patterns hold."""

    code: np.ndarray  # (N,) uint8 pattern of each row
    levels: list[np.ndarray]  # per objective, its distinct rewards, ascending

    @property
    def n_patterns(self) -> int:
        return math.prod(len(values) for values in self.levels)


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


@dataclass(frozen=True)
class Counted:
    """A chunk's rewards as pattern counts per group, in group-code order.

    levels  K x (L_k,) each objective's distinct rewards, ascending
    counts  (P, n) float64 how many responses of each group show each pattern (P = prod L_k)
    code    (N,) uint8 each row's pattern in the rows' order, when there are rows (the
            engine's advantages are its pattern's, row by row); None for the counts alone
    inverse (G,) when `counts` holds each distinct column once (groups alike in their counts
            have alike moments and numerators): the column each group shows; n is then the
            number of columns
    """

    levels: tuple[np.ndarray, ...]
    counts: np.ndarray
    code: np.ndarray | None = field(default=None, compare=False)
    inverse: np.ndarray | None = field(default=None, compare=False)

    @cached_property
    def digits(self) -> np.ndarray:  # (P, K)
        return pattern_digits(self.levels)

    @cached_property
    def values(self) -> np.ndarray:  # (P, K) v_pk
        return pattern_values(self.levels)

    @cached_property
    def size(self) -> np.ndarray:  # (n,) int64 responses per group
        return self.counts.sum(axis=0).astype(np.int64)

    def level_counts(self, k: int) -> np.ndarray:
        """(L_k, n) how many responses of each group have each of objective k's rewards."""
        member = self.digits[:, k][None, :] == np.arange(len(self.levels[k]))[:, None]
        return member.astype(np.float64) @ self.counts  # exact: integers

    def total(self, k: int, level_n: np.ndarray) -> np.ndarray:
        """(n,) sum of objective k's rewards over each group, from its level counts."""
        return _in_order(self.levels[k][:, None] * level_n)

    def extremes(self, k: int, level_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) each group's smallest and largest reward of objective k (every group has one)."""
        held = level_n > 0  # (L, n)
        lv = self.levels[k]
        lo = lv[np.argmax(held, axis=0)]
        hi = lv[lv.shape[0] - 1 - np.argmax(held[::-1], axis=0)]
        return lo, hi

    def centred_square(self, k: int, level_n: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """(n,) sum over each group of (r_k - mean_k)^2, each deviation fl(v - mean) as the
        rows' are."""
        deviation = self.levels[k][:, None] - mean  # (L, n)
        return _in_order(level_n * (deviation * deviation))

    def deviations(self, k: int, mean: np.ndarray) -> np.ndarray:
        """(P, n) fl(v_pk - mean_k) for each pattern and group: the rows' deviations."""
        return self.values[:, k][:, None] - mean[None, :]

    def square_sum(self, table: np.ndarray) -> np.ndarray:
        """(n,) sum over each group's responses of x^2, from x per pattern (P, n)."""
        return _in_order(table * table * self.counts)

    def cross(self, k: int, j: int, mean: np.ndarray) -> np.ndarray:
        """(n,) sum over each group of (r_k - mean_k)(r_j - mean_j), mean (K, n)."""
        return _in_order(self.deviations(k, mean[k]) * self.deviations(j, mean[j]) * self.counts)


def _in_order(terms: np.ndarray) -> np.ndarray:
    """(M, n) -> (n,) the sum of each column's terms, added first to last: a term of 0 (a
    level or pattern a group does not show, or that another chunk has and this one not)
    leaves the bits of the sum as they are, whatever its place."""
    out = terms[0].copy()
    for term in terms[1:]:
        out += term
    return out

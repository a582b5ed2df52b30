"""A scheme's figures per step, made here for every backend: pure numpy functions.

A chunk holds whole steps; rows are sorted by (step, group) with contiguous groups. Everything
here returns *sums and counts* per step (never means), so chunks add up exactly and the whole-log
summary is the same whatever the chunk size. Over rows (`scheme_sums`, `scaled_sums`,
`two_valued_sums`), row-level work is reduced to groups first (a reshape when every group has
the same size), then groups to steps; over pattern counts (`counted_sums`), from each
pattern's advantage per distinct count column. Both keep the rows' rules: an advantage is zero
where |numerator| <= zero_limit(scale), a largest |A| is fl(largest |numerator| x scale), a
distinct value is a sorted gap above DISTINCT_TOL, and `_per_step` assembles the result. The
engine's figures per group (`engine.GroupMoments`) become the per-objective sums in
`step_sums.objective_sums`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from dvao_cli.analysis.step_sums import (
    AgreementSums,
    PairSums,
    SchemeSums,
    StepIndex,
    pair_sums,
    zero_limit,
)
from dvao_cli.core.counted import Counted, pattern_codes
from dvao_cli.core.schemes import twins
from dvao_cli.core.segments import row_count, row_max, row_sum
from dvao_cli.core.tolerances import DISTINCT_TOL, ZERO_TOL


@dataclass
class ChunkIndex:
    """Where each row and group sits. Shapes: N rows, G groups, S steps in this chunk."""

    group: np.ndarray  # (N,) int64 group code, non-decreasing
    sizes: np.ndarray  # (G,) rows per group
    group_step: np.ndarray  # (G,) step code of each group
    steps: np.ndarray  # (S,) the step values
    uniform: int  # the common group size when every group has it, else 0

    @property
    def n_groups(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.steps.shape[0])

    @cached_property
    def by_step(self) -> StepIndex:
        return StepIndex(self.group_step, self.n_steps)

    @cached_property
    def starts(self) -> np.ndarray:  # (G,) each group's first row
        return np.cumsum(self.sizes) - self.sizes

    @cached_property
    def step_rows(self) -> np.ndarray:  # (S,) each step's first row (a step's rows are contiguous)
        return self.starts[self.by_step.starts]

    def grouped(self, values: np.ndarray) -> np.ndarray:  # (N,) -> (G, size), uniform only
        return values.reshape(self.n_groups, self.uniform)

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum rows (N,) of floats into their groups (G,)."""
        if self.uniform:
            return row_sum(self.grouped(values))
        return np.add.reduceat(values, self.starts) if values.shape[0] else values[:0]

    def group_max(self, values: np.ndarray) -> np.ndarray:
        if self.uniform:
            return row_max(self.grouped(values))
        return np.maximum.reduceat(values, self.starts)

    def group_count(self, mask: np.ndarray) -> np.ndarray:
        """(G,) int64: how many rows of each group `mask` (N,) bool marks."""
        if self.uniform:
            return row_count(self.grouped(mask))
        return self.group_sum(mask.astype(np.float64)).astype(np.int64)

    def step_count(self, mask: np.ndarray) -> np.ndarray:
        """(S,) float64: how many rows of each step `mask` (N,) bool marks (exact counts)."""
        if self.uniform:  # per group, then per step
            return self.by_step.sum(self.group_count(mask).astype(np.float64))
        return np.add.reduceat(mask, self.step_rows, dtype=np.float64)  # over each step's rows

    def group_dot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(G,) sum over each group of a * b, without an (N,) temporary when uniform."""
        if self.uniform:
            return np.einsum("ij,ij->i", self.grouped(a), self.grouped(b))
        return self.group_sum(a * b)


def distinct_per_group(values: np.ndarray, ix: ChunkIndex, tol: float = 0.0) -> np.ndarray:
    """Number of distinct values of `values` (N,) in each group, shape (G,): sorted, a value
    more than `tol` above the previous one is a new one."""
    if ix.uniform:
        ordered = np.sort(ix.grouped(values), axis=1).reshape(-1)  # (N,) sorted in each group
        # gaps between neighbours in one flat pass, the one across each group's end cleared
        # (2.4x faster than (G, size - 1) float gaps, measured)
        gaps = np.empty(ordered.shape[0], dtype=bool)
        np.greater(ordered[1:] - ordered[:-1], tol, out=gaps[:-1])
        gaps[ix.uniform - 1 :: ix.uniform] = False
        return 1 + ix.group_count(gaps)
    order = np.lexsort((values, ix.group))  # by group, then value
    ordered, sorted_group = values[order], ix.group[order]
    new_value = np.ones(ordered.shape[0], dtype=bool)
    new_value[1:] = (ordered[1:] - ordered[:-1] > tol) | (sorted_group[1:] != sorted_group[:-1])
    return np.bincount(sorted_group, weights=new_value, minlength=ix.n_groups).astype(np.int64)


def _primes(n: int) -> list[int]:
    found: list[int] = []
    candidate = 2
    while len(found) < n:
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def reward_vector_keys(columns: list[np.ndarray], missing: bool = True) -> np.ndarray:
    """One float per row to sort reward vectors by: K x (N,) -> (N,). Equal vectors get equal
    keys; different ones almost always different keys (the coefficients are square roots of
    distinct primes), but not surely (rounding can merge two), so `distinct_vectors` checks
    rows with equal keys exactly."""
    keys = np.zeros(columns[0].shape[0])
    for column, prime in zip(columns, _primes(len(columns)), strict=True):
        values = np.nan_to_num(column, nan=-7.0) if missing else column
        keys += values * prime**0.5
    return keys


_NAN_BITS = np.array([np.nan]).view(np.int64)[0]


def _exact_bits(column: np.ndarray, missing: bool) -> np.ndarray:
    """(N,) int64 equal exactly where the rewards are equal: 0.0 and -0.0 alike, and with
    `missing` every NaN alike."""
    bits = (column + 0.0).view(np.int64)  # + 0.0: -0.0 becomes 0.0
    return np.where(np.isnan(column), _NAN_BITS, bits) if missing else bits


def distinct_vectors(columns: list[np.ndarray], ix: ChunkIndex, missing: bool) -> np.ndarray:
    """(G,) distinct reward vectors in each group, the rewards compared exactly (K x (N,)).

    Rewards with few values (every one of the pattern backend's kind): each row's pattern
    code is an exact key (below MAX_PATTERNS = 64: a group's codes are the bits of one
    word, counted). Any other: rows ordered by `reward_vector_keys`
    within their group, a new vector where a neighbour's rewards differ in any bit; a group
    where two neighbours share a key but not their rewards (the key merged them) is sorted
    again on the rewards themselves."""
    found = pattern_codes(columns)
    if found is not None:  # codes below 64: a group's set of them is one uint64, counted
        bit = np.left_shift(np.uint64(1), found.code.astype(np.uint64))  # (N,)
        held = np.bitwise_or.reduceat(bit, ix.starts) if bit.shape[0] else bit[:0]  # (G,)
        return np.bitwise_count(held).astype(np.int64)
    keys = reward_vector_keys(columns, missing)
    bits = [_exact_bits(column, missing) for column in columns]
    if ix.uniform:  # (G, size) argsort per group, as flat row numbers
        order = np.argsort(ix.grouped(keys), axis=1)
        order += np.arange(0, keys.shape[0], ix.uniform)[:, None]
        order = order.reshape(-1)
    else:
        order = np.lexsort((keys, ix.group))
    group = ix.group[order]
    boundary = group[1:] != group[:-1]  # (N - 1,) neighbours in different groups
    differ = np.zeros(boundary.shape[0], dtype=bool)
    for b in bits:
        ordered = b[order]
        differ |= ordered[1:] != ordered[:-1]
    ordered_keys = keys[order]
    merged = ~boundary & differ & (ordered_keys[1:] == ordered_keys[:-1])
    new = np.ones(order.shape[0], dtype=bool)
    new[1:] = boundary | differ
    counts = np.bincount(group, weights=new, minlength=ix.n_groups).astype(np.int64)
    for g in np.unique(group[1:][merged]):  # rare: the rows themselves, lexicographically
        rows = np.stack([b[ix.group == g] for b in bits], axis=1)  # (size, K)
        counts[g] = np.unique(rows, axis=0).shape[0]
    return counts


def distinct_reward_vectors(
    columns: list[np.ndarray],
    ix: ChunkIndex,
    missing: bool,
    distinct_adv: Iterable[np.ndarray] = (),
) -> np.ndarray:
    """(G,) distinct reward vectors in each group (K x (N,) rewards, compared exactly:
    `distinct_vectors`).

    Equal reward vectors get equal advantages, so a group where some scheme's advantages are
    all distinct (`distinct_adv`: per scheme, (G,) counts) has all-distinct reward vectors:
    only the other groups are sorted (with a continuous reward, most groups are the first kind).
    """
    if not ix.uniform:
        return distinct_vectors(columns, ix, missing)
    known = np.zeros(ix.n_groups, dtype=np.int64)
    for counts in distinct_adv:
        np.maximum(known, counts, out=known)
    rest = np.flatnonzero(known < ix.uniform)  # (R,) groups to sort
    if rest.shape[0] == ix.n_groups:  # no group known: sort them all, without a copy
        return distinct_vectors(columns, ix, missing)
    counts = np.full(ix.n_groups, ix.uniform, dtype=np.int64)
    if rest.shape[0]:  # the groups to sort, one after another: a chunk of R uniform groups
        picked = [ix.grouped(column)[rest].reshape(-1) for column in columns]  # (R * size,)
        blocks = ChunkIndex(
            group=np.repeat(np.arange(rest.shape[0]), ix.uniform),
            sizes=np.full(rest.shape[0], ix.uniform),
            group_step=np.zeros(rest.shape[0], dtype=np.int64),
            steps=ix.steps[:1],
            uniform=ix.uniform,
        )
        counts[rest] = distinct_vectors(picked, blocks, missing)
    return counts


def scheme_sums(
    adv: np.ndarray,
    distinct_adv: np.ndarray,
    distinct_rewards: np.ndarray,
    ix: ChunkIndex,
    square: np.ndarray | None = None,
) -> SchemeSums:
    """adv (N,) one scheme's advantages (its rows: `scaled_sums` at scale 1); distinct_adv and
    distinct_rewards (G,) per group; square (G,) the sum of adv^2 over each group when the
    engine gave it (else summed here)."""
    return scaled_sums(
        np.abs(adv),
        None,
        ix.group_dot(adv, adv) if square is None else square,
        distinct_adv,
        distinct_rewards,
        ix,
    )


def scaled_sums(
    magnitude: np.ndarray,
    step_scale: np.ndarray | None,
    square: np.ndarray,
    distinct_adv: np.ndarray,
    distinct_rewards: np.ndarray,
    ix: ChunkIndex,
) -> SchemeSums:
    """The sums of a scheme whose advantages are fl(v x f) row by row, f one number >= 0 per
    step (step_scale (S,); None: 1, the advantages themselves), from |v| (magnitude (N,)),
    without those rows: the one place a scheme's largest |A| and zero count are made.

    Rounding is monotone, so the largest |fl(v f)| over a step is fl(max |v| x f), and
    |fl(v f)| <= ZERO_TOL exactly where |v| <= zero_limit(f): the figures of the advantages
    themselves. square, distinct_adv, distinct_rewards (G,) per group."""
    # a maximum is exact in any order: straight over each step's rows, along the long axis
    largest = np.maximum.reduceat(magnitude, ix.step_rows)  # (S,)
    if step_scale is None:  # zero_limit(1) is ZERO_TOL
        zero = magnitude <= ZERO_TOL
    else:
        largest = largest * step_scale
        limit = zero_limit(step_scale)[ix.group_step]  # (G,)
        if ix.uniform:  # (N,): the limit broadcast over each group, not repeated
            zero = (ix.grouped(magnitude) <= limit[:, None]).reshape(-1)
        else:
            zero = magnitude <= np.repeat(limit, ix.sizes)
    return _per_step(
        ix.by_step, square, largest, ix.step_count(zero), distinct_adv, distinct_rewards
    )


def _per_step(
    steps: StepIndex,
    square: np.ndarray,
    max_abs: np.ndarray,
    zeros: np.ndarray,
    distinct_adv: np.ndarray,
    distinct_rewards: np.ndarray,
) -> SchemeSums:
    """A scheme's SchemeSums from square, distinct_adv, distinct_rewards (G,) per group and
    max_abs, zeros (S,) already per step: every backend's."""
    return SchemeSums(
        square_sum=steps.sum(square),
        max_abs=max_abs,
        zeros=zeros,
        distinct_adv=steps.sum(distinct_adv.astype(np.float64)),
        distinct_rew=steps.sum(distinct_rewards.astype(np.float64)),
    )


def two_valued_distinct(at0: np.ndarray, at1: np.ndarray, ones: np.ndarray, size: np.ndarray):
    """(G,) distinct advantages of a scheme taking at0 where a 0/1 reward is 0 and at1 where it
    is 1 (`backends.rows.Described.two_valued`): as sorting the group would count them."""
    both = (ones > 0) & (ones < size)
    return 1 + (both & (at1 - at0 > DISTINCT_TOL)).astype(np.int64)


def two_valued_sums(
    at0: np.ndarray,
    at1: np.ndarray,
    ones: np.ndarray,
    size: np.ndarray,
    square: np.ndarray,
    distinct_adv: np.ndarray,
    distinct_rewards: np.ndarray,
    ix: ChunkIndex,
) -> SchemeSums:
    """The sums of a scheme with two values per group (GRPO over a 0/1 objective): at0 (G,)
    where the reward is 0, at1 where it is 1, ones (G,) rewards of 1 of size: the figures its
    rows would give, without them."""
    steps = ix.by_step
    big0, big1 = np.abs(at0), np.abs(at1)
    zeros = ones * (big1 <= ZERO_TOL) + (size - ones) * (big0 <= ZERO_TOL)  # (G,)
    largest = np.maximum(np.where(ones > 0, big1, 0.0), np.where(ones < size, big0, 0.0))
    return _per_step(
        steps, square, steps.max(largest), steps.sum(zeros.astype(np.float64)), distinct_adv,
        distinct_rewards,
    )  # fmt: skip


def distinct_advantages(
    advantages: dict[str, np.ndarray],
    ix: ChunkIndex,
    missing: bool,
    primary_std: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Distinct advantage values per group (G,) for each scheme.

    A scheme's twin (`schemes.twins`: the same numerator times a positive per-group or per-step
    scale) tells apart exactly the same responses, so its count is shared instead of sorted
    again. GRPO is increasing in the primary reward, so with a binary primary objective
    (`primary_std` (G,) given, no reward missing) it has 2 values where that objective varies
    and 1 where it does not.
    """
    twin = twins(list(advantages), missing)
    counts: dict[str, np.ndarray] = {}
    if primary_std is not None and not missing and "grpo" in advantages:
        counts["grpo"] = 1 + (primary_std > 0).astype(np.int64)
    for name, adv in advantages.items():
        if name not in counts and name not in twin:
            counts[name] = distinct_per_group(adv, ix, DISTINCT_TOL)
    for name, first in twin.items():
        counts[name] = counts[first]
    return {name: counts[name] for name in advantages}


def correlation_sums(
    columns: list[np.ndarray],
    mean: np.ndarray,
    std: np.ndarray,
    square: np.ndarray,
    ix: ChunkIndex,
    missing: bool,
) -> PairSums:
    """Pearson per group from the centred sums of products; missing rewards add nothing.

    columns K x (N,); mean, std, square (K, G), square each objective's sum of squared
    deviations over the group (the engine's). The degrees of freedom cancel in the correlation.
    """
    if ix.uniform and not missing:
        # sum_j (x - mu_x)(y - mu_y) = sum_j x y - n mu_x mu_y: no centred copy of the rewards

        def co(a: int, b: int) -> np.ndarray:  # (G,)
            return ix.group_dot(columns[a], columns[b]) - ix.uniform * mean[a] * mean[b]
    else:
        centred = []
        for a, column in enumerate(columns):
            if ix.uniform:
                c = (ix.grouped(column) - mean[a, :, None]).reshape(-1)
            else:
                c = column - np.repeat(mean[a], ix.sizes)
            centred.append(np.nan_to_num(c, nan=0.0) if missing else c)

        def co(a: int, b: int) -> np.ndarray:  # (G,) pair by pair: no (N, K, K) temporary
            return ix.group_dot(centred[a], centred[b])

    return pair_sums(square, co, std > 0, ix.by_step)


def agreement_sums(adv: np.ndarray, logged: np.ndarray) -> AgreementSums:
    ok = np.isfinite(logged)
    x, y = adv[ok], logged[ok]
    if x.shape[0] == 0:
        return AgreementSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return AgreementSums(
        n=float(x.shape[0]),
        max_diff=float(np.abs(x - y).max()),
        sx=float(x.sum()),
        sy=float(y.sum()),
        sxx=float((x * x).sum()),
        syy=float((y * y).sum()),
        sxy=float((x * y).sum()),
    )


# --------------------------------------------------------------------------------------------
# rewards as pattern counts (`core.counted`): the same figures from each pattern's advantage
# --------------------------------------------------------------------------------------------

_SORTING_NETWORK_MAX = 16  # distinct counts: a sorting network up to 16 patterns, np.sort past


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


def distinct_present(values: np.ndarray, absent: np.ndarray, n_present: np.ndarray) -> np.ndarray:
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


def zeros_of_groups(
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


_ABSENT = np.array([np.inf, 0.0])


@dataclass
class CountedIndex:
    """Where a chunk's distinct count columns sit (`core.counted`): counts (P, U) how many
    responses of each column show each pattern, inverse (G,) the column each group shows (None:
    one column per group), steps the groups' steps."""

    counts: np.ndarray
    inverse: np.ndarray | None
    steps: StepIndex

    @cached_property
    def absent(self) -> np.ndarray:  # (P, U) inf where a column lacks the pattern, else 0
        # x - absent and x + absent keep the present values for a max and a min (a lookup:
        # faster than np.where)
        return _ABSENT.take((self.counts > 0).view(np.uint8))

    @cached_property
    def shown(self) -> np.ndarray:  # (U,) distinct reward vectors of each column
        return np.count_nonzero(self.counts, axis=0)

    @cached_property
    def shown_by_group(self) -> np.ndarray:  # (G,) the same for each group, for every scheme
        return self.expand(self.shown)

    @cached_property
    def first(self) -> np.ndarray:  # (U,) the first group showing each column
        if self.inverse is None:
            return np.arange(self.counts.shape[1])
        first = np.empty(self.counts.shape[1], dtype=np.int64)
        first[self.inverse[::-1]] = np.arange(self.inverse.shape[0] - 1, -1, -1)
        return first

    def expand(self, a: np.ndarray) -> np.ndarray:  # (..., U) -> (..., G)
        return a if self.inverse is None else a.take(self.inverse, axis=-1)

    @classmethod
    def of(cls, counted: Counted, steps: StepIndex) -> CountedIndex:
        return cls(counted.counts, counted.inverse, steps)


def counted_sums(
    numerator: np.ndarray,
    scale: np.ndarray,
    square: np.ndarray,
    ix: CountedIndex,
    per_group: bool,
    distinct: np.ndarray | None = None,
) -> tuple[SchemeSums, np.ndarray]:
    """A scheme's sums from its numerator per pattern and column (P, U) and its scale and
    sum of squares per group (G,), with its distinct values per group (G,): those given
    (`distinct`: a twin's, or GRPO's over a binary reward), else found here. per_group: the
    scale differs between groups of one column (whitened per step), else it is the column's.

    The rows' rules, over patterns: |fl(num x scale)| is fl(|num| x scale) and rounding is
    monotone, so a group's largest |A| is fl(its largest |num| x scale), and |A| <= ZERO_TOL
    exactly where |num| <= zero_limit(scale); the distinct values are the sorted present
    advantages' gaps above DISTINCT_TOL (`distinct_present`), as `distinct_per_group` counts
    them over rows."""
    size = np.abs(numerator)  # (P, U)
    largest = ix.expand((size - ix.absent).max(axis=0)) * scale  # (G,)
    if per_group and ix.inverse is not None:
        zeros = zeros_of_groups(size, ix.counts, ix.absent, zero_limit(scale), ix.inverse)
    else:
        limit = zero_limit(scale[ix.first])  # (U,)
        zeros = ix.expand(np.einsum("pg,pg->g", size <= limit, ix.counts))
    if distinct is None:
        if per_group and ix.inverse is not None:
            distinct = distinct_present(
                ix.expand(numerator) * scale, ix.expand(ix.absent), ix.shown_by_group
            )
        else:
            found = distinct_present(numerator * scale[ix.first], ix.absent, ix.shown)
            distinct = ix.expand(found)
    steps = ix.steps
    sums = _per_step(
        steps, square, steps.max(largest), steps.sum(zeros), distinct, ix.shown_by_group
    )
    return sums, distinct

"""The row backend: group moments and numerators from the rows, then the scheme table.

One pass over the K objectives (K is small), never a loop over groups. For objective k the
column is reduced per group (count, smallest, largest, mean, std) and centred into a (K, N)
buffer; each numerator the asked-for schemes need (sum_k c_k (r_k - mu_k), the coefficients
from `schemes.coefficients`) is then one pass over that buffer (`Segments.combine`). Every
scheme is its numerator times its per-group scale from the table; a whitened scheme's step
factor is folded into that scale (a numerator sums to 0 over each group, so its step mean is
0 and its step sum of squares is the groups': no pass over the step's rows). Works on numpy
arrays (the CPU) and on torch tensors (CUDA, or torch inputs) alike: the arithmetic is written
once against the array API; `segments` holds the group reductions of each library.

Rewards with few values (`counted`): every group sum is taken from their pattern counts
(`core.counted`), the numerators computed per pattern and the rows' looked up, so that a backend
with the counts alone computes the same bits.

Conventions (`conventions`): sigma_k is exactly 0 for an objective constant in its group
(min == max, not a rounded std) or with fewer than ddof + 1 rewards; with nan="ignore" a
missing reward is skipped in sums and means, and a row with no reward gets advantage 0.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from dvao_cli.core import schemes as table
from dvao_cli.core.arrays import namespace, subtract_into
from dvao_cli.core.conventions import check_rewards
from dvao_cli.core.counted import Counted
from dvao_cli.core.segments import Blocks, Segments, ragged

Array = Any


@dataclass(frozen=True)
class GroupMoments:
    """Per group, in group-code order: size (n,) rows; count, mean, std, lo, hi (K, n) per
    objective over its present rewards (lo / hi the smallest / largest; +inf / -inf where a
    group has none), square (K, n) their sum of squared deviations from the mean; dvao_weight
    (K, n); rc_std (n,) the std of RC's numerator (0 where it is rounding noise).
    Objective-major: numpy broadcasts a per-group (n,) vector over (K, n) along its long axis
    (over (n, K) it loops per group, 10x slower)."""

    size: Array
    count: Array
    mean: Array
    std: Array
    lo: Array
    hi: Array
    square: Array
    dvao_weight: Array
    rc_std: Array


@dataclass(frozen=True)
class EngineResult:
    advantages: dict[str, Array]  # (N,) per scheme asked for, in the rows' order
    moments: GroupMoments
    # (n,) per scheme, in group-code order: its scale (the whitening factor folded in), and
    # with `squares` the sum over each group of its squared advantages (scale^2 x the
    # numerator's sum of squares)
    scales: dict[str, Array] = field(default_factory=dict)
    squares: dict[str, Array] = field(default_factory=dict)
    # objective k whose every reward is exactly 0 or 1 (no reward missing) -> (n,) its rewards
    # of 1 per group, in group-code order
    ones: dict[int, Array] = field(default_factory=dict)
    # numerator -> (N,) its values in the rows' order, for each numerator of a scheme left
    # out of `advantages` (a scheme's advantages are fl(numerator x its scale), row by row)
    numerators: dict[str, Array] = field(default_factory=dict)
    # with `counted`: numerator -> (P, n) its value for each pattern and group (the rows'
    # values are these, row by row)
    tables: dict[str, Array] = field(default_factory=dict)


def run(
    columns: list[Array],
    seg: Segments | None,
    step_of_group: Array | None,
    n_steps: int,
    weights: list[float],
    schemes: tuple[str, ...],
    *,
    ddof: int = 0,
    eps: float = 0.0,
    primary: int = 0,
    missing: bool = False,
    squares: bool = False,
    advantages: Collection[str] | None = None,
    zero_one: Sequence[bool] | None = None,
    counted: Counted | None = None,
) -> EngineResult:
    """Every scheme in `schemes` for rows whose objectives are `columns` (K arrays (N,), one
    dtype and device); `seg` maps rows to groups, `step_of_group` (n,) each group's step code
    0..n_steps-1 for the whitening (None: one step). `missing`: NaN marks a missing reward.
    `squares`: also each scheme's sum of squared advantages per group (`EngineResult.squares`:
    from the numerators' sums of squares, no pass over the advantages). `advantages`: the
    schemes whose advantages to compute row by row (None: all); every scheme's scale comes
    with the result either way, and the numerator of each scheme left out. `zero_one` (K,),
    when the caller knows it: whether each objective's rewards are all exactly 0 or 1
    (`zero_one_column`; checked here otherwise).

    `counted`, for rewards with few values (numpy, no reward missing, groups in code order):
    their pattern counts per group. Every group sum is then the counts' (`counted`), so that
    the pattern backends, which have only the counts, get the same bits; the numerators are
    computed per pattern (`EngineResult.tables`) and the rows' taken from them. `columns` may
    then be empty and `seg` None (no rows: scales, squares and tables only). Counts given as
    their distinct columns (`Counted.inverse`: which column each group shows) give moments and
    tables per column, scales and squares per group (`step_of_group` is the groups')."""
    if counted is not None:  # every sum from the counts; the rows, if any, only looked up
        assert not missing and (seg is None or getattr(seg, "order", None) is None)
        assert counted.inverse is None or not columns  # rows are the groups'
        xp, where, dtype = namespace(counted.counts), "cpu", counted.counts.dtype
        size = counted.size
        rows_given = bool(columns)
        group_of = counted.inverse
    else:
        xp = namespace(*columns)
        where = columns[0].device
        dtype = columns[0].dtype
        size = seg.sizes(columns[0])  # (n,) int64
        rows_given = True
        group_of = None
    size_f = xp.astype(size, dtype)
    full_dof = size_f - ddof  # (n,) a numerator's degrees of freedom: every row counts
    full_inv_dof = xp.where(full_dof > 0, 1.0 / xp.where(full_dof > 0, full_dof, 1.0), 0.0)
    # without missing rewards every objective counts every row: its divisors are made once
    size_div, full_dof_div, full_dof_pos = _divisors(xp, size_f, full_dof)
    rc_kind = table.numerator_of("rc", missing)
    kinds = {table.numerator_of(name, missing) for name in schemes} | {rc_kind}
    kinds.discard(table.SUMMED)  # built from s below, not per objective
    numerators: dict[str, Array] = {}
    s = None  # missing rewards: s = sum_k w_k r_k, a missing reward adding nothing
    present = None  # missing rewards: rows with at least one reward (layout, bool)
    n_scored = None  # missing rewards: (n,) the rows of each group with a reward
    moments: dict[str, list[Array]] = {
        "count": [], "mean": [], "std": [], "lo": [], "hi": [], "square": []
    }  # fmt: skip
    deviations = None  # (K, *layout) r_k - mu_k, filled objective by objective
    ones: dict[int, Array] = {}  # 0/1 objective -> (n,) its rewards of 1 per group
    coefficients: dict[str, list[Array | None]] = {kind: [] for kind in kinds}  # K x (n,)

    for k in range(len(weights)):
        settled = None  # (n,) groups where this objective's deviations are exactly 0
        if counted is not None:
            level_n = counted.level_counts(k)  # (L_k, n)
            ok, count = None, size_f
            lo, hi = counted.extremes(k, level_n)
        elif missing:
            col = seg.layout(columns[k])
            ok = xp.isfinite(col)
            count = seg.sum(xp.astype(ok, dtype))  # (n,)
            lo = seg.min(xp.where(ok, col, float("inf")))
            hi = seg.max(xp.where(ok, col, float("-inf")))
            col = xp.where(ok, col, 0.0)
            present = ok if present is None else present | ok
            s = col * weights[k] if s is None else s + col * weights[k]
        else:
            col = seg.layout(columns[k])
            ok = None
            count = size_f
            total = seg.sum(col)  # (n,)
            if isinstance(seg, Blocks) and (
                zero_one[k] if zero_one is not None else zero_one_column(columns[k])
            ):
                # every reward 0 or 1: the extremes follow from the sums, exact integers (a
                # comparison pass instead of a transposed copy: 0.25x the time, measured)
                lo = xp.astype(total >= count, dtype)
                hi = xp.astype(total > 0, dtype)
                # a constant group's sum is count x its reward exactly, so is its mean: its
                # deviations are exactly 0
                settled = lo == hi
                ones[k] = total  # (n,) how many rewards are 1
            else:
                lo, hi = seg.extremes(col)
        check_rewards(k, count, lo, hi, float(weights[k]))
        if ok is not None:
            total = seg.sum(col)
        elif counted is not None:  # summed once the rewards are known to be finite and small
            total = counted.total(k, level_n)
            if zero_one is not None and zero_one[k]:
                ones[k] = total
        if ok is None:
            count_div, dof_div, dof_pos = size_div, full_dof_div, full_dof_pos
        else:
            count_div, dof_div, dof_pos = _divisors(xp, count, count - ddof)
        mean = total / count_div  # (n,)
        if counted is not None:  # (K, P, n): each pattern's deviations, as the rows' are
            if deviations is None:
                deviations = xp.empty((len(weights), *counted.counts.shape), dtype=dtype)
            deviations[k] = counted.deviations(k, mean)
        else:
            if deviations is None:  # (K, *layout): every objective's centred rewards
                deviations = xp.empty((len(weights), *col.shape), dtype=dtype, device=where)
            centred = deviations[k]
            subtract_into(col, seg.expand(mean), centred)
            if ok is not None:
                centred[~ok] = 0.0
        varies = (hi != lo) & dof_pos  # decided exactly, not by a rounded std
        if counted is not None:
            square = counted.centred_square(k, level_n, mean)  # (n,)
        elif settled is None:
            square = seg.sumsq(centred)  # (n,)
        else:  # 0/1 rewards: (count - total) x (0 - mean)^2 + total x (1 - mean)^2 (no pass
            # over the rows)
            square = (count - total) * (mean * mean) + total * ((1.0 - mean) * (1.0 - mean))
        # sqrt(var) x 1 or x 0: var is finite and >= 0, so exactly a where (2x as fast)
        std = xp.sqrt(square / dof_div) * xp.astype(varies, dtype)  # (n,)
        for kind in kinds:  # None: objective k has no term in that numerator
            c = table.coefficients(kind, k, std, weights[k], eps, primary)
            if c is not None and settled is not None:
                # a term over deviations that are exactly 0 adds 0 whatever its coefficient:
                # those groups take its largest, so that a coefficient alike in every other
                # group becomes one number (a constant-weight pass in Segments.combine)
                c = xp.where(settled, xp.max(c), c)
            coefficients[kind].append(c)
        for name, value in zip(moments, (count, mean, std, lo, hi, square), strict=True):
            moments[name].append(value)

    single: dict[str, int] = {}  # numerator -> k: objective k's deviations as they are
    for kind, cs in coefficients.items():  # each numerator sum_k c_k (r_k - mu_k)
        terms = [k for k, c in enumerate(cs) if c is not None]
        if len(terms) == 1 and bool(xp.all(cs[terms[0]] == 1.0)):  # one unit term: itself
            k = terms[0]
            one = deviations[k]  # a copy when another numerator has it (scaled in place later)
            numerators[kind] = xp.asarray(one, copy=True) if k in single.values() else one
            single[kind] = k
        else:  # (K, n) coefficients, 0 for an objective without a term: one pass over (K, N)
            zero = xp.zeros_like(size_f)
            c = xp.stack([zero if c is None else c for c in cs], axis=0)
            if counted is not None:  # (K, P, n) deviations: per pattern, in objective order
                numerators[kind] = table.weighted_sum(c, deviations)
            else:
                numerators[kind] = seg.combine(c, deviations)
    tables: dict[str, Array] = {}  # numerator -> (P, n) with counted
    if counted is not None:
        tables = numerators
        numerators = {}
        if rows_given:  # the rows' numerators: their patterns' (fresh arrays, scaled in place)
            assert seg is not None and counted.code is not None
            numerators = {kind: seg.gather(t, counted.code) for kind, t in tables.items()}

    stack = {name: xp.stack(values, axis=0) for name, values in moments.items()}  # (K, n)
    w = xp.asarray(weights, dtype=dtype, device=where)  # (K,)
    # lo / hi of a group without rewards are +-inf: 0 for the magnitudes
    lo_0 = xp.where(stack["count"] > 0, stack["lo"], 0.0)
    hi_0 = xp.where(stack["count"] > 0, stack["hi"], 0.0)
    scored_inv_dof = full_inv_dof  # (n,) RC's degrees of freedom: the rows it is computed over
    if missing:  # a row with no reward at all is left out of RC's mean and std (TRL 1.16)
        scored = xp.astype(present, dtype)  # (layout) 1 where the row has a reward
        n_scored = seg.sum(scored)  # (n,)
        s_mean = seg.sum(s) / xp.where(n_scored > 0, n_scored, 1.0)
        numerators[table.SUMMED] = (s - seg.expand(s_mean)) * scored
        dof = n_scored - ddof
        scored_inv_dof = xp.where(dof > 0, 1.0 / xp.where(dof > 0, dof, 1.0), 0.0)

    def magnitude(kind: str) -> Array:
        return table.magnitude(kind, w, stack["mean"], stack["std"], lo_0, hi_0, eps)

    square_of: dict[str, Array] = {}  # numerator -> its sum of squares over each group (n,)

    def numerator_square(kind: str) -> Array:
        if kind not in square_of:  # one objective's deviations: its own sum of squares
            k = single.get(kind)
            if k is not None:
                square_of[kind] = stack["square"][k]
            elif counted is not None:
                square_of[kind] = counted.square_sum(tables[kind])
            else:
                square_of[kind] = seg.sumsq(numerators[kind])
        return square_of[kind]

    own: dict[str, Array] = {}  # numerator -> its std over each group (n,)

    def own_std(kind: str) -> Array:
        if kind not in own:
            inv_dof = scored_inv_dof if kind == table.SUMMED else full_inv_dof
            own[kind] = table.own_std(numerator_square(kind), inv_dof, magnitude(kind))
        return own[kind]

    def to_codes(stat: Array) -> Array:  # (K, n) or (n,) in group-code order
        if seg is None:  # the counts alone: already in code order
            return stat
        return seg.to_codes(stat.T).T if stat.ndim == 2 else seg.to_codes(stat)

    rc_std = own_std(rc_kind)  # before the last scheme over that numerator scales it in place
    wanted = [name for name in schemes if advantages is None or name in advantages]
    if not rows_given:
        wanted = []
    last = {table.numerator_of(name, missing): name for name in wanted}  # numerator -> its last
    # numerators of the schemes left out: given with the result, so never scaled in place
    kept = {table.numerator_of(name, missing) for name in schemes if name not in wanted}
    as_is: set[str] = set()  # numerators that are a scheme's advantages themselves
    rows: dict[str, Array] = {}
    scales: dict[str, Array] = {}
    square_sums: dict[str, Array] = {}
    for name in schemes:
        scheme = table.BY_NAME[name]
        kind = table.numerator_of(name, missing)
        spread = table.Spread(
            stack["std"], w, primary, own_std(kind) if scheme.uses_own_std else None
        )
        scale = scheme.scale(spread, eps)  # (n,)
        unit = not scheme.whitened and bool(xp.all(scale == 1.0))  # fl(num x 1) is num
        square = scale * scale * numerator_square(kind)  # (n,) the group's sum of adv^2
        if group_of is not None:  # the counts' distinct columns -> the groups showing them
            scale, square = scale[group_of], square[group_of]
        if scheme.whitened:  # one factor per step, folded into the group's scale
            count, size_of = size_f if n_scored is None else n_scored, magnitude(kind)
            if group_of is not None:
                count, size_of = count[group_of], size_of[group_of]
            factor = _whitening(square, count, step_of_group, n_steps, size_of, ddof, eps)
            scale = scale * factor  # (n,)
            square = factor * factor * square
        scales[name] = to_codes(scale)
        if squares:
            square_sums[name] = to_codes(square)
        if name not in wanted:
            continue
        if unit:  # the numerator as it is (not scaled in place later: `as_is`)
            adv = numerators[kind]
            as_is.add(kind)
        elif last[kind] == name and kind not in as_is and kind not in kept:  # scaled in place
            adv = numerators.pop(kind)
            adv *= seg.expand(scale)
        else:
            adv = numerators[kind] * seg.expand(scale)
        if present is not None:
            adv = xp.where(present, adv, 0.0)
        rows[name] = seg.flat(adv)

    result = GroupMoments(
        size=to_codes(size),
        count=to_codes(stack["count"]),
        mean=to_codes(stack["mean"]),
        std=to_codes(stack["std"]),
        lo=to_codes(stack["lo"]),
        hi=to_codes(stack["hi"]),
        square=to_codes(stack["square"]),
        dvao_weight=to_codes(table.dvao_weight(stack["std"], w)),
        rc_std=to_codes(rc_std),
    )
    ones_of = {k: to_codes(total) for k, total in ones.items()}
    given = {kind: seg.flat(numerators[kind]) for kind in kept if kind in numerators}
    return EngineResult(rows, result, scales, square_sums, ones_of, given, tables)


def _divisors(xp: Any, count: Array, dof: Array) -> tuple[Array, Array, Array]:
    """(n,) count and dof (count - ddof) as divisors (1 where not positive: the quotient is
    then 0 / 1, the sums being 0) and dof > 0; without a where when all are positive."""
    positive = dof > 0
    if bool(xp.all(positive)):  # count >= dof: positive too
        return count, dof, positive
    return xp.where(count > 0, count, 1.0), xp.where(positive, dof, 1.0), positive


def zero_one_column(column: Array) -> bool:
    """Every value exactly 0 or 1 (a pass/fail reward); a look at the first values first, so
    that a continuous reward costs no full pass."""
    xp = namespace(column)
    head = column[:64]
    if not bool(xp.all((head == 0.0) | (head == 1.0))):
        return False
    return bool(xp.all((column == 0.0) | (column == 1.0)))


def _whitening(
    square: Array,
    count: Array,
    step_of_group: Array | None,
    n_steps: int,
    magnitude: Array,
    ddof: int,
    eps: float,
) -> Array:
    """(n,) each group's whitening factor: its step's 1 / (std + eps) over the step's responses,
    from square (n,) each group's sum of squared values. The values sum to 0 over every group
    (a numerator is centred per group), hence over the step: the step's sum of squares is the
    groups' (as the pattern backend computes it). magnitude (n,) the size of each group's
    terms (the noise floor's scale); count (n,) the responses counted per group (with missing
    rewards, those with a reward, as TRL 1.16 whitens)."""
    xp = namespace(square)
    if step_of_group is None:  # one step: plain reductions over the groups
        factor = table.whitening(
            xp.sum(square, axis=0, keepdims=True),
            xp.sum(count, axis=0, keepdims=True),
            xp.max(magnitude, axis=0, keepdims=True),
            ddof,
            eps,
        )  # (1,)
        return xp.broadcast_to(factor, square.shape)
    steps = ragged(step_of_group, n_steps)  # groups -> steps
    factor = table.whitening(
        steps.sum(steps.layout(square)),
        steps.sum(steps.layout(count)),
        steps.max(steps.layout(magnitude)),
        ddof,
        eps,
    )  # (S,)
    return steps.flat(steps.expand(factor))


def to_numpy(result: EngineResult) -> EngineResult:
    """A result computed by torch (e.g. on CUDA) as numpy arrays on the CPU."""

    def host(x: Array) -> Any:
        return x.detach().cpu().numpy()

    m = result.moments
    moments = GroupMoments(*(host(getattr(m, f)) for f in GroupMoments.__dataclass_fields__))
    return EngineResult(
        {name: host(adv) for name, adv in result.advantages.items()},
        moments,
        {name: host(scale) for name, scale in result.scales.items()},
        {name: host(square) for name, square in result.squares.items()},
        {k: host(total) for k, total in result.ones.items()},
        {kind: host(values) for kind, values in result.numerators.items()},
    )

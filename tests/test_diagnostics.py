"""Diagnostics (the engine path): the shortcuts agree with the plain counts."""

from __future__ import annotations

import numpy as np

from dvao_cli.analysis import figures as dg
from dvao_cli.analysis.backends.rows import describe
from dvao_cli.core import engine
from dvao_cli.core.conventions import binary_objectives
from dvao_cli.core.schemes import SCHEMES
from dvao_cli.core.segments import Blocks, segments


def _batch(seed: int, k: int, ragged: bool):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, 40) if ragged else np.full(40, 8)
    steps = np.repeat(np.arange(4), 10)
    group = np.repeat(np.arange(40), sizes)
    step = np.repeat(steps, sizes)
    p = rng.random(k)
    rewards = (rng.random((group.shape[0], k)) < p).astype(np.float64)
    rewards[group % 7 == 0, 0] = 1.0  # some saturated objectives
    return rewards, group, step, sizes.astype(np.int64)


def _index(step: np.ndarray, group: np.ndarray, sizes: np.ndarray) -> dg.ChunkIndex:
    starts = np.cumsum(sizes) - sizes  # (G,) each group's first row
    steps, group_step = np.unique(step[starts], return_inverse=True)
    uniform = int(sizes[0]) if bool((sizes == sizes[0]).all()) else 0
    return dg.ChunkIndex(group, sizes, group_step, steps, uniform)


def _run(rewards: np.ndarray, group: np.ndarray, step_of_group: np.ndarray, ddof: int = 0):
    n = int(group.max()) + 1
    columns = [np.ascontiguousarray(rewards[:, k]) for k in range(rewards.shape[1])]
    k = rewards.shape[1]
    n_steps = int(step_of_group.max()) + 1
    return engine.run(
        columns, segments(group, n), step_of_group, n_steps, [1 / k] * k, SCHEMES, ddof=ddof
    )


def test_grpo_shortcut_for_a_binary_primary_objective() -> None:
    rewards, group, step, sizes = _batch(0, 3, False)
    ix = _index(step, group, sizes)
    result = _run(rewards, group, ix.group_step)
    fast = dg.distinct_advantages(
        result.advantages, ix, missing=False, primary_std=result.moments.std[0]
    )
    slow = {name: dg.distinct_per_group(adv, ix, 1e-8) for name, adv in result.advantages.items()}
    for name in result.advantages:
        assert fast[name].tolist() == slow[name].tolist(), name


def test_binary_objectives_from_group_statistics() -> None:
    rewards, group, step, sizes = _batch(1, 3, True)
    rewards[5, 2] = 0.5  # one reward strictly between 0 and 1
    ix = _index(step, group, sizes)

    def binary(ddof: int) -> np.ndarray:
        m = _run(rewards, group, ix.group_step, ddof).moments
        return binary_objectives(m.count, m.mean, m.std, m.lo, m.hi, ddof)

    assert binary(0).tolist() == [True, True, False]
    assert binary(1).tolist() == [True, True, False]


def _mixed(seed: int, groups: int = 60, size: int = 8) -> tuple[list[np.ndarray], dg.ChunkIndex]:
    """Groups of a continuous reward beside a binary one: some all distinct, some repeating a
    response's rewards (copied rows), some constant."""
    rng = np.random.default_rng(seed)
    n = groups * size
    binary = (rng.random(n) < 0.5).astype(np.float64)
    continuous = rng.normal(size=n)
    for g in range(0, groups, 3):  # every third group repeats its first response
        continuous[g * size + 1] = continuous[g * size]
        binary[g * size + 1] = binary[g * size]
    continuous[(np.arange(n) // size) % 5 == 4] = 0.25  # every fifth: continuous constant
    sizes = np.full(groups, size, dtype=np.int64)
    group = np.repeat(np.arange(groups), size)
    step = np.repeat(np.arange(groups) // 10, size)
    return [binary, continuous], _index(step, group, sizes)


def test_reward_vectors_known_distinct_from_the_advantages_agree_with_sorting() -> None:
    for seed in range(5):
        columns, ix = _mixed(seed)
        result = _run(np.stack(columns, axis=1), ix.group, ix.group_step)
        distinct = dg.distinct_advantages(result.advantages, ix, missing=False)
        plain = dg.distinct_per_group(dg.reward_vector_keys(columns, False), ix)
        fast = dg.distinct_reward_vectors(columns, ix, False, distinct.values())
        assert fast.tolist() == plain.tolist()
        assert (plain < ix.uniform).any() and (plain == ix.uniform).any()  # both kinds tried
        assert dg.distinct_reward_vectors(columns, ix, False).tolist() == plain.tolist()


def test_reward_vectors_are_compared_exactly() -> None:
    """Vectors the sort key merges (1 + 1e-17 x sqrt 3 rounds to 1), a missing reward against
    the key's stand-in for it (-7), and -0.0 against 0.0: counted exactly, in blocks and
    ragged, with few values (pattern codes) and many."""
    a = np.array([1.0, 1.0, 1.0, -7.0, 0.0, 0.0, 0.5, 0.25])
    b = np.array([1e-17, 0.0, 1e-17, 0.0, np.nan, 0.0, -0.0, 0.3])
    assert dg.reward_vector_keys([a, b])[0] == dg.reward_vector_keys([a, b])[1]  # merged
    for uniform in (4, 0):
        sizes = np.array([4, 4])
        group = np.repeat([0, 1], 4)
        ix = _index(np.zeros(8, dtype=np.int64), group, sizes)
        ix.uniform = uniform
        # group 0: (1, 1e-17) twice and (1, 0), (-7, 0); group 1: (0, NaN), (0, 0), (0.5, -0), ...
        assert dg.distinct_vectors([a, b], ix, missing=True).tolist() == [3, 4]
        few = [np.array([1.0, 0.0, 1.0, -0.0, 0.0, 0.0, 1.0, 1.0]), np.zeros(8)]
        assert dg.distinct_vectors(few, ix, missing=False).tolist() == [2, 2]


def test_engine_square_sums_are_the_advantages_squared_per_group() -> None:
    for ragged, missing in [(False, False), (True, False), (False, True), (True, True)]:
        rewards, group, step, sizes = _batch(3, 3, ragged)
        rewards[:, 2] = np.random.default_rng(4).normal(size=rewards.shape[0])  # continuous
        if missing:
            rewards[::5, 1] = np.nan
            rewards[::11] = np.nan  # rows with no reward at all
        ix = _index(step, group, sizes)
        columns = [np.ascontiguousarray(rewards[:, k]) for k in range(3)]
        out = engine.run(
            columns, segments(group, 40), ix.group_step, ix.n_steps, [0.2, 0.3, 0.5], SCHEMES,
            missing=missing, squares=True,
        )  # fmt: skip
        assert set(out.squares) == set(SCHEMES)
        for name, adv in out.advantages.items():
            direct = np.bincount(group, weights=adv * adv, minlength=40)
            np.testing.assert_allclose(out.squares[name], direct, rtol=1e-12, atol=1e-14)
        assert not engine.run(columns, segments(group, 40), ix.group_step, ix.n_steps,
                              [0.2, 0.3, 0.5], SCHEMES, missing=missing).squares  # fmt: skip


def test_described_schemes_are_exactly_described() -> None:
    """The `sums` backend leaves out GDPO (AC's numerator x one factor per step, the engine
    giving that numerator and every scheme's scale) and GRPO over a 0/1 primary as two values
    per group (`rows.describe`; the engine counts a 0/1 objective's ones): reconstructed, the
    same bits as computed over the rows."""
    for ragged in (False, True):
        rewards, group, step, sizes = _batch(5, 3, ragged)
        rewards[:, 2] = np.random.default_rng(6).normal(size=rewards.shape[0])  # continuous
        ix = _index(step, group, sizes)
        columns = [np.ascontiguousarray(rewards[:, k]) for k in range(3)]
        seg = Blocks(40, int(sizes[0])) if not ragged else segments(group, 40)
        args = (columns, seg, ix.group_step, ix.n_steps, [0.2, 0.3, 0.5])
        rows = engine.run(*args, SCHEMES, squares=True)
        zero_one = None if ragged else [engine.zero_one_column(c) for c in columns]
        left = describe(list(SCHEMES), False, zero_one)
        assert left.scaled == {"gdpo": "standardised"}
        two = {"grpo": 0} if not ragged else {}  # 0/1 rewards told apart in blocks only
        assert left.two_valued == two
        kept = [name for name in SCHEMES if name not in left.left_out()]
        scaled = engine.run(*args, SCHEMES, squares=True, advantages=kept, zero_one=zero_one)
        assert set(scaled.advantages) == {"rc", "ac", "dvao"} | ({"grpo"} if ragged else set())
        assert set(scaled.scales) == set(SCHEMES)
        for name in scaled.advantages:
            np.testing.assert_array_equal(scaled.advantages[name], rows.advantages[name])
        np.testing.assert_array_equal(scaled.scales["ac"], np.ones(40))
        factor = scaled.scales["gdpo"]
        per_step = factor[ix.by_step.starts]
        np.testing.assert_array_equal(factor, per_step[ix.group_step])  # one number a step
        for name, kind in left.scaled.items():  # fl(numerator x scale), row by row
            derived = scaled.numerators[kind] * scaled.scales[name][group]
            np.testing.assert_array_equal(derived, rows.advantages[name])
            np.testing.assert_array_equal(scaled.squares[name], rows.squares[name])
        np.testing.assert_array_equal(scaled.numerators["standardised"], rows.advantages["ac"])
        if ragged:
            assert not scaled.ones
            continue
        # GRPO over the 0/1 first objective: its two values per group, bit for bit
        mu, scale, ones = scaled.moments.mean[0], scaled.scales["grpo"], scaled.ones[0]
        at0, at1 = (0.0 - mu) * scale, (1.0 - mu) * scale
        grpo = np.where(rewards[:, 0] == 1.0, at1[group], at0[group])
        np.testing.assert_array_equal(grpo, rows.advantages["grpo"])
        np.testing.assert_array_equal(ones, np.bincount(group, weights=rewards[:, 0]))
    # the first scheme over a numerator keeps its rows; missing rewards: nothing left out
    assert not describe(["gdpo", "ac"], False, None).scaled  # ac is not whitened
    assert not describe(["gdpo", "dvao"], False, None).scaled
    assert not describe(["rc", "dvao"], False, None).scaled  # a scale per group: its rows
    assert not describe(list(SCHEMES), True, None).left_out()


def test_scaled_sums_equal_the_sums_of_the_advantages() -> None:
    """Largest |A| and zero counts of base x one factor per step, from the base's |A|: exact,
    also for values on either side of the zero tolerance after scaling."""
    from dvao_cli.core.tolerances import ZERO_TOL

    rng = np.random.default_rng(8)
    for ragged in (False, True):
        _, group, step, sizes = _batch(9, 1, ragged)
        ix = _index(step, group, sizes)
        factor_step = np.array([0.0, 0.37, 1.0 / 3.0, 2.9])  # step 0: no signal
        factor = factor_step[ix.group_step]  # (G,)
        base = rng.normal(size=group.shape[0])
        limits = dg.zero_limit(factor_step)
        for s in range(1, 4):  # rows right at, below and above each step's zero limit
            rows = np.flatnonzero(step == s)[:3]
            edge = limits[s]
            base[rows] = [edge, np.nextafter(edge, 0.0), -np.nextafter(edge, np.inf)]
        adv = base * factor[group]
        distinct = np.ones(ix.n_groups, dtype=np.int64)
        square = np.bincount(group, weights=adv * adv, minlength=ix.n_groups)
        plain = dg.scheme_sums(adv, distinct, distinct, ix, square)
        magnitude = np.abs(base)
        derived = dg.scaled_sums(magnitude, factor_step, square, distinct, distinct, ix)
        for field in ("square_sum", "max_abs", "zeros", "distinct_adv", "distinct_rew"):
            np.testing.assert_array_equal(getattr(derived, field), getattr(plain, field))
        assert plain.zeros[1:].min() >= 2  # the edge rows were counted, the one above not
        for f, limit in zip(factor_step[1:], limits[1:], strict=True):
            assert limit * f <= ZERO_TOL < np.nextafter(limit, np.inf) * f


def test_two_valued_sums_equal_the_sums_of_the_advantages() -> None:
    """GRPO's figures from its two values per group equal those of its rows: saturated groups
    (one value), both values, and a value within the zero tolerance."""
    for seed in (11, 12):
        rewards, group, step, sizes = _batch(seed, 1, ragged=False)
        ix = _index(step, group, sizes)
        out = engine.run(
            [np.ascontiguousarray(rewards[:, 0])], Blocks(40, 8), ix.group_step,
            ix.n_steps, [1.0], ("grpo",), squares=True, advantages=(),
        )  # fmt: skip
        assert not out.advantages
        mu, scale, ones = out.moments.mean[0], out.scales["grpo"], out.ones[0]
        at0, at1 = (0.0 - mu) * scale, (1.0 - mu) * scale
        at1[1] = 1e-13  # a value counted as zero
        adv = np.where(rewards[:, 0] == 1.0, at1[group], at0[group])
        size = sizes.astype(np.float64)
        counted = dg.distinct_per_group(adv, ix, dg.DISTINCT_TOL)
        distinct = dg.two_valued_distinct(at0, at1, ones, size)
        assert distinct.tolist() == counted.tolist() and {1, 2} <= set(distinct.tolist())
        square = np.bincount(group, weights=adv * adv, minlength=40)
        plain = dg.scheme_sums(adv, distinct, distinct, ix, square)
        derived = dg.two_valued_sums(at0, at1, ones, size, square, distinct, distinct, ix)
        for field in ("square_sum", "max_abs", "zeros", "distinct_adv", "distinct_rew"):
            np.testing.assert_array_equal(getattr(derived, field), getattr(plain, field))

"""Property tests of the advantage engine (hypothesis) and a loop-based reference
implementation that the vectorised engine must match on random ragged batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dvao_cli.advantages import SCHEMES, compute_advantages

PROPS = settings(max_examples=40, deadline=None)
NOISE = 64 * np.finfo(np.float64).eps

# A reward value in [0, 1]: round values make ties and saturated groups likely; the rest are
# thousandths (spreads far above rounding, so affine maps of them stay exact enough to compare).
reward = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.integers(0, 1000).map(lambda i: i / 1000)
)


@st.composite
def batches(draw, k_min=1, k_max=3, g_min=2, g_max=6, max_groups=5, equal=False):
    """(rewards (N, K), group codes (N,), step (N,), weights (K,) convex)."""
    k = draw(st.integers(k_min, k_max))
    n_groups = draw(st.integers(1, max_groups))
    size = draw(st.integers(g_min, g_max))
    rows, group = [], []
    for g in range(n_groups):
        m = size if equal else draw(st.integers(g_min, g_max))
        for _ in range(m):
            rows.append(draw(st.lists(reward, min_size=k, max_size=k)))
            group.append(g)
    raw = draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k))
    weights = np.array(raw) / sum(raw)
    rewards = np.array(rows, dtype=np.float64)
    group = np.array(group, dtype=np.int64)
    step = group // 2
    return rewards, group, step, weights


def per_group(values: np.ndarray, group: np.ndarray):
    for g in np.unique(group):
        yield g, values[group == g]


# --------------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------------


@PROPS
@given(batches())
def test_zero_mean_per_group(batch):
    rewards, group, step, w = batch
    res = compute_advantages(rewards, group, step, w)
    for name in ("grpo", "rc", "ac", "dvao"):
        adv = res.advantages[name].numpy()
        for _, values in per_group(adv, group):
            assert abs(values.mean()) < 1e-12


@PROPS
@given(batches())
def test_dvao_never_larger_than_rc(batch):
    rewards, group, step, w = batch
    res = compute_advantages(rewards, group, step, w, schemes=["rc", "dvao"])
    dvao, rc = res.advantages["dvao"].numpy(), res.advantages["rc"].numpy()
    assert np.all(np.abs(dvao) <= np.abs(rc) + 1e-12)
    # same sign as RC wherever RC is not zero
    nonzero = np.abs(rc) > 1e-9
    assert np.all(np.sign(dvao[nonzero]) == np.sign(rc[nonzero]))


@PROPS
@given(batches(k_min=2), st.lists(st.floats(0.1, 3.0), min_size=3, max_size=3), st.data())
def test_perfect_positive_correlation_makes_dvao_equal_rc(batch, scales, data):
    rewards, group, step, w = batch
    k = rewards.shape[1]
    base = rewards[:, :1]  # every objective an increasing affine map of the first
    offsets = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=k, max_size=k))
    correlated = base * np.array(scales[:k]) + np.array(offsets)
    res = compute_advantages(correlated, group, step, w, schemes=["rc", "dvao"])
    np.testing.assert_allclose(
        res.advantages["dvao"].numpy(), res.advantages["rc"].numpy(), rtol=1e-9, atol=1e-9
    )


@PROPS
@given(batches(k_min=2))
def test_ac_mean_square_at_most_rc(batch):
    rewards, group, step, w = batch  # convex weights, population std
    res = compute_advantages(rewards, group, step, w, schemes=["rc", "ac"])
    ac, rc = res.advantages["ac"].numpy(), res.advantages["rc"].numpy()
    rc_std = res.stats.rc_std.numpy()
    for g, values in per_group(ac, group):
        if rc_std[g] > 0:  # Proposition 1: RC's mean square is 1
            rc_ms = np.mean(rc[group == g] ** 2)
            assert rc_ms == pytest.approx(1.0, rel=1e-9)
            assert np.mean(values**2) <= rc_ms + 1e-9


@PROPS
@given(batches())
def test_dvao_identity(batch):
    """sum_k w~_k A_k (A_k the per-objective GRPO) = sum_k w_k (r_k - mu_k) / sum_l w_l sigma_l."""
    rewards, group, step, w = batch
    res = compute_advantages(rewards, group, step, w)
    weight = res.stats.dvao_weight.numpy()[group]  # (N, K)
    per_objective = np.stack(
        [
            compute_advantages(rewards, group, step, w, schemes=["grpo"], primary=k)
            .advantages["grpo"]
            .numpy()
            for k in range(rewards.shape[1])
        ],
        axis=1,
    )
    combined = (weight * per_objective).sum(axis=1)
    mu = res.stats.mean.numpy()[group]
    wsig = (res.stats.std.numpy() @ w)[group]
    direct = np.where(wsig > 0, ((rewards - mu) @ w) / np.where(wsig > 0, wsig, 1.0), 0.0)
    dvao = res.advantages["dvao"].numpy()
    np.testing.assert_allclose(combined, dvao, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(direct, dvao, rtol=1e-9, atol=1e-9)
    # weights are convex per group (or all zero for a group with no signal)
    sums = res.stats.dvao_weight.numpy().sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-12) | (sums == 0))


@PROPS
@given(batches(k_min=2), st.integers(0, 2), st.sampled_from([0.0, 1.0, 0.3]))
def test_saturated_objective_gets_weight_zero(batch, which, value):
    rewards, group, step, w = batch
    k = which % rewards.shape[1]
    rewards = rewards.copy()
    rewards[:, k] = value
    res = compute_advantages(rewards, group, step, w)
    assert np.all(res.stats.dvao_weight.numpy()[:, k] == 0.0)
    assert np.all(res.stats.std.numpy()[:, k] == 0.0)
    for name in SCHEMES:
        assert np.all(np.isfinite(res.advantages[name].numpy()))


@PROPS
@given(batches(k_min=1, k_max=1), st.sampled_from([0, 1]), st.sampled_from([0.0, 1e-4]))
def test_one_objective_with_weight_one_is_grpo(batch, ddof, eps):
    rewards, group, step, _ = batch
    res = compute_advantages(rewards, group, step, [1.0], ddof=ddof, eps=eps)
    grpo = res.advantages["grpo"].numpy()
    for name in ("rc", "ac", "dvao"):
        np.testing.assert_allclose(res.advantages[name].numpy(), grpo, rtol=1e-9, atol=1e-9)
    # a second objective with weight 0 changes nothing
    extra = np.concatenate([rewards, rewards[::-1]], axis=1)
    res2 = compute_advantages(extra, group, step, [1.0, 0.0], ddof=ddof, eps=eps)
    for name in ("rc", "ac", "dvao"):
        np.testing.assert_allclose(res2.advantages[name].numpy(), grpo, rtol=1e-9, atol=1e-9)


@PROPS
@given(batches(), st.randoms(use_true_random=False))
def test_permuting_rows_permutes_advantages(batch, rnd):
    rewards, group, step, w = batch
    res = compute_advantages(rewards, group, step, w)
    order = np.arange(len(group))
    rnd.shuffle(order)
    shuffled = compute_advantages(rewards[order], group[order], step[order], w)
    for name in SCHEMES:
        np.testing.assert_allclose(
            shuffled.advantages[name].numpy(), res.advantages[name].numpy()[order], atol=1e-12
        )


@PROPS
@given(batches(), st.floats(0.1, 10.0))
def test_common_scale_leaves_dvao_unchanged(batch, c):
    rewards, group, step, w = batch
    a = compute_advantages(rewards, group, step, w, schemes=["dvao"]).advantages["dvao"]
    b = compute_advantages(rewards * c, group, step, w, schemes=["dvao"]).advantages["dvao"]
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(batches(equal=True, max_groups=6))
def test_float32_agrees_with_float64(batch):
    rewards, group, step, w = batch
    r64 = compute_advantages(rewards, group, step, w)
    r32 = compute_advantages(rewards, group, step, w, dtype=torch.float32)
    # where a group's spread is far above float32 resolution the results agree closely. An
    # advantage (r - mu) / sigma computed in float32 is off by about a few eps32 x |r| / sigma
    # (the centring's rounding, relative to the spread): below 1e-5 needs sigma above
    # 8 x eps32 x |r| / 1e-5 = 0.095 |r| (eps32 = 1.2e-7; rewards in [0, 1]). (A bound of 1e-3 let
    # hypothesis find 0.25 / 0.252: float32 gives +-0.999985, 1.5e-5 from +-1.)
    floor = 8 * np.finfo(np.float32).eps / 1e-5 * np.abs(rewards).max(initial=0.0)
    spread = r64.stats.std.numpy()
    resolved = np.all((spread == 0) | (spread > floor), axis=1)[group]
    rc_ok = (r64.stats.rc_std.numpy() > floor) | (r64.stats.rc_std.numpy() == 0)
    for name in ("grpo", "ac", "dvao"):
        np.testing.assert_allclose(
            r32.advantages[name].double().numpy()[resolved],
            r64.advantages[name].numpy()[resolved],
            rtol=1e-5,
            atol=1e-5,
        )
    ok = resolved & rc_ok[group]
    np.testing.assert_allclose(
        r32.advantages["rc"].double().numpy()[ok], r64.advantages["rc"].numpy()[ok], atol=1e-5
    )


# --------------------------------------------------------------------------------------------
# A loop-based reference implementation (one group at a time, written from the formulas)
# --------------------------------------------------------------------------------------------


def _noise_free(std: float, magnitude: float) -> float:
    """The documented noise rule, for any eps: a combined std at or below 64 ulps of the
    magnitude of the terms it came from is 0."""
    return std if std > NOISE * magnitude else 0.0


def _whiten_ref(x: np.ndarray, magnitude: float, ddof: int, eps: float) -> np.ndarray:
    """(x - mean) / (std + eps) over one step; 0 where the std is 0 or rounding noise."""
    n = len(x)
    mean = x.mean()
    std = math.sqrt(((x - mean) ** 2).sum() / (n - ddof)) if n - ddof > 0 else 0.0
    std = _noise_free(std, magnitude)
    return (x - mean) / (std + eps) if std > 0 else np.zeros(n)


def reference(rewards, group, step, w, ddof=0, eps=0.0, primary=0, ignore=False):
    """Every scheme of the table by explicit loops over groups and objectives (float64 numpy),
    written from docs/schemes.md, scheme by scheme."""
    n, k_obj = rewards.shape
    out = {name: np.zeros(n) for name in SCHEMES}
    ac_terms = np.zeros(n)  # per row: its group's sum_k |w_k| max |r_k - mu_k| / (sigma_k + eps)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        r = rewards[rows]  # (m, K)
        m = len(rows)
        ok = np.isfinite(r) if ignore else np.ones_like(r, dtype=bool)
        centred = np.zeros((m, k_obj))
        sigma = np.zeros(k_obj)
        spread = np.zeros(k_obj)  # max |r_k - mu_k| over the group
        for k in range(k_obj):
            vals = r[ok[:, k], k]
            if len(vals) == 0:
                continue
            mu = vals.mean()
            dof = len(vals) - ddof
            if dof > 0 and vals.max() != vals.min():
                sigma[k] = math.sqrt(((vals - mu) ** 2).sum() / dof)
                centred[ok[:, k], k] = vals - mu
                spread[k] = np.abs(vals - mu).max()
        ac_terms[rows] = sum(
            w[k] * spread[k] / (sigma[k] + eps) for k in range(k_obj) if sigma[k] > 0
        )
        wsig = sum(w[k] * sigma[k] for k in range(k_obj))
        for j in range(m):
            # grpo: (r_p - mu_p) / (sigma_p + eps)
            p = primary
            out["grpo"][rows[j]] = centred[j, p] / (sigma[p] + eps) if sigma[p] > 0 else 0.0
            # ac: sum_k w_k (r_k - mu_k) / (sigma_k + eps)
            ac = sum(w[k] * centred[j, k] / (sigma[k] + eps) for k in range(k_obj) if sigma[k] > 0)
            out["ac"][rows[j]] = ac
            # dvao: sum_k w_k (r_k - mu_k) / (sum_l w_l sigma_l + eps)
            num = sum(w[k] * centred[j, k] for k in range(k_obj))
            out["dvao"][rows[j]] = num / (wsig + eps) if wsig > 0 else 0.0
        # rc: s = sum_k w_k r_k (a missing reward adds nothing), (s - mean s) / (std s + eps)
        # over the group's rows with a reward (a row with none is left out, as in TRL 1.16)
        scored = ok.any(axis=1)  # (m,)
        s = np.array([sum(w[k] * r[j, k] for k in range(k_obj) if ok[j, k]) for j in range(m)])
        n_scored = int(scored.sum())
        if n_scored:
            dev = s[scored] - s[scored].mean()
            rc_std = math.sqrt((dev**2).sum() / (n_scored - ddof)) if n_scored - ddof > 0 else 0.0
            scale = sum(w[k] * np.abs(r[ok[:, k], k]).max(initial=0.0) for k in range(k_obj))
            rc_std = _noise_free(rc_std, scale)
            out["rc"][rows[scored]] = dev / (rc_std + eps) if rc_std > 0 else 0.0
    # gdpo: ac, whitened over the responses of each step that have a reward
    has_reward = np.isfinite(rewards).any(axis=1) if ignore else np.ones(n, dtype=bool)
    for s_val in np.unique(step):
        rows = np.flatnonzero((step == s_val) & has_reward)
        if len(rows):
            out["gdpo"][rows] = _whiten_ref(out["ac"][rows], ac_terms[rows].max(), ddof, eps)
    if ignore:
        empty = ~np.isfinite(rewards).any(axis=1)
        for name in SCHEMES:
            out[name][empty] = 0.0
    return out


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1]),
    st.sampled_from([0.0, 1e-4]),
    st.booleans(),
    st.integers(0, 2),
)
def test_vectorised_matches_loop_reference(seed, ddof, eps, ignore, primary):
    rng = np.random.default_rng(seed)
    k = 3
    sizes = rng.integers(1, 7, size=rng.integers(1, 12))
    group = np.repeat(np.arange(len(sizes)), sizes)
    step = rng.integers(0, 3, size=len(sizes))[group] * 10  # several groups per step
    rewards = np.where(rng.random((len(group), k)) < 0.5, rng.integers(0, 2, (len(group), k)), 0)
    rewards = rewards + np.where(rng.random((len(group), k)) < 0.5, rng.random((len(group), k)), 0)
    if ignore:
        rewards[rng.random(rewards.shape) < 0.2] = np.nan
    w = rng.random(k) + 0.05
    order = rng.permutation(len(group))  # interleaved rows: the ragged path
    rewards, group, step = rewards[order], group[order], step[order]
    nan = "ignore" if ignore else "error"
    res = compute_advantages(rewards, group, step, w, ddof=ddof, eps=eps, primary=primary, nan=nan)
    ref = reference(rewards, group, step, w, ddof, eps, primary, ignore)
    for name in SCHEMES:
        got = res.advantages[name].numpy()
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref[name], rtol=1e-9, atol=1e-9, err_msg=name)


def test_reference_on_a_fast_path_batch_with_nan():
    rng = np.random.default_rng(123)
    group = np.repeat(np.arange(30), 8)
    step = group // 5
    rewards = rng.integers(0, 3, (240, 2)) / 2.0
    rewards[rng.random(rewards.shape) < 0.25] = np.nan
    res = compute_advantages(rewards, group, step, [0.6, 0.4], nan="ignore", ddof=1, eps=1e-4)
    ref = reference(rewards, group, step, [0.6, 0.4], 1, 1e-4, 0, True)
    for name in SCHEMES:
        np.testing.assert_allclose(res.advantages[name].numpy(), ref[name], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("eps", [0.0, 1e-4, 1e-2])
def test_reference_applies_the_noise_rule_at_any_eps(eps: float) -> None:
    """Anti-correlated objectives (o1 = 1 - o0, equal weights): s is constant, so RC is 0, and
    AC cancels to rounding noise, so GDPO is 0 too, whatever eps (not noise / eps)."""
    rng = np.random.default_rng(5)
    group = np.repeat(np.arange(12), 6)
    step = group // 4
    first = (rng.random(group.shape[0]) < 0.5).astype(np.float64) * 0.7 + 0.1
    rewards = np.stack([first, 1.0 - first], axis=1)
    res = compute_advantages(rewards, group, step, [0.5, 0.5], eps=eps)
    ref = reference(rewards, group, step, np.array([0.5, 0.5]), 0, eps)
    assert set(ref) == set(SCHEMES)  # the oracle covers every scheme of the table
    for name in ("rc", "gdpo"):
        assert np.all(ref[name] == 0.0), name
        assert np.all(np.abs(res.advantages[name].numpy()) <= 1e-12), name
    for name in SCHEMES:
        np.testing.assert_allclose(res.advantages[name].numpy(), ref[name], atol=1e-9)

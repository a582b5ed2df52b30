"""The advantage engine on hand-computed examples (expected values are literals), validation,
paths (fast / ragged / permuted), dtypes and devices, and TRL equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dvao_cli
from dvao_cli.advantages import (
    SCHEMES,
    AdvantageResult,
    GroupStats,
    ac_advantages,
    as_tensor,
    compute_advantages,
    dvao_advantages,
    gdpo_advantages,
    group_stats,
    grpo_advantages,
    rc_advantages,
    resolve_device,
    segment_whiten,
)
from dvao_cli.errors import InputError, UsageError

NAN = float("nan")


def _flat(values) -> list:
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values]


def approx(values, rel=1e-12, abs=1e-12):
    """pytest.approx over a (possibly nested) list, compared flat."""
    return pytest.approx(_flat(values), rel=rel, abs=abs)


def as_list(t: torch.Tensor) -> list:
    """A tensor's values as one flat list (shapes are asserted separately where they matter)."""
    return t.cpu().reshape(-1).tolist()


# --------------------------------------------------------------------------------------------
# Example 1: one group of 4, accuracy [1,0,1,0], format [1,1,1,0], weights 0.5/0.5, ddof 0.
#   accuracy: mu 0.5, sigma 0.5; format: mu 0.75, sigma sqrt(3/16) = 0.4330127018922193
#   s = [1, 0.5, 1, 0], mean 0.625, std sqrt(0.171875) = 0.414578098794425
#   sum_l w_l sigma_l = 0.25 + 0.21650635094610965 = 0.46650635094610965
# --------------------------------------------------------------------------------------------
EX1 = [[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_example1_every_scheme():
    res = compute_advantages(EX1, [0, 0, 0, 0], [3, 3, 3, 3], [0.5, 0.5])
    a = {k: as_list(v) for k, v in res.advantages.items()}
    assert list(a) == ["grpo", "rc", "ac", "gdpo", "dvao"]
    assert a["grpo"] == approx([1.0, -1.0, 1.0, -1.0])
    # 0.375 / 0.414578..., -0.125 / 0.414578..., -0.625 / 0.414578...
    assert a["rc"] == approx(
        [0.9045340337332909, -0.30151134457776363, 0.9045340337332909, -1.5075567228888183]
    )
    # (r_a - 0.5) + 0.5 (r_f - 0.75) / 0.4330127...
    assert a["ac"] == approx(
        [0.7886751345948129, -0.21132486540518708, 0.7886751345948129, -1.3660254037844386]
    )
    # AC has mean 0 and mean square 0.7886751345948129 -> std 0.8880738339771153
    assert a["gdpo"] == approx(
        [0.8880738339771153, -0.2379586666333788, 0.8880738339771153, -1.5381890013208515]
    )
    # 0.375 / 0.46650635..., -0.125 / 0.46650635..., -0.625 / 0.46650635...
    assert a["dvao"] == approx(
        [0.8038475772933680, -0.2679491924311227, 0.8038475772933680, -1.3397459621556135]
    )
    st = res.stats
    assert as_list(st.mean) == approx([[0.5, 0.75]])
    assert as_list(st.std) == approx([[0.5, 0.4330127018922193]])
    assert as_list(st.dvao_weight) == approx([[0.5358983848622454, 0.4641016151377546]])
    assert as_list(st.rc_std) == approx([0.414578098794425])
    assert as_list(st.size) == [4]
    assert as_list(st.count) == [4, 4]
    assert st.mean.shape == st.std.shape == st.dvao_weight.shape == st.count.shape == (1, 2)
    assert as_list(res.weights) == [0.5, 0.5]
    assert res.advantages["rc"].dtype == torch.float64


def test_example1_grpo_primary_is_the_second_objective():
    res = compute_advantages(EX1, [0, 0, 0, 0], weights=[0.5, 0.5], schemes=["grpo"], primary=1)
    # (r_f - 0.75) / 0.4330127...
    assert as_list(res.advantages["grpo"]) == approx(
        [0.5773502691896258, 0.5773502691896258, 0.5773502691896258, -1.7320508075688772]
    )


# --------------------------------------------------------------------------------------------
# Example 2: GDPO over a step of two groups, plus a second step.
#   group A = example 1 (AC [a, b, a, c] above, sum of squares 3.1547005383792515)
#   group B: accuracy [1,1,0,0], format [1,0,1,0] -> AC = [1, 0, 0, -1]
#   step 0 = A + B: mean 0, var (3.1547005383792515 + 2) / 8 -> std 0.8027064016795971
#   step 1 = group C: accuracy [0,1], format [0,0] -> AC [-0.5, 0.5] -> GDPO [-1, 1]
# --------------------------------------------------------------------------------------------


def test_example2_gdpo_whitens_per_step():
    rewards = EX1 + [[1, 1], [1, 0], [0, 1], [0, 0], [0, 0], [1, 0]]
    group = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    step = [5, 5, 5, 5, 5, 5, 5, 5, 9, 9]
    res = compute_advantages(rewards, group, step, [0.5, 0.5], schemes=["ac", "gdpo"])
    assert list(res.advantages) == ["ac", "gdpo"]
    assert as_list(res.advantages["ac"])[4:] == approx([1.0, 0.0, 0.0, -1.0, -0.5, 0.5])
    assert as_list(res.advantages["gdpo"]) == approx(
        [
            0.9825200508486978,
            -0.2632654541722942,
            0.9825200508486978,
            -1.7017746475251014,
            1.2457855050209918,
            0.0,
            0.0,
            -1.2457855050209918,
            -1.0,
            1.0,
        ]
    )
    # without a step every response is one batch (TRL's whitening)
    batch = compute_advantages(rewards, group, None, [0.5, 0.5], schemes=["gdpo"])
    whole = segment_whiten(res.advantages["ac"])
    assert as_list(batch.advantages["gdpo"]) == approx(as_list(whole))


# --------------------------------------------------------------------------------------------
# Example 3: ragged, interleaved groups with ddof 1.
#   group X (rows 0, 2, 4): accuracy [1,0,0], format [1,1,0]: mu 1/3 and 2/3, both sigma
#     sqrt(1/3) = 0.5773502691896258 (Bessel); s = [1, .5, 0] -> std 0.5
#   group Y (rows 1, 3): accuracy [.5,.5] (constant), format [1,0]: sigma_f sqrt(.5)
#   step 7 holds both: AC = [.8660254, .3535534, 0, -.3535534, -.8660254], std sqrt(.4375)
# --------------------------------------------------------------------------------------------


def test_example3_ragged_ddof1():
    rewards = [[1, 1], [0.5, 1], [0, 1], [0.5, 0], [0, 0]]
    group = [0, 1, 0, 1, 0]
    res = compute_advantages(rewards, group, [7] * 5, [0.5, 0.5], ddof=1)
    a = {k: as_list(v) for k, v in res.advantages.items()}
    x, y = 0.8660254037844386, 0.35355339059327373
    assert a["grpo"] == approx(
        [1.1547005383792517, 0.0, -0.5773502691896258, 0.0, -0.5773502691896258]
    )
    assert a["rc"] == approx([1.0, 0.7071067811865475, 0.0, -0.7071067811865475, -1.0])
    assert a["ac"] == approx([x, y, 0.0, -y, -x])
    assert a["dvao"] == approx([x, 0.7071067811865475, 0.0, -0.7071067811865475, -x])
    assert a["gdpo"] == approx(
        [1.3093073414159542, 0.5345224838248488, 0.0, -0.5345224838248488, -1.3093073414159542]
    )
    st = res.stats
    assert as_list(st.size) == [3, 2]
    assert as_list(st.std) == approx(
        [[0.5773502691896258, 0.5773502691896258], [0.0, 0.7071067811865476]]
    )
    assert as_list(st.dvao_weight) == approx([[0.5, 0.5], [0.0, 1.0]])
    assert as_list(st.rc_std) == approx([0.5, 0.3535533905932738])


def test_ddof1_group_of_one_has_zero_advantage():
    res = compute_advantages([[1.0], [0.0], [1.0]], [0, 0, 1], ddof=1)
    for name in SCHEMES:
        assert as_list(res.advantages[name])[2] == 0.0
    assert as_list(res.stats.std) == approx([[0.7071067811865476], [0.0]])


# --------------------------------------------------------------------------------------------
# Example 4: nan="ignore" (TRL semantics), weights 0.5/0.5, ddof 0.
#   accuracy [1, NaN, 0, NaN] -> present [1, 0]: mu .5, sigma .5; centred [.5, 0, -.5, 0]
#   format   [1, 0, NaN, NaN] -> present [1, 0]: mu .5, sigma .5; centred [.5, -.5, 0, 0]
#   row 3 has no reward at all -> 0 for every scheme, and left out of RC's and GDPO's
#   statistics (TRL 1.16)
#   s = nansum(w r) over rows 0-2 = [1, 0, 0], mean 1/3, std sqrt(2/9) = 0.4714045207910317
# --------------------------------------------------------------------------------------------


def test_example4_nan_ignore():
    rewards = [[1, 1], [NAN, 0], [0, NAN], [NAN, NAN]]
    res = compute_advantages(rewards, [0, 0, 0, 0], [1] * 4, [0.5, 0.5], nan="ignore")
    a = {k: as_list(v) for k, v in res.advantages.items()}
    assert a["grpo"] == approx([1.0, 0.0, -1.0, 0.0])
    assert a["ac"] == approx([1.0, -0.5, -0.5, 0.0])
    assert a["dvao"] == approx([1.0, -0.5, -0.5, 0.0])
    # RC: (2/3, -1/3, -1/3) / sqrt(2/9)
    assert a["rc"] == approx([1.4142135623730951, -0.7071067811865476, -0.7071067811865476, 0.0])
    # AC [1, -.5, -.5] over rows 0-2: mean 0, std sqrt(.5)
    assert a["gdpo"] == approx([1.4142135623730951, -0.7071067811865476, -0.7071067811865476, 0.0])
    assert as_list(res.stats.count) == [2, 2]
    assert as_list(res.stats.mean) == approx([[0.5, 0.5]])
    assert as_list(res.stats.rc_std) == approx([0.4714045207910317])
    for values in a.values():
        assert all(math.isfinite(v) for v in values)


def test_nan_error_raises_input_error():
    with pytest.raises(InputError, match="NaN or inf"):
        compute_advantages([[1.0], [NAN]], [0, 0])
    with pytest.raises(InputError, match="NaN or inf"):
        compute_advantages([[1.0], [math.inf]], [0, 0], nan="drop")


def test_inf_is_missing_under_ignore():
    res = compute_advantages([[1.0], [math.inf], [0.0]], [0, 0, 0], nan="ignore", schemes=["grpo"])
    assert as_list(res.advantages["grpo"]) == approx([1.0, 0.0, -1.0])


# --------------------------------------------------------------------------------------------
# Zero variance
# --------------------------------------------------------------------------------------------


def test_saturated_group_gives_zero_everywhere():
    res = compute_advantages([[1, 1]] * 4, [0] * 4)
    for name in SCHEMES:
        assert as_list(res.advantages[name]) == [0.0] * 4
    assert as_list(res.stats.dvao_weight) == [0.0, 0.0]
    assert as_list(res.stats.std) == [0.0, 0.0]
    assert as_list(res.stats.rc_std) == [0.0]


def test_saturated_objective_gets_weight_zero_even_for_unround_values():
    # 0.1 summed 16 times is not 1.6 in floating point: the constancy test is exact anyway
    acc = [0.1] * 16
    fmt = [float(i % 2) for i in range(16)]
    res = compute_advantages(list(zip(acc, fmt, strict=True)), [0] * 16)
    assert as_list(res.stats.dvao_weight) == [0.0, 1.0]
    assert as_list(res.advantages["grpo"]) == [0.0] * 16
    assert as_list(res.advantages["dvao"]) == approx([-1.0, 1.0] * 8)


def test_eps_positive_uses_the_formula():
    # accuracy constant, format [1,0,1,0] (sigma .5), weights .5/.5, eps 1e-4
    rewards = [[1, 1], [1, 0], [1, 1], [1, 0]]
    res = compute_advantages(rewards, [0] * 4, weights=[0.5, 0.5], eps=1e-4)
    a = {k: as_list(v) for k, v in res.advantages.items()}
    assert a["grpo"] == [0.0] * 4
    # .25 / (.25 + 1e-4)
    assert a["dvao"] == approx([0.9996001599360256, -0.9996001599360256] * 2)
    assert a["rc"] == approx([0.9996001599360256, -0.9996001599360256] * 2)
    # .5 * .5 / (.5 + 1e-4)
    assert a["ac"] == approx([0.4999000199960008, -0.4999000199960008] * 2)


def test_constant_sum_of_anticorrelated_objectives_is_zero_not_noise():
    # s = .3 * .7 + .3 * .2 = .3 * .2 + .3 * .7: constant; rounding must not become +-1
    rewards = [[0.7, 0.2], [0.2, 0.7]] * 2
    res = compute_advantages(rewards, [0] * 4, weights=[0.3, 0.3])
    assert as_list(res.advantages["rc"]) == [0.0] * 4
    assert as_list(res.stats.rc_std) == [0.0]
    assert as_list(res.advantages["dvao"]) == approx([0.0] * 4, abs=1e-12)


def test_noise_is_zero_with_eps_too():
    # with eps > 0, the normaliser is eps: rounding noise / eps must not become an advantage
    rewards = [[0.7, 0.2], [0.2, 0.7]] * 2
    res = compute_advantages(rewards, [0] * 4, weights=[0.3, 0.3], eps=1e-9)
    assert as_list(res.advantages["rc"]) == [0.0] * 4


def test_gdpo_of_a_step_whose_ac_cancels_is_zero_not_whitened_noise():
    # format = 1 - accuracy in both groups (10 responses: the means are not exact in binary):
    # AC is rounding noise (1e-17); whitened over the step it used to become +-1.9
    accuracy = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    rewards = [[a, 1 - a] for a in accuracy]
    group = [0] * 10 + [1] * 10
    for eps in (0.0, 1e-4):
        res = compute_advantages(rewards, group, [0] * 20, eps=eps)
        assert as_list(res.advantages["ac"]) == approx([0.0] * 20, abs=1e-15)
        assert as_list(res.advantages["gdpo"]) == [0.0] * 20, eps


# --------------------------------------------------------------------------------------------
# Paths: contiguous, permuted blocks, ragged; numpy input; empty input
# --------------------------------------------------------------------------------------------


def _batch(seed: int, groups: int, size: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rewards = rng.choice([0.0, 0.25, 1.0], size=(groups * size, k)) + rng.random((groups * size, k))
    rewards[: size * 2] = np.round(rewards[: size * 2])  # some ties and saturated groups
    group = np.repeat(np.arange(groups), size)
    step = group // 3
    return rewards, group, step


def test_fast_permuted_and_ragged_paths_agree():
    rewards, group, step = _batch(0, 12, 8, 3)
    fast = compute_advantages(rewards, group, step, [0.2, 0.3, 0.5])
    # blocks in another code order (still the fast path)
    perm_codes = np.random.default_rng(1).permutation(12)
    blocks = compute_advantages(rewards, perm_codes[group], step, [0.2, 0.3, 0.5])
    # rows shuffled (the ragged path)
    order = np.random.default_rng(2).permutation(len(group))
    ragged = compute_advantages(rewards[order], group[order], step[order], [0.2, 0.3, 0.5])
    inverse = np.argsort(order)
    for name in SCHEMES:
        ref = as_list(fast.advantages[name])
        assert as_list(blocks.advantages[name]) == approx(ref)
        assert as_list(ragged.advantages[name][inverse]) == approx(ref)
    for field in ("mean", "std", "dvao_weight", "rc_std", "size", "count"):
        ref = as_list(getattr(fast.stats, field))
        assert as_list(getattr(blocks.stats, field)[perm_codes]) == approx(ref)
        assert as_list(getattr(ragged.stats, field)) == approx(ref)


def test_tensor_and_numpy_inputs_agree():
    rewards, group, step = _batch(3, 6, 4, 2)
    a = compute_advantages(rewards, group, step)
    b = compute_advantages(torch.from_numpy(rewards).float(), torch.from_numpy(group), step)
    for name in SCHEMES:
        assert as_list(b.advantages[name]) == approx(
            as_list(a.advantages[name]), rel=1e-6, abs=1e-6
        )
    assert b.advantages["dvao"].dtype == torch.float64  # cpu default, whatever came in


def test_empty_batch():
    res = compute_advantages(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    assert all(v.shape == (0,) for v in res.advantages.values())
    assert res.stats.mean.shape == (0, 2)


def test_unused_group_code_has_empty_stats():
    res = compute_advantages([[1.0], [0.0], [1.0]], [0, 2, 2], [3, 4, 4])  # code 1 unused
    assert as_list(res.stats.size) == [1, 0, 2]
    assert as_list(res.stats.mean) == [1.0, 0.0, 0.5]
    assert as_list(res.stats.count) == [1, 0, 2]
    assert as_list(res.advantages["dvao"]) == [0.0, -1.0, 1.0]


def test_schemes_filter_and_order():
    res = compute_advantages(EX1, [0] * 4, schemes=("dvao", "grpo"))
    assert list(res.advantages) == ["dvao", "grpo"]
    assert isinstance(res, AdvantageResult)
    stats = group_stats(EX1, [0] * 4, [0.5, 0.5])
    assert isinstance(stats, GroupStats)
    assert as_list(stats.dvao_weight) == approx([[0.5358983848622454, 0.4641016151377546]])


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rewards": [1.0, 2.0]}, r"rewards must have shape \(N, K\), got \(2,\)"),
        ({"group": [0, 0, 0]}, r"group must have shape \(4,\), got \(3,\)"),
        ({"group": [0.0, 0.0, 0.0, 0.0]}, "group must be integers"),
        ({"group": [0, 0, 0, 4]}, r"group codes must lie in 0..3 \(dense codes\), got 0..4"),
        ({"group": [0, 0, -1, 0]}, r"group codes must lie in 0..3"),
        ({"weights": [1.0]}, r"weights must have one entry per objective \(2\), got 1"),
        ({"weights": [1.0, -0.5]}, "weights must be finite and >= 0, got -0.5"),
        ({"schemes": ["dvoa"]}, "unknown scheme 'dvoa' \\(did you mean 'dvao'\\?\\)"),
        ({"ddof": -1}, "ddof must be an integer >= 0"),
        ({"eps": -1e-4}, "eps must be a finite number >= 0"),
        ({"nan": "skip"}, "nan must be one of error, drop, ignore, got 'skip'"),
        ({"primary": 2}, r"primary must be an objective index in 0..1, got 2"),
        ({"dtype": torch.float16}, "unsupported dtype"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"step": [1, 1, 2, 2]}, "step varies inside a group"),
        ({"step": [1, 1]}, r"step must have shape \(4,\), got \(2,\)"),
        ({"step": [1, 1], "schemes": ["rc"]}, r"step must have shape \(4,\), got \(2,\)"),
    ],
)
def test_validation(kwargs, message):
    args = {"rewards": EX1, "group": [0, 0, 0, 0], "step": None, "weights": None}
    args.update(kwargs)
    with pytest.raises(UsageError, match=message):
        compute_advantages(
            args.pop("rewards"), args.pop("group"), args.pop("step"), args.pop("weights"), **args
        )


def test_validation_of_dense_helpers_and_conversion():
    with pytest.raises(UsageError, match=r"rewards must have shape \(num_prompts, G, K\)"):
        dvao_advantages(torch.zeros(4, 2))
    with pytest.raises(UsageError, match="rewards must be a numeric array or tensor"):
        as_tensor(np.array(["a", "b"]), name="rewards")
    with pytest.raises(UsageError, match="step varies inside a group"):
        compute_advantages([[1.0], [0.0], [1.0]], [0, 1, 0], [1, 2, 2])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_unavailable_is_a_usage_error():
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Dense helpers (the trainer API) and lazy exports
# --------------------------------------------------------------------------------------------


def test_dense_helpers_match_the_engine():
    rewards, group, step = _batch(4, 6, 8, 2)
    dense = torch.from_numpy(rewards).view(6, 8, 2)
    w = [0.7, 0.3]
    ref = compute_advantages(rewards, group, None, w, ddof=1, eps=1e-4)
    pairs = {
        "dvao": dvao_advantages(dense, w, 1, 1e-4),
        "rc": rc_advantages(dense, w, 1, 1e-4),
        "ac": ac_advantages(dense, w, 1, 1e-4),
        "gdpo": gdpo_advantages(dense, w, 1, 1e-4),
        "grpo": grpo_advantages(dense, 0, 1, 1e-4),
    }
    for name, got in pairs.items():
        assert got.shape == (6, 8)
        assert as_list(got.reshape(-1)) == approx(as_list(ref.advantages[name]))
    assert as_list(grpo_advantages(dense, primary=1).reshape(-1)) == approx(
        as_list(compute_advantages(rewards, group, schemes=["grpo"], primary=1).advantages["grpo"])
    )


def test_dense_helper_keeps_input_dtype():
    rewards = torch.tensor(EX1, dtype=torch.float32).view(1, 4, 2)
    out = dvao_advantages(rewards)
    assert out.dtype == torch.float32 and out.shape == (1, 4)
    assert as_list(out[0]) == approx(
        [0.8038475772933680, -0.2679491924311227, 0.8038475772933680, -1.3397459621556135],
        rel=1e-6,
    )


def test_lazy_exports():
    for name in (
        "compute_advantages",
        "dvao_advantages",
        "rc_advantages",
        "ac_advantages",
        "gdpo_advantages",
        "grpo_advantages",
        "group_stats",
        "AdvantageResult",
        "GroupStats",
    ):
        assert getattr(dvao_cli, name) is getattr(
            __import__("dvao_cli.advantages").advantages, name
        )


def test_schemes_match_the_cli_options():
    from dvao_cli.cli.options import SCHEMES as CLI_SCHEMES

    assert SCHEMES == CLI_SCHEMES


# --------------------------------------------------------------------------------------------
# segment_whiten
# --------------------------------------------------------------------------------------------


def test_segment_whiten():
    x = [1.0, 3.0, 10.0, 5.0, 5.0, 7.0]
    seg = [4, 4, 9, 8, 8, 9]  # labels in any order and any values
    out = as_list(segment_whiten(x, seg))
    # seg 4: [1,3] -> [-1,1]; seg 8: constant -> 0; seg 9: [10,7] -> [1,-1]
    assert out == approx([-1.0, 1.0, 1.0, 0.0, 0.0, -1.0])
    # ddof 1 + eps: (x - mean) / (sqrt(2) + 0.5) for [1, 3]
    out = as_list(segment_whiten([1.0, 3.0], None, ddof=1, eps=0.5))
    assert out == approx([-0.5224077499274828, 0.5224077499274828])


# --------------------------------------------------------------------------------------------
# Dtypes and devices
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_float32_matches_float64():
    rewards, group, step = _batch(5, 40, 16, 3)
    r64 = compute_advantages(rewards, group, step, [0.5, 0.3, 0.2])
    r32 = compute_advantages(rewards, group, step, [0.5, 0.3, 0.2], dtype=torch.float32)
    for name in SCHEMES:
        assert r32.advantages[name].dtype == torch.float32
        torch.testing.assert_close(
            r32.advantages[name].double(), r64.advantages[name], rtol=1e-6, atol=2e-6
        )
    torch.testing.assert_close(
        r32.stats.dvao_weight.double(), r64.stats.dvao_weight, rtol=1e-6, atol=1e-6
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rewards, group, step = _batch(6, 64, 16, 3)
    order = np.random.default_rng(7).permutation(len(group))
    for r, g, s in ((rewards, group, step), (rewards[order], group[order], step[order])):
        cpu = compute_advantages(r, g, s, [0.5, 0.3, 0.2], device="cpu")
        for dtype in (torch.float32, torch.float64):
            gpu = compute_advantages(r, g, s, [0.5, 0.3, 0.2], device="cuda", dtype=dtype)
            for name in SCHEMES:
                assert gpu.advantages[name].device.type == "cuda"
                torch.testing.assert_close(
                    gpu.advantages[name].cpu().double(), cpu.advantages[name], rtol=1e-6, atol=2e-6
                )
    auto = compute_advantages(rewards, group, step)
    assert auto.advantages["dvao"].device.type == "cuda"
    assert auto.advantages["dvao"].dtype == torch.float32
    dense = dvao_advantages(torch.tensor(EX1, device="cuda").view(1, 4, 2))
    assert dense.device.type == "cuda"


# --------------------------------------------------------------------------------------------
# Peer equivalence: an independent re-implementation of TRL's documented formulas (GRPOTrainer)
# --------------------------------------------------------------------------------------------


def _trl_nanstd(grouped: torch.Tensor) -> torch.Tensor:
    """Bessel-corrected std over dim 1 skipping NaN: (P, G, K) -> (P, 1, K)."""
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    count = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    sq = torch.nansum((grouped - mean) ** 2, dim=1, keepdim=True)
    return torch.sqrt(sq / (count - 1))


def _trl_sum_then_normalize(rpf: torch.Tensor, weights: torch.Tensor, g: int) -> torch.Tensor:
    unscorable = torch.isnan(rpf).all(dim=1)  # TRL 1.16: every reward function returned None
    rewards = (rpf * weights[None, :]).nansum(dim=1)  # a missing reward adds nothing
    rewards[unscorable] = torch.nan  # left out of the group's mean and std
    grouped = rewards.view(-1, g)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(g)
    std = _trl_nanstd(grouped[:, :, None])[:, 0, 0].repeat_interleave(g)  # Bessel
    return torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)


def _trl_normalize_then_sum(rpf: torch.Tensor, weights: torch.Tensor, g: int) -> torch.Tensor:
    unscorable = torch.isnan(rpf).all(dim=1)
    grouped = rpf.view(-1, g, rpf.shape[1])
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    std = _trl_nanstd(grouped)
    per_reward = ((grouped - mean) / (std + 1e-4)).view(-1, rpf.shape[1])
    rewards = (per_reward * weights[None, :]).nansum(dim=1)
    rewards[unscorable] = torch.nan  # left out of the batch whitening
    std_all = _trl_nanstd(rewards[None, :, None])[0, 0, 0]
    return torch.nan_to_num((rewards - torch.nanmean(rewards)) / (std_all + 1e-4), nan=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("with_nan", [False, True, "unscorable"])
def test_trl_equivalence(with_nan):
    gen = torch.Generator().manual_seed(11)
    prompts, g, k = 24, 8, 3
    rpf = torch.rand(prompts * g, k, generator=gen)
    rpf[:, 0] = (rpf[:, 0] > 0.5).float()  # a binary accuracy
    rpf[: 2 * g, 1] = 1.0  # two groups saturated on one objective
    if with_nan:
        # a reward function returned None for some rows (never for all of a row)
        missing = torch.rand(prompts * g, k, generator=gen) < 0.15
        missing[:, 2] = False
        rpf[missing] = float("nan")
        # keep at least two rewards per group and objective so TRL's Bessel std is defined
        grouped = rpf.view(prompts, g, k)
        grouped[:, :2, :] = torch.rand(prompts, 2, k, generator=gen)
    if with_nan == "unscorable":  # rows where every reward function returned None (TRL 1.16)
        rpf[[2, 11, 12, 40]] = float("nan")
    weights = torch.tensor([1.0, 0.5, 2.0])  # used as given, not normalised
    group = torch.arange(prompts).repeat_interleave(g)
    res = compute_advantages(
        rpf, group, None, weights, ddof=1, eps=1e-4, nan="ignore" if with_nan else "error"
    )
    torch.testing.assert_close(
        res.advantages["rc"].float(), _trl_sum_then_normalize(rpf, weights, g), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        res.advantages["gdpo"].float(),
        _trl_normalize_then_sum(rpf, weights, g),
        rtol=1e-5,
        atol=1e-5,
    )
    res32 = compute_advantages(
        rpf, group, None, weights, ddof=1, eps=1e-4, dtype=torch.float32, nan="ignore"
    )
    torch.testing.assert_close(
        res32.advantages["gdpo"], _trl_normalize_then_sum(rpf, weights, g), rtol=1e-5, atol=1e-5
    )


def test_trl_equivalence_with_the_dense_helpers():
    gen = torch.Generator().manual_seed(5)
    prompts, g, k = 16, 4, 2
    rpf = (torch.rand(prompts * g, k, generator=gen) * 4).round() / 4
    rpf[torch.rand(prompts * g, generator=gen) < 0.1, 1] = float("nan")
    weights = torch.tensor([1.0, 1.0])
    dense = rpf.view(prompts, g, k)
    rc = rc_advantages(dense, weights=[1.0, 1.0], ddof=1, eps=1e-4, nan="ignore")
    gdpo = gdpo_advantages(dense, [1.0, 1.0], 1, 1e-4, nan="ignore")
    assert rc.dtype == torch.float32 and rc.shape == (prompts, g)
    torch.testing.assert_close(
        rc.view(-1), _trl_sum_then_normalize(rpf, weights, g), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        gdpo.view(-1), _trl_normalize_then_sum(rpf, weights, g), rtol=1e-5, atol=1e-5
    )


def test_api_doc_example():
    rewards = np.array([[1, 1], [0, 1], [1, 1], [0, 0]], dtype=float)
    res = compute_advantages(
        rewards, group=[0, 0, 0, 0], weights=[0.5, 0.5], schemes=["rc", "dvao"]
    )
    assert [round(v, 4) for v in as_list(res.advantages["dvao"])] == [
        0.8038,
        -0.2679,
        0.8038,
        -1.3397,
    ]
    assert [round(v, 4) for v in as_list(res.advantages["rc"])] == [
        0.9045,
        -0.3015,
        0.9045,
        -1.5076,
    ]
    assert [round(v, 4) for v in as_list(res.stats.dvao_weight)] == [0.5359, 0.4641]

"""What every trainer integration shares, tested without a trainer: the per-objective metrics
(dvao_cli/integrations/metrics.py), the configuration checks (checks.py) and the supported
versions (versions.py, which pyproject.toml's extras repeat)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pytest import approx

from dvao_cli import group_stats
from dvao_cli.errors import UsageError
from dvao_cli.integrations import checks, versions
from dvao_cli.integrations.metrics import METRICS, binary_rewards, objective_metrics


def test_metrics_by_hand() -> None:
    # two groups of 4; accuracy varies in group 0 only, format is constant in group 0
    rewards = torch.tensor(
        [
            [1.0, 1.0],
            [0.0, 1.0],
            [1.0, 1.0],
            [0.0, 1.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [1.0, 0.0],
            [1.0, 1.0],
        ]
    )
    stats = group_stats(rewards, [0, 0, 0, 0, 1, 1, 1, 1], [0.5, 0.5])
    m = objective_metrics(stats, ["accuracy", "format"], rewards)
    # group 0: sigma = (0.5, 0) -> weights (1, 0); group 1: sigma = (0, 0.5) -> weights (0, 1)
    # saturated: accuracy in group 1 (all 1: all-pass), format in group 0 (all 1: all-pass)
    assert m == approx(
        {
            "dvao/weight/accuracy": 0.5,
            "dvao/weight/format": 0.5,
            "dvao/within_std/accuracy": 0.25,
            "dvao/within_std/format": 0.25,
            "dvao/saturation/accuracy": 0.5,
            "dvao/saturation/format": 0.5,
            "dvao/all_pass/accuracy": 0.5,
            "dvao/all_pass/format": 0.5,
            "dvao/all_fail/accuracy": 0.0,
            "dvao/all_fail/format": 0.0,
        }
    )
    assert list(m) == [f"dvao/{metric}/{n}" for metric in METRICS for n in ("accuracy", "format")]


def test_all_pass_and_all_fail_split_saturation_of_binary_rewards_only() -> None:
    # three groups of 2: pass is all 1 / all 0 / mixed; score is a graded reward, constant at
    # 1.0 in group 0 (saturated, but not binary: no split)
    rewards = torch.tensor(
        [[1.0, 1.0], [1.0, 1.0], [0.0, 0.5], [0.0, 0.25], [1.0, 0.0], [0.0, 1.0]],
        dtype=torch.float64,
    )
    stats = group_stats(rewards, [0, 0, 1, 1, 2, 2])
    m = objective_metrics(stats, ["pass", "score"], rewards)
    assert m["dvao/saturation/pass"] == approx(2 / 3)
    assert m["dvao/all_pass/pass"] == approx(1 / 3)
    assert m["dvao/all_fail/pass"] == approx(1 / 3)
    assert m["dvao/saturation/score"] == approx(1 / 3)
    assert "dvao/all_pass/score" not in m and "dvao/all_fail/score" not in m
    # a 1 that went through float arithmetic is still a pass; 0.999 is not binary
    assert binary_rewards(np.array([[1 - 1e-13, 0.999], [0.0, 1.0]])) == [True, False]
    assert binary_rewards(torch.tensor([[math.nan], [1.0]])) == [True]  # missing: skipped


def test_a_reward_missing_from_a_whole_group_is_left_out() -> None:
    nan = math.nan
    rewards = torch.tensor([[1.0, nan], [0.0, nan], [1.0, 1.0], [0.0, 0.0]])
    stats = group_stats(rewards, [0, 0, 1, 1], [1.0, 1.0], nan="ignore")
    m = objective_metrics(stats, ["a", "b"], rewards)
    assert m["dvao/within_std/b"] == approx(0.5)  # group 1 only
    assert m["dvao/saturation/b"] == 0.0
    assert m["dvao/all_pass/b"] == 0.0 and m["dvao/all_fail/b"] == 0.0
    assert m["dvao/weight/a"] == approx((1.0 + 0.5) / 2)


# --------------------------------------------------------------------------------------------
# checks.py
# --------------------------------------------------------------------------------------------


def test_ddof_and_eps_are_named_by_the_trainer_setting() -> None:
    assert checks.check_ddof_eps(1, 1e-4) == (1, 1e-4)
    for ddof, eps, message in [
        (-1, 0.0, "DVAO_DDOF: ddof must be an integer >= 0, got -1"),
        (1.5, 0.0, "DVAO_DDOF: ddof must be an integer >= 0, got 1.5"),
        (True, 0.0, "DVAO_DDOF: ddof must be an integer >= 0, got True"),
        (0, -1e-6, "DVAO_EPS: eps must be a finite number >= 0, got -1e-06"),
        (0, math.inf, "DVAO_EPS: eps must be a finite number >= 0, got inf"),
    ]:
        with pytest.raises(UsageError) as info:
            checks.check_ddof_eps(ddof, eps, ddof_setting="DVAO_DDOF", eps_setting="DVAO_EPS")
        assert str(info.value) == message


def test_group_size_must_leave_a_std() -> None:
    names = {"ddof_setting": "ddof", "size_setting": "num_generations"}
    checks.check_group_size(0, 2, **names)
    checks.check_group_size(7, 8, **names)
    with pytest.raises(UsageError, match="^ddof=8 with num_generations=8: .*train on nothing"):
        checks.check_group_size(8, 8, **names)
    with pytest.raises(UsageError, match="^ddof=2 with num_generations=2: "):
        checks.check_group_size(2, 2, **names)
    with pytest.raises(UsageError, match="^num_generations=1: a group needs at least 2"):
        checks.check_group_size(0, 1, **names)


def test_ragged_groups_at_or_below_ddof_are_refused_in_the_batch() -> None:
    checks.check_groups(np.array([0, 0, 1]), 0, ddof_setting="ddof")  # a lone response is fine
    checks.check_groups(torch.tensor([0, 0, 1, 1]), 1, ddof_setting="ddof")
    with pytest.raises(UsageError, match=r"^ddof=1: 1 group\(s\) in this batch have 1 or fewer "):
        checks.check_groups(np.array([0, 0, 1]), 1, ddof_setting="ddof")
    with pytest.raises(UsageError, match=r"^--ddof=2: 2 group\(s\) .* \(the smallest 1\)"):
        checks.check_groups(torch.tensor([2, 0, 0, 0, 1, 1]), 2, ddof_setting="--ddof")


def test_reward_keys_are_a_list_of_names_never_a_split_string() -> None:
    setting = "algorithm.gdpo_reward_keys"
    assert checks.check_reward_names(("acc", "format"), setting=setting) == ["acc", "format"]
    for keys, message in [
        ("acc", f"{setting}='acc' is one string, not a list of reward keys: write {setting}=[acc]"),
        ([], f"{setting} is empty"),
        (["acc", ""], f"{setting}: '' is not a reward key name"),
        (["acc", 1], f"{setting}: 1 is not a reward key name"),
        (["acc", "acc"], f"{setting}: acc listed more than once"),
        (3, f"{setting}=3: expected a list of reward keys"),
        ({"acc": 1}, f"{setting}={{'acc': 1}}: expected a list of reward keys"),
    ]:
        with pytest.raises(UsageError) as info:
            checks.check_reward_names(keys, setting=setting)
        assert str(info.value).startswith(message)


def test_weights_that_cannot_train_are_refused() -> None:
    names = ["acc", "format"]
    assert checks.check_weights(None, names, setting="w") is None
    assert checks.check_weights((0.7, 0), names, setting="w") == [0.7, 0.0]
    assert checks.check_weights(np.array([1e-6, 1.0]), names, setting="w") == [1e-6, 1.0]
    for weights, message in [
        ([1.0], "w: weights must have one entry per objective (2), got 1"),
        ([1.0, -0.5], "w: weights must be finite and >= 0, got -0.5"),
        ([1.0, math.inf], "w: weights must be finite and >= 0, got inf"),
        ([0.0, 0.0], "w: weights are all 0: every weighted advantage would be 0"),
        ([1e-320, 1e-320], "w: weights: 1e-320 is too small to compute with"),
        ([1.0, 1e-13], "w: weights: 1e-13 is too small to compute with"),
        (0.5, "w=0.5: expected a list of numbers, one per reward (acc, format)"),
        ("0.5,0.5", "w='0.5,0.5': expected a list of numbers"),
        (["a", "b"], "w=['a', 'b']: the weights must be numbers"),
        ([None, 1.0], "w=[None, 1.0]: the weights must be numbers"),
        (torch.tensor([1e-39, 1.0], dtype=torch.float64), "w: weights: 1e-39 is too small"),
    ]:
        with pytest.raises(UsageError) as info:
            checks.check_weights(weights, names, setting="w")
        assert str(info.value).startswith(message)


# --------------------------------------------------------------------------------------------
# versions.py
# --------------------------------------------------------------------------------------------


def test_pyproject_extras_are_the_supported_ranges() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    for name, spec in versions.SUPPORTED.items():
        line = re.search(rf"^{name} = \[(.*?)\]$", text, re.MULTILINE | re.DOTALL)
        assert line is not None, name
        first = re.match(r'\s*"([^"]*)"', line.group(1)).group(1)  # the trainer's requirement
        dist = versions.DISTRIBUTION[name]
        assert re.fullmatch(rf"{re.escape(dist)}(\[[\w-]+\])?{re.escape(spec)}", first), first


def test_the_tested_pair_is_the_oldest_and_newest_supported() -> None:
    for name, (oldest, newest) in versions.TESTED.items():
        assert versions.supported(name, oldest) and versions.supported(name, newest)
    assert versions.supported("trl", "1.14.1")
    assert not versions.supported("trl", "1.11.0") and not versions.supported("trl", "1.17.0")
    assert not versions.supported("verl", "0.8.0") and not versions.supported("verl", "0.9.2")
    assert versions.supported("swift", "4.5.3") and not versions.supported("swift", "4.7.0")

"""The shared per-objective metrics of the trainer integrations (dvao_cli/integrations/metrics)."""

from __future__ import annotations

import math

import torch
from pytest import approx

from dvao_cli import group_stats
from dvao_cli.integrations.metrics import objective_metrics


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
    m = objective_metrics(stats, ["accuracy", "format"])
    # group 0: sigma = (0.5, 0) -> weights (1, 0); group 1: sigma = (0, 0.5) -> weights (0, 1)
    assert m == approx(
        {
            "dvao/weight/accuracy": 0.5,
            "dvao/weight/format": 0.5,
            "dvao/within_std/accuracy": 0.25,
            "dvao/within_std/format": 0.25,
            "dvao/saturation/accuracy": 0.5,
            "dvao/saturation/format": 0.5,
        }
    )


def test_a_reward_missing_from_a_whole_group_is_left_out() -> None:
    nan = math.nan
    rewards = torch.tensor([[1.0, nan], [0.0, nan], [1.0, 1.0], [0.0, 0.0]])
    stats = group_stats(rewards, [0, 0, 1, 1], [1.0, 1.0], nan="ignore")
    m = objective_metrics(stats, ["a", "b"])
    assert m["dvao/within_std/b"] == approx(0.5)  # group 1 only
    assert m["dvao/saturation/b"] == 0.0
    assert m["dvao/weight/a"] == approx((1.0 + 0.5) / 2)

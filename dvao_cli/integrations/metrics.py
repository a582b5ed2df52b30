"""What every trainer integration shares: the engine on a trainer's gathered batch
(`batch_advantages`) and the per-objective metrics of one training step (`objective_metrics`).

Keys are namespaced `dvao/<metric>/<reward>`, with `<reward>` the reward's name as the trainer
names it:

    dvao/weight/<reward>      mean DVAO weight w~_k = w_k sigma_k / sum_l w_l sigma_l over the
                              step's groups
    dvao/within_std/<reward>  mean within-group std sigma_k over the step's groups
    dvao/saturation/<reward>  share of the step's groups in which reward k has zero within-group
                              variance (it carries no learning signal there)
    dvao/all_pass/<reward>    share of the step's groups in which every response scored 1, and
    dvao/all_fail/<reward>    in which every response scored 0: the two halves of saturation, for
                              a reward that is binary in this step (every value 0 or 1, within
                              float rounding); not logged for any other reward

Groups in which a reward has no value at all (every response returned None) are left out of
that reward's means. `dvao train` writes the same keys as metrics.parquet columns. The table of
every key is in docs/integrations.md ("Metrics").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dvao_cli.advantages import AdvantageResult, GroupStats, as_tensor, compute_advantages
from dvao_cli.core.conventions import near

METRICS = ("weight", "within_std", "saturation", "all_pass", "all_fail")
BINARY_METRICS = ("all_pass", "all_fail")  # logged for binary rewards only


def batch_advantages(
    rewards: torch.Tensor,
    group: torch.Tensor,
    weights: Any,
    *,
    scheme: str,
    ddof: int,
    eps: float,
) -> AdvantageResult:
    """The engine's `scheme` advantages of a trainer's gathered batch, on the rewards' device:
    rewards (N, K) with NaN where a reward function returned None (skipped, as TRL does), group
    (N,) codes, and the batch one step (GDPO whitens over all of it, as TRL and ms-swift do)."""
    return compute_advantages(
        rewards,
        group,
        None,
        weights,
        schemes=(scheme,),
        ddof=ddof,
        eps=eps,
        nan="ignore",
        device=rewards.device,
    )


def metric_key(metric: str, reward: str) -> str:
    """`dvao/<metric>/<reward>`, the one spelling of a metric key."""
    return f"dvao/{metric}/{reward}"


def binary_rewards(rewards: Any) -> list[bool]:
    """(K,) whether every present reward of each objective is 0 or 1 (within BINARY_TOL, the
    tolerance `dvao analyze` uses); rewards (N, K), NaN = missing, skipped."""
    values = as_tensor(rewards, name="rewards")
    binary = near(values, 0.0) | near(values, 1.0) | torch.isnan(values)  # (N, K)
    return binary.all(dim=0).tolist()


@torch.no_grad()
def objective_metrics(stats: GroupStats, names: Sequence[str], rewards: Any) -> dict[str, float]:
    """The step's `dvao/...` metrics from the engine's per-group statistics (groups, K) of
    `rewards` (N, K), the rows they describe (which tell a binary reward)."""
    if stats.std.shape[1] != len(names):
        raise ValueError(f"{len(names)} reward names for {stats.std.shape[1]} objectives")
    present = stats.count > 0  # (groups, K): the reward has at least one value in the group
    n = present.sum(dim=0).clamp(min=1).to(stats.std.dtype)  # (K,)
    zero = torch.zeros((), dtype=stats.std.dtype, device=stats.std.device)

    def mean(values: torch.Tensor) -> list[float]:  # (groups, K) -> (K,) over present groups
        return (torch.where(present, values.to(stats.std.dtype), zero).sum(dim=0) / n).tolist()

    saturated = stats.std == 0  # (groups, K); exactly 0 for a constant reward
    per_metric = {
        "weight": mean(stats.dvao_weight),
        "within_std": mean(stats.std),
        "saturation": mean(saturated),
        "all_pass": mean(saturated & near(stats.mean, 1.0)),
        "all_fail": mean(saturated & near(stats.mean, 0.0)),
    }
    binary = binary_rewards(rewards)
    return {
        metric_key(metric, name): values[k]
        for metric, values in per_metric.items()
        for k, name in enumerate(names)
        if binary[k] or metric not in BINARY_METRICS
    }

"""What every trainer integration shares: the engine on a trainer's gathered batch
(`batch_advantages`) and the per-objective metrics of one training step (`objective_metrics`).

Keys are namespaced `dvao/<metric>/<reward>`, with `<reward>` the reward's name as the trainer
names it:

    dvao/weight/<reward>      mean DVAO weight w~_k = w_k sigma_k / sum_l w_l sigma_l over the
                              step's groups
    dvao/within_std/<reward>  mean within-group std sigma_k over the step's groups
    dvao/saturation/<reward>  share of the step's groups in which reward k has zero within-group
                              variance (it carries no learning signal there)

Groups in which a reward has no value at all (every response returned None) are left out of
that reward's means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dvao_cli.advantages import AdvantageResult, GroupStats, compute_advantages

METRICS = ("weight", "within_std", "saturation")


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


@torch.no_grad()
def objective_metrics(stats: GroupStats, names: Sequence[str]) -> dict[str, float]:
    """The step's `dvao/...` metrics from the engine's per-group statistics (groups, K)."""
    if stats.std.shape[1] != len(names):
        raise ValueError(f"{len(names)} reward names for {stats.std.shape[1]} objectives")
    present = stats.count > 0  # (groups, K): the reward has at least one value in the group
    n = present.sum(dim=0).clamp(min=1).to(stats.std.dtype)  # (K,)
    zero = torch.zeros((), dtype=stats.std.dtype, device=stats.std.device)

    def mean(values: torch.Tensor) -> list[float]:  # (groups, K) -> (K,) over present groups
        return (torch.where(present, values, zero).sum(dim=0) / n).tolist()

    per_metric = {
        "weight": mean(stats.dvao_weight),
        "within_std": mean(stats.std),
        "saturation": mean((stats.std == 0).to(stats.std.dtype)),
    }
    return {
        metric_key(metric, name): values[k]
        for metric, values in per_metric.items()
        for k, name in enumerate(names)
    }

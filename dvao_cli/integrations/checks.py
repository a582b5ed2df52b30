"""What every trainer integration checks before it trains: one UsageError naming the trainer's
own setting (`num_generations`, `algorithm.gdpo_reward_keys`, `DVAO_DDOF`, ...), raised when the
trainer is built, installed or loaded, before any rollout.

The engine's own checks (`ddof`, `eps`, weights' length and sign) are reused, with the setting's
name in front. On top of them, what would make a run train on nothing without an error:

- ddof at or above the group size: every within-group std is 0, so every advantage is 0;
- a group size below 2: a single response has no within-group spread;
- weights that are all 0, or a positive weight too small to compute with (below
  `objective_names.MIN_WEIGHT`, the API's and the command line's rule too);
- reward keys given as one string (`algorithm.gdpo_reward_keys=acc`, which a list() would split
  into ['a', 'c', 'c']).

Groups whose size is only known in the batch (verl's ragged groups, ms-swift's multi-turn
requests) are checked there by `check_groups`: the first batch with a group at or below ddof
stops the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from dvao_cli.advantages import _check_common, _check_weights
from dvao_cli.errors import UsageError


def _named(setting: str, error: UsageError) -> UsageError:
    return UsageError(f"{setting}: {error.message}")


def check_ddof_eps(
    ddof: Any, eps: Any, *, ddof_setting: str = "ddof", eps_setting: str = "eps"
) -> tuple[int, float]:
    """ddof an integer >= 0, eps a finite number >= 0 (the engine's rules)."""
    try:
        _check_common(ddof, 0.0, "ignore")
    except UsageError as error:
        raise _named(ddof_setting, error) from None
    try:
        _check_common(0, eps, "ignore")
    except UsageError as error:
        raise _named(eps_setting, error) from None
    return ddof, float(eps)


def check_group_size(ddof: int, size: int, *, ddof_setting: str, size_setting: str) -> None:
    """A group size that leaves the within-group std something to measure."""
    if size < 2:
        raise UsageError(
            f"{size_setting}={size}: a group needs at least 2 responses to have a within-group "
            "spread; with fewer every advantage is 0"
        )
    if ddof >= size:
        raise UsageError(
            f"{ddof_setting}={ddof} with {size_setting}={size}: a std with ddof {ddof} needs more "
            f"than {ddof} responses per group, so every within-group std would be 0 and every "
            f"advantage 0 (the run would train on nothing); use {ddof_setting} 0 (the paper's) "
            "or 1 (Bessel)"
        )


def check_groups(group: Any, ddof: int, *, ddof_setting: str) -> None:
    """Run time, for group sizes a batch decides (ragged): no group at or below ddof.
    group (N,) dense codes 0..groups-1 (numpy or torch)."""
    if ddof == 0:
        return  # every group of two or more has a std; a lone response is 0 in every scheme
    codes = group.cpu().numpy() if isinstance(group, torch.Tensor) else np.asarray(group)
    sizes = np.bincount(codes.reshape(-1))
    sizes = sizes[sizes > 0]
    if sizes.size and int(sizes.min()) <= ddof:
        small = int((sizes <= ddof).sum())
        raise UsageError(
            f"{ddof_setting}={ddof}: {small} group(s) in this batch have {ddof} or fewer "
            f"responses (the smallest {int(sizes.min())}), so their within-group std would be 0 "
            f"and every advantage 0; use {ddof_setting} 0, or groups of more than {ddof} responses"
        )


def check_reward_names(keys: Any, *, setting: str) -> list[str]:
    """A non-empty list of distinct, non-empty names (a string is refused, never split)."""
    if isinstance(keys, (str, bytes)):
        raise UsageError(
            f"{setting}={keys!r} is one string, not a list of reward keys: write {setting}=[{keys}]"
        )
    if not isinstance(keys, Iterable) or isinstance(keys, dict):
        raise UsageError(f"{setting}={keys!r}: expected a list of reward keys")
    names = list(keys)
    if not names:
        raise UsageError(f"{setting} is empty: list the reward keys, e.g. {setting}=[acc,format]")
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise UsageError(f"{setting}: {bad[0]!r} is not a reward key name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"{setting}: {', '.join(repeated)} listed more than once")
    return names


def check_weights(weights: Any, names: Sequence[str], *, setting: str) -> list[float] | None:
    """Preference weights, one per reward, finite, >= 0, not all 0, none too small to compute
    with; None (the trainer's default) stays None."""
    if weights is None:
        return None
    if isinstance(weights, (str, bytes, dict)) or not isinstance(weights, Iterable):
        raise UsageError(
            f"{setting}={weights!r}: expected a list of numbers, one per reward "
            f"({', '.join(names)})"
        )
    values = list(weights)
    if any(isinstance(value, (str, bytes)) or value is None for value in values):
        raise UsageError(f"{setting}={values}: the weights must be numbers")
    try:  # the API's rules: length, sign, all 0, too small (objective_names.MIN_WEIGHT)
        values = _check_weights(values, len(names))
    except UsageError as error:
        raise _named(setting, error) from None
    return values

"""DVAO as a verl 0.9 advantage estimator (0.9.0 and 0.9.1): `algorithm.adv_estimator=dvao`.

The estimator reads one reward per key from `non_tensor_batch[key]` for the keys of
`algorithm.gdpo_reward_keys` (what `compute_score` returns in its dict), weighted by
`algorithm.gdpo_reward_weights` (absent: equal weights; DVAO does not depend on their overall
scale), groups the responses by `uid`, and broadcasts each response's DVAO advantage over its
`response_mask`. Std: `ddof` 0 and no `eps`, the paper's DVAO, unless `install(ddof=, eps=)`
(or `--ddof` / `--eps` on the command line) says otherwise; verl's AlgoConfig has no field
for either.

verl 0.9 passes `non_tensor_batch` to the "gdpo" estimator only (verl PR #7473 would pass it
to all). `install()` wraps `compute_advantage` where verl's trainers call it, so that for
"dvao" the estimator sees the batch's `non_tensor_batch` and the step's `dvao/...` metrics
(metrics.py) reach verl's step metrics; every other estimator goes to verl's code unchanged.

    python -m dvao_cli.integrations.verl [--ddof N] [--eps X] algorithm.adv_estimator=dvao \
        algorithm.gdpo_reward_keys=[acc,format] ...

runs verl's `main_ppo` (its Hydra config, with `algorithm.gdpo_reward_keys` and
`algorithm.gdpo_reward_weights` declared so they need no `+`) and installs DVAO in the
TaskRunner Ray actor, the process that computes advantages (v1 or legacy trainer). verl
0.9's default v1 trainer (`trainer.use_v1=true`) does not fetch the reward keys for its
advantage step (verl PR #6159): `install()` also makes its `_compute_advantage` fetch them.

The whole configuration is checked before Ray starts (`check_config`, checks.py): the reward
keys, their weights, `--ddof` against `actor_rollout_ref.rollout.n`, ddof and eps. A batch with
a group of ddof responses or fewer (groups are ragged in verl) stops at its advantage step.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import verl
from verl.trainer.ppo import core_algos

from dvao_cli import compute_advantages, group_stats
from dvao_cli.errors import UsageError
from dvao_cli.integrations.checks import (
    check_ddof_eps,
    check_group_size,
    check_groups,
    check_reward_names,
    check_weights,
)
from dvao_cli.integrations.metrics import objective_metrics
from dvao_cli.integrations.versions import SUPPORTED

ESTIMATOR = "dvao"
VERL_VERSIONS = SUPPORTED["verl"]
KEYS_SETTING = "algorithm.gdpo_reward_keys"
WEIGHTS_SETTING = "algorithm.gdpo_reward_weights"
GROUP_SETTING = "actor_rollout_ref.rollout.n"
# DataProto.meta_info key of the step's dvao/... metrics (a dict of floats, from the advantage
# step until compute_data_metrics takes it; verl's actor update carries it as NonTensorData)
METRICS_KEY = "dvao_metrics"
USE_V1_HINT = (
    "this v1 trainer's advantage step did not fetch the reward keys (verl PR #6159) and is not "
    "verl 0.9's PPOTrainer._compute_advantage that install() patches; set trainer.use_v1=false"
)


@dataclass(frozen=True)
class Settings:
    """Std convention of the estimator: the paper's DVAO is ddof 0, eps 0."""

    ddof: int = 0
    eps: float = 0.0


settings = Settings()


@dataclass
class _Step:
    """What one advantage step hands the estimator, and what it hands back.

    real (bs,) bool: rows that are not verl's padding samples (v1 pads a batch with copies of
    its first sample, in groups of their own); the metrics describe the real rows only."""

    non_tensor_batch: dict[str, np.ndarray]
    real: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)


_step: ContextVar[_Step | None] = ContextVar("dvao_verl_step", default=None)


class VerlVersionError(RuntimeError):
    """verl's internals are not the ones this integration was written against."""


def _fail(what: str) -> VerlVersionError:
    return VerlVersionError(
        f"dvao: {what}: not the verl {VERL_VERSIONS} internals this integration patches "
        f"(verl {verl.__version__} is installed; pip install 'dvao[verl]')"
    )


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


def _reward_keys(config: Any) -> list[str]:
    keys = None if config is None else config.get("gdpo_reward_keys", None)
    if keys is None:
        raise UsageError(
            f"set {KEYS_SETTING} to the reward keys compute_score returns "
            f"(e.g. {KEYS_SETTING}=[acc,format])"
        )
    return check_reward_names(keys, setting=KEYS_SETTING)


def _weights(config: Any, keys: Sequence[str]) -> list[float] | None:
    return check_weights(config.get("gdpo_reward_weights", None), keys, setting=WEIGHTS_SETTING)


def _rewards(non_tensor_batch: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """(bs, K) float64 rewards from the batch's per-key arrays."""
    missing = [key for key in keys if key not in non_tensor_batch]
    if missing:
        raise KeyError(
            f"dvao: reward keys {missing} of algorithm.gdpo_reward_keys are not in the batch "
            f"(it has {sorted(non_tensor_batch)}); compute_score must return them in its dict"
        )
    rewards = np.stack([np.asarray(non_tensor_batch[key], dtype=np.float64) for key in keys], 1)
    finite = np.isfinite(rewards).all(axis=0)  # (K,)
    bad = [key for key, ok in zip(keys, finite, strict=True) if not ok]
    if bad:
        raise ValueError(f"dvao: reward keys {bad} have None, NaN or inf values in this batch")
    return rewards


@core_algos.register_adv_est(ESTIMATOR)
def compute_dvao_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray | None = None,
    config: Any = None,
    non_tensor_batch: dict[str, np.ndarray] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DVAO of each response, broadcast over its tokens: (advantages, returns), both
    (bs, response_length), 0 on padding.

    token_level_rewards (bs, response_length) only sets the output dtype: the rewards are
    `non_tensor_batch[key]` (bs,) for each of `config.gdpo_reward_keys`. index (bs,) the `uid`
    of each response's prompt, in any order; groups may differ in size.
    """
    step = _step.get()
    if non_tensor_batch is None and step is not None:
        non_tensor_batch = step.non_tensor_batch
    if non_tensor_batch is None:
        raise RuntimeError(
            "dvao: verl called the estimator without non_tensor_batch; call "
            "dvao_cli.integrations.verl.install() in the process that computes advantages"
        )
    if index is None:
        raise ValueError("dvao: the batch has no 'uid' to group responses by prompt")
    keys = _reward_keys(config)
    weights = _weights(config, keys)
    rewards = _rewards(non_tensor_batch, keys)  # (bs, K)
    group = _group_codes(index)
    check_groups(group, settings.ddof, ddof_setting="ddof")  # ragged: known only here
    options = {
        "weights": weights,
        "ddof": settings.ddof,
        "eps": settings.eps,
        "device": response_mask.device,
        "dtype": torch.float64,
    }
    result = compute_advantages(rewards, group, schemes=(ESTIMATOR,), **options)
    scores = result.advantages[ESTIMATOR].to(token_level_rewards.dtype)  # (bs,)
    advantages = scores.unsqueeze(-1) * response_mask  # (bs, response_length)
    if step is not None:
        stats = result.stats
        if step.real is not None and not step.real.all():
            real = step.real
            rewards = rewards[real]
            stats = group_stats(rewards, _group_codes(np.asarray(index)[real]), **options)
        step.metrics = objective_metrics(stats, keys, rewards)
    return advantages, advantages


def _group_codes(index: np.ndarray) -> np.ndarray:
    """(bs,) dense codes 0..groups-1 of the uids, in any order."""
    return np.unique(np.asarray(index), return_inverse=True)[1].reshape(-1)


# --------------------------------------------------------------------------------------------
# install(): the call sites
# --------------------------------------------------------------------------------------------


def _passing_batch(compute_advantage: Callable[..., Any], v1: bool = False) -> Callable:
    """verl's `compute_advantage(data, adv_estimator, ...)`, which for "dvao" lends the
    estimator `data.non_tensor_batch` and stores the step's metrics in `data.meta_info`.

    Inside a v1 advantage step (`_fetching_rewards`), the reward keys that step fetched join
    `data.non_tensor_batch` first; v1: the caller is the v1 trainer, which fetches none itself."""

    @functools.wraps(compute_advantage)
    def wrapper(data: Any, adv_estimator: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(adv_estimator, "value", adv_estimator) != ESTIMATOR:
            return compute_advantage(data, adv_estimator, *args, **kwargs)
        fetched = _step.get()
        if fetched is not None:
            data.non_tensor_batch.update(fetched.non_tensor_batch)
        elif v1:
            raise RuntimeError(f"dvao: {USE_V1_HINT}")
        step = _Step(data.non_tensor_batch, real=None if fetched is None else fetched.real)
        token = _step.set(step)
        try:
            data = compute_advantage(data, adv_estimator, *args, **kwargs)
        finally:
            _step.reset(token)
        if fetched is not None:
            fetched.metrics = step.metrics
        data.meta_info[METRICS_KEY] = step.metrics
        return data

    wrapper.__dvao_wraps__ = compute_advantage
    return wrapper


def _fetching_rewards(compute_advantage: Callable[..., Any]) -> Callable:
    """verl 0.9.1's v1 `PPOTrainer._compute_advantage(self, batch, metrics)`, which for "dvao"
    also fetches the rows' `extra_fields` from TransferQueue (as verl's own trainer does for
    its generation dumps), hands their `reward_extra_info[key]` to the advantage step, and adds
    the step's metrics to `metrics`."""

    @functools.wraps(compute_advantage)
    def wrapper(self: Any, batch: Any, metrics: dict) -> Any:
        algorithm = self.config.algorithm
        if getattr(algorithm.adv_estimator, "value", algorithm.adv_estimator) != ESTIMATOR:
            return compute_advantage(self, batch, metrics)
        tq = sys.modules[compute_advantage.__module__].tq  # the client verl's trainer uses
        fetched = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"]
        )
        infos = [
            extra.get("reward_extra_info", {}) if isinstance(extra, dict) else {}
            for extra in fetched.pop("extra_fields").tolist()
        ]  # (bs,) dicts, in batch.keys order: the order _compute_advantage fetches its rows in
        present = [key for key in _reward_keys(algorithm) if any(key in info for info in infos)]
        rewards = {
            key: np.array([info.get(key) for info in infos], dtype=object) for key in present
        }
        real = np.array([not tag.get("is_padding", False) for tag in batch.tags], dtype=bool)
        step = _Step(rewards, real=real)
        token = _step.set(step)
        try:
            batch = compute_advantage(self, batch, metrics)
        finally:
            _step.reset(token)
        metrics.update(step.metrics)
        return batch

    wrapper.__dvao_wraps__ = compute_advantage
    return wrapper


def _with_dvao_metrics(compute_data_metrics: Callable[..., dict]) -> Callable[..., dict]:
    """verl's `compute_data_metrics(batch, use_critic)` plus the `dvao/...` metrics that the
    advantage step left in `batch.meta_info`."""

    @functools.wraps(compute_data_metrics)
    def wrapper(batch: Any, *args: Any, **kwargs: Any) -> dict:
        metrics = compute_data_metrics(batch, *args, **kwargs)
        metrics.update(batch.meta_info.pop(METRICS_KEY, {}))
        return metrics

    wrapper.__dvao_wraps__ = compute_data_metrics
    return wrapper


def _patch(owner: Any, name: str, original: Callable, wrap: Callable[[Callable], Callable]) -> str:
    """Replace `owner.name` (a module's function or a class's method), which must be verl's
    `original` (or already our wrapper of it)."""
    current = getattr(owner, name, None)
    where = (
        f"{owner.__module__}.{owner.__qualname__}" if isinstance(owner, type) else owner.__name__
    )
    site = f"{where}.{name}"
    if getattr(current, "__dvao_wraps__", None) is original:
        return site
    if current is not original:
        raise _fail(f"{site} is not {original.__module__}.{original.__qualname__}")
    setattr(owner, name, wrap(original))
    return site


def _verl_own(owner: Any, attr: str, leading: list[str]) -> Callable:
    """verl's own `owner.attr` (itself, or what our wrapper wraps), checked to be defined in
    `owner`'s module with these leading parameters."""
    current = getattr(owner, attr)
    fn = getattr(current, "__dvao_wraps__", current)
    where = owner.__module__ if isinstance(owner, type) else owner.__name__
    if fn.__module__ != where or list(inspect.signature(fn).parameters)[: len(leading)] != leading:
        raise _fail(f"{where}.{attr} is not verl's {attr}({', '.join(leading)}, ...)")
    return fn


def install(ddof: int = 0, eps: float = 0.0) -> list[str]:
    """Make verl's trainers run "dvao" with the batch's reward keys and log its metrics in this
    process; idempotent. ddof/eps: the std convention (0, 0.0: the paper). Returns the call
    sites patched.

    Call sites of verl 0.9.1 (every module that calls `compute_advantage`):
      verl.trainer.ppo.ray_trainer            the legacy trainer (`trainer.use_v1=false`)
      verl.experimental.separation.ray_trainer  separation, fully-async and one-step-off
                                              recipes (their `_fit_compute_advantage`)
      verl.trainer.ppo.v1.utils               the v1 trainer, whose
                                              PPOTrainer._compute_advantage is patched to fetch
                                              the reward keys and log the metrics
    and `compute_data_metrics` in the two ray_trainer modules, which adds the step's metrics.
    """
    global settings
    ddof, eps = check_ddof_eps(ddof, eps)
    from verl.experimental.separation import ray_trainer as separation
    from verl.trainer.ppo import metric_utils, ray_trainer
    from verl.trainer.ppo.v1 import utils as v1_utils
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    if core_algos.get_adv_estimator_fn(ESTIMATOR) is not compute_dvao_outcome_advantage:
        raise _fail(f'"{ESTIMATOR}" is registered to another function')
    original = _verl_own(ray_trainer, "compute_advantage", ["data", "adv_estimator"])
    v1_step = _verl_own(PPOTrainer, "_compute_advantage", ["self", "batch", "metrics"])
    settings = Settings(ddof=ddof, eps=eps)
    data_metrics = metric_utils.compute_data_metrics
    in_v1 = functools.partial(_passing_batch, v1=True)
    return [
        _patch(ray_trainer, "compute_advantage", original, _passing_batch),
        _patch(separation, "compute_advantage", original, _passing_batch),
        _patch(v1_utils, "compute_advantage", original, in_v1),
        _patch(PPOTrainer, "_compute_advantage", v1_step, _fetching_rewards),
        _patch(ray_trainer, "compute_data_metrics", data_metrics, _with_dvao_metrics),
        _patch(separation, "compute_data_metrics", data_metrics, _with_dvao_metrics),
    ]


# --------------------------------------------------------------------------------------------
# python -m dvao_cli.integrations.verl: verl's main_ppo with DVAO in the TaskRunner actor
# --------------------------------------------------------------------------------------------

CONFIG_PATH = "pkg://verl.trainer.config"  # where verl's main_ppo finds its Hydra config
CONFIG_NAME = "dvao_ppo_trainer"  # its ppo_trainer, with the multi-reward fields declared


def task_runner(use_v1: bool = True, ddof: int = 0, eps: float = 0.0) -> Any:
    """verl's TaskRunner Ray actor class (v1, or the legacy one), installing DVAO (with
    ddof/eps) in the actor before it trains. Pass it to
    `verl.trainer.main_ppo.run_ppo(config, task_runner_class=...)`, after `check_config`."""
    import ray

    ddof, eps = check_ddof_eps(ddof, eps)  # here, in the driver: before the actor starts
    if use_v1:
        from verl.trainer.main_ppo import TaskRunnerV1 as verl_runner
    else:
        from verl.trainer.main_ppo_v0 import TaskRunner as verl_runner

    class DvaoTaskRunner(verl_runner.__ray_actor_class__):  # the class under @ray.remote
        def install_dvao(self) -> list[str]:
            return install(ddof=ddof, eps=eps)

        def run(self, config: Any) -> Any:
            # the entry checked it before Ray started; a launcher of your own may not have
            check_config(config, ddof, eps)
            print(f"dvao: installed at {', '.join(self.install_dvao())}")
            return super().run(config)

    return ray.remote(DvaoTaskRunner)


def store_config() -> str:
    """Register CONFIG_NAME with Hydra: verl's `ppo_trainer` (found in CONFIG_PATH) plus
    `algorithm.gdpo_reward_keys` / `gdpo_reward_weights`, AlgoConfig fields that verl 0.9.1's
    YAML leaves out (its own main_ppo wants `+algorithm.gdpo_reward_keys=...`)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(
        name=CONFIG_NAME,
        node={
            "defaults": ["ppo_trainer", "_self_"],
            "algorithm": {"gdpo_reward_keys": None, "gdpo_reward_weights": None},
        },
    )
    return CONFIG_NAME


def check_config(config: Any, ddof: int = 0, eps: float = 0.0) -> None:
    """Raise UsageError, naming the setting, when a run with "dvao" could not train or would
    train on nothing: the reward keys and weights, ddof and eps (`--ddof`, `--eps`), and ddof
    against the group size `actor_rollout_ref.rollout.n`. Call it before Ray starts."""
    if config.algorithm.adv_estimator != ESTIMATOR:
        return
    ddof, eps = check_ddof_eps(ddof, eps, ddof_setting="--ddof", eps_setting="--eps")
    keys = _reward_keys(config.algorithm)
    _weights(config.algorithm, keys)
    size = config.actor_rollout_ref.rollout.n
    check_group_size(ddof, size, ddof_setting="--ddof", size_setting=GROUP_SETTING)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m dvao_cli.integrations.verl [--ddof N] [--eps X] <verl Hydra overrides>`."""
    import hydra
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--ddof", type=int, default=0)
    parser.add_argument("--eps", type=float, default=0.0)
    options, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    store_config()

    @hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base=None)
    def run(config: Any) -> None:  # as verl.trainer.main_ppo.main, with our TaskRunner
        try:
            check_config(config, options.ddof, options.eps)
        except UsageError as error:
            raise SystemExit(f"dvao: {error}") from None
        auto_set_device(config)
        validate_config(
            config=config,
            use_reference_policy=need_reference_policy(config),
            use_critic=need_critic(config),
        )
        runner = task_runner(config.trainer.use_v1, options.ddof, options.eps)
        run_ppo(config, task_runner_class=runner)

    sys.argv = [sys.argv[0], *overrides]
    run()


if __name__ == "__main__":
    main()

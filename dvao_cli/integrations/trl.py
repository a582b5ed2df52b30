"""DVAO in TRL 1.12 to 1.16: a `GRPOTrainer` that trains on the engine's advantages, and a monitor.

    DVAOGRPOTrainer   GRPOTrainer's constructor plus `scheme="dvao"`, `ddof=0`, `eps=0.0`: the loss
                      trains on the engine's advantages of TRL's per-function rewards
    DvaoMonitor       a TrainerCallback that logs the `dvao/...` metrics on a plain GRPOTrainer and
                      leaves its advantages alone

TRL has no advantage hook: `GRPOTrainer._generate_and_score_completions` computes the
rewards with `_calculate_rewards` (N, K), gathered over processes, each prompt's num_generations
rows contiguous, then the advantages inline, slices them per process into `output["advantages"]`
and logs the gathered ones for the completions table. Rather than copying that ~600-line method,
we capture `_calculate_rewards`' gathered output, let TRL finish, and replace the advantages it
returned and logged with the engine's. These are private methods, the same in every supported
release (versions.py: 1.12 to 1.16, both ends tested): every assumption below is checked at
each step, failing with one error rather than training on something else.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
import trl
from transformers import TrainerCallback
from trl import GRPOTrainer

from dvao_cli import compute_advantages
from dvao_cli.core.schemes import check_schemes
from dvao_cli.integrations.checks import check_ddof_eps, check_group_size, check_weights
from dvao_cli.integrations.metrics import batch_advantages, objective_metrics
from dvao_cli.integrations.versions import SUPPORTED, supported

if TYPE_CHECKING:
    from dvao_cli import GroupStats

__all__ = ["DVAOGRPOTrainer", "DvaoMonitor", "TRLInternalsError"]

# the supported releases (the `trl` extra's range); others warn, and the checks below still hold
TRL_VERSIONS = SUPPORTED["trl"]

if not supported("trl", trl.__version__):
    warnings.warn(
        f"dvao_cli.integrations.trl was written against TRL {TRL_VERSIONS} (private API) and "
        f"TRL {trl.__version__} is installed; it checks its assumptions at every step and "
        f'fails if they break. pip install "dvao[trl]" installs a tested version.',
        stacklevel=2,
    )


class TRLInternalsError(RuntimeError):
    """The installed TRL does not work the way this integration was written for."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"TRL {trl.__version__}: {what}. dvao's TRL integration reads GRPOTrainer's private "
            f'API as of TRL {TRL_VERSIONS}; install one of those (pip install "dvao[trl]").'
        )


def _mode(trainer: GRPOTrainer) -> str:
    """TRL's own choice of metrics bucket and group size: "train" or "eval"."""
    return "train" if trainer.model.training else "eval"


def _group_codes(trainer: GRPOTrainer, rewards: torch.Tensor) -> torch.Tensor:
    """(N,) group codes of TRL's gathered rewards: rows [g G, (g + 1) G) are prompt g's G
    generations, as TRL's `rewards.view(-1, num_generations)` reads them."""
    # TRL < 0.26 has no num_generations_eval: evaluation groups num_generations rows
    eval_size = getattr(trainer, "num_generations_eval", None) or trainer.num_generations
    size = trainer.num_generations if _mode(trainer) == "train" else eval_size
    rows = rewards.shape[0]
    if rewards.ndim != 2 or rows % size != 0:
        raise TRLInternalsError(
            f"_calculate_rewards returned shape {tuple(rewards.shape)}, not (N, K) with N a "
            f"multiple of num_generations = {size}"
        )
    return torch.arange(rows, device=rewards.device) // size


def _check_arguments(trainer: GRPOTrainer, ddof: Any, eps: Any) -> None:
    """Everything that would make the run fail or train on nothing, checked at construction:
    ddof and eps, ddof below `num_generations`, and the reward weights as the user gave them
    (TRL casts them to float32, where 1e-320 is already 0). Evaluation, which trains nothing,
    may group fewer (`num_generations_eval=1` is common): its metrics then show saturation."""
    ddof, _ = check_ddof_eps(ddof, eps)
    check_group_size(
        ddof, trainer.num_generations, ddof_setting="ddof", size_setting="num_generations"
    )
    given = trainer.args.reward_weights
    weights = trainer.reward_weights.tolist() if given is None else given
    check_weights(weights, trainer.reward_func_names, setting="GRPOConfig.reward_weights")


def _log_metrics(trainer: GRPOTrainer, stats: GroupStats, rewards: torch.Tensor) -> None:
    """Append the step's `dvao/...` metrics of `rewards` (N, K) to TRL's metrics, which `log()`
    averages into every report_to, next to TRL's own `rewards/<name>/mean`."""
    metrics = trainer._metrics[_mode(trainer)]
    for key, value in objective_metrics(stats, trainer.reward_func_names, rewards).items():
        metrics[key].append(value)


class _RewardCapture:
    """Holds the gathered rewards (N, K) of the one `_calculate_rewards` call made by each
    `_generate_and_score_completions`."""

    def __init__(self) -> None:
        self.rewards: list[torch.Tensor] = []

    def start(self) -> None:  # forget a batch whose scoring raised
        self.rewards = []

    def record(self, rewards: torch.Tensor) -> torch.Tensor:
        self.rewards.append(rewards.clone())  # read after TRL is done with its own copy
        return rewards

    def take(self) -> torch.Tensor:
        captured, self.rewards = self.rewards, []
        if len(captured) != 1:
            raise TRLInternalsError(
                f"_generate_and_score_completions called _calculate_rewards {len(captured)} "
                "times, expected once"
            )
        return captured[0]


class DVAOGRPOTrainer(GRPOTrainer):
    """TRL's `GRPOTrainer`, trained on the advantages of `scheme` computed by dvao's engine.

    Takes GRPOTrainer's arguments plus, keyword-only:
        scheme  any engine scheme: "dvao" (default), "rc", "ac", "gdpo", "grpo" (the first reward)
        ddof    0 = population std (the paper's), 1 = Bessel (TRL's)
        eps     added to every std that divides (0 for the paper's DVAO, 1e-4 is TRL's)

    The preference weights are `GRPOConfig.reward_weights` (TRL's default: all 1.0), used as
    given. A reward function's None is NaN and skipped (the engine's nan="ignore"), as in TRL.
    GDPO whitens over the generation batch, as TRL's `normalize_then_sum` does.
    `scale_rewards` and `multi_objective_aggregation` only shape TRL's own advantages, which are
    replaced: they are ignored (TRL still uses them for its `frac_reward_zero_std` metric).
    """

    def __init__(self, *args: Any, scheme: str = "dvao", ddof: int = 0, eps: float = 0.0, **kwargs):
        (self.scheme,) = check_schemes((scheme,))  # before the model loads: fail fast
        self.ddof = ddof
        self.eps = eps
        self._capture = _RewardCapture()
        super().__init__(*args, **kwargs)
        _check_arguments(self, ddof, eps)
        ignored = []
        if self.scale_rewards != "group":
            ignored.append(f"scale_rewards={self.scale_rewards!r}")
        aggregation = getattr(
            self, "multi_objective_aggregation", "sum_then_normalize"
        )  # TRL 0.28+
        if aggregation != "sum_then_normalize":
            ignored.append(f"multi_objective_aggregation={aggregation!r}")
        if ignored:
            warnings.warn(
                f"DVAOGRPOTrainer trains on the {self.scheme} advantages of the engine; "
                f"{', '.join(ignored)} only shapes TRL's own advantages and is ignored",
                stacklevel=2,
            )

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        # (N, K) gathered over processes: the rewards TRL's advantages are computed from
        return self._capture.record(super()._calculate_rewards(*args, **kwargs))

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self._capture.start()
        output = super()._generate_and_score_completions(inputs)
        rewards = self._capture.take()  # (N, K) gathered over processes
        trl_local = output.get("advantages")  # (n,) this process's slice of TRL's advantages
        if not isinstance(trl_local, torch.Tensor) or trl_local.ndim != 1:
            raise TRLInternalsError(
                "_generate_and_score_completions returned no (n,) tensor output['advantages']"
            )
        n = trl_local.shape[0]
        rank, processes = self.accelerator.process_index, self.accelerator.num_processes
        if rewards.shape[0] != n * processes:
            raise TRLInternalsError(
                f"{rewards.shape[0]} gathered rewards for {processes} processes of {n} completions"
            )
        result = batch_advantages(  # GDPO whitens over the whole generation batch, as TRL does
            rewards,
            _group_codes(self, rewards),
            self.reward_weights,
            scheme=self.scheme,
            ddof=self.ddof,
            eps=self.eps,
        )
        advantages = result.advantages[self.scheme].to(trl_local.dtype)  # (N,)
        self._replace_logged_advantages(advantages, trl_local, rank * n)
        # the same process slice as TRL's: rows [rank n, (rank + 1) n) of the gathered batch
        output["advantages"] = advantages[rank * n : (rank + 1) * n]
        _log_metrics(self, result.stats, rewards)
        return output

    def _replace_logged_advantages(
        self, advantages: torch.Tensor, trl_local: torch.Tensor, start: int
    ) -> None:
        """Make the completions table show the advantages trained on.

        TRL has just extended `_logs["advantages"]` (a deque of maxlen generation_batch_size)
        with all N gathered advantages; its tail holds the last min(N, maxlen) of them. Checks
        that this process's slice there is what TRL returned, then swaps the tail for ours."""
        logged = self._logs.get("advantages") if isinstance(self._logs, dict) else None
        if logged is None:
            raise TRLInternalsError("GRPOTrainer._logs has no 'advantages' log")
        rows = advantages.shape[0]
        kept = min(rows, len(logged))
        if kept == rows:  # the whole batch is in the log: check TRL's slice of it
            tail = list(logged)[len(logged) - rows :]
            ours = tail[start : start + trl_local.shape[0]]
            if ours != trl_local.tolist():
                raise TRLInternalsError(
                    "the advantages TRL logged for the completions table are not the ones it "
                    "returned for this process"
                )
        for _ in range(kept):
            logged.pop()
        logged.extend(advantages.tolist())


class DvaoMonitor(TrainerCallback):
    """Logs the `dvao/...` metrics of a plain `GRPOTrainer`, leaving its advantages alone.

        trainer = GRPOTrainer(...)
        trainer.add_callback(DvaoMonitor(trainer))

    Callbacks get no trainer, so the monitor holds one. It wraps the trainer's
    `_calculate_rewards` on the instance: each call's gathered rewards (N, K), returned to TRL
    unchanged, give the engine's group statistics (with `ddof`, TRL's reward weights), whose
    metrics go into TRL's own metrics. That is where they must go: `GRPOTrainer.log()` averages
    them into the logs before any callback's `on_log` runs, so every report_to sees them.
    """

    def __init__(self, trainer: GRPOTrainer, *, ddof: int = 0) -> None:
        if isinstance(trainer, DVAOGRPOTrainer):
            raise TypeError(
                "DVAOGRPOTrainer already logs the dvao/... metrics; use DvaoMonitor "
                "on a plain GRPOTrainer"
            )
        if not isinstance(trainer, GRPOTrainer):
            raise TypeError(f"DvaoMonitor needs a trl GRPOTrainer, got {type(trainer).__name__}")
        if "_calculate_rewards" in vars(trainer):
            raise ValueError("this trainer already has a DvaoMonitor")
        _check_arguments(trainer, ddof, 0.0)
        self.trainer = trainer
        self.ddof = ddof
        calculate = trainer._calculate_rewards  # the bound method of the trainer's class

        def calculate_and_log(*args: Any, **kwargs: Any) -> torch.Tensor:
            rewards = calculate(*args, **kwargs)  # (N, K) gathered over processes
            self.log_step(rewards)
            return rewards

        trainer._calculate_rewards = calculate_and_log

    def log_step(self, rewards: torch.Tensor) -> None:
        """One generation batch's `dvao/...` metrics, from its gathered rewards (N, K)."""
        trainer = self.trainer
        result = compute_advantages(
            rewards,
            _group_codes(trainer, rewards),
            None,
            trainer.reward_weights,
            schemes=(),
            ddof=self.ddof,
            nan="ignore",
            device=rewards.device,
        )
        _log_metrics(trainer, result.stats, rewards)

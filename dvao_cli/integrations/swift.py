"""DVAO in ms-swift 4.5 and 4.6: a plugin file for `swift rlhf --rlhf_type grpo --external_plugins`.

    swift rlhf --rlhf_type grpo ... --reward_funcs accuracy format \\
        --external_plugins "$(python -m dvao_cli.integrations.swift)"

Loading this file points `TrainerFactory.TRAINER_MAPPING['grpo']` at `DvaoGRPOTrainer`, a
`GRPOTrainer` whose `_compute_advantages` returns the dvao engine's advantages of swift's
gathered per-function rewards (N, K), with swift's `--reward_weights` as the preference weights
(used as given) and a None reward as NaN, skipped. Everything else is swift's: the reward
metrics and completions table it logs, each process's slice, the loss. Swift's argument parser
is closed, so the scheme is read from the environment when the plugin loads:

    DVAO_SCHEME   grpo | rc | ac | gdpo | dvao   (default dvao; grpo uses the first reward)
    DVAO_DDOF     0 = population std (default, the paper's), 1 = Bessel (swift's convention)
    DVAO_EPS      added to every std that divides (default 0; swift adds 1e-4)

The settings are checked when the plugin loads; `--num_generations` against DVAO_DDOF and
`--reward_weights` when the trainer is built, before it trains (checks.py). Each step also logs
the `dvao/<metric>/<reward>` metrics (metrics.py) into swift's own metrics, which every
`--report_to` receives.

`GRPOTrainer._compute_advantages` is private API, the same in 4.5 and 4.6: the plugin checks at
load that the internals it relies on are there and stops with one line when they are not.
Megatron-SWIFT (`megatron rlhf`) has its own trainer, which this plugin does not change: loading
it there is an error.

`python -m dvao_cli.integrations.swift` prints the path of the file to hand swift,
swift_plugin.py (which loads this module), without importing swift.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the plugin file to hand swift: swift_plugin.py, beside this one
    print(os.path.join(os.path.dirname(os.path.abspath(__file__)), "swift_plugin.py"))
    raise SystemExit(0)

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import torch
from accelerate.utils import gather_object
from swift.rlhf_trainers.grpo_trainer import GRPOTrainer
from swift.trainers import TrainerFactory

from dvao_cli.core.schemes import SCHEMES
from dvao_cli.errors import UsageError
from dvao_cli.integrations.checks import (
    check_ddof_eps,
    check_group_size,
    check_groups,
    check_weights,
)
from dvao_cli.integrations.metrics import batch_advantages, objective_metrics
from dvao_cli.integrations.versions import SUPPORTED

SWIFT_GRPO = "swift.rlhf_trainers.GRPOTrainer"  # TRAINER_MAPPING['grpo'] in ms-swift 4.5, 4.6
SEAM = ("self", "samples", "rewards_per_func", "batch_encoded_inputs")  # the method we override


class PluginError(RuntimeError):
    """A setting or an ms-swift version this plugin cannot serve; the message is one line."""


@dataclass(frozen=True)
class Settings:
    """The engine's scheme and std conventions for every advantage the trainer computes."""

    scheme: str = "dvao"
    ddof: int = 0
    eps: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from DVAO_SCHEME, DVAO_DDOF and DVAO_EPS (unset: the defaults)."""
        scheme = environ.get("DVAO_SCHEME", cls.scheme).strip().lower()
        if scheme not in SCHEMES:
            raise PluginError(f"DVAO_SCHEME={scheme!r}: use one of {', '.join(SCHEMES)}")
        try:
            ddof = int(environ.get("DVAO_DDOF", cls.ddof))
            eps = float(environ.get("DVAO_EPS", cls.eps))
        except ValueError as error:
            raise PluginError(f"DVAO_DDOF / DVAO_EPS: {error}") from None
        try:
            ddof, eps = check_ddof_eps(ddof, eps, ddof_setting="DVAO_DDOF", eps_setting="DVAO_EPS")
        except UsageError as error:
            raise PluginError(str(error)) from None
        return cls(scheme, ddof, eps)


class DvaoGRPOTrainer(GRPOTrainer):
    """swift's GRPOTrainer with the advantages of the dvao engine (scheme: `settings`)."""

    settings = Settings.from_env(os.environ)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        arguments = kwargs.get("args")  # swift's GRPOConfig, read before swift builds anything
        if arguments is not None:
            self.check_group_size(getattr(arguments, "num_generations", None))
        super().__init__(*args, **kwargs)
        self.check_settings()

    def check_group_size(self, size: int | None) -> None:
        """DVAO_DDOF below `--num_generations` (training; evaluation trains nothing)."""
        if size is None:
            return
        try:
            check_group_size(
                self.settings.ddof, size, ddof_setting="DVAO_DDOF", size_setting="--num_generations"
            )
        except UsageError as error:
            raise PluginError(str(error)) from None

    def check_settings(self) -> None:
        """Stop on a swift setting that would change the advantage behind the engine's back, or
        make it train on nothing."""
        self.check_group_size(self.num_generations)
        given = getattr(getattr(self, "args", None), "reward_weights", None)
        weights = self.reward_weights.tolist() if given is None else given
        try:
            check_weights(weights, self.reward_func_names, setting="--reward_weights")
        except UsageError as error:
            raise PluginError(str(error)) from None
        if self.advantage_estimator != "grpo":
            raise PluginError(
                f"--advantage_estimator {self.advantage_estimator}: the dvao plugin replaces the "
                f"estimator; use grpo (the default) and choose the scheme with DVAO_SCHEME"
            )
        if self.scale_rewards != "group":
            raise PluginError(
                f"--scale_rewards {self.scale_rewards}: the dvao plugin replaces reward scaling; "
                f"drop the flag and choose the scheme with DVAO_SCHEME"
            )
        if self.kl_in_reward and self.beta != 0.0:
            raise PluginError("--kl_in_reward true: the dvao schemes take no KL term; set it false")

    def _compute_advantages(
        self,
        samples: list[Any],
        rewards_per_func: torch.Tensor,
        batch_encoded_inputs: list[dict[str, Any]],
    ) -> torch.Tensor:
        """(N,) advantages of the gathered rewards_per_func (N, K), N over every process.

        swift's own method runs first, for what it logs (reward metrics, the completions
        table's rewards) and its checks; its advantages are discarded.
        """
        swift_advantages = super()._compute_advantages(
            samples, rewards_per_func, batch_encoded_inputs
        )
        if rewards_per_func.shape[1] == 0:  # no reward function (teacher-only OPD-RL): swift's
            return swift_advantages
        mode = "train" if self.model.training else "eval"
        if self.dynamic_num_samples:
            return self._request_advantages(samples, rewards_per_func, mode)
        # default mode: each prompt's num_generations rows are contiguous (swift's view(-1, G))
        size = self.num_generations if mode == "train" else self.num_generations_eval
        rows = torch.arange(rewards_per_func.shape[0], device=rewards_per_func.device)
        return self._engine(rewards_per_func, rows // size, mode)

    def _request_advantages(
        self, samples: list[Any], rewards_per_func: torch.Tensor, mode: str
    ) -> torch.Tensor:
        """Multi-turn mode, as swift's: a request's rows share its last row's rewards, and the
        requests of one prompt_id form a group of any size."""
        prompt_ids = gather_object([sample.prompt_id for sample in samples])
        request_ids = gather_object([sample.request_id for sample in samples])
        last_row = {request: row for row, request in enumerate(request_ids)}  # R requests
        rows = list(last_row.values())
        prompt_code: dict[str, int] = {}
        group = [prompt_code.setdefault(prompt_ids[row], len(prompt_code)) for row in rows]
        try:  # ragged: the group sizes are only known here
            check_groups(group, self.settings.ddof, ddof_setting="DVAO_DDOF")
        except UsageError as error:
            raise PluginError(str(error)) from None
        device = rewards_per_func.device
        unique = rewards_per_func[torch.tensor(rows, device=device)]  # (R, K)
        per_request = self._engine(unique, torch.tensor(group, device=device), mode)  # (R,)
        request_code = {request: code for code, request in enumerate(last_row)}
        return per_request[torch.tensor([request_code[r] for r in request_ids], device=device)]

    def _engine(self, rewards: torch.Tensor, group: torch.Tensor, mode: str) -> torch.Tensor:
        """The engine's advantages (rows,) of rewards (rows, K) in groups (rows,), in the rewards'
        dtype and device; logs the step's dvao/... metrics into swift's metrics."""
        settings = self.settings
        result = batch_advantages(
            rewards,
            group,
            self.reward_weights,
            scheme=settings.scheme,
            ddof=settings.ddof,
            eps=settings.eps,
        )
        names = self.reward_func_names
        for key, value in objective_metrics(result.stats, names, rewards).items():
            self._metrics[mode][key].append(value)
        return result.advantages[settings.scheme].to(rewards.dtype)


def check_swift() -> None:
    """Stop with one line unless ms-swift's internals are the 4.5 / 4.6 ones we override."""
    if "swift.megatron.arguments" in sys.modules:
        raise PluginError(
            "Megatron-SWIFT has its own GRPO trainer, which the dvao plugin does not change; "
            "run `swift rlhf` instead of `megatron rlhf`"
        )
    seam = tuple(inspect.signature(GRPOTrainer._compute_advantages).parameters)
    mapped = str(TrainerFactory.TRAINER_MAPPING.get("grpo"))
    ours = mapped.endswith("." + DvaoGRPOTrainer.__qualname__)  # this file, loaded before
    if seam != SEAM or not (mapped == SWIFT_GRPO or ours):
        raise PluginError(
            f"ms-swift {version('ms-swift')} is not the ms-swift {SUPPORTED['swift']} this plugin "
            "was written for "
            f"(GRPOTrainer._compute_advantages{seam}, TRAINER_MAPPING['grpo']={mapped!r}); "
            f'install "dvao[swift]"'
        )


def trainer_path() -> str:
    """DvaoGRPOTrainer's dotted path in this module, as TrainerFactory resolves it (swift loads
    a plugin file under a module name of its own)."""
    return f"{__name__}.{DvaoGRPOTrainer.__qualname__}"


def install() -> None:
    """Point TRAINER_MAPPING['grpo'] at DvaoGRPOTrainer (idempotent)."""
    check_swift()
    TrainerFactory.TRAINER_MAPPING["grpo"] = trainer_path()


install()

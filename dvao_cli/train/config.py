"""Every option of a `dvao train` run, validated, and its `config.json` form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dvao_cli.errors import InputError, UsageError
from dvao_cli.options import SCHEMES, did_you_mean

CONFIG_FILE = "config.json"


@dataclass
class TrainConfig:
    task: str = "arithmetic"
    steps: int = 500
    prompts_per_step: int = 32
    group_size: int = 8
    scheme: str = "dvao"
    objectives: list[str] = field(default_factory=list)  # empty: every reward of the run
    weights: dict[str, float] = field(default_factory=dict)  # empty: 1/K each
    rewards: list[str] = field(default_factory=list)  # user rewards, "module:function"
    sft_steps: int = 1500
    sft_lr: float = 3e-3
    sft_until: float | None = None  # stop the warm start at this batch accuracy; None: task's
    sft_batch: int = 64
    lr: float = 5e-4
    clip: float = 0.2
    kl: float = 0.0
    ppo_epochs: int = 1
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    layers: int = 2
    width: int = 64
    heads: int = 4
    max_new_tokens: int = 6
    device: str = "auto"
    threads: int = 0  # 0: pick (1 thread on CPU for the default tiny model)
    seed: int = 0
    checkpoint_every: int = 50
    ddof: int = 0
    eps: float = 0.0
    nan: str = "ignore"

    def validate(self) -> None:
        from dvao_cli.train.tasks import TASKS

        if self.task not in TASKS:
            raise UsageError(
                f"--task '{self.task}' is unknown" + did_you_mean(self.task, list(TASKS))
            )
        if self.scheme not in SCHEMES:
            raise UsageError(
                f"--scheme '{self.scheme}' is unknown" + did_you_mean(self.scheme, list(SCHEMES))
            )
        positive = {
            "--steps": self.steps,
            "--prompts-per-step": self.prompts_per_step,
            "--layers": self.layers,
            "--width": self.width,
            "--max-new-tokens": self.max_new_tokens,
            "--checkpoint-every": self.checkpoint_every,
            "--ppo-epochs": self.ppo_epochs,
        }
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"{name} must be at least 1 (got {value})")
        if self.group_size < 2:
            raise UsageError(
                f"--group-size must be at least 2 (got {self.group_size}): "
                "a group of one has no within-group variance"
            )
        if self.sft_steps < 0:
            raise UsageError(f"--sft-steps must be >= 0 (got {self.sft_steps})")
        for name, value in {"--lr": self.lr, "--temperature": self.temperature}.items():
            if not value > 0:
                raise UsageError(f"{name} must be > 0 (got {value})")
        if self.sft_until is not None and not 0.0 <= self.sft_until <= 1.0:
            raise UsageError(f"--sft-until must be in [0, 1] (got {self.sft_until})")
        if self.clip < 0 or self.kl < 0:
            raise UsageError("--clip and --kl must be >= 0")
        if self.width % self.heads:
            raise UsageError(f"--width must be a multiple of {self.heads} (got {self.width})")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise InputError(f"not a dvao train config: {err}", path=path) from None


def load_config(run_dir: Path) -> TrainConfig:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise InputError("not a dvao train run directory (no config.json)", path=run_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read: {err}", path=path) from None
    if not isinstance(data, dict) or data.get("compare"):
        raise InputError(
            "not a single-run config (a --compare directory holds one per run)", path=path
        )
    return TrainConfig.from_json(data, path)

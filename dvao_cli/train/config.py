"""Every option of a `dvao train` run: its default, its help and its flag, written once.

`TrainConfig` is the single source: `dvao train`'s typer options are built from its fields'
metadata (`cli.commands.train`), `config.json` is its JSON form, and `resolve` turns the options
as given into the options as run (task defaults filled in, objectives and weights resolved, the
device chosen) without touching the config it is given. No typer here: the library runs it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from dvao_cli.core.schemes import SCHEMES
from dvao_cli.errors import InputError, UsageError
from dvao_cli.objective_names import did_you_mean, parse_weights, resolve_weights
from dvao_cli.train.tasks import TASKS

CONFIG_FILE = "config.json"


def option(
    default: Any,
    help: str,
    *flags: str,
    choices: tuple[str, ...] = (),
    shared: str | None = None,
    warm: bool = False,
    show_default: bool = True,
    metavar: str | None = None,
) -> Any:
    """A config field with its CLI metadata.

    flags: the option's names (none: not on the command line); choices: allowed values; shared:
    the name of an option `dvao analyze` has too, whose type the command line uses as is (its
    flag and help shared: `cli.commands.train.SHARED`);
    warm: the field shapes the model or the warm start (part of the warm-start cache key).
    """
    meta = {
        "help": help,
        "flags": flags,
        "choices": choices,
        "shared": shared,
        "warm": warm,
        "show_default": show_default,
        "metavar": metavar,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    task: str = option(
        "arithmetic",
        "Task: arithmetic (accuracy, format, length), budget (accuracy vs length under a "
        "2-character budget) or reasoning (three operands, optional worked partial sum; "
        "accuracy vs a graded length reward).",
        "--task",
        choices=tuple(TASKS),
        warm=True,
    )
    steps: int | None = option(
        None,
        "GRPO steps (with --resume: the new total). Default: 300 for reasoning, else 500.",
        "--steps",
        show_default=False,
    )
    prompts_per_step: int = option(32, "Prompts sampled per step.", "--prompts-per-step")
    group_size: int = option(8, "Completions sampled per prompt (G).", "--group-size", "-G")
    scheme: str = option("dvao", "Multi-reward advantage scheme.", "--scheme", choices=SCHEMES)
    objectives: list[str] = option(
        [],
        "Reward the run optimises (repeatable, in order). Default: every reward of the task "
        "plus every --reward.",
        "--objective",
        "-O",
        show_default=False,
        metavar="NAME",
    )
    weights: dict[str, float] = option({}, "Preference weights (default 1/K).", shared="weights")
    rewards: list[str] = option(
        [],
        "Extra reward module:function (or file.py:function), TRL's convention: "
        "f(prompts=, completions=, **kw) -> list of float or None. Repeatable; named after "
        "the function. With --resume, name the run's rewards again.",
        "--reward",
        show_default=False,
        metavar="MODULE:FUNCTION",
    )
    sft_steps: int = option(
        1500, "Supervised warm-start steps before RL.", "--sft-steps", warm=True
    )
    sft_lr: float = option(3e-3, "Warm-start learning rate.", "--sft-lr", warm=True)
    sft_until: float | None = option(
        None,
        "Stop the warm start early once its batch accuracy (teacher-forced) reaches this; 1 "
        "runs every --sft-steps. Default: 0.5 for arithmetic, 0.9 for budget, 0.3 for reasoning.",
        "--sft-until",
        warm=True,
        show_default=False,
    )
    sft_batch: int = option(64, "Warm-start batch size.", warm=True)
    lr: float = option(5e-4, "AdamW learning rate for RL (constant).", "--lr")
    clip: float = option(0.2, "PPO ratio clip range.", "--clip")
    kl: float = option(0.0, "KL penalty coefficient to the warm-started reference.", "--kl")
    ppo_epochs: int = option(
        1, "Updates per batch of rollouts (the clip matters from 2 on).", "--ppo-epochs"
    )
    max_grad_norm: float = option(1.0, "Gradient clipping norm.", "--max-grad-norm")
    temperature: float = option(1.0, "Sampling temperature.", "--temperature")
    layers: int = option(2, "Transformer layers.", "--layers", warm=True)
    width: int = option(64, "Model width (multiple of 4).", "--width", warm=True)
    heads: int = option(4, "Attention heads.", warm=True)
    max_new_tokens: int | None = option(
        None,
        "Longest completion, end token included. Default: 8 for reasoning, else 6.",
        "--max-new-tokens",
        warm=True,
        show_default=False,
    )
    device: str = option("auto", "Torch device.", shared="device", warm=True)
    threads: int = option(0, "Torch CPU threads; 0 picks (1 for small models).", "--threads")
    seed: int = option(0, "Random seed (weights, prompts, sampling).", "--seed", warm=True)
    checkpoint_every: int = option(50, "Save a checkpoint every N steps.", "--checkpoint-every")
    ddof: int = option(0, "Std degrees of freedom.", shared="ddof")
    eps: float = option(0.0, "Added to every std that divides.", shared="eps")
    nan: str = option("ignore", "NaN rewards (a --reward's None) are skipped, as in TRL.")

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(
                f"--task '{self.task}' is unknown" + did_you_mean(self.task, list(TASKS))
            )
        if self.scheme not in SCHEMES:
            raise UsageError(
                f"--scheme '{self.scheme}' is unknown" + did_you_mean(self.scheme, list(SCHEMES))
            )
        positive = {
            "--steps": 1 if self.steps is None else self.steps,
            "--prompts-per-step": self.prompts_per_step,
            "--layers": self.layers,
            "--width": self.width,
            "--max-new-tokens": 1 if self.max_new_tokens is None else self.max_new_tokens,
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

    def warm_key(self) -> tuple[Any, ...]:
        """The fields that shape the model or the warm start (`warm=True`), as run: two runs
        with the same key start RL from the same weights and random states."""
        return tuple(
            (f.name, json.dumps(getattr(self, f.name))) for f in fields(self) if f.metadata["warm"]
        )


def reward_name(spec: str) -> str:
    """`"my_rewards:brevity"` -> `brevity` (a reward is named after its function)."""
    return spec.partition(":")[2].strip()


def resolve(config: TrainConfig) -> TrainConfig:
    """The options as run: validated, the task's defaults filled in, objectives and weights
    resolved (every reward, 1/K each, unless given), the device chosen. Pure: `config` is left
    as it is. Reward specs are checked for form; their code is loaded by the loop."""
    from dvao_cli.advantages import resolve_device

    config.validate()
    task = TASKS[config.task]
    names = list(task.rewards)
    for spec in config.rewards:
        module, sep, function = spec.partition(":")
        if not sep or not module.strip() or not function.strip() or ":" in function:
            raise UsageError(f"--reward '{spec}' is not of the form module:function")
        name = reward_name(spec)
        if name in RESERVED:
            raise UsageError(f"--reward '{spec}': '{name}' is a reserved column name")
        if name in names:
            raise UsageError(
                f"--reward '{spec}': a reward named '{name}' exists "
                "already (reward names are function names)"
            )
        names.append(name)
    objectives = list(config.objectives) or list(names)
    for name in objectives:
        if name not in names:
            raise UsageError(
                f"--objective '{name}' is not a reward of this run" + did_you_mean(name, names)
            )
    if len(set(objectives)) != len(objectives):
        raise UsageError("--objective names an objective twice")
    weights = resolve_weights(objectives, dict(config.weights))
    return replace(
        config,
        steps=task.steps if config.steps is None else config.steps,
        sft_until=task.sft_until if config.sft_until is None else config.sft_until,
        max_new_tokens=(
            task.max_new_tokens if config.max_new_tokens is None else config.max_new_tokens
        ),
        objectives=objectives,
        weights=dict(zip(objectives, weights, strict=True)),
        # recorded resolved: a resumed run must not switch devices
        device=resolve_device(config.device).type,
    )


RESERVED = (
    "step",
    "group_id",
    "sample_id",
    "prompt",
    "completion",
    "logged_advantage",
    "objective",
    "reward",
    "row",
)


def from_values(values: dict[str, Any]) -> TrainConfig:
    """The config from options as given (`dvao train`'s: enums by their names, weights as
    NAME=W strings, lists as given; names that are not fields are left out)."""
    names = {f.name for f in fields(TrainConfig)}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names:
            continue
        if isinstance(value, Enum):  # a choice: its name
            value = value.value
        if name == "weights":
            value = parse_weights(value)
        elif name in ("objectives", "rewards"):
            value = list(value or [])
        given[name] = value
    return TrainConfig(**given)


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

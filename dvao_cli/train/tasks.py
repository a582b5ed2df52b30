"""Toy tasks with several verifiable rewards, every reward in [0, 1].

- `arithmetic`: `37+48=` -> `85`. Rewards `accuracy` (exact answer), `format` (digits only, then
  the end token), `length` (at most `budget` = 4 characters before the end token). Format and
  length saturate quickly after the warm start: a live demonstration of a reward without signal.
- `budget`: the same prompts, rewards `accuracy` and `length` with a tight budget of 2 characters.
  60% of the sums are >= 100, whose correct answer needs 3 characters: those prompts cannot
  be both correct and short, so the objectives genuinely conflict (like accuracy vs a length limit
  in the paper's math setting) and the preference weights pick a point on the Pareto front.

Operands are two-digit numbers (10..99), so every prompt has the same length (6 characters) and
a batch of prompts needs no padding.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dvao_cli.train.vocab import EOS, encode

PROMPT_LEN = 6  # "37+48="


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str


@dataclass(frozen=True)
class Task:
    name: str
    rewards: tuple[str, ...]
    budget: int  # characters allowed before the end token
    description: str
    sft_until: float  # default warm-start target (teacher-forced batch accuracy)

    def problems(self, rng: random.Random, n: int) -> list[Problem]:
        out = []
        for _ in range(n):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            out.append(Problem(f"{a}+{b}=", str(a + b)))
        return out

    def sft_target(self, problem: Problem) -> list[int]:
        """Supervised warm-start target: the correct answer then the end token."""
        return encode(problem.answer) + [EOS]

    def score(
        self, problems: Sequence[Problem], completions: Sequence[str], finished: Sequence[bool]
    ) -> dict[str, list[float]]:
        """Every reward of the task for each completion (text before the end token)."""
        scores: dict[str, list[float]] = {}
        for name in self.rewards:
            fn = _REWARDS[name]
            scores[name] = [
                fn(p, c, f, self.budget)
                for p, c, f in zip(problems, completions, finished, strict=True)
            ]
        return scores


def _accuracy(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and completion == problem.answer else 0.0


def _format(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and completion.isdigit() else 0.0


def _length(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and len(completion) <= budget else 0.0


_REWARDS = {"accuracy": _accuracy, "format": _format, "length": _length}

TASKS: dict[str, Task] = {
    "arithmetic": Task(
        "arithmetic",
        ("accuracy", "format", "length"),
        budget=4,
        description="two-digit addition; accuracy, format, length <= 4 characters",
        sft_until=0.5,  # right about a third of the time when sampling: room for RL to learn
    ),
    "budget": Task(
        "budget",
        ("accuracy", "length"),
        budget=2,
        description="two-digit addition under a 2-character budget: accuracy vs length conflict",
        sft_until=0.9,  # long correct answers must be sampled for the weights to matter
    ),
}

"""Toy tasks with several verifiable rewards, every reward in [0, 1].

- `arithmetic`: `37+48=` -> `85`. Rewards `accuracy` (exact answer), `format` (digits only, then
  the end token), `length` (at most `budget` = 4 characters before the end token). Format and
  length saturate quickly after the warm start: a live demonstration of a reward without signal.
- `budget`: the same prompts, rewards `accuracy` and `length` with a tight budget of 2 characters.
  60% of the sums are >= 100, whose correct answer needs 3 characters: those prompts cannot
  be both correct and short, so the objectives genuinely conflict (like accuracy vs a length limit
  in the paper's math setting) and the preference weights pick a point on the Pareto front.
- `reasoning`: `37+5+8=` -> `50` at once, or `42 50` (the first partial sum, a space, then the
  answer), which a tiny transformer gets right more often. Rewards `accuracy` (the last number is
  the sum) and a graded `length`: 1 up to `budget` = 4 characters, then falling linearly to 0 at
  8. Working costs 0.25 to 0.75 of the length reward and can buy accuracy, so the best policy
  spends length only where it helps.

Every operand of a task has a fixed number of digits (two digits: 10..99, one: 1..9), so every
prompt of a task has the same length and a batch of prompts needs no padding.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dvao_cli.train.vocab import EOS, encode

WORK_SEP = " "  # separates the partial sum from the answer in a `reasoning` completion


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    work: str = ""  # `reasoning`: the first partial sum, written before the answer


def _accuracy(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and completion == problem.answer else 0.0


def _format(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and completion.isdigit() else 0.0


def _length(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    return 1.0 if finished and len(completion) <= budget else 0.0


def _worked_accuracy(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    """1 when the completion is `ANSWER` or `DIGITS ANSWER` (digits, one separator at most)."""
    parts = completion.split(WORK_SEP)
    well_formed = len(parts) <= 2 and all(part.isdigit() for part in parts)
    return 1.0 if finished and well_formed and parts[-1] == problem.answer else 0.0


def _graded_length(problem: Problem, completion: str, finished: bool, budget: int) -> float:
    """1 up to `budget` characters, then linearly down to 0 at 2 x `budget`; 0 when unfinished."""
    if not finished:
        return 0.0
    over = len(completion) - budget
    return 1.0 if over <= 0 else max(0.0, 1.0 - over / budget)


RewardFn = Callable[[Problem, str, bool, int], float]


@dataclass(frozen=True)
class Task:
    name: str
    rewards: dict[str, RewardFn]  # reward name -> fn(problem, completion, finished, budget)
    budget: int  # characters allowed before the end token (full length reward)
    description: str
    sft_until: float  # default warm-start target (teacher-forced batch accuracy)
    digits: tuple[int, ...] = (2, 2)  # digits of each operand of a prompt
    max_new_tokens: int = 6  # default longest completion, end token included
    steps: int = 500  # default GRPO steps
    work_share: float = 0.0  # share of warm-start targets that write the partial sum first

    @property
    def prompt_len(self) -> int:
        return sum(self.digits) + len(self.digits)  # "37+48=": digits and one sign per operand

    def problems(self, rng: random.Random, n: int) -> list[Problem]:
        out = []
        for _ in range(n):
            ops = [rng.randint(10 ** (d - 1), 10**d - 1) for d in self.digits]
            work = str(ops[0] + ops[1]) if len(ops) > 2 else ""
            out.append(Problem("+".join(map(str, ops)) + "=", str(sum(ops)), work))
        return out

    def sft_target(self, problem: Problem, rng: random.Random) -> list[int]:
        """Supervised warm-start target: the (optionally worked) correct answer, then the end
        token. `rng` is drawn from only by tasks that mix worked and direct answers."""
        text = problem.answer
        if self.work_share and rng.random() < self.work_share:
            text = problem.work + WORK_SEP + problem.answer
        return encode(text) + [EOS]

    def score(
        self, problems: Sequence[Problem], completions: Sequence[str], finished: Sequence[bool]
    ) -> dict[str, list[float]]:
        """Every reward of the task for each completion (text before the end token)."""
        return {
            name: [
                fn(p, c, f, self.budget)
                for p, c, f in zip(problems, completions, finished, strict=True)
            ]
            for name, fn in self.rewards.items()
        }


TASKS: dict[str, Task] = {
    "arithmetic": Task(
        "arithmetic",
        {"accuracy": _accuracy, "format": _format, "length": _length},
        budget=4,
        description="two-digit addition; accuracy, format, length <= 4 characters",
        sft_until=0.5,  # right about a third of the time when sampling: room for RL to learn
    ),
    "budget": Task(
        "budget",
        {"accuracy": _accuracy, "length": _length},
        budget=2,
        description="two-digit addition under a 2-character budget: accuracy vs length conflict",
        sft_until=0.9,  # long correct answers must be sampled for the weights to matter
    ),
    "reasoning": Task(
        "reasoning",
        {"accuracy": _worked_accuracy, "length": _graded_length},
        budget=4,
        description="a two-digit and two one-digit operands, answered at once or after the "
        "partial sum; accuracy vs a graded length reward",
        sft_until=0.3,  # working still clearly helps: sampled accuracy ~0.45 worked, ~0.35 not
        digits=(2, 1, 1),
        max_new_tokens=8,  # "108 117" and the end token
        steps=300,  # working is dropped or kept within ~50 steps; accuracy levels off by ~250
        work_share=0.5,
    ),
}

"""Small logs in each trainer's exact on-disk format, built in code (no checked-in blobs).

TRL's `advantage` column is computed here with an independent NumPy implementation of TRL's
documented formulas (BRIEF section 3), in float32 as TRL computes it:

- sum_then_normalize (default): s = nansum_k w_k r_k; A = (s - mean_g s) / (std_g s + 1e-4)
- normalize_then_sum: per group and reward z_k = (r_k - nanmean_g) / (nanstd_g + 1e-4);
  s = nansum_k w_k z_k; A = (s - mean s) / (std s + 1e-4) over the whole batch (the step)

std is Bessel-corrected (ddof 1); a reward function that returned None gives NaN, skipped by the
nan-sums and nan-means.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

TRL_REWARDS = ("accuracy", "format")
EPS = np.float32(1e-4)


def _nanstd1(x: np.ndarray, axis: int) -> np.ndarray:
    """Bessel-corrected std skipping NaN (NaN where fewer than 2 values), like TRL's nanstd."""
    count = np.sum(~np.isnan(x), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=axis, keepdims=True) / count
        var = np.nansum((x - mean) ** 2, axis=axis, keepdims=True) / (count - 1)
        var = np.where(count > 1, var, np.nan)
    return np.sqrt(var).astype(x.dtype)


def trl_advantages(
    rewards: np.ndarray, num_generations: int, weights: np.ndarray, aggregation: str
) -> np.ndarray:
    """TRL's advantage for one generation batch. rewards (N, K) with NaN for None -> (N,)."""
    r = rewards.astype(np.float32)
    w = np.asarray(weights, dtype=np.float32)
    n, k = r.shape
    if aggregation == "sum_then_normalize":
        s = np.nansum(r * w[None, :], axis=1)  # (N,)
        grouped = s.reshape(-1, num_generations)  # (P, G)
        mean = grouped.mean(axis=1, keepdims=True)
        std = grouped.std(axis=1, ddof=1, keepdims=True)
        return ((grouped - mean) / (std + EPS)).reshape(n)
    if aggregation == "normalize_then_sum":
        grouped = r.reshape(-1, num_generations, k)  # (P, G, K)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(grouped, axis=1, keepdims=True)
        std = _nanstd1(grouped, axis=1)
        z = ((grouped - mean) / (std + EPS)).reshape(n, k)
        s = np.nansum(z * w[None, :], axis=1)  # (N,)
        return (s - s.mean()) / (s.std(ddof=1) + EPS)
    raise ValueError(aggregation)


def _rewards(
    rng: np.random.Generator, n: int, names: tuple[str, ...], none_rate: float
) -> np.ndarray:
    cols = []
    for j, _name in enumerate(names):
        if j == 0:
            col = rng.integers(0, 2, n).astype(np.float64)  # binary, e.g. accuracy
        elif j == 1:
            col = rng.choice([0.0, 0.5, 1.0], n)  # graded, e.g. format
        else:
            col = np.round(rng.random(n), 3)
        cols.append(col)
    r = np.stack(cols, axis=1)  # (N, K)
    if none_rate:
        mask = rng.random(r.shape) < none_rate
        mask[:, 0] = False  # keep the first reward complete
        r[mask] = np.nan
    return r


def write_trl_completions(
    directory: str | Path,
    *,
    steps: tuple[int, ...] = (1, 2, 3),
    num_generations: int = 4,
    prompts_per_step: int = 3,
    reward_names: tuple[str, ...] = TRL_REWARDS,
    weights: tuple[float, ...] | None = None,
    aggregation: str = "sum_then_normalize",
    none_rate: float = 0.0,
    seed: int = 0,
    extra: bool = True,
    step_as_string: bool = False,
    pad: bool = True,
) -> list[dict[str, Any]]:
    """Write `completions_<step:05d>.parquet` files as TRL's GRPOTrainer does; return the rows.

    Prompts repeat across steps (a dataset epoch), so group ids must restart within each step.
    """
    import pandas as pd  # TRL writes its tables with pandas

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    k = len(reward_names)
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    rows: list[dict[str, Any]] = []
    for step in steps:
        n = prompts_per_step * num_generations
        prompts = [f"prompt {p} (step {step % 2})" for p in range(prompts_per_step)]
        r = _rewards(rng, n, reward_names, none_rate)
        adv = trl_advantages(r, num_generations, w, aggregation).astype(np.float64)
        table: dict[str, Any] = {
            "step": [str(step) if step_as_string else step] * n,
            "prompt": [prompts[i // num_generations] for i in range(n)],
            "completion": [f"answer {step}-{i}" for i in range(n)],
        }
        for j, name in enumerate(reward_names):
            table[name] = r[:, j].tolist()
        if extra:
            table["num_tokens"] = rng.integers(5, 50, n).tolist()  # an int extra column
            table["judge_note"] = [f"note {i}" for i in range(n)]
        table["advantage"] = adv.tolist()
        name = f"completions_{step:05d}.parquet" if pad else f"completions_{step}.parquet"
        pd.DataFrame(table).to_parquet(directory / name)
        for i in range(n):
            rows.append({key: values[i] for key, values in table.items()})
    return rows


def write_verl_rollouts(
    directory: str | Path,
    *,
    steps: tuple[int, ...] = (1, 2),
    n: int = 4,
    prompts_per_step: int = 3,
    seed: int = 0,
    shuffle: bool = True,
) -> list[dict[str, Any]]:
    """Write `<step>.jsonl` files as verl's `_dump_generations` does; return the records.

    `score` is a float, `acc` a bool, `format_reward` a number written as a string (as
    `default=str` writes numpy scalars), `pred` text that sometimes looks like a number, `gts`.
    Rows are shuffled (batch balancing reorders them).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for step in steps:
        batch = []
        for p in range(prompts_per_step):
            for j in range(n):
                acc = rng.random() < 0.5
                fmt = rng.choice([0.0, 0.5, 1.0])
                batch.append(
                    {
                        "input": f"question {p}",
                        "output": f"response {step}-{p}-{j}",
                        "gts": str(p * 7),
                        "score": float(acc) + 0.1 * fmt,
                        "step": step,
                        "acc": acc,
                        "format_reward": str(fmt),
                        "pred": str(p * 7) if acc else rng.choice(["x+1", "12", "[no answer]"]),
                    }
                )
        if shuffle:
            rng.shuffle(batch)
        with open(directory / f"{step}.jsonl", "w") as f:
            f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in batch) + "\n")
        records.extend(batch)
    return records


def write_swift_completions(
    path: str | Path,
    *,
    steps: tuple[int, ...] = (1, 2, 3),
    num_generations: int = 4,
    prompts_per_step: int = 2,
    reward_names: tuple[str, ...] = ("AccuracyReward", "FormatReward"),
    megatron: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Write ms-swift's `completions.jsonl`: one line per step holding columns as lists.

    `advantages` follows swift's default (group scaling of the summed reward, ddof 1, +1e-4).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    lines = []
    for step in steps:
        n = prompts_per_step * num_generations
        r = _rewards(rng, n, reward_names, 0.0)
        adv = trl_advantages(r, num_generations, np.ones(len(reward_names)), "sum_then_normalize")
        step_key = "gen_step" if megatron else "step"
        table: dict[str, Any] = {
            step_key: [step] * n if megatron else [str(step)] * n,
            "prompt": [f"<|user|>task {i // num_generations}" for i in range(n)],
            "completion": [f"swift answer {step}-{i}" for i in range(n)],
        }
        for j, name in enumerate(reward_names):
            table[name] = r[:, j].tolist()
        table["advantages"] = adv.astype(np.float64).tolist()
        table["solution"] = [str(i // num_generations) for i in range(n)]
        lines.append(json.dumps(table, ensure_ascii=False))
        for i in range(n):
            rows.append({key: values[i] for key, values in table.items()})
    path.write_text("\n".join(lines) + "\n")
    return rows

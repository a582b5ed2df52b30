"""The GRPO loop: sample G completions per prompt, score every reward, compute the scheme's
advantages with the shared engine (float64 on CPU, logged as is), update with a PPO-style clipped
ratio and an optional KL penalty to the frozen warm-started reference.

Determinism: one seed fixes the initial weights, the prompts (Python `random.Random`) and the
sampling (a dedicated `torch.Generator`); on CPU the same seed gives the same rollouts, and a run
resumed from a checkpoint gives the same final weights as an uninterrupted one (constant learning
rate, every random state checkpointed).
"""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dvao_cli.advantages import compute_advantages
from dvao_cli.errors import InputError, UsageError
from dvao_cli.integrations import metrics as step_metrics
from dvao_cli.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    python_rng_state,
    remove_checkpoints,
    save_checkpoint,
    set_python_rng_state,
)
from dvao_cli.train.config import CONFIG_FILE, TrainConfig, resolve
from dvao_cli.train.model import Policy, PolicyConfig, build_policy, sample, token_logprobs
from dvao_cli.train.outputs import (
    METRICS,
    MetricsWriter,
    remove_parts_after,
    write_json_file,
    write_rollouts,
    writing,
)
from dvao_cli.train.rewards import UserReward, load_reward
from dvao_cli.train.tasks import TASKS, Problem, Task
from dvao_cli.train.vocab import EOS, PAD, decode, encode


class TrainingInterrupted(Exception):
    """Ctrl-C: raised after the last completed step was checkpointed (step None: nothing saved)."""

    def __init__(self, run_dir: Path, step: int | None) -> None:
        self.run_dir = run_dir
        self.step = step
        super().__init__(f"interrupted at step {step}")

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a --compare worker process
        return (TrainingInterrupted, (self.run_dir, self.step))


@dataclass
class RunResult:
    run_dir: Path
    config: TrainConfig
    reward_names: list[str]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------


@dataclass
class Setup:
    task: Task
    user_rewards: list[UserReward]
    reward_names: list[str]  # every logged reward: the task's, then the user's
    objectives: list[str]  # the ones the advantages use, in order
    weights: list[float]  # preference weights in objective order
    device: torch.device


def load_setup(config: TrainConfig) -> Setup:
    """The task and the user's reward functions of a resolved config (imports their code)."""
    user = [load_reward(spec) for spec in config.rewards]
    names = list(TASKS[config.task].rewards) + [reward.name for reward in user]
    weights = [config.weights[name] for name in config.objectives]
    device = torch.device(config.device)
    return Setup(TASKS[config.task], user, names, list(config.objectives), weights, device)


def pick_threads(config: TrainConfig, device: torch.device) -> int:
    """One thread beats two up to width 256 (measured; the matrices are too small to split)."""
    if config.threads > 0:
        return config.threads
    if device.type == "cuda" or config.width <= 256:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def metric_columns(reward_names: list[str], objectives: list[str]) -> list[str]:
    """metrics.parquet's columns: the objectives' `dvao/<metric>/<name>` as the trainer
    integrations log them (null where a step does not log one: all_pass / all_fail of a reward
    that is not binary in that step)."""
    cols = ["step", "loss", "kl", "grad_norm", "lr"]
    cols += [f"rewards/{n}/mean" for n in reward_names]
    cols += [step_metrics.metric_key(m, n) for m in step_metrics.METRICS for n in objectives]
    return cols + ["time_s", "rollouts_per_s"]


# ---------------------------------------------------------------------------------------------
# Warm start
# ---------------------------------------------------------------------------------------------


def supervised_warm_start(
    model: Policy,
    task: Task,
    rng: random.Random,
    config: TrainConfig,
    device: torch.device,
    should_stop: Callable[[], bool],
) -> tuple[float, int, float]:
    """Up to `--sft-steps` of cross-entropy on correct answers, so accuracy does not start at zero.

    Stops early once the batch's exact-answer accuracy under teacher forcing (argmax) reaches
    `--sft-until`: small models learn carries in a sudden jump whose timing varies with the seed,
    and stopping at a set accuracy gives RL the same kind of start on every seed.
    Returns (last loss, steps run, last batch accuracy).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=config.sft_lr, weight_decay=0.0)
    loss_value = acc = math.nan
    done = 0
    for _ in range(config.sft_steps):
        if should_stop():
            raise TrainingInterrupted(Path("."), None)
        problems = task.problems(rng, config.sft_batch)
        seqs = [encode(p.prompt) + task.sft_target(p, rng) for p in problems]
        length = max(len(s) for s in seqs)
        batch = torch.tensor([s + [PAD] * (length - len(s)) for s in seqs], device=device)
        logits, _ = model(batch[:, :-1])  # (B, T-1, V)
        target = batch[:, 1:].clone()
        target[:, : task.prompt_len - 1] = -100  # learn the answer, not the prompt
        target[target == PAD] = -100
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        done += 1
        with torch.no_grad():  # exact answer: every answer token right (ignored ones count)
            hit = (logits.argmax(dim=-1) == target) | (target == -100)
            acc = float(hit.all(dim=1).to(torch.float32).mean())
        if config.sft_until < 1.0 and acc >= config.sft_until:  # 1 runs every step
            break
    return loss_value, done, acc


# ---------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------


def score(
    setup: Setup, problems: list[Problem], completions: list[str], finished: list[bool], step: int
) -> dict[str, list[float]]:
    scores = setup.task.score(problems, completions, finished)
    prompts = [p.prompt for p in problems]
    for reward in setup.user_rewards:
        scores[reward.name] = reward(
            prompts,
            completions,
            answer=[p.answer for p in problems],
            finished=list(finished),
            step=step,
        )
    return scores


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def rl_step(
    step: int,
    model: Policy,
    ref: Policy,
    opt: torch.optim.Optimizer,
    setup: Setup,
    config: TrainConfig,
    rng: random.Random,
    gen: torch.Generator,
    run_dir: Path,
) -> dict[str, Any]:
    """Sample, score, compute advantages, update, write the step's rollouts; return its metrics."""
    t0 = time.perf_counter()
    p, g, device = config.prompts_per_step, config.group_size, setup.device
    problems = setup.task.problems(rng, p)
    rows = [prob for prob in problems for _ in range(g)]  # (N,) = P*G, grouped
    prompts = torch.tensor([encode(prob.prompt) for prob in problems], device=device)  # (P, T_p)
    model.eval()
    comp = sample(model, prompts, config.max_new_tokens, config.temperature, gen, g)  # (N, T_c)
    comp_cpu = comp.cpu()
    texts = [decode(c) for c in comp_cpu.tolist()]
    finished = (comp_cpu == EOS).any(dim=1).tolist()
    scores = score(setup, rows, texts, finished, step)

    # advantages from the shared engine, float64 on CPU: these are logged and `dvao analyze`
    # reproduces them exactly from the log
    rewards = np.array([scores[n] for n in setup.objectives], dtype=np.float64).T  # (N, K)
    group = torch.arange(p, dtype=torch.int64).repeat_interleave(g)  # (N,)
    steps = torch.full((p * g,), step, dtype=torch.int64)
    result = compute_advantages(
        rewards,
        group,
        steps,
        setup.weights,
        schemes=(config.scheme,),
        ddof=config.ddof,
        eps=config.eps,
        nan=config.nan,
        device="cpu",
        dtype=torch.float64,
    )
    adv64 = result.advantages[config.scheme]  # (N,) float64
    adv = torch.nan_to_num(adv64, nan=0.0).to(device=device, dtype=torch.float32)

    # policy update: PPO-style clipped ratio over the completion tokens (EOS included)
    model.train()
    mask = (comp != PAD).to(torch.float32)  # (N, T_c)
    n_tok = mask.sum(dim=1).clamp_min(1.0)  # (N,)
    with torch.no_grad():
        # the reference only matters to the KL term: with --kl 0 (TRL's default beta) it is not
        # run, and the logged kl is NaN
        ref_logp = token_logprobs(ref, prompts, comp, config.temperature, g) if config.kl else None
        old_logp = (
            token_logprobs(model, prompts, comp, config.temperature, g)
            if config.ppo_epochs > 1
            else None
        )
    loss_value = grad_norm = 0.0
    kl_value = math.nan
    for epoch in range(config.ppo_epochs):
        logp = token_logprobs(model, prompts, comp, config.temperature, g)  # (N, T_c)
        old = logp.detach() if old_logp is None else old_logp
        ratio = torch.exp(logp - old)
        unclipped = ratio * adv[:, None]
        clipped = torch.clamp(ratio, 1.0 - config.clip, 1.0 + config.clip) * adv[:, None]
        pg = -torch.minimum(unclipped, clipped)  # (N, T_c)
        if ref_logp is not None:
            log_r = ref_logp - logp
            kl_tok = torch.exp(log_r) - log_r - 1.0  # k3 estimator, >= 0
            pg = pg + config.kl * kl_tok
        per_seq = (pg * mask).sum(dim=1) / n_tok  # (N,)
        loss = per_seq.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        if epoch == 0:
            loss_value = float(loss.detach())
            if ref_logp is not None:
                kl_value = float(((kl_tok.detach() * mask).sum(dim=1) / n_tok).mean())
            grad_norm = float(norm)

    write_rollouts(
        run_dir,
        step,
        group_id=((step - 1) * p + group).tolist(),
        sample_id=torch.arange(g).repeat(p).tolist(),
        prompts=[r.prompt for r in rows],
        completions=texts,
        rewards=scores,
        logged_advantage=adv64.tolist(),
    )
    row: dict[str, Any] = {
        "step": step,
        "loss": loss_value,
        "kl": kl_value,
        "grad_norm": grad_norm,
        "lr": opt.param_groups[0]["lr"],
    }
    for name in setup.reward_names:
        row[f"rewards/{name}/mean"] = _nanmean(np.asarray(scores[name], dtype=np.float64))
    row.update(step_metrics.objective_metrics(result.stats, setup.objectives, rewards))
    row["rollouts_per_s"] = p * g / max(time.perf_counter() - t0, 1e-9)
    return row


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class _StopFlag:
    """First Ctrl-C asks the loop to stop after the current step; a second one aborts at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


# what loading a checkpoint's content into this run raises when it holds the wrong content
_WRONG_CONTENT = (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError)

WarmCache = dict[tuple[Any, ...], dict[str, Any]]


def _checkpoint_state(
    model: Policy,
    ref: Policy,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    rng: random.Random,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "ref": ref.state_dict(),
        "optimizer": opt.state_dict(),
        "sample_generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": python_rng_state(rng),
        "elapsed_s": elapsed,
    }


def train_run(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
    warm_cache: WarmCache | None = None,
) -> RunResult:
    """Run (or with `resume`, continue) one training run into `run_dir`.

    on_start(first_step, last_step) is called once the warm start is done; on_step(row) after
    every step. Raises TrainingInterrupted on Ctrl-C after saving a checkpoint.
    """
    run_dir = Path(run_dir)
    config = resolve(config)
    setup = load_setup(config)
    device = setup.device
    threads_before = torch.get_num_threads()
    torch.set_num_threads(pick_threads(config, device))
    try:
        return _train(config, run_dir, setup, resume, on_start, on_step, on_info, warm_cache)
    finally:
        torch.set_num_threads(threads_before)  # leave the caller's process as it was


def _train(
    config: TrainConfig,
    run_dir: Path,
    setup: Setup,
    resume: bool,
    on_start: Callable[[int, int], None] | None,
    on_step: Callable[[dict[str, Any]], None] | None,
    on_info: Callable[[str], None] | None,
    warm_cache: WarmCache | None,
) -> RunResult:
    device = setup.device
    say = on_info or (lambda _msg: None)
    policy_config = PolicyConfig(
        layers=config.layers,
        width=config.width,
        heads=config.heads,
        max_len=setup.task.prompt_len + config.max_new_tokens + 2,
    )
    t_start = time.perf_counter()

    with _StopFlag() as stop:
        # ---- state: fresh (init + warm start) or from the last checkpoint
        rng = random.Random(config.seed)
        torch.manual_seed(config.seed)
        gen = torch.Generator(device=device)
        gen.manual_seed(config.seed)
        init_gen = torch.Generator().manual_seed(config.seed)
        model = build_policy(policy_config, init_gen).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
        elapsed0 = 0.0
        metrics = MetricsWriter(run_dir, metric_columns(setup.reward_names, setup.objectives))
        if resume:
            path = latest_checkpoint(run_dir)
            if path is None:
                raise UsageError(f"--resume {run_dir}: no checkpoint to resume from")
            state = load_checkpoint(path)
            try:  # a file that loads safely can still hold the wrong content
                model.load_state_dict(state["model"])
                ref = copy.deepcopy(model)
                ref.load_state_dict(state["ref"])
                opt.load_state_dict(state["optimizer"])
                gen.set_state(state["sample_generator"])
                torch.set_rng_state(state["torch_rng"])
                set_python_rng_state(rng, state["python_rng"])
                start = int(state["step"])
                elapsed0 = float(state.get("elapsed_s", 0.0))
            except _WRONG_CONTENT as err:
                what = f"missing {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
                what = what if len(what) <= 240 else what[:237] + "..."  # one line
                raise InputError(
                    f"checkpoint does not match this run ({type(err).__name__}: {what})", path=path
                ) from None
            if config.steps < start:
                raise UsageError(
                    f"--resume {run_dir}: the run is at step {start}; --steps {config.steps} "
                    "would go back (pass a larger --steps to continue)"
                )
            removed = remove_parts_after(run_dir, start)
            metrics.load_until(start)
            say(
                f"resuming {run_dir} from step {start}"
                + (f" ({removed} later rollout part files removed)" if removed else "")
            )
        else:
            with writing(run_dir):
                run_dir.mkdir(parents=True, exist_ok=True)
            remove_parts_after(run_dir, 0)
            remove_checkpoints(run_dir)
            (run_dir / METRICS).unlink(missing_ok=True)
            write_json_file(config.to_json(), run_dir / CONFIG_FILE)
            key = config.warm_key()
            cached = None if warm_cache is None else warm_cache.get(key)
            if cached is not None:  # the warm start is deterministic: reuse it across schemes
                model.load_state_dict(cached["model"])
                gen.set_state(cached["gen"])
                set_python_rng_state(rng, cached["rng"])
                torch.set_rng_state(cached["torch_rng"])
            elif config.sft_steps:
                say(f"warm start: {config.sft_steps} supervised steps")
                try:
                    sft_loss, sft_done, sft_acc = supervised_warm_start(
                        model, setup.task, rng, config, device, lambda: stop.set
                    )
                except TrainingInterrupted:
                    raise TrainingInterrupted(run_dir, None) from None
                say(
                    f"warm start done after {sft_done} steps: loss {sft_loss:.4f}, "
                    f"teacher-forced accuracy {sft_acc:.2f}"
                )
            if warm_cache is not None and cached is None:
                warm_cache[key] = {
                    "model": copy.deepcopy(model.state_dict()),
                    "gen": gen.get_state(),
                    "rng": python_rng_state(rng),
                    "torch_rng": torch.get_rng_state(),
                }
            ref = copy.deepcopy(model)
            start = 0
            save_checkpoint(run_dir, 0, _checkpoint_state(model, ref, opt, gen, rng, 0.0))
        ref.requires_grad_(False)
        ref.eval()

        # ---- the loop
        if on_start:
            on_start(start, config.steps)
        t_loop = time.perf_counter()
        for step in range(start + 1, config.steps + 1):
            row = rl_step(step, model, ref, opt, setup, config, rng, gen, run_dir)
            elapsed = elapsed0 + time.perf_counter() - t_loop
            row["time_s"] = elapsed
            metrics.append(row)
            if step % config.checkpoint_every == 0 or step == config.steps or stop.set:
                save_checkpoint(
                    run_dir, step, _checkpoint_state(model, ref, opt, gen, rng, elapsed)
                )
            if on_step:
                on_step(row)
            if stop.set and step < config.steps:
                raise TrainingInterrupted(run_dir, step)
    return RunResult(
        run_dir, config, setup.reward_names, metrics.rows, time.perf_counter() - t_start
    )


def final_rewards(rows: list[dict[str, Any]], names: list[str]) -> dict[str, float]:
    """Mean reward per objective over the last 10% of steps (at least one step)."""
    if not rows:
        return {n: math.nan for n in names}
    tail = rows[-max(1, math.ceil(len(rows) * 0.1)) :]
    out = {}
    for name in names:
        values = np.array([r[f"rewards/{name}/mean"] for r in tail], dtype=np.float64)
        out[name] = _nanmean(values)
    return out

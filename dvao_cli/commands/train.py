"""`dvao train`: a small GRPO trainer on toy multi-reward tasks that writes dvao logs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from dvao_cli.console import get_console, info, progress, warn
from dvao_cli.errors import EXIT_INTERRUPTED, UsageError
from dvao_cli.options import DdofOpt, Device, DeviceOpt, EpsOpt, Scheme, WeightOpt, parse_weights

HELP = (
    "Train a tiny character-level policy with GRPO on toy multi-reward tasks (arithmetic, "
    "budget) under any scheme, writing a dvao rollout log, metrics.parquet and checkpoints. "
    "With --compare, run several schemes on the same seeds and print a comparison table."
)


class TaskName(str, Enum):
    arithmetic = "arithmetic"
    budget = "budget"


# options that --resume takes from the run's config.json instead of the command line
_RESUME_OVERRIDABLE = {"steps", "out", "resume"}


def command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path(
        "dvao-train"
    ),
    task: Annotated[
        TaskName,
        typer.Option(
            "--task",
            help="Task: arithmetic (accuracy, format, length) or budget "
            "(accuracy vs length under a 2-character budget).",
        ),
    ] = TaskName.arithmetic,
    steps: Annotated[
        int, typer.Option("--steps", help="GRPO steps (with --resume: the new total).")
    ] = 500,
    prompts_per_step: Annotated[
        int, typer.Option("--prompts-per-step", help="Prompts sampled per step.")
    ] = 32,
    group_size: Annotated[
        int, typer.Option("--group-size", "-G", help="Completions sampled per prompt (G).")
    ] = 8,
    scheme: Annotated[
        Scheme, typer.Option("--scheme", help="Multi-reward advantage scheme.")
    ] = Scheme.dvao,
    weight: WeightOpt = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            "-O",
            help="Reward the run optimises (repeatable, in order). "
            "Default: every reward of the task plus every --reward.",
            show_default=False,
        ),
    ] = None,
    reward: Annotated[
        list[str] | None,
        typer.Option(
            "--reward",
            help="Extra reward module:function (or file.py:function), TRL's "
            "convention: f(prompts=, completions=, **kw) -> list of float or None. "
            "Repeatable; named after the function.",
            show_default=False,
        ),
    ] = None,
    sft_steps: Annotated[
        int, typer.Option("--sft-steps", help="Supervised warm-start steps before RL.")
    ] = 1500,
    sft_lr: Annotated[float, typer.Option("--sft-lr", help="Warm-start learning rate.")] = 3e-3,
    sft_until: Annotated[
        float | None,
        typer.Option(
            "--sft-until",
            help="Stop the warm start early once its batch accuracy (teacher-forced) reaches "
            "this; 1 runs every --sft-steps. Default: 0.5 for arithmetic, 0.9 for budget.",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[
        float, typer.Option("--lr", help="AdamW learning rate for RL (constant).")
    ] = 5e-4,
    clip: Annotated[float, typer.Option("--clip", help="PPO ratio clip range.")] = 0.2,
    kl: Annotated[
        float, typer.Option("--kl", help="KL penalty coefficient to the warm-started reference.")
    ] = 0.0,
    ppo_epochs: Annotated[
        int,
        typer.Option(
            "--ppo-epochs", help="Updates per batch of rollouts (the clip matters from 2 on)."
        ),
    ] = 1,
    max_grad_norm: Annotated[
        float, typer.Option("--max-grad-norm", help="Gradient clipping norm.")
    ] = 1.0,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Sampling temperature.")
    ] = 1.0,
    layers: Annotated[int, typer.Option("--layers", help="Transformer layers.")] = 2,
    width: Annotated[int, typer.Option("--width", help="Model width (multiple of 4).")] = 64,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Longest completion, end token included.")
    ] = 6,
    device: DeviceOpt = Device.auto,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch CPU threads; 0 picks (1 for small models).")
    ] = 0,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed (weights, prompts, sampling).")
    ] = 0,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Save a checkpoint every N steps.")
    ] = 50,
    ddof: DdofOpt = 0,
    eps: EpsOpt = 0.0,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the run in DIR from its last checkpoint (its "
            "options, device included, come from DIR/config.json; --steps may extend it).",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="Comma-separated schemes to compare (e.g. "
            "rc,ac,gdpo,dvao); writes DIR/compare.parquet.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", help="With --compare: seeds per scheme (seed, seed+1, ...).")
    ] = 1,
    sweep_weights: Annotated[
        str | None,
        typer.Option(
            "--sweep-weights",
            help="With --compare: two-objective weights w_1 = x, "
            "w_2 = 1 - x, e.g. 0.1,0.3,0.5,0.7,0.9 (a Pareto front).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run in --out.")
    ] = False,
) -> None:
    """Train with GRPO and write a dvao log."""
    from dvao_cli.train.config import CONFIG_FILE, TrainConfig, load_config

    if resume is not None:
        if compare is not None:
            raise UsageError("--resume continues one run; it cannot be combined with --compare")
        config = load_config(resume)
        ignored = [
            name
            for name in ctx.params
            if name not in _RESUME_OVERRIDABLE
            and (src := ctx.get_parameter_source(name)) is not None
            and src.name != "DEFAULT"
        ]
        if ignored:
            warn(
                "--resume takes the options from "
                + str(resume / CONFIG_FILE)
                + "; ignored: "
                + ", ".join("--" + n.replace("_", "-") for n in ignored)
            )
        if _given(ctx, "steps"):
            config.steps = steps
        _run_single(config, resume, resume=True)
        return

    config = TrainConfig(
        task=task.value,
        steps=steps,
        prompts_per_step=prompts_per_step,
        group_size=group_size,
        scheme=scheme.value,
        objectives=list(objective or []),
        weights=parse_weights(weight),
        rewards=list(reward or []),
        sft_steps=sft_steps,
        sft_lr=sft_lr,
        sft_until=sft_until,
        lr=lr,
        clip=clip,
        kl=kl,
        ppo_epochs=ppo_epochs,
        max_grad_norm=max_grad_norm,
        temperature=temperature,
        layers=layers,
        width=width,
        max_new_tokens=max_new_tokens,
        device=device.value,
        threads=threads,
        seed=seed,
        checkpoint_every=checkpoint_every,
        ddof=ddof,
        eps=eps,
    )
    if (out / CONFIG_FILE).exists() and not overwrite:
        raise UsageError(
            f"{out} already holds a run: resume it with --resume {out}, pick another "
            "--out, or pass --overwrite"
        )
    if compare is None:
        if sweep_weights is not None or _given(ctx, "seeds"):
            raise UsageError("--seeds and --sweep-weights go with --compare")
        _run_single(config, out, resume=False)
    else:
        _run_compare(config, compare, seeds, sweep_weights, out)


def _given(ctx: typer.Context, name: str) -> bool:
    src = ctx.get_parameter_source(name)
    return src is not None and src.name != "DEFAULT"


def _stats_text(row: dict[str, Any]) -> str:
    """`acc .42 for .99 len 1.0 | w acc .91 for .09 len .00`: mean rewards, then DVAO weights."""

    def num(v: float) -> str:
        return "nan" if v != v else f"{v:.2f}".replace("0.", ".", 1)

    means = [
        f"{k.split('/')[1][:3]} {num(v)}"
        for k, v in row.items()
        if k.startswith("rewards/") and k.endswith("/mean")
    ]
    weights = [f"{k.split('/')[2][:3]} {num(v)}" for k, v in row.items() if k.startswith("dvao/")]
    return " ".join(means) + " | w " + " ".join(weights)


def _interrupted(err: Any) -> typer.Exit:
    if err.step is None:
        print(
            "interrupted during the warm start: nothing to resume; run again",
            flush=True,
            file=__import__("sys").stderr,
        )
    else:
        print(
            f"interrupted after step {err.step}: checkpoint saved; resume with: "
            f"dvao train --resume {err.run_dir}",
            flush=True,
            file=__import__("sys").stderr,
        )
    return typer.Exit(EXIT_INTERRUPTED)


def _run_single(config: Any, run_dir: Path, *, resume: bool) -> None:
    from dvao_cli.train.loop import TrainingInterrupted, train_run

    with progress("train", total=config.steps, extra_column="stats") as bar:

        def on_start(first: int, last: int) -> None:
            bar.set_total(last)
            if first:
                bar.update(advance=first)

        def on_step(row: dict[str, Any]) -> None:
            bar.update(advance=1, stats=_stats_text(row))

        try:
            result = train_run(
                config, run_dir, resume=resume, on_start=on_start, on_step=on_step, on_info=info
            )
        except TrainingInterrupted as err:
            raise _interrupted(err) from None
    _render_run(result)


def _render_run(result: Any) -> None:
    from dvao_cli.train.loop import final_rewards

    rows = result.metrics
    console = get_console()
    if not rows:
        console.print(f"{result.run_dir}: no steps run", markup=False, highlight=False)
        return
    n = max(1, len(rows) // 10)
    first = final_rewards(rows[:n], result.reward_names)
    last = final_rewards(rows, result.reward_names)
    cfg = result.config
    # every rollout over the loop's wall time (sampling, scoring, update and writing included)
    rps = len(rows) * cfg.prompts_per_step * cfg.group_size / max(rows[-1]["time_s"], 1e-9)
    console.print(
        f"{result.run_dir}: {len(rows)} steps in {result.wall_s:.1f} s "
        f"({rps:.0f} rollouts/s), scheme {result.config.scheme}",
        markup=False,
        highlight=False,
    )
    console.print(f"{'reward':<16}{'first 10%':>10}{'last 10%':>10}", markup=False, highlight=False)
    for name in result.reward_names:
        console.print(
            f"{name:<16}{first[name]:>10.3f}{last[name]:>10.3f}", markup=False, highlight=False
        )


def _run_compare(config: Any, compare: str, seeds: int, sweep_text: str | None, out: Path) -> None:
    from rich.table import Table

    from dvao_cli.console import table_box
    from dvao_cli.train.compare import (
        fmt_pct,
        parse_schemes,
        parse_sweep,
        run_compare,
        summarize,
    )
    from dvao_cli.train.loop import TrainingInterrupted

    schemes = parse_schemes(compare)
    sweep = None if sweep_text is None else parse_sweep(sweep_text)
    with progress("compare", total=None, extra_column="stats") as bar:

        def on_run(name: str, i: int, total: int) -> None:
            bar.update(description=f"{name} ({i + 1}/{total})")
            bar.set_total(None)

        def on_step(row: dict[str, Any]) -> None:
            bar.update(advance=1, stats=_stats_text(row))

        try:
            frame = run_compare(
                config, schemes, seeds, sweep, out, on_run=on_run, on_step=on_step, on_info=None
            )
        except TrainingInterrupted as err:
            raise _interrupted(err) from None
    objectives = [c[len("final_") :] for c in frame.columns if c.startswith("final_")]
    table = Table(box=table_box())
    table.add_column("scheme")
    if sweep is not None:
        table.add_column("w " + objectives[0], justify="right")
    for o in objectives:
        table.add_column(o, justify="right")
    table.add_column("wall s", justify="right")
    for row in summarize(frame, objectives).iter_rows(named=True):
        cells = [row["scheme"]]
        if sweep is not None:
            cells.append(f"{row['w_' + objectives[0]]:g}")
        cells += [fmt_pct(row[f"{o}_mean"], row[f"{o}_spread"]) for o in objectives]
        cells.append(f"{row['wall_s']:.1f}")
        table.add_row(*cells)
    console = get_console()
    console.print(
        f"final reward % (mean over the last 10% of steps), mean ± std over {seeds} "
        f"seed{'s' if seeds > 1 else ''}",
        markup=False,
        highlight=False,
    )
    console.print(table)
    console.print(
        f"wrote {out / 'compare.parquet'} and {frame.height} run directories",
        markup=False,
        highlight=False,
    )

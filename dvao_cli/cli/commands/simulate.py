"""`dvao simulate`: write a seeded synthetic rollout log (parse options, call the core, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = (
    "Write a seeded synthetic multi-reward rollout log (Parquet) with realistic GRPO dynamics.\n\n"
    "Objectives (all rewards in [0, 1]): accuracy (binary; per-prompt latent difficulty, success "
    "probability rising with the step on a sigmoid), format (binary; saturates to all-pass for "
    "almost every group after ~20% of the steps), length (binary compliance with a length "
    "budget; anti-correlated with accuracy inside a group: the conflict), rm_score (continuous "
    "reward-model score; mostly noise with a small signal correlated with accuracy: variance is "
    "not learnability).\n\n"
    "Scenarios: standard (accuracy rises from ~20% to ~75%, format saturates early, length "
    "mildly conflicts, rm_score mostly noise); saturating (accuracy too saturates: most groups "
    "are all-pass in the last third); conflict (strong accuracy/length anti-correlation: a "
    "correct response rarely fits the budget); noisy (rm_score is nearly pure wide noise and "
    "dominates the within-group variance).\n\n"
    "Columns: step, group_id (a prompt index, unique within a step), sample_id (0..G-1), prompt, "
    "completion, then one Float64 column per objective; rows sorted by step, group, sample. The "
    "same options always give the same data. Example: dvao simulate -o rollouts.parquet "
    "--objectives accuracy,format,length,rm_score --seed 0"
)


def command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Parquet file to write (atomically: an interrupted run leaves no partial file).",
            show_default=False,
        ),
    ],
    steps: Annotated[int, typer.Option("--steps", help="Training steps to simulate.")] = 50,
    groups: Annotated[int, typer.Option("--groups", help="Prompts (groups) per step.")] = 32,
    group_size: Annotated[
        int, typer.Option("--group-size", "-G", help="Responses sampled per prompt (>= 2).")
    ] = 8,
    objectives: Annotated[
        str,
        typer.Option(
            "--objectives",
            help="Comma list of reward objectives from accuracy, format, length, rm_score.",
        ),
    ] = "accuracy,format,length",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 0,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", help="Dynamics: standard, saturating, conflict or noisy (see above)."
        ),
    ] = "standard",
    no_text: Annotated[
        bool,
        typer.Option(
            "--no-text",
            help="Omit the prompt and completion columns (smaller, faster: for big benchmarks).",
        ),
    ] = False,
) -> None:
    from dvao_cli.cli.console import info, progress
    from dvao_cli.simulate import write_simulated

    with progress("simulating steps", total=steps) as bar:
        summary = write_simulated(
            out,
            steps=steps,
            groups=groups,
            group_size=group_size,
            objectives=objectives,
            scenario=scenario,
            seed=seed,
            text=not no_text,
            on_progress=lambda done: bar.update(completed=done),
        )
    info(
        f"wrote {summary.rows:,} rows ({summary.steps} steps x {summary.groups} groups x "
        f"{summary.group_size}; objectives {', '.join(summary.objectives)}; scenario "
        f"{summary.scenario}) to {summary.path}"
    )

"""`dvao train`: a small GRPO trainer on toy multi-reward tasks that writes dvao logs."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from dvao_cli.cli.console import get_console, info, progress, warn
from dvao_cli.cli.options import DdofOpt, DeviceOpt, EpsOpt, WeightOpt
from dvao_cli.cli.options import given as _given
from dvao_cli.errors import EXIT_INTERRUPTED, UsageError

HELP = (
    "Train a tiny character-level policy with GRPO on toy multi-reward tasks (arithmetic, "
    "budget, reasoning) under any scheme, writing a dvao rollout log, metrics.parquet and "
    "checkpoints. With --compare, run several schemes on the same seeds and print a comparison "
    "table."
)


# options that --resume takes from the command line; the rest come from the run's config.json
_RESUME_OVERRIDABLE = {"steps", "out", "resume", "rewards"}


def _run_options(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path(
        "dvao-train"
    ),
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the run in DIR from its last checkpoint (its options, device "
            "included, come from DIR/config.json; --steps may extend it; a run with --reward "
            "functions needs the same --reward options again: no code named only in DIR runs). "
            "On a --compare folder: finish its missing and stopped runs, then write "
            "compare.parquet (--jobs applies).",
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
    ] = 5,
    sweep_weights: Annotated[
        str | None,
        typer.Option(
            "--sweep-weights",
            help="With --compare: two-objective weights w_1 = x, "
            "w_2 = 1 - x, e.g. 0.1,0.3,0.5,0.7,0.9 (a Pareto front).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            help="With --compare: runs in parallel processes (0: one per CPU core, at most 4, "
            "when each run samples at least 20,000 completions; else 1).",
        ),
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run in --out.")
    ] = False,
) -> None:
    """The options of `dvao train` that are not part of a run's config."""


# ---------------------------------------------------------------------------------------------
# `dvao train`'s options, built from the config's fields (train.config.TrainConfig)
# ---------------------------------------------------------------------------------------------


_CLI_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "int | None": int | None,
    "float | None": float | None,
    "list[str]": list[str] | None,
}


# a field's `shared` name -> the option type `dvao analyze` has too (its flag and help)
SHARED: dict[str, Any] = {"weights": WeightOpt, "device": DeviceOpt, "ddof": DdofOpt, "eps": EpsOpt}


def cli_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per config field that has a flag (or a shared option type), with
    its typer option and default: `dvao train`'s options, from the fields' metadata."""
    from dvao_cli.train.config import TrainConfig

    params = []
    for f in fields(TrainConfig):
        meta = f.metadata
        default = None if f.default is MISSING else f.default  # lists and dicts: None
        if meta["shared"] is not None:
            annotation = SHARED[meta["shared"]]
            kind = get_args(annotation)[0]
            if isinstance(kind, type) and issubclass(kind, Enum):
                default = kind(default)
        elif meta["flags"]:
            kind = _CLI_TYPES[str(f.type)]
            if meta["choices"]:
                kind = Enum(f.name.capitalize(), {c: c for c in meta["choices"]}, type=str)
                default = kind(default)
            annotation = Annotated[
                kind,
                typer.Option(
                    *meta["flags"],
                    help=meta["help"],
                    show_default=meta["show_default"],
                    metavar=meta["metavar"],
                ),
            ]
        else:
            continue
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return params


def _signature() -> inspect.Signature:
    own = list(inspect.signature(_run_options, eval_str=True).parameters.values())
    return inspect.Signature(own + cli_parameters())


def command(**params: Any) -> None:
    """Train with GRPO and write a dvao log."""
    from dvao_cli.train.config import CONFIG_FILE, from_values, load_config
    from dvao_cli.train.outputs import check_out_keeps_inputs

    ctx: typer.Context = params.pop("ctx")
    out: Path = params.pop("out")
    resume: Path | None = params.pop("resume")
    compare: str | None = params.pop("compare")
    seeds: int = params.pop("seeds")
    sweep_weights: str | None = params.pop("sweep_weights")
    jobs: int = params.pop("jobs")
    overwrite: bool = params.pop("overwrite")
    if resume is not None:
        from dvao_cli.train.compare import load_comparison
        from dvao_cli.train.compare_runs import compare_config

        if compare is not None:
            raise UsageError(
                "--resume continues the run or the comparison in DIR with its own options; "
                "do not pass --compare with it"
            )
        comparison = load_comparison(resume) if compare_config(resume) is not None else None
        config = load_config(resume) if comparison is None else comparison.base
        overridable = _RESUME_OVERRIDABLE | ({"jobs"} if comparison is not None else set())
        ignored = [name for name in ctx.params if name not in overridable and _given(ctx, name)]
        if ignored:
            warn(
                "--resume takes the options from "
                + str(resume / CONFIG_FILE)
                + "; ignored: "
                + ", ".join(_flag(n) for n in ignored)
            )
        given_rewards = list(params["rewards"] or [])
        if given_rewards != config.rewards:
            raise UsageError(_resume_rewards_message(resume, config.rewards, given_rewards))
        if _given(ctx, "steps"):
            config = replace(config, steps=params["steps"])
        if comparison is not None:
            runs = (comparison.schemes, comparison.n_seeds, comparison.sweep)
            _run_compare(config, *runs, resume, jobs, resume=True)
            return
        check_out_keeps_inputs(resume, config.rewards)
        _run_single(config, resume, resume=True)
        return

    config = from_values(params)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; --out names a run directory")
    if (out / CONFIG_FILE).exists() and not overwrite:
        raise UsageError(
            f"{out} already holds a run: resume it with --resume {out}, pick another "
            "--out, or pass --overwrite"
        )
    if compare is None:
        if sweep_weights is not None or _given(ctx, "seeds") or _given(ctx, "jobs"):
            raise UsageError("--seeds, --sweep-weights and --jobs go with --compare")
        check_out_keeps_inputs(out, config.rewards)
        _run_single(config, out, resume=False)
    else:
        from dvao_cli.train.compare import parse_schemes, parse_sweep

        sweep = None if sweep_weights is None else parse_sweep(sweep_weights)
        _run_compare(config, parse_schemes(compare), seeds, sweep, out, jobs)


command.__signature__ = _signature()  # type: ignore[attr-defined]


def _flag(name: str) -> str:
    from dvao_cli.train.config import TrainConfig

    meta = TrainConfig.__dataclass_fields__.get(name)
    if meta is not None and meta.metadata["flags"]:
        return meta.metadata["flags"][0]
    return "--" + name.replace("_", "-")


def _resume_rewards_message(run: Path, recorded: list[str], given: list[str]) -> str:
    if not recorded:
        return f"--resume {run}: the run has no --reward; do not pass one"
    specs = " ".join(f"--reward {spec}" for spec in recorded)
    if not given:
        return (
            f"--resume {run}: the run used reward code that dvao does not import from a run "
            f"folder; name it again to resume: {specs}"
        )
    return f"--resume {run}: the --reward options differ from the run's; it used: {specs}"


def _stats_text(row: dict[str, Any]) -> str:
    """`acc .42 for .99 len 1.0 | w acc .91 for .09 len .00`: mean rewards, then DVAO weights."""

    def num(v: float) -> str:
        return "nan" if v != v else f"{v:.2f}".replace("0.", ".", 1)

    means = [
        f"{k.split('/')[1][:3]} {num(v)}"
        for k, v in row.items()
        if k.startswith("rewards/") and k.endswith("/mean")
    ]
    weights = [
        f"{k.split('/')[2][:3]} {num(v)}" for k, v in row.items() if k.startswith("dvao/weight/")
    ]
    return " ".join(means) + " | w " + " ".join(weights)


def _interrupted(err: Any, comparison: Path | None = None) -> typer.Exit:
    """Exit 130 with the command that continues: the run, or with `comparison` the whole
    comparison (whose runs each stopped at a checkpoint, or had not started)."""
    if comparison is not None:
        print(
            "interrupted: every started run saved a checkpoint; finish the comparison with: "
            f"dvao train --resume {comparison}",
            flush=True,
            file=__import__("sys").stderr,
        )
    elif err.step is None:
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


def _run_compare(
    config: Any,
    schemes: list[str],
    seeds: int,
    sweep: list[float] | None,
    out: Path,
    jobs: int,
    *,
    resume: bool = False,
) -> None:
    from rich.table import Table

    from dvao_cli.cli.console import table_box
    from dvao_cli.train.compare import (
        comparison_table,
        pick_jobs,
        run_compare,
        summarize,
    )
    from dvao_cli.train.compare_runs import planned_names
    from dvao_cli.train.loop import TrainingInterrupted
    from dvao_cli.train.outputs import check_out_keeps_inputs

    names = planned_names(schemes, [config.seed + i for i in range(max(seeds, 0))], sweep)
    check_out_keeps_inputs(out, config.rewards, names)
    n_runs = len(schemes) * seeds * (1 if sweep is None else len(sweep))
    from dvao_cli.train.config import resolve

    steps = resolve(config).steps or 0
    n_jobs = pick_jobs(jobs, max(1, n_runs), steps * config.prompts_per_step * config.group_size)
    with progress("compare", total=n_runs if n_jobs > 1 else None, extra_column="stats") as bar:

        def on_run(name: str, i: int, total: int) -> None:
            if n_jobs > 1:  # called as each run ends; `total`: the runs left (on --resume)
                bar.set_total(total)
                bar.update(advance=1, description=f"{name} done ({i + 1}/{total})")
            else:
                bar.update(description=f"{name} ({i + 1}/{total})")
                bar.set_total(None)

        def on_step(row: dict[str, Any]) -> None:
            bar.update(advance=1, stats=_stats_text(row))

        try:
            frame = run_compare(
                config,
                schemes,
                seeds,
                sweep,
                out,
                jobs=n_jobs,
                resume=resume,
                on_run=on_run,
                on_step=on_step,
                on_info=None,
            )
        except TrainingInterrupted as err:
            raise _interrupted(err, out) from None
    objectives = [c[len("final_") :] for c in frame.columns if c.startswith("final_")]
    note, headers, rows = comparison_table(
        summarize(frame, objectives), objectives, seeds=seeds, sweep=sweep is not None
    )
    table = Table(box=table_box())
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for cells in rows:
        table.add_row(*cells)
    console = get_console()
    console.print(note, markup=False, highlight=False)
    console.print(table)
    console.print(
        f"wrote {out / 'compare.parquet'} and {frame.height} run directories",
        markup=False,
        highlight=False,
    )

"""`dvao train`: the `reasoning` task's rewards, the options as one dataclass (defaults, help,
a pure `resolve`, the warm-start key), and `--compare`'s statistics, parallel runs and curves."""

from __future__ import annotations

import inspect
import json
import math
import random
from dataclasses import MISSING, FrozenInstanceError, fields, replace
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.train.compare import Interval, summarize, t_interval, t_quantile_975
from dvao_cli.train.config import TrainConfig, resolve
from dvao_cli.train.tasks import TASKS, Problem

TINY = ("--sft-steps", "0", "--prompts-per-step", "4", "--group-size", "4", "--width", "32")


# ---- the reasoning task ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "finished", "accuracy", "length"),
    [
        ("50", True, 1.0, 1.0),  # the answer at once
        ("42 50", True, 1.0, 0.75),  # worked: 5 characters, one past the budget of 4
        ("42 51", True, 0.0, 0.75),  # worked, wrong answer
        ("41 50", True, 1.0, 0.75),  # a wrong partial sum does not matter, the answer does
        ("142 50", True, 1.0, 0.5),  # 6 characters
        ("1042 50", True, 1.0, 0.25),  # 7 characters
        ("10042 50", True, 1.0, 0.0),  # 8 characters: twice the budget
        ("1 2 50", True, 0.0, 0.5),  # two separators: not well formed
        ("50 ", True, 0.0, 1.0),  # a trailing separator
        (" 50", True, 0.0, 1.0),  # a leading one
        ("5+0", True, 0.0, 1.0),
        ("", True, 0.0, 1.0),
        ("50", False, 0.0, 0.0),  # cut at --max-new-tokens: nothing
        ("42 50", False, 0.0, 0.0),
    ],
)
def test_reasoning_rewards(completion: str, finished: bool, accuracy: float, length: float) -> None:
    task = TASKS["reasoning"]
    problem = Problem("37+5+8=", "50", "42")
    scores = task.score([problem], [completion], [finished])
    assert scores == {"accuracy": [accuracy], "length": [length]}


def test_reasoning_prompts_and_warm_start_targets() -> None:
    from dvao_cli.train.vocab import EOS, decode

    task = TASKS["reasoning"]
    problems = task.problems(random.Random(0), 200)
    for p in problems:
        a, b, c = (int(x) for x in p.prompt[:-1].split("+"))
        assert len(p.prompt) == task.prompt_len == 7
        assert 10 <= a <= 99 and 1 <= b <= 9 and 1 <= c <= 9
        assert (p.answer, p.work) == (str(a + b + c), str(a + b))
    rng = random.Random(1)
    targets = [task.sft_target(p, rng) for p in problems]
    assert all(t[-1] == EOS for t in targets)
    texts = [decode(t) for t in targets]
    worked = sum(1 for p, t in zip(problems, texts, strict=True) if t == f"{p.work} {p.answer}")
    direct = sum(1 for p, t in zip(problems, texts, strict=True) if t == p.answer)
    assert worked + direct == 200 and 70 <= worked <= 130  # half and half
    # the other tasks never draw from the rng for their targets (their prompt streams stay)
    rng = random.Random(2)
    state = rng.getstate()
    TASKS["arithmetic"].sft_target(Problem("37+48=", "85"), rng)
    assert rng.getstate() == state


def test_reasoning_runs_with_its_defaults(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = cli("train", "--out", out, "--task", "reasoning", *TINY, "--steps", "2")
    assert res.code == 0, res.err
    config = json.loads((out / "config.json").read_text())
    assert (config["max_new_tokens"], config["sft_until"], config["objectives"]) == (
        8,
        0.3,
        ["accuracy", "length"],
    )
    log = pl.read_parquet(out / "rollouts" / "step-000001.parquet")
    assert log.columns[5:7] == ["accuracy", "length"]
    assert all(len(p) == 7 for p in log["prompt"].to_list())
    assert max(len(c) for c in log["completion"].to_list()) <= 8  # 8 tokens, the end token too
    cut = log.filter(pl.col("completion").str.len_chars() == 8)  # no room left for the end token
    assert cut["length"].to_list() == [0.0] * cut.height


# ---- TrainConfig: the single source of options -------------------------------------------------


def test_cli_options_come_from_the_dataclass(cli) -> None:
    from dvao_cli.cli.commands.train import command

    params = inspect.signature(command).parameters
    for f in fields(TrainConfig):
        meta = f.metadata
        if not meta["flags"]:
            continue
        param = params[f.name]
        info = param.annotation.__metadata__[0]  # the typer.Option built from the field
        assert info.help == meta["help"], f.name
        # typer keeps an Annotated option's first name in `default`
        assert (info.default, *info.param_decls) == meta["flags"], f.name
        expected = None if f.default is MISSING else f.default  # lists: None, then empty
        assert getattr(param.default, "value", param.default) == expected, f.name
    assert params["ddof"].default == 0 and params["eps"].default == 0.0
    assert params["device"].default.value == "auto"
    text = " ".join(cli("train", "--help").out.replace("\u2502", " ").split())  # unwrapped
    assert "GRPO steps (with --resume: the new total). Default: 300 for reasoning" in text
    assert "arithmetic|budget|reasoning" in text
    assert "--seeds" in text and "[default: 5]" in text


def test_resolve_is_pure_and_fills_the_task_defaults() -> None:
    given = TrainConfig(task="reasoning", seed=3)
    resolved = resolve(given)
    assert given == TrainConfig(task="reasoning", seed=3)  # untouched
    assert (resolved.steps, resolved.max_new_tokens, resolved.sft_until) == (300, 8, 0.3)
    assert resolved.objectives == ["accuracy", "length"]
    assert resolved.weights == {"accuracy": 0.5, "length": 0.5}
    assert resolved.device == "cpu" or resolved.device == "cuda"
    assert resolve(resolved) == resolved  # idempotent: a resumed run resolves the same
    arithmetic = resolve(TrainConfig())
    assert (arithmetic.steps, arithmetic.max_new_tokens, arithmetic.sft_until) == (500, 6, 0.5)
    with pytest.raises(FrozenInstanceError):
        given.steps = 3  # type: ignore[misc]


def test_warm_start_key_follows_the_fields_that_shape_the_model() -> None:
    base = resolve(TrainConfig(task="reasoning"))
    key = base.warm_key()
    assert replace(base, max_new_tokens=7).warm_key() != key  # sets the positions' table
    assert resolve(TrainConfig(task="reasoning", max_new_tokens=9)).warm_key() != key
    for name, value in [("seed", 1), ("width", 32), ("sft_until", 0.4), ("task", "budget")]:
        assert replace(base, **{name: value}).warm_key() != key, name
    # the RL options do not change the warm start: schemes and weights share it
    for name, value in [("scheme", "rc"), ("lr", 1e-3), ("weights", {"accuracy": 1.0})]:
        assert replace(base, **{name: value}).warm_key() == key, name


# ---- --compare: statistics ---------------------------------------------------------------------


def test_t_interval_on_known_numbers() -> None:
    assert t_quantile_975(1) == 12.706205
    assert t_quantile_975(4) == 2.776445
    assert abs(t_quantile_975(60) - 2.000298) < 2e-5  # Cornish-Fisher past the table
    assert abs(t_quantile_975(10_000) - 1.960201) < 1e-5
    iv = t_interval([0.1, 0.2, 0.3, 0.4, 0.5])
    assert iv.n == 5 and abs(iv.mean - 0.3) < 1e-15
    # sd = sqrt(0.025), half = t(4) * sd / sqrt(5)
    assert abs(iv.half - 2.776445 * math.sqrt(0.025) / math.sqrt(5)) < 1e-15
    assert abs(iv.half - 0.1963243) < 1e-7
    assert iv.excludes_zero
    assert not t_interval([-0.1, 0.1, 0.05]).excludes_zero
    one = t_interval([0.7, math.nan])
    assert (one.mean, one.n, math.isnan(one.half), one.excludes_zero) == (0.7, 1, True, False)
    assert t_interval([]).n == 0


def test_summary_pairs_each_scheme_with_dvao_by_seed() -> None:
    frame = pl.DataFrame(
        {
            "scheme": ["rc"] * 3 + ["dvao"] * 3 + ["ac"] * 3,
            "seed": [0, 1, 2] * 3,
            "run": [f"{s}-s{i}" for s in ("rc", "dvao", "ac") for i in range(3)],
            "w_accuracy": [0.5] * 9,
            "w_length": [0.5] * 9,
            "final_accuracy": [0.50, 0.60, 0.70, 0.60, 0.71, 0.79, 0.20, 0.90, 0.40],
            "final_length": [1.0] * 9,
            "wall_s": [1.0, 2.0, 3.0] * 3,
        }
    )
    rows = summarize(frame, ["accuracy", "length"])
    assert [r.scheme for r in rows] == ["rc", "dvao", "ac"]
    rc, dvao, ac = rows
    assert dvao.vs_reference is None and rc.seeds == 3 and rc.wall_s == 2.0
    assert rc.finals["accuracy"] == t_interval([0.5, 0.6, 0.7])
    # rc - dvao per seed: -0.10, -0.11, -0.09: an interval that excludes 0
    diff = rc.vs_reference["accuracy"]
    assert diff == t_interval([0.50 - 0.60, 0.60 - 0.71, 0.70 - 0.79])
    assert abs(diff.mean + 0.1) < 1e-12 and diff.excludes_zero
    # ac - dvao: -0.40, +0.19, -0.39: too spread to tell
    assert not ac.vs_reference["accuracy"].excludes_zero
    assert rc.vs_reference["length"] == Interval(0.0, 0.0, 3)
    assert not rc.vs_reference["length"].excludes_zero


# ---- --compare: runs in parallel, logs that analyze reproduces, curves -----------------------


@pytest.mark.slow
def test_short_compare_in_parallel(cli, tmp_path: Path) -> None:
    from dvao_cli.analysis.pipeline import analyze

    args = (*TINY, "--task", "reasoning", "--steps", "3", "--compare", "rc,dvao", "--seeds", "2")
    par, ser = tmp_path / "par", tmp_path / "ser"
    res = cli("train", "--out", par, *args, "--jobs", "2")
    assert res.code == 0, res.err
    assert cli("train", "--out", ser, *args, "--jobs", "1").code == 0
    frame = pl.read_parquet(par / "compare.parquet")
    assert frame.columns == [
        "scheme",
        "seed",
        "run",
        "w_accuracy",
        "w_length",
        "final_accuracy",
        "final_length",
        "wall_s",
    ]
    assert frame["run"].to_list() == ["rc-s0", "rc-s1", "dvao-s0", "dvao-s1"]
    assert "95% t-interval over 2 seeds" in res.out and "accuracy - dvao" in res.out
    config = json.loads((par / "config.json").read_text())
    for run in frame["run"]:
        m = pl.read_parquet(par / run / "metrics.parquet")  # the per-step curves
        assert m["step"].to_list() == [1, 2, 3]
        assert {"rewards/accuracy/mean", "rewards/length/mean"} <= set(m.columns)
        # a run's numbers do not depend on the process that ran it
        for step in (1, 3):
            name = f"step-{step:06d}.parquet"
            parallel = pl.read_parquet(par / run / "rollouts" / name)
            assert parallel.equals(pl.read_parquet(ser / run / "rollouts" / name))
        # each run's log reproduces its logged advantages through analyze
        scheme = run.split("-")[0]
        result = analyze(
            par / run / "rollouts",
            objectives=config["objectives"],
            schemes=(scheme,),
            nan="ignore",
            device="cpu",
        )
        assert result.summary.to_json()["schemes"][scheme]["logged_max_diff"] == 0.0, run
        assert result.summary.to_json()["best_matching_scheme"] == scheme
    res = cli("train", "--out", tmp_path / "bad", *args, "--jobs", "-1")
    assert (res.code, res.err.strip()) == (2, "error: --jobs must be >= 0 (got -1)")


@pytest.mark.slow
def test_curves_are_drawn_from_a_compare_folder(cli, tmp_path: Path) -> None:
    from dvao_cli.plot.source import build_figures, load_source

    out = tmp_path / "cmp"
    args = (*TINY, "--task", "reasoning", "--steps", "4", "--compare", "grpo,dvao", "--seeds", "2")
    assert cli("train", "--out", out, *args).code == 0
    res = cli("plot", out)
    assert res.code == 0, res.err
    assert res.out == f"2 figures in {out / 'plots'}: learning_curves, pareto\n"
    assert (out / "plots" / "learning_curves.png").stat().st_size > 10_000
    src = load_source(out)
    assert src.curves is not None and src.curves.height == 2 * 2 * 4 * 2  # runs, steps, objs
    fig = build_figures(src, src.objectives)[0]["learning_curves"]
    gids = [a.get_gid() for a in fig.findobj() if (a.get_gid() or "").startswith(("curve", "band"))]
    assert sorted(gids) == sorted(
        f"{kind}:{o}:{s}"
        for kind in ("curve", "band")
        for o in ("accuracy", "length")
        for s in ("grpo", "dvao")
    )
    # the curve is the mean over seeds of the runs' own metrics
    line = next(a for a in fig.findobj() if a.get_gid() == "curve:accuracy:dvao")
    seeds = [pl.read_parquet(out / f"dvao-s{i}" / "metrics.parquet") for i in range(2)]
    mean = [(a + b) / 2 for a, b in zip(*(m["rewards/accuracy/mean"] for m in seeds), strict=True)]
    assert list(line.get_ydata()) == pytest.approx(mean, abs=1e-15)
    # one objective: curves only, the Pareto figure is skipped with its reason
    res = cli("plot", out, "-O", "length", "--out", tmp_path / "one")
    assert res.code == 0, res.err
    assert "skipped pareto.png: needs at least two objectives" in res.err
    # a run folder missing among the others is named
    (out / "dvao-s1" / "metrics.parquet").unlink()
    res = cli("plot", out, "--out", tmp_path / "o3")
    assert res.code == 2
    assert res.err.strip() == (
        f"error: {out / 'dvao-s1' / 'metrics.parquet'}: missing: the comparison lists this run"
    )

"""`dvao train`: learning, the output contracts, determinism, resume, Ctrl-C, user rewards,
--compare. Tiny runs (no warm start unless the test needs learning) keep the file fast."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import polars as pl
import pytest
import torch

from dvao_cli import group_stats
from dvao_cli.integrations.metrics import objective_metrics

REWARDS = textwrap.dedent(
    """
    import os
    import signal


    def chars(prompts, completions, **kwargs):
        return [len(c) / 6 for c in completions]


    def ones(prompts, completions, step, **kwargs):
        if os.environ.get("DVAO_TEST_STOP_AT") == str(step):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        # None -> NaN reward: skipped by the engine (nan="ignore")
        return [None if i % 5 == 0 else float(c.count("1")) / 3 for i, c in enumerate(completions)]


    def short(prompts, completions, **kwargs):
        return [1.0]


    def boom(prompts, completions, **kwargs):
        raise ValueError("bad")


    def text(prompts, completions, **kwargs):
        return ["x" for _ in completions]
    """
)

TINY = ("--sft-steps", "0", "--prompts-per-step", "4", "--group-size", "4", "--width", "32")


@pytest.fixture
def rewards_file(tmp_path: Path) -> Path:
    path = tmp_path / "rewards.py"
    path.write_text(REWARDS)
    return path


def _run(cli, out: Path, *args: object):
    return cli("train", "--out", out, *args)


def _parts(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "rollouts").glob("*.parquet"))


def _log(run: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(run / "rollouts" / n) for n in _parts(run)])


def _final_state(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step-{step:06d}.pt", weights_only=True)


@pytest.mark.slow
def test_help_lists_every_option(cli) -> None:
    res = cli("train", "--help")
    assert res.code == 0
    for opt in (
        "--task",
        "--steps",
        "--prompts-per-step",
        "--group-size",
        "--scheme",
        "--weight",
        "--objective",
        "--reward",
        "--sft-steps",
        "--lr",
        "--clip",
        "--kl",
        "--temperature",
        "--layers",
        "--width",
        "--max-new-tokens",
        "--device",
        "--seed",
        "--out",
        "--checkpoint-every",
        "--resume",
        "--compare",
        "--seeds",
        "--sweep-weights",
    ):
        assert opt in res.out, opt


def test_cli_defaults_match_the_config_defaults() -> None:
    import inspect

    from dvao_cli.cli.commands.train import command
    from dvao_cli.train.config import TrainConfig

    defaults = TrainConfig()
    checked = 0
    for name, param in inspect.signature(command).parameters.items():
        if hasattr(defaults, name) and name not in ("objectives", "weights", "rewards"):
            value = getattr(param.default, "value", param.default)
            assert value == getattr(defaults, name), name
            checked += 1
    assert checked >= 20


@pytest.mark.slow
def test_a_short_run_learns(cli, tmp_path: Path) -> None:
    # budget task, optimise only the 2-character length budget: a warm-started model answers
    # 3-digit sums in 3 characters; RL learns to stay within the budget in a few steps
    out = tmp_path / "run"
    res = _run(
        cli,
        out,
        "--task",
        "budget",
        "--objective",
        "length",
        "--sft-steps",
        "150",
        "--sft-until",
        "1",
        "--steps",
        "12",
        "--lr",
        "1e-3",
        "--seed",
        "0",
    )
    assert res.code == 0, res.err
    m = pl.read_parquet(out / "metrics.parquet")
    length = m["rewards/length/mean"].to_list()
    assert sum(length[-3:]) / 3 >= length[0] + 0.3
    assert "length" in res.out and "last 10%" in res.out


@pytest.mark.slow
def test_outputs_follow_the_contract(cli, tmp_path: Path, rewards_file: Path) -> None:
    from dvao_cli.reader.memory import read_log

    out = tmp_path / "run"
    res = _run(
        cli,
        out,
        *TINY,
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--reward",
        f"{rewards_file}:chars",
        "--objective",
        "accuracy",
        "--objective",
        "chars",
        "--weight",
        "accuracy=0.7",
        "--weight",
        "chars=0.3",
    )
    assert res.code == 0, res.err
    config = json.loads((out / "config.json").read_text())
    assert config["objectives"] == ["accuracy", "chars"]
    assert config["weights"] == {"accuracy": 0.7, "chars": 0.3}
    assert (config["scheme"], config["ddof"], config["eps"], config["steps"]) == ("dvao", 0, 0.0, 4)
    assert config["rewards"] == [f"{rewards_file}:chars"]

    m = pl.read_parquet(out / "metrics.parquet")
    assert m.columns == [
        "step",
        "loss",
        "kl",
        "grad_norm",
        "lr",
        "rewards/accuracy/mean",
        "rewards/format/mean",
        "rewards/length/mean",
        "rewards/chars/mean",
        *(
            f"dvao/{metric}/{name}"
            for metric in ("weight", "within_std", "saturation", "all_pass", "all_fail")
            for name in ("accuracy", "chars")
        ),
        "time_s",
        "rollouts_per_s",
    ]
    assert m["step"].to_list() == [1, 2, 3, 4]
    # the same keys and values as the trainer integrations log for the same rows; chars
    # (len / 6) is not binary, so it has no all-pass / all-fail split
    assert m["dvao/all_pass/chars"].null_count() == 4
    for row, (_, rows) in zip(
        m.iter_rows(named=True), _log(out).group_by("step", maintain_order=True), strict=True
    ):
        rewards = rows.select("accuracy", "chars").to_torch(dtype=pl.Float64)
        stats = group_stats(rewards, rows["group_id"].to_torch(), [0.7, 0.3])
        want = objective_metrics(stats, ["accuracy", "chars"], rewards)
        assert {key: row[key] for key in want} == pytest.approx(want, abs=1e-15)
        assert 0 <= row["dvao/all_pass/accuracy"] + row["dvao/all_fail/accuracy"] <= 1
    assert m["lr"].to_list() == [5e-4] * 4

    assert _parts(out) == [f"step-{i:06d}.parquet" for i in range(1, 5)]
    log = _log(out)
    assert log.columns == [
        "step",
        "group_id",
        "sample_id",
        "prompt",
        "completion",
        "accuracy",
        "format",
        "length",
        "chars",
        "logged_advantage",
    ]
    assert log.height == 4 * 4 * 4
    assert log["group_id"].n_unique() == 16
    assert log.filter(pl.col("group_id") == 5)["sample_id"].to_list() == [0, 1, 2, 3]
    assert all(p.endswith("=") and len(p) == 6 for p in log["prompt"].to_list())
    data = read_log(out / "rollouts", objectives=["accuracy", "chars"])
    assert data.objectives == ["accuracy", "chars"]
    assert data.frame.height == 64

    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-000000.pt", "step-000002.pt", "step-000004.pt"]
    state = _final_state(out, 4)  # loads with weights_only=True: plain tensors and containers
    assert state["step"] == 4
    assert {"model", "ref", "optimizer", "sample_generator", "torch_rng", "python_rng"} <= set(
        state
    )


@pytest.mark.parametrize("scheme", ["dvao", "gdpo", "rc", "grpo"])
def test_analyze_reproduces_logged_advantage(
    cli, tmp_path: Path, rewards_file: Path, scheme: str
) -> None:
    from dvao_cli.analysis.pipeline import analyze

    out = tmp_path / "run"
    res = _run(
        cli,
        out,
        *TINY,
        "--steps",
        "3",
        "--scheme",
        scheme,
        "--reward",
        f"{rewards_file}:chars",
        "--reward",
        f"{rewards_file}:ones",
        "--objective",
        "chars",
        "--objective",
        "ones",
        "--weight",
        "chars=0.6",
        "--weight",
        "ones=0.4",
    )
    assert res.code == 0, res.err
    config = json.loads((out / "config.json").read_text())
    result = analyze(
        out / "rollouts",
        objectives=config["objectives"],
        weights=config["weights"],
        schemes=(scheme,),
        ddof=config["ddof"],
        eps=config["eps"],
        nan=config["nan"],
        device="cpu",
        out_dir=tmp_path / "an",
    )
    adv = pl.read_parquet(tmp_path / "an" / "advantages.parquet").sort("row")
    log = _log(out).with_row_index("row").with_columns(pl.col("row").cast(adv["row"].dtype))
    joined = log.join(adv.select("row", f"adv_{scheme}"), on="row")
    assert joined.height == log.height
    assert log["ones"].is_nan().sum() > 0  # None rewards made it into the log as NaN
    diff = (joined["logged_advantage"] - joined[f"adv_{scheme}"]).abs().max()
    assert diff == 0.0
    assert result.summary.best_matching_scheme == scheme


@pytest.mark.slow
def test_same_seed_same_rollouts(cli, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, "3"), (b, "3"), (c, "4")):
        assert _run(cli, out, *TINY, "--steps", "2", "--seed", seed).code == 0
    assert _log(a).equals(_log(b))
    assert not _log(a).equals(_log(c))


def _assert_same_run(a: Path, b: Path, step: int) -> None:
    sa, sb = _final_state(a, step), _final_state(b, step)
    assert sa["model"].keys() == sb["model"].keys()
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key
    assert torch.equal(sa["sample_generator"], sb["sample_generator"])
    assert _parts(a) == _parts(b)
    assert _log(a).equals(_log(b))
    drop = ["time_s", "rollouts_per_s"]
    assert (
        pl.read_parquet(a / "metrics.parquet")
        .drop(drop)
        .equals(pl.read_parquet(b / "metrics.parquet").drop(drop))
    )


@pytest.mark.slow
def test_resume_gives_the_same_final_weights(cli, tmp_path: Path, rewards_file: Path) -> None:
    args = (
        *TINY,
        "--checkpoint-every",
        "3",
        "--reward",
        f"{rewards_file}:chars",
        "--kl",
        "0.1",
        "--ppo-epochs",
        "2",
        "--seed",
        "5",
    )
    full, split = tmp_path / "full", tmp_path / "split"
    assert _run(cli, full, *args, "--steps", "6").code == 0
    assert _run(cli, split, *args, "--steps", "3").code == 0
    # a crash after step 5's rollouts were written, before its checkpoint: resume redoes them
    shutil.copy(
        split / "rollouts" / "step-000003.parquet", split / "rollouts" / "step-000005.parquet"
    )
    # a run's reward code is named again on resume (never imported from the run folder)
    res = cli("train", "--resume", split, "--steps", "6", "--reward", f"{rewards_file}:chars")
    assert res.code == 0, res.err
    assert "resuming" in res.err and "1 later rollout part files removed" in res.err
    _assert_same_run(full, split, 6)


@pytest.mark.slow
def test_resume_keeps_metrics_written_under_the_old_names(cli, tmp_path: Path) -> None:
    # a run begun before the metric keys were unified wrote `rewards/<name>/within_std` and no
    # saturation columns; resumed, its rows keep their within-group std under the new key
    full, split = tmp_path / "full", tmp_path / "split"
    assert _run(cli, full, *TINY, "--steps", "3").code == 0
    assert _run(cli, split, *TINY, "--steps", "2").code == 0
    names = ("accuracy", "format", "length")
    old = pl.read_parquet(split / "metrics.parquet").select(
        pl.exclude("^dvao/(within_std|saturation|all_pass|all_fail)/.*$"),
        *(pl.col(f"dvao/within_std/{n}").alias(f"rewards/{n}/within_std") for n in names),
    )
    old.write_parquet(split / "metrics.parquet")
    assert cli("train", "--resume", split, "--steps", "3").code == 0
    got, want = (pl.read_parquet(run / "metrics.parquet") for run in (split, full))
    assert got.columns == want.columns
    kept = [f"dvao/within_std/{n}" for n in names] + [f"dvao/weight/{n}" for n in names]
    assert got.select(kept).equals(want.select(kept))
    assert got["dvao/saturation/accuracy"].null_count() == 2  # not in the old rows
    drop = ["time_s", "rollouts_per_s"]
    assert got.drop(drop).tail(1).equals(want.drop(drop).tail(1))  # step 3


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(
    cli, tmp_path: Path, rewards_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = (
        *TINY,
        "--checkpoint-every",
        "10",
        "--reward",
        f"{rewards_file}:ones",
        "--seed",
        "2",
        "--steps",
        "5",
    )
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert _run(cli, full, *args).code == 0
    monkeypatch.setenv("DVAO_TEST_STOP_AT", "2")
    res = _run(cli, cut, *args)
    assert res.code == 130
    assert res.err.strip().splitlines()[-1] == (
        f"interrupted after step 2: checkpoint saved; resume with: dvao train --resume {cut}"
    )
    assert _parts(cut) == ["step-000001.parquet", "step-000002.parquet"]
    assert (cut / "checkpoints" / "step-000002.pt").is_file()
    monkeypatch.delenv("DVAO_TEST_STOP_AT")
    res = cli("train", "--resume", cut, "--reward", f"{rewards_file}:ones")
    assert res.code == 0, res.err
    _assert_same_run(full, cut, 5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "error: --reward 'nocolon' is not of the form module:function"),
        (
            "dvao_no_such_module_xyz:f",
            "error: --reward 'dvao_no_such_module_xyz:f': "
            "no module named 'dvao_no_such_module_xyz'",
        ),
        ("{file}:missing", "error: --reward '{file}:missing': module '{file}' has no 'missing'"),
        ("{file}:short", "error: --reward '{file}:short' returned 1 values for 16 completions"),
        ("{file}:boom", "error: --reward '{file}:boom' raised ValueError: bad"),
        ("{file}:text", "error: --reward '{file}:text' returned a non-number at index 0: 'x'"),
    ],
)
def test_bad_reward_is_a_clear_error(
    cli, tmp_path: Path, rewards_file: Path, spec: str, message: str
) -> None:
    spec = spec.format(file=rewards_file)
    res = _run(cli, tmp_path / "run", *TINY, "--steps", "1", "--reward", spec)
    assert res.code == 2
    assert res.err.strip().splitlines()[-1] == message.format(file=rewards_file)


@pytest.mark.slow
def test_option_errors(cli, tmp_path: Path) -> None:
    res = _run(cli, tmp_path / "a", *TINY, "--objective", "acuracy")
    assert (res.code, res.err.strip()) == (
        2,
        "error: --objective 'acuracy' is not a reward of this run (did you mean 'accuracy'?)",
    )
    res = _run(cli, tmp_path / "b", *TINY, "--task", "chess")
    assert res.code == 2 and "'chess' is not one of 'arithmetic', 'budget'" in res.err
    res = cli("train", "--resume", tmp_path / "nothing")
    assert res.code == 2 and "no config.json" in res.err
    run = tmp_path / "c"
    assert _run(cli, run, *TINY, "--steps", "2", "--checkpoint-every", "1").code == 0
    res = _run(cli, run, *TINY, "--steps", "1")
    assert res.code == 2 and "already holds a run" in res.err
    res = cli("train", "--resume", run, "--steps", "1")
    assert (res.code, res.err.strip()) == (
        2,
        f"error: --resume {run}: the run is at step 2; --steps 1 would go back "
        "(pass a larger --steps to continue)",
    )
    # --overwrite starts afresh: no checkpoint or part file of the old run survives
    assert _run(cli, run, *TINY, "--steps", "1", "--overwrite").code == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-000000.pt",
        "step-000001.pt",
    ]
    assert _parts(run) == ["step-000001.parquet"]


@pytest.mark.slow
def test_compare_writes_the_contract(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = _run(
        cli,
        out,
        *TINY,
        "--steps",
        "2",
        "--compare",
        "rc,dvao",
        "--seeds",
        "2",
        "--objective",
        "accuracy",
        "--objective",
        "format",
    )
    assert res.code == 0, res.err
    frame = pl.read_parquet(out / "compare.parquet")
    assert frame.schema == {
        "scheme": pl.Utf8,
        "seed": pl.Int64,
        "run": pl.Utf8,
        "w_accuracy": pl.Float64,
        "w_format": pl.Float64,
        "final_accuracy": pl.Float64,
        "final_format": pl.Float64,
        "wall_s": pl.Float64,
    }
    assert frame["run"].to_list() == ["rc-s0", "rc-s1", "dvao-s0", "dvao-s1"]
    assert frame["seed"].to_list() == [0, 1, 0, 1]
    assert frame["w_accuracy"].to_list() == [0.5] * 4
    for run in frame["run"]:
        assert (out / run / "metrics.parquet").is_file()
        assert json.loads((out / run / "config.json").read_text())["scheme"] == run.split("-")[0]
    config = json.loads((out / "config.json").read_text())
    assert config["compare"] is True
    assert (config["objectives"], config["schemes"], config["seeds"], config["sweep_weights"]) == (
        ["accuracy", "format"],
        ["rc", "dvao"],
        [0, 1],
        None,
    )
    assert "dvao" in res.out and "wall s" in res.out
    # the same seed gives the same warm start and first rollouts under every scheme
    first = [
        pl.read_parquet(out / r / "rollouts" / "step-000001.parquet").drop("logged_advantage")
        for r in ("rc-s0", "dvao-s0")
    ]
    assert first[0].equals(first[1])


def test_sweep_weights(cli, tmp_path: Path) -> None:
    res = _run(
        cli,
        tmp_path / "bad",
        *TINY,
        "--steps",
        "1",
        "--compare",
        "dvao",
        "--sweep-weights",
        "0.3,0.7",
    )
    assert res.code == 2
    assert res.err.strip() == (
        "error: --sweep-weights needs exactly 2 objectives; this run has 3 (accuracy, format, "
        "length): pick two with --objective"
    )
    out = tmp_path / "sweep"
    res = _run(
        cli,
        out,
        *TINY,
        "--task",
        "budget",
        "--steps",
        "1",
        "--compare",
        "dvao,ac",
        "--sweep-weights",
        "0.3,0.7",
        "--seeds",  # --compare defaults to 5 seeds
        "1",
    )
    assert res.code == 0, res.err
    frame = pl.read_parquet(out / "compare.parquet")
    assert frame["run"].to_list() == ["dvao-w0.3-s0", "dvao-w0.7-s0", "ac-w0.3-s0", "ac-w0.7-s0"]
    assert frame["w_accuracy"].to_list() == [0.3, 0.7, 0.3, 0.7]
    assert frame["w_length"].to_list() == [0.7, 0.3, 0.7, 0.3]
    assert json.loads((out / "config.json").read_text())["sweep_weights"] == [0.3, 0.7]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run(cli, tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    res = _run(cli, out, *TINY, "--steps", "3", "--device", "cuda")
    assert res.code == 0, res.err
    assert _parts(out) == [f"step-{i:06d}.parquet" for i in range(1, 4)]


def test_kv_cache_matches_the_full_forward() -> None:
    from dvao_cli.train.model import PolicyConfig, build_policy, sample
    from dvao_cli.train.vocab import EOS, PAD, encode

    model = build_policy(PolicyConfig(layers=2, width=32), torch.Generator().manual_seed(0))
    prompts = torch.tensor([encode("12+34="), encode("99+10=")])
    extra = torch.tensor([[3, 7], [1, 0]])
    logits, cache = model(prompts)
    for t in range(extra.shape[1]):
        logits, cache = model(extra[:, t : t + 1], cache)
    full, _ = model(torch.cat([prompts, extra], dim=1))
    torch.testing.assert_close(logits[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
    # completions: tokens up to the end token, then padding only
    out = sample(model, prompts.repeat(8, 1), 6, 1.0, torch.Generator().manual_seed(1))
    for row in out.tolist():
        if EOS in row:
            assert all(tok == PAD for tok in row[row.index(EOS) + 1 :])
        assert PAD not in row[:1]

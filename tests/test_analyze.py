"""`dvao analyze`: exact values on a hand-built log, files, gate, --json, atomic writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from dvao_cli.analysis.pipeline import analyze

S2 = math.sqrt(2.0)  # 1.41421356...
S3 = math.sqrt(3.0)  # 1.73205081...
F_STD = math.sqrt(0.75 * 0.25)  # 0.4330127: population std of [1, 1, 0, 1]

# Three groups of four. Step 0 group 0: format saturated all-pass; step 0 group 1: both vary,
# uncorrelated; step 1 group 0: accuracy saturated all-fail.
ACCURACY = [1, 0, 1, 0] + [1, 1, 0, 0] + [0, 0, 0, 0]
FORMAT = [1, 1, 1, 1] + [1, 0, 1, 0] + [1, 1, 0, 1]

# Hand-computed advantages, equal weights 1/2, population std, eps 0.
C = 1 / S3  # 0.57735: (0.5 - 0.375) / 0.2165
EXPECTED = {
    "grpo": [1, -1, 1, -1] + [1, 1, -1, -1] + [0, 0, 0, 0],
    "rc": [1, -1, 1, -1] + [S2, 0, 0, -S2] + [C, C, -S3, C],
    "ac": [0.5, -0.5, 0.5, -0.5] + [1, 0, 0, -1] + [C / 2, C / 2, -S3 / 2, C / 2],
    # step 0's AC values have mean 0 and std sqrt(0.375); step 1's have std 0.5
    "gdpo": [x / math.sqrt(0.375) for x in [0.5, -0.5, 0.5, -0.5, 1, 0, 0, -1]] + [C, C, -S3, C],
    "dvao": [1, -1, 1, -1] + [1, 0, 0, -1] + [C, C, -S3, C],
}
DVAO_WEIGHTS = {
    "accuracy": [1.0] * 4 + [0.5] * 4 + [0.0] * 4,
    "format": [0.0] * 4 + [0.5] * 4 + [1.0] * 4,
}


def hand_log(tmp_path: Path, logged: list[float] | None = None) -> Path:
    frame = pl.DataFrame(
        {
            "step": [0] * 8 + [1] * 4,
            "group_id": [0] * 4 + [1] * 4 + [0] * 4,
            "sample_id": list(range(4)) * 3,
            "prompt": ["2+2="] * 12,
            "completion": ["4"] * 12,
            "accuracy": [float(x) for x in ACCURACY],
            "format": [float(x) for x in FORMAT],
        }
    )
    if logged is not None:
        frame = frame.with_columns(pl.Series("logged_advantage", [float(x) for x in logged]))
    path = tmp_path / "hand.parquet"
    frame.write_parquet(path)
    return path


def test_advantages_file_holds_the_hand_computed_values(tmp_path: Path) -> None:
    out = tmp_path / "out"
    analyze(hand_log(tmp_path), out_dir=out)
    adv = pl.read_parquet(out / "advantages.parquet")
    assert adv.columns == [
        "row",
        "step",
        "group_id",
        "adv_grpo",
        "adv_rc",
        "adv_ac",
        "adv_gdpo",
        "adv_dvao",
        "w_accuracy",
        "w_format",
    ]
    assert adv["row"].to_list() == list(range(12))
    for scheme, expected in EXPECTED.items():
        assert adv[f"adv_{scheme}"].to_list() == pytest.approx(expected, abs=1e-12), scheme
    for name, expected in DVAO_WEIGHTS.items():
        assert adv[f"w_{name}"].to_list() == pytest.approx(expected, abs=1e-12)


def test_summary_holds_the_hand_computed_values(tmp_path: Path) -> None:
    summary = analyze(hand_log(tmp_path)).summary.to_json()
    assert (summary["rows"], summary["steps"], summary["groups"], summary["skipped_groups"]) == (
        12,
        2,
        3,
        0,
    )
    acc, fmt = summary["objectives"]["accuracy"], summary["objectives"]["format"]
    assert acc["mean"] == pytest.approx(1 / 3)
    assert acc["within_group_std"] == pytest.approx(1 / 3)
    assert (acc["saturation"], acc["saturation_pass"], acc["saturation_fail"]) == pytest.approx(
        (1 / 3, 0.0, 1 / 3)
    )
    assert acc["dvao_weight"] == pytest.approx(0.5)
    assert fmt["mean"] == pytest.approx(0.75)
    assert fmt["within_group_std"] == pytest.approx((0 + 0.5 + F_STD) / 3)
    assert (fmt["saturation"], fmt["saturation_pass"], fmt["saturation_fail"]) == pytest.approx(
        (1 / 3, 1 / 3, 0.0)
    )
    assert fmt["dvao_weight"] == pytest.approx(0.5)
    assert fmt["binary"] is True
    schemes = summary["schemes"]
    expected_ms = {"grpo": 8 / 12, "rc": 1.0, "ac": 4 / 12, "gdpo": 1.0, "dvao": 10 / 12}
    for name, ms in expected_ms.items():
        assert schemes[name]["mean_square"] == pytest.approx(ms), name
    assert schemes["rc"]["max_abs"] == pytest.approx(S3)
    assert schemes["grpo"]["zero_share"] == pytest.approx(4 / 12)
    assert schemes["rc"]["zero_share"] == pytest.approx(2 / 12)
    # distinct advantages / distinct reward vectors, summed over groups: rc 7/8, grpo 5/8
    assert schemes["rc"]["resolution"] == pytest.approx(7 / 8)
    assert schemes["grpo"]["resolution"] == pytest.approx(5 / 8)
    # only step 0 group 1 has both objectives varying, and there they are uncorrelated
    assert summary["correlation"]["accuracy"]["format"] == pytest.approx(0.0)
    assert summary["correlation_groups"]["accuracy"]["format"] == 1
    assert summary["weights"] == {"accuracy": 0.5, "format": 0.5}


def test_steps_and_schemes_tables(tmp_path: Path) -> None:
    result = analyze(hand_log(tmp_path))
    steps = result.steps
    assert steps.columns == [
        "step",
        "objective",
        "mean",
        "within_group_std",
        "saturation",
        "saturation_pass",
        "saturation_fail",
        "dvao_weight",
        "groups",
        "no_signal_share",
    ]
    assert steps["objective"].to_list() == ["accuracy", "format"] * 2
    assert steps["mean"].to_list() == pytest.approx([0.5, 0.75, 0.0, 0.75])
    assert steps["within_group_std"].to_list() == pytest.approx([0.5, 0.25, 0.0, F_STD])
    assert steps["saturation"].to_list() == pytest.approx([0.0, 0.5, 1.0, 0.0])
    assert steps["saturation_pass"].to_list() == pytest.approx([0.0, 0.5, 0.0, 0.0])
    assert steps["saturation_fail"].to_list() == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert steps["dvao_weight"].to_list() == pytest.approx([0.75, 0.25, 0.0, 1.0])
    assert steps["groups"].to_list() == [2, 2, 1, 1]
    schemes = result.schemes
    assert schemes.columns[:4] == ["step", "scheme", "mean_square", "max_abs"]
    rc = schemes.filter(pl.col("scheme") == "rc")
    assert rc["mean_square"].to_list() == pytest.approx([1.0, 1.0])
    assert rc["max_abs"].to_list() == pytest.approx([S2, S3])


def test_out_dir_files_and_schemas(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("analyze", hand_log(tmp_path), "--out", out)
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == [
        "advantages.parquet",
        "schemes.parquet",
        "steps.parquet",
        "summary.json",
    ]
    steps = pl.read_parquet(out / "steps.parquet")
    assert steps.schema["step"] == pl.Int64 and steps.schema["objective"] == pl.String
    schemes = pl.read_parquet(out / "schemes.parquet")
    assert schemes.height == 2 * 5
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "rows",
        "steps",
        "groups",
        "skipped_groups",
        "objectives",
        "schemes",
        "correlation",
    ):
        assert key in summary
    for name in ("accuracy", "format"):
        assert set(summary["objectives"][name]) >= {
            "mean",
            "within_group_std",
            "saturation",
            "dvao_weight",
        }
    for name in ("grpo", "rc", "ac", "gdpo", "dvao"):
        assert set(summary["schemes"][name]) >= {"mean_square", "max_abs"}
    assert f"wrote {out / 'summary.json'}" in result.err


def test_json_prints_summary_only(cli, tmp_path: Path) -> None:
    result = cli("analyze", hand_log(tmp_path), "--json")
    assert result.code == 0
    summary = json.loads(result.out)
    assert summary["rows"] == 12
    assert summary["objectives"]["format"]["saturation"] == pytest.approx(1 / 3)


def test_report_lines(cli, tmp_path: Path) -> None:
    result = cli("analyze", hand_log(tmp_path))
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == (
        f"{tmp_path / 'hand.parquet'}: 12 responses, 2 steps, 3 groups, 2 objectives "
        "(ddof 0, eps 0, nan error)"
    )
    assert any(line.split()[:2] == ["accuracy", "0.333"] for line in lines)
    assert "Reading" in lines
    assert (
        "- DVAO's advantages are 83% of RC's in mean square (0.833 vs 1.000): never larger for "
        "any response, as the bound |A_DVAO| <= |A_RC| says."
    ) in lines


def test_scheme_and_weight_options(tmp_path: Path) -> None:
    result = analyze(hand_log(tmp_path), schemes=["dvao"], weights={"accuracy": 1.0, "format": 3.0})
    assert list(result.summary.schemes) == ["dvao"]
    assert result.summary.weights == {"accuracy": 1.0, "format": 3.0}
    # group B: w~ = w sigma / sum w sigma = (0.5, 1.5) / 2
    steps = result.steps.filter(pl.col("step") == 0)
    assert steps["dvao_weight"].to_list() == pytest.approx([(1 + 0.25) / 2, (0 + 0.75) / 2])


def test_logged_advantage_identifies_the_scheme(tmp_path: Path) -> None:
    summary = analyze(hand_log(tmp_path, logged=EXPECTED["rc"])).summary.to_json()
    assert summary["best_matching_scheme"] == "rc"
    assert summary["schemes"]["rc"]["logged_max_diff"] == pytest.approx(0.0, abs=1e-12)
    assert summary["schemes"]["rc"]["logged_corr"] == pytest.approx(1.0)
    assert summary["schemes"]["grpo"]["logged_max_diff"] > 0.5


def test_gate_trips_with_exit_3(cli, tmp_path: Path) -> None:
    log = hand_log(tmp_path)
    result = cli(
        "analyze",
        log,
        "--fail-on",
        "saturation[format]>0.3",
        "--fail-on",
        "dvao_weight[accuracy]<0.2",
    )
    assert result.code == 3
    assert result.err.splitlines() == [
        "gate tripped: saturation[format] = 0.333333 > 0.3",
        "error: 1 --fail-on condition tripped",
    ]


def test_gate_passes_with_exit_0(cli, tmp_path: Path) -> None:
    result = cli("analyze", hand_log(tmp_path), "--fail-on", "saturation[format]>0.5", "--json")
    assert result.code == 0
    assert json.loads(result.out)["gate"] == {
        "conditions": ["saturation[format]>0.5"],
        "tripped": [],
    }


@pytest.mark.parametrize(
    "expr",
    ["saturation format > 0.9", "saturation[format]>>0.9", "saturation[format]>high", "[format]>1"],
)
def test_malformed_gate_is_a_usage_error(cli, tmp_path: Path, expr: str) -> None:
    result = cli("analyze", hand_log(tmp_path), "--fail-on", expr)
    assert result.code == 2
    line = result.err.strip()
    assert "\n" not in line
    assert line.startswith(f"error: --fail-on '{expr}' is not of the form METRIC[NAME]OP NUMBER")


def test_gate_with_unknown_objective(cli, tmp_path: Path) -> None:
    result = cli("analyze", hand_log(tmp_path), "--fail-on", "saturation[fromat]>0.9")
    assert result.code == 2
    assert result.err.strip() == (
        "error: --fail-on 'saturation[fromat]>0.9': 'fromat' is not an objective "
        "(did you mean 'format'?)"
    )


def test_bad_weight_spec(cli, tmp_path: Path) -> None:
    result = cli("analyze", hand_log(tmp_path), "--weight", "accuracy:0.5")
    assert result.code == 2
    assert result.err.strip() == (
        "error: --weight 'accuracy:0.5' is not of the form NAME=W (e.g. accuracy=0.7)"
    )


def test_failure_mid_run_leaves_no_output(tmp_path: Path, monkeypatch) -> None:
    log = hand_log(tmp_path)
    out = tmp_path / "out"
    import dvao_cli.analysis.pipeline as mod

    def boom(*args, **kwargs):
        # every chunk is streamed and advantages.parquet is written by now, in the set's
        # hidden staging folder beside out (io.output_set)
        staged = [p for p in tmp_path.iterdir() if p.name.startswith(".out.dvao-")]
        assert [p.name for p in staged[0].iterdir() if p.name == "advantages.parquet"]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mod, "_finish", boom)
    before = log.read_bytes()
    with pytest.raises(RuntimeError, match="disk on fire"):
        analyze(log, out_dir=out, chunk_rows=4)
    assert list(out.iterdir()) == []  # no output and no temp file left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert log.read_bytes() == before


def test_same_result_whatever_the_chunk_size(tmp_path: Path) -> None:
    log = hand_log(tmp_path)
    whole = analyze(log).summary.to_json()
    chunked = analyze(log, chunk_rows=4).summary.to_json()
    assert json.dumps(whole["schemes"], sort_keys=True) == json.dumps(
        chunked["schemes"], sort_keys=True
    )
    assert whole["objectives"] == chunked["objectives"]


def test_size_one_groups_are_counted(cli, tmp_path: Path) -> None:
    frame = pl.read_parquet(hand_log(tmp_path))
    extra = pl.DataFrame(
        {
            "step": [1],
            "group_id": [7],
            "sample_id": [0],
            "prompt": ["x"],
            "completion": ["y"],
            "accuracy": [1.0],
            "format": [1.0],
        }
    )
    path = tmp_path / "ones.parquet"
    pl.concat([frame, extra]).write_parquet(path)
    result = cli("analyze", path, "--json")
    assert result.code == 0
    assert json.loads(result.out)["skipped_groups"] == 1
    assert result.err.strip() == (
        f"warning: {path}: column 'group_id': skipped 1 group of size 1 (no within-group variance)"
    )


def test_ragged_groups_give_the_same_diagnostics_as_a_loop(tmp_path: Path) -> None:
    """Groups of different sizes (the segment path) against plain per-group arithmetic."""
    import numpy as np

    rng = np.random.default_rng(3)
    sizes = [3, 5, 2, 4, 6, 3]
    steps = [0, 0, 0, 1, 1, 2]
    rows = []
    for g, (size, step) in enumerate(zip(sizes, steps, strict=True)):
        acc = rng.integers(0, 2, size).astype(float)
        score = rng.random(size).round(2)
        rows += [(step, g, a, b) for a, b in zip(acc, score, strict=True)]
    frame = pl.DataFrame(rows, schema=["step", "group_id", "accuracy", "score"], orient="row")
    path = tmp_path / "ragged.parquet"
    frame.write_parquet(path)
    summary = analyze(path).summary.to_json()
    groups = frame.group_by("group_id", maintain_order=True).agg(
        pl.col("accuracy").std(ddof=0).alias("sa"),
        pl.col("score").std(ddof=0).alias("ss"),
        pl.len().alias("n"),
    )
    sa, ss = groups["sa"].to_list(), groups["ss"].to_list()
    assert summary["objectives"]["accuracy"]["within_group_std"] == pytest.approx(sum(sa) / 6)
    assert summary["objectives"]["score"]["within_group_std"] == pytest.approx(sum(ss) / 6)
    assert summary["objectives"]["accuracy"]["saturation"] == pytest.approx(
        sum(1 for x in sa if x == 0) / 6
    )
    # with a continuous objective every distinct score is a distinct reward vector and RC,
    # AC, DVAO tell all of them apart
    distinct = sum(
        frame.filter(pl.col("group_id") == g)
        .select(pl.struct("accuracy", "score").n_unique())
        .item()
        for g in range(6)
    )
    assert summary["schemes"]["rc"]["distinct_rewards_per_group"] == pytest.approx(distinct / 6)
    assert summary["schemes"]["rc"]["resolution"] == pytest.approx(1.0)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_numbers(tmp_path: Path) -> None:
    # a continuous objective sends every chunk through the engine, here on the GPU
    log = tmp_path / "continuous.parquet"
    pl.read_parquet(hand_log(tmp_path)).with_columns(
        (pl.col("format") * 0.7 + pl.col("accuracy") * 0.1 + pl.int_range(pl.len()) * 0.01).alias(
            "format"
        )
    ).write_parquet(log)
    cpu = analyze(log, device="cpu").summary.to_json()
    gpu = analyze(log, device="cuda").summary.to_json()
    assert gpu["settings"]["device"].startswith("cuda")
    for name in cpu["schemes"]:
        for key in ("mean_square", "max_abs", "zero_share", "resolution"):
            assert gpu["schemes"][name][key] == pytest.approx(cpu["schemes"][name][key], rel=1e-6)
    for name in cpu["objectives"]:
        for key in ("mean", "within_group_std", "saturation", "dvao_weight"):
            assert gpu["objectives"][name][key] == pytest.approx(
                cpu["objectives"][name][key], rel=1e-6
            )
    # binary rewards: the sums come from the pattern counts, the written advantages from the GPU
    analyze(hand_log(tmp_path), device="cuda", out_dir=tmp_path / "out")
    adv = pl.read_parquet(tmp_path / "out" / "advantages.parquet")
    for name, expected in EXPECTED.items():
        assert adv[f"adv_{name}"].to_list() == pytest.approx(expected, abs=1e-6)


def _continuous_log(
    tmp_path: Path, steps: int = 12, nan_at: int | None = None, repeat_at: int | None = None
) -> Path:
    """steps x 3 groups x 4: a binary and a continuous objective, 2 steps per row group;
    `repeat_at` (not a group's first row) repeats the sample_id of the row before it."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = steps * 12
    rm = rng.normal(size=n)
    if nan_at is not None:
        rm[nan_at] = float("nan")
    sample = np.tile(np.arange(4), steps * 3)
    if repeat_at is not None:
        sample[repeat_at] = sample[repeat_at - 1]
    frame = pl.DataFrame(
        {
            "step": np.repeat(np.arange(steps), 12),
            "group_id": np.tile(np.repeat(np.arange(3), 4), steps),
            "sample_id": sample,
            "accuracy": (rng.random(n) < 0.5).astype(float),
            "rm_score": rm,
        }
    )
    path = tmp_path / "log.parquet"
    frame.write_parquet(path, row_group_size=24)
    return path


@pytest.mark.slow
def test_worker_processes_give_the_same_numbers_bit_for_bit(tmp_path: Path, in_processes) -> None:
    log = _continuous_log(tmp_path)
    alone = analyze(log, chunk_rows=24).summary.to_json()
    assert in_processes == []
    ticks: list[tuple[int, int]] = []
    shared = analyze(
        log, chunk_rows=24, workers=2, processes=True, on_progress=lambda *a: ticks.append(a)
    ).summary.to_json()
    assert in_processes == [6]  # six ranges of two steps, shared by this process and one worker
    assert json.dumps(shared, sort_keys=True) == json.dumps(alone, sort_keys=True)
    assert ticks[-1] == (144, 144) and len(ticks) == 6


@pytest.mark.slow
def test_worker_processes_take_the_backend_asked_for(tmp_path: Path, in_processes) -> None:
    """The backend goes with the settings to every worker; each range's is counted."""
    log = _continuous_log(tmp_path)
    alone = analyze(log, chunk_rows=24, backend="rows")
    shared = analyze(log, chunk_rows=24, workers=2, processes=True, backend="rows")
    assert in_processes == [6]
    assert alone.backends == shared.backends == {"rows": 6}
    assert json.dumps(shared.summary.to_json(), sort_keys=True) == json.dumps(
        alone.summary.to_json(), sort_keys=True
    )


@pytest.mark.slow
def test_an_error_in_a_worker_process_is_one_line(
    cli, tmp_path: Path, monkeypatch, in_processes
) -> None:
    monkeypatch.setenv("DVAO_WORKERS", "2")
    log = _continuous_log(tmp_path, steps=200, nan_at=1500)  # in the second range of three
    result = cli("analyze", log, "--chunk-rows", "1000", "--json")
    assert in_processes == [3]
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert "rm_score" in lines[0] and "NaN" in lines[0], lines[0]


@pytest.mark.slow
def test_with_worker_processes_the_first_bad_range_in_the_log_is_the_error(
    cli, tmp_path: Path, monkeypatch, in_processes
) -> None:
    """This process computes ranges from the back, the worker from the front: a repeated
    response in the last range (found first) waits for its turn, and the NaN in the first
    range is the error, as in one process."""
    log = _continuous_log(tmp_path, steps=200, nan_at=100, repeat_at=2301)
    monkeypatch.setenv("DVAO_WORKERS", "1")
    alone = cli("analyze", log, "--chunk-rows", "1000", "--json")
    monkeypatch.setenv("DVAO_WORKERS", "2")
    result = cli("analyze", log, "--chunk-rows", "1000", "--json")
    assert in_processes == [3]
    assert result.code == alone.code == 2, result.err
    assert result.err == alone.err
    assert "rm_score" in result.err and "NaN" in result.err, result.err


@pytest.mark.slow
def test_a_worker_process_that_dies_is_an_error_not_a_wait() -> None:
    import os

    from dvao_cli.analysis.workers import WorkerDied, WorkerPool

    with WorkerPool(2) as pool:
        task = pool.submit(os._exit, 9)  # as the kernel's OOM killer would end it
        with pytest.raises(WorkerDied, match="ended abruptly"):
            task.get()
        assert WorkerDied("x").exit_code == 2


@pytest.mark.slow
def test_worker_processes_end_when_their_parent_is_killed() -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from dvao_cli.analysis.workers import WorkerPool\n"
        "if __name__ == '__main__':\n"
        "    pool = WorkerPool(2)\n"
        "    print(pool.submit(os.getpid).get(), flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)  # no clean-up runs in the parent
    parent.wait()
    for _ in range(50):
        try:
            with open(f"/proc/{worker}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":  # ended, not yet reaped
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its parent by 5 s")


def test_sums_only_and_per_response_runs_give_the_same_summary(tmp_path: Path) -> None:
    """Without --out GDPO's figures come from AC's advantages times its step factor
    (`diagnostics.step_scaled_sums`); with --out they are computed over its rows: the same
    summary, bit for bit."""
    log = _continuous_log(tmp_path, steps=24)
    sums_only = analyze(log, chunk_rows=48).summary.to_json()
    per_response = analyze(log, chunk_rows=48, out_dir=tmp_path / "out").summary.to_json()
    assert json.dumps(sums_only, sort_keys=True) == json.dumps(per_response, sort_keys=True)

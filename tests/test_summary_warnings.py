"""Warnings where DVAO's numbers mislead (summary.json's `warnings`, the Reading), ties between
schemes (`matching_schemes`) and the one DVAO weight (table, figure and summary agree)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.analysis import warnings as doubts
from dvao_cli.analysis.pipeline import analyze
from dvao_cli.plot import figures as plots
from dvao_cli.reader import combined
from dvao_cli.reader.opening import open_log

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "rollouts.parquet"


def codes(summary: dict) -> list[tuple[str, str | None]]:
    return [(w["code"], w["objective"]) for w in summary["warnings"]]


def dvao_log(tmp_path: Path, columns: dict[str, list[float]], size: int = 8) -> Path:
    """A dvao log of len(rows) / size groups of `size`, two steps, the given objectives."""
    n = len(next(iter(columns.values())))
    groups = n // size
    frame = pl.DataFrame(
        {
            "step": [g * 2 // groups for g in range(groups) for _ in range(size)],
            "group_id": [g for g in range(groups) for _ in range(size)],
            **{name: [float(v) for v in values] for name, values in columns.items()},
        }
    )
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    return path


def rewards(seed: int, n: int = 96) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "acc": (rng.random(n) < 0.5).astype(float),
        "format": (rng.random(n) < 0.9).astype(float),
        "len": np.round(rng.random(n), 3),
    }


def verl_dump(folder: Path, with_score: bool = True) -> Path:
    """A verl rollout_data_dir: two steps of 6 prompts x 8 responses, `score` the mean of the
    three reward keys (as verl's reward functions often return it)."""
    folder.mkdir()
    r = rewards(0)
    for step in (1, 2):
        lines = []
        for i in range(48):
            j = (step - 1) * 48 + i
            record = {"input": f"prompt {i // 8}", "output": "x", "step": step}
            if with_score:
                record["score"] = (r["acc"][j] + r["format"][j] + r["len"][j]) / 3
            record |= {name: float(values[j]) for name, values in r.items()}
            lines.append(json.dumps(record))
        (folder / f"{step}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


# --------------------------------------------------------------------------------------------
# combined_score


SCORE_MESSAGE = (
    "score equals the mean of acc, format and len on every row (to 1e-6 relative): a combined "
    "score, not an objective of its own. "
)


def test_verl_score_is_left_out_by_default(cli, tmp_path: Path) -> None:
    dump = verl_dump(tmp_path / "dump")
    result = cli("analyze", dump, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["objective_order"] == ["acc", "format", "len"]
    assert summary["warnings"][0] == {
        "code": "combined_score",
        "objective": "score",
        "message": SCORE_MESSAGE
        + "It is left out of the objectives; name it with --objective to keep it.",
    }
    text = cli("analyze", dump).out.splitlines()
    assert text[0].endswith(
        "3 objectives (ddof 0, eps 0, nan error); score left out: a combined score"
    )
    assert "- warning (combined_score): " + summary["warnings"][0]["message"] in text
    # the same numbers as the dump without its score column
    plain = json.loads(cli("analyze", verl_dump(tmp_path / "plain", False), "--json").out)
    assert plain["warnings"] == [w for w in summary["warnings"] if w["code"] != "combined_score"]
    assert plain["objectives"] == summary["objectives"]


def test_verl_score_named_is_kept_with_the_warning(cli, tmp_path: Path) -> None:
    dump = verl_dump(tmp_path / "dump")
    summary = json.loads(cli("analyze", dump, "-O", "score", "--json").out)
    assert summary["objective_order"] == ["score"]
    assert summary["warnings"][0] == {
        "code": "combined_score",
        "objective": "score",
        "message": SCORE_MESSAGE
        + "It is kept because --objective names it (beside its parts, DVAO counts them twice).",
    }
    summary = json.loads(cli("analyze", dump, "-O", "acc", "-O", "score", "--json").out)
    assert summary["objective_order"] == ["acc", "score"]
    assert codes(summary)[0] == ("combined_score", "score")
    # its parts named without it: nothing to say
    summary = json.loads(cli("analyze", dump, "-O", "acc", "-O", "len", "--json").out)
    assert "combined_score" not in [code for code, _ in codes(summary)]


def test_dvao_import_says_so_when_it_writes_a_combined_score(cli, tmp_path: Path) -> None:
    """The imported log keeps score (a column is never dropped), and the import says what
    `dvao analyze` will do with it, in the table and in --json."""
    dump = verl_dump(tmp_path / "dump")
    result = cli("import", "verl", dump, "-o", tmp_path / "log.parquet", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["objectives"] == ["score", "acc", "format", "len"]  # as the dump has them
    assert report["warnings"] == [
        {
            "code": "combined_score",
            "objective": "score",
            "message": SCORE_MESSAGE
            + "dvao analyze leaves it out of the objectives; name it with --objective to keep it.",
        }
    ]
    table = cli("import", "verl", dump, "-o", tmp_path / "again.parquet")
    assert table.code == 0 and "combined_score: score equals the mean of acc" in table.out
    plain = cli(
        "import", "verl", verl_dump(tmp_path / "plain", False), "-o", tmp_path / "p.parquet"
    )
    assert plain.code == 0 and "combined_score" not in plain.out


def test_a_total_in_a_dvao_log_with_an_offset_and_weights(tmp_path: Path) -> None:
    r = rewards(1)
    total = r["acc"] + 0.5 * r["len"] - 2.0
    spec = open_log(dvao_log(tmp_path, {**r, "total": total}))
    assert spec.objectives == ["acc", "format", "len"]
    assert [(w.code, w.objective) for w in spec.warnings] == [("combined_score", "total")]
    assert spec.warnings[0].message.startswith("total equals acc + 0.5 x len - 2 on every row")
    # the relation alone cannot tell a copy from its original: the name says which is a total
    spec = open_log(dvao_log(tmp_path, {"score": r["acc"], "acc": r["acc"], "len": r["len"]}))
    assert spec.objectives == ["acc", "len"]
    assert spec.warnings[0].message.startswith("score equals a copy of acc on every row")
    # two copies, neither named like a total: the later one is left out
    spec = open_log(dvao_log(tmp_path, {"acc": r["acc"], "len": r["len"], "acc2": r["acc"]}))
    assert spec.objectives == ["acc", "len"]
    assert spec.warnings[0].message.startswith("acc2 equals a copy of acc on every row")


def test_correlated_constant_and_nearly_combined_rewards_are_not_combined(tmp_path: Path) -> None:
    r = rewards(2)
    rng = np.random.default_rng(3)
    near = (r["acc"] + r["len"]) / 2 + rng.normal(0, 0.01, 96)  # correlation 0.99, not exact
    spec = open_log(dvao_log(tmp_path, {**r, "near": near, "const": np.ones(96)}))
    assert spec.objectives == ["acc", "format", "len", "near", "const"]
    assert spec.warnings == []
    # exact on every row but one, off by 5e-4: the sums make it a candidate (its residual
    # sum of squares is within the slack); the row-by-row check refuses it
    off = (r["acc"] + r["len"]) / 2
    off[40] += 5e-4
    columns = ["acc", "len", "off"]
    spec = open_log(dvao_log(tmp_path, {"acc": r["acc"], "len": r["len"], "off": off}))
    assert spec.objectives == columns and spec.warnings == []


def test_detection_is_the_same_in_any_block_size(tmp_path: Path, monkeypatch) -> None:
    r = rewards(4, n=800)
    log = dvao_log(tmp_path, {**r, "score": (r["acc"] + r["format"] + r["len"]) / 3})
    whole = open_log(log)
    for rows in (1, 7, 100):
        monkeypatch.setattr(combined, "BLOCK_ROWS", rows)
        assert open_log(log) == whole
    assert whole.objectives == ["acc", "format", "len"]
    # the decision travels with the spec to a worker process
    assert pickle.loads(pickle.dumps(whole)) == whole


def test_worker_processes_leave_the_combined_score_out_too(tmp_path: Path, in_processes) -> None:
    r = rewards(11, n=192)
    frame = pl.read_parquet(dvao_log(tmp_path, {**r, "score": (r["acc"] + r["len"]) / 2}))
    steps = [i // 16 for i in range(192)]  # 12 steps of two groups of 8
    log = tmp_path / "steps.parquet"
    frame.with_columns(step=pl.Series(steps)).write_parquet(log, row_group_size=16)
    alone = analyze(log, chunk_rows=32).summary
    shared = analyze(log, chunk_rows=32, workers=2, processes=True).summary
    assert in_processes == [6]
    assert shared == alone
    assert shared.objective_order == ("acc", "format", "len")
    assert [(w.code, w.objective) for w in shared.warnings] == [("combined_score", "score")]


def test_the_first_rows_stop_the_search_only_when_they_rule_every_score_out(
    tmp_path: Path, monkeypatch
) -> None:
    r = rewards(5, n=800)
    read: list[int] = []
    blocks = combined._blocks

    def counted(spec, columns):
        for block in blocks(spec, columns):
            read.append(block.shape[1])
            yield block

    monkeypatch.setattr(combined, "_blocks", counted)
    monkeypatch.setattr(combined, "BLOCK_ROWS", 100)
    open_log(dvao_log(tmp_path, r))  # no relation: the first block says so
    assert read == [100]
    read.clear()
    # a column the footers say is constant over the log is no candidate: the same stop
    open_log(dvao_log(tmp_path, {**r, "const": np.ones(800)}))
    assert read == [100]
    read.clear()
    score = (r["acc"] + r["format"] + r["len"]) / 3
    assert open_log(dvao_log(tmp_path, {**r, "score": score})).objectives == list(r)
    assert sum(read) == 2 * 800  # every row, twice: the sums, then the check


def test_overflowing_rewards_are_left_to_the_analysis(tmp_path: Path) -> None:
    r = rewards(6)
    spec = open_log(dvao_log(tmp_path, {**r, "huge": r["acc"] * 1e300}))
    assert spec.objectives == ["acc", "format", "len", "huge"] and spec.warnings == []


# --------------------------------------------------------------------------------------------
# scale_mismatch


def test_a_length_penalty_on_another_scale(cli, tmp_path: Path) -> None:
    r = rewards(7)
    penalty = -np.round(r["len"] * 254)  # in [-254, 0]
    log = dvao_log(tmp_path, {"acc": r["acc"], "format": r["format"], "len_penalty": penalty})
    summary = json.loads(cli("analyze", log, "--json").out)
    assert codes(summary) == [("scale_mismatch", "len_penalty")]
    share = summary["objectives"]["len_penalty"]["dvao_weight"]
    assert share > 0.97
    message = summary["warnings"][0]["message"]
    assert message.startswith(
        f"len_penalty is on another scale than the other objectives (range "
        f"{penalty.min():.4g}..{penalty.max():.4g}): its rewards leave [0, 1], where acc and "
        "format stay"
    )
    assert f"It takes {share:.0%} of DVAO's weight" in message
    assert message.endswith(
        "DVAO weights by spread, so a reward on a larger scale gets a larger say. Rescale the "
        "rewards to a common range, e.g. [0, 1]."
    )


def test_a_reward_with_five_times_the_spread(tmp_path: Path) -> None:
    r = rewards(8)
    small = rewards(18)["len"] / 10  # in [0, 0.1]: inside [0, 1], a tenth of the spread
    summary = analyze(dvao_log(tmp_path, {"len": r["len"], "small": small})).summary
    assert [(w.code, w.objective) for w in summary.warnings] == [("scale_mismatch", "len")]
    pattern = r"where it varies \(0\.\d+\) is \d+\.\dx small's \(0\.0\d+\)"
    assert re.search(pattern, summary.warnings[0].message)


def test_a_saturating_reward_is_not_on_another_scale(tmp_path: Path) -> None:
    # format passes in 9 groups of 10: over all groups its std is small, where it varies not
    summary = analyze(SAMPLE).summary
    assert summary.warnings == ()
    assert summary.objectives["format"].saturation == pytest.approx(0.894271, abs=1e-6)
    figures = doubts.scale_mismatch(
        ["a", "b"],
        {"a": summary.objectives["accuracy"], "b": summary.objectives["format"]},
        lo=np.array([0.0, 0.0]),
        hi=np.array([1.0, 1.0]),
        varying_std=np.array([0.45, 0.0901]),  # 4.99x: no warning
    )
    assert figures == []


# --------------------------------------------------------------------------------------------
# small_groups


def test_median_group_size() -> None:
    counts = np.zeros(9)
    assert doubts.median_size(counts) is None
    counts[[1, 4]] = [5, 5]  # five groups of 2, five of 5
    assert doubts.median_size(counts) == 3.5
    counts[[1, 4]] = [4, 6]
    assert doubts.median_size(counts) == 5.0
    counts[:] = 0
    counts[[1, 8]] = [3, 7]  # the median in the open last bin: unknown, and over 4
    assert doubts.median_size(counts) is None
    assert doubts.small_groups(counts) == []


def test_small_groups(tmp_path: Path) -> None:
    r = rewards(9)
    summary = analyze(dvao_log(tmp_path, r, size=4)).summary
    assert [(w.code, w.objective) for w in summary.warnings] == [("small_groups", None)]
    assert summary.warnings[0].message.startswith(
        "groups are small: the median group holds 4 responses. Within-group variance is a "
        "poor estimate at 4 or fewer"
    )
    assert analyze(dvao_log(tmp_path, r, size=6)).summary.warnings == ()


def test_reader_warnings_come_first(tmp_path: Path) -> None:
    r = rewards(10)
    score = (r["acc"] + r["format"] + r["len"]) / 3
    summary = analyze(dvao_log(tmp_path, {**r, "score": score}, size=4)).summary.to_json()
    assert codes(summary) == [("combined_score", "score"), ("small_groups", None)]


# --------------------------------------------------------------------------------------------
# matching_schemes


def test_one_objective_ties_grpo_rc_ac_and_dvao(cli, tmp_path: Path) -> None:
    frame = pl.read_parquet(SAMPLE, columns=["step", "group_id", "accuracy"])
    mean = pl.col("accuracy").mean().over("step", "group_id")
    std = pl.col("accuracy").std(ddof=0).over("step", "group_id")
    logged = pl.when(std > 0).then((pl.col("accuracy") - mean) / std).otherwise(0.0)
    log = tmp_path / "one.parquet"
    frame.with_columns(logged_advantage=logged).write_parquet(log)
    result = cli("analyze", log, "--json")
    summary = json.loads(result.out)
    assert summary["matching_schemes"] == ["grpo", "rc", "ac", "dvao"]
    assert summary["best_matching_scheme"] in summary["matching_schemes"]
    lines = cli("analyze", log).out.splitlines()
    tie = [line for line in lines if line.startswith("- logged_advantage matches")]
    assert len(tie) == 1 and tie[0].startswith(
        "- logged_advantage matches grpo, rc, ac and dvao alike (max difference "
    )
    assert tie[0].endswith(
        "or less): these schemes coincide on this log (with one objective they are the same "
        "advantage), so the log cannot tell which one your trainer ran."
    )


def test_one_match_and_none(tmp_path: Path) -> None:
    frame = pl.read_parquet(SAMPLE)
    out = analyze(SAMPLE, out_dir=tmp_path / "out")
    adv = pl.read_parquet(tmp_path / "out" / "advantages.parquet").sort("row")
    log = tmp_path / "rc.parquet"
    frame.with_columns(logged_advantage=adv["adv_rc"]).write_parquet(log)
    assert analyze(log).summary.matching_schemes == ("rc",)
    frame.with_columns(logged_advantage=adv["adv_rc"] + 0.01).write_parquet(log)
    summary = analyze(log).summary
    assert summary.matching_schemes == () and summary.best_matching_scheme == "rc"
    assert out.summary.matching_schemes == ()  # no logged_advantage


# --------------------------------------------------------------------------------------------
# One DVAO weight

# step 0: g0 acc varies, format constant -> w (1, 0); g1 both constant -> no signal
# step 1: g0 both vary, sigma equal -> (0.5, 0.5); g1 acc varies -> (1, 0); g2 none
ACC = [1, 0, 1, 0] + [1, 1, 1, 1] + [1, 1, 0, 0] + [0, 1, 1, 1] + [0, 0, 0, 0]
FMT = [1, 1, 1, 1] + [0, 0, 0, 0] + [1, 0, 1, 0] + [1, 1, 1, 1] + [1, 1, 1, 1]


def signal_log(tmp_path: Path) -> Path:
    path = tmp_path / "signal.parquet"
    pl.DataFrame(
        {
            "step": [0] * 8 + [1] * 12,
            "group_id": [g for g in range(5) for _ in range(4)],
            "acc": [float(x) for x in ACC],
            "fmt": [float(x) for x in FMT],
        }
    ).write_parquet(path)
    return path


def test_summary_table_and_figure_agree_on_dvao_weight(cli, tmp_path: Path) -> None:
    log = signal_log(tmp_path)
    result = analyze(log)
    summary = result.summary
    acc, fmt = summary.objectives["acc"], summary.objectives["fmt"]
    # the mean over the 3 groups with a signal: (1 + 0.5 + 1) / 3 and (0 + 0.5 + 0) / 3
    assert acc.dvao_weight == pytest.approx(5 / 6) and fmt.dvao_weight == pytest.approx(1 / 6)
    assert summary.no_signal_share == pytest.approx(2 / 5)
    assert (acc.dvao_weight_first, acc.dvao_weight_last) == pytest.approx((1.0, 0.75))
    steps = result.steps
    assert steps["dvao_weight"].to_list() == pytest.approx([1.0, 0.0, 0.75, 0.25])
    assert steps["no_signal_share"].to_list() == pytest.approx([0.5, 0.5, 1 / 3, 1 / 3])
    # the figure draws the steps table's weights as they are, and the no-signal share below
    x, share, no_signal = plots.weight_shares(steps, ["acc", "fmt"], smooth=1)
    assert share.ravel().tolist() == pytest.approx([1.0, 0.0, 0.75, 0.25])
    assert no_signal.tolist() == pytest.approx([0.5, 1 / 3])
    # the summary is the figure's per-step weights averaged over the groups with a signal
    signal = (1 - no_signal) * np.array([2, 3])
    assert (share * signal[:, None]).sum(axis=0) / signal.sum() == pytest.approx([5 / 6, 1 / 6])
    # the table says the same
    lines = cli("analyze", log).out.splitlines()
    row = next(line.split() for line in lines if line.split()[:1] == ["acc"])
    assert row[7:9] == ["0.833", "1.000→0.750"]
    assert any("(40.0% of groups have none" in line for line in lines)
    assert json.loads(cli("analyze", log, "--json").out)["no_signal_share"] == pytest.approx(0.4)


def test_one_saturating_reward_weighs_one(cli, tmp_path: Path) -> None:
    # the real run's case: 0.370 in the table, 1.00 in the figure; now 1 in both
    log = tmp_path / "one.parquet"
    pl.read_parquet(signal_log(tmp_path)).select("step", "group_id", "acc").write_parquet(log)
    result = analyze(log)
    assert result.summary.objectives["acc"].dvao_weight == 1.0
    assert result.summary.no_signal_share == pytest.approx(2 / 5)
    _, share, _ = plots.weight_shares(result.steps, ["acc"], smooth=1)
    assert share.tolist() == [[1.0], [1.0]]
    lines = cli("analyze", log).out.splitlines()
    row = next(line.split() for line in lines if line.startswith("  acc"))
    assert row[7] == "1.000"


def test_an_analysis_folder_from_before_no_signal_share_plots_the_same(tmp_path: Path) -> None:
    from dvao_cli.plot.source import load_source

    out = tmp_path / "out"
    now = analyze(signal_log(tmp_path), out_dir=out)
    steps = pl.read_parquet(out / "steps.parquet")
    # the old table: dvao_weight the mean over ALL groups, no no_signal_share column
    old = steps.with_columns(pl.col("dvao_weight") * (1 - pl.col("no_signal_share"))).drop(
        "no_signal_share"
    )
    old.write_parquet(out / "steps.parquet")
    src = load_source(out)
    _, share, no_signal = plots.weight_shares(src.steps, src.objectives, smooth=1)
    _, expected, expected_no = plots.weight_shares(now.steps, src.objectives, smooth=1)
    assert share.ravel().tolist() == pytest.approx(expected.ravel().tolist())
    assert no_signal.tolist() == pytest.approx(expected_no.tolist())


# --------------------------------------------------------------------------------------------
# Real logs (tests/fixtures/real_logs/trl_dapo_md/SOURCE.md)

REAL = Path(__file__).resolve().parent / "fixtures" / "real_logs" / "trl_dapo_md"


def test_real_total_beside_a_constant_is_a_combined_score() -> None:
    summary = analyze(REAL / "run_20251022_181457.parquet").summary
    assert summary.objective_order == ("accuracy", "format", "mdi")
    assert [(w.code, w.objective) for w in summary.warnings] == [
        ("combined_score", "total"),
        ("small_groups", None),
    ]
    assert summary.warnings[0].message.startswith(
        "total equals 4 x accuracy + format - 1 on every row (to 1e-6 relative)"
    )
    # mdi is -1 on every row: no weight, no scale_mismatch
    weights = {name: o.dvao_weight for name, o in summary.objectives.items()}
    assert weights == pytest.approx({"accuracy": 0.794776, "format": 0.205224, "mdi": 0.0})
    assert summary.no_signal_share == pytest.approx(162 / 296)


def test_real_raw_metric_takes_most_of_the_weight() -> None:
    summary = analyze(REAL / "run_20251028_165141.parquet").summary
    found = {w.objective: w.message for w in summary.warnings if w.code == "scale_mismatch"}
    assert summary.objectives["mdi"].dvao_weight == pytest.approx(0.773563, abs=1e-6)
    assert found["mdi"].startswith(
        "mdi is on another scale than the other objectives (range 3.224..123.8): its rewards "
        "leave [0, 1], where accuracy, format and mdi_add stay; its within-group std where it "
        "varies (7.343) is 108.7x mdi_add's (0.06756). It takes 77% of DVAO's weight"
    )
    # total is correlated with its parts (0.73-0.86 within groups) but no combination of them
    assert "combined_score" not in [w.code for w in summary.warnings]
    assert summary.objective_order[-1] == "total"

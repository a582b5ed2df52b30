"""`dvao import`: TRL, verl and ms-swift logs in their exact on-disk formats -> a dvao log.

Fixture logs are built in code (tests/trainer_fixtures.py). The round trips check that every
value survives; the TRL ones also check that dvao's RC / GDPO advantages on the imported log
reproduce the advantage TRL logged (ddof 1, eps 1e-4, TRL's weights), to float32 precision.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from trainer_fixtures import (
    write_swift_completions,
    write_trl_completions,
    write_verl_rollouts,
)

BASE_COLUMNS = ["step", "group_id", "sample_id", "prompt", "completion"]


def _same(a: object, b: object) -> bool:
    """Equal, with NaN/None equal to NaN/None (a missing reward stays missing)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def _import(cli, *args: object) -> dict:
    res = cli("import", *args, "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)


def _fails(cli, out: Path, *args: object) -> str:
    """Run an import that must fail with exit 2 and leave no OUT file; return the error line."""
    res = cli("import", *args, "-o", out)
    assert res.code == 2, (res.code, res.out, res.err)
    assert res.out == ""
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())  # no temp
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    return lines[0]


# --------------------------------------------------------------------------------------------
# TRL
# --------------------------------------------------------------------------------------------


def test_trl_round_trip_every_value_survives(cli, tmp_path: Path) -> None:
    rows = write_trl_completions(tmp_path / "run" / "completions", none_rate=0.2)
    out = tmp_path / "log.parquet"
    # the run's output_dir: completions/ is found below it
    report = _import(cli, "trl", tmp_path / "run", "-o", out)
    assert report["format"] == "trl"
    assert (report["files"], report["steps"], report["groups"], report["rows"]) == (3, 3, 9, 36)
    assert report["group_sizes"] == {"4": 9}
    assert report["objectives"] == ["accuracy", "format"]
    assert report["extra_columns"] == ["num_tokens", "judge_note"]
    assert report["logged_advantage"] is True
    assert report["missing_rewards"]["format"] == sum(
        1 for r in rows if r["format"] is None or math.isnan(r["format"])
    )

    frame = pl.read_parquet(out)
    assert frame.columns == [
        *BASE_COLUMNS,
        "accuracy",
        "format",
        "logged_advantage",
        "num_tokens",
        "judge_note",
        "source_file",
        "source_row",
    ]
    assert frame.schema["step"] == pl.Int64 and frame.schema["group_id"] == pl.Int64
    assert frame.schema["accuracy"] == pl.Float64
    # TRL rows are already in (step, group) order: the output keeps them one for one
    assert frame.height == len(rows)
    for got, want in zip(frame.iter_rows(named=True), rows, strict=True):
        assert got["step"] == want["step"]
        for key in ("prompt", "completion", "accuracy", "format", "num_tokens", "judge_note"):
            assert _same(got[key], want[key]), (key, got, want)
        assert got["logged_advantage"] == want["advantage"]
    # group ids restart at 0 in every step (prompts repeat across steps)
    assert frame.filter(pl.col("step") == 3)["group_id"].to_list() == [0] * 4 + [1] * 4 + [2] * 4
    assert frame["sample_id"].to_list()[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    # the objectives travel in the file's metadata
    meta = json.loads(pq.read_schema(out).metadata[b"dvao"])
    assert meta["format"] == "trl" and meta["objectives"] == ["accuracy", "format"]


def _engine_check(out: Path, weights: list[float], scheme: str) -> None:
    """dvao's scheme on the imported log equals TRL's logged advantage (float32 precision)."""
    advantages = pytest.importorskip("dvao_cli.advantages")
    frame = pl.read_parquet(out)
    key = frame.select(pl.struct("step", "group_id").rank("dense") - 1).to_series()
    result = advantages.compute_advantages(
        np.array(frame.select("accuracy", "format").to_numpy()),
        np.array(key.to_numpy(), dtype=np.int64),
        np.array(frame["step"].to_numpy()),
        weights,
        schemes=(scheme,),
        ddof=1,
        eps=1e-4,
        nan="ignore",
        device="cpu",
    )
    got = result.advantages[scheme].cpu().numpy()
    np.testing.assert_allclose(got, frame["logged_advantage"].to_numpy(), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize(
    ("aggregation", "scheme", "weights"),
    [
        ("sum_then_normalize", "rc", [1.0, 1.0]),
        ("sum_then_normalize", "rc", [0.7, 0.3]),
        ("normalize_then_sum", "gdpo", [1.0, 1.0]),
        ("normalize_then_sum", "gdpo", [0.7, 0.3]),
    ],
)
def test_trl_advantage_reproduced_by_the_engine(
    cli, tmp_path: Path, aggregation: str, scheme: str, weights: list[float]
) -> None:
    src = tmp_path / "completions"
    write_trl_completions(
        src,
        steps=(1, 2, 3, 4),
        num_generations=8,
        prompts_per_step=4,
        weights=tuple(weights),
        aggregation=aggregation,
        none_rate=0.1,
        seed=3,
    )
    out = tmp_path / "log.parquet"
    _import(cli, "trl", src, "-o", out)
    _engine_check(out, weights, scheme)


@pytest.mark.parametrize(
    ("aggregation", "scheme"), [("sum_then_normalize", "rc"), ("normalize_then_sum", "gdpo")]
)
def test_trl_advantage_reproduced_by_analyze(
    cli, tmp_path: Path, aggregation: str, scheme: str
) -> None:
    pytest.importorskip("dvao_cli.analysis.pipeline")
    src = tmp_path / "completions"
    write_trl_completions(
        src,
        num_generations=8,
        prompts_per_step=4,
        none_rate=0.1,
        seed=5,
        weights=(0.7, 0.3),
        aggregation=aggregation,
    )
    out = tmp_path / "log.parquet"
    _import(cli, "trl", src, "-o", out)
    res = cli(
        "analyze", out, "--ddof", "1", "--eps", "1e-4", "--nan", "ignore",
        "--objective", "accuracy", "--objective", "format",
        "--weight", "accuracy=0.7", "--weight", "format=0.3",
        "--out", tmp_path / "analysis",
    )  # fmt: skip
    assert res.code == 0, res.err
    adv = pl.read_parquet(tmp_path / "analysis" / "advantages.parquet").sort("row")
    np.testing.assert_allclose(
        adv[f"adv_{scheme}"].to_numpy(),
        pl.read_parquet(out)["logged_advantage"].to_numpy(),
        rtol=1e-5,
        atol=2e-5,
    )


def test_trl_format_option_form_and_string_steps(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    rows = write_trl_completions(src, step_as_string=True, extra=False)
    out = tmp_path / "log.parquet"
    report = _import(cli, "--format", "trl", src, "-o", out)
    assert report["objectives"] == ["accuracy", "format"]
    assert pl.read_parquet(out)["step"].to_list() == [int(r["step"]) for r in rows]


def test_trl_files_sorted_by_step_number_not_name(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src, steps=(9, 10, 100), pad=False, extra=False)
    out = tmp_path / "log.parquet"
    report = _import(cli, "trl", src, "-o", out)
    assert report["reordered"] is False
    frame = pl.read_parquet(out)
    assert frame["step"].unique(maintain_order=True).to_list() == [9, 10, 100]


def test_trl_objective_option_keeps_the_rest_as_extras(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src)
    out = tmp_path / "log.parquet"
    report = _import(cli, "trl", src, "-o", out, "--objective", "accuracy")
    assert report["objectives"] == ["accuracy"]
    assert report["extra_columns"] == ["format", "num_tokens", "judge_note"]
    assert pl.read_parquet(out).columns[5:7] == ["accuracy", "logged_advantage"]


def test_trl_int_columns_over_the_whole_log(cli, tmp_path: Path) -> None:
    # int in every file (a token count): an extra; int in the first file only: a reward
    src = tmp_path / "completions"
    write_trl_completions(src)
    report = _import(cli, "trl", src, "-o", tmp_path / "log.parquet")
    assert report["objectives"] == ["accuracy", "format"]
    assert report["extra_columns"] == ["num_tokens", "judge_note"]
    first = src / "completions_00001.parquet"
    table = pq.read_table(first)
    column = table.column("accuracy").cast("int64")
    at = table.column_names.index("accuracy")
    pq.write_table(table.set_column(at, "accuracy", column), first)
    report = _import(cli, "trl", src, "-o", tmp_path / "log.parquet")
    assert report["objectives"] == ["accuracy", "format"]
    assert pl.read_parquet(tmp_path / "log.parquet").schema["accuracy"] == pl.Float64


def test_trl_objective_missing_says_did_you_mean(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src)
    line = _fails(cli, tmp_path / "log.parquet", "trl", src, "--objective", "acuracy")
    first = src / "completions_00001.parquet"
    assert line == (
        f"error: {first}: column 'acuracy': no such reward column (did you mean 'accuracy'?)"
    )


def _duplicate_prompt_file(directory: Path) -> Path:
    """A TRL file where two consecutive groups share a prompt: one run of 8 rows."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    prompts = ["a"] * 4 + ["b"] * 4 + ["b"] * 4
    pd.DataFrame(
        {
            "step": [7] * 12,
            "prompt": prompts,
            "completion": [f"c{i}" for i in range(12)],
            "accuracy": [float(i % 2) for i in range(12)],
            "advantage": [0.0] * 12,
        }
    ).to_parquet(directory / "completions_00007.parquet")
    return directory / "completions_00007.parquet"


def test_inconsistent_group_sizes_refused_then_forced(cli, tmp_path: Path) -> None:
    path = _duplicate_prompt_file(tmp_path / "completions")
    out = tmp_path / "log.parquet"
    line = _fails(cli, out, "trl", tmp_path / "completions")
    assert line == (
        f"error: {path}: step 7: inconsistent group sizes: 1 group of 4, 1 group of 8. "
        "Pass --group-size N to cut fixed blocks of N rows, or --ragged to keep the groups "
        "as they are"
    )
    report = _import(cli, "trl", tmp_path / "completions", "-o", out, "--group-size", "4")
    assert report["group_sizes"] == {"4": 3}
    assert pl.read_parquet(out)["group_id"].to_list() == [0] * 4 + [1] * 4 + [2] * 4
    report = _import(cli, "trl", tmp_path / "completions", "-o", out, "--ragged")
    assert report["group_sizes"] == {"4": 1, "8": 1}
    assert pl.read_parquet(out)["sample_id"].to_list() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7]


def test_group_size_block_with_two_prompts_is_refused(cli, tmp_path: Path) -> None:
    path = _duplicate_prompt_file(tmp_path / "completions")
    line = _fails(cli, tmp_path / "log.parquet", "trl", path.parent, "--group-size", "6")
    assert line == (
        f"error: {path}: column 'prompt': step 7: the block of --group-size 6 rows starting at "
        "row 1 holds 2 different prompts (is the group size right?)"
    )
    line = _fails(cli, tmp_path / "log.parquet", "trl", path.parent, "--group-size", "5")
    assert (
        line
        == f"error: {path}: column 'step': step 7 has 12 rows, not a multiple of --group-size 5"
    )


def test_group_size_change_across_files_names_the_file(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src, steps=(1, 2), num_generations=4, extra=False)
    write_trl_completions(src, steps=(3,), num_generations=2, extra=False)
    line = _fails(cli, tmp_path / "log.parquet", "trl", src)
    assert line == (
        f"error: {src / 'completions_00003.parquet'}: step 3: inconsistent group sizes: "
        f"3 groups of 2; earlier groups have 4 rows ({src / 'completions_00001.parquet'}). "
        "Pass --group-size N to cut fixed blocks of N rows, or --ragged to keep the groups as "
        "they are"
    )


def test_reward_columns_that_differ_across_files_are_missing_rewards(cli, tmp_path: Path) -> None:
    # the objectives come from every file: a reward a file lacks is missing there (null), a
    # reward that first appears in a later file is an objective all the same
    src = tmp_path / "completions"
    write_trl_completions(src, steps=(1, 2), extra=False)
    write_trl_completions(
        src, steps=(3,), reward_names=("accuracy", "length"), extra=False, none_rate=0.0
    )
    out = tmp_path / "log.parquet"
    report = _import(cli, "trl", src, "-o", out)
    assert report["objectives"] == ["accuracy", "format", "length"]
    frame = pl.read_parquet(out)
    assert frame.filter(pl.col("step") == 3)["format"].null_count() == 12
    assert frame.filter(pl.col("step") < 3)["length"].null_count() == 24
    assert report["missing_rewards"]["length"] == 24
    assert report["missing_rewards"]["format"] >= 12


def test_trl_file_that_is_not_parquet(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src, steps=(1,), extra=False)
    bad = src / "completions_00002.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    line = _fails(cli, tmp_path / "log.parquet", "trl", src)
    assert line.startswith(f"error: {bad}: not a readable Parquet file (")


def test_reserved_trainer_column_is_renamed(cli, tmp_path: Path) -> None:
    import pandas as pd

    src = tmp_path / "completions"
    src.mkdir()
    pd.DataFrame(
        {
            "step": [1] * 4,
            "prompt": ["p"] * 4,
            "completion": ["a", "b", "c", "d"],
            "accuracy": [1.0, 0.0, 1.0, 0.0],
            "reward": [1.5, 0.5, 1.0, 0.0],
            "advantage": [0.0] * 4,
        }
    ).to_parquet(src / "completions_00001.parquet")
    out = tmp_path / "log.parquet"
    report = _import(cli, "trl", src, "-o", out)
    assert report["renamed"] == {"reward": "raw_reward"}
    assert report["objectives"] == ["accuracy", "raw_reward"]
    assert pl.read_parquet(out)["raw_reward"].to_list() == [1.5, 0.5, 1.0, 0.0]


# --------------------------------------------------------------------------------------------
# verl
# --------------------------------------------------------------------------------------------


def test_verl_round_trip_rebuilds_shuffled_groups(cli, tmp_path: Path) -> None:
    records = write_verl_rollouts(tmp_path / "dump", steps=(2, 10), n=4, prompts_per_step=3)
    out = tmp_path / "log.parquet"
    report = _import(cli, "verl", tmp_path / "dump", "-o", out)
    assert (report["files"], report["steps"], report["groups"], report["rows"]) == (2, 2, 6, 24)
    assert report["objectives"] == ["score", "acc", "format_reward"]
    assert report["extra_columns"] == ["gts", "pred"]
    assert report["logged_advantage"] is False

    frame = pl.read_parquet(out)
    assert frame.columns == [
        *BASE_COLUMNS, "score", "acc", "format_reward", "gts", "pred", "source_file", "source_row"
    ]  # fmt: skip
    assert frame.schema["pred"] == pl.String and frame.schema["acc"] == pl.Float64
    # expected: per step, groups in order of first appearance, rows in file order
    want: dict[int, dict[str, list]] = defaultdict(dict)
    for rec in records:
        want[rec["step"]].setdefault(rec["input"], []).append(rec)
    expected = [rec for step in sorted(want) for group in want[step].values() for rec in group]
    gids = [
        g for step in sorted(want) for g, group in enumerate(want[step].values()) for _ in group
    ]
    assert frame["group_id"].to_list() == gids
    for got, rec in zip(frame.iter_rows(named=True), expected, strict=True):
        assert got["step"] == rec["step"] and got["prompt"] == rec["input"]
        assert got["completion"] == rec["output"]
        assert got["score"] == rec["score"]
        assert got["acc"] == (1.0 if rec["acc"] else 0.0)
        assert got["format_reward"] == float(rec["format_reward"])  # written as a string
        assert got["pred"] == rec["pred"] and got["gts"] == rec["gts"]


def test_verl_non_numeric_reward_value_names_file_and_line(cli, tmp_path: Path) -> None:
    write_verl_rollouts(tmp_path / "dump", steps=(1,), shuffle=False)
    path = tmp_path / "dump" / "1.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["format_reward"] = "timeout"
    lines[2] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    line = _fails(cli, tmp_path / "log.parquet", "verl", tmp_path / "dump")
    assert line == (
        f"error: {path}:3: column 'format_reward': a reward column holds a value that is not a "
        "number (pick the objectives with --objective to keep this column as text): 'timeout' "
        "(row 3)"
    )
    # choosing the objectives keeps the odd column as text
    out = tmp_path / "log.parquet"
    report = _import(cli, "verl", tmp_path / "dump", "-o", out, "-O", "acc", "-O", "score")
    assert report["objectives"] == ["acc", "score"]
    assert "timeout" in pl.read_parquet(out)["format_reward"].to_list()


def test_verl_truncated_json_line(cli, tmp_path: Path) -> None:
    write_verl_rollouts(tmp_path / "dump", steps=(1, 2))
    path = tmp_path / "dump" / "2.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 25])  # the writer died mid-line
    n_lines = text.count("\n")
    line = _fails(cli, tmp_path / "log.parquet", "verl", tmp_path / "dump")
    assert line.startswith(f"error: {path}:{n_lines}: truncated or malformed JSON line (")


def test_verl_duplicate_prompt_split_by_group_size(cli, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    recs = [
        {"input": "same", "output": f"o{i}", "score": float(i % 3), "step": 5} for i in range(8)
    ] + [{"input": "other", "output": f"x{i}", "score": 1.0, "step": 5} for i in range(4)]
    (dump / "5.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    line = _fails(cli, tmp_path / "log.parquet", "verl", dump)
    assert "step 5: inconsistent group sizes: 1 group of 4, 1 group of 8" in line
    assert line.startswith(f"error: {dump / '5.jsonl'}:9: ")
    out = tmp_path / "log.parquet"
    report = _import(cli, "verl", dump, "-o", out, "--group-size", "4")
    assert report["group_sizes"] == {"4": 3}
    assert pl.read_parquet(out)["completion"].to_list()[:8] == [f"o{i}" for i in range(8)]


# --------------------------------------------------------------------------------------------
# ms-swift
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("megatron", [False, True])
def test_swift_round_trip(cli, tmp_path: Path, megatron: bool) -> None:
    rows = write_swift_completions(tmp_path / "out" / "completions.jsonl", megatron=megatron)
    (tmp_path / "out" / "logging.jsonl").write_text('{"loss": 1.0}\n')  # swift's other log
    out = tmp_path / "log.parquet"
    report = _import(cli, "swift", tmp_path / "out", "-o", out)
    assert (report["steps"], report["groups"], report["rows"]) == (3, 6, 24)
    assert report["objectives"] == ["AccuracyReward", "FormatReward"]
    assert report["extra_columns"] == ["solution"]
    assert report["skipped"] == {"other files ignored": 1}
    frame = pl.read_parquet(out)
    assert frame.columns == [
        *BASE_COLUMNS,
        "AccuracyReward",
        "FormatReward",
        "logged_advantage",
        "solution",
        "source_file",
        "source_row",
        "source_index",
    ]
    key = "gen_step" if megatron else "step"
    for got, want in zip(frame.iter_rows(named=True), rows, strict=True):
        assert got["step"] == int(want[key])
        assert got["prompt"] == want["prompt"] and got["completion"] == want["completion"]
        assert got["AccuracyReward"] == want["AccuracyReward"]
        assert got["FormatReward"] == want["FormatReward"]
        assert got["logged_advantage"] == want["advantages"]
        assert got["solution"] == want["solution"]


def test_swift_resumed_run_is_sorted_by_step(cli, tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    write_swift_completions(path, steps=(1, 2, 3))
    first = path.read_text()
    write_swift_completions(path, steps=(2,), seed=9)  # the resumed run logs step 2 again
    path.write_text(first + path.read_text())
    out = tmp_path / "log.parquet"
    report = _import(cli, "swift", path, "-o", out)
    assert report["reordered"] is True
    frame = pl.read_parquet(out)
    assert frame["step"].to_list() == [1] * 8 + [2] * 16 + [3] * 8
    assert (
        frame.filter(pl.col("step") == 2)["group_id"].to_list()
        == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    )


def test_swift_line_lengths_must_agree(cli, tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    write_swift_completions(path, steps=(1, 2))
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["FormatReward"] = rec["FormatReward"][:-1]
    lines[1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    line = _fails(cli, tmp_path / "log.parquet", "swift", path)
    assert line == f"error: {path}:2: column 'FormatReward': holds 7 values but 'step' holds 8"


# --------------------------------------------------------------------------------------------
# Detection and bad input
# --------------------------------------------------------------------------------------------


def test_auto_detection_and_lone_source(cli, tmp_path: Path) -> None:
    write_trl_completions(tmp_path / "trl" / "completions", extra=False)
    write_verl_rollouts(tmp_path / "verl")
    write_swift_completions(tmp_path / "swift" / "completions.jsonl")
    for fmt in ("trl", "verl", "swift"):
        report = _import(cli, "auto", tmp_path / fmt, "-o", tmp_path / f"{fmt}.parquet")
        assert report["format"] == fmt
        report = _import(cli, tmp_path / fmt, "-o", tmp_path / f"{fmt}2.parquet")
        assert report["format"] == fmt
        report = _import(cli, "-f", "auto", tmp_path / fmt, "-o", tmp_path / f"{fmt}3.parquet")
        assert report["format"] == fmt
    # a single file is detected by its name and first line
    one = tmp_path / "verl" / "1.jsonl"
    assert _import(cli, one, "-o", tmp_path / "one.parquet")["format"] == "verl"


def test_a_file_from_another_trainer_in_the_directory(cli, tmp_path: Path) -> None:
    src = tmp_path / "completions"
    write_trl_completions(src, extra=False)
    write_verl_rollouts(src, steps=(3,))
    odd = src / "3.jsonl"
    line = _fails(cli, tmp_path / "log.parquet", "auto", src)
    assert line == (
        f"error: {odd}: a verl file (<step>.jsonl) in a TRL log directory; one import reads "
        "one trainer's files: move it away or import it separately"
    )
    assert _fails(cli, tmp_path / "log.parquet", "trl", src) == line


def test_explicit_format_on_another_trainers_directory(cli, tmp_path: Path) -> None:
    write_verl_rollouts(tmp_path / "dump")
    line = _fails(cli, tmp_path / "log.parquet", "trl", tmp_path / "dump")
    assert line == (
        f"error: {tmp_path / 'dump'}: no TRL files here (completions_<step>.parquet); this looks "
        "like a verl log: dvao import verl SOURCE"
    )


def test_swift_line_in_a_verl_directory(cli, tmp_path: Path) -> None:
    write_swift_completions(tmp_path / "dump" / "4.jsonl", steps=(4,))
    line = _fails(cli, tmp_path / "log.parquet", "verl", tmp_path / "dump")
    assert line == (
        f"error: {tmp_path / 'dump' / '4.jsonl'}:1: its values are lists: this looks like an "
        "ms-swift completions.jsonl line, not a verl rollout record"
    )


def test_usage_and_source_errors(cli, tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"
    assert _fails(cli, out, "trll", tmp_path) == (
        "error: unknown format 'trll' (did you mean 'trl', 'verl'?); "
        "choose trl, verl, swift, table or auto"
    )
    assert _fails(cli, out, "--format", "swiftt", tmp_path) == (
        "error: --format 'swiftt' is not a format (did you mean 'swift'?); choose trl, verl, "
        "swift, table or auto"
    )
    assert _fails(cli, out, "trl", tmp_path, "--format", "trl").startswith(
        "error: the format is given twice"
    )
    missing = tmp_path / "nope"
    assert _fails(cli, out, "trl", missing) == f"error: {missing}: no such file or directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _fails(cli, out, "verl", empty) == (
        f"error: {empty}: empty directory: no trainer log files in it"
    )
    (empty / "notes.txt").write_text("hi")
    assert _fails(cli, out, "auto", empty) == (
        f"error: {empty}: no trainer log files here or below (found 1 entry: notes.txt); looked "
        "for completions_<step>.parquet (TRL), <step>.jsonl (verl), completions.jsonl "
        "(ms-swift); 4 levels down, leaving out hidden folders and virtual environments"
    )
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".lock").write_text("")  # not empty: says what it holds
    assert _fails(cli, out, "auto", hidden).startswith(
        f"error: {hidden}: no trainer log files here or below (found 1 entry: .lock); looked "
    )
    res = cli("import", "trl", tmp_path, "-o", out, "--group-size", "4", "--ragged")
    assert res.code == 2 and "--group-size and --ragged exclude each other" in res.err
    res = cli("import", "trl", "-o", out)
    assert (
        res.code == 2 and res.err.strip() == "error: missing SOURCE: dvao import trl SOURCE -o OUT"
    )


def test_failed_import_keeps_the_old_out_file(cli, tmp_path: Path) -> None:
    out = tmp_path / "log.parquet"
    out.write_bytes(b"old")
    write_verl_rollouts(tmp_path / "dump", steps=(1,))
    (tmp_path / "dump" / "2.jsonl").write_text('{"input": "q", "output": "o", "score": 1.0\n')
    res = cli("import", "verl", tmp_path / "dump", "-o", out)
    assert res.code == 2
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump", "log.parquet"]


def test_report_table_and_quiet(cli, tmp_path: Path) -> None:
    write_trl_completions(tmp_path / "completions", none_rate=0.2)
    out = tmp_path / "log.parquet"
    res = cli("import", "trl", tmp_path / "completions", "-o", out)
    assert res.code == 0, res.err
    assert f"dvao import: TRL -> {out}" in res.out
    for text in (
        "group sizes",
        "4 (9 groups)",
        "accuracy, format",
        "num_tokens, judge_note",
        "yes (as logged_advantage)",
        "rows dropped",
    ):
        assert text in res.out, text
    res = cli("--quiet", "import", "trl", tmp_path / "completions", "-o", out)
    assert res.code == 0
    assert res.out == f"wrote {out}: 36 rows, 3 steps, 9 groups\n"
    assert res.err == ""


def test_import_output_is_a_readable_dvao_log(tmp_path: Path) -> None:
    from dvao_cli.importers import run_import
    from dvao_cli.reader.memory import read_log

    write_verl_rollouts(tmp_path / "dump", steps=(1, 2, 3))
    out = tmp_path / "log.parquet"
    report = run_import(tmp_path / "dump", out, "auto")
    log = read_log(out, objectives=report.objectives)
    assert log.objectives == ["score", "acc", "format_reward"]
    assert log.rows == 36 and log.skipped_groups == 0
    assert log.sizes.tolist() == [4] * 9


def test_trl_newer_layout_with_mode_column(cli, tmp_path: Path) -> None:
    """TRL versions that write completions/<mode>/completions_<step>.parquet with a `mode`."""
    import pandas as pd

    rows = write_trl_completions(tmp_path / "run" / "completions" / "train", extra=False)
    for path in sorted((tmp_path / "run" / "completions" / "train").iterdir()):
        frame = pd.read_parquet(path)
        frame.insert(0, "mode", "train")
        frame.to_parquet(path)
    out = tmp_path / "log.parquet"
    report = _import(cli, "auto", tmp_path / "run", "-o", out)
    assert (report["format"], report["rows"]) == ("trl", len(rows))
    assert report["objectives"] == ["accuracy", "format"]
    assert report["extra_columns"] == ["mode"]
    assert set(pl.read_parquet(out)["mode"].to_list()) == {"train"}

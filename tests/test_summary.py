"""summary.json: its key names and structure (users' CI reads them), on the sample log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dvao_cli.analysis.summary import SCHEME_COLUMNS, STEP_COLUMNS

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "rollouts.parquet"

TOP_KEYS = [
    "rows",
    "steps",
    "groups",
    "skipped_groups",
    "skipped_rows",
    "dropped_rows",
    "no_signal_share",
    "objectives",
    "schemes",
    "correlation",
    "correlation_groups",
    "weights",
    "objective_order",
    "first_step",
    "last_step",
    "has_logged_advantage",
    "best_matching_scheme",
    "matching_schemes",
    "settings",
    "files",
    "warnings",
]
OBJECTIVE_KEYS = [
    "mean",
    "within_group_std",
    "saturation",
    "saturation_pass",
    "saturation_fail",
    "binary",
    "dvao_weight",
    "dvao_weight_first",
    "dvao_weight_last",
    "preference_weight",
    "missing_rewards",
    "saturated_from_step",
    "saturation_after",
    "saturated_kind",
]
SCHEME_KEYS = [
    "mean_square",
    "max_abs",
    "zero_share",
    "resolution",
    "distinct_advantages_per_group",
    "distinct_rewards_per_group",
]
LOGGED_KEYS = ["logged_max_diff", "logged_corr"]
SETTINGS_KEYS = ["schemes", "ddof", "eps", "nan", "device"]
NAMES = ["accuracy", "format", "length", "rm_score"]


def shape(value: Any) -> Any:
    """The key structure of a JSON value: dicts as {key: shape}, lists and scalars as types."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in value.items()}
    return type(value).__name__


def logged_log(tmp_path: Path) -> Path:
    path = tmp_path / "logged.parquet"
    frame = pl.read_parquet(SAMPLE)
    frame.with_columns(logged_advantage=pl.col("accuracy") - 0.5).write_parquet(path)
    return path


def test_summary_json_keys_on_the_sample_log(cli, tmp_path: Path) -> None:
    result = cli("analyze", SAMPLE, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert list(summary) == TOP_KEYS
    assert list(summary["objectives"]) == summary["objective_order"] == NAMES
    for name in NAMES:
        assert list(summary["objectives"][name]) == OBJECTIVE_KEYS
        assert list(summary["correlation"][name]) == NAMES
        assert list(summary["correlation_groups"][name]) == NAMES
    assert list(summary["schemes"]) == ["grpo", "rc", "ac", "gdpo", "dvao"]
    for name in summary["schemes"]:
        assert list(summary["schemes"][name]) == SCHEME_KEYS
    assert list(summary["weights"]) == NAMES
    assert list(summary["settings"]) == SETTINGS_KEYS
    assert shape(summary["objectives"]["accuracy"]) == {
        "mean": "float",
        "within_group_std": "float",
        "saturation": "float",
        "saturation_pass": "float",
        "saturation_fail": "float",
        "binary": "bool",
        "dvao_weight": "float",
        "dvao_weight_first": "float",
        "dvao_weight_last": "float",
        "preference_weight": "float",
        "missing_rewards": "int",
        "saturated_from_step": "NoneType",
        "saturation_after": "NoneType",
        "saturated_kind": "NoneType",
    }
    assert summary["objectives"]["format"]["saturated_kind"] == "all-pass"
    assert summary["objectives"]["rm_score"]["saturation_pass"] is None
    assert (summary["has_logged_advantage"], summary["best_matching_scheme"]) == (False, None)
    assert summary["settings"] == {
        "schemes": ["grpo", "rc", "ac", "gdpo", "dvao"],
        "ddof": 0,
        "eps": 0.0,
        "nan": "error",
        "device": "cpu",
    }
    assert summary["files"] == [str(SAMPLE)]
    assert (summary["rows"], summary["steps"], summary["groups"]) == (15360, 60, 1920)
    assert (summary["first_step"], summary["last_step"]) == (0, 59)


def test_summary_json_keys_with_logged_advantage_and_a_gate(cli, tmp_path: Path) -> None:
    result = cli(
        "analyze",
        logged_log(tmp_path),
        "--json",
        "-s",
        "rc",
        "-s",
        "dvao",
        "--fail-on",
        "max_abs[rc]>100",
        "--fail-on",
        "mean[accuracy]>0.1",
    )
    assert result.code == 3, result.err
    summary = json.loads(result.out)
    assert list(summary) == [*TOP_KEYS, "gate"]
    assert list(summary["schemes"]) == ["rc", "dvao"]
    for name in ("rc", "dvao"):
        assert list(summary["schemes"][name]) == SCHEME_KEYS + LOGGED_KEYS
    assert summary["has_logged_advantage"] is True
    assert summary["best_matching_scheme"] in ("rc", "dvao")
    assert summary["gate"] == {
        "conditions": ["max_abs[rc]>100", "mean[accuracy]>0.1"],
        "tripped": ["mean[accuracy] = 0.467448 > 0.1"],
    }


def test_summary_json_file_equals_the_json_output(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("analyze", SAMPLE, "--out", out).code == 0
    printed = cli("analyze", SAMPLE, "--json").out
    assert (out / "summary.json").read_text() == printed


def test_table_columns_are_the_summary_fields(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("analyze", SAMPLE, "--out", out).code == 0
    assert pl.read_parquet(out / "steps.parquet").columns == list(STEP_COLUMNS)
    assert pl.read_parquet(out / "schemes.parquet").columns == list(SCHEME_COLUMNS)
    assert SCHEME_COLUMNS == (
        "step",
        "scheme",
        "mean_square",
        "max_abs",
        "zero_share",
        "resolution",
    )


def no_reward_log(tmp_path: Path) -> Path:
    """Two steps of one group of four: `b` has no valid reward at step 0, `c` none at all."""
    nan = float("nan")
    path = tmp_path / "missing.parquet"
    pl.DataFrame(
        {
            "step": [0] * 4 + [1] * 4,
            "group_id": [0] * 8,
            "sample_id": list(range(4)) * 2,
            "a": [1.0, 0, 1, 0, 1, 1, 0, 1],
            "b": [nan] * 4 + [0.0, 1, 1, 1],
            "c": [nan] * 8,
        }
    ).write_parquet(path)
    return path


def test_an_objective_without_a_valid_reward_is_null_not_saturated(cli, tmp_path: Path) -> None:
    log = no_reward_log(tmp_path)
    result = cli("analyze", log, "--nan", "ignore", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["objectives"]["c"] == {
        "mean": None,
        "within_group_std": None,
        "saturation": None,
        "saturation_pass": None,
        "saturation_fail": None,
        "binary": False,
        "dvao_weight": None,
        "dvao_weight_first": None,
        "dvao_weight_last": None,
        "preference_weight": pytest.approx(1 / 3),
        "missing_rewards": 8,
        "saturated_from_step": None,
        "saturation_after": None,
        "saturated_kind": None,
    }
    assert summary["correlation"]["c"] == {"a": None, "b": None, "c": None}
    assert summary["correlation"]["a"]["c"] is None
    assert summary["objectives"]["b"]["missing_rewards"] == 4
    assert summary["objectives"]["b"]["mean"] == 0.75  # step 1's rewards only


def test_the_report_says_n_a_and_why(cli, tmp_path: Path) -> None:
    result = cli("analyze", no_reward_log(tmp_path), "--nan", "ignore")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] == ["c"]]
    assert rows[0] == ["c", "n/a", "n/a", "n/a", "n/a", "n/a", "0.333", "n/a", "n/a"]
    assert rows[1] == ["c", "n/a", "n/a", "n/a"]  # the correlation table
    assert (
        "- c has no valid reward: all 8 are missing (skipped under --nan ignore), so its figures "
        "are n/a."
    ) in lines
    assert not any(line.startswith("- c saturated") for line in lines)


def test_a_step_without_a_valid_reward_has_no_figures(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli("analyze", no_reward_log(tmp_path), "--nan", "ignore", "--out", out).code == 0
    steps = pl.read_parquet(out / "steps.parquet")
    figures = ["mean", "within_group_std", "saturation", "saturation_pass", "saturation_fail"]
    b0 = steps.filter((pl.col("step") == 0) & (pl.col("objective") == "b"))
    assert b0.select(figures).row(0) == (None,) * 5
    assert b0["dvao_weight"].to_list() == [0.0]  # the weight DVAO gave it: none
    c = steps.filter(pl.col("objective") == "c")
    assert c.select([*figures, "dvao_weight"]).rows() == [(None,) * 6] * 2
    b1 = steps.filter((pl.col("step") == 1) & (pl.col("objective") == "b"))
    assert b1.select(["mean", "saturation", "dvao_weight"]).row(0) == (0.75, 0.0, 0.5)

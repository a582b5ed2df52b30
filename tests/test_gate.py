"""`--fail-on` never passes silently: a gate on a metric this log cannot have is exit 2."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvao_cli.analysis.gate import (
    BINARY_METRICS,
    GLOBAL_METRICS,
    LOGGED_METRICS,
    OBJECTIVE_METRICS,
    PAIR_METRICS,
    SCHEME_METRICS,
    metric_value,
    parse_condition,
)
from dvao_cli.analysis.pipeline import analyze
from dvao_cli.cli.options import SCHEMES
from dvao_cli.errors import InputError, UsageError

NAN = math.nan


def gate_log(tmp_path: Path, logged: float | None = None) -> Path:
    """One step, two groups of four: `acc` binary, `score` continuous, `const` never varies,
    `gone` never has a valid reward (only readable with --nan ignore)."""
    columns: dict[str, list[float]] = {
        "acc": [1, 0, 1, 0] + [1, 1, 1, 1],
        "score": [0.2, 0.5, 0.9, 0.1] + [0.3, 0.3, 0.3, 0.3],
        "const": [1.0] * 8,
        "gone": [NAN] * 8,
    }
    frame = pl.DataFrame(
        {
            "step": [0] * 8,
            "group_id": [0] * 4 + [1] * 4,
            "sample_id": list(range(4)) * 2,
            **{name: [float(x) for x in values] for name, values in columns.items()},
        }
    )
    if logged is not None:  # constant: no correlation with any scheme can be measured
        frame = frame.with_columns(logged_advantage=pl.lit(logged, dtype=pl.Float64))
    path = tmp_path / ("gate.parquet" if logged is None else "logged.parquet")
    frame.write_parquet(path)
    return path


CASES = [
    # (the log's constant logged_advantage if any, extra options, --fail-on, the one line)
    (
        None,
        [],
        "logged_max_diff[dvao]<0.01",
        "--fail-on 'logged_max_diff[dvao]<0.01': logged_max_diff compares a scheme with the "
        "log's logged_advantage column, and this log has none",
    ),
    (
        None,
        ["-s", "dvao", "-s", "rc"],
        "zero_share[ac]>0.5",
        "--fail-on 'zero_share[ac]>0.5': scheme 'ac' is not computed in this run "
        "(it computes dvao, rc); add --scheme ac",
    ),
    (
        None,
        [],
        "saturation_fail[score]>0.1",
        "--fail-on 'saturation_fail[score]>0.1': saturation_fail is defined for binary "
        "objectives only, and 'score' has rewards other than 0 and 1",
    ),
    (
        None,
        [],
        "correlation[acc,const]<0",
        "--fail-on 'correlation[acc,const]<0': correlation[acc,const] is n/a on this log (no "
        "group where both objectives vary), so it cannot be checked",
    ),
    (
        None,
        [],
        "dvao_weight[gone]<0.1",
        "--fail-on 'dvao_weight[gone]<0.1': 'gone' has no valid reward (all 8 are missing), so "
        "dvao_weight[gone] is n/a",
    ),
    (
        None,
        [],
        "saturation_pass[gone]>0.5",
        "--fail-on 'saturation_pass[gone]>0.5': 'gone' has no valid reward (all 8 are missing), "
        "so saturation_pass[gone] is n/a",
    ),
    (
        None,
        [],
        "correlation[score,gone]<0",
        "--fail-on 'correlation[score,gone]<0': 'gone' has no valid reward (all 8 are missing), "
        "so correlation[score,gone] is n/a",
    ),
    (
        0.0,
        [],
        "logged_corr[rc]<0.9",
        "--fail-on 'logged_corr[rc]<0.9': logged_corr[rc] is n/a on this log (logged_advantage "
        "or the scheme's advantages are constant), so it cannot be checked",
    ),
    (
        NAN,
        [],
        "logged_corr[rc]<0.9",
        "--fail-on 'logged_corr[rc]<0.9': logged_corr[rc] is n/a on this log (logged_advantage "
        "has no finite value), so it cannot be checked",
    ),
    (
        NAN,
        [],
        "logged_max_diff[ac]>0.1",
        "--fail-on 'logged_max_diff[ac]>0.1': logged_max_diff[ac] is n/a on this log "
        "(logged_advantage has no finite value), so it cannot be checked",
    ),
]


@pytest.mark.parametrize("logged, options, condition, message", CASES)
def test_a_gate_that_cannot_be_checked_is_a_usage_error(
    cli, tmp_path: Path, logged: float | None, options: list[str], condition: str, message: str
) -> None:
    log = gate_log(tmp_path, logged)
    out = tmp_path / "out"
    result = cli(
        "analyze", log, "--nan", "ignore", *options, "--fail-on", condition, "--json", "-o", out
    )
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines() == [f"error: {message}"]
    assert not out.exists() or list(out.iterdir()) == []  # nothing written


def test_what_the_names_tell_is_checked_before_any_data_is_read(tmp_path: Path) -> None:
    # under --nan error, reading this log's data fails on `gone`: the gate's error comes first
    log = gate_log(tmp_path)
    with pytest.raises(InputError, match="gone"):
        analyze(log)
    with pytest.raises(UsageError, match="this log has none"):
        analyze(log, fail_on=["logged_corr[rc]>0.5"])
    with pytest.raises(UsageError, match="scheme 'gdpo' is not computed"):
        analyze(log, schemes=["rc"], fail_on=["max_abs[gdpo]>1"])


def test_gates_that_can_be_checked_still_trip(cli, tmp_path: Path) -> None:
    log = gate_log(tmp_path, logged=0.0)
    result = cli(
        "analyze",
        log,
        "--nan",
        "ignore",
        "--fail-on",
        "saturation_pass[const]>=1",
        "--fail-on",
        "logged_max_diff[grpo]>0.5",
        "--fail-on",
        "saturation_pass[acc]>0.9",  # 0.5: holds no more
        "--json",
    )
    assert result.code == 3, result.err
    assert result.err.splitlines() == [
        "gate tripped: saturation_pass[const] = 1 >= 1",
        "gate tripped: logged_max_diff[grpo] = 1 > 0.5",
        "error: 2 --fail-on conditions tripped",
    ]


def test_every_metric_is_defined_on_an_ordinary_log(tmp_path: Path) -> None:
    """On a log where every objective varies and is binary, every gate can be checked."""
    path = tmp_path / "plain.parquet"
    pl.DataFrame(
        {
            "step": [0] * 8,
            "group_id": [0] * 4 + [1] * 4,
            "sample_id": list(range(4)) * 2,
            "a": [1.0, 0, 1, 0, 1, 1, 0, 0],
            "b": [0.0, 1, 1, 0, 1, 0, 1, 1],
            "logged_advantage": [0.5, -0.5, 0.5, -0.5, 1.0, 1.0, -1.0, -1.0],
        }
    ).write_parquet(path)
    metrics = [f"{m}[a]>=-1e9" for m in OBJECTIVE_METRICS]
    metrics += [f"{m}[dvao]>=-1e9" for m in ("mean_square", "max_abs", *LOGGED_METRICS)]
    metrics += [f"{m}>=0" for m in GLOBAL_METRICS] + ["correlation[a,b]>=-1"]
    result = analyze(path, fail_on=metrics)
    assert len(result.trips) == len(metrics)
    assert set(BINARY_METRICS) == {"saturation_pass", "saturation_fail"}


KINDS = ("binary", "continuous", "constant", "missing", "partly missing")


def random_log(path: Path, data: st.DataObject) -> tuple[list[str], bool]:
    """A small log of random objective kinds, maybe with a logged_advantage column."""
    steps = data.draw(st.integers(1, 2))
    groups = data.draw(st.integers(1, 3))
    size = data.draw(st.integers(2, 4))
    n = steps * groups * size
    kinds = data.draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3))
    names = [f"o{k}" for k in range(len(kinds))]
    bits = st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)
    floats = st.lists(st.floats(0, 1), min_size=n, max_size=n)
    columns: dict[str, list[float]] = {}
    for name, kind in zip(names, kinds, strict=True):
        if kind == "binary":
            columns[name] = data.draw(bits)
        elif kind == "continuous":
            columns[name] = data.draw(floats)
        elif kind == "constant":
            columns[name] = [0.5] * n
        elif kind == "missing":
            columns[name] = [NAN] * n
        else:
            columns[name] = [NAN if i < size else x for i, x in enumerate(data.draw(bits))]
    logged = data.draw(st.sampled_from(["none", "constant", "random", "missing"]))
    if logged != "none":
        columns["logged_advantage"] = {
            "constant": [0.0] * n,
            "random": data.draw(floats),
            "missing": [NAN] * n,
        }[logged]
    pl.DataFrame(
        {
            "step": [i // (groups * size) for i in range(n)],
            "group_id": [(i // size) % groups for i in range(n)],
            "sample_id": [i % size for i in range(n)],
            **columns,
        }
    ).write_parquet(path)
    return names, logged != "none"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_gate_passes_on_a_metric_that_is_not_there(tmp_path: Path, data: st.DataObject) -> None:
    """On any log, a gate either is refused (UsageError) or compares a defined value."""
    names, _ = random_log(tmp_path / "log.parquet", data)
    schemes = data.draw(st.lists(st.sampled_from(SCHEMES), min_size=1, max_size=3, unique=True))
    metric = data.draw(
        st.sampled_from(OBJECTIVE_METRICS + SCHEME_METRICS + PAIR_METRICS + GLOBAL_METRICS)
    )
    if metric in GLOBAL_METRICS:
        label = metric
    elif metric in PAIR_METRICS:
        label = f"{metric}[{data.draw(st.sampled_from(names))},{data.draw(st.sampled_from(names))}]"
    elif metric in SCHEME_METRICS:
        label = f"{metric}[{data.draw(st.sampled_from(SCHEMES))}]"
    else:
        label = f"{metric}[{data.draw(st.sampled_from(names))}]"
    condition = f"{label}>0.5"
    try:
        result = analyze(
            tmp_path / "log.parquet", nan="ignore", schemes=schemes, fail_on=[condition]
        )
    except UsageError as err:
        assert str(err).startswith(f"--fail-on '{condition}': ") and "\n" not in str(err)
        return
    value = metric_value(parse_condition(condition), result.summary)
    assert value is not None and math.isfinite(value)
    assert (len(result.trips) == 1) == (value > 0.5)

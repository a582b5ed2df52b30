"""Rewards with few values: the pattern-count path gives the engine path's numbers bit for bit
(summary, per-step and per-scheme tables, advantages)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvao_cli.analysis import figures
from dvao_cli.analysis.backends import patterns
from dvao_cli.analysis.pipeline import Analysis, analyze
from dvao_cli.core import counted


def binary_log(
    path: Path,
    seed: int,
    k: int,
    *,
    ragged: bool = False,
    steps: int = 3,
    groups: int = 6,
    size: int = 8,
    anti: bool = False,
    row_group_size: int | None = None,
    levels: tuple[float, ...] = (0.0, 1.0),
) -> Path:
    """Random rewards with saturated objectives in some groups; with `anti`, objective 1 is
    1 - objective 0 (AC, RC and GDPO then cancel to rounding noise). Binary by default; with
    `levels`, every objective takes those values (the lowest and highest as the 0 and 1)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"step": [], "group_id": []}
    names = [f"o{j}" for j in range(k)]
    for name in names:
        rows[name] = []
    for step in range(steps):
        for group in range(groups):
            n = int(rng.integers(2, 2 * size)) if ragged else size
            p = rng.choice([0.0, 0.1, 0.5, 0.8, 1.0], size=k)
            rewards = (rng.random((n, k)) < p).astype(np.float64)
            if anti and k >= 2:
                rewards[:, 1] = 1.0 - rewards[:, 0]
            if len(levels) != 2 or levels != (0.0, 1.0):  # spread the 1s over the other levels
                pick = rng.integers(1, len(levels), size=(n, k))
                rewards = np.where(rewards > 0, np.asarray(levels)[pick], levels[0])
            rows["step"] += [step] * n
            rows["group_id"] += [group] * n
            for j, name in enumerate(names):
                rows[name] += rewards[:, j].tolist()
    pl.DataFrame(rows).write_parquet(path, row_group_size=row_group_size)
    return path


def both_paths(path: Path, **options: Any) -> tuple[Analysis, Analysis]:
    """The default routing, and every chunk through the advantage engine (`sums`)."""
    fast = analyze(path, **options)
    slow = analyze(path, backend="sums", **options)
    assert set(slow.backends) == {"sums"}
    return fast, slow


def assert_same(fast: Any, slow: Any, where: str = "summary") -> None:
    if isinstance(fast, dict):
        assert fast.keys() == slow.keys(), where
        for key in fast:
            assert_same(fast[key], slow[key], f"{where}.{key}")
    elif isinstance(fast, list):
        assert len(fast) == len(slow), where
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(fast, float) and isinstance(slow, float):  # bit for bit (NaN alike)
        assert fast == slow or (math.isnan(fast) and math.isnan(slow)), (where, fast, slow)
    else:
        assert fast == slow, (where, fast, slow)


def assert_same_analysis(fast: Analysis, slow: Analysis) -> None:
    assert_same(fast.summary.to_json(), slow.summary.to_json())
    for table in ("steps", "schemes"):
        a, b = getattr(fast, table), getattr(slow, table)
        assert_same(a.to_dict(as_series=False), b.to_dict(as_series=False), table)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
@pytest.mark.parametrize("ragged", [False, True])
def test_pattern_path_equals_engine_path(tmp_path: Path, k: int, ragged: bool) -> None:
    path = binary_log(tmp_path / "log.parquet", seed=k, k=k, ragged=ragged)
    assert_same_analysis(*both_paths(path))


@pytest.mark.parametrize(
    "levels", [(0.0, 0.5, 1.0), (-1.0, 1.0), (0.1, 0.2, 0.7), (-2.0, 0.0, 0.25, 3.0)]
)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_few_valued_rewards_take_the_pattern_path(
    tmp_path: Path, levels: tuple[float, ...], k: int
) -> None:
    path = binary_log(tmp_path / "log.parquet", seed=k, k=k, ragged=True, levels=levels)
    fast, slow = both_paths(path)
    assert_same_analysis(fast, slow)
    assert fast.summary.settings.device == "cpu"
    assert set(fast.backends) == {"patterns"}  # the backend each chunk actually took


@pytest.mark.parametrize("ddof, eps", [(0, 0.0), (1, 0.0), (0, 1e-4), (1, 1e-4)])
def test_pattern_path_follows_ddof_and_eps(tmp_path: Path, ddof: int, eps: float) -> None:
    path = binary_log(tmp_path / "log.parquet", seed=7, k=3, ragged=True)
    weights = {"o0": 0.5, "o1": 0.3, "o2": 0.2}
    assert_same_analysis(*both_paths(path, ddof=ddof, eps=eps, weights=weights))


def test_anti_correlated_objectives_cancel_to_zero_on_both_paths(tmp_path: Path) -> None:
    # o1 = 1 - o0 in every group: with equal weights RC, DVAO, AC and GDPO are 0 up to rounding
    path = binary_log(tmp_path / "log.parquet", seed=3, k=2, size=10, anti=True)
    fast, slow = both_paths(path, weights={"o0": 1.0, "o1": 1.0})
    assert_same_analysis(fast, slow)
    for scheme in ("rc", "ac", "gdpo", "dvao"):
        assert fast.summary.schemes[scheme].max_abs < 1e-12, scheme
    assert fast.summary.schemes["grpo"].max_abs > 0.5


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 5),
    ragged=st.booleans(),
    ddof=st.sampled_from([0, 1]),
    eps=st.sampled_from([0.0, 1e-6, 0.1]),
    equal_weights=st.booleans(),
    size=st.integers(2, 12),
    levels=st.sampled_from([(0.0, 1.0), (0.0, 1.0), (0.0, 0.5, 1.0), (-1.0, 1.0), (0.1, 0.3)]),
)
def test_pattern_path_equals_engine_path_on_random_logs(
    tmp_path: Path,
    seed: int,
    k: int,
    ragged: bool,
    ddof: int,
    eps: float,
    equal_weights: bool,
    size: int,
    levels: tuple[float, ...],
) -> None:
    path = binary_log(
        tmp_path / f"log-{seed}.parquet", seed, k, ragged=ragged, size=size, levels=levels
    )
    rng = np.random.default_rng(seed)
    weights = None if equal_weights else {f"o{j}": float(rng.integers(1, 5)) for j in range(k)}
    assert_same_analysis(*both_paths(path, ddof=ddof, eps=eps, weights=weights))


@pytest.mark.parametrize("schemes", [None, ("gdpo",), ("gdpo", "ac", "dvao", "rc"), ("grpo", "rc")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alike_groups_computed_once_give_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schemes: Any, seed: int
) -> None:
    """Groups with the same counts are computed once (`alike`; auto takes it on large chunks
    only): here on small logs with many alike groups (few objectives, small groups), against
    the engine."""
    calls = []
    alike = patterns._alike_of_keys
    monkeypatch.setattr(
        patterns, "_alike_of_keys", lambda *args: calls.append(alike(*args)) or calls[-1]
    )
    path = binary_log(
        tmp_path / "log.parquet", seed, 2, ragged=seed == 2, steps=4, groups=40, size=4
    )
    options: dict[str, Any] = {"ddof": seed % 2, "weights": {"o0": 1.0, "o1": 3.0}}
    if schemes is not None:
        options["schemes"] = schemes
    fast = analyze(path, backend="alike", **options)
    assert set(fast.backends) == {"alike"}
    assert_same_analysis(fast, analyze(path, backend="sums", **options))
    assert calls and all(found is not None for found in calls)
    assert any(found[0].shape[1] < found[1].shape[0] for found in calls)  # some alike


def test_chunks_of_both_kinds_combine(tmp_path: Path) -> None:
    """A log binary in some steps only: those go the pattern way, the rest the engine's."""
    path = binary_log(tmp_path / "log.parquet", seed=1, k=2, steps=4)
    frame = pl.read_parquet(path)
    spread = pl.col("o1") * 0.5 + pl.int_range(pl.len()) * 1e-4  # many distinct values
    frame = frame.with_columns(
        pl.when(pl.col("step") >= 2).then(spread).otherwise(pl.col("o1")).alias("o1")
    )
    frame.write_parquet(path, row_group_size=48)
    fast = analyze(path, chunk_rows=48)  # one step per chunk (6 groups of 8)
    slow = analyze(path, chunk_rows=48, backend="sums")
    assert_same_analysis(fast, slow)
    assert fast.summary.objectives["o1"].binary is False
    assert fast.backends == {"patterns": 2, "sums": 2}


def test_pattern_codes() -> None:
    a = np.array([0.0, 1.0, 1.0, -0.0])
    b = np.array([1.0, 1.0, 0.0, 0.0])
    found = counted.pattern_codes([a, b])
    assert found is not None
    assert found.code.tolist() == [2, 3, 1, 0]
    assert [lv.tolist() for lv in found.levels] == [[0.0, 1.0], [0.0, 1.0]]
    # three values, the first row not the smallest; objective 0 is the lowest digit
    c = np.array([0.5, -1.0, 2.0, 0.5])
    found = counted.pattern_codes([a, c])
    assert found is not None
    assert found.levels[1].tolist() == [-1.0, 0.5, 2.0]
    assert found.code.tolist() == [0 + 2 * 1, 1 + 2 * 0, 1 + 2 * 2, 0 + 2 * 1]
    values = counted.pattern_values(found.levels)
    assert values.tolist() == [[0, -1], [1, -1], [0, 0.5], [1, 0.5], [0, 2], [1, 2]]
    constant = counted.pattern_codes([np.full(4, 0.3)])
    assert constant is not None and constant.code.tolist() == [0] * 4
    for bad in (math.nan, math.inf):
        assert counted.pattern_codes([a, np.array([1.0, 0.0, bad, 1.0])]) is None, bad
        assert counted.pattern_codes([np.array([bad, 0.0, 1.0, 1.0])]) is None, bad
    many = np.arange(counted.MAX_VALUES + 1, dtype=np.float64)
    assert counted.pattern_codes([many]) is None
    assert counted.pattern_codes([a] * 7) is None  # 128 patterns


def test_pattern_counts_uniform_and_ragged_agree() -> None:
    code = np.array([0, 3, 3, 1, 2, 2, 2, 0], dtype=np.uint8)
    uniform = counted.pattern_counts(code, 4, n_groups=2, group_size=4)
    ragged = counted.pattern_counts(code, 4, n_groups=2, group=np.repeat([0, 1], 4))
    assert uniform.tolist() == ragged.tolist() == [[1, 1], [1, 0], [0, 3], [2, 0]]


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_sorting_network_sorts_every_input(n: int) -> None:
    """The 0-1 principle: a comparator network that sorts every 0/1 input sorts every input."""
    inputs = np.array(list(itertools.product([0.0, 1.0], repeat=n))).T  # (n, 2^n)
    rows = list(inputs.copy())
    for i, j in figures._comparators(n):
        low = np.minimum(rows[i], rows[j])
        rows[j] = np.maximum(rows[i], rows[j])
        rows[i] = low
    assert np.array_equal(np.stack(rows), np.sort(inputs, axis=0))


@pytest.mark.slow
def test_binary_log_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = binary_log(tmp_path / "log.parquet", seed=2, k=3)
    code = (
        "import sys; from dvao_cli.analysis.pipeline import analyze; "
        f"s = analyze({str(path)!r}).summary; "
        "assert 'torch' not in sys.modules, 'torch was imported'; print(s.settings.device)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cpu"


def test_engine_pieces_give_the_same_advantages(tmp_path: Path) -> None:
    """The engine works on pieces of whole steps of about chunk_rows rows: same rows out."""
    # row groups of 60 rows: the reader rounds its 20-row reads up to them, the engine splits
    path = binary_log(
        tmp_path / "log.parquet", seed=5, k=3, ragged=True, steps=5, row_group_size=60
    )
    whole = analyze(path, out_dir=tmp_path / "whole")
    pieces = analyze(path, out_dir=tmp_path / "pieces", chunk_rows=20)
    assert_same_analysis(whole, pieces)
    a = pl.read_parquet(tmp_path / "whole" / "advantages.parquet")
    b = pl.read_parquet(tmp_path / "pieces" / "advantages.parquet")
    assert a["row"].to_list() == b["row"].to_list() == list(range(a.height))
    assert_same(a.to_dict(as_series=False), b.to_dict(as_series=False), "advantages")


@pytest.mark.parametrize("schemes", [["gdpo"], ["dvao"], ["grpo", "rc"], ["ac", "dvao", "grpo"]])
def test_any_subset_of_schemes(tmp_path: Path, schemes: list[str]) -> None:
    path = binary_log(tmp_path / "log.parquet", seed=11, k=3, ragged=True)
    fast, slow = both_paths(path, schemes=schemes)
    assert_same_analysis(fast, slow)
    assert list(fast.summary.schemes) == schemes


OWN_FIGURES = (  # an objective's figures that do not depend on the other objectives
    "mean",
    "within_group_std",
    "saturation",
    "saturation_pass",
    "saturation_fail",
    "binary",
    "missing_rewards",
    "saturated_from_step",
    "saturation_after",
    "saturated_kind",
)


def _probe_logs(tmp_path: Path, one: float) -> tuple[Path, Path]:
    """accuracy alone (the pattern path), and the same beside a continuous reward (the row
    engine's path); accuracy's 1s are `one`."""
    rng = np.random.default_rng(11)
    group = np.repeat(np.arange(60), 8)
    p = rng.choice([0.0, 0.3, 1.0], 60)[group]  # some groups all-pass, some all-fail
    accuracy = np.where(rng.random(group.shape[0]) < p, one, 0.0)
    base = {"step": group // 6, "group_id": group % 6, "accuracy": accuracy}
    alone, beside = tmp_path / "alone.parquet", tmp_path / "beside.parquet"
    pl.DataFrame(base).write_parquet(alone)
    pl.DataFrame({**base, "rm_score": rng.random(group.shape[0])}).write_parquet(beside)
    return alone, beside


@pytest.mark.parametrize("one", [1.0, 1.0 - 1e-13, 1.0 + 1e-13, 0.999])
def test_near_binary_probe(tmp_path: Path, one: float) -> None:
    """An objective's figures are the same with and without an unrelated continuous reward
    beside it: "binary" (and all-pass) mean one thing on every path. A 1 that went through
    float arithmetic (within 1e-9) is still a pass; 0.999 is not."""
    alone, beside = _probe_logs(tmp_path, one)
    a = analyze(alone).summary.to_json()["objectives"]["accuracy"]
    b = analyze(beside).summary.to_json()["objectives"]["accuracy"]
    for key in OWN_FIGURES:
        assert_same(a[key], b[key], key)
    assert a["binary"] is (one != 0.999)
    if a["binary"]:
        assert a["saturation_pass"] is not None and a["saturation_pass"] > 0.1
        assert a["saturation_fail"] > 0.1
    else:
        assert a["saturation_pass"] is None

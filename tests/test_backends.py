"""Every named backend (`dvao_cli.analysis.BACKENDS`) against `rows`, the reference that
computes every advantage: the same summary, bit for bit, on edge logs and on random ones; the
routing of `auto`, read from the backends the chunks actually took; a backend that cannot take
a log is exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvao_cli.analysis import BACKENDS
from dvao_cli.analysis.backends.registry import BackendError
from dvao_cli.analysis.pipeline import analyze

FEW_VALUED = ("patterns", "alike")  # the backends that need few distinct rewards


def summary(path: Path, backend: str, **options: Any) -> dict[str, Any]:
    found = analyze(path, backend=backend, **options)
    assert set(found.backends) == {backend}, found.backends  # the one asked for ran
    return found.summary.to_json()


def check_equal(path: Path, few_valued: bool, **options: Any) -> None:
    """Each backend's summary is the rows' one bit for bit (the json text); a few-valued
    backend refuses a log that is not."""
    reference = summary(path, "rows", **options)
    for backend in BACKENDS:
        name = backend.name
        if name in FEW_VALUED and not few_valued:
            with pytest.raises(BackendError, match=f"--backend {name} cannot take this log"):
                analyze(path, backend=name, **options)
            continue
        found = summary(path, name, **options)
        assert json.dumps(found, sort_keys=True) == json.dumps(reference, sort_keys=True), name


def write(path: Path, steps: list[int], groups: list[int], **columns: Any) -> Path:
    pl.DataFrame({"step": steps, "group_id": groups, **columns}).write_parquet(path)
    return path


# a reward whose GRPO advantages sit at the zero limit with --eps 7: in a group of 16 with 8 of
# them (and 8 zeros), |A| = fl(7.000000000006999e-12 x scale) is exactly 1e-12 or below, while
# 7.000000000006999e-12 > 1e-12 / scale: the plain limit ZERO_TOL / scale calls them nonzero
AT_LIMIT = 1.4000000000013999e-11


def zero_limit_log(path: Path) -> Path:
    """2 steps x 6 groups of 16: groups with 8 rewards AT_LIMIT (every |A| within the limit)
    and groups with 1 (its |A| is 1.9e-12: nonzero; the 15 others' 1.2e-13: zero)."""
    steps, groups, acc = [], [], []
    for step in range(2):
        for g in range(6):
            ones = 8 if g % 2 == 0 else 1
            steps += [step] * 16
            groups += [g] * 16
            acc += [AT_LIMIT] * ones + [0.0] * (16 - ones)
    return write(path, steps, groups, accuracy=acc)


def test_the_zero_limit_is_exact_on_every_backend(tmp_path: Path) -> None:
    """Hand count: 6 groups x 16 zeros and 6 groups x 15 zeros of 192 responses."""
    path = zero_limit_log(tmp_path / "log.parquet")
    for name in (backend.name for backend in BACKENDS):
        found = analyze(path, eps=7.0, schemes=["grpo"], backend=name).summary
        assert found.schemes["grpo"].zero_share == (6 * 16 + 6 * 15) / 192, name
    check_equal(path, True, eps=7.0)


def ragged_log(path: Path, seed: int, levels: tuple[float, ...] | None) -> Path:
    """3 steps of 5 groups of 2-11 responses; 3 objectives, continuous or from `levels`."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, 15)
    n = int(sizes.sum())
    group = np.repeat(np.arange(15), sizes)

    def reward() -> np.ndarray:
        if levels is None:
            return rng.random(n)
        return np.asarray(levels)[rng.integers(0, len(levels), n)]

    return write(path, (group // 5).tolist(), group.tolist(), a=reward(), b=reward(), c=reward())


@pytest.mark.parametrize("levels", [None, (0.0, 1.0), (0.0, 0.5, 1.0), (-1.0, 0.25, 3.0)])
def test_ragged_groups(tmp_path: Path, levels: tuple[float, ...] | None) -> None:
    path = ragged_log(tmp_path / "log.parquet", 1, levels)
    check_equal(path, levels is not None, weights={"a": 0.5, "b": 0.3, "c": 0.2})


@pytest.mark.parametrize("few_valued", [False, True])
def test_steps_with_one_group_and_constant_steps(tmp_path: Path, few_valued: bool) -> None:
    """Step 0 has one group; step 1 is constant in every objective (no signal: every
    advantage 0, GDPO's step std 0); step 2 is ordinary."""
    rng = np.random.default_rng(3)
    steps = [0] * 8 + [1] * 24 + [2] * 24
    groups = [0] * 8 + np.repeat([0, 1, 2], 8).tolist() + np.repeat([0, 1, 2], 8).tolist()
    a = (rng.random(56) < 0.5).astype(float)
    b = (rng.random(56) < 0.7).astype(float) if few_valued else rng.random(56)
    a[8:32], b[8:32] = 1.0, 0.5
    path = write(tmp_path / "log.parquet", steps, groups, accuracy=a, score=b)
    check_equal(path, few_valued)
    check_equal(path, few_valued, ddof=1, eps=1e-4)


def test_anti_correlated_objectives(tmp_path: Path) -> None:
    """b = 1 - a: RC, AC, GDPO and DVAO cancel to rounding noise on every backend alike."""
    rng = np.random.default_rng(4)
    a = (rng.random(96) < 0.5).astype(float)
    path = write(
        tmp_path / "log.parquet", np.repeat([0, 1], 48).tolist(), np.repeat(np.arange(12), 8),
        a=a, b=1.0 - a,
    )  # fmt: skip
    check_equal(path, True)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    ragged=st.booleans(),
    size=st.integers(2, 10),
    ddof=st.sampled_from([0, 1]),
    eps=st.sampled_from([0.0, 1e-4]),
    levels=st.sampled_from([None, (0.0, 1.0), (0.0, 0.5, 1.0), (0.1, 0.3)]),
    nan=st.sampled_from(["error", "ignore"]),
)
def test_every_backend_equals_rows_on_random_logs(
    tmp_path: Path,
    seed: int,
    k: int,
    ragged: bool,
    size: int,
    ddof: int,
    eps: float,
    levels: tuple[float, ...] | None,
    nan: str,
) -> None:
    """`nan="ignore"` on a log without a missing reward: the pattern backends' arithmetic
    (the rows take it too where the rewards take few values)."""
    rng = np.random.default_rng(seed)
    n_groups = 12
    sizes = rng.integers(2, size + 1, n_groups) if ragged else np.full(n_groups, size)
    group = np.repeat(np.arange(n_groups), sizes)
    n = group.shape[0]
    p = rng.random((n_groups, k))[group]  # (n, k) per-group pass rates: some saturated
    rewards = {}
    for j in range(k):
        if levels is None and j == k - 1:
            rewards[f"o{j}"] = rng.random(n)  # one continuous objective
        else:
            values = np.asarray(levels or (0.0, 1.0))
            rewards[f"o{j}"] = np.where(rng.random(n) < p[:, j], values[-1], values[0])
    path = write(tmp_path / f"log-{seed}.parquet", (group // 4).tolist(), group.tolist(), **rewards)
    weights = {f"o{j}": float(rng.integers(1, 4)) for j in range(k)}
    check_equal(path, levels is not None, ddof=ddof, eps=eps, weights=weights, nan=nan)


def test_auto_takes_the_pattern_backends_for_few_values_and_sums_otherwise(
    tmp_path: Path,
) -> None:
    few = ragged_log(tmp_path / "few.parquet", 2, (0.0, 1.0))
    many = ragged_log(tmp_path / "many.parquet", 2, None)
    assert set(analyze(few).backends) == {"patterns"}
    assert set(analyze(many).backends) == {"sums"}
    # every advantage wanted (--out): the engine's rows, and for few values still the counts
    assert set(analyze(many, out_dir=tmp_path / "a").backends) == {"rows"}
    assert set(analyze(few, out_dir=tmp_path / "b").backends) == {"patterns"}


def test_auto_computes_alike_groups_once_on_large_chunks(tmp_path: Path) -> None:
    """4096 groups of 4 over 2 binary objectives show at most 15 count columns: `alike`."""
    rng = np.random.default_rng(5)
    group = np.repeat(np.arange(4096), 4)
    path = write(
        tmp_path / "log.parquet", (group // 2048).tolist(), group.tolist(),
        a=(rng.random(group.shape[0]) < 0.5).astype(float),
        b=(rng.random(group.shape[0]) < 0.8).astype(float),
    )  # fmt: skip
    found = analyze(path)
    assert set(found.backends) == {"alike"}
    check_equal(path, True)


def test_an_unknown_backend_or_one_that_cannot_take_the_log_is_one_line(
    cli, tmp_path: Path
) -> None:
    path = ragged_log(tmp_path / "log.parquet", 6, None)
    result = cli("analyze", path, "--backend", "patterns", "--json")
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert "--backend patterns cannot take this log" in lines[0]
    assert "objective 'a' takes more than 8 distinct rewards" in lines[0], lines[0]
    unknown = cli("analyze", path, "--backend", "fast", "--json")
    assert unknown.code == 2 and "unknown backend 'fast'" in unknown.err, unknown.err
    assert "rows, sums, patterns, alike" in unknown.err
    ok = cli("analyze", path, "--backend", "rows", "--json")
    assert ok.code == 0, ok.err


def test_pieces_with_fewer_levels_than_their_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row engine works on pieces of a chunk, the pattern backends on the whole chunk: a
    piece that lacks one of the chunk's rewards (step 0 scores 0 or 1, step 1 also 0.5) has
    fewer patterns, and its sums over them still give the same bits (a term of 0 changes no
    sum's bits, wherever it comes)."""
    rng = np.random.default_rng(8)
    group = np.repeat(np.arange(16), 8)  # 2 steps of 8 groups of 8
    a = (rng.random(128) < 0.5).astype(float)
    b = (rng.random(128) < 0.6).astype(float)
    b[64:] = np.where(rng.random(64) < 0.5, 0.5, b[64:])
    path = write(tmp_path / "log.parquet", (group // 8).tolist(), group.tolist(), a=a, b=b)
    monkeypatch.setattr("dvao_cli.analysis.backends.rows.ENGINE_PIECE_ROWS", 64)  # a step each
    check_equal(path, True, weights={"a": 2.0, "b": 1.0})
    check_equal(path, True, ddof=1, eps=1e-4)


REAL = Path(__file__).resolve().parent / "fixtures" / "real_logs"  # each with its SOURCE.md


@pytest.mark.parametrize(
    ("log", "few_valued", "options"),
    [
        ("trl_illustrated_grpo", True, {"ddof": 1, "eps": 1e-4, "nan": "ignore"}),
        ("trl_dapo_md/run_20251022_181457.parquet", True, {}),
        ("trl_dapo_md/run_20251028_165141.parquet", False, {}),  # mdi is continuous
    ],
)
def test_real_logs(log: str, few_valued: bool, options: dict[str, Any]) -> None:
    """Public repositories' logs: a TRL completions folder, a TRL-based trainer's runs."""
    check_equal(REAL / log, few_valued, **options)

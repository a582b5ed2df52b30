"""The computational core: its layering, the scheme table, the two array libraries of the row
engine (numpy on the CPU, torch for torch inputs), and numbers at the edges (huge rewards,
groups or objectives never rewarded)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from dvao_cli.advantages import compute_advantages
from dvao_cli.analysis.backends import patterns
from dvao_cli.analysis.step_sums import StepIndex, objective_sums
from dvao_cli.core import counted, engine
from dvao_cli.core import schemes as table
from dvao_cli.core.segments import Blocks, segments
from dvao_cli.core.tolerances import MAX_REWARD


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.strip()


@pytest.mark.slow
def test_the_library_does_not_import_the_command_line() -> None:
    loaded = _python(
        "import sys, dvao_cli; from dvao_cli import compute_advantages; "
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    )
    assert loaded == "[]"


@pytest.mark.slow
def test_the_analysis_and_its_workers_do_not_import_the_command_line() -> None:
    """What a worker process imports (the analysis pipeline, the reader, the gate): no typer."""
    loaded = _python(
        "import sys, dvao_cli.analysis.workers, dvao_cli.analysis.pipeline, "
        "dvao_cli.analysis.gate; "
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    )
    assert loaded == "[]"


def test_the_core_imports_neither_the_command_line_nor_polars_nor_torch() -> None:
    loaded = _python(
        "import sys; import dvao_cli.core.engine, dvao_cli.core.schemes, "
        "dvao_cli.analysis.backends.patterns; "
        "print(sorted(m for m in ('typer', 'rich', 'click', 'polars', 'torch') "
        "if m in sys.modules))"
    )
    assert loaded == "[]"


@pytest.mark.slow
def test_analyze_on_the_cpu_never_imports_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(40), 8)
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "step": group // 10,
            "group_id": group % 10,
            "accuracy": (rng.random(320) < 0.5).astype(float),
            "rm_score": rng.random(320),  # continuous: the row engine's path
        }
    ).write_parquet(path)
    from dvao_cli.analysis.runtime import gpu_present

    device = "cpu" if gpu_present() else "auto"  # auto on a machine without a GPU: the CPU
    loaded = _python(
        "import sys; from dvao_cli.analysis.pipeline import analyze; "
        f"a = analyze({str(path)!r}, device={device!r}); "
        "print(a.summary.settings.device, 'torch' in sys.modules)"
    )
    assert loaded == "cpu False"


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def test_twins_follow_from_the_table() -> None:
    assert table.twins(table.SCHEMES, missing=False) == {"gdpo": "ac", "dvao": "rc"}
    assert table.twins(table.SCHEMES, missing=True) == {}
    assert table.twins(["dvao", "gdpo"], missing=False) == {}  # no earlier scheme to share
    # "earlier" is in the order given, the order the backends compute in
    assert table.twins(["grpo", "gdpo", "ac"], missing=False) == {"ac": "gdpo"}
    assert table.numerator_of("rc", missing=False) == table.numerator_of("dvao", missing=False)
    assert table.numerator_of("rc", missing=True) != table.numerator_of("dvao", missing=True)


def _chunk(seed: int, k: int = 3, groups: int = 12, size: int = 8):
    rng = np.random.default_rng(seed)
    rewards = (rng.random((groups * size, k)) < rng.random(k)).astype(np.float64)
    columns = [np.ascontiguousarray(rewards[:, j]) for j in range(k)]
    group_step = np.repeat(np.arange(groups // 4), 4)
    return rewards, columns, group_step


def test_a_new_scheme_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheme added to the table (half of DVAO) is computed by both backends, no other code
    touched."""
    half = table.Scheme(
        "half",
        table.WEIGHTED,
        lambda g, eps: 0.5 * table.normaliser(g.weights @ g.sigma, eps),
    )
    monkeypatch.setattr(table, "TABLE", (*table.TABLE, half))
    monkeypatch.setattr(table, "BY_NAME", {**table.BY_NAME, "half": half})
    rewards, columns, group_step = _chunk(1)
    w = [0.5, 0.3, 0.2]
    out = engine.run(columns, Blocks(12, 8), group_step, 3, w, ("dvao", "half"))
    np.testing.assert_allclose(out.advantages["half"], 0.5 * out.advantages["dvao"], atol=1e-15)
    found = counted.pattern_codes(columns)
    counts = counted.pattern_counts(found.code, found.n_patterns, 12, group_size=8)
    described = counted.Counted(tuple(found.levels), counts.astype(np.float64))
    _, sums, _ = patterns.pattern_sums(described, group_step, 3, w, ("dvao", "half"))
    np.testing.assert_allclose(sums["half"].square_sum, sums["dvao"].square_sum / 4, rtol=1e-12)
    assert sums["half"].distinct_adv.tolist() == sums["dvao"].distinct_adv.tolist()


# --------------------------------------------------------------------------------------------
# numpy and torch: one arithmetic, two array libraries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["blocks", "ragged", "interleaved"])
@pytest.mark.parametrize("nan", ["error", "ignore"])
def test_numpy_and_torch_engines_agree(layout: str, nan: str) -> None:
    rng = np.random.default_rng(3)
    sizes = np.full(30, 6) if layout == "blocks" else rng.integers(1, 9, 30)
    group = np.repeat(np.arange(30), sizes)
    step = group // 7
    rewards = np.where(rng.random((group.shape[0], 3)) < 0.5, rng.integers(0, 2, (1, 3)), 0.0)
    rewards = rewards + rng.random(rewards.shape) * (rng.random(rewards.shape) < 0.5)
    if nan == "ignore":
        rewards[rng.random(rewards.shape) < 0.2] = np.nan
    if layout == "interleaved":
        order = rng.permutation(group.shape[0])
        rewards, group, step = rewards[order], group[order], step[order]
    w = [0.5, 0.3, 0.2]
    options = dict(ddof=1, eps=1e-4, nan=nan)
    on_numpy = compute_advantages(rewards, group, step, w, device="cpu", **options)
    t = torch.from_numpy
    on_torch = compute_advantages(t(rewards), t(group), t(step), w, **options)
    for name in table.SCHEMES:
        np.testing.assert_allclose(
            on_torch.advantages[name].numpy(), on_numpy.advantages[name].numpy(), atol=1e-12
        )
    for field in ("mean", "std", "dvao_weight", "count", "rc_std", "size"):
        a, b = getattr(on_torch.stats, field), getattr(on_numpy.stats, field)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12, err_msg=field)


def _torch_case(device: str) -> None:
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], device=device)
    group = torch.tensor([0, 0, 1, 1], device=device)
    res = compute_advantages(rewards, group, None, [0.5, 0.5], dtype=torch.float32)
    for adv in res.advantages.values():
        assert isinstance(adv, torch.Tensor) and adv.device.type == device
        assert adv.dtype == torch.float32
    assert res.stats.mean.device.type == device
    assert res.advantages["grpo"].cpu().tolist() == [1.0, -1.0, 1.0, -1.0]


def test_torch_tensors_in_give_torch_tensors_out_on_the_cpu() -> None:
    _torch_case("cpu")
    # numpy in: torch tensors out as well (the API's contract), computed by numpy
    res = compute_advantages(np.array([[1.0], [0.0]]), np.array([0, 0]))
    assert isinstance(res.advantages["dvao"], torch.Tensor)
    assert res.advantages["dvao"].tolist() == [1.0, -1.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_tensors_in_give_torch_tensors_out_on_cuda() -> None:
    _torch_case("cuda")


# --------------------------------------------------------------------------------------------
# Numbers at the edges (hostile-input family 4 of test_hostile.py)
# --------------------------------------------------------------------------------------------


def _edge_log(path: Path, big: float, *, few_valued: bool) -> Path:
    rng = np.random.default_rng(5)
    group = np.repeat(np.arange(24), 8)
    score = rng.choice([0.0, 1.0], 192) if few_valued else rng.random(192)
    pl.DataFrame(
        {
            "step": group // 6,
            "group_id": group % 6,
            "accuracy": (rng.random(192) < 0.5).astype(float),
            "score": score * big,
        }
    ).write_parquet(path)
    return path


@pytest.mark.parametrize("big", [1e308, -1e308, 1e200])
@pytest.mark.parametrize("few_valued", [False, True])
@pytest.mark.parametrize("out", [False, True])
def test_huge_rewards_are_refused_naming_the_column(
    cli, tmp_path: Path, big: float, few_valued: bool, out: bool
) -> None:
    log = _edge_log(tmp_path / "log.parquet", big, few_valued=few_valued)
    args = ["analyze", log, "--json", *(["--out", tmp_path / "out"] if out else [])]
    result = cli(*args)
    assert result.code == 2, result.err
    assert "column 'score'" in result.err and "magnitude" in result.err
    assert "NaN" not in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("few_valued", [False, True])
def test_large_rewards_within_the_limit_give_finite_figures(
    cli, tmp_path: Path, few_valued: bool
) -> None:
    log = _edge_log(tmp_path / "log.parquet", MAX_REWARD / 10, few_valued=few_valued)
    result = cli("analyze", log, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    score = summary["objectives"]["score"]
    assert score["within_group_std"] is not None and score["within_group_std"] > 1e140
    for name, entry in summary["schemes"].items():
        assert all(value is not None for value in entry.values()), name
    unit = _edge_log(tmp_path / "unit.parquet", 1.0, few_valued=few_valued)
    small = json.loads(cli("analyze", unit, "--json").out)
    for name in ("grpo", "ac", "gdpo"):  # standardised per objective: scaling one changes none
        assert summary["schemes"][name]["mean_square"] == pytest.approx(
            small["schemes"][name]["mean_square"], rel=1e-9
        )


def test_groups_without_a_reward_are_not_saturated() -> None:
    """nan="ignore": a group where an objective has no reward counts in no objective sum of
    it (not saturated, no mean, no std): only in `groups`, not in `valid_groups`."""
    rewards = np.array([[1.0, np.nan], [0.0, np.nan], [1.0, 0.5], [1.0, 0.25]])  # 2 groups of 2
    columns = [np.ascontiguousarray(rewards[:, k]) for k in range(2)]
    out = engine.run(columns, segments(np.array([0, 0, 1, 1]), 2), None, 1, [0.5, 0.5], ("dvao",),
                     missing=True)  # fmt: skip
    m = out.moments
    sums = objective_sums(StepIndex(np.array([0, 0]), 1), m.size, m.count, m.mean, m.std,
                          m.lo, m.hi, m.dvao_weight, 0)  # fmt: skip
    assert sums.groups.tolist() == [2.0]
    assert sums.valid_groups.tolist() == [[2.0, 1.0]]
    assert sums.saturated.tolist() == [[1.0, 0.0]]  # accuracy saturated in group 1 only
    assert sums.all_pass.tolist() == [[1.0, 0.0]]
    assert sums.all_fail.tolist() == [[0.0, 0.0]]
    assert sums.valid.tolist() == [[4.0, 2.0]]
    assert sums.reward_sum.tolist() == [[3.0, 0.75]]
    assert sums.binary.tolist() == [True, False]


def test_an_objective_never_rewarded_is_not_saturated() -> None:
    rewards = np.array([[1.0, np.nan], [0.0, np.nan], [1.0, np.nan], [1.0, np.nan]])
    columns = [np.ascontiguousarray(rewards[:, k]) for k in range(2)]
    out = engine.run(columns, Blocks(2, 2), None, 1, [0.5, 0.5], table.SCHEMES, missing=True)
    m = replace(out.moments)
    sums = objective_sums(StepIndex(np.array([0, 1]), 2), m.size, m.count, m.mean, m.std,
                          m.lo, m.hi, m.dvao_weight, 0)  # fmt: skip
    assert sums.saturated[:, 1].tolist() == [0.0, 0.0]
    assert sums.valid_groups[:, 1].tolist() == [0.0, 0.0]
    assert sums.weight_sum[:, 1].tolist() == [0.0, 0.0]
    for adv in out.advantages.values():
        assert np.all(np.isfinite(adv))


def test_the_option_parser_loads_before_numpy() -> None:
    """The scheme names reach the command line's options without numpy: `runtime` sets the
    BLAS thread count before numpy loads."""
    loaded = _python("import sys, dvao_cli.cli.app; print('numpy' in sys.modules)")
    assert loaded == "False"


@pytest.mark.parametrize(
    "shape", [(1, 8), (3000, 16), (7, 24), (1025, 7), (0, 16), (4, 248), (3, 256), (2, 264)]
)
def test_row_count_matches_numpy(shape: tuple[int, int]) -> None:
    from dvao_cli.core.segments import row_count

    rng = np.random.default_rng(1)
    for p in (0.0, 0.3, 1.0):  # none, some, every value True: a row's count up to G
        mask = rng.random(shape) < p
        assert row_count(mask).dtype == np.int64
        np.testing.assert_array_equal(row_count(mask), mask.sum(1))
        np.testing.assert_array_equal(row_count(mask[:, ::-1]), mask.sum(1))  # not contiguous


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (3000, 16), (1025, 7), (0, 4)])
def test_short_row_reductions_match_numpy(shape: tuple[int, int]) -> None:
    from dvao_cli.core.segments import row_max, row_min, row_sum

    x = np.random.default_rng(0).random(shape)
    if x.size:
        x[0, 0] = np.nan  # propagates, as x.min(1) does: the engine's non-finite check
    np.testing.assert_array_equal(row_min(x), x.min(1))
    np.testing.assert_array_equal(row_max(x), x.max(1))
    np.testing.assert_allclose(row_sum(x), x.sum(1), rtol=1e-15)
    codes = (np.nan_to_num(x) * 100).astype(np.int64)
    np.testing.assert_array_equal(row_min(codes), codes.min(1))


def test_combine_is_the_weighted_sum_in_every_layout() -> None:
    """Segments.combine(c, x) = sum_k c_k[group] x_k: blocks (einsum) and ragged (a loop), numpy
    and torch."""
    import torch

    from dvao_cli.core.segments import Blocks, NumpyRagged, TorchRagged

    rng = np.random.default_rng(3)
    n, size, k_obj = 5, 4, 3
    x = rng.random((k_obj, n * size))  # (K, N)
    c = rng.random((k_obj, n))  # (K, n)
    group = np.repeat(np.arange(n), size)  # (N,)
    expected = (c[:, group] * x).sum(axis=0)  # (N,)
    blocks = Blocks(n, size)
    got = blocks.combine(c, x.reshape(k_obj, n, size)).reshape(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    torch_got = blocks.combine(torch.from_numpy(c), torch.from_numpy(x).reshape(k_obj, n, size))
    np.testing.assert_allclose(torch_got.reshape(-1).numpy(), expected, rtol=1e-15)
    np.testing.assert_allclose(NumpyRagged(group, n).combine(c, x), expected, rtol=1e-15)
    ragged = TorchRagged(torch.from_numpy(group), n)
    np.testing.assert_allclose(
        ragged.combine(torch.from_numpy(c), torch.from_numpy(x)).numpy(), expected, rtol=1e-15
    )


def test_combine_with_one_weight_per_objective_is_exact() -> None:
    """Coefficients alike in every group take the weight-vector pass: the same numbers as the
    per-group one (the engine makes the weighted numerator's alike where a 0/1 objective is
    constant, its deviations being exactly 0 there)."""
    from dvao_cli.core.segments import Blocks

    rng = np.random.default_rng(4)
    n, size = 7, 16
    x = rng.random((3, n, size))
    c = np.repeat(np.array([0.2, 0.3, 0.5])[:, None], n, axis=1)  # (K, n) alike per group
    got = Blocks(n, size).combine(c, x)
    np.testing.assert_array_equal(got, np.einsum("kg,kgj->gj", c, x))


def test_engine_constant_zero_one_objective_keeps_numbers() -> None:
    """A 0/1 objective constant in some groups: the weighted schemes equal the formula."""
    rng = np.random.default_rng(5)
    n, size = 6, 4
    acc = (rng.random(n * size) < 0.5).astype(float)
    acc[:size] = 1.0  # group 0: all pass
    score = rng.random(n * size)
    out = engine.run([acc, score], Blocks(n, size), None, 1, [0.4, 0.6], ("rc", "dvao"))
    r = np.stack([acc, score], axis=1).reshape(n, size, 2)
    dev = r - r.mean(axis=1, keepdims=True)  # (n, G, K)
    sigma = r.std(axis=1)  # (n, K)
    num = dev @ np.array([0.4, 0.6])  # (n, G)
    dvao = num / (sigma @ np.array([0.4, 0.6]))[:, None]
    rc = num / num.std(axis=1, keepdims=True)
    np.testing.assert_allclose(out.advantages["dvao"].reshape(n, size), dvao, rtol=1e-12)
    np.testing.assert_allclose(out.advantages["rc"].reshape(n, size), rc, rtol=1e-12)

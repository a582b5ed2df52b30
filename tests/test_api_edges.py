"""The dense helpers are as exact as compute_advantages on float32 rewards a
few ulps apart (they share its code path), and weights too small to compute with are refused
with an error naming them, rather than every advantage silently becoming 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvao_cli.advantages import (
    ac_advantages,
    compute_advantages,
    dvao_advantages,
    gdpo_advantages,
    grpo_advantages,
    rc_advantages,
)
from dvao_cli.errors import UsageError

DENSE = {
    "dvao": dvao_advantages,
    "rc": rc_advantages,
    "ac": ac_advantages,
    "gdpo": gdpo_advantages,
    "grpo": lambda r, *a, **k: grpo_advantages(r, 0, *a, **k),
}


def _ulp_rewards() -> torch.Tensor:
    """(3, 4, 2) float32: groups whose first objective differs by one ulp only, or by two."""
    a = np.float32(0.3)
    b = np.nextafter(a, np.float32(1))
    c = np.nextafter(b, np.float32(1))
    groups = [
        [[a, 0.5], [b, 0.5], [a, 0.5], [b, 0.5]],
        [[a, 0.0], [b, 0.0], [b, 0.0], [b, 0.0]],  # one response differs, the other objective flat
        [[a, 0.5], [c, 0.5], [b, 0.5], [a, 0.5]],
    ]
    return torch.tensor(groups, dtype=torch.float32)


@pytest.mark.parametrize("scheme", list(DENSE))
def test_dense_float32_is_as_exact_as_compute_advantages(scheme: str) -> None:
    rewards = _ulp_rewards()
    got = DENSE[scheme](rewards)
    assert got.dtype == torch.float32 and got.shape == (3, 4)
    group = torch.arange(3).repeat_interleave(4)
    ref = compute_advantages(rewards.reshape(12, 2), group, schemes=(scheme,))
    want = ref.advantages[scheme].to(torch.float32).view(3, 4)
    assert torch.equal(got, want)  # the same numbers, bit for bit
    sums = got.double().sum(dim=1)  # each group's advantages sum to 0 to float32 rounding
    assert sums.abs().max().item() <= 4 * np.finfo(np.float32).eps * got.abs().max().item()
    if scheme == "dvao":  # the one-ulp groups: +-1 and the 1 : 3 split, not 0 and sqrt(2)
        assert got[0].tolist() == [-1.0, 1.0, -1.0, 1.0]
        assert got[1].tolist() == pytest.approx([-(3**0.5), 3**-0.5, 3**-0.5, 3**-0.5], rel=1e-6)


def test_dense_dtype_and_numpy_input() -> None:
    rewards = _ulp_rewards()
    as64 = dvao_advantages(rewards, dtype=torch.float64)
    assert as64.dtype == torch.float64
    assert torch.equal(dvao_advantages(rewards), as64.to(torch.float32))
    from_numpy = dvao_advantages(rewards.numpy())
    assert from_numpy.dtype == torch.float64  # numpy input follows compute_advantages' default
    assert torch.equal(from_numpy.to(torch.float32), dvao_advantages(rewards))


@pytest.mark.parametrize("tiny", [1e-320, 5e-324, 1e-300, 1e-13])
def test_weights_too_small_to_compute_with_are_refused(tiny: float) -> None:
    rewards = _ulp_rewards()
    for call in (
        lambda: dvao_advantages(rewards, weights=[tiny, tiny]),
        lambda: rc_advantages(rewards, weights=[1.0, tiny]),
        lambda: compute_advantages(
            rewards.reshape(12, 2), torch.zeros(12, dtype=torch.long), None, [tiny, 1.0]
        ),
    ):
        with pytest.raises(UsageError, match=r"^weights: .* is too small to compute with"):
            call()
    with pytest.raises(UsageError, match="^weights are all 0"):
        dvao_advantages(rewards, weights=[0.0, 0.0])
    # 0 leaves an objective out, and 1e-12 is still a weight
    assert dvao_advantages(rewards, weights=[1.0, 0.0]).abs().sum() > 0
    small = dvao_advantages(rewards, weights=[1e-12, 1e-12])
    assert torch.equal(small, dvao_advantages(rewards))  # DVAO ignores a common scale


def test_cli_refuses_a_tiny_weight(cli, tmp_path) -> None:
    log = tmp_path / "log.parquet"
    assert cli("simulate", "-o", log, "--steps", "2", "--groups", "4", "-q").code == 0
    res = cli("analyze", log, "-w", "accuracy=1e-320", "-w", "format=1")
    assert res.code == 2
    assert res.err.startswith("error: --weight 'accuracy=1e-320': 1e-320 is too small to compute")
    assert res.err.count("\n") == 1

"""Per-chunk diagnostics over the engine's output: pure functions over tensors.

A chunk holds whole steps; rows are sorted by (step, group) with contiguous groups. Everything
here returns *sums and counts* per step (never means), so chunks add up exactly and the whole-log
summary is the same whatever the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Two advantages (or rewards) closer than this count as one value when counting distinct values.
DISTINCT_DECIMALS = 9
ZERO_TOL = 1e-12


@dataclass
class ChunkIndex:
    """Where each row and group sits. Shapes: N rows, G groups, S steps in this chunk."""

    group: torch.Tensor  # (N,) int64 group code, non-decreasing
    sizes: torch.Tensor  # (G,) rows per group
    group_step: torch.Tensor  # (G,) step code of each group
    row_step: torch.Tensor  # (N,) step code of each row
    steps: torch.Tensor  # (S,) the step values
    uniform: int  # the common group size when every group has it (and groups are contiguous), else 0

    @property
    def n_groups(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.steps.shape[0])


def chunk_index(step: torch.Tensor, group: torch.Tensor, sizes: torch.Tensor) -> ChunkIndex:
    """Build the index from the per-row step values and contiguous group codes."""
    n_groups = int(sizes.shape[0])
    starts = torch.zeros(n_groups, dtype=torch.long, device=group.device)
    if n_groups > 1:
        starts[1:] = torch.cumsum(sizes, 0)[:-1]
    step_of_group = step[starts]  # (G,) step value at each group's first row
    steps, group_step = torch.unique_consecutive(step_of_group, return_inverse=True)
    row_step = group_step[group]
    uniform = int(sizes[0]) if n_groups and bool((sizes == sizes[0]).all()) else 0
    return ChunkIndex(group, sizes, group_step, row_step, steps, uniform)


def segment_sum(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of `values` (N, ...) into `n` segments by `index` (N,)."""
    out = torch.zeros((n, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, index, values)


def segment_amax(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.full((n, *values.shape[1:]), -torch.inf, dtype=values.dtype, device=values.device)
    idx = index.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return out.scatter_reduce_(0, idx, values, reduce="amax", include_self=True)


def segment_amin(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    return -segment_amax(-values, index, n)


def group_sum(values: torch.Tensor, ix: ChunkIndex) -> torch.Tensor:
    """Sum rows (N, ...) into their groups (G, ...): a reshape when groups are uniform."""
    if ix.uniform:
        return values.view(ix.n_groups, ix.uniform, *values.shape[1:]).sum(dim=1)
    return segment_sum(values, ix.group, ix.n_groups)


def group_amax(values: torch.Tensor, ix: ChunkIndex) -> torch.Tensor:
    if ix.uniform:
        return values.view(ix.n_groups, ix.uniform, *values.shape[1:]).amax(dim=1)
    return segment_amax(values, ix.group, ix.n_groups)


def step_sum(group_values: torch.Tensor, ix: ChunkIndex) -> torch.Tensor:
    """Sum per-group values (G, ...) into their steps (S, ...)."""
    return segment_sum(group_values, ix.group_step, ix.n_steps)


def group_extremes(rewards: torch.Tensor, ix: ChunkIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group and objective min and max, NaN rewards skipped. Shapes (G, K)."""
    if ix.uniform:
        grouped = rewards.view(ix.n_groups, ix.uniform, -1)  # (G, size, K)
        lo = torch.where(torch.isnan(grouped), torch.inf, grouped).amin(dim=1)
        hi = torch.where(torch.isnan(grouped), -torch.inf, grouped).amax(dim=1)
        return lo, hi
    lo = segment_amin(torch.where(torch.isnan(rewards), torch.inf, rewards), ix.group, ix.n_groups)
    hi = segment_amax(torch.where(torch.isnan(rewards), -torch.inf, rewards), ix.group, ix.n_groups)
    return lo, hi


def distinct_per_group(values: torch.Tensor, ix: ChunkIndex) -> torch.Tensor:
    """Number of distinct values of `values` (N,) in each group, shape (G,).

    Values are rounded to DISTINCT_DECIMALS first so that float noise is not a distinct value.
    """
    keyed = torch.round(values * 10**DISTINCT_DECIMALS)
    if ix.uniform:
        ordered = keyed.view(ix.n_groups, ix.uniform).sort(dim=1).values  # (G, size)
        return 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)
    order = torch.argsort(keyed, stable=True)
    order = order[torch.argsort(ix.group[order], stable=True)]  # by group, then value
    sorted_vals, sorted_group = keyed[order], ix.group[order]
    new_value = torch.ones_like(sorted_vals, dtype=torch.bool)
    new_value[1:] = (sorted_vals[1:] != sorted_vals[:-1]) | (sorted_group[1:] != sorted_group[:-1])
    return segment_sum(new_value.to(torch.long), sorted_group, ix.n_groups)


def reward_vector_key(rewards: torch.Tensor) -> torch.Tensor:
    """One float per row that differs when the row's reward vector differs (N, K) -> (N,).

    Rounded rewards projected on fixed, incommensurable coefficients: two different vectors of
    rewards in [0, 1] collide only by accident of measure zero at this rounding.
    """
    k = rewards.shape[1]
    coeffs = torch.tensor(
        [1.0, 0.7548776662466927, 0.5698402909980532, 0.4301597090019468, 0.3247179572447460,
         0.2451223337533073, 0.1850371707708594, 0.1396822555172617][:k]
        if k <= 8
        else torch.linspace(1.0, 0.1, k).tolist(),
        dtype=rewards.dtype,
        device=rewards.device,
    )
    q = torch.round(torch.nan_to_num(rewards, nan=-1.0) * 1e6)
    return (q * coeffs).sum(dim=1) * 1e-6


@dataclass
class ObjectiveSums:
    """Per step (S,) or per step and objective (S, K): sums and counts, never means."""

    rows: torch.Tensor  # (S,) responses
    groups: torch.Tensor  # (S,) groups
    valid: torch.Tensor  # (S, K) non-NaN rewards
    reward_sum: torch.Tensor  # (S, K)
    std_sum: torch.Tensor  # (S, K) sum over groups of the within-group std
    saturated: torch.Tensor  # (S, K) groups with zero within-group variance
    all_pass: torch.Tensor  # (S, K) groups where every reward is 1
    all_fail: torch.Tensor  # (S, K) groups where every reward is 0
    weight_sum: torch.Tensor  # (S, K) sum over groups of the DVAO weight
    binary: torch.Tensor  # (K,) every reward in {0, 1} (NaN skipped)


def objective_sums(
    rewards: torch.Tensor,
    group_std: torch.Tensor,
    dvao_weight: torch.Tensor,
    ix: ChunkIndex,
) -> ObjectiveSums:
    """rewards (N, K); group_std and dvao_weight (G, K) from the engine."""
    s = ix.n_steps
    dtype = rewards.dtype
    nan = torch.isnan(rewards)
    lo, hi = group_extremes(rewards, ix)  # (G, K)
    # saturated: no spread at all (max == min); all-NaN groups count as saturated (no signal)
    saturated = (hi <= lo) | torch.isinf(lo)
    all_pass = saturated & (lo == 1)
    all_fail = saturated & (hi == 0)
    binary = ((rewards == 0) | (rewards == 1) | nan).all(dim=0)
    ones_g = torch.ones(ix.n_groups, dtype=dtype, device=rewards.device)
    valid_g = group_sum((~nan).to(dtype), ix)  # (G, K)
    reward_g = group_sum(torch.nan_to_num(rewards, nan=0.0), ix)  # (G, K)
    return ObjectiveSums(
        rows=step_sum(ix.sizes.to(dtype), ix),
        groups=step_sum(ones_g, ix),
        valid=step_sum(valid_g, ix),
        reward_sum=step_sum(reward_g, ix),
        std_sum=step_sum(group_std, ix),
        saturated=step_sum(saturated.to(dtype), ix),
        all_pass=step_sum(all_pass.to(dtype), ix),
        all_fail=step_sum(all_fail.to(dtype), ix),
        weight_sum=step_sum(dvao_weight, ix),
        binary=binary,
    )


@dataclass
class SchemeSums:
    """One scheme's per-step sums (S,)."""

    square_sum: torch.Tensor
    max_abs: torch.Tensor
    zeros: torch.Tensor
    distinct_adv: torch.Tensor  # sum over groups of distinct advantage values
    distinct_rew: torch.Tensor  # sum over groups of distinct reward vectors


def scheme_sums(adv: torch.Tensor, distinct_rewards: torch.Tensor, ix: ChunkIndex) -> SchemeSums:
    """adv (N,) one scheme's advantages; distinct_rewards (G,) distinct reward vectors per group
    (from `distinct_per_group(reward_vector_key(rewards), ix)`, computed once for all schemes)."""
    s = ix.n_steps
    abs_adv = adv.abs()
    return SchemeSums(
        square_sum=step_sum(group_sum(adv * adv, ix), ix),
        max_abs=segment_amax(group_amax(abs_adv, ix), ix.group_step, s),
        zeros=step_sum(group_sum((abs_adv <= ZERO_TOL).to(adv.dtype), ix), ix),
        distinct_adv=step_sum(distinct_per_group(adv, ix).to(adv.dtype), ix),
        distinct_rew=step_sum(distinct_rewards.to(adv.dtype), ix),
    )


@dataclass
class PairSums:
    """Within-group Pearson correlation sums over groups where both objectives vary."""

    corr_sum: torch.Tensor  # (K, K)
    count: torch.Tensor  # (K, K)


def correlation_sums(
    rewards: torch.Tensor, group_mean: torch.Tensor, group_std: torch.Tensor, ix: ChunkIndex
) -> PairSums:
    """Population Pearson per group: mean(dx * dy) / (sd_x sd_y); NaN rewards add nothing."""
    k = rewards.shape[1]
    centred = torch.nan_to_num(rewards - group_mean[ix.group], nan=0.0)  # (N, K)
    varies = group_std > 0  # (G, K)
    sizes = ix.sizes.to(rewards.dtype)
    corr_sum = torch.zeros((k, k), dtype=rewards.dtype, device=rewards.device)
    count = torch.zeros((k, k), dtype=rewards.dtype, device=rewards.device)
    for a in range(k):
        corr_sum[a, a] = varies[:, a].sum()
        count[a, a] = varies[:, a].sum()
        for b in range(a + 1, k):
            both = varies[:, a] & varies[:, b]
            cov = group_sum(centred[:, a] * centred[:, b], ix) / sizes
            denom = torch.where(both, group_std[:, a] * group_std[:, b], torch.ones_like(cov))
            rho = torch.where(both, (cov / denom).clamp(-1.0, 1.0), torch.zeros_like(cov))
            corr_sum[a, b] = corr_sum[b, a] = rho.sum()
            count[a, b] = count[b, a] = both.sum()
    return PairSums(corr_sum, count)


@dataclass
class AgreementSums:
    """Agreement of one scheme with `logged_advantage` over rows where it is finite."""

    n: float
    max_diff: float
    sx: float
    sy: float
    sxx: float
    syy: float
    sxy: float


def agreement_sums(adv: torch.Tensor, logged: torch.Tensor) -> AgreementSums:
    ok = torch.isfinite(logged)
    x, y = adv[ok], logged[ok]
    if x.numel() == 0:
        return AgreementSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return AgreementSums(
        n=float(x.numel()),
        max_diff=float((x - y).abs().max()),
        sx=float(x.sum()),
        sy=float(y.sum()),
        sxx=float((x * x).sum()),
        syy=float((y * y).sum()),
        sxy=float((x * y).sum()),
    )

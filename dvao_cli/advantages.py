"""The advantage engine: every multi-reward scheme, vectorised over groups, on CPU or CUDA.

Notation (docs/schemes.md): N responses, K objectives, rewards r (N, K), a group index (N,)
mapping each response to its prompt-at-a-step, a step index (N,), preference weights w (K,).
Inside a group, mu_k / sigma_k are the mean / std of objective k (std with `ddof`, `eps` added
to every std that divides):

    grpo   (r_p - mu_p) / (sigma_p + eps)                       one primary objective p
    rc     s = sum_k w_k r_k, (s - mean s) / (std s + eps)
    ac     sum_k w_k (r_k - mu_k) / (sigma_k + eps)
    gdpo   ac, then (x - mean x) / (std x + eps) over all responses of the same step
    dvao   sum_k w_k (r_k - mu_k) / (sum_l w_l sigma_l + eps)

Zero variance never yields NaN or inf: a normaliser that is 0 gives advantage 0. An objective
whose values are all equal inside a group has sigma_k = 0 exactly (tested with min == max, not
with a rounded std), contributes nothing and gets DVAO weight 0. A combined std (RC's std s,
GDPO's step std) below 64 ulps of the magnitude of the terms it came from is rounding noise
(e.g. anti-correlated objectives whose weighted sum is constant): the deviations it would
divide are noise as well, and the advantage is 0, whatever eps.

Layout and speed: the work loops over the K objectives (K is small), never over groups. Each
objective's column is copied once into a contiguous (N,) buffer; groups are reduced either by a
reshape to (groups, G) when every group has G rows stored contiguously (the fast path) or by
segment reductions (index_add_ / scatter_reduce) for ragged or interleaved groups. Advantages
are accumulated in (N,) buffers, so no (N, K) temporary is ever materialised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dvao_cli.errors import InputError, UsageError
from dvao_cli.options import SCHEMES, check_schemes
from dvao_cli.sums import NOISE_ULPS as _NOISE_ULPS

NAN_POLICIES = ("error", "drop", "ignore")

__all__ = [
    "SCHEMES",
    "AdvantageResult",
    "GroupStats",
    "ac_advantages",
    "as_tensor",
    "check_schemes",
    "compute_advantages",
    "default_dtype",
    "dvao_advantages",
    "gdpo_advantages",
    "group_stats",
    "grpo_advantages",
    "rc_advantages",
    "resolve_device",
    "segment_whiten",
]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStats:
    """Per-group statistics; row g describes group code g.

    mean, std (G, K): per objective, over the group's non-missing rewards (std with ddof; 0 for
        a constant objective or when fewer than ddof + 1 rewards are present).
    dvao_weight (G, K): w~_k = w_k sigma_k / sum_l w_l sigma_l (0 where every sigma is 0).
    count (G, K): non-missing rewards per objective (the group size unless nan="ignore").
    rc_std (G,): std of the weighted sum s = sum_k w_k r_k (0 when it is constant).
    size (G,): rows per group (int64).
    """

    mean: Tensor
    std: Tensor
    dvao_weight: Tensor
    count: Tensor
    rc_std: Tensor
    size: Tensor


@dataclass(frozen=True)
class AdvantageResult:
    """`advantages[scheme]` is an (N,) tensor in the input's row order, one entry per scheme
    asked for; `stats` the per-group statistics; `weights` (K,) the weights used."""

    advantages: dict[str, Tensor]
    stats: GroupStats
    weights: Tensor


# --------------------------------------------------------------------------------------------
# Device, dtype and conversion
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | Any = "auto") -> torch.device:
    """'auto' -> cuda when available else cpu; 'cpu' / 'cuda' / 'cuda:1' / a torch.device as is.

    Raises UsageError for an unknown name or CUDA asked for on a machine without it.
    """
    name = getattr(device, "value", device)  # the CLI's Device enum
    if isinstance(name, torch.device):
        resolved = name
    else:
        name = str(name)
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            resolved = torch.device(name)
        except RuntimeError:
            raise UsageError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' was asked for but CUDA is not available (use --device cpu)")
    if resolved.type not in ("cpu", "cuda"):
        raise UsageError(f"unsupported device '{resolved}' (use auto, cpu or cuda)")
    return resolved


def default_dtype(device: torch.device) -> torch.dtype:
    """float64 on CPU (exact statistics are cheap there), float32 on CUDA."""
    return torch.float32 if device.type == "cuda" else torch.float64


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, str):
        table = {"float32": torch.float32, "float64": torch.float64, "double": torch.float64}
        if dtype not in table:
            raise UsageError(f"unsupported dtype '{dtype}' (use float32 or float64)")
        return table[dtype]
    if dtype not in (torch.float32, torch.float64):
        raise UsageError(f"unsupported dtype '{dtype}' (use torch.float32 or torch.float64)")
    return dtype


def as_tensor(
    x: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    name: str = "input",
) -> Tensor:
    """A numpy array, sequence or tensor -> tensor (zero-copy for numpy/tensors when possible).

    Without `dtype`/`device` the data keeps its own; raises UsageError for non-numeric data.
    """
    if isinstance(x, Tensor):
        t = x
    else:
        try:
            import numpy as np

            # sequences go through numpy so python floats stay float64 (torch would pick float32)
            arr = x if isinstance(x, np.ndarray) else np.asarray(x)
            if arr.dtype == object or arr.dtype.kind not in "biuf":
                raise TypeError(arr.dtype)
            if not arr.flags.writeable:
                arr = arr.copy()  # torch.from_numpy warns on read-only arrays (e.g. from arrow)
            t = torch.from_numpy(arr)
        except (TypeError, ValueError, RuntimeError):
            raise UsageError(f"{name} must be a numeric array or tensor") from None
    if t.is_complex():
        raise UsageError(f"{name} must be real numbers, not {t.dtype}")
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def _as_codes(x: Any, n_rows: int, name: str, device: torch.device) -> Tensor:
    """An integer index (N,) as int64 on `device`."""
    t = as_tensor(x, name=name)
    if t.ndim != 1 or t.shape[0] != n_rows:
        raise UsageError(f"{name} must have shape ({n_rows},), got {tuple(t.shape)}")
    if t.is_floating_point():
        raise UsageError(f"{name} must be integers, got {t.dtype}")
    return t.to(device=device, dtype=torch.int64)


def _check_weights(weights: Any, k: int) -> list[float]:
    """Weights as K python floats (used as given); default 1/K."""
    if weights is None:
        return [1.0 / k] * k
    t = as_tensor(weights, name="weights").to(dtype=torch.float64, device="cpu").reshape(-1)
    if t.shape[0] != k:
        raise UsageError(f"weights must have one entry per objective ({k}), got {t.shape[0]}")
    values = t.tolist()
    for value in values:
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"weights must be finite and >= 0, got {value}")
    return values


def _check_common(ddof: int, eps: float, nan: Any) -> str:
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise UsageError(f"ddof must be an integer >= 0, got {ddof!r}")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps must be a finite number >= 0, got {eps!r}")
    policy = str(getattr(nan, "value", nan))
    if policy not in NAN_POLICIES:
        raise UsageError(f"nan must be one of {', '.join(NAN_POLICIES)}, got '{policy}'")
    return policy


# --------------------------------------------------------------------------------------------
# Segments: how rows map to groups. Two layouts share one interface.
# --------------------------------------------------------------------------------------------


class _Blocks:
    """Fast path: n groups of G rows, group b stored in rows [b*G, (b+1)*G).

    Values live in a (n, G) view; per-group statistics are (n,) in block order; `order` (n,)
    maps block -> group code when the blocks are not in code order.
    """

    def __init__(self, n: int, size: int, order: Tensor | None = None) -> None:
        self.n = n
        self.g = size
        self.order = order

    def sizes(self, device: torch.device) -> Tensor:
        return torch.full((self.n,), self.g, dtype=torch.int64, device=device)

    def layout(self, x: Tensor) -> Tensor:  # (N,) -> (n, G)
        return x.view(self.n, self.g)

    def flat(self, xl: Tensor) -> Tensor:  # (n, G) -> (N,)
        return xl.reshape(-1)

    def sum(self, xl: Tensor) -> Tensor:  # (n, G) -> (n,)
        return xl.sum(1)

    def sumsq(self, xl: Tensor) -> Tensor:  # (n, G) -> (n,), no (N,) temporary
        return row_dot(xl, xl)

    def minmax(self, lo_src: Tensor, hi_src: Tensor) -> tuple[Tensor, Tensor]:
        # amin + amax: 3x faster on CPU than torch.aminmax along a short inner dim (measured)
        return lo_src.amin(1), hi_src.amax(1)

    def expand(self, stat: Tensor) -> Tensor:  # (n,) -> broadcastable (n, 1)
        return stat[:, None]

    def to_codes(self, stat: Tensor) -> Tensor:  # block order -> group-code order
        if self.order is None:
            return stat
        out = torch.empty_like(stat)
        out[self.order] = stat
        return out


class _Ragged:
    """General path: any group sizes, any row order; segment reductions over `index` (N,)."""

    def __init__(self, index: Tensor, n: int) -> None:
        self.index = index
        self.n = n
        self._sizes = torch.bincount(index, minlength=n) if index.numel() else None

    def sizes(self, device: torch.device) -> Tensor:
        if self._sizes is None:
            return torch.zeros(self.n, dtype=torch.int64, device=device)
        return self._sizes

    def layout(self, x: Tensor) -> Tensor:
        return x

    def flat(self, xl: Tensor) -> Tensor:
        return xl

    def sum(self, xl: Tensor) -> Tensor:
        return torch.zeros(self.n, dtype=xl.dtype, device=xl.device).index_add_(0, self.index, xl)

    def sumsq(self, xl: Tensor) -> Tensor:
        return self.sum(xl * xl)

    def minmax(self, lo_src: Tensor, hi_src: Tensor) -> tuple[Tensor, Tensor]:
        # an empty group keeps (+big, -big): +-inf for floats, the int64 extremes for integers
        if lo_src.is_floating_point():
            top, bottom = math.inf, -math.inf
        else:
            top, bottom = torch.iinfo(lo_src.dtype).max, torch.iinfo(lo_src.dtype).min
        lo = torch.full((self.n,), top, dtype=lo_src.dtype, device=lo_src.device)
        hi = torch.full((self.n,), bottom, dtype=hi_src.dtype, device=hi_src.device)
        lo.scatter_reduce_(0, self.index, lo_src, "amin", include_self=True)
        hi.scatter_reduce_(0, self.index, hi_src, "amax", include_self=True)
        return lo, hi

    def expand(self, stat: Tensor) -> Tensor:  # (n,) -> (N,)
        return stat.index_select(0, self.index)

    def to_codes(self, stat: Tensor) -> Tensor:
        return stat


def _segments(codes: Tensor, n: int) -> _Blocks | _Ragged:
    """Pick the fast path when all n groups have the same size and contiguous rows."""
    rows = codes.shape[0]
    if n > 0 and rows % n == 0:
        size = rows // n
        view = codes.view(n, size)
        first = view[:, 0]  # (n,) the code of each block
        if bool((view == first[:, None]).all()):
            if bool((first == torch.arange(n, device=codes.device)).all()):
                return _Blocks(n, size)
            if bool((torch.bincount(first, minlength=n) == 1).all()):
                return _Blocks(n, size, order=first)
    return _Ragged(codes, n)


def row_dot(a: Tensor, b: Tensor) -> Tensor:
    """(n, G), (n, G) -> (n,) sum over each row of a * b, without an (n, G) temporary.

    einsum, not linalg.vecdot: 2.5x faster on CPU for short rows (G = 16, measured)."""
    return torch.einsum("ij,ij->i", a, b)


def _dense_codes(values: Tensor) -> tuple[Tensor, int]:
    """Arbitrary integer labels (M,) -> dense codes 0..S-1 (M,), S. Sorted input skips the sort."""
    if values.numel() == 0:
        return values.clone(), 0
    if values.numel() == 1 or bool((values[1:] >= values[:-1]).all()):
        change = torch.zeros_like(values)
        change[1:] = values[1:] != values[:-1]
        codes = torch.cumsum(change, 0)
        return codes, int(codes[-1].item()) + 1
    uniq, codes = torch.unique(values, return_inverse=True)
    return codes, int(uniq.numel())


# --------------------------------------------------------------------------------------------
# Whitening
# --------------------------------------------------------------------------------------------


def _whiten(
    xl: Tensor,
    seg: _Blocks | _Ragged,
    parent: Tensor | None,
    n_parent: int,
    ddof: int,
    eps: float,
    scale: Tensor | None = None,
) -> Tensor:
    """(x - mean) / (std + eps) over parents of segments (e.g. steps made of groups).

    xl: values in seg's layout. parent (seg.n,) maps each segment to a parent 0..n_parent-1;
    None whitens every segment on its own. Returns a new tensor in seg's layout.

    A std below 64 ulps of `scale` (seg.n,), the magnitude of the terms each segment's values
    were summed from, is rounding noise: the centred values are noise too and come out 0, with
    any eps (AC identically 0 by cancellation must not be whitened into advantages of size 1).
    Without `scale`, the values' own magnitude is used, and a parent whose values are all equal
    gives 0.
    """
    dtype, device = xl.dtype, xl.device

    def up(stat: Tensor) -> Tensor:  # (seg.n,) -> (n_parent,)
        if parent is None:
            return stat
        return torch.zeros(n_parent, dtype=stat.dtype, device=device).index_add_(0, parent, stat)

    def down(stat: Tensor) -> Tensor:  # (n_parent,) -> (seg.n,)
        return stat if parent is None else stat.index_select(0, parent)

    count = up(seg.sizes(device).to(dtype))  # (n_parent,)
    mean = up(seg.sum(xl)) / count.clamp(min=1)
    out = xl - seg.expand(down(mean))  # centred, seg layout
    dof = count - ddof
    var = torch.where(dof > 0, up(seg.sumsq(out)) / dof.clamp(min=1), torch.zeros_like(count))
    std = var.sqrt()
    tol = _NOISE_ULPS * torch.finfo(dtype).eps
    if scale is not None:
        if parent is not None:
            scale = torch.zeros(n_parent, dtype=dtype, device=device).scatter_reduce_(
                0, parent, scale, "amax"
            )
        noise = std <= tol * scale
    else:
        lo, hi = seg.minmax(xl, xl)
        if parent is not None:
            lo = torch.full((n_parent,), math.inf, dtype=dtype, device=device).scatter_reduce_(
                0, parent, lo, "amin"
            )
            hi = torch.full((n_parent,), -math.inf, dtype=dtype, device=device).scatter_reduce_(
                0, parent, hi, "amax"
            )
        noise = (std <= tol * torch.maximum(lo.abs(), hi.abs())) | (hi == lo)
    denom = torch.where(noise, torch.zeros_like(std), std) + eps
    # a noise std means the centred values are noise too: 0, whatever eps
    inv = torch.where((denom > 0) & ~noise, 1.0 / torch.where(denom > 0, denom, 1.0), 0.0)
    out.mul_(seg.expand(down(inv)))
    return out


def segment_whiten(
    x: Any,
    segment: Any = None,
    *,
    ddof: int = 0,
    eps: float = 0.0,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """(x - mean) / (std + eps) within each segment (e.g. GDPO's whitening over a step).

    x (N,) values; segment (N,) integer labels (any values, any order; None = one segment).
    A segment whose std (plus eps) is 0 gives 0. Returns (N,) on the chosen device.
    """
    _check_common(ddof, eps, "error")
    dev = resolve_device(device)
    dt = _resolve_dtype(dtype, dev)
    xt = as_tensor(x, name="x")
    if xt.ndim != 1:
        raise UsageError(f"x must have shape (N,), got {tuple(xt.shape)}")
    values = torch.empty(xt.shape[0], dtype=dt, device=dev)
    values.copy_(xt)
    if values.numel() == 0:
        return values
    if segment is None:
        seg: _Blocks | _Ragged = _Blocks(1, values.shape[0])
    else:
        codes, n = _dense_codes(_as_codes(segment, values.shape[0], "segment", dev))
        seg = _segments(codes, n)
    with torch.no_grad():
        out = _whiten(seg.layout(values), seg, None, seg.n, ddof, float(eps))
    return seg.flat(out)


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def _engine(
    source: Tensor,
    seg: _Blocks | _Ragged,
    step_parent: tuple[Tensor | None, int],
    weights: list[float],
    schemes: tuple[str, ...],
    ddof: int,
    eps: float,
    primary: int,
    nan: str,
    device: torch.device,
    dtype: torch.dtype,
) -> AdvantageResult:
    """Core computation. source (N, K) on any device/dtype (columns are copied one at a time);
    seg maps rows to groups; step_parent = (group -> step code (seg.n,) or None, n_steps)."""
    n_rows, k_obj = source.shape
    n = seg.n
    ignore = nan == "ignore"
    want = set(schemes)
    zeros_n = torch.zeros(n, dtype=dtype, device=device)
    sizes = seg.sizes(device)  # (n,) int64
    size_f = sizes.to(dtype)

    # (N,) buffer reused per objective: the raw column, then (in place) the centred column
    col = torch.empty(n_rows, dtype=dtype, device=device)
    col_l = cen_l = seg.layout(col)

    means, stds, counts, scales = [], [], [], []  # K x (n,)
    num = None  # sum_k w_k [sigma_k>0] (r_k - mu_k), layout: DVAO's numerator, RC's s - mean s
    ac = None  # sum_k w_k (r_k - mu_k) / (sigma_k + eps), layout
    ac_scale = None  # (n,) sum_k |w_k| max|r_k - mu_k| / (sigma_k + eps): GDPO's noise floor
    grpo = None
    s_sum = None  # nan="ignore": s = sum_k w_k r_k with missing rewards adding nothing
    present = None  # nan="ignore": rows with at least one reward (layout, bool)
    need_num = (not ignore) or ("dvao" in want)
    need_ac = bool(want & {"ac", "gdpo"})

    # Without NaN handling every objective shares the group sizes: precompute 1 / (size - ddof).
    full_dof = size_f - ddof  # (n,)
    full_inv_dof = torch.where(full_dof > 0, 1.0 / full_dof.clamp(min=1), zeros_n)
    size_one = size_f.clamp(min=1)  # an unused group code has size 0: mean 0, not NaN
    for k in range(k_obj):
        w_k = weights[k]
        col.copy_(source[:, k])
        if ignore:
            ok = torch.isfinite(col_l)  # (layout) bool
            count = seg.sum(ok.to(dtype))  # (n,)
            lo, hi = seg.minmax(torch.where(ok, col_l, math.inf), torch.where(ok, col_l, -math.inf))
            col_l.masked_fill_(~ok, 0.0)
            present = ok if present is None else present.logical_or_(ok)
            s_sum = col_l * w_k if s_sum is None else s_sum.add_(col_l, alpha=w_k)
            dof = count - ddof
            inv_dof = torch.where(dof > 0, 1.0 / dof.clamp(min=1), zeros_n)
            mean = seg.sum(col_l).div_(count.clamp(min=1))  # (n,)
        else:
            ok = None
            count = size_f
            inv_dof = full_inv_dof
            lo, hi = seg.minmax(col_l, col_l)
            mean = seg.sum(col_l).div_(size_one)  # (n,)
        cen_l.sub_(seg.expand(mean))  # col_l is not used raw after this
        if ok is not None:
            cen_l.masked_fill_(~ok, 0.0)
        # An objective constant in the group (or with too few rewards) has sigma exactly 0:
        # decided by min == max, which is exact, not by a rounded std.
        varies = (hi != lo).logical_and_(inv_dof > 0)  # (n,) bool
        vf = varies.to(dtype)
        std = seg.sumsq(cen_l).mul_(inv_dof).sqrt_().mul_(vf)  # (n,)
        # 1 / (sigma + eps) where the objective varies (then sigma > 0), else 0
        inv = torch.where(varies, std + eps, 1.0).reciprocal_().mul_(vf)
        if need_num:
            term = seg.expand(vf * w_k)
            num = cen_l * term if num is None else num.addcmul_(cen_l, term)
        if need_ac:
            coef = seg.expand(inv * w_k)
            ac = cen_l * coef if ac is None else ac.addcmul_(cen_l, coef)
            if "gdpo" in want:  # the size of this objective's terms in AC
                spread = torch.maximum(hi - mean, mean - lo)  # (n,) max |r_k - mu_k|
                size_k = torch.where(varies, spread * inv * abs(w_k), 0.0)
                ac_scale = size_k if ac_scale is None else ac_scale.add_(size_k)
        if k == primary and "grpo" in want:
            grpo = cen_l * seg.expand(inv)
        means.append(mean)
        stds.append(std)
        counts.append(count)
        # magnitude of the objective's values, for RC's noise floor
        if ignore:
            lo = torch.where(ok_any := count > 0, lo, 0.0)
            hi = torch.where(ok_any, hi, 0.0)
        scales.append(torch.maximum(lo.abs_(), hi.abs_()))

    mean_nk = torch.stack(means, dim=1)  # (n, K)
    finite = torch.isfinite(mean_nk).all(0)  # (K,)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0, 0])
        raise InputError(
            f"objective {k}: rewards contain NaN or inf; validate them or use nan='ignore'"
        )
    std_nk = torch.stack(stds, dim=1)  # (n, K)
    w_t = torch.tensor(weights, dtype=dtype, device=device)  # (K,)
    wsig = std_nk @ w_t  # (n,) sum_l w_l sigma_l
    dvao_weight = torch.where(
        wsig[:, None] > 0, std_nk * w_t / torch.where(wsig > 0, wsig, 1.0)[:, None], 0.0
    )

    # RC: deviations of s from its group mean, then its std.
    if ignore:
        s_mean = seg.sum(s_sum).div_(size_one)
        dev = s_sum.sub_(seg.expand(s_mean))  # owned: scaled in place below
    else:
        dev = num  # sum_k w_k [sigma_k > 0] (r_k - mu_k) = s - mean s (shared with DVAO)
    rc_std = seg.sumsq(dev).mul_(full_inv_dof).sqrt_()  # (n,)
    # A std below the rounding noise of s's terms: s is constant by cancellation, so its
    # deviations are noise too and RC's advantage is 0 (whatever eps).
    scale_s = torch.stack(scales, dim=1) @ w_t.abs()  # (n,) magnitude of s's terms
    rc_noise = rc_std <= scale_s.mul_(_NOISE_ULPS * torch.finfo(dtype).eps)
    rc_std = torch.where(rc_noise, zeros_n, rc_std)

    def inverse(denom: Tensor) -> Tensor:  # (n,) 1 / denom, 0 where denom is 0
        return torch.where(denom > 0, denom, 1.0).reciprocal_().mul_(denom > 0)

    adv: dict[str, Tensor] = {}
    if "rc" in want:
        inv = seg.expand(inverse(rc_std + eps).masked_fill_(rc_noise, 0.0))
        adv["rc"] = dev.mul_(inv) if ignore else dev * inv
    if "dvao" in want:
        adv["dvao"] = num.mul_(seg.expand(inverse(wsig + eps)))  # num is not used after this
    if "ac" in want:
        adv["ac"] = ac  # _whiten below returns a new tensor
    if "gdpo" in want:
        parent, n_steps = step_parent
        adv["gdpo"] = _whiten(ac, seg, parent, n_steps, ddof, eps, scale=ac_scale)
    if grpo is not None:
        adv["grpo"] = grpo
    if ignore and present is not None:
        for name in ("rc", "gdpo"):  # a row without any reward gets 0 (ac/dvao/grpo already 0)
            if name in adv:
                adv[name].masked_fill_(~present, 0.0)

    ordered = {name: seg.flat(adv[name]) for name in schemes}
    stats = GroupStats(
        mean=seg.to_codes(mean_nk),
        std=seg.to_codes(std_nk),
        dvao_weight=seg.to_codes(dvao_weight),
        count=seg.to_codes(torch.stack(counts, dim=1).to(torch.int64)),
        rc_std=seg.to_codes(rc_std),
        size=seg.to_codes(sizes),
    )
    return AdvantageResult(advantages=ordered, stats=stats, weights=w_t)


def _empty_result(
    n_groups: int, k_obj: int, weights: list[float], schemes: tuple[str, ...], device, dtype
) -> AdvantageResult:
    def z(*shape: int, dt: torch.dtype = dtype) -> Tensor:
        return torch.zeros(*shape, dtype=dt, device=device)

    stats = GroupStats(
        mean=z(n_groups, k_obj),
        std=z(n_groups, k_obj),
        dvao_weight=z(n_groups, k_obj),
        count=z(n_groups, k_obj, dt=torch.int64),
        rc_std=z(n_groups),
        size=z(n_groups, dt=torch.int64),
    )
    return AdvantageResult(
        advantages={name: z(0) for name in schemes},
        stats=stats,
        weights=torch.tensor(weights, dtype=dtype, device=device),
    )


def _check_rewards(rewards: Any, *, ndim: int) -> Tensor:
    t = as_tensor(rewards, name="rewards")
    if t.ndim != ndim:
        shape = "(N, K)" if ndim == 2 else "(num_prompts, G, K)"
        raise UsageError(f"rewards must have shape {shape}, got {tuple(t.shape)}")
    if t.shape[-1] == 0:
        raise UsageError("rewards must have at least one objective (K >= 1)")
    return t


def _check_primary(primary: int, k_obj: int) -> None:
    if isinstance(primary, bool) or not isinstance(primary, int) or not 0 <= primary < k_obj:
        raise UsageError(f"primary must be an objective index in 0..{k_obj - 1}, got {primary!r}")


@torch.no_grad()
def compute_advantages(
    rewards: Any,
    group: Any,
    step: Any = None,
    weights: Any = None,
    *,
    schemes: Sequence[str] = SCHEMES,
    ddof: int = 0,
    eps: float = 0.0,
    primary: int = 0,
    nan: str = "error",
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
) -> AdvantageResult:
    """Advantages of every requested scheme for a batch of responses.

    rewards (N, K) numpy array or tensor; group (N,) dense group codes 0..n_groups-1 (any row
    order, any sizes); step (N,) integer step labels (GDPO whitens per step; None = one step);
    weights (K,) used as given (default 1/K). ddof 0 = population std, 1 = Bessel; eps is added
    to every std that divides. nan: "error" (rewards must be finite; NaN/inf raise InputError),
    "ignore" (TRL: missing rewards are skipped in sums and means), "drop" (the reader already
    dropped them: same as "error"). device "auto" = CUDA when present; dtype default float64 on
    CPU, float32 on CUDA. Only the schemes asked for are computed; stats are always returned.
    """
    chosen = check_schemes(schemes)
    policy = _check_common(ddof, eps, nan)
    dev = resolve_device(device)
    dt = _resolve_dtype(dtype, dev)
    source = _check_rewards(rewards, ndim=2)
    n_rows, k_obj = source.shape
    w = _check_weights(weights, k_obj)
    _check_primary(primary, k_obj)
    codes = _as_codes(group, n_rows, "group", dev)
    if n_rows == 0:
        return _empty_result(0, k_obj, w, chosen, dev, dt)
    lo, hi = torch.aminmax(codes)
    if int(lo) < 0 or int(hi) >= n_rows:
        raise UsageError(
            f"group codes must lie in 0..{n_rows - 1} (dense codes), got {int(lo)}..{int(hi)}"
        )
    seg = _segments(codes, int(hi) + 1)

    parent: Tensor | None = None
    n_steps = 1
    if step is not None and "gdpo" not in chosen:  # unused, but a wrong shape is still a bug
        step_len = as_tensor(step, name="step").shape
        if tuple(step_len) != (n_rows,):
            raise UsageError(f"step must have shape ({n_rows},), got {tuple(step_len)}")
    if "gdpo" in chosen:
        if step is None:
            parent = torch.zeros(seg.n, dtype=torch.int64, device=dev)  # the batch is one step
        else:
            steps = seg.layout(_as_codes(step, n_rows, "step", dev))
            s_lo, s_hi = seg.minmax(steps, steps)  # (n,) per group
            used = seg.sizes(dev) > 0
            if bool(((s_lo != s_hi) & used).any()):
                raise UsageError("step varies inside a group; a group belongs to one step")
            parent, n_steps = _dense_codes(torch.where(used, s_lo, s_lo.new_zeros(())))
    return _engine(
        source, seg, (parent, n_steps), w, chosen, ddof, float(eps), primary, policy, dev, dt
    )


def group_stats(
    rewards: Any,
    group: Any,
    weights: Any = None,
    *,
    ddof: int = 0,
    eps: float = 0.0,
    nan: str = "error",
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
) -> GroupStats:
    """Per-group mean/std/DVAO weight (G, K), count (G, K), RC std (G,) and size (G,), without
    computing any advantage. Same arguments as compute_advantages."""
    return compute_advantages(
        rewards,
        group,
        None,
        weights,
        schemes=(),
        ddof=ddof,
        eps=eps,
        nan=nan,
        device=device,
        dtype=dtype,
    ).stats


# --------------------------------------------------------------------------------------------
# Dense helpers for trainers: rewards (num_prompts, G, K) -> advantages (num_prompts, G)
# --------------------------------------------------------------------------------------------


def _dense(
    scheme: str,
    rewards: Any,
    weights: Any,
    ddof: int,
    eps: float,
    nan: str,
    device: str | torch.device | None,
    dtype: torch.dtype | str | None,
    primary: int = 0,
) -> Tensor:
    t = _check_rewards(rewards, ndim=3)
    policy = _check_common(ddof, eps, nan)
    if device is None:
        dev = t.device if isinstance(rewards, Tensor) else resolve_device("auto")
        dev = resolve_device(dev)
    else:
        dev = resolve_device(device)
    if dtype is None and t.dtype in (torch.float32, torch.float64) and isinstance(rewards, Tensor):
        dt = t.dtype
    else:
        dt = _resolve_dtype(dtype, dev)
    prompts, size, k_obj = t.shape
    w = _check_weights(weights, k_obj)
    _check_primary(primary, k_obj)
    if prompts * size == 0:
        return torch.zeros(prompts, size, dtype=dt, device=dev)
    seg = _Blocks(prompts, size)
    parent = torch.zeros(prompts, dtype=torch.int64, device=dev)  # all prompts are one step
    with torch.no_grad():
        result = _engine(
            t.reshape(prompts * size, k_obj),
            seg,
            (parent, 1),
            w,
            (scheme,),
            ddof,
            float(eps),
            primary,
            policy,
            dev,
            dt,
        )
    return result.advantages[scheme].view(prompts, size)


def dvao_advantages(
    rewards: Any,
    weights: Any = None,
    ddof: int = 0,
    eps: float = 0.0,
    *,
    nan: str = "error",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """DVAO: sum_k w_k (r_k - mu_k) / (sum_l w_l sigma_l + eps) per group.

    rewards (num_prompts, G, K) -> (num_prompts, G). Device/dtype default to the input tensor's
    (float32/float64); numpy input follows compute_advantages' defaults.
    """
    return _dense("dvao", rewards, weights, ddof, eps, nan, device, dtype)


def rc_advantages(
    rewards: Any,
    weights: Any = None,
    ddof: int = 0,
    eps: float = 0.0,
    *,
    nan: str = "error",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """RC: s = sum_k w_k r_k, (s - mean s) / (std s + eps) per group. (P, G, K) -> (P, G)."""
    return _dense("rc", rewards, weights, ddof, eps, nan, device, dtype)


def ac_advantages(
    rewards: Any,
    weights: Any = None,
    ddof: int = 0,
    eps: float = 0.0,
    *,
    nan: str = "error",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """AC: sum_k w_k (r_k - mu_k) / (sigma_k + eps) per group. (P, G, K) -> (P, G)."""
    return _dense("ac", rewards, weights, ddof, eps, nan, device, dtype)


def gdpo_advantages(
    rewards: Any,
    weights: Any = None,
    ddof: int = 0,
    eps: float = 0.0,
    *,
    nan: str = "error",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """GDPO: AC, then whitened over ALL prompts given (one step). (P, G, K) -> (P, G)."""
    return _dense("gdpo", rewards, weights, ddof, eps, nan, device, dtype)


def grpo_advantages(
    rewards: Any,
    primary: int = 0,
    ddof: int = 0,
    eps: float = 0.0,
    *,
    nan: str = "error",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Tensor:
    """GRPO on objective `primary`: (r_p - mu_p) / (sigma_p + eps). (P, G, K) -> (P, G)."""
    return _dense("grpo", rewards, None, ddof, eps, nan, device, dtype, primary=primary)

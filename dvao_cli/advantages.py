"""The advantage API: every multi-reward scheme, vectorised over groups, on CPU or CUDA.

Notation (docs/schemes.md): N responses, K objectives, rewards r (N, K), a group index (N,)
mapping each response to its prompt-at-a-step, a step index (N,), preference weights w (K,).
The formulas are written once, in the scheme table (`dvao_cli.core.schemes`); the arithmetic
over the rows is `dvao_cli.core.engine`. This module checks and converts the inputs and
returns torch tensors.

Where it runs: a torch tensor is computed by torch on its own device (device "auto"), and the
results are torch tensors there. Anything else (numpy arrays, sequences) runs on numpy on the
CPU, or on CUDA when asked for (or "auto" finds a GPU); the results are torch tensors either
way (on the CPU without a copy).

Zero variance never yields NaN or inf: a normaliser that is 0 gives advantage 0. An objective
whose values are all equal inside a group has sigma_k = 0 exactly (tested with min == max, not
with a rounded std), contributes nothing and gets DVAO weight 0. A combined std (RC's std s,
GDPO's step std) at or below 64 ulps of the magnitude of the terms it came from is rounding
noise: the advantage is then 0, whatever eps (`dvao_cli.core.conventions`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dvao_cli.core import engine
from dvao_cli.core.arrays import namespace
from dvao_cli.core.schemes import SCHEMES, check_schemes, whitening
from dvao_cli.core.segments import Blocks, Segments, segments
from dvao_cli.errors import UsageError
from dvao_cli.objective_names import check_weight_size

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
    (compute_advantages' "auto" keeps a torch tensor on its own device: `_placement`.)

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
        check_weight_size(value, "weights")
    if not any(values):
        raise UsageError("weights are all 0: every weighted advantage would be 0")
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
# Where a call runs, and its inputs as arrays of that place
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """Where a call computes: numpy on the CPU, or torch on `device` (CUDA, or the CPU when a
    torch tensor came in)."""

    device: torch.device
    dtype: torch.dtype
    torch_cpu: bool = False  # a torch CPU tensor came in: torch computes it

    @property
    def numpy(self) -> bool:
        return self.device.type == "cpu" and not self.torch_cpu


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _placement(rewards: Any, device: Any, dtype: Any) -> _Place:
    """Torch input: its own device unless one is named. Other input: numpy on the CPU, or
    CUDA when named (or "auto" finds one)."""
    is_tensor = isinstance(rewards, Tensor)
    name = getattr(device, "value", device)
    if is_tensor and (name is None or name == "auto"):
        dev = resolve_device(rewards.device)
    else:
        dev = resolve_device("auto" if name is None else device)
    return _Place(dev, _resolve_dtype(dtype, dev), torch_cpu=is_tensor and dev.type == "cpu")


def _to_place(x: Any, place: _Place, dtype: Any = None) -> Any:
    """A tensor or array as the place's array type (numpy for the numpy place)."""
    if place.numpy:
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        if dtype is None:
            return np.asarray(x)
        return np.asarray(x, dtype=_NUMPY_DTYPES.get(dtype, dtype))
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(device=place.device, dtype=dtype or t.dtype)


def _columns(source: Tensor | np.ndarray, place: _Place) -> list[Any]:
    """(N, K) rewards -> K contiguous (N,) columns of the compute dtype."""
    if place.numpy:
        arr = source.detach().cpu().numpy() if isinstance(source, Tensor) else source
        np_dtype = _NUMPY_DTYPES[place.dtype]
        return [np.ascontiguousarray(arr[:, k], dtype=np_dtype) for k in range(arr.shape[1])]
    t = source if isinstance(source, Tensor) else torch.from_numpy(source)
    return [
        t[:, k].to(device=place.device, dtype=place.dtype).contiguous() for k in range(t.shape[1])
    ]


def _as_torch(x: Any, device: torch.device) -> Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    return x.to(device)


def _as_codes(x: Any, n_rows: int, name: str, place: _Place) -> Any:
    """An integer index (N,) as int64 of the place."""
    t = as_tensor(x, name=name)
    if t.ndim != 1 or t.shape[0] != n_rows:
        raise UsageError(f"{name} must have shape ({n_rows},), got {tuple(t.shape)}")
    if t.is_floating_point():
        raise UsageError(f"{name} must be integers, got {t.dtype}")
    return _to_place(t.to(torch.int64), place)


def _dense_codes(values: Any) -> tuple[Any, int]:
    """Arbitrary integer labels (M,) -> dense codes 0..S-1 (M,), S. Sorted input skips the sort."""
    if values.shape[0] == 0:
        return values, 0
    if isinstance(values, np.ndarray):
        if values.shape[0] == 1 or bool(np.all(values[1:] >= values[:-1])):
            codes = np.concatenate([[0], np.cumsum(values[1:] != values[:-1])]).astype(np.int64)
            return codes, int(codes[-1]) + 1
        uniq, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), int(uniq.shape[0])
    if values.numel() == 1 or bool((values[1:] >= values[:-1]).all()):
        change = torch.zeros_like(values)
        change[1:] = values[1:] != values[:-1]
        codes = torch.cumsum(change, 0)
        return codes, int(codes[-1].item()) + 1
    uniq, codes = torch.unique(values, return_inverse=True)
    return codes, int(uniq.numel())


def _group_steps(step: Any, seg: Segments, n_rows: int, place: _Place) -> tuple[Any, int]:
    """Each group's step code (seg.n,) in seg's group order, and the number of steps; a step
    must not vary inside a group."""
    steps = seg.layout(_as_codes(step, n_rows, "step", place))
    lo, hi = seg.min(steps), seg.max(steps)  # (n,) per group
    used = seg.sizes(steps) > 0
    if bool(((lo != hi) & used).any()):
        raise UsageError("step varies inside a group; a group belongs to one step")
    return _dense_codes(lo * used)


# --------------------------------------------------------------------------------------------
# Whitening
# --------------------------------------------------------------------------------------------


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
    A segment whose std is 0, or rounding noise of its values' magnitude, gives 0. Returns (N,)
    on the chosen device.
    """
    _check_common(ddof, eps, "error")
    dev = resolve_device(device)
    place = _Place(dev, _resolve_dtype(dtype, dev), torch_cpu=isinstance(x, Tensor))
    xt = as_tensor(x, name="x")
    if xt.ndim != 1:
        raise UsageError(f"x must have shape (N,), got {tuple(xt.shape)}")
    values = _to_place(xt, place, place.dtype)
    if values.shape[0] == 0:
        return _as_torch(values, dev)
    if segment is None:
        seg: Segments = Blocks(1, values.shape[0])
    else:
        codes, n = _dense_codes(_as_codes(segment, values.shape[0], "segment", place))
        seg = segments(codes, n)
    xl = seg.layout(values)
    count = seg.sizes(values) * 1.0
    mean = seg.sum(xl) / count
    centred = xl - seg.expand(mean)
    xp = namespace(xl)
    magnitude = xp.maximum(xp.abs(seg.min(xl)), xp.abs(seg.max(xl)))  # (n,) max |x|
    factor = whitening(seg.sumsq(centred), count, magnitude, ddof, float(eps))
    return _as_torch(seg.flat(centred * seg.expand(factor)), dev)


# --------------------------------------------------------------------------------------------
# compute_advantages
# --------------------------------------------------------------------------------------------


def _result(
    out: engine.EngineResult, weights: list[float], schemes: tuple[str, ...], place: _Place
) -> AdvantageResult:
    m = out.moments
    dev = place.device

    def t(x: Any) -> Tensor:
        return _as_torch(x, dev)

    def by_group(x: Any) -> Tensor:  # the engine's (K, n) as GroupStats' (n, K)
        return t(x).T.contiguous()

    stats = GroupStats(
        mean=by_group(m.mean),
        std=by_group(m.std),
        dvao_weight=by_group(m.dvao_weight),
        count=by_group(m.count).to(torch.int64),
        rc_std=t(m.rc_std),
        size=t(m.size).to(torch.int64),
    )
    return AdvantageResult(
        advantages={name: t(out.advantages[name]) for name in schemes},
        stats=stats,
        weights=torch.tensor(weights, dtype=place.dtype, device=dev),
    )


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
    dropped them: same as "error"). device "auto" = a tensor's own device, else CUDA when
    present; dtype default float64 on CPU, float32 on CUDA. Only the schemes asked for are
    computed; stats are always returned, as torch tensors on the device used.
    """
    chosen = check_schemes(schemes)
    policy = _check_common(ddof, eps, nan)
    place = _placement(rewards, device, dtype)
    source = _check_rewards(rewards, ndim=2)
    n_rows, k_obj = source.shape
    w = _check_weights(weights, k_obj)
    _check_primary(primary, k_obj)
    codes = _as_codes(group, n_rows, "group", place)
    if n_rows == 0:
        return _empty_result(0, k_obj, w, chosen, place.device, place.dtype)
    lo, hi = int(codes.min()), int(codes.max())
    if lo < 0 or hi >= n_rows:
        raise UsageError(f"group codes must lie in 0..{n_rows - 1} (dense codes), got {lo}..{hi}")
    seg = segments(codes, hi + 1)
    step_of_group, n_steps = None, 1
    if step is not None and "gdpo" not in chosen:  # unused, but a wrong shape is still a bug
        step_len = as_tensor(step, name="step").shape
        if tuple(step_len) != (n_rows,):
            raise UsageError(f"step must have shape ({n_rows},), got {tuple(step_len)}")
    if "gdpo" in chosen and step is not None:
        step_of_group, n_steps = _group_steps(step, seg, n_rows, place)
    out = engine.run(
        _columns(source, place),
        seg,
        step_of_group,
        n_steps,
        w,
        chosen,
        ddof=ddof,
        eps=float(eps),
        primary=primary,
        missing=policy == "ignore",
    )
    return _result(out, w, chosen, place)


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
    """(P, G, K) -> (P, G): compute_advantages over P groups of G contiguous rows (its blocks
    fast path), computed as it computes (float64 on the CPU unless `dtype` says otherwise, so
    float32 rewards a few ulps apart still give advantages that sum to 0 over each group), and
    returned in `dtype`, else the input tensor's float dtype."""
    t = _check_rewards(rewards, ndim=3)
    prompts, size, k_obj = t.shape
    out_dtype = dtype
    if dtype is None and isinstance(rewards, Tensor) and t.dtype in _NUMPY_DTYPES:
        out_dtype = t.dtype
    flat = (
        rewards.reshape(prompts * size, k_obj)
        if isinstance(rewards, Tensor)
        else t.reshape(prompts * size, k_obj).numpy()
    )
    group = np.repeat(np.arange(prompts, dtype=np.int64), size)  # (P * G,) dense codes
    result = compute_advantages(
        flat,
        group,
        None,  # all prompts are one step
        weights,
        schemes=(scheme,),
        ddof=ddof,
        eps=eps,
        primary=primary,
        nan=nan,
        device="auto" if device is None else device,
        dtype=dtype,
    )
    out = result.advantages[scheme].view(prompts, size)
    return out if out_dtype is None else out.to(_resolve_dtype(out_dtype, out.device))


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

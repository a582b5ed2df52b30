"""The table of schemes: the only place a scheme's formula is written.

Inside a group every scheme is linear in the centred rewards: a numerator
sum_k c_k (r_k - mu_k) with per-group coefficients c, times a per-group scale (0 = no signal),
then, for GDPO, whitened over the responses of each step. Notation (docs/schemes.md): mu_k and
sigma_k the mean and std of objective k in the group (sigma_k exactly 0 when the objective is
constant there), w_k the preference weights, eps added to every std that divides, p the
primary objective.

    numerator      c_k                            the schemes using it
    weighted       w_k [sigma_k > 0]              rc, dvao
    standardised   w_k / (sigma_k + eps)          ac, gdpo
    primary        [k = p]                        grpo

RC's numerator is s - mean s with s = sum_k w_k r_k. With a reward missing (nan="ignore") a
missing reward adds nothing to s and the mean is over all of the group's rows, as TRL does:
that is the "summed" numerator. With no reward missing it equals the weighted one (an
objective constant in the group adds exactly 0 there), which is what the backends compute.

    scheme  numerator     scale per group                     whitened per step
    grpo    primary       1 / (sigma_p + eps)                 no
    rc      summed        1 / (std of its numerator + eps)    no
    ac      standardised  1                                   no
    gdpo    standardised  1                                   yes
    dvao    weighted      1 / (sum_l w_l sigma_l + eps)       no

Backends (`engine` over rows, `patterns` over reward-pattern counts) compute group moments and
numerators and call these functions; they hold no formula. Adding a scheme is one `Scheme`
entry here plus its tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dvao_cli.core.arrays import namespace
from dvao_cli.core.conventions import noise_free, normaliser
from dvao_cli.errors import UsageError

Array = Any  # np.ndarray or torch.Tensor

WEIGHTED = "weighted"
SUMMED = "summed"
STANDARDISED = "standardised"
PRIMARY = "primary"


@dataclass(frozen=True)
class Spread:
    """What a scale reads, per group: sigma (K, n) the objectives' stds, weights (K,) as an
    array, primary the primary objective, own_std (n,) the std of the scheme's own numerator
    over the group (rounding noise counted as 0; only for schemes with `uses_own_std`)."""

    sigma: Array
    weights: Array
    primary: int
    own_std: Array | None = None


@dataclass(frozen=True)
class Scheme:
    name: str
    numerator: str
    scale: Callable[[Spread, float], Array]  # (n,) per group, >= 0; 0 = no signal
    whitened: bool = False
    uses_own_std: bool = False
    formula: str = ""


def _ones(spread: Spread, eps: float) -> Array:
    xp = namespace(spread.sigma)
    return xp.ones(spread.sigma.shape[1], dtype=spread.sigma.dtype, device=spread.sigma.device)


TABLE: tuple[Scheme, ...] = (
    Scheme(
        "grpo",
        PRIMARY,
        lambda g, eps: normaliser(g.sigma[g.primary], eps),
        formula="(r_p - mu_p) / (sigma_p + eps)",
    ),
    Scheme(
        "rc",
        SUMMED,
        lambda g, eps: normaliser(g.own_std, eps),
        uses_own_std=True,
        formula="s = sum_k w_k r_k, (s - mean s) / (std s + eps)",
    ),
    Scheme("ac", STANDARDISED, _ones, formula="sum_k w_k (r_k - mu_k) / (sigma_k + eps)"),
    Scheme(
        "gdpo",
        STANDARDISED,
        _ones,
        whitened=True,
        formula="ac, then (x - mean x) / (std x + eps) over the responses of the step",
    ),
    Scheme(
        "dvao",
        WEIGHTED,
        lambda g, eps: normaliser(weighted_sum(g.weights, g.sigma), eps),
        formula="sum_k w_k (r_k - mu_k) / (sum_l w_l sigma_l + eps)",
    ),
)
BY_NAME = {scheme.name: scheme for scheme in TABLE}
SCHEMES: tuple[str, ...] = tuple(BY_NAME)


def check_schemes(schemes: Iterable[str]) -> tuple[str, ...]:
    """Scheme names, validated and de-duplicated in the order given."""
    if isinstance(schemes, str):
        schemes = (schemes,)
    chosen: list[str] = []
    for scheme in schemes:
        name = str(getattr(scheme, "value", scheme))
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, SCHEMES, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"unknown scheme '{name}'{hint}; choose from {', '.join(SCHEMES)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def numerator_of(name: str, missing: bool) -> str:
    """The numerator a backend computes for scheme `name` (summed is weighted without missing
    rewards)."""
    kind = BY_NAME[name].numerator
    return WEIGHTED if kind == SUMMED and not missing else kind


def twins(schemes: Sequence[str], missing: bool) -> dict[str, str]:
    """scheme -> an earlier scheme of `schemes` (in their given order, the order callers
    compute them in) whose advantages order the responses of every group the same way: the same
    numerator times a positive scale (whitening is a positive affine map per step), so the same
    distinct values. None with missing rewards: a row with no reward is set to 0 in every
    scheme, which the whitening does not preserve."""
    if missing:
        return {}
    first: dict[str, str] = {}
    found = {}
    for name in schemes:
        kind = numerator_of(name, missing)
        if kind in first:
            found[name] = first[kind]
        else:
            first[kind] = name
    return found


def coefficients(kind: str, k: int, sigma_k: Array, weight: float, eps: float, primary: int):
    """(n,) c_k of objective k in numerator `kind`, from its per-group std sigma_k (n,); None
    when objective k has no term in it (the primary numerator's other objectives)."""
    xp = namespace(sigma_k)
    if kind == WEIGHTED or kind == SUMMED:
        return weight * xp.astype(sigma_k > 0, sigma_k.dtype)
    if kind == STANDARDISED:
        return weight * normaliser(sigma_k, eps)
    if kind == PRIMARY:
        return xp.ones_like(sigma_k) if k == primary else None
    raise KeyError(kind)


def magnitude(kind: str, weights: Array, mean: Array, sigma: Array, lo: Array, hi: Array, eps):
    """(n,) the size of the terms numerator `kind` sums in each group (its noise floor's
    scale), from the objectives' group mean, std, smallest and largest reward (K, n)."""
    xp = namespace(mean)
    w = xp.abs(weights)
    if kind == WEIGHTED or kind == SUMMED:  # the rewards themselves: sum_k |w_k| max |r_k|
        return weighted_sum(w, xp.maximum(xp.abs(lo), xp.abs(hi)))
    if kind == STANDARDISED:  # sum_k |w_k| max |r_k - mu_k| / (sigma_k + eps)
        # the normaliser is 0 where sigma_k is (the spread is finite): those terms are 0
        return weighted_sum(w, xp.maximum(hi - mean, mean - lo) * normaliser(sigma, eps))
    raise KeyError(kind)


def own_std(square_sum: Array, inv_dof: Array, scale: Array) -> Array:
    """(n,) a numerator's std over its group from its sum of squares (n,) and 1 / (size -
    ddof), rounding noise (at most NOISE_ULPS ulps of `scale`) counted as 0."""
    xp = namespace(square_sum)
    return noise_free(xp.sqrt(square_sum * inv_dof), scale)


def whitening(square_sum: Array, count: Array, scale: Array, ddof: int, eps: float) -> Array:
    """(S,) the factor 1 / (std + eps) that whitens each step, from the step's sum of squared
    centred values, its responses and the largest term magnitude among its groups: 0 where the
    std is rounding noise or 0."""
    xp = namespace(square_sum)
    dof = count - ddof
    var = xp.where(dof > 0, square_sum / xp.where(dof > 0, dof, 1.0), 0.0)
    return normaliser(noise_free(xp.sqrt(var), scale), eps)


def weighted_sum(weights: Array, values: Array) -> Array:
    """sum_k w_k x_k from weights (K,) and values (K, n), or per-group weights (K, n) and
    values (K, P, n) (a numerator per pattern: `core.counted`), the terms added in objective
    order: the same bits for every n (a matrix product's order, and so its last bits, can
    depend on the shape, and backends computing per group or per distinct group must agree)."""
    out = weights[0] * values[0]
    for k in range(1, values.shape[0]):
        out = out + weights[k] * values[k]
    return out


def dvao_weight(sigma: Array, weights: Array) -> Array:
    """(K, n) w~_k = w_k sigma_k / sum_l w_l sigma_l, 0 where no objective varies."""
    xp = namespace(sigma)
    signal = sigma * weights[:, None]  # (K, n)
    total = weighted_sum(weights, sigma)  # (n,) the sum of `signal`, in objective order
    return xp.where(total > 0, signal / xp.where(total > 0, total, 1.0), 0.0)

"""Warnings where DVAO's numbers mislead, found in the whole-log figures (`errors.LogWarning`).

`build_summary` calls these after the figures are known; the reader's own warnings
(`LogSpec.warnings`: `combined_score`, `oversized_group`) come first in the summary.

- `scale_mismatch`: DVAO weights an objective by its within-group spread, so an objective on a
  larger scale gets a larger say whatever its signal. Said when an objective's rewards leave
  [0, 1] while another's stay inside it, or when its within-group std, averaged over the
  groups where it varies, is at least SCALE_RATIO times another's averaged the same way (over
  the groups where that one varies: a reward that merely saturates is not on another scale).
- `small_groups`: the median group holds at most SMALL_GROUP responses, where a within-group
  variance is a poor estimate (the paper's stated limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dvao_cli.errors import LogWarning

SCALE_RATIO = 5.0  # averaged within-group std this many times another's: another scale
SMALL_GROUP = 4  # a median group of at most this many responses is small
UNIT_TOL = 1e-9  # a reward within this of [0, 1] is inside it (1 + 1e-13 from arithmetic)


def _range(lo: float, hi: float) -> str:
    return f"{lo:.4g}..{hi:.4g}"


def scale_mismatch(
    names: Sequence[str],
    dvao_weights: Mapping[str, float | None],
    *,
    lo: np.ndarray,
    hi: np.ndarray,
    varying_std: np.ndarray,
) -> list[LogWarning]:
    """One `scale_mismatch` per objective on another scale than some other objective.

    lo, hi (K,): the smallest and largest reward over the log (+inf / -inf: none);
    varying_std (K,): the mean within-group std over the groups where the objective varies
    (NaN where it never varies)."""
    present = np.isfinite(lo) & np.isfinite(hi)  # the objective has a reward
    inside = present & (lo >= -UNIT_TOL) & (hi <= 1.0 + UNIT_TOL)
    varies = np.isfinite(varying_std) & (varying_std > 0)
    found: list[LogWarning] = []
    for j, name in enumerate(names):
        if not varies[j]:  # a constant gets no weight from DVAO: its scale decides nothing
            continue
        reasons: list[str] = []
        if not inside[j] and inside.any():
            unit = [names[i] for i in np.flatnonzero(inside)]
            reasons.append(
                f"its rewards leave [0, 1], where {_listed(unit)} "
                f"stay{'s' if len(unit) == 1 else ''}"
            )
        others = [i for i in np.flatnonzero(varies) if i != j]
        if others:
            low = min(others, key=lambda i: varying_std[i])
            ratio = varying_std[j] / varying_std[low]
            if ratio >= SCALE_RATIO:
                reasons.append(
                    f"its within-group std where it varies ({varying_std[j]:.4g}) is "
                    f"{ratio:.1f}x {names[low]}'s ({varying_std[low]:.4g})"
                )
        if not reasons:
            continue
        weight = dvao_weights[name]
        share = "n/a" if weight is None else f"{weight:.0%}"
        found.append(
            LogWarning(
                "scale_mismatch",
                name,
                f"{name} is on another scale than the other objectives (range "
                f"{_range(lo[j], hi[j])}): {'; '.join(reasons)}. It takes {share} of DVAO's "
                "weight: DVAO weights by spread, so a reward on a larger scale gets a larger "
                "say. Rescale the rewards to a common range, e.g. [0, 1].",
            )
        )
    return found


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def median_size(size_counts: np.ndarray) -> float | None:
    """The median group size from its counts (`step_sums.SIZE_BINS`: sizes 1, 2, ..., the
    last bin the rest): None when unknown (no group, or the median falls in the last bin)."""
    total = int(round(float(size_counts.sum())))
    if total == 0:
        return None
    cumulative = np.cumsum(size_counts)
    bins = size_counts.shape[0]

    def at(position: int) -> int | None:  # the size of the group at this sorted position
        index = int(np.searchsorted(cumulative, position + 1 - 0.5))
        return index + 1 if index < bins - 1 else None

    lower, upper = at((total - 1) // 2), at(total // 2)
    if lower is None or upper is None:
        return None
    return (lower + upper) / 2


def small_groups(size_counts: np.ndarray) -> list[LogWarning]:
    """`small_groups` when the median group holds at most SMALL_GROUP responses."""
    median = median_size(size_counts)
    if median is None or median > SMALL_GROUP:
        return []
    return [
        LogWarning(
            "small_groups",
            None,
            f"groups are small: the median group holds {median:g} responses. Within-group "
            f"variance is a poor estimate at {SMALL_GROUP} or fewer (the paper's stated "
            "limit), so DVAO's weights and every scheme's std are noisy here; sample more "
            "responses per prompt if you can.",
        )
    ]

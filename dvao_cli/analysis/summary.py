"""The summary of `dvao analyze`: typed, built from the per-step sums, written as summary.json.

Every figure is one field of a frozen dataclass below, and its name is the summary.json key.
A field's metadata says where else the figure appears, so that nothing else lists names:
- `gate`: a `--fail-on` metric (`gate.py` takes its metric names from here; "pair" for a
  metric of two objectives);
- `per_step`: also a column of steps.parquet (objectives) or schemes.parquet (schemes);
- `binary_only`: defined only for a binary objective (null otherwise).
Adding a figure is one field here, its value in `build_summary`, and its rendering in
`report.py`.

`build_summary` turns the `Accumulator` of `analyze` (per-step sums of every chunk, never
means) into the summary and the two per-step tables: every whole-log figure is a ratio of sums,
the same whatever the chunk size. An objective without any valid reward (all missing under
`--nan ignore`) has no figures: null in JSON, n/a in the report. A step of an objective without
a valid reward has no reward figures in steps.parquet, and DVAO weight 0 (the weight it got).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from dvao_cli.analysis.step_sums import AgreementSums
from dvao_cli.errors import LogWarning
from dvao_cli.reader.format import STEP

if TYPE_CHECKING:
    from dvao_cli.analysis.accumulator import Accumulator

OBJECTIVE = "objective"  # the steps table's objective column
SCHEME = "scheme"  # the schemes table's scheme column
GROUPS = "groups"  # the steps table's groups-per-step column
NO_SIGNAL = "no_signal_share"  # the steps table's share of groups without a signal, per step
SATURATION_LEVEL = 0.9  # saturated_from_step: the share of groups that stays saturated
# A scheme matches logged_advantage when its largest difference is below this (the Reading's
# "that is the scheme your trainer ran", and `matching_schemes`)
MATCH_TOL = 1e-3


def _key(*, gate: bool | str = True, per_step: bool = False, binary_only: bool = False) -> Any:
    return field(metadata={"gate": gate, "per_step": per_step, "binary_only": binary_only})


@dataclass(frozen=True)
class ObjectiveSummary:
    """One objective over the whole log (null: undefined for this objective)."""

    mean: float | None = _key(per_step=True)  # mean valid reward
    within_group_std: float | None = _key(per_step=True)  # mean over groups
    saturation: float | None = _key(per_step=True)  # share of zero-variance groups
    saturation_pass: float | None = _key(per_step=True, binary_only=True)  # all 1
    saturation_fail: float | None = _key(per_step=True, binary_only=True)  # all 0
    binary: bool = _key(gate=False)  # every valid reward is 0 or 1
    # mean of w~_k over the groups with a signal (where DVAO's weights are defined and sum
    # to 1 over the objectives); the share of the others is the log's `no_signal_share`
    dvao_weight: float | None = _key(per_step=True)
    dvao_weight_first: float | None = _key()  # the same mean over the first tenth of steps
    dvao_weight_last: float | None = _key()  # and the last tenth
    preference_weight: float = _key(gate=False)  # w_k as given
    missing_rewards: int = _key(gate=False)  # rows without a valid reward
    saturated_from_step: int | None = _key(gate=False)  # see `_saturation_onset`
    saturation_after: float | None = _key(gate=False)
    saturated_kind: str | None = _key(gate=False, binary_only=True)  # all-pass | all-fail


@dataclass(frozen=True)
class LoggedAgreement:
    """A scheme against the log's `logged_advantage` column (only when the log has one)."""

    logged_max_diff: float | None = _key()  # max |A - logged| over finite logged values
    logged_corr: float | None = _key()  # Pearson over the same rows


@dataclass(frozen=True)
class SchemeSummary:
    """One scheme's advantages over the whole log."""

    mean_square: float | None = _key(per_step=True)  # mean over responses of A^2
    max_abs: float | None = _key(per_step=True)
    zero_share: float | None = _key(per_step=True)  # share of responses with A = 0
    resolution: float | None = _key(per_step=True)  # distinct A / distinct reward vectors
    distinct_advantages_per_group: float | None = _key(gate=False)
    distinct_rewards_per_group: float | None = _key(gate=False)
    # summary.json holds its two keys inline, after the others, when the log has the column
    logged: LoggedAgreement | None = field(default=None, metadata={"inline": True})


@dataclass(frozen=True)
class RunSettings:
    """How the analysis was run."""

    schemes: tuple[str, ...]
    ddof: int
    eps: float
    nan: str
    device: str  # where the advantage engine ran ("cpu" when no chunk needed it)


@dataclass(frozen=True)
class GateRecord:
    """The `--fail-on` conditions and the ones that tripped (as printed)."""

    conditions: tuple[str, ...]
    tripped: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    """The whole-log summary: `to_json()` is summary.json (and `dvao analyze --json`)."""

    rows: int = _key()  # responses analyzed (groups of one skipped)
    steps: int = _key()
    groups: int = _key()
    skipped_groups: int = _key()  # groups of one response
    skipped_rows: int = _key()
    dropped_rows: int = _key()  # rows dropped by --nan drop
    # share of groups without a signal (every objective constant in the group, or weighted 0):
    # DVAO gives them advantage 0, and `dvao_weight` is the mean over the others
    no_signal_share: float | None = _key()
    objectives: dict[str, ObjectiveSummary] = _key(gate=False)  # in objective_order
    schemes: dict[str, SchemeSummary] = _key(gate=False)  # in the order computed
    # within-group Pearson, mean over the groups where both vary: [a][b]
    correlation: dict[str, dict[str, float | None]] = _key(gate="pair")
    correlation_groups: dict[str, dict[str, int]] = _key(gate=False)  # those groups
    weights: dict[str, float] = _key(gate=False)  # preference weights
    objective_order: tuple[str, ...] = _key(gate=False)
    first_step: int = _key(gate=False)
    last_step: int = _key(gate=False)
    has_logged_advantage: bool = _key(gate=False)
    best_matching_scheme: str | None = _key(gate=False)  # smallest logged_max_diff
    # every scheme whose logged_max_diff is within MATCH_TOL, in the order computed: schemes
    # that coincide on this log (with one objective: grpo, rc, ac at weight 1, dvao) tie
    matching_schemes: tuple[str, ...] = _key(gate=False)
    settings: RunSettings = _key(gate=False)
    files: tuple[str, ...] = _key(gate=False)
    # doubts the data raises about the answer (`errors.LogWarning`): the reader's first
    # (`LogSpec.warnings`), then `analysis/warnings.py`'s
    warnings: tuple[LogWarning, ...] = _key(gate=False)
    # only when --fail-on was given
    gate: GateRecord | None = field(default=None, metadata={"omit_if_none": True})

    def to_json(self) -> dict[str, Any]:
        """summary.json as a JSON-ready dict (keys in field order)."""
        out = _to_json(self)
        assert isinstance(out, dict)
        return out

    def has_rewards(self, objective: str) -> bool:
        """Whether the objective has at least one valid reward (else its figures are null)."""
        return self.objectives[objective].missing_rewards < self.rows

    def with_gate(self, conditions: list[str], tripped: list[str]) -> Summary:
        return replace(self, gate=GateRecord(tuple(conditions), tuple(tripped)))


def _to_json(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("inline"):
                if item is not None:
                    out.update(_to_json(item))
            elif not (item is None and f.metadata.get("omit_if_none")):
                out[f.name] = _to_json(item)
        return out
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    return value


def figure_names(
    cls: type, *, gate: bool | str | None = None, per_step: bool = False
) -> tuple[str, ...]:
    """Field names of `cls` in order: its `gate` metrics (True, or "pair"), or its per-step
    columns with `per_step`."""
    names = []
    for f in fields(cls):
        if per_step and not f.metadata.get("per_step"):
            continue
        if gate is not None and f.metadata.get("gate") != gate:
            continue
        names.append(f.name)
    return tuple(names)


def binary_only(cls: type) -> tuple[str, ...]:
    """The fields of `cls` defined only for a binary objective."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("binary_only"))


# the per-step tables' columns, in order (steps.parquet, schemes.parquet)
STEP_COLUMNS = (
    STEP, OBJECTIVE, *figure_names(ObjectiveSummary, per_step=True), GROUPS, NO_SIGNAL
)  # fmt: skip
SCHEME_COLUMNS = (STEP, SCHEME, *figure_names(SchemeSummary, per_step=True))


def checked(available: tuple[str, ...], *names: str) -> tuple[str, ...]:
    """`names`, each checked to be one of `available` (columns of a table, fields of a class):
    a name out of step fails when the module that asks is imported, not when a file is read."""
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"not among {available}: {unknown}")
    return names


# ---------------------------------------------------------------------------------------------
# Building the summary from the accumulated per-step sums


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _series(values: Any) -> Any:
    """A table column from a numpy array, through a Python list: polars' numpy path imports
    numpy.ma (6-9 ms of a short run's start-up). The dtype is the array's, exactly."""
    array = np.asarray(values)
    dtype = {"f8": pl.Float64, "i8": pl.Int64}.get(array.dtype.str[1:])
    return array if dtype is None else pl.Series(array.tolist(), dtype=dtype)


def _fnum(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def build_summary(
    acc: Accumulator,
    files: Sequence[Path],
    weight_list: list[float],
    settings: RunSettings,
    reader_warnings: Sequence[LogWarning] = (),
) -> tuple[Summary, pl.DataFrame, pl.DataFrame]:
    """The summary, the steps table (one row per step and objective) and the schemes table
    (one row per step and scheme), from the sums of every chunk (at least one row).
    `reader_warnings` (`LogSpec.warnings`) lead the summary's warnings."""
    from dvao_cli.analysis import warnings as doubts

    schemes = settings.schemes
    names = acc.objectives
    k = len(names)
    steps = acc.steps()  # (S,)
    order = np.argsort(steps, kind="stable")  # chunks come in input order; tables go by step
    steps = steps[order]
    # the per-step objective sums (sums.ObjectiveSums but binary), each (S,) or (S, K)
    o = {name: column[order] for name, column in acc.objective_columns().items()}
    groups = o["groups"][:, None]  # (S, 1)
    has_valid = o["valid"] > 0  # (S, K)
    total_valid = o["valid"].sum(axis=0)  # (K,)
    binary = acc.binary & (total_valid > 0)  # (K,) not vacuously binary
    signal = o["signal_groups"]  # (S,) groups with a signal
    per_step = {
        "mean": _safe_div(o["reward_sum"], o["valid"]),
        "within_group_std": o["std_sum"] / groups,
        "saturation": o["saturated"] / groups,
        "saturation_pass": np.where(binary, o["all_pass"] / groups, np.nan),
        "saturation_fail": np.where(binary, o["all_fail"] / groups, np.nan),
        "dvao_weight": _safe_div(o["weight_sum"], signal[:, None]),  # n/a: no signal at all
    }
    # a step of an objective without a valid reward has no reward figures; its DVAO weight
    # is the 0 DVAO gave it, n/a only for an objective without any valid reward
    per_step = {
        name: np.where(has_valid if name != "dvao_weight" else total_valid > 0, table, np.nan)
        for name, table in per_step.items()
    }
    figures = figure_names(ObjectiveSummary, per_step=True)
    assert tuple(per_step) == figures, "one per-step table per per_step field, in order"
    n_steps = steps.shape[0]
    steps_df = pl.DataFrame(
        {
            STEP: _series(np.repeat(steps, k).astype(np.int64)),
            OBJECTIVE: np.tile(np.array(names, dtype=object), n_steps).tolist(),
            **{name: _series(table.reshape(-1)) for name, table in per_step.items()},
            GROUPS: _series(np.repeat(o["groups"], k).astype(np.int64)),
            NO_SIGNAL: _series(np.repeat(1.0 - signal / o["groups"], k)),
        }
    ).with_columns(pl.col(c).fill_nan(None) for c in figures)

    scheme_tables = []
    scheme_summary: dict[str, SchemeSummary] = {}
    rows_per_step = o["rows"]
    total_groups = o["groups"].sum()
    for name in schemes:
        parts = {field: column[order] for field, column in acc.scheme_columns(name).items()}
        sq, mx, zeros = parts["square_sum"], parts["max_abs"], parts["zeros"]
        d_adv, d_rew = parts["distinct_adv"], parts["distinct_rew"]
        scheme_tables.append(
            pl.DataFrame(
                {
                    STEP: _series(steps.astype(np.int64)),
                    SCHEME: [name] * n_steps,
                    "mean_square": _series(sq / rows_per_step),
                    "max_abs": _series(mx),
                    "zero_share": _series(zeros / rows_per_step),
                    "resolution": _series(d_adv / d_rew),
                }
            )
        )
        scheme_summary[name] = SchemeSummary(
            mean_square=_fnum(sq.sum() / rows_per_step.sum()),
            max_abs=_fnum(mx.max()),
            zero_share=_fnum(zeros.sum() / rows_per_step.sum()),
            resolution=_fnum(d_adv.sum() / d_rew.sum()) if d_rew.sum() > 0 else None,
            distinct_advantages_per_group=_fnum(d_adv.sum() / total_groups),
            distinct_rewards_per_group=_fnum(d_rew.sum() / total_groups),
            logged=_agreement(acc.agreement[name]) if acc.has_logged else None,
        )
    schemes_df = pl.concat(scheme_tables)
    assert tuple(schemes_df.columns) == SCHEME_COLUMNS

    tenth = max(1, math.ceil(n_steps / 10))

    def weight_mean(j: int, steps_taken: slice) -> float | None:  # over the signal groups
        taken = signal[steps_taken].sum()
        return _fnum(o["weight_sum"][steps_taken, j].sum() / taken) if taken > 0 else None

    objectives: dict[str, ObjectiveSummary] = {}
    for j, name in enumerate(names):
        missing = int(o["rows"].sum() - total_valid[j])
        if total_valid[j] == 0:
            objectives[name] = _no_rewards(weight_list[j], missing)
            continue
        onset = _saturation_onset(steps, o, j, bool(binary[j]))
        objectives[name] = ObjectiveSummary(
            mean=_fnum(o["reward_sum"][:, j].sum() / total_valid[j]),
            within_group_std=_fnum(o["std_sum"][:, j].sum() / total_groups),
            saturation=_fnum(o["saturated"][:, j].sum() / total_groups),
            saturation_pass=_fnum(o["all_pass"][:, j].sum() / total_groups) if binary[j] else None,
            saturation_fail=_fnum(o["all_fail"][:, j].sum() / total_groups) if binary[j] else None,
            binary=bool(binary[j]),
            dvao_weight=weight_mean(j, slice(None)),
            dvao_weight_first=weight_mean(j, slice(None, tenth)),
            dvao_weight_last=weight_mean(j, slice(n_steps - tenth, None)),
            preference_weight=weight_list[j],
            missing_rewards=missing,
            saturated_from_step=onset[0],
            saturation_after=onset[1],
            saturated_kind=onset[2],
        )

    corr_sum, corr_count = acc.correlation_sums()  # (K, K) each
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(corr_count > 0, corr_sum / np.maximum(corr_count, 1), np.nan)
    summary = Summary(
        rows=acc.rows,
        steps=int(n_steps),
        groups=acc.groups,
        skipped_groups=acc.skipped_groups,
        skipped_rows=acc.skipped_rows,
        dropped_rows=acc.dropped_rows,
        no_signal_share=_fnum(1.0 - signal.sum() / total_groups),
        objectives=objectives,
        schemes=scheme_summary,
        correlation={
            a: {b: _fnum(corr[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)
        },
        correlation_groups={
            a: {b: int(corr_count[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)
        },
        weights=dict(zip(names, weight_list, strict=True)),
        objective_order=tuple(names),
        first_step=int(steps[0]),
        last_step=int(steps[-1]),
        has_logged_advantage=acc.has_logged,
        best_matching_scheme=_best_match(scheme_summary) if acc.has_logged else None,
        matching_schemes=_matching(scheme_summary),
        settings=settings,
        files=tuple(str(f) for f in files),
        warnings=(
            *reader_warnings,
            *doubts.scale_mismatch(
                names,
                {name: o.dvao_weight for name, o in objectives.items()},
                lo=o["lo"].min(axis=0),
                hi=o["hi"].max(axis=0),
                varying_std=_safe_div(
                    o["std_sum"].sum(axis=0), (o["valid_groups"] - o["saturated"]).sum(axis=0)
                ),
            ),
            *doubts.small_groups(o["size_counts"].sum(axis=0)),
        ),
    )
    return summary, steps_df, schemes_df


def _no_rewards(preference_weight: float, missing: int) -> ObjectiveSummary:
    """An objective without any valid reward: nothing to say about it but its weight."""
    return ObjectiveSummary(
        mean=None,
        within_group_std=None,
        saturation=None,
        saturation_pass=None,
        saturation_fail=None,
        binary=False,
        dvao_weight=None,
        dvao_weight_first=None,
        dvao_weight_last=None,
        preference_weight=preference_weight,
        missing_rewards=missing,
        saturated_from_step=None,
        saturation_after=None,
        saturated_kind=None,
    )


def _agreement(parts: list[AgreementSums]) -> LoggedAgreement:
    n = sum(p.n for p in parts)
    if n == 0:
        return LoggedAgreement(logged_max_diff=None, logged_corr=None)
    sx, sy = sum(p.sx for p in parts), sum(p.sy for p in parts)
    sxx, syy, sxy = sum(p.sxx for p in parts), sum(p.syy for p in parts), sum(p.sxy for p in parts)
    cov = sxy / n - (sx / n) * (sy / n)
    vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
    corr = cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else None
    return LoggedAgreement(
        logged_max_diff=_fnum(max(p.max_diff for p in parts)),
        logged_corr=None if corr is None else _fnum(max(-1.0, min(1.0, corr))),
    )


def _best_match(scheme_summary: dict[str, SchemeSummary]) -> str | None:
    scored = [
        (entry.logged.logged_max_diff, name)
        for name, entry in scheme_summary.items()
        if entry.logged is not None and entry.logged.logged_max_diff is not None
    ]
    return min(scored)[1] if scored else None


def _matching(scheme_summary: dict[str, SchemeSummary]) -> tuple[str, ...]:
    """The schemes whose logged_max_diff is within MATCH_TOL (none without the column)."""
    return tuple(
        name
        for name, entry in scheme_summary.items()
        if entry.logged is not None
        and entry.logged.logged_max_diff is not None
        and entry.logged.logged_max_diff < MATCH_TOL
    )


def _saturation_onset(
    steps: np.ndarray, o: dict[str, np.ndarray], j: int, binary: bool
) -> tuple[int | None, float | None, str | None]:
    """(saturated_from_step, saturation_after, saturated_kind): the earliest step from which
    objective j stays saturated in >= SATURATION_LEVEL of groups, that share, and whether the
    saturated groups are mostly all-pass or all-fail (binary objectives only).

    Share is computed over all groups from that step to the end (a suffix), so a late dip
    moves the onset later rather than hiding it.
    """
    groups = o["groups"]
    sat = o["saturated"][:, j]
    suffix_groups = np.cumsum(groups[::-1])[::-1]
    suffix_sat = np.cumsum(sat[::-1])[::-1] / suffix_groups
    hits = np.nonzero(suffix_sat >= SATURATION_LEVEL)[0]
    if hits.size == 0:
        return None, None, None
    i = int(hits[0])
    kind = None
    if binary:
        passing = o["all_pass"][i:, j].sum()
        failing = o["all_fail"][i:, j].sum()
        kind = "all-pass" if passing >= failing else "all-fail"
    return int(steps[i]), _fnum(suffix_sat[i]), kind


# ---------------------------------------------------------------------------------------------
# Reading summary.json back (`dvao report` on a `dvao analyze --out` folder)


def summary_from_json(data: Any) -> Summary:
    """The `Summary` that `to_json()` wrote as `data`, from its field names and types: the
    inverse of `to_json` (a key a newer field adds may be absent: its default is used). A
    value of the wrong shape raises ValueError naming its key path."""
    value = _decode(Summary, data, "summary")
    assert isinstance(value, Summary)
    return value


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as the type `kind` of a summary field; `where` names it."""
    import types
    import typing

    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, not {value!r}"[:200])
        return _decode_fields(kind, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, not {value!r}"[:200])
        return {str(k): _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, not {value!r}"[:200])
        items = [_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    if (kind is int and number and float(value).is_integer()) or (
        kind in (bool, str) and isinstance(value, kind)
    ):
        return int(value) if kind is int else value
    raise ValueError(f"{where}: expected {getattr(kind, '__name__', kind)}, not {value!r}"[:200])


def _decode_fields(cls: Any, data: dict[str, Any], where: str) -> Any:
    import typing

    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        kind = hints[f.name]
        if f.metadata.get("inline"):  # its keys sit among the owner's (`_to_json`)
            inner = next(a for a in typing.get_args(kind) if a is not type(None))
            names = [g.name for g in fields(inner)]
            if all(name in data for name in names):
                kwargs[f.name] = _decode(inner, {n: data[n] for n in names}, where)
            continue
        if f.name in data:
            kwargs[f.name] = _decode(kind, data[f.name], f"{where}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{where}: the key '{f.name}' is missing")
    return cls(**kwargs)

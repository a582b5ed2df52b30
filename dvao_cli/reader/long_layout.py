"""The long layout (`objective` + `reward` columns, one row per response and objective),
pivoted to the wide one (one row per response, one column per objective).

Responses are matched by `sample_id` when the log has one, else by their order within (step,
group_id, objective). An objective given twice for one response is refused; a response with no
row for an objective (a gap) is a missing reward, refused under `--nan error` with its own
message. The long layout is read whole (it does not stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dvao_cli.errors import InputError
from dvao_cli.reader.format import GROUP, LONG_OBJECTIVE, LONG_REWARD, ROW, SAMPLE, STEP
from dvao_cli.reader.spec import LogSpec

if TYPE_CHECKING:
    import polars as pl

_RANK = "__sample"  # the response's position within (step, group_id, objective), no sample_id


def read_long(spec: LogSpec, columns: Sequence[str], nan: str) -> pl.DataFrame:
    """The whole log, one row per response: `row` (its position among responses, in order of
    first appearance), step, group_id, the other `columns`, then the objectives."""
    import polars as pl

    keys = [STEP, GROUP] + ([SAMPLE] if SAMPLE in spec.columns else [])
    carry = [c for c in columns if c not in keys]
    lf = spec.scan([*keys, *carry, LONG_OBJECTIVE, LONG_REWARD]).with_columns(
        pl.col(LONG_OBJECTIVE).cast(pl.String),
        # a null reward is a missing one (as NaN): after the pivot, null means "no row"
        pl.col(LONG_REWARD).cast(pl.Float64).fill_null(float("nan")),
    )
    lf = lf.filter(pl.col(LONG_OBJECTIVE).is_in(spec.objectives))
    if SAMPLE not in spec.columns:
        # the k-th reward of an objective within a group belongs to the group's k-th response
        lf = lf.with_columns(
            pl.int_range(pl.len()).over([STEP, GROUP, LONG_OBJECTIVE]).alias(_RANK)
        )
        keys = [*keys, _RANK]
    long = lf.collect()
    repeat = ~long.select(pl.struct([*keys, LONG_OBJECTIVE]).is_first_distinct()).to_series()
    if repeat.any():
        first = long.row(int(repeat.arg_true()[0]), named=True)
        n = int(repeat.sum())
        raise InputError(
            f"{_response(first)} has two rows for objective '{first[LONG_OBJECTIVE]}' "
            f"({n} {'row repeats' if n == 1 else 'rows repeat'} an objective for the same "
            "response)",
            path=_file_of_row(spec, first[ROW]),
            column=LONG_OBJECTIVE,
        )
    wide = long.pivot(on=LONG_OBJECTIVE, index=keys, values=LONG_REWARD, aggregate_function=None)
    firsts = long.group_by(keys, maintain_order=True).agg(
        pl.col(ROW).min(), *[pl.col(c).first() for c in carry]
    )
    wide = firsts.join(wide, on=keys, how="left").sort(ROW)
    missing = [o for o in spec.objectives if o not in wide.columns]
    wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(o) for o in missing])
    if nan == "error":
        _check_gaps(spec, wide)
    # `row` of a pivoted response: its position among responses, in order of first appearance
    wide = wide.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
    keep = [ROW, STEP, GROUP, *[c for c in carry if c not in (STEP, GROUP)], *spec.objectives]
    return wide.select(keep)


def _check_gaps(spec: LogSpec, wide: pl.DataFrame) -> None:
    """Under --nan error, a response with no row for an objective is refused, saying so."""
    for name in spec.objectives:
        gaps = wide.get_column(name).null_count()
        if not gaps:
            continue
        first = wide.filter(wide.get_column(name).is_null()).row(0, named=True)
        plural = "response has" if gaps == 1 else "responses have"
        raise InputError(
            f"{gaps} {plural} no row for this objective in the long layout (the first: "
            f"{_response(first)}); use --nan drop to drop those responses or --nan ignore to "
            "skip the missing rewards",
            path=_file_of_row(spec, first[ROW]),
            column=name,
        )


def _response(row: dict[str, Any]) -> str:
    """How a message names one response."""
    which = f"sample_id {row[SAMPLE]}" if SAMPLE in row else f"response {row[_RANK] + 1}"
    return f"step {row[STEP]}, group_id {row[GROUP]!r}, {which}"


def _file_of_row(spec: LogSpec, row: int) -> str:
    """The file holding the log's row `row` (parts are read in order)."""
    total = 0
    for part, meta in zip(spec.parts, spec.footers, strict=True):
        total += meta.num_rows
        if row < total:
            return spec.part_label(part)
    return spec.label

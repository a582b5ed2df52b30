"""Combined scores: an objective equal, on every row, to an affine combination of the others
(verl's `score` = the mean of its reward keys, a `total`). DVAO would count its components
twice, so it is left out of the default objectives, with a `combined_score` warning; named
with `--objective` it is kept, with the warning.

The test is exact and streams (`find_combined`):
  1. one pass over the candidate columns accumulates the Gram matrix of [1, x_1 - c_1, ...,
     x_m - c_m] in float64 over the rows where every candidate has a value (c: a shift, the
     first block's means, so that the sums do not cancel). Constant columns are left out of
     both sides (a constant is trivially affine of anything);
  2. for each column, the least-squares fit on the others (from the Gram matrix) leaves a
     residual sum of squares. A column whose residual is within every row's tolerance,
     n (REL_TOL x scale)^2 (scale: its largest |value|), plus rounding slack, is a candidate:
     a necessary condition, so a combined score is never missed. A combined score is a
     weighted sum of others with positive weights (a trainer's total), or a column named like
     a total (`TOTAL_NAMES`); of the members of one relation, the one with positive weights,
     more terms, a total's name, the later column is left out; the others stay objectives.
     A relation such as o1 = 1 - o0 (complementary rewards) holds none.
  3. a second pass, only when there are candidates, checks every row: |x - fit| <= REL_TOL x
     scale on each. A candidate that fails anywhere is not a combined score (and the search
     runs again without it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from dvao_cli.errors import DvaoError, InputError, LogWarning, is_panic, panic_error
from dvao_cli.reader.format import RESERVED, is_numeric

if TYPE_CHECKING:
    from dvao_cli.reader.spec import LogSpec

REL_TOL = 1e-6  # a row matches when |x - fit| <= REL_TOL x the column's largest |value|
TOL_TEXT = f"{REL_TOL:g}".replace("e-0", "e-")  # "1e-6" in messages
SLACK = 1e-8  # rounding slack of a residual sum of squares from the Gram matrix, relative
BLOCK_ROWS = 1 << 18  # rows read at once
# a fit of p parameters is exact on any p rows: fewer than this many rows per parameter
# (intercept included) prove nothing, and a tiny log's rewards fit each other by chance
ROWS_PER_PARAMETER = 4
# names a trainer gives its combined score: preferred when the relation alone cannot tell
TOTAL_NAMES = ("score", "total", "reward", "overall", "combined", "total_reward", "sum")


@dataclass(frozen=True)
class Combination:
    """`objective` = intercept + sum of coefficient x term, on every row."""

    objective: str
    intercept: float
    terms: tuple[tuple[str, float], ...]  # (objective, coefficient), coefficients non-zero

    def describe(self) -> str:
        """The combination in words: "the mean of a, b and c", "a + 2 x b + 0.5"."""
        names = [name for name, _ in self.terms]
        coefs = np.array([c for _, c in self.terms])
        plain = abs(self.intercept) <= REL_TOL * max(1.0, float(np.abs(coefs).max()))
        if plain and np.allclose(coefs, 1.0 / len(names), rtol=1e-6, atol=0):
            return "the mean of " + _listed(names) if len(names) > 1 else f"a copy of {names[0]}"
        if plain and np.allclose(coefs, 1.0, rtol=1e-6, atol=0):
            return "the sum of " + _listed(names) if len(names) > 1 else f"a copy of {names[0]}"
        text = " + ".join(_term(name, c) for name, c in self.terms).replace("+ -", "- ")
        if plain:
            return text
        return f"{text} {'+' if self.intercept > 0 else '-'} {abs(self.intercept):.4g}"


def _term(name: str, coefficient: float) -> str:
    if abs(abs(coefficient) - 1.0) <= 1e-6:
        return name if coefficient > 0 else f"-{name}"
    return f"{coefficient:.4g} x {name}"


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def with_combined_scores(spec: LogSpec, explicit: bool) -> LogSpec:
    """`spec` with its combined scores left out of the objectives (unless `explicit`: named
    with --objective) and a `combined_score` warning for each that is or would be one."""
    pool = spec.objectives if not explicit else _pool(spec)
    if len(pool) < 2:
        return spec
    found = find_combined(spec, pool)
    named = [c for c in found if c.objective in spec.objectives]
    if not named:
        return spec
    how = (
        "It is kept because --objective names it (beside its parts, DVAO counts them twice)."
        if explicit
        else "It is left out of the objectives; name it with --objective to keep it."
    )
    warnings = [_warning(c, how) for c in named]
    objectives = list(spec.objectives)
    if not explicit:
        objectives = [name for name in objectives if name not in {c.objective for c in named}]
    return replace(spec, objectives=objectives, warnings=[*spec.warnings, *warnings])


def _pool(spec: LogSpec) -> list[str]:
    """The objectives named with --objective, then those the log's default would pick: the
    columns a combination may be made of."""
    from dvao_cli.reader import spec as reader

    default: list[str] = []
    try:
        if spec.long:
            default = reader._long_objectives(spec, None)
        elif spec.format == "dvao":
            default = reader._wide_objectives(spec, None, frozenset())
        else:  # a trainer's log imported with --objective: its other reward columns
            from dvao_cli.importers.run import TRAINERS

            trainer = TRAINERS[spec.format]
            default = [
                name
                for name, dtype in spec.columns.items()
                if name not in RESERVED
                and name not in trainer.not_rewards
                and name not in trainer.text_keys
                and is_numeric(dtype)
                and dtype.is_float()
            ]
    except DvaoError:  # no default set: the named objectives alone
        default = []
    return list(dict.fromkeys([*spec.objectives, *default]))


def _blocks(spec: LogSpec, columns: Sequence[str]) -> Iterator[np.ndarray]:
    """The log's `columns` as (m, n) float64 blocks (NaN: no value), in log order, each column
    contiguous; the rows where some column has no value are left out."""
    import polars as pl

    from dvao_cli.reader.spec import read_error

    def floats(frame: pl.DataFrame) -> np.ndarray:
        values = np.stack(
            [frame.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy() for c in columns]
        )  # (m, n)
        if np.isfinite(values).all():  # the usual case: no copy
            return values
        return values[:, np.isfinite(values).all(axis=0)]

    try:
        if spec.long:
            from dvao_cli.reader.long_layout import read_long

            try:
                frame = read_long(replace(spec, objectives=list(columns)), [], "ignore")
            except DvaoError:  # the analysis reads it again and says what is wrong
                return
            yield floats(frame)
            return
        for part, meta in zip(spec.parts, spec.footers, strict=True):
            for offset in range(0, meta.num_rows, BLOCK_ROWS):
                length = min(BLOCK_ROWS, meta.num_rows - offset)
                yield floats(spec.read(part, offset, length, columns, None))
    except InputError:
        raise
    except Exception as err:
        raise read_error(spec, err) from None
    except BaseException as err:  # polars panics on some damaged files
        if is_panic(err):
            raise panic_error(err, spec.label) from None
        raise


def _warning(found: Combination, how: str) -> LogWarning:
    return LogWarning(
        "combined_score",
        found.objective,
        f"{found.objective} equals {found.describe()} on every row (to {TOL_TEXT} relative): a "
        f"combined score, not an objective of its own. {how}",
    )


def imported_warnings(spec: LogSpec) -> list[LogWarning]:
    """A `combined_score` warning for each combined score among the objectives of a log that
    `dvao import` wrote (`spec`, opened with every objective): what `dvao analyze` will leave
    out, said when the log is written."""
    if len(spec.objectives) < 2:
        return []
    how = "dvao analyze leaves it out of the objectives; name it with --objective to keep it."
    return [_warning(c, how) for c in find_combined(spec, spec.objectives)]


def find_combined(spec: LogSpec, columns: Sequence[str]) -> list[Combination]:
    """The combined scores among `columns` (see the module's docstring), in column order.
    None where the sums overflow (rewards near 1e150, which the analysis refuses itself)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _find(spec, columns)


def _find(spec: LogSpec, columns: Sequence[str]) -> list[Combination]:
    m = len(columns)
    n = 0
    shift: np.ndarray | None = None
    gram = np.zeros((m + 1, m + 1))
    lo = np.full(m, np.inf)
    hi = np.full(m, -np.inf)
    bound, constant = _footer_bound(spec, columns)
    for block in _blocks(spec, columns):
        count = block.shape[1]
        if count == 0:
            continue
        if shift is None:
            shift = block.mean(axis=1)
        z = block - shift[:, None]  # (m, n)
        total = z.sum(axis=1)
        gram[0, 0] += count
        gram[0, 1:] += total
        gram[1:, 0] += total
        gram[1:, 1:] += z @ z.T
        n += count
        np.minimum(lo, block.min(axis=1), out=lo)
        np.maximum(hi, block.max(axis=1), out=hi)
        if not np.isfinite(gram).all():
            return []
        if _none_possible(gram, n, lo, hi, bound, constant):
            return []
    varying = [j for j in range(m) if lo[j] < hi[j]]
    if shift is None or len(varying) < 2 or n < ROWS_PER_PARAMETER * len(varying):
        return []
    scale = np.maximum(np.abs(lo), np.abs(hi))  # (m,) each column's largest |value|
    span = hi - lo
    rejected: set[int] = set()
    while True:  # a candidate that fails on some row is none: search again without it
        fits = _search(gram, n, varying, rejected, scale, span, [str(c) for c in columns])
        if not fits:
            return []
        failed = _check_rows(spec, columns, shift, fits, scale)
        if not failed:
            order = sorted(fits)  # in column order
            return [_combination(columns, j, fits[j], shift, span, scale[j]) for j in order]
        rejected |= failed


def _footer_bound(spec: LogSpec, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(m,) the largest |value| of each column over the log from the footers' statistics (inf
    where a row group has none, for the long layout, or for a log of one block), and (m,)
    whether they say it is constant over the log."""
    low = np.full(len(columns), np.inf)
    high = np.full(len(columns), -np.inf)
    unknown = (np.full(len(columns), np.inf), np.zeros(len(columns), dtype=bool))
    if spec.long or sum(meta.num_rows for meta in spec.footers) <= BLOCK_ROWS:
        return unknown  # read whole anyway (and floats' statistics import pyarrow)
    try:
        for meta in spec.footers:
            names = [meta.schema.column(i).path for i in range(meta.num_columns)]
            for j, name in enumerate(columns):
                if name not in names:  # a partition folder's column
                    low[j], high[j] = -np.inf, np.inf
                    continue
                col = names.index(name)
                for g in range(meta.num_row_groups):
                    stats = meta.row_group(g).column(col).statistics
                    if stats is None or not stats.has_min_max:
                        low[j], high[j] = -np.inf, np.inf
                        break
                    low[j] = min(low[j], float(stats.min))
                    high[j] = max(high[j], float(stats.max))
    except (TypeError, ValueError):  # statistics of another type: no bound
        return unknown
    return np.maximum(np.abs(low), np.abs(high)), low == high


def _none_possible(
    gram: np.ndarray,
    n: int,
    lo: np.ndarray,
    hi: np.ndarray,
    bound: np.ndarray,
    constant: np.ndarray,
) -> bool:
    """Whether the rows read so far already rule out every combined score, whatever the rows
    left: each column that is not constant over the log (`constant`, from the footers) varies
    there, and its fit on all the others misses those rows by more than a combined score's
    fit could (n (REL_TOL x bound)^2; bound: its largest |value| over the log). A combined
    score's relation holds on any subset of rows, with any superset of its terms, so its
    residual there stays within that."""
    m = lo.shape[0]
    ys = [j for j in range(m) if not constant[j]]
    if n <= m + 1 or not (lo[ys] < hi[ys]).all() or not np.isfinite(bound).all():
        return False
    for j in ys:
        _, rss = _fit(gram, j, [i for i in range(m) if i != j])
        if rss <= n * (REL_TOL * bound[j]) ** 2 + SLACK * gram[j + 1, j + 1]:
            return False
    return True


def _fit(gram: np.ndarray, j: int, others: Sequence[int]) -> tuple[np.ndarray, float]:
    """Column j fitted on the intercept and `others` from the Gram matrix: (coefficients on
    [1, others], residual sum of squares)."""
    index = [0, *[i + 1 for i in others]]
    a = gram[np.ix_(index, index)]
    c = gram[index, j + 1]
    b = np.linalg.lstsq(a, c, rcond=1e-13)[0]
    rss = gram[j + 1, j + 1] - 2.0 * b @ c + b @ a @ b
    return b, max(0.0, float(rss))


def _search(
    gram: np.ndarray,
    n: int,
    varying: list[int],
    rejected: set[int],
    scale: np.ndarray,
    span: np.ndarray,
    names: list[str],
) -> dict[int, tuple[np.ndarray, list[int]]]:
    """The columns to test as combined scores, each with its fit on the columns kept: one
    member of each exact linear relation, picked one at a time (a relation between a, b and
    their mean has every member affine in the others; leaving the mean out breaks it)."""
    active = list(varying)
    picked: list[int] = []
    while True:
        candidates = []
        for j in active:
            others = [i for i in active if i != j]
            if j in rejected or not others:
                continue
            b, rss = _fit(gram, j, others)
            if rss <= n * (REL_TOL * scale[j]) ** 2 + SLACK * gram[j + 1, j + 1]:
                terms = [(i, coef) for i, coef in zip(others, b[1:], strict=True)]
                # a term that moves the fit by less than the tolerance over its span is none
                used = [(i, coef) for i, coef in terms if abs(coef) * span[i] > REL_TOL * scale[j]]
                positive = all(coef > 0 for _, coef in used)
                named = names[j].lower() in TOTAL_NAMES
                # a trainer's total weighs its parts positively; a relation such as
                # o1 = 1 - o0 (complementary rewards) holds no combined score, unless the name
                # says so. No term: j varies by less than the tolerance, a constant.
                if used and (positive or named):
                    candidates.append(((positive, len(used), named, j), j))  # a copy: the later
        if not candidates:
            break
        j = max(candidates)[1]
        picked.append(j)
        active.remove(j)
    kept = [i for i in varying if i not in picked]
    return {j: (_fit(gram, j, kept)[0], kept) for j in picked}


def _check_rows(
    spec: LogSpec,
    columns: Sequence[str],
    shift: np.ndarray,
    fits: dict[int, tuple[np.ndarray, list[int]]],
    scale: np.ndarray,
) -> set[int]:
    """The candidates that miss their fit by more than REL_TOL x scale on some row."""
    worst = dict.fromkeys(fits, 0.0)
    for block in _blocks(spec, columns):
        z = block - shift[:, None]  # (m, n)
        for j, (b, kept) in fits.items():
            residual = z[j] - b[0] - b[1:] @ z[kept]
            if residual.shape[0]:
                worst[j] = max(worst[j], float(np.abs(residual).max()))
    return {j for j, value in worst.items() if value > REL_TOL * scale[j]}


def _combination(
    columns: Sequence[str],
    j: int,
    fit: tuple[np.ndarray, list[int]],
    shift: np.ndarray,
    span: np.ndarray,
    scale: float,
) -> Combination:
    """The fit in the columns' own values: x_j - c_j = b0 + sum_i b_i (x_i - c_i) (c: the
    shift), without the terms that move it by less than the tolerance over their span."""
    b, kept = fit
    intercept = float(shift[j] + b[0] - b[1:] @ shift[kept])
    terms = tuple(
        (str(columns[i]), float(coef))
        for i, coef in zip(kept, b[1:], strict=True)
        if abs(coef) * span[i] > REL_TOL * scale
    )
    return Combination(str(columns[j]), intercept, terms)

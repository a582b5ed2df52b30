"""The named analysis backends: ways to compute the same per-step sums of a chunk.

    rows       the reference: the row engine computes every response's advantage of every
               scheme, and the figures are taken from those rows (`figures`)
    sums       the row engine, with two schemes described exactly instead of computed row by
               row: GDPO as AC's advantages times one factor per step, GRPO over a 0/1
               objective as its two values per group (`figures.step_scaled_sums`,
               `two_valued_sums`); with per-response output the rows' way
    patterns   objectives with few distinct rewards: every figure from per-group counts of
               reward patterns (`patterns`), the rows touched a few times
    alike      `patterns`, each distinct column of counts computed once for all the groups that
               show it (many groups share their counts in large chunks)

`auto` (the default) picks per chunk: `alike` where the rewards take few values and enough
groups share their counts, `patterns` where they take few values, else `sums` (`rows` when
every response's advantages are wanted anyway: `--out`, a logged_advantage column). Every
backend gives the numbers of `rows` bit for bit (tests/test_backends.py). Where the rewards take
few values (the pattern backends' logs), `rows` and `sums` take every group sum from the same
pattern counts (`core.counted`): a sum's bits depend on its order, and the counts are all the
pattern backends have. A backend that cannot take a chunk (`patterns` on a continuous reward)
raises BackendError (exit 2), naming why.

Adding a backend: a function (chunk, settings) -> Output, a `Backend` in BACKENDS, and the
equivalence test covers it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dvao_cli.analysis.backends import patterns, rows
from dvao_cli.analysis.parts import Part, Settings
from dvao_cli.core import engine
from dvao_cli.core.counted import MAX_PATTERNS, MAX_VALUES, Counted, Patterns, pattern_codes
from dvao_cli.errors import RewardValueError, UsageError
from dvao_cli.reader.chunk import Chunk

AUTO = "auto"

# (piece, its engine result with every advantage): the per-response step's input
OnRows = Callable[[Chunk, engine.EngineResult], None]


class BackendError(UsageError):
    """The backend asked for (`--backend`) cannot take this log; `auto` can. Exit 2."""


@dataclass
class Output:
    """A backend's work on one chunk: its per-step sums, where the engine ran (None: not
    needed), and whether every piece's advantages went to `on_rows` already."""

    parts: list[Part] = field(default_factory=list)
    device: str | None = None
    rows_done: bool = False


@dataclass(frozen=True)
class Backend:
    name: str
    about: str  # one line
    compute: Callable[[Chunk, Settings, OnRows | None], Output]


def _rows(chunk: Chunk, cfg: Settings, on_rows: OnRows | None, described: bool = False) -> Output:
    out = Output(device=cfg.device_label, rows_done=on_rows is not None and not described)
    for piece in rows.pieces(chunk, cfg):
        result, columns, left, counted = rows.run_engine(piece, cfg, described)
        out.parts.append(rows.engine_sums(piece, cfg, result, columns, left, counted))
        if out.rows_done:
            assert on_rows is not None
            on_rows(piece, result)
    return out


def _sums(chunk: Chunk, cfg: Settings, on_rows: OnRows | None) -> Output:
    # every response's advantages wanted: computed anyway, the figures from them (the same)
    return _rows(chunk, cfg, on_rows, described=not cfg.per_response)


def _columns(chunk: Chunk, cfg: Settings) -> list[np.ndarray]:
    return [chunk.frame.get_column(name).to_numpy() for name in cfg.names]


def _pattern_sums(
    chunk: Chunk, cfg: Settings, found: Patterns, dedup: bool | None
) -> tuple[Output, bool]:
    """The sums from the chunk's pattern counts; `dedup`: each distinct count column's sorted
    values found once (True), never (False), where it pays (None). With whether it was."""
    steps, group_step = chunk.group_steps()
    alike = None
    if dedup is not False and chunk.uniform:  # straight from the codes
        alike = patterns.alike_groups(
            found.code, found.n_patterns, chunk.n_groups, chunk.uniform, force=bool(dedup)
        )
    if alike is None:
        counted = rows.counted_of(chunk, found)
        if dedup is not False:  # from the counts (their largest count may make a smaller key)
            alike = patterns.alike_of_counts(counted.counts, force=bool(dedup))
    if alike is not None:  # each distinct count column once
        counted = Counted(tuple(found.levels), alike[0].astype(np.float64), inverse=alike[1])
    try:
        obj, sch, pairs = patterns.pattern_sums(
            counted, group_step, steps.shape[0], cfg.weights, cfg.schemes, cfg.ddof, cfg.eps
        )
    except RewardValueError as err:
        raise rows.reward_error(err, cfg, chunk.frame) from None
    return Output([Part(steps.tolist(), obj, sch, pairs)]), alike is not None


def _refusal(name: str, chunk: Chunk, cfg: Settings) -> BackendError:
    """Why the pattern backends cannot take this chunk, in one line."""
    steps = chunk.group_steps()[0]
    where = f"steps {int(steps[0])}-{int(steps[-1])}" if steps.shape[0] > 1 else "a step"
    levels = []
    for column_name, column in zip(cfg.names, _columns(chunk, cfg), strict=True):
        if not np.isfinite(column).all():
            reason = f"objective '{column_name}' has a missing or non-finite reward in {where}"
            break
        found = np.unique(column, return_counts=True)[0].shape[0]
        if found > MAX_VALUES:
            reason = (
                f"objective '{column_name}' takes more than {MAX_VALUES} distinct "
                f"rewards in {where}"
            )
            break
        levels.append(found)
    else:
        reason = (
            f"its rewards make {math.prod(levels)} patterns in {where}, more than {MAX_PATTERNS}"
        )
    return BackendError(
        f"--backend {name} cannot take this log: {reason} (it counts reward patterns); "
        "use --backend auto",
        path=cfg.spec.label,
    )


def _found(chunk: Chunk, cfg: Settings) -> Patterns | None:
    return pattern_codes(_columns(chunk, cfg))


def _patterns_backend(dedup: bool) -> Callable[[Chunk, Settings, OnRows | None], Output]:
    name = "alike" if dedup else "patterns"

    def compute(chunk: Chunk, cfg: Settings, on_rows: OnRows | None) -> Output:
        found = _found(chunk, cfg)
        if found is None:
            raise _refusal(name, chunk, cfg)
        return _pattern_sums(chunk, cfg, found, dedup)[0]

    return compute


BACKENDS: tuple[Backend, ...] = (
    Backend("rows", "the row engine, every advantage computed (the reference)", _rows),
    Backend("sums", "the row engine, GDPO and a 0/1 GRPO described exactly", _sums),
    Backend("patterns", "per-group reward-pattern counts", _patterns_backend(False)),
    Backend("alike", "pattern counts, each distinct column once", _patterns_backend(True)),
)
BY_NAME = {backend.name: backend for backend in BACKENDS}
NAMES = (AUTO, *BY_NAME)


def check_name(name: str) -> str:
    """`name` if it is auto or a backend's, else a UsageError listing them."""
    if name not in NAMES:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    return name


def compute(chunk: Chunk, cfg: Settings, on_rows: OnRows | None) -> tuple[str, Output]:
    """(the backend's name, its output) for one chunk of at least one row: the one in
    `cfg.backend`, or with auto the fastest that takes it."""
    if cfg.backend != AUTO:
        return cfg.backend, BY_NAME[cfg.backend].compute(chunk, cfg, on_rows)
    found = _found(chunk, cfg)
    if found is None:  # many distinct rewards (or a missing one): the row engine's way
        name = "rows" if cfg.per_response else "sums"
        return name, BY_NAME[name].compute(chunk, cfg, on_rows)
    out, deduped = _pattern_sums(chunk, cfg, found, None)
    return ("alike" if deduped else "patterns"), out

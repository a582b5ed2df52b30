"""The row engine's backends: `rows`, the reference (every response's advantage computed, the
figures taken from them), and `sums`, the same figures from exact descriptions of two schemes
instead of their rows (GDPO as AC times one factor per step, GRPO over a 0/1 objective as two
values per group; `figures.step_scaled_sums`, `figures.two_valued_sums`).

numpy on the CPU; torch on CUDA (`--device`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

import dvao_cli.analysis.figures as dg
from dvao_cli.analysis.parts import Part, Settings
from dvao_cli.analysis.step_sums import SchemeSums, counted_pair_sums, objective_sums
from dvao_cli.core import engine
from dvao_cli.core import schemes as table
from dvao_cli.core.counted import Counted, Patterns, pattern_codes, pattern_counts
from dvao_cli.core.segments import Blocks, NumpyRagged, Segments, TorchRagged
from dvao_cli.errors import InputError, RewardValueError
from dvao_cli.reader.chunk import Chunk, non_finite_error

# Rows the row engine takes at once (whole steps; a larger step is one piece): 2^18 rows, a
# 2 MiB float64 column. With the command line's allocator tuning, 2^16-2^19 cost the same per
# row within noise, 2M rows 1.07-1.1x (`benchmarks/analyze_map_bench.py --piece-rows N`);
# without it, 2M-row pieces pay page faults for every fresh (N,) buffer.
ENGINE_PIECE_ROWS = 1 << 18
PRIMARY = 0  # GRPO's objective: the first


def pieces(chunk: Chunk, cfg: Settings) -> list[Chunk]:
    """The chunk in the engine's pieces of whole steps: it makes a few dozen passes over (N,)
    buffers, which should stay small."""
    return chunk.split(min(cfg.chunk_rows, ENGINE_PIECE_ROWS))


def reward_error(err: RewardValueError, cfg: Settings, frame) -> InputError:
    """The core's error about objective k as the reader's one line: the column, and the real
    reason (non-finite rewards are counted and located over the whole log)."""
    if err.non_finite:
        return non_finite_error(cfg.spec, frame)
    reason = err.message.split(": ", 1)[-1]
    return InputError(reason, path=cfg.spec.label, column=cfg.names[err.objective])


@dataclass(frozen=True)
class Described:
    """The schemes the engine leaves out of its rows for `sums`, each with what its figures
    follow from exactly."""

    # whitened scheme -> its numerator: an earlier scheme over the same numerator has rows
    # (its distinct values are that one's: `schemes.twins`), and its advantages are
    # fl(numerator x f), f one number per step (GDPO with AC): `figures.scaled_sums`
    scaled: dict[str, str] = field(default_factory=dict)
    # scheme over one 0/1 objective's deviations, unwhitened -> that objective (GRPO): two
    # values per group, fl(0 - mu) x scale and fl(1 - mu) x scale
    two_valued: dict[str, int] = field(default_factory=dict)

    def left_out(self) -> set[str]:
        return set(self.scaled) | set(self.two_valued)


def describe(schemes: list[str], missing: bool, zero_one: list[bool] | None) -> Described:
    """What `sums` leaves out: nothing with missing rewards (a row with no reward is 0 in
    every scheme, not its numerator times a scale); `zero_one` (K,) where the engine counts a
    0/1 objective's ones (groups in blocks), else None. A scheme with a scale per group
    (DVAO beside RC) keeps its rows: its largest |A| would need each group's largest
    |numerator|, a transposed pass that cost more than its rows (docs/performance.md)."""
    if missing:
        return Described()
    found = Described()
    first = table.twins(schemes, missing)  # scheme -> the first over its numerator
    for name in schemes:
        kind = table.numerator_of(name, missing)
        whitened = table.BY_NAME[name].whitened
        if name in first and whitened:
            found.scaled[name] = kind
        elif kind == table.PRIMARY and zero_one is not None and zero_one[PRIMARY]:
            if not whitened:
                found.two_valued[name] = PRIMARY
    return found


def counted_of(chunk: Chunk, found: Patterns) -> Counted:
    """The chunk's rewards as pattern counts per group (`found`: its pattern codes)."""
    counts = pattern_counts(
        found.code,
        found.n_patterns,
        chunk.n_groups,
        group_size=chunk.uniform,
        group=None if chunk.uniform else chunk.group,
    )
    return Counted(tuple(found.levels), counts.astype(np.float64), found.code)


def run_engine(
    chunk: Chunk, cfg: Settings, described: bool = False
) -> tuple[engine.EngineResult, list[np.ndarray], Described, Counted | None]:
    """The row engine over one piece: (its result as numpy arrays, the reward columns K x (N,)
    it read, the schemes it left out, the counts its sums came from). numpy on the CPU;
    torch on CUDA. `described`: the schemes `describe` finds are left out of the rows (the
    `sums` backend). Rewards with few values (no reward missing, on the CPU): every group
    sum from their pattern counts (`core.counted`), as the pattern backends take them."""
    frame = chunk.frame
    columns = [
        np.ascontiguousarray(frame.get_column(name).to_numpy(), dtype=np.float64)
        for name in cfg.names
    ]
    _, group_step = chunk.group_steps()
    n_steps = int(group_step[-1]) + 1 if group_step.shape[0] else 0
    dev = cfg.device
    if dev is None:
        seg: Segments = (
            Blocks(chunk.n_groups, chunk.uniform)
            if chunk.uniform
            else NumpyRagged(chunk.group, chunk.n_groups, is_sorted=True)
        )
        rows, step_of_group = columns, group_step
    else:
        import torch

        with warnings.catch_warnings():  # read-only columns from polars: copied to the device
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            rows = [torch.from_numpy(column).to(dev) for column in columns]
        step_of_group = torch.from_numpy(group_step).to(dev)
        seg = (
            Blocks(chunk.n_groups, chunk.uniform)
            if chunk.uniform
            else TorchRagged(torch.from_numpy(chunk.group).to(dev), chunk.n_groups)
        )
    found = pattern_codes(columns) if dev is None else None  # None with a NaN
    counted = counted_of(chunk, found) if found is not None else None
    missing = cfg.nan == "ignore" and counted is None  # no reward missing in counts
    # checked once for the engine and for `describe` (the engine counts ones in blocks only)
    zero_one = [engine.zero_one_column(r) for r in rows] if chunk.uniform and not missing else None
    left = describe(cfg.schemes, missing, zero_one) if described else Described()
    try:
        result = engine.run(
            rows,
            seg,
            step_of_group,
            n_steps,
            cfg.weights,
            tuple(cfg.schemes),
            ddof=cfg.ddof,
            eps=cfg.eps,
            missing=missing,
            squares=True,
            advantages=[name for name in cfg.schemes if name not in left.left_out()],
            zero_one=zero_one,
            counted=counted,
        )
    except RewardValueError as err:
        raise reward_error(err, cfg, frame) from None
    if dev is not None:
        result = engine.to_numpy(result)
    return result, columns, left, counted


def engine_sums(
    chunk: Chunk,
    cfg: Settings,
    result: engine.EngineResult,
    columns: list[np.ndarray],
    left: Described,
    counted: Counted | None = None,
) -> Part:
    """The per-step sums of a piece from the engine's advantages (any reward, missing too),
    and from the exact descriptions of the schemes it left out (`left`); a numerator the
    engine gave has its |v| taken once, for the described scheme and one of scale 1 over it."""
    steps, group_step = chunk.group_steps()
    ix = dg.ChunkIndex(chunk.group, chunk.sizes, group_step, steps, chunk.uniform)
    m = result.moments
    missing = cfg.nan == "ignore" and counted is None  # only then can a reward be NaN here
    obj = objective_sums(
        ix.by_step, m.size, m.count, m.mean, m.std, m.lo, m.hi, m.dvao_weight, cfg.ddof
    )
    distinct = dg.distinct_advantages(
        result.advantages,
        ix,
        missing,
        primary_std=m.std[PRIMARY] if obj.binary[PRIMARY] else None,
    )
    first = table.twins(cfg.schemes, missing)
    for name in left.scaled:  # the first scheme over its numerator has rows: its count
        distinct[name] = distinct[first[name]]
    size = m.size.astype(np.float64)  # (G,)
    two: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # at 0, at 1, ones (G,)
    for name, k in left.two_valued.items():
        mu, scale = m.mean[k], result.scales[name]  # fl(r - mu) x scale, as the rows are
        two[name] = ((0.0 - mu) * scale, (1.0 - mu) * scale, result.ones[k])
        distinct[name] = dg.two_valued_distinct(*two[name], size)
    distinct_rewards = dg.distinct_reward_vectors(columns, ix, missing, distinct.values())
    magnitudes: dict[str, np.ndarray] = {}  # numerator -> |v| (N,), when one is described
    for kind in set(left.scaled.values()):
        magnitudes[kind] = np.abs(result.numerators[kind])
    sch: dict[str, SchemeSums] = {}
    for name in cfg.schemes:
        kind = table.numerator_of(name, missing)
        scale = result.scales[name]  # (G,)
        if name in left.scaled:  # whitened: its scale alike over each step's groups
            sch[name] = dg.scaled_sums(
                magnitudes[kind], scale[ix.by_step.starts], result.squares[name],
                distinct[name], distinct_rewards, ix,
            )  # fmt: skip
        elif kind in magnitudes and bool(np.all(scale == 1.0)):  # its rows are the numerator
            sch[name] = dg.scaled_sums(
                magnitudes[kind], None, result.squares[name], distinct[name], distinct_rewards,
                ix,
            )  # fmt: skip
        elif name in two:
            sch[name] = dg.two_valued_sums(
                *two[name], size, result.squares[name], distinct[name], distinct_rewards, ix
            )
        else:
            sch[name] = dg.scheme_sums(
                result.advantages[name], distinct[name], distinct_rewards, ix,
                result.squares.get(name),
            )  # fmt: skip
    return Part(
        steps=steps.tolist(),
        obj=obj,
        sch=sch,
        pairs=(
            dg.correlation_sums(columns, m.mean, m.std, m.square, ix, missing)
            if counted is None
            else counted_pair_sums(counted, m.mean, m.std, m.square, ix.by_step)
        ),
    )

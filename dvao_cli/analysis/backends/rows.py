"""The row engine's backends: `rows`, the reference (every response's advantage computed, the
figures taken from them), and `sums`, the same figures from exact descriptions of two schemes
instead of their rows (GDPO as AC times one factor per step, GRPO over a 0/1 objective as two
values per group; `figures.step_scaled_sums`, `figures.two_valued_sums`).

numpy on the CPU; torch on CUDA (`--device`)."""

from __future__ import annotations

import warnings

import numpy as np

import dvao_cli.analysis.figures as dg
from dvao_cli.analysis.parts import Part, Settings
from dvao_cli.analysis.step_sums import SchemeSums, objective_sums
from dvao_cli.core import engine
from dvao_cli.core.segments import Blocks, NumpyRagged, Segments, TorchRagged
from dvao_cli.errors import InputError, RewardValueError
from dvao_cli.reader.chunk import Chunk, non_finite_error

# Rows the row engine takes at once (whole steps; a larger step is one piece): 2^18 rows, a
# 2 MiB float64 column. With the command line's allocator tuning, 2^16-2^19 cost the same per
# row within noise, 2M rows 1.07-1.1x (`benchmarks/analyze_map_bench.py --piece-rows N`);
# without it, 2M-row pieces pay page faults for every fresh (N,) buffer.
ENGINE_PIECE_ROWS = 1 << 18


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


def run_engine(
    chunk: Chunk, cfg: Settings, sums_only: bool = False
) -> tuple[engine.EngineResult, list[np.ndarray]]:
    """The row engine over one piece: (its result as numpy arrays, the reward columns K x (N,)
    it read). numpy on the CPU; torch on CUDA. `sums_only`: GDPO (AC times a factor per step)
    and GRPO over a 0/1 primary (two values per group) are described, not computed row by row
    (`engine.run`)."""
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
            missing=cfg.nan == "ignore",
            squares=True,
            sums_only=sums_only,
        )
    except RewardValueError as err:
        raise reward_error(err, cfg, frame) from None
    if dev is not None:
        result = engine.to_numpy(result)
    return result, columns


def engine_sums(
    chunk: Chunk, cfg: Settings, result: engine.EngineResult, columns: list[np.ndarray]
) -> Part:
    """The per-step sums of a piece from the engine's advantages (any reward, missing too),
    and from its exact descriptions of the schemes it left out (`sums_only`)."""
    steps, group_step = chunk.group_steps()
    ix = dg.ChunkIndex(chunk.group, chunk.sizes, group_step, steps, chunk.uniform)
    m = result.moments
    missing = cfg.nan == "ignore"  # only then can a reward be NaN here
    obj = objective_sums(
        ix.by_step, m.size, m.count, m.mean, m.std, m.lo, m.hi, m.dvao_weight, cfg.ddof
    )
    distinct = dg.distinct_advantages(
        result.advantages,
        ix,
        missing,
        primary_std=m.std[0] if obj.binary[0] else None,  # grpo's primary is the first
    )
    for name, (base, _) in result.step_scaled.items():  # a positive multiple: the same count
        distinct[name] = distinct[base]
    size = m.size.astype(np.float64)  # (G,)
    for name, (at0, at1, ones) in result.two_valued.items():
        distinct[name] = dg.two_valued_distinct(at0, at1, ones, size)
    distinct_rewards = dg.distinct_reward_vectors(columns, ix, missing, distinct.values())
    sch: dict[str, SchemeSums] = {}
    bases = {base for base, _ in result.step_scaled.values()}  # schemes others are multiples of
    magnitudes: dict[str, np.ndarray] = {}  # their |A|, shared
    for name, adv in result.advantages.items():
        if name in bases:
            magnitudes[name] = np.abs(adv)
        sch[name] = dg.scheme_sums(
            adv, distinct[name], distinct_rewards, ix, result.squares.get(name),
            magnitudes.get(name),
        )  # fmt: skip
    for name, (base, factor) in result.step_scaled.items():
        sch[name] = dg.step_scaled_sums(
            magnitudes[base], sch[base], factor, result.squares[name], distinct[name],
            distinct_rewards, ix,
        )  # fmt: skip
    for name, (at0, at1, ones) in result.two_valued.items():
        sch[name] = dg.two_valued_sums(
            at0, at1, ones, size, result.squares[name], distinct[name], distinct_rewards, ix
        )
    return Part(
        steps=steps.tolist(),
        obj=obj,
        sch={name: sch[name] for name in cfg.schemes},
        pairs=dg.correlation_sums(columns, m.mean, m.std, m.square, ix, missing),
    )

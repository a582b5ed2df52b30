"""Seeded synthetic rollout logs with realistic multi-reward GRPO dynamics.

Every sampled response gets one reward per objective, all in [0, 1]:

- `accuracy` (binary): each prompt has a latent difficulty d ~ N(0, sd); the policy's skill rises
  on a sigmoid-shaped logit schedule over training, and a response is correct with probability
  sigmoid(skill(t) - d). Easy prompts become all-pass groups, hard ones stay all-fail.
- `format` (binary): the format is learned fast; its logit ramps up so that almost every group is
  all-pass after ~20% of the steps (zero within-group variance: no signal left).
- `length` (binary compliance, e.g. shorter than a token budget): a correct response is less
  likely to comply (reasoning takes tokens), so length is anti-correlated with accuracy inside a
  group: the conflict multi-reward schemes must arbitrate.
- `rm_score` (continuous in (0, 1)): a reward-model score that is mostly noise with a small signal
  correlated with accuracy. It never saturates, so its within-group variance stays high although
  it carries little learnable signal: variance is not learnability.

Generation is vectorised numpy and independent of the chunking: the responses of one step are
drawn in pieces of at most `PIECE_ROWS` rows, each piece from its own generator seeded with
(seed, step, piece, objective), so a column does not change when other objectives are added or
removed, and memory stays bounded however large the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dvao_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

OBJECTIVES = ("accuracy", "format", "length", "rm_score")
DEFAULT_OBJECTIVES = ("accuracy", "format", "length")

# rows per generated piece (a step larger than this is drawn in several pieces) and rows per
# yielded chunk / Parquet row group; the data depend on PIECE_ROWS only, never on chunk_rows
PIECE_ROWS = 1 << 20
DEFAULT_CHUNK_ROWS = 2_000_000

# independent random streams: one per objective, so each column is the same whichever
# objectives are requested (length and rm_score read the accuracy stream's outcomes)
_STREAM = {"accuracy": 0, "format": 1, "length": 2, "rm_score": 3}
ID_COLUMNS = ("step", "group_id", "sample_id")
TEXT_COLUMNS = ("prompt", "completion")


@dataclass(frozen=True)
class Scenario:
    """Parameters of one named dynamic. Logits are functions of training progress t in [0, 1]."""

    description: str
    # accuracy: correct with probability sigmoid(acc_start + (acc_end - acc_start) * t - d),
    # d ~ N(0, difficulty_sd) per prompt
    acc_start: float = -2.0
    acc_end: float = 1.5
    difficulty_sd: float = 1.5
    # format: logit fmt_start + (fmt_end - fmt_start) * min(t / fmt_saturate_at, 1) + N(0, fmt_sd)
    fmt_start: float = -1.0
    fmt_end: float = 6.5
    fmt_saturate_at: float = 0.2
    fmt_sd: float = 0.6
    # length compliance: logit len_start + (len_end - len_start) * t + N(0, len_sd) per group
    # - len_conflict * correct
    len_start: float = 0.6
    len_end: float = 1.6
    len_sd: float = 0.5
    len_conflict: float = 0.9
    # rm_score: sigmoid(N(0, rm_group_sd) per group + rm_signal * (correct - 0.5) + rm_noise * eps)
    rm_group_sd: float = 0.3
    rm_signal: float = 0.8
    rm_noise: float = 1.0


SCENARIOS: dict[str, Scenario] = {
    "standard": Scenario(
        "accuracy rises from ~20% to ~75% correct, format saturates after ~20% of the steps, "
        "length mildly conflicts with accuracy, rm_score is mostly noise"
    ),
    "saturating": Scenario(
        "like standard, but accuracy too saturates: most groups are all-pass in the last third "
        "of training",
        acc_start=-1.5,
        acc_end=7.5,
        difficulty_sd=1.0,
    ),
    "conflict": Scenario(
        "strong accuracy/length anti-correlation: a correct response rarely fits the length budget",
        len_start=2.0,
        len_end=2.5,
        len_conflict=3.5,
    ),
    "noisy": Scenario(
        "rm_score is nearly pure noise with a wide spread and length is mostly compliant, so "
        "rm_score dominates the within-group variance",
        len_start=2.0,
        len_end=3.0,
        rm_signal=0.2,
        rm_noise=6.0,
    ),
}


def parse_objectives(spec: str | Sequence[str] | None) -> list[str]:
    """`"accuracy,format"` (or a list) -> ["accuracy", "format"]; a UsageError for a bad list."""
    if spec is None:
        return list(DEFAULT_OBJECTIVES)
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [name.strip() for name in names]
    accepted = ", ".join(OBJECTIVES)
    if not any(names):
        raise UsageError(f"--objectives is empty; choose from {accepted}")
    out: list[str] = []
    for name in names:
        if name not in OBJECTIVES:
            raise UsageError(f"--objectives: unknown objective '{name}'; choose from {accepted}")
        if name in out:
            raise UsageError(f"--objectives: '{name}' is listed twice")
        out.append(name)
    return out


def check_options(steps: int, groups: int, group_size: int, scenario: str, seed: int) -> None:
    """One-line UsageErrors for out-of-range options."""
    for flag, value in (("--steps", steps), ("--groups", groups)):
        if value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if group_size < 2:
        raise UsageError(
            f"--group-size must be at least 2 (a group of one has no variance), got {group_size}"
        )
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    if scenario not in SCENARIOS:
        raise UsageError(
            f"--scenario: unknown scenario '{scenario}'; choose from {', '.join(SCENARIOS)}"
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    # 0.5 * (1 + tanh(x / 2)) is exact in range and never overflows
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class _Piece:
    """Groups [first, first + n_groups) of one step, drawn from their own generators."""

    step: int
    index: int  # the piece's position within its step (part of the seed)
    first: int
    n_groups: int


def _plan(steps: int, groups: int, group_size: int, chunk_rows: int) -> Iterator[list[_Piece]]:
    """Pieces in step, group order, batched into chunks of at most `chunk_rows` rows (or one
    piece when a piece alone is larger)."""
    groups_per_piece = max(1, PIECE_ROWS // group_size)
    chunk: list[_Piece] = []
    rows = 0
    for step in range(steps):
        for index, first in enumerate(range(0, groups, groups_per_piece)):
            piece = _Piece(step, index, first, min(groups_per_piece, groups - first))
            piece_rows = piece.n_groups * group_size
            if chunk and rows + piece_rows > chunk_rows:
                yield chunk
                chunk, rows = [], 0
            chunk.append(piece)
            rows += piece_rows
    if chunk:
        yield chunk


def _fill_piece(
    piece: _Piece,
    out: dict[str, np.ndarray],
    steps: int,
    groups: int,
    group_size: int,
    scenario: Scenario,
    seed: int,
) -> None:
    """Write the piece's ids and rewards into `out`'s (n_groups * G,) views, in place."""
    import numpy as np

    n_groups = piece.n_groups
    shape = (n_groups, group_size)
    progress = piece.step / (steps - 1) if steps > 1 else 0.0
    out["step"].fill(piece.step)
    # group_id: a prompt index unique over the whole run (each step samples new prompts)
    first_id = piece.step * groups + piece.first
    out["group_id"].reshape(shape)[:] = np.arange(first_id, first_id + n_groups)[:, None]
    out["sample_id"].reshape(shape)[:] = np.arange(group_size)[None, :]

    def rng(objective: str) -> np.random.Generator:
        return np.random.default_rng([seed, piece.step, piece.index, _STREAM[objective]])

    sc = scenario
    correct: np.ndarray | None = None  # (n_groups, G) bool
    if any(name in out for name in ("accuracy", "length", "rm_score")):
        gen = rng("accuracy")
        difficulty = gen.normal(0.0, sc.difficulty_sd, n_groups)  # (n_groups,)
        skill = sc.acc_start + (sc.acc_end - sc.acc_start) * progress
        p_correct = _sigmoid(skill - difficulty).astype(np.float32)  # (n_groups,)
        correct = gen.random(shape, dtype=np.float32) < p_correct[:, None]  # (n_groups, G)
        if "accuracy" in out:
            out["accuracy"].reshape(shape)[:] = correct
    if "format" in out:
        gen = rng("format")
        ramp = min(progress / sc.fmt_saturate_at, 1.0) if sc.fmt_saturate_at > 0 else 1.0
        logit = sc.fmt_start + (sc.fmt_end - sc.fmt_start) * ramp
        p_format = _sigmoid(logit + gen.normal(0.0, sc.fmt_sd, n_groups))  # (n_groups,)
        uniform = gen.random(shape, dtype=np.float32)  # (n_groups, G)
        out["format"].reshape(shape)[:] = uniform < p_format.astype(np.float32)[:, None]
    if "length" in out:
        assert correct is not None
        gen = rng("length")
        base = sc.len_start + (sc.len_end - sc.len_start) * progress
        group_logit = base + gen.normal(0.0, sc.len_sd, n_groups)  # (n_groups,)
        p_wrong = _sigmoid(group_logit).astype(np.float32)[:, None]  # (n_groups, 1)
        p_right = _sigmoid(group_logit - sc.len_conflict).astype(np.float32)[:, None]
        uniform = gen.random(shape, dtype=np.float32)  # (n_groups, G)
        # a correct response complies with probability p_right, a wrong one with p_wrong
        out["length"].reshape(shape)[:] = np.where(correct, uniform < p_right, uniform < p_wrong)
    if "rm_score" in out:
        assert correct is not None
        gen = rng("rm_score")
        group_bias = gen.normal(0.0, sc.rm_group_sd, n_groups)  # (n_groups,)
        logit = out["rm_score"].reshape(shape)
        gen.standard_normal(shape, out=logit)  # (n_groups, G), written in place
        logit *= sc.rm_noise
        logit += group_bias[:, None]
        logit += np.where(correct, 0.5 * sc.rm_signal, -0.5 * sc.rm_signal)
        # sigmoid in place: 0.5 * (1 + tanh(x / 2))
        logit *= 0.5
        np.tanh(logit, out=logit)
        logit += 1.0
        logit *= 0.5


def _iter_chunks(
    steps: int,
    groups: int,
    group_size: int,
    objectives: Sequence[str] | str | None,
    scenario: str,
    seed: int,
    text: bool,
    chunk_rows: int,
) -> Iterator[tuple[float, pl.DataFrame]]:
    """(steps done, frame) per chunk. Each chunk's columns are allocated once and the pieces
    write into slices of them (no concatenation copies)."""
    import numpy as np
    import polars as pl

    names = parse_objectives(objectives)
    check_options(steps, groups, group_size, scenario, seed)
    if chunk_rows < 1:
        raise UsageError(f"chunk_rows must be positive, got {chunk_rows}")
    sc = SCENARIOS[scenario]
    for chunk in _plan(steps, groups, group_size, chunk_rows):
        rows = sum(piece.n_groups for piece in chunk) * group_size
        columns = {name: np.empty(rows, dtype=np.int64) for name in ID_COLUMNS}
        columns.update((name, np.empty(rows, dtype=np.float64)) for name in names)
        start = 0
        for piece in chunk:
            stop = start + piece.n_groups * group_size
            views = {name: array[start:stop] for name, array in columns.items()}
            _fill_piece(piece, views, steps, groups, group_size, sc, seed)
            start = stop
        frame = pl.DataFrame(columns)
        if text:
            frame = frame.with_columns(
                pl.format("prompt-{}", pl.col("group_id")).alias("prompt"),
                pl.format("resp s{} g{} #{}", "step", "group_id", "sample_id").alias("completion"),
            ).select(*ID_COLUMNS, *TEXT_COLUMNS, *names)
        last = chunk[-1]
        yield last.step + (last.first + last.n_groups) / groups, frame


def simulate_frames(
    steps: int = 50,
    groups: int = 32,
    group_size: int = 8,
    objectives: Sequence[str] | str | None = None,
    scenario: str = "standard",
    seed: int = 0,
    *,
    text: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pl.DataFrame]:
    """The log as consecutive frames of about `chunk_rows` rows (whole groups), in order.

    Columns: step, group_id, sample_id (Int64), prompt, completion (String, unless text=False),
    then one Float64 column per objective. The data do not depend on `chunk_rows`.
    """
    for _, frame in _iter_chunks(
        steps, groups, group_size, objectives, scenario, seed, text, chunk_rows
    ):
        yield frame


def simulate(
    steps: int = 50,
    groups: int = 32,
    group_size: int = 8,
    objectives: Sequence[str] | str | None = None,
    scenario: str = "standard",
    seed: int = 0,
    *,
    text: bool = True,
) -> pl.DataFrame:
    """The whole log as one frame (for tests and small logs)."""
    import polars as pl

    frames = list(simulate_frames(steps, groups, group_size, objectives, scenario, seed, text=text))
    return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)


@dataclass(frozen=True)
class SimulateSummary:
    path: Path
    rows: int
    steps: int
    groups: int
    group_size: int
    objectives: list[str]
    scenario: str


def write_simulated(
    path: str | Path,
    steps: int = 50,
    groups: int = 32,
    group_size: int = 8,
    objectives: Sequence[str] | str | None = None,
    scenario: str = "standard",
    seed: int = 0,
    *,
    text: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: Callable[[float], None] | None = None,
) -> SimulateSummary:
    """Stream the log into one Parquet file (one row group per chunk), written atomically.
    `on_progress(steps_done)` is called after each chunk (the command line's progress bar)."""
    import pyarrow.parquet as pq

    from dvao_cli.io import atomic_path

    names = parse_objectives(objectives)
    check_options(steps, groups, group_size, scenario, seed)
    path = Path(path)
    if path.is_dir():
        raise UsageError(
            "--out is a directory; give a file name such as rollouts.parquet", path=path
        )
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # the atomic rename would replace the link or device node itself (e.g. /dev/stdout)
        raise UsageError(
            "--out must be a regular file, not a link, device or pipe (Parquet cannot be streamed)",
            path=path,
        )
    rows = 0
    chunks = _iter_chunks(steps, groups, group_size, names, scenario, seed, text, chunk_rows)
    # atomic_path: no partial file, and a full or read-only destination is an OutputError
    with (
        atomic_path(path) as tmp,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        # the writer thread encodes chunk i while this thread draws chunk i + 1 (Parquet
        # encoding and numpy's generators release the GIL): at most two chunks in memory
        writer: pq.ParquetWriter | None = None
        pending: Future[None] | None = None
        try:
            for done, frame in chunks:
                table = frame.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, table, row_group_size=len(table))
                rows += len(table)
                if on_progress is not None:
                    on_progress(done)
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.exception()  # let a write in flight finish before closing
            if writer is not None:
                writer.close()
    return SimulateSummary(path, rows, steps, groups, group_size, names, scenario)

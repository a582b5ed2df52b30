"""`dvao analyze`'s core: plan, map, reduce over ranges of whole steps.

  * plan: the ranges of whole steps to read, from the Parquet footers' step floors
    (`reader.stream.iter_frames`), read ahead on a reader thread (`_plan`); for a large log
    whose footers promise whole steps per range (`reader.stream.plan_ranges`), all at once;
  * map: each range's per-step sums, a few numbers per step (`_map`; pure): on worker threads,
    or for a large log in this process and spawned worker processes that each read their own
    ranges (`_in_processes`, `workers.WorkerPool`);
  * reduce: the sums of every range, in input order (`Accumulator.add`), then the summary
    (`_finish`).

Memory does not grow with the number of rows. A range's sums come from one of the named
backends (`backends.BACKENDS`): by default, a range whose objectives take few distinct rewards
(pass/fail, partial credit) is summarised from its per-group reward-pattern counts; any other
goes through the row engine (`core.engine`) and `figures`. Both are numpy on the CPU (torch is
not imported); the engine runs on torch with `--device cuda` (or `auto` on a machine with a
GPU). With an output folder, or a `logged_advantage` column to
compare with, the engine also computes every response's advantages; they are appended to
`advantages.parquet` range by range, in `row` order (the log's order; `_in_row_order`), with
the log's `source_*` columns (the trainer's file and row) beside them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dvao_cli.analysis import gate
from dvao_cli.analysis.accumulator import Accumulator
from dvao_cli.analysis.backends import registry as backends
from dvao_cli.analysis.backends.rows import pieces, run_engine
from dvao_cli.analysis.parts import ChunkResult, Counts, Settings
from dvao_cli.analysis.summary import RunSettings, Summary, build_summary
from dvao_cli.analysis.workers import PROCESS_MIN_ROWS, WorkerPool
from dvao_cli.core import engine
from dvao_cli.core.schemes import SCHEMES, check_schemes
from dvao_cli.errors import InputError, LogWarning, UsageError, counted
from dvao_cli.io import check_outputs, dumps_json, output_set
from dvao_cli.objective_names import resolve_weights
from dvao_cli.reader.chunk import Chunk, prepare_chunk
from dvao_cli.reader.discovery import LogSource
from dvao_cli.reader.format import (
    DEFAULT_CHUNK_ROWS,
    GROUP,
    LOGGED,
    ROW,
    STEP,
)
from dvao_cli.reader.opening import open_log
from dvao_cli.reader.plausible import GroupStats, check_groups
from dvao_cli.reader.spec import LogSpec
from dvao_cli.reader.stream import Read, iter_frames, plan_ranges, read_range

ADVANTAGES_FILE = "advantages.parquet"
TABLE_FILES = ("steps.parquet", "schemes.parquet", "summary.json")
OUT_FILES = (ADVANTAGES_FILE, *TABLE_FILES)  # the set `analyze --out` writes


@dataclass
class Analysis:
    """The result: per-step tables, the whole-log summary, and what was read."""

    steps: pl.DataFrame  # one row per (step, objective)
    schemes: pl.DataFrame  # one row per (step, scheme)
    summary: Summary  # summary.json is summary.to_json()
    files: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    trips: list[gate.Trip] = field(default_factory=list)
    backends: dict[str, int] = field(default_factory=dict)  # backend -> chunks it computed
    # doubts about the answer (`errors.LogWarning`): the log's own (`LogSpec.warnings`, e.g.
    # an import's oversized_group) and the analysis's; the same list as the spec's
    warnings: list[LogWarning] = field(default_factory=list)

    @property
    def objectives(self) -> list[str]:
        return list(self.summary.objective_order)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write steps.parquet, schemes.parquet and summary.json as one set (`io.output_set`:
        the folder holds the old tables or the new ones, never a mix)."""
        with output_set(out_dir, inputs=self.files) as stage:
            self.write_into(stage)
        return [Path(out_dir) / name for name in TABLE_FILES]

    def write_into(self, folder: Path) -> None:
        """The tables into `folder` as plain files (a staging folder of `io.output_set`)."""
        self.steps.write_parquet(folder / "steps.parquet")
        self.schemes.write_parquet(folder / "schemes.parquet")
        (folder / "summary.json").write_text(dumps_json(self.summary.to_json()) + "\n")


def analyze(
    paths: str | Path | Sequence[str | Path],
    *,
    objectives: Sequence[str] | None = None,
    weights: dict[str, float] | None = None,
    schemes: Sequence[str] = SCHEMES,
    ddof: int = 0,
    eps: float = 0.0,
    nan: str = "error",
    device: str = "auto",
    out_dir: str | Path | None = None,
    fail_on: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = 1,
    processes: bool | WorkerPool = False,
    on_progress: Callable[[int, int], None] | None = None,
    backend: str = "auto",
    group_keys: Sequence[str] = (),
    allow_large_groups: bool = False,
) -> Analysis:
    """Analyze a log; with `out_dir`, also write advantages.parquet and the tables there.

    `workers` chunks are computed at once on threads (the command line uses one per core, with
    one torch thread each); results are combined in input order either way. With `processes`
    (the command line's choice: True, or a `workers.WorkerPool` to use), a log of at
    least PROCESS_MIN_ROWS rows whose footers plan its ranges of whole steps
    (`reader.stream.plan_ranges`) is computed by this process and workers - 1 spawned ones,
    each reading its own ranges; the numbers are the same, bit for bit. A script that sets it
    must guard its entry point with `if __name__ == "__main__":` (spawned processes import it).
    `device` is where
    the advantage engine runs when a chunk needs it (chunks with few distinct rewards are
    summarised on the CPU from their pattern counts, the fastest place for them; the engine
    runs there only for per-response output).

    `backend` names the way the per-step sums are computed (`backends.BACKENDS`: rows, sums,
    patterns, alike; every one gives the numbers of `rows`), or auto: per chunk, the fastest
    that takes it. One that cannot take the log raises `backends.BackendError`;
    `Analysis.backends` says which computed how many chunks.

    `fail_on` holds `--fail-on` expressions: checked before any data is read, evaluated at the
    end into `Analysis.trips` (and `summary.gate`). `on_progress(rows_done, rows_total)` is
    called after each chunk.

    `group_keys` (a trainer's log: the columns that make a group within a step) and
    `allow_large_groups` add to what a `LogSource` in `paths` says. Implausible groups
    (`reader.plausible`: one group holding a large step, or one far above the median size)
    are refused with an InputError, or with `allow_large_groups` kept as `oversized_group`
    warnings in `Analysis.warnings`.
    """
    backends.check_name(backend)
    schemes = check_schemes(schemes)
    if not schemes:
        raise UsageError("no scheme chosen")
    conditions = [gate.parse_condition(text) for text in fail_on]
    source = LogSource.of(paths)
    if group_keys or allow_large_groups:
        source = replace(
            source,
            group_keys=tuple(dict.fromkeys([*source.group_keys, *group_keys])),
            allow_large_groups=source.allow_large_groups or allow_large_groups,
        )
    spec = open_log(source, objectives)
    names = list(spec.objectives)
    weight_list = resolve_weights(names, dict(weights or {}))
    gate.check_names(conditions, names, list(schemes), spec.has_logged_advantage)
    device_name = str(getattr(device, "value", device))
    if device_name not in ("auto", "cpu"):  # asked for: check it now (imports torch)
        from dvao_cli.advantages import resolve_device

        resolve_device(device_name)
    total_rows = _count_rows(spec)
    acc = Accumulator(names, list(schemes), spec.has_logged_advantage)

    with ExitStack() as stack:
        adv_writer = stage = None
        if out_dir is not None:  # one set, swapped in whole when the stack closes
            if isinstance(paths, LogSource):
                logs = list(paths.paths)
            else:
                logs = [paths] if isinstance(paths, (str, Path)) else list(paths)
            inputs = [*spec.files, *spec.skipped]  # the reader's input set: read and skipped
            scanned = [p for p in logs if Path(p).is_dir()]
            beside = {Path(f).parent for f in spec.files if Path(f).suffix == ".parquet"}
            where = {"scanned": scanned, "beside": beside}
            check_outputs([Path(out_dir) / name for name in OUT_FILES], inputs, **where)
            stage = stack.enter_context(output_set(out_dir, inputs=inputs, **where))
            adv_writer = _AdvantageWriter(stage / ADVANTAGES_FILE)
            stack.callback(adv_writer.close)
        cfg = Settings(
            names, weight_list, list(schemes), ddof, eps, nan, device_name,
            spec.has_logged_advantage, out_dir is not None, spec, chunk_rows, backend,
        )  # fmt: skip
        done_rows = 0

        def count(res: ChunkResult) -> None:  # a range or chunk done: the progress bar
            nonlocal done_rows
            chunk = res.chunk
            done_rows += chunk.rows + chunk.skipped_rows + chunk.dropped_rows
            if on_progress is not None:
                on_progress(done_rows, total_rows)

        counted = False  # whether the results' source counts them as they are done
        ranges = None
        if processes and workers > 1 and out_dir is None and total_rows >= PROCESS_MIN_ROWS:
            ranges = plan_ranges(spec, chunk_rows) if cfg.device is None else None
        if ranges is not None and len(ranges) > 1:
            if isinstance(processes, WorkerPool):
                pool = processes
            else:  # stopped with the stack: on an error or Ctrl-C too
                pool = stack.enter_context(WorkerPool(workers, warm=__name__))
            results = _in_processes(ranges, cfg, pool, count)
            counted = True
        else:
            # a log of one chunk (most logs) has nothing to overlap: no reader thread, no pool
            one_chunk = 0 < total_rows <= chunk_rows
            frames = _plan(
                spec, nan, chunk_rows, row_index=out_dir is not None, ahead=not one_chunk,
                extra=cfg.sources,
            )  # fmt: skip
            results = _in_order(lambda f: _map(f, cfg), frames, 1 if one_chunk else workers)
        for res in results:
            acc.add(res)
            if adv_writer is not None:
                for piece in res.advantages:
                    adv_writer.write(piece)
            if not counted:
                count(res)
        if acc.rows == 0:
            raise InputError(_no_rows_reason(acc), path=spec.label)
        if adv_writer is not None:
            adv_writer.finish()
        device_used = acc.device or "cpu"
        if spec.format == "dvao":  # a trainer's log: its import checked the groups already
            spec.warnings.extend(
                check_groups(
                    acc.group_stats, source.allow_large_groups, dvao_log=True, label=spec.label
                )
            )
        analysis = _finish(acc, spec, weight_list, list(schemes), ddof, eps, nan, device_used)
        if conditions:  # a gate that cannot be checked on this log is a UsageError here
            analysis.trips = gate.evaluate(conditions, analysis.summary)
            analysis.summary = analysis.summary.with_gate(
                [c.text for c in conditions], [t.message() for t in analysis.trips]
            )
        if stage is not None:  # the stack closes the writer, then swaps the set in
            analysis.write_into(stage)
            analysis.written = [Path(out_dir) / name for name in OUT_FILES]
    return analysis


def _no_rows_reason(acc: Accumulator) -> str:
    """Why nothing was left to analyze, naming the real cause (not always an empty log)."""
    read = acc.dropped_rows + acc.skipped_rows
    if read == 0:
        return "the log has no rows to analyze (it is empty)"
    if acc.skipped_rows == 0:
        return (
            "the log has no rows to analyze: --nan drop dropped "
            f"{'all ' if acc.dropped_rows != 1 else ''}{counted(acc.dropped_rows, 'row')} "
            "(each has a NaN, infinite or missing reward); use --nan ignore to skip only those "
            "rewards, or --objective to leave such a column out"
        )
    dropped = (
        f"--nan drop dropped {counted(acc.dropped_rows, 'row')} with a NaN, infinite or missing "
        "reward, and "
        if acc.dropped_rows
        else ""
    )
    return (
        f"the log has no rows to analyze: {dropped}every group left has one response "
        f"({counted(acc.skipped_groups, 'group')} of size 1: "
        "no within-group variance); check the "
        "group_id column, or --group-size for a trainer's log"
    )


def _plan(
    spec: LogSpec,
    nan: str,
    chunk_rows: int,
    row_index: bool,
    ahead: bool = True,
    extra: Sequence[str] = (),
) -> Iterator[pl.DataFrame]:
    """The log as frames of whole steps of about `chunk_rows` rows (with the `extra` columns),
    planned from the footers' step floors and (`ahead`) read ahead on a thread."""
    frames = iter_frames(
        spec, nan=nan, chunk_rows=chunk_rows, row_index=row_index, extra_columns=extra
    )
    return prefetch(frames) if ahead else frames


def _map(frame: pl.DataFrame, cfg: Settings) -> ChunkResult:
    """One range of whole steps: checked and ordered, then its per-step sums."""
    return _analyze_chunk(prepare_chunk(frame, cfg.spec, cfg.nan, check_finite=False), cfg)


def prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Produce the items in a background thread (polars reads the next frames while the
    workers compute; both release the GIL). Errors surface in the consumer."""
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as err:  # handed to the consumer, raised there
            box.put(_Failure(err))

    thread = threading.Thread(target=work, name="dvao-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()


@dataclass
class _Failure:
    error: BaseException


def _count_rows(spec: LogSpec) -> int:
    try:
        return sum(meta.num_rows for meta in spec.footers)
    except Exception:
        return 0


class _AdvantageWriter:
    """Appends one row group per piece to advantages.parquet (a temp path until the end).

    The file is in `row` order. Each chunk's pieces come in that order (`_in_row_order`), and
    chunks follow one another in the log's order unless its steps are spread across it (then
    read whole, with a warning): only then is the written file sorted once more (`finish`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None
        self._last = -1  # the largest row written so far
        self._ordered = True

    def write(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        if frame.height:
            rows = frame.get_column(ROW)
            self._ordered = self._ordered and int(rows[0]) > self._last
            self._last = max(self._last, int(rows[-1]))
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), table.schema, compression="zstd")
        self._writer.write_table(table.cast(self._writer.schema))

    def finish(self) -> None:
        """Close the file, sorted by `row` when chunks came out of the log's order."""
        self.close()
        if self._ordered or not self.path.exists():
            return
        sorted_path = self.path.with_name(f".sorted-{self.path.name}")
        pl.scan_parquet(self.path).sort(ROW).sink_parquet(sorted_path, compression="zstd")
        sorted_path.replace(self.path)  # inside the staging folder: swapped in with the set

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _in_row_order(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """A chunk's advantage rows, in engine order (by step and group), put back in the log's
    `row` order: one pass over `row` when they already are (a log written in groups, as every
    dvao writer writes it), one sort of the chunk when not."""
    rows = [frame.get_column(ROW).to_numpy() for frame in frames if frame.height]
    if not rows:
        return frames
    ordered = all(bool((r[1:] > r[:-1]).all()) for r in rows) and all(
        a[-1] < b[0] for a, b in zip(rows[:-1], rows[1:], strict=True)
    )
    if ordered:
        return frames
    frame = pl.concat(frames, how="vertical_relaxed")
    return [frame[_row_order(np.concatenate(rows))]]


def _row_order(rows: np.ndarray) -> np.ndarray:
    """(N,) the permutation that sorts the distinct row numbers `rows` (N,). They span little
    more than N (a chunk is a range of the log, less its skipped rows): a counting sort, one
    scatter and one pass, 10x faster than a comparison sort; else an argsort."""
    low = int(rows.min())
    span = int(rows.max()) - low + 1
    if span > 4 * rows.shape[0]:
        return np.argsort(rows, kind="stable")
    at = np.full(span, -1, dtype=np.int64)  # (span,) position in `rows` of each row number
    at[rows - low] = np.arange(rows.shape[0], dtype=np.int64)
    return at[at >= 0]


def _group_stats(chunk: Chunk) -> GroupStats:
    """The chunk's groups per step (whole steps: a step is never in two chunks)."""
    stats = GroupStats()
    steps, group_step = chunk.group_steps()
    n = steps.shape[0]
    groups = np.bincount(group_step, minlength=n)  # (S,)
    if chunk.uniform:  # one size: no pass over the groups
        size = chunk.uniform
        rows, largest, sizes = groups * size, np.full(n, size), {size: chunk.n_groups}
    else:
        firsts = np.flatnonzero(np.diff(group_step, prepend=-1))  # (S,) each step's first group
        rows = np.bincount(group_step, weights=chunk.sizes, minlength=n).astype(np.int64)
        largest = np.maximum.reduceat(chunk.sizes, firsts)
        counts = np.bincount(chunk.sizes)  # size -> groups: one pass, no sort
        sizes = {int(s): int(counts[s]) for s in np.flatnonzero(counts)}
    stats.add_steps(steps.tolist(), groups.tolist(), rows.tolist(), largest.tolist(), sizes)
    return stats


def _analyze_chunk(chunk: Chunk, cfg: Settings) -> ChunkResult:
    """Everything about one chunk; pure (chunks may run on several threads at once): its
    per-step sums from the backend `cfg.backend` names (auto: `backends.compute` picks), and
    every response's advantages where they are wanted."""
    out = ChunkResult(chunk)
    if chunk.rows == 0:
        return out
    if cfg.spec.format == "dvao":  # a trainer's log: its import checked the groups
        out.groups = _group_stats(chunk)

    def on_rows(piece: Chunk, result: engine.EngineResult) -> None:
        _per_response(out, piece, cfg, result)

    out.backend, done = backends.compute(chunk, cfg, on_rows if cfg.per_response else None)
    out.parts, out.device = done.parts, done.device
    if cfg.per_response and not done.rows_done:  # advantages only for the rows, not the sums
        for piece in pieces(chunk, cfg):
            on_rows(piece, run_engine(piece, cfg)[0])
        out.device = cfg.device_label
    out.advantages = _in_row_order(out.advantages)
    return out


def _per_response(
    out: ChunkResult, chunk: Chunk, cfg: Settings, result: engine.EngineResult
) -> None:
    """Agreement with logged_advantage, and the rows of advantages.parquet, from the engine."""
    from dvao_cli.analysis import figures as dg

    frame = chunk.frame
    if cfg.has_logged:
        logged = frame.get_column(LOGGED).cast(pl.Float64).to_numpy()
        for name in cfg.schemes:
            agreement = dg.agreement_sums(result.advantages[name], logged)
            out.agreement.setdefault(name, []).append(agreement)
    if cfg.write_advantages:
        weights = result.moments.dvao_weight  # (K, G)
        columns: dict[str, Any] = {
            ROW: frame.get_column(ROW).cast(pl.Int64),
            STEP: frame.get_column(STEP),
            GROUP: frame.get_column(GROUP),
        }
        for name in cfg.schemes:
            columns[f"adv_{name}"] = result.advantages[name].astype(np.float64)
        for k, name in enumerate(cfg.names):
            columns[f"w_{name}"] = weights[k][chunk.group].astype(np.float64)  # (N,)
        for name in cfg.sources:  # the trainer's file and row of each response
            columns[name] = frame.get_column(name)
        out.advantages.append(pl.DataFrame(columns))


def _in_order(
    fn: Callable[[pl.DataFrame], ChunkResult], items: Iterator[pl.DataFrame], workers: int
) -> Iterator[ChunkResult]:
    """fn over items on `workers` threads, results in input order, at most `workers` in flight
    (each holds a chunk's tensors: more in flight would only add memory)."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dvao-chunk") as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _map_range(reads: list[Read], cfg: Settings) -> ChunkResult:
    """Read one planned range and compute its sums; the result goes back without the rows
    (`Counts`: a worker process sends it), a reader's panic as the InputError naming the log."""
    from dvao_cli.errors import is_panic, panic_error

    try:
        res = _map(read_range(cfg.spec, reads), cfg)
    except BaseException as err:
        if is_panic(err):
            raise panic_error(err, cfg.spec.label) from None
        raise
    res.chunk = Counts.of(res.chunk)
    return res


def _in_processes(
    ranges: list[list[Read]],
    cfg: Settings,
    pool: WorkerPool,
    on_done: Callable[[ChunkResult], None] | None = None,
) -> Iterator[ChunkResult]:
    """The ranges' results in input order (the reduce adds them in that order: the same sums
    bit for bit as one process), computed by the pool's workers from the front and by this
    process from the back, so that both are done within a range of each other (taking turns
    in order, the workers were left two ranges behind). Each worker has two ranges waiting
    so none idles; at the end this process takes the ones still waiting. A range that fails
    is raised in its turn: the first failing range in the log is the error, as in one
    process. `on_done` gets each result as it is computed (the progress bar: in turn, this
    process's ranges would all count at the end)."""
    settings = replace(cfg, spec=replace(cfg.spec))  # sent with each range: not the footers
    slots = 2 * (pool.workers - 1)
    sent: dict[int, Any] = {}  # range -> its task in a worker
    done: dict[int, ChunkResult | _Failed] = {}  # range -> its result, until its turn
    front, back = 0, len(ranges) - 1  # the workers' next range, and this process's
    turn = 0  # the next range to hand on

    def collect(index: int, wait: bool) -> None:
        task = sent[index]
        if wait or task.ready():
            del sent[index]
            try:
                done[index] = finished(task.get())
            except Exception as err:  # raised in its turn
                done[index] = _Failed(err)

    def finished(res: ChunkResult) -> ChunkResult:
        if on_done is not None:
            on_done(res)
        return res

    def compute(index: int) -> None:
        try:
            done[index] = finished(_map_range(ranges[index], cfg))
        except Exception as err:
            done[index] = _Failed(err)

    while True:
        while len(sent) < slots and front <= back:
            sent[front] = pool.submit(_map_range, ranges[front], settings)
            front += 1
        if front <= back:
            compute(back)
            back -= 1
        else:  # none left to hand out: this process takes the last range waiting behind
            # another in a worker (not started there; the worker's copy is left unread)
            waiting = sorted(sent)[pool.workers - 1 :]
            if not waiting:
                break
            del sent[waiting[-1]]
            compute(waiting[-1])
        for index in list(sent):
            collect(index, wait=False)
        while turn in done:
            yield _in_turn(done.pop(turn))
            turn += 1
    while turn < len(ranges):
        if turn in sent:
            collect(turn, wait=True)
        yield _in_turn(done.pop(turn))
        turn += 1


@dataclass(frozen=True)
class _Failed:
    error: Exception


def _in_turn(item: ChunkResult | _Failed) -> ChunkResult:
    if isinstance(item, _Failed):
        raise item.error
    return item


def _finish(
    acc: Accumulator,
    spec: LogSpec,
    weight_list: list[float],
    schemes: list[str],
    ddof: int,
    eps: float,
    nan: str,
    device: str,
) -> Analysis:
    """The analysis from the accumulated sums (the summary and tables: `summary.py`)."""
    settings = RunSettings(tuple(schemes), ddof, eps, nan, device)
    summary, steps, schemes_table = build_summary(
        acc, spec.files, weight_list, settings, spec.warnings
    )
    return Analysis(
        steps=steps,
        schemes=schemes_table,
        summary=summary,
        files=spec.files,
        backends=dict(acc.backends),
        warnings=spec.warnings,
    )

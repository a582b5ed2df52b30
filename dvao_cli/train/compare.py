"""`dvao train --compare`: every scheme on the same seeds and task (optionally across a sweep of
two-objective preference weights), one run directory each, and `compare.parquet` with one row per
run: scheme, seed, run, w_<objective>, final_<objective>, wall_s. Each run's per-step curves are
in its own `metrics.parquet`.

The warm start depends only on the seed (not on the scheme or the weights), so it is computed once
per seed and reused: every scheme starts from the same policy, as in the paper's comparisons.
With `--jobs N` > 1 the runs go to N worker processes, which share the warm starts through a
temporary folder; a run's numbers do not depend on which process ran it.

Statistics over seeds: each objective's mean with a 95% t-interval, and each scheme's
difference from DVAO paired by seed (same seed: same warm start and first prompts), with its
95% t-interval; the difference is marked where that interval excludes 0.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from dvao_cli.cli.options import SCHEMES, did_you_mean
from dvao_cli.errors import UsageError
from dvao_cli.train.config import CONFIG_FILE, TrainConfig, resolve
from dvao_cli.train.loop import TrainingInterrupted, WarmCache, final_rewards, train_run
from dvao_cli.train.outputs import write_json_file, write_parquet_file

COMPARE_FILE = "compare.parquet"
REFERENCE = "dvao"  # the scheme every other one is compared with, paired by seed

# two-sided 95% quantiles of Student's t, df = 1..30; beyond, the Cornish-Fisher expansion
_T975 = (
    12.706205,
    4.302653,
    3.182446,
    2.776445,
    2.570582,
    2.446912,
    2.364624,
    2.306004,
    2.262157,
    2.228139,
    2.200985,
    2.178813,
    2.160369,
    2.144787,
    2.131450,
    2.119905,
    2.109816,
    2.100922,
    2.093024,
    2.085963,
    2.079614,
    2.073873,
    2.068658,
    2.063899,
    2.059539,
    2.055529,
    2.051831,
    2.048407,
    2.045230,
    2.042272,
)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float  # 95% t-interval: mean +- half; NaN with fewer than 2 values
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and abs(self.mean) > self.half


def t_interval(values: Sequence[float]) -> Interval:
    """Mean and the half-width of its 95% t-interval over `values` (NaNs left out)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, math.nan, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Interval(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def parse_schemes(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError("--compare needs a comma-separated list of schemes (e.g. rc,ac,gdpo,dvao)")
    for name in names:
        if name not in SCHEMES:
            raise UsageError(
                f"--compare: unknown scheme '{name}'" + did_you_mean(name, list(SCHEMES))
            )
    if len(set(names)) != len(names):
        raise UsageError("--compare names a scheme twice")
    return names


def parse_sweep(text: str) -> list[float]:
    values: list[float] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"--sweep-weights: '{part}' is not a number") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--sweep-weights: {value:g} is outside [0, 1] (w_1 = x, w_2 = 1 - x)")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError("--sweep-weights repeats a value")
    return values


def run_name(scheme: str, seed: int, w1: float | None) -> str:
    return f"{scheme}-s{seed}" if w1 is None else f"{scheme}-w{w1:g}-s{seed}"


@dataclass(frozen=True)
class PlannedRun:
    scheme: str
    seed: int
    w1: float | None
    config: TrainConfig

    @property
    def name(self) -> str:
        return run_name(self.scheme, self.seed, self.w1)


def plan(
    base: TrainConfig, schemes: Sequence[str], n_seeds: int, sweep: Sequence[float] | None
) -> tuple[list[str], list[int], list[PlannedRun]]:
    """Objectives, seeds and every run (scheme, seed, w1, config), validated up front."""
    if n_seeds < 1:
        raise UsageError(f"--seeds must be at least 1 (got {n_seeds})")
    resolved = resolve(base)  # validates every option and resolves the objectives
    objectives = resolved.objectives
    if sweep is not None:
        if len(objectives) != 2:
            raise UsageError(
                f"--sweep-weights needs exactly 2 objectives; this run has {len(objectives)} ("
                + ", ".join(objectives)
                + "): pick two with --objective"
            )
        if base.weights:
            raise UsageError("--sweep-weights sets the weights: do not pass --weight as well")
    seeds = [base.seed + i for i in range(n_seeds)]
    runs = []
    for scheme in schemes:
        for w1 in sweep if sweep is not None else [None]:
            weights = (
                dict(resolved.weights)
                if w1 is None
                else {objectives[0]: w1, objectives[1]: round(1.0 - w1, 12)}
            )
            for seed in seeds:
                cfg = replace(
                    base, scheme=scheme, seed=seed, objectives=list(objectives), weights=weights
                )
                runs.append(PlannedRun(scheme, seed, w1, cfg))
    return objectives, seeds, runs


PARALLEL_MIN_ROLLOUTS = 20_000  # per run: below, starting a process costs more than it saves


def pick_jobs(jobs: int, n_runs: int, rollouts_per_run: int) -> int:
    """`--jobs 0`: one process per CPU core (at most 4 and one per run) when each run samples
    at least PARALLEL_MIN_ROLLOUTS completions, else 1 (a worker process imports torch anew)."""
    if jobs < 0:
        raise UsageError(f"--jobs must be >= 0 (got {jobs})")
    if jobs == 0 and rollouts_per_run < PARALLEL_MIN_ROLLOUTS:
        return 1
    wanted = jobs or min(os.cpu_count() or 1, 4)
    return max(1, min(wanted, n_runs))


def run_compare(
    base: TrainConfig,
    schemes: Sequence[str],
    n_seeds: int,
    sweep: Sequence[float] | None,
    out_dir: str | Path,
    *,
    jobs: int = 0,
    on_run: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Run every (scheme, weights, seed) into `out_dir/<run>/`; write and return compare.parquet.

    on_run(name, i, total) is called as run i starts (one process) or ends (several); on_step
    after every step of the run in this process (one process only).
    """
    out = Path(out_dir)
    objectives, seeds, runs = plan(base, schemes, n_seeds, sweep)
    out.mkdir(parents=True, exist_ok=True)
    write_json_file(
        {
            "compare": True,
            "objectives": objectives,
            "schemes": list(schemes),
            "seeds": seeds,
            "sweep_weights": None if sweep is None else list(sweep),
            "base": base.to_json(),
        },
        out / CONFIG_FILE,
    )
    rows: dict[int, dict[str, Any]] = {}

    def finished(i: int, result: dict[str, Any]) -> None:
        rows[i] = result
        done = [rows[j] for j in sorted(rows)]
        write_parquet_file(_frame(done, objectives), out / COMPARE_FILE)  # partial results survive

    per_run = (resolve(base).steps or 0) * base.prompts_per_step * base.group_size
    n_jobs = pick_jobs(jobs, len(runs), per_run)
    if n_jobs == 1:
        warm: WarmCache = {}
        for i, run in enumerate(runs):
            if on_run:
                on_run(run.name, i, len(runs))
            finished(i, _one_run(run, out, objectives, warm, on_step, on_info))
    else:
        _run_parallel(runs, out, objectives, n_jobs, finished, on_run)
    return _frame([rows[j] for j in sorted(rows)], objectives)


def _one_run(
    run: PlannedRun,
    out: Path,
    objectives: list[str],
    warm: Any,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    result = train_run(
        run.config, out / run.name, on_step=on_step, on_info=on_info, warm_cache=warm
    )
    final = final_rewards(result.metrics, objectives)
    row: dict[str, Any] = {"scheme": run.scheme, "seed": run.seed, "run": run.name}
    for obj in objectives:
        row[f"w_{obj}"] = float(result.config.weights[obj])
    for obj in objectives:
        row[f"final_{obj}"] = final[obj]
    row["wall_s"] = result.wall_s
    return row


class FileWarmCache:
    """Warm starts shared between worker processes: one `torch.save` file per key in a folder
    (plain tensors and lists, loaded with weights_only=True), written atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, key: tuple[Any, ...]) -> Path:
        return self.folder / (hashlib.sha256(repr(key).encode()).hexdigest()[:24] + ".pt")

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        import torch

        path = self._path(key)
        return torch.load(path, weights_only=True) if path.is_file() else None

    def __setitem__(self, key: tuple[Any, ...], state: dict[str, Any]) -> None:
        from dvao_cli.train.checkpoint import save_torch

        save_torch(state, self._path(key))


def _worker_init() -> None:
    # Ctrl-C reaches every process of the terminal's group: a running run's own handler finishes
    # its step and saves a checkpoint; an idle worker ignores it
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(run: PlannedRun, out: Path, objectives: list[str], cache: str) -> dict[str, Any]:
    return _one_run(run, out, objectives, FileWarmCache(cache))


def _run_parallel(
    runs: list[PlannedRun],
    out: Path,
    objectives: list[str],
    n_jobs: int,
    finished: Callable[[int, dict[str, Any]], None],
    on_run: Callable[[str, int, int], None] | None,
) -> None:
    """Runs in `n_jobs` spawned processes. A run starts once its seed's warm start is cached
    (or as the first run of its seed, which computes it), so no warm start is computed twice."""
    pending = list(range(len(runs)))
    warm_ready: set[int] = set()  # seeds whose warm start is cached
    warming: set[int] = set()  # seeds whose first run is under way
    interrupted: TrainingInterrupted | None = None
    completed = 0
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="dvao-warm-") as cache,
        ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_worker_init) as pool,
    ):
        running: dict[Future[dict[str, Any]], int] = {}

        def submit_ready() -> None:
            while pending and len(running) < n_jobs and interrupted is None:
                ready = [i for i in pending if runs[i].seed in warm_ready]
                fresh = [i for i in pending if runs[i].seed not in warm_ready | warming]
                pick = (ready or fresh or [None])[0]
                if pick is None:
                    return  # every pending run waits for a warm start under way
                pending.remove(pick)
                if runs[pick].seed not in warm_ready:
                    warming.add(runs[pick].seed)
                running[pool.submit(_worker, runs[pick], out, objectives, cache)] = pick

        submit_ready()
        while running:
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:  # start no more runs; wait for the running ones to stop
                interrupted = interrupted or TrainingInterrupted(out, None)
                continue
            for future in done:
                i = running.pop(future)
                try:
                    row = future.result()
                except TrainingInterrupted as err:
                    interrupted = err
                    continue
                except BaseException:
                    for other in running:
                        other.cancel()
                    raise
                warm_ready.add(runs[i].seed)
                warming.discard(runs[i].seed)
                completed += 1
                finished(i, row)
                if on_run:
                    on_run(runs[i].name, completed - 1, len(runs))
            submit_ready()
    if interrupted is not None:
        raise interrupted


def _frame(rows: list[dict[str, Any]], objectives: list[str]) -> pl.DataFrame:
    schema: dict[str, Any] = {"scheme": pl.Utf8, "seed": pl.Int64, "run": pl.Utf8}
    schema.update({f"w_{o}": pl.Float64 for o in objectives})
    schema.update({f"final_{o}": pl.Float64 for o in objectives})
    schema["wall_s"] = pl.Float64
    return pl.DataFrame(rows, schema=schema, orient="row")


@dataclass(frozen=True)
class SchemeSummary:
    scheme: str
    weights: tuple[float, ...]  # the runs' preference weights, in objective order
    seeds: int
    finals: dict[str, Interval]  # objective -> mean and 95% t-interval over seeds
    vs_reference: dict[str, Interval] | None  # objective -> paired difference from DVAO
    wall_s: float  # mean over seeds


def summarize(frame: pl.DataFrame, objectives: list[str]) -> list[SchemeSummary]:
    """Per scheme (and weights), in run order: each objective's mean and 95% t-interval over
    seeds, and the paired-by-seed difference from DVAO's runs with the same weights (None for
    DVAO itself, or when DVAO was not run)."""
    keys = ["scheme"] + [f"w_{o}" for o in objectives]
    out = []
    for key, group in frame.group_by(keys, maintain_order=True):
        scheme, weights = str(key[0]), tuple(float(w) for w in key[1:])
        finals = {o: t_interval(group[f"final_{o}"].to_list()) for o in objectives}
        diff = None
        if scheme != REFERENCE:
            ref = frame.filter(pl.col("scheme") == REFERENCE)
            for col, w in zip(keys[1:], weights, strict=True):
                ref = ref.filter(pl.col(col) == w)
            paired = group.join(ref, on="seed", suffix="_ref")
            if paired.height:
                diff = {
                    o: t_interval((paired[f"final_{o}"] - paired[f"final_{o}_ref"]).to_list())
                    for o in objectives
                }
        wall = float(group["wall_s"].mean())  # type: ignore[arg-type]
        out.append(SchemeSummary(scheme, weights, group.height, finals, diff, wall))
    return out


def fmt_interval(iv: Interval, *, signed: bool = False, mark: bool = False) -> str:
    """`67.3 ± 4.1` in percent (no ± with one seed); `+1.2 ± 0.8 *` where it excludes 0."""
    if math.isnan(iv.mean):
        return "-"
    text = f"{100 * iv.mean:+.1f}" if signed else f"{100 * iv.mean:.1f}"
    if not math.isnan(iv.half):
        text += f" ± {100 * iv.half:.1f}"
    if mark:
        text += " *" if iv.excludes_zero else "  "
    return text


def comparison_table(
    summary: Sequence[SchemeSummary], objectives: Sequence[str], *, seeds: int, sweep: bool
) -> tuple[str, list[str], list[list[str]]]:
    """The comparison as `dvao train --compare` prints it and `dvao report` shows it: the note
    that reads it, the headers and the rows (`summarize`'s, in order). `seeds`: seeds per
    scheme; `sweep`: a weight sweep (a column for the first objective's weight)."""
    paired = seeds > 1 and any(s.vs_reference is not None for s in summary)
    headers = ["scheme"] + (["w " + objectives[0]] if sweep else []) + list(objectives)
    if paired:
        headers += [f"{o} - {REFERENCE}" for o in objectives]
    headers.append("wall s")
    rows = []
    for row in summary:
        cells = [row.scheme] + ([f"{row.weights[0]:g}"] if sweep else [])
        cells += [fmt_interval(row.finals[o]) for o in objectives]
        if paired:
            diff = row.vs_reference
            cells += [
                "" if diff is None else fmt_interval(diff[o], signed=True, mark=True)
                for o in objectives
            ]
        cells.append(f"{row.wall_s:.1f}")
        rows.append(cells)
    plural = "s" if seeds > 1 else ""
    note = (
        f"final reward % (mean over the last 10% of steps), mean ± 95% t-interval over {seeds} "
        f"seed{plural}"
    )
    if paired:
        note += (
            f"; '{REFERENCE}' columns: difference from {REFERENCE} paired by seed, "
            "* where its 95% interval excludes 0"
        )
    return note, headers, rows

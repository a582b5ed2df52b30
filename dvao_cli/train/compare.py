"""`dvao train --compare`: every scheme on the same seeds and task (optionally across a sweep of
two-objective preference weights), one run directory each, and `compare.parquet` with one row per
run: scheme, seed, run, w_<objective>, final_<objective>, wall_s. Each run's per-step curves are
in its own `metrics.parquet`.

The warm start depends only on the seed (not on the scheme or the weights), so it is computed once
per seed and reused: every scheme starts from the same policy, as in the paper's comparisons.
With `--jobs N` > 1 the runs go to N worker processes, which share the warm starts through a
folder inside DIR (`WARM_DIR`, removed when the comparison ends); a run's numbers do not depend
on which process ran it. A worker ends within a fraction of a second of its parent's death,
whatever killed the parent (`analysis.workers.watch_parent`).

`resume=True` finishes a comparison that a kill or a Ctrl-C stopped: a run with a checkpoint
continues from it exactly as `dvao train --resume RUN` would (its own config.json, so its
numbers are those of an uninterrupted run), a run without one starts afresh, a finished one
is read back from its metrics; then compare.parquet lists every run.

Statistics over seeds: each objective's mean with a 95% t-interval, and each scheme's
difference from DVAO paired by seed (same seed: same warm start and first prompts), with its
95% t-interval; the difference is marked where that interval excludes 0.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from dvao_cli.core.schemes import SCHEMES
from dvao_cli.errors import InputError, UsageError
from dvao_cli.objective_names import did_you_mean
from dvao_cli.train.checkpoint import latest_checkpoint
from dvao_cli.train.compare_runs import COMPARE_FILE, WARM_DIR, compare_config, run_name
from dvao_cli.train.config import CONFIG_FILE, TrainConfig, load_config, resolve
from dvao_cli.train.loop import TrainingInterrupted, WarmCache, final_rewards, train_run
from dvao_cli.train.outputs import METRICS, write_json_file, write_parquet_file

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


@dataclass(frozen=True)
class Comparison:
    """What `DIR/config.json` of a comparison records: the options shared by every run, the
    schemes, the number of seeds and the sweep weights."""

    base: TrainConfig
    schemes: list[str]
    n_seeds: int
    sweep: list[float] | None


def load_comparison(folder: str | Path) -> Comparison:
    """The comparison in `folder`, to resume it (InputError for anything else)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    data = compare_config(folder)
    if data is None:
        raise InputError('not a `dvao train --compare` folder (no "compare": true)', path=path)
    base, schemes, seeds = data.get("base"), data.get("schemes"), data.get("seeds")
    sweep = data.get("sweep_weights")
    if not isinstance(base, dict) or not isinstance(schemes, list) or not isinstance(seeds, list):
        raise InputError('"base", "schemes" and "seeds" are missing or malformed', path=path)
    config = TrainConfig.from_json(base, path)
    if seeds != [config.seed + i for i in range(len(seeds))]:
        raise InputError(f'"seeds" must be {config.seed}, {config.seed}+1, ...', path=path)
    return Comparison(
        config,
        parse_schemes(",".join(str(s) for s in schemes)),
        len(seeds),
        None if sweep is None else parse_sweep(",".join(str(w) for w in sweep)),
    )


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
    resume: bool = False,
    on_run: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Run every (scheme, weights, seed) into `out_dir/<run>/`; write and return compare.parquet.

    `resume`: finish the comparison already in `out_dir` (see the module doc). on_run(name, i,
    total) is called as run i starts (one process) or ends (several); on_step after every step
    of the run in this process (one process only).
    """
    out = Path(out_dir)
    objectives, seeds, runs = plan(base, schemes, n_seeds, sweep)
    previous = _listed_rows(out) if resume else {}
    states = [_progress(run, out) if resume else _FRESH for run in runs]
    out.mkdir(parents=True, exist_ok=True)
    if not resume:  # warm starts a killed comparison left here: this one starts anew
        shutil.rmtree(out / WARM_DIR, ignore_errors=True)
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

    todo: list[int] = []
    for i, (run, state) in enumerate(zip(runs, states, strict=True)):
        if state is _DONE:
            rows[i] = _finished_row(run, out, objectives, previous.get(run.name))
        else:
            todo.append(i)
            if state is not _FRESH:  # a checkpoint: the run's own config, as --resume RUN
                runs[i] = replace(run, config=state)
    if rows:
        write_parquet_file(_frame([rows[j] for j in sorted(rows)], objectives), out / COMPARE_FILE)
    resumed = {i for i in todo if states[i] is not _FRESH}
    per_run = (resolve(base).steps or 0) * base.prompts_per_step * base.group_size
    n_jobs = pick_jobs(jobs, max(1, len(todo)), per_run)
    try:
        if n_jobs == 1:
            warm: WarmCache = {}
            for n, i in enumerate(todo):
                if on_run:
                    on_run(runs[i].name, n, len(todo))
                row = _one_run(runs[i], out, objectives, warm, on_step, on_info, i in resumed)
                finished(i, row)
        else:
            _run_parallel(runs, todo, resumed, out, objectives, n_jobs, finished, on_run)
    finally:
        shutil.rmtree(out / WARM_DIR, ignore_errors=True)  # every worker has ended
    return _frame([rows[j] for j in sorted(rows)], objectives)


_FRESH = object()  # a run that starts from nothing (no checkpoint)
_DONE = object()  # a run whose last checkpoint is its last step


def _progress(run: PlannedRun, out: Path) -> Any:
    """Where a planned run stands in `out`: _FRESH, _DONE, or the TrainConfig to resume it with
    (its own config.json, the comparison's --steps)."""
    run_dir = out / run.name
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None or not (run_dir / CONFIG_FILE).is_file():
        return _FRESH  # never started, or stopped before its warm start was saved
    own = load_config(run_dir)
    if (own.scheme, own.seed) != (run.scheme, run.seed) or (
        run.w1 is not None and own.weights != run.config.weights
    ):
        raise InputError(
            f"the run does not match the comparison's plan ({run.name}: scheme "
            f"{run.scheme}, seed {run.seed}); was the folder changed by hand?",
            path=run_dir / CONFIG_FILE,
        )
    steps = resolve(run.config).steps or 0
    reached = int(checkpoint.stem.split("-", 1)[1])
    if reached == steps and (run_dir / METRICS).is_file():
        return _DONE
    return replace(own, steps=steps)  # a later step than `steps`: train_run says so (exit 2)


def _listed_rows(out: Path) -> dict[str, dict[str, Any]]:
    """compare.parquet's rows by run name (none when there is no readable file)."""
    path = out / COMPARE_FILE
    if not path.is_file():
        return {}
    try:
        frame = pl.read_parquet(path)
    except Exception:  # noqa: BLE001 - a damaged table is rebuilt from the runs
        return {}
    if "run" not in frame.columns:
        return {}
    return {str(row["run"]): row for row in frame.to_dicts()}


def _result_row(
    run: PlannedRun,
    weights: dict[str, float],
    metrics: list[dict[str, Any]],
    objectives: list[str],
    wall_s: float,
) -> dict[str, Any]:
    final = final_rewards(metrics, objectives)
    row: dict[str, Any] = {"scheme": run.scheme, "seed": run.seed, "run": run.name}
    for obj in objectives:
        row[f"w_{obj}"] = float(weights[obj])
    for obj in objectives:
        row[f"final_{obj}"] = final[obj]
    row["wall_s"] = wall_s
    return row


def _finished_row(
    run: PlannedRun, out: Path, objectives: list[str], listed: dict[str, Any] | None
) -> dict[str, Any]:
    """The row of a run that ended before this resume, from its metrics.parquet; its wall time
    from compare.parquet when listed there, else its RL time (the warm start not counted)."""
    path = out / run.name / METRICS
    steps = resolve(run.config).steps or 0
    try:
        metrics = pl.read_parquet(path).filter(pl.col("step") <= steps).to_dicts()
    except Exception as err:  # noqa: BLE001 - polars' many errors: one line, exit 2
        from dvao_cli.errors import unreadable_parquet

        raise unreadable_parquet(err, path) from None
    if [m["step"] for m in metrics] != list(range(1, steps + 1)):
        raise InputError(f"expected one row per step 1..{steps}", path=path)
    weights = resolve(run.config).weights
    wall = float(listed["wall_s"]) if listed else float(metrics[-1]["time_s"])
    return _result_row(run, weights, metrics, objectives, wall)


def _one_run(
    run: PlannedRun,
    out: Path,
    objectives: list[str],
    warm: Any,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train (or continue) one run; its row of compare.parquet. A resumed run's wall time adds
    the RL time its metrics recorded up to its checkpoint to this session's."""
    before = _time_at_checkpoint(out / run.name) if resume else 0.0
    result = train_run(
        run.config, out / run.name, resume=resume, on_step=on_step, on_info=on_info, warm_cache=warm
    )
    return _result_row(
        run, result.config.weights, result.metrics, objectives, before + result.wall_s
    )


def _time_at_checkpoint(run_dir: Path) -> float:
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None or not (run_dir / METRICS).is_file():
        return 0.0
    step = int(checkpoint.stem.split("-", 1)[1])
    try:
        times = pl.read_parquet(run_dir / METRICS).filter(pl.col("step") == step)["time_s"]
    except Exception:  # noqa: BLE001 - resuming rewrites the file; the time is only reported
        return 0.0
    return float(times[0]) if times.len() else 0.0


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


def _worker_init(parent: int) -> None:
    # Ctrl-C reaches every process of the terminal's group: a running run's own handler finishes
    # its step and saves a checkpoint; an idle worker ignores it. The parent's death by any
    # other signal ends the worker at once (its run resumes from its last checkpoint).
    from dvao_cli.analysis.workers import watch_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent, kernel=True)


def _worker(
    run: PlannedRun, out: Path, objectives: list[str], cache: str, resume: bool
) -> dict[str, Any]:
    return _one_run(run, out, objectives, FileWarmCache(cache), resume=resume)


def _run_parallel(
    runs: list[PlannedRun],
    todo: list[int],
    resumed: set[int],
    out: Path,
    objectives: list[str],
    n_jobs: int,
    finished: Callable[[int, dict[str, Any]], None],
    on_run: Callable[[str, int, int], None] | None,
) -> None:
    """Runs `todo` in `n_jobs` spawned processes. A fresh run starts once its seed's warm start
    is cached (or as the first run of its seed, which computes it), so no warm start is
    computed twice; a resumed run (`resumed`) needs none."""
    pending = list(todo)
    warm_ready: set[int] = set()  # seeds whose warm start is cached
    warming: set[int] = set()  # seeds whose first run is under way
    interrupted: TrainingInterrupted | None = None
    completed = 0
    context = multiprocessing.get_context("spawn")
    cache = out / WARM_DIR
    cache.mkdir(exist_ok=True)
    with ProcessPoolExecutor(
        n_jobs, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        running: dict[Future[dict[str, Any]], int] = {}

        def submit_ready() -> None:
            while pending and len(running) < n_jobs and interrupted is None:
                ready = [i for i in pending if i in resumed or runs[i].seed in warm_ready]
                fresh = [i for i in pending if runs[i].seed not in warm_ready | warming]
                pick = (ready or fresh or [None])[0]
                if pick is None:
                    return  # every pending run waits for a warm start under way
                pending.remove(pick)
                if pick not in resumed and runs[pick].seed not in warm_ready:
                    warming.add(runs[pick].seed)
                args = (runs[pick], out, objectives, str(cache), pick in resumed)
                running[pool.submit(_worker, *args)] = pick

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
                if i not in resumed:
                    warm_ready.add(runs[i].seed)
                    warming.discard(runs[i].seed)
                completed += 1
                finished(i, row)
                if on_run:
                    on_run(runs[i].name, completed - 1, len(todo))
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

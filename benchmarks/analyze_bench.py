"""Benchmark `dvao analyze` against the floor (reading the needed columns) and pandas.

Each measurement is a whole process; wall and CPU time come from `os.wait4` on that process,
peak RSS from sampling it and its worker processes together.

    python benchmarks/analyze_bench.py                       # 20M and 100M rows, RSS check at 200M
    python benchmarks/analyze_bench.py --sizes 20 --rss-sizes ""   # quick: 20M only
    python benchmarks/analyze_bench.py --sizes "" --rss-sizes "" --continuous-sizes "" --paper
                                                             # the 200k paper-scale log only
    ... --bytecode                                           # with dvao's .pyc files, as installed
    python benchmarks/analyze_bench.py --pairs 5 --log benchmarks/data/user-100M.parquet \
        --bytecode [--tree before=DIR]         # analyze / stream read: median of alternating pairs

Logs are made with `dvao simulate --no-text` (3 binary objectives, groups of 16) into --workdir
and reused on later runs. `--continuous-sizes` adds logs with a fourth, continuous objective
(rm_score): those take the advantage engine's path instead of the pattern counts;
`--issue-sizes` the 3-objective log (accuracy, format and the continuous rm_score). `--paper`
adds the paper-scale log: 200,000 rows (100 steps x 125 prompts x 16), the four objectives (one
continuous) and the prompt / completion text columns, against polars reading its numeric columns
in a process of its own. Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GROUPS = 1000
GROUP_SIZE = 16
OBJECTIVES = "accuracy,format,length"
CONTINUOUS = "accuracy,format,length,rm_score"  # rm_score is continuous: the engine's path
ISSUE_12 = "accuracy,format,rm_score"  # the 3-objective log: pass/fail twice, one continuous

# argv: LOG COLUMN,COLUMN,...
FLOOR_READ = """
import polars as pl, sys
df = pl.read_parquet(sys.argv[1], columns=sys.argv[2].split(","))
print(df.height)
"""

# the floor at scale: a streaming read of the needed columns (bounded memory)
FLOOR_STREAM = """
import polars as pl, sys
cols = sys.argv[2].split(",")
print(pl.scan_parquet(sys.argv[1]).select(cols).sum().collect(engine="streaming"))
"""

# The obvious pandas implementation of the five schemes (population std, eps 0, equal weights).
PANDAS = """
import sys
import numpy as np
import pandas as pd

objectives = ["accuracy", "format", "length"]
w = np.full(len(objectives), 1.0 / len(objectives))
df = pd.read_parquet(sys.argv[1], columns=["step", "group_id", *objectives])
g = df.groupby(["step", "group_id"], sort=False)
mu = g[objectives].transform("mean")
sd = g[objectives].transform(lambda x: x.std(ddof=0))
dev = df[objectives] - mu
z = (dev / sd).where(sd > 0, 0.0)
adv = pd.DataFrame(index=df.index)
adv["grpo"] = z["accuracy"]
s = (df[objectives] * w).sum(axis=1)
gs = s.groupby([df["step"], df["group_id"]], sort=False)
s_mu = gs.transform("mean")
s_sd = gs.transform(lambda x: x.std(ddof=0))
adv["rc"] = ((s - s_mu) / s_sd).where(s_sd > 0, 0.0)
adv["ac"] = (z * w).sum(axis=1)
ac_step = adv["ac"].groupby(df["step"], sort=False)
m, sdev = ac_step.transform("mean"), ac_step.transform(lambda x: x.std(ddof=0))
adv["gdpo"] = ((adv["ac"] - m) / sdev).where(sdev > 0, 0.0)
den = (sd * w).sum(axis=1)
adv["dvao"] = ((dev * w).sum(axis=1) / den).where(den > 0, 0.0)
print((adv ** 2).mean().to_dict())
"""


LAST_CPU = [0.0]  # CPU seconds of the last measured process


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants now (Linux /proc; 0 elsewhere)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def measure(
    argv: list[str],
    stdout=subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[float, float, int]:
    """Run `argv` as its own process: (wall seconds, peak RSS in MiB, exit code). Its CPU
    seconds (user + system, with its worker processes'; steadier than wall time on a busy
    machine) go to LAST_CPU. The peak RSS is of the process and its worker processes
    together (sampled every 20 ms; the process's own peak from the kernel when larger)."""
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err_bytes = proc.stderr.read() if proc.stderr else b""  # never blocks on a full pipe
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    err = err_bytes.decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"command failed ({code}): {' '.join(argv)}\n{err}", file=sys.stderr)
    return wall, max(usage.ru_maxrss * 1024.0, peak[0]) / 2**20, code


# The paper-scale log: 200k responses with text columns (docs/performance.md).
PAPER_STEPS, PAPER_GROUPS = 100, 125


def make_log(
    workdir: Path, millions: int, objectives: str = OBJECTIVES, text: bool = False
) -> Path:
    suffix = "" if objectives == OBJECTIVES else "-" + objectives.split(",")[-1]
    if objectives == ISSUE_12:
        suffix = "-3obj" + suffix
    if text:
        path = workdir / f"sim-paper-200k{suffix}-text.parquet"
        steps, groups = PAPER_STEPS, PAPER_GROUPS
    else:
        path = workdir / f"sim-{millions}M{suffix}.parquet"
        steps, groups = millions * 1_000_000 // (GROUPS * GROUP_SIZE), GROUPS
    if path.exists():
        return path
    dvao = [sys.executable, "-m", "dvao_cli", "--quiet", "simulate"]
    argv = dvao + [
        "-o",
        str(path),
        *([] if text else ["--no-text"]),
        "--steps",
        str(steps),
        "--groups",
        str(groups),
        "--group-size",
        str(GROUP_SIZE),
        "--objectives",
        objectives,
        "--seed",
        "0",
    ]
    wall, rss, code = measure(argv)
    if code != 0:
        raise SystemExit(f"simulate failed for {millions}M rows")
    print(f"made {path} ({path.stat().st_size / 2**20:.0f} MiB) in {wall:.1f} s", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,100", help="log sizes in millions of rows")
    parser.add_argument("--rss-sizes", default="200", help="extra sizes: analyze only, for RSS")
    parser.add_argument(
        "--continuous-sizes", default="20", help="sizes also run with a continuous objective"
    )
    parser.add_argument(
        "--issue-sizes",
        default="",
        help="sizes also run on the 3-objective log (accuracy, format, rm_score), "
        "one of them continuous",
    )
    parser.add_argument(
        "--paper", action="store_true", help="also the 200k-row log with text columns"
    )
    parser.add_argument("--pandas-max", type=int, default=20, help="largest size run with pandas")
    parser.add_argument("--workdir", default="benchmarks/data", type=Path)
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (best kept)")
    parser.add_argument("--clean", action="store_true", help="delete the made logs at the end")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also run analyze with PYTHONPATH=DIR (repeatable): a before / after comparison "
        "in one run, the repeats of every measurement interleaved",
    )
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="byte-compile dvao_cli here and in every --tree first, as an installed package is "
        "(pip compiles on install); without it, a machine with PYTHONDONTWRITEBYTECODE=1 "
        "compiles dvao's modules in every process (about 25 ms)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="with --log: that many alternating pairs (stream read, analyze; per --tree too), "
        "each pair's ratio analyze / stream read printed, then their median and range",
    )
    parser.add_argument("--log", type=Path, help="an existing log for --pairs")
    args = parser.parse_args()
    if args.bytecode:
        import compileall

        trees = [Path(__file__).resolve().parents[1]]
        trees += [Path(t.partition("=")[2]).resolve() for t in args.tree]
        for tree in trees:
            compileall.compile_dir(tree / "dvao_cli", quiet=1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = args.workdir.resolve()  # a --tree runs in its own folder
    if args.pairs:
        if args.log is None:
            raise SystemExit("--pairs needs --log")
        pairs(args.log.resolve(), args.pairs, args.tree)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rss_sizes = [int(s) for s in args.rss_sizes.split(",") if s]

    py = sys.executable
    plan = [(m, OBJECTIVES, m in sizes, False) for m in sizes + rss_sizes]
    plan += [(int(m), CONTINUOUS, True, False) for m in args.continuous_sizes.split(",") if m]
    plan += [(int(m), ISSUE_12, True, False) for m in args.issue_sizes.split(",") if m]
    if args.paper:
        plan.append((0, CONTINUOUS, True, True))
    rows = []
    for millions, objectives, with_floor, text in plan:
        log = make_log(args.workdir, millions, objectives, text)
        columns = ",".join(["step", "group_id", objectives])
        label = "200k (+rm_score, text)" if text else f"{millions}M"
        if objectives == ISSUE_12:
            label += " (3 objectives, rm_score)"
        elif not text and objectives != OBJECTIVES:
            label += " (+rm_score)"
        runs: dict[str, tuple[float, float, float]] = {}
        analyze = [py, "-m", "dvao_cli", "--quiet", "analyze", str(log), "--json"]
        plans = {"analyze": analyze}
        envs: dict[str, dict[str, str] | None] = {}
        cwds: dict[str, str] = {}
        for tree in args.tree:
            name, _, where = tree.partition("=")
            root = str(Path(where).resolve())
            plans[f"analyze ({name})"] = analyze
            envs[f"analyze ({name})"] = {**os.environ, "PYTHONPATH": root}
            cwds[f"analyze ({name})"] = root  # `python -m` looks in the working folder first
        if with_floor:
            plans = {
                "read (floor)": [py, "-c", FLOOR_READ, str(log), columns],
                "stream read": [py, "-c", FLOOR_STREAM, str(log), columns],
                **plans,
            }
            if millions <= args.pandas_max and objectives == OBJECTIVES:
                plans["pandas"] = [py, "-c", PANDAS, str(log)]
        best: dict[str, tuple[float, float, float]] = {}  # name -> wall, RSS, CPU
        for _ in range(args.repeat):  # round robin: the machine's noise spreads over them all
            for name, argv in plans.items():
                wall, rss, code = measure(argv, env=envs.get(name), cwd=cwds.get(name))
                if code != 0:
                    continue
                old_wall, old_rss, old_cpu = best.get(name, (wall, rss, LAST_CPU[0]))
                fastest = (wall, rss) if wall <= old_wall else (old_wall, old_rss)
                best[name] = (*fastest, min(old_cpu, LAST_CPU[0]))  # each the best of the runs
        for name in plans:
            if name in best:
                runs[name] = best[name]
                wall, rss, cpu = best[name]
                print(
                    f"{label} {name}: {wall:.2f} s ({cpu:.2f} s CPU), {rss:.0f} MiB",
                    file=sys.stderr,
                )
        rows.append((label, runs))

    print("| rows | measurement | wall (s) | CPU (s) | peak RSS (MiB) | vs read | vs stream read |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for label, runs in rows:
        floor = runs.get("read (floor)", (None,))[0]
        stream = runs.get("stream read", (None,))[0]
        for name, (wall, rss, cpu) in runs.items():
            ratio = f"{wall / floor:.2f}x" if floor else ""
            versus = f"{wall / stream:.2f}x" if stream else ""
            print(f"| {label} | {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {ratio} | {versus} |")
    for label, runs in rows:
        if "pandas" in runs and "analyze" in runs:
            speedup = runs["pandas"][0] / runs["analyze"][0]
            print(f"\n{label}: dvao analyze is {speedup:.1f}x faster than pandas")
    if args.clean:
        shutil.rmtree(args.workdir)


def pairs(log: Path, count: int, trees: list[str]) -> None:
    """Alternating pairs on one log: the streaming read of its numeric columns, then analyze
    (each --tree in turn too), `count` times; each pair's ratio is analyze over the read just
    before it, so that a busy moment of the machine weighs on both. Prints the median ratio and
    its range per tree."""
    import statistics

    import polars as pl

    names = pl.read_parquet_schema(log)
    columns = ",".join(n for n in names if n not in ("sample_id", "prompt", "completion"))
    py = sys.executable
    stream = [py, "-c", FLOOR_STREAM, str(log), columns]
    analyze = [py, "-m", "dvao_cli", "--quiet", "analyze", str(log), "--json"]
    runs: dict[str, tuple[dict[str, str] | None, str | None]] = {"analyze": (None, None)}
    for tree in trees:
        name, _, where = tree.partition("=")
        root = str(Path(where).resolve())
        runs[f"analyze ({name})"] = ({**os.environ, "PYTHONPATH": root}, root)
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    cpu_ratios: dict[str, list[float]] = {name: [] for name in runs}  # CPU seconds, the same
    walls: dict[str, list[float]] = {name: [] for name in [*runs, "stream read"]}
    for i in range(count):
        for name, (env, cwd) in runs.items():
            read, _, code = measure(stream)
            read_cpu = LAST_CPU[0]
            wall, _, code2 = measure(analyze, env=env, cwd=cwd)
            if code or code2:
                raise SystemExit(f"pair {i} failed")
            walls["stream read"].append(read)
            walls[name].append(wall)
            ratios[name].append(wall / read)
            cpu_ratios[name].append(LAST_CPU[0] / read_cpu)
            print(
                f"pair {i + 1} {name}: {wall:.2f} s / {read:.2f} s = {wall / read:.2f}x "
                f"(CPU {LAST_CPU[0]:.2f} s / {read_cpu:.2f} s = {cpu_ratios[name][-1]:.2f}x)",
                file=sys.stderr,
            )
    print(f"{log.name}, {count} alternating pairs:")
    for name in runs:
        r, c = ratios[name], cpu_ratios[name]
        print(
            f"  {name}: median {statistics.median(r):.2f}x (range {min(r):.2f}x-{max(r):.2f}x), "
            f"median wall {statistics.median(walls[name]):.2f} s; CPU time median "
            f"{statistics.median(c):.2f}x (range {min(c):.2f}x-{max(c):.2f}x)"
        )
    print(f"  stream read: median wall {statistics.median(walls['stream read']):.2f} s")


if __name__ == "__main__":
    main()

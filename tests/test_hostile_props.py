"""A property test of hostile input: random odd Parquet logs (null and extreme values,
repeated rows, odd names, hive folders, cut bytes) through the CLI (analyze, analyze --out,
plot, import).

Whatever the input: exit 0 or 2 (3 only when a gate was given), never 1 and never a traceback,
and the inputs' bytes are unchanged. (What the right exit-2 message is for extreme values,
repeated rows or contradicting hive folders is for the tests of numbers at the edges and of
regrouping (test_hostile.py families 4 and 5, reader/test_keys.py); this
one holds them all to "no crash, no input touched".)
"""

from __future__ import annotations

import contextlib
import io as stdio
import json
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from dvao_cli.cli.app import run

NAMES = ["accuracy", "[/bold]", "a[b]", "fmt[x]", "$x$", "é ü", "with space", "rm_score"]
PLAIN = [0.0, 1.0, 0.5, 0.25]
EXTREME = [1e308, -1e308, 1e200, -1e200, 5e-324]
ODD = [None, float("nan"), float("inf"), float("-inf"), -0.0, 1e-300, 3.0]


@st.composite
def rewards(draw: st.DrawFn, n: int) -> list[float | None]:
    pool = PLAIN + ODD + EXTREME
    kind = draw(st.sampled_from(["plain", "odd", "continuous", "extreme"]))
    if kind == "plain":
        return draw(st.lists(st.sampled_from(PLAIN), min_size=n, max_size=n))
    if kind == "extreme":  # finite, but squares overflow
        return draw(st.lists(st.sampled_from(PLAIN + EXTREME), min_size=n, max_size=n))
    if kind == "continuous":
        finite = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from(PLAIN)
        return draw(st.lists(finite, min_size=n, max_size=n))
    return draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))


@st.composite
def logs(draw: st.DrawFn) -> dict:
    steps = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    size = draw(st.integers(1, 4))
    n = steps * groups * size
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    frame: dict[str, list] = {
        "step": [i // (groups * size) for i in range(n)],
        "group_id": [(i // size) % groups for i in range(n)],
        "sample_id": [i % size for i in range(n)],
        "prompt": [f"p{(i // size) % groups}" for i in range(n)],
        "completion": ["c"] * n,
    }
    if draw(st.booleans()):
        frame["group_id"] = [f"g[{g}]" for g in frame["group_id"]]
    if draw(st.integers(0, 9)) == 0:
        frame["step"] = [None if i == 0 else s for i, s in enumerate(frame["step"])]
    for name in names:
        frame[name] = draw(rewards(n))
    return {
        "frame": frame,
        "names": names,
        "repeat": draw(st.booleans()),  # rows repeated (the same file twice in a folder, too)
        "layout": draw(st.sampled_from(["file", "parts", "hive", "twice", "trl"])),
        "hive_conflict": draw(st.booleans()),  # folder step=N beside a column saying N - 1
        "cut": draw(st.sampled_from([None, None, None, 0.0, 0.3, 0.9, 0.99])),
        "nan": draw(st.sampled_from(["error", "drop", "ignore"])),
        "gate": draw(st.booleans()),
        "plot": draw(st.integers(0, 3)) == 0,  # figures cost most: a quarter of the cases
    }


def _write(case: dict, root: Path) -> Path:
    """The log as files under `root/in`; returns the LOG argument."""
    frame = pl.DataFrame(case["frame"], strict=False)
    if case["repeat"]:
        frame = pl.concat([frame, frame])
    base = root / "in"
    base.mkdir()
    layout = case["layout"]
    if layout == "file":
        frame.write_parquet(base / "log.parquet")
        target = base / "log.parquet"
    elif layout == "twice":
        frame.write_parquet(base / "a.parquet")
        frame.write_parquet(base / "b.parquet")
        target = base
    elif layout == "trl":
        target = base / "trl"
        target.mkdir()
        for step, part in frame.drop_nulls("step").group_by("step", maintain_order=True):
            trl = part.drop("group_id", "sample_id").rename({"step": "step"})
            trl.write_parquet(target / f"completions_{int(step[0]) + 1:05d}.parquet")
    else:
        target = base
        for step, part in frame.drop_nulls("step").group_by("step", maintain_order=True):
            folder = base / (f"step={step[0] + case['hive_conflict']}" if layout == "hive" else "")
            folder.mkdir(exist_ok=True)
            keep = part.drop("step") if layout == "hive" and not case["hive_conflict"] else part
            keep.write_parquet(folder / f"part-{step[0]}.parquet")
    if case["cut"] is not None:
        files = sorted(p for p in base.rglob("*.parquet"))
        if files:
            data = files[0].read_bytes()
            files[0].write_bytes(data[: int(len(data) * case["cut"])])
    return target


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli(*args: object) -> tuple[int, str]:
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return code, err.getvalue()


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=logs())
def test_odd_logs_exit_0_or_2_and_inputs_stay_as_they_were(case: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = _write(case, root)
        before = _snapshot(root / "in")
        name = case["names"][0]
        gate = ["--fail-on", f"dvao_weight[{json.dumps(name)}]<0.0001"] if case["gate"] else []
        runs = []
        if case["layout"] == "trl":
            runs.append(["import", "trl", log, "-o", root / "imported.parquet"])
            runs.append(["import", "trl", log, "-o", log / "completions_00001.parquet"])
        else:
            common = ["--nan", case["nan"], *gate]
            runs.append(["analyze", log, "--json", *common])
            runs.append(["analyze", log, "--out", root / "out", *common])
            runs.append(["analyze", log, "--out", root / "in", *common])  # the log's own folder
            if case["plot"]:
                runs.append(["plot", log, "--out", root / "figs", "--nan", case["nan"]])
        for args in runs:
            code, err = _cli(*args)
            allowed = {0, 2, 3} if gate and args[0] == "analyze" else {0, 2}
            assert code in allowed, (args, code, err)
            assert "Traceback" not in err and "internal error" not in err, (args, err)
            if code == 2:
                assert err.count("\n") >= 1 and err.splitlines()[-1].startswith("error: "), err
            after = _snapshot(root / "in")  # new outputs may sit beside a log file
            assert {k: after.get(k) for k in before} == before, args

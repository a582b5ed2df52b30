"""Right groups on real-shaped logs: group keys (verl's uid, `--group-key`), implausible groups
refused (or kept as `oversized_group` warnings), and every reward an objective whatever the
first file of a trainer's log holds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dvao_cli.analysis.pipeline import analyze
from dvao_cli.errors import InputError
from dvao_cli.reader.discovery import LogSource


def _verl_dump(
    directory: Path,
    groups: list[tuple[str, str, list[float]]],
    *,
    step: int = 1,
    uid: bool = True,
    seed: int = 0,
    name: str | None = None,
) -> list[dict]:
    """One verl `<step>.jsonl` of (uid, prompt text, acc rewards) groups, rows shuffled as
    verl's batch balancing leaves them. `uid=False`: the dump of a trainer that does not
    write it."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for gid, text, rewards in groups:
        for j, acc in enumerate(rewards):
            row = {"input": text, "output": f"{gid}-{j}", "score": acc, "step": step, "acc": acc}
            if uid:
                row["uid"] = gid
            rows.append(row)
    random.Random(seed).shuffle(rows)
    path = directory / (name or f"{step}.jsonl")
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


# 12 groups of 4 whose prompts share text three ways (a multimodal run: the image is not in the
# text); groups u0 and u5 are saturated (all pass): 2 of 12 = 16.7%
SHARED = [
    (
        f"u{g}",
        f"<image> What is in the picture? ({g % 3})",
        [1.0] * 4 if g in (0, 5) else [1.0, 0.0, float(g % 2), 0.0],
    )
    for g in range(12)
]


def _summary(cli, *args: object) -> dict:
    res = cli("analyze", *args, "-O", "acc", "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_verl_uid_is_the_group_key(cli, tmp_path: Path) -> None:
    _verl_dump(tmp_path / "dump", SHARED)
    summary = _summary(cli, tmp_path / "dump")
    assert (summary["groups"], summary["rows"]) == (12, 48)
    assert summary["objectives"]["acc"]["saturation"] == pytest.approx(2 / 12)
    # by hand: group u3 is [1, 0, 1, 0]: mean 0.5, population std 0.5
    out = tmp_path / "log.parquet"
    res = cli("import", "verl", tmp_path / "dump", "-o", out, "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["group_keys"] == ["uid"]
    assert report["grouping"] == "rows with the same (step, uid)"
    assert report["group_sizes"] == {"4": 12}
    frame = pl.read_parquet(out)
    u3 = frame.filter(pl.col("uid") == "u3")
    assert u3["group_id"].n_unique() == 1 and u3["acc"].sort().to_list() == [0, 0, 1, 1]
    assert frame.group_by("group_id").agg(pl.col("uid").n_unique())["uid"].to_list() == [1] * 12


def test_verl_without_uid_merges_groups_that_share_a_prompt(cli, tmp_path: Path) -> None:
    # what the uid repairs: by prompt text, 3 groups of 16 and no saturation at all
    _verl_dump(tmp_path / "dump", SHARED, uid=False)
    summary = _summary(cli, tmp_path / "dump")
    assert (summary["groups"], summary["rows"]) == (3, 48)
    assert summary["objectives"]["acc"]["saturation"] == 0.0


# 24 groups of 4 in one step, every prompt the same text: without uid, one group of 96
ONE_TEXT = [
    (f"u{g}", "<image> Describe the image.", [1.0] * 4 if g < 4 else [1.0, 0.0, 0.0, 1.0])
    for g in range(24)
]
REFUSAL = (
    "step 1: one group holds all 96 responses of the step (a step of more than 64 rows in "
    "one group): such a group usually joins the responses to different prompts that share a "
    "group key (prompts that share text, e.g. multimodal prompts whose image is not in the "
    "text); group by a column that tells the prompts apart with --group-key COL, write "
    "verl's uid into the dump (it is then the group key), or use --group-size N only where "
    "the rows keep their order (never for verl); --allow-large-groups if you really sample "
    "groups this large"
)


@pytest.mark.parametrize("command", ["analyze", "plot", "import"])
def test_one_group_per_step_is_refused(cli, tmp_path: Path, command: str) -> None:
    _verl_dump(tmp_path / "dump", ONE_TEXT, uid=False)
    out = tmp_path / "out.parquet" if command == "import" else tmp_path / "out"
    args = ("import", "verl") if command == "import" else (command,)
    res = cli(*args, tmp_path / "dump", "-o", out, "-O", "acc")
    assert res.code == 2, res.err
    assert res.err.strip().splitlines() == [f"error: {tmp_path / 'dump' / '1.jsonl'}: {REFUSAL}"]
    assert not out.exists()
    # --ragged alone does not let it through
    assert cli(*args, tmp_path / "dump", "-o", out, "-O", "acc", "--ragged").code == 2


def test_one_group_per_step_with_uid_or_allowed(cli, tmp_path: Path) -> None:
    _verl_dump(tmp_path / "uid", ONE_TEXT)
    summary = _summary(cli, tmp_path / "uid")
    assert (summary["groups"], summary["rows"]) == (24, 96)
    assert summary["objectives"]["acc"]["saturation"] == pytest.approx(4 / 24)

    _verl_dump(tmp_path / "dump", ONE_TEXT, uid=False)
    source = LogSource((tmp_path / "dump",), allow_large_groups=True)
    result = analyze(source, objectives=["acc"])
    assert (result.summary.groups, result.summary.rows) == (1, 96)
    assert [(w.code, w.objective) for w in result.warnings] == [("oversized_group", None)]
    assert result.warnings[0].message.startswith(
        "step 1: one group holds all 96 responses of the step (a step of more than 64 rows in "
        "one group): kept as asked (--allow-large-groups); "
    )
    # the import keeps it in its report, and analyze's summary object carries it
    res = cli("import", "verl", tmp_path / "dump", "-o", tmp_path / "o.parquet", "--json",
              "--allow-large-groups")  # fmt: skip
    assert res.code == 0, res.err
    found = [(w["code"], w["objective"]) for w in json.loads(res.out)["warnings"]]
    assert found == [("oversized_group", None), ("combined_score", "score")]  # a copy of acc
    res = cli("import", "verl", tmp_path / "dump", "-o", tmp_path / "o.parquet",
              "--allow-large-groups")  # fmt: skip
    assert res.code == 0 and "oversized_group: step 1: one group holds all 96" in res.out
    res = cli("analyze", tmp_path / "dump", "-O", "acc", "--allow-large-groups")
    assert res.code == 0, res.err


def test_group_key_option_on_a_trl_log(cli, tmp_path: Path) -> None:
    # two groups of one prompt text side by side (two images): TRL's runs join them into 8
    folder = tmp_path / "completions"
    folder.mkdir()
    image = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    table = pa.table(
        {
            "step": [5] * 12,
            "prompt": ["<image> count the cats"] * 8 + ["other"] * 4,
            "completion": [f"c{i}" for i in range(12)],
            "image_id": image,
            "accuracy": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            "advantage": [0.0] * 12,
        }
    )
    pq.write_table(table, folder / "completions_00005.parquet")
    res = cli("analyze", folder, "-O", "accuracy", "--json")
    assert res.code == 2 and "inconsistent group sizes: 1 group of 4, 1 group of 8" in res.err
    summary = _summary_trl(cli, folder, "--group-key", "image_id")
    assert (summary["groups"], summary["rows"]) == (3, 12)
    assert summary["objectives"]["accuracy"]["saturation"] == pytest.approx(1 / 3)
    # the key column is no default objective
    res = cli("import", "trl", folder, "-o", tmp_path / "o.parquet", "--group-key", "image_id",
              "--json")  # fmt: skip
    report = json.loads(res.out)
    assert report["objectives"] == ["accuracy"] and report["group_keys"] == ["image_id"]
    # a key that is not a column, and --group-key on a dvao log
    res = cli("analyze", folder, "--group-key", "image")
    assert res.code == 2
    assert "column 'image': no such column for --group-key (did you mean 'image_id'?)" in res.err
    res = cli("analyze", "sample_data/rollouts.parquet", "--group-key", "prompt")
    assert res.code == 2 and "--group-key applies to a trainer's log" in res.err


def _summary_trl(cli, folder: Path, *args: object) -> dict:
    res = cli("analyze", folder, "-O", "accuracy", *args, "--json")
    assert res.code == 0, res.err
    return json.loads(res.out)


def _dvao_log(path: Path, sizes: list[tuple[int, int]], row_group_size: int | None = None) -> None:
    """A dvao log of (step, group size) groups, rewards alternating 0/1 within each group."""
    steps, gids, acc = [], [], []
    for g, (step, size) in enumerate(sizes):
        steps += [step] * size
        gids += [g] * size
        acc += [float(i % 2) for i in range(size)]
    frame = pl.DataFrame({"step": steps, "group_id": gids, "acc": acc})
    frame.write_parquet(path, row_group_size=row_group_size)


def test_dvao_log_with_implausible_groups(cli, tmp_path: Path) -> None:
    whole = tmp_path / "whole.parquet"
    _dvao_log(whole, [(0, 4), (0, 4), (1, 100), (2, 4)])
    res = cli("analyze", whole)
    assert res.code == 2
    line = res.err.strip()
    assert line.startswith(
        f"error: {whole}: step 1: one group holds all 100 responses of the step (a step of "
        "more than 64 rows in one group): such a group usually joins"
    )
    assert "dvao import --group-key COL" in line and "--allow-large-groups" in line
    assert len(res.err.strip().splitlines()) == 1

    big = tmp_path / "big.parquet"  # groups of 4, one of 20 among them: 5x the median
    _dvao_log(big, [(0, 4), (0, 4), (1, 4), (1, 20), (1, 4), (2, 4)])
    res = cli("analyze", big)
    assert res.code == 2
    assert res.err.startswith(
        f"error: {big}: step 1: a group of 20 responses, more than 4x the log's median group "
        "size (4): "
    )
    result = analyze(big, allow_large_groups=True)
    assert [w.code for w in result.warnings] == ["oversized_group"]
    assert result.summary.groups == 6
    ok = tmp_path / "ok.parquet"  # 16 is 4x the median: allowed
    _dvao_log(ok, [(0, 4), (0, 4), (1, 16), (1, 4)])
    assert analyze(ok).warnings == []


def test_implausible_groups_in_worker_processes(tmp_path: Path, monkeypatch) -> None:
    # the check sums come back from worker processes with the results
    from dvao_cli.analysis import pipeline

    monkeypatch.setattr(pipeline, "PROCESS_MIN_ROWS", 1)
    ran = []
    in_processes = pipeline._in_processes
    monkeypatch.setattr(
        pipeline, "_in_processes", lambda *a, **k: ran.append(1) or in_processes(*a, **k)
    )
    path = tmp_path / "log.parquet"
    sizes = [(s, 4) for s in range(40) for _ in range(8)] + [(40, 80)]
    _dvao_log(path, sizes, row_group_size=256)
    with pytest.raises(InputError, match="step 40: one group holds all 80 responses"):
        analyze(path, workers=2, processes=True, chunk_rows=1000)
    result = analyze(path, workers=2, processes=True, chunk_rows=1000, allow_large_groups=True)
    assert [w.code for w in result.warnings] == ["oversized_group"]
    assert ran == [1, 1]  # both ran in worker processes


def test_verl_step_split_over_two_files_is_reported(cli, tmp_path: Path) -> None:
    _verl_dump(tmp_path / "dump", SHARED[:6], name="3.jsonl", step=3)
    _verl_dump(tmp_path / "dump", SHARED[6:], name="4.jsonl", step=3)  # its rows say step 3
    res = cli("import", "verl", tmp_path / "dump", "-o", tmp_path / "o.parquet", "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["skipped"]["steps logged more than once (groups kept, numbered on)"] == 1


def test_step_past_int64_is_an_input_error(cli, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    _verl_dump(dump, SHARED[:2])
    text = (dump / "1.jsonl").read_text().replace('"step": 1', '"step": 9223372036854775808')
    (dump / "1.jsonl").write_text(text)
    res = cli("analyze", dump)
    assert res.code == 2
    assert "step '9223372036854775808' is past the int64 range a step must fit in" in res.err


def test_singular_counts_in_the_import(cli, tmp_path: Path) -> None:
    _verl_dump(tmp_path / "dump", SHARED[:1])
    res = cli("--quiet", "import", "verl", tmp_path / "dump", "-o", tmp_path / "o.parquet")
    assert res.code == 0, res.err
    assert res.out == f"wrote {tmp_path / 'o.parquet'}: 4 rows, 1 step, 1 group\n"


# --------------------------------------------------------------------------------------------
# Every reward stays an objective, whatever the first file holds
# --------------------------------------------------------------------------------------------


def test_verl_reward_null_in_the_whole_first_file(cli, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    rows1 = [{"input": f"q{i // 4}", "output": "o", "step": 1, "acc": 1.0 * (i % 2),
              "length": None} for i in range(8)]  # fmt: skip
    rows2 = [{"input": f"q{i // 4}", "output": "o", "step": 2, "acc": 1.0 * (i % 2),
              "length": 0.25 * (i % 4)} for i in range(8)]  # fmt: skip
    (dump / "1.jsonl").write_text("\n".join(json.dumps(r) for r in rows1) + "\n")
    (dump / "2.jsonl").write_text("\n".join(json.dumps(r) for r in rows2) + "\n")
    res = cli("import", "verl", dump, "-o", tmp_path / "o.parquet", "--json")
    report = json.loads(res.out)
    assert report["objectives"] == ["acc", "length"]
    assert report["missing_rewards"] == {"length": 8}
    assert pl.read_parquet(tmp_path / "o.parquet").schema["length"] == pl.Float64


def test_swift_integer_rewards_are_objectives(cli, tmp_path: Path) -> None:
    path = tmp_path / "completions.jsonl"
    line = {
        "step": ["1"] * 4,
        "prompt": ["p"] * 4,
        "completion": ["a", "b", "c", "d"],
        "Accuracy": [1, 0, 1, 1],
        "Format": [1.0, 1.0, 0.5, 0.0],
        "advantages": [0.1, -0.1, 0.1, 0.1],
    }
    path.write_text(json.dumps(line) + "\n")
    res = cli("import", "swift", path, "-o", tmp_path / "o.parquet", "--json")
    assert json.loads(res.out)["objectives"] == ["Accuracy", "Format"]


ODD = ("int", "null-typed", "all-null", "absent")


def _write_trl(folder: Path, rewards: np.ndarray, odd: str | None) -> None:
    """Steps of 2 groups of 4 rows, one file each; the first file types `second` oddly."""
    folder.mkdir(parents=True, exist_ok=True)
    n_steps = rewards.shape[0] // 8
    for s in range(n_steps):
        part = rewards[s * 8 : (s + 1) * 8]
        second: pa.Array = pa.array(part[:, 1], type=pa.float64())
        if s == 0 and odd == "int":
            second = pa.array(part[:, 1].astype(np.int64))
        columns = {
            "step": pa.array([s + 1] * 8, type=pa.int64()),
            "prompt": [f"p{i // 4}" for i in range(8)],
            "completion": [f"c{i}" for i in range(8)],
            "first": pa.array(part[:, 0]),
            "second": second,
        }
        if s == 0 and odd == "null-typed":
            columns["second"] = pa.nulls(8)
        elif s == 0 and odd == "all-null":
            columns["second"] = pa.nulls(8, type=pa.float64())
        elif s == 0 and odd == "absent":
            del columns["second"]
        pq.write_table(pa.table(columns), folder / f"completions_{s + 1:05d}.parquet")


def _write_verl(folder: Path, rewards: np.ndarray, odd: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n_steps = rewards.shape[0] // 8
    for s in range(n_steps):
        rows = []
        for i, (a, b) in enumerate(rewards[s * 8 : (s + 1) * 8]):
            second: object = float(b)
            if s == 0 and odd == "int":
                second = int(b)
            elif s == 0 and odd in ("null-typed", "all-null"):
                second = None
            row = {"input": f"p{i // 4}", "output": f"c{i}", "step": s + 1, "first": float(a)}
            if not (s == 0 and odd == "absent"):
                row["second"] = second
            rows.append(row)
        (folder / f"{s + 1}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _numbers(path: Path) -> dict:
    summary = analyze(path, nan="ignore").summary.to_json()
    return {k: summary[k] for k in ("objective_order", "objectives", "schemes", "groups", "rows")}


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=12, deadline=None)
@hypothesis.given(
    trainer=st.sampled_from(["trl", "verl"]),
    odd=st.sampled_from(ODD),
    steps=st.integers(2, 3),
    seed=st.integers(0, 2**16),
)
def test_first_file_typing_a_reward_oddly_changes_nothing(
    tmp_path_factory, trainer: str, odd: str, steps: int, seed: int
) -> None:
    """A log whose first file types a reward int, null or all-null, or lacks it, analyses to
    the same objectives and numbers as the same log with plain float columns (a missing
    reward is missing in both: NaN where the odd file holds null or lacks the column)."""
    rng = np.random.default_rng(seed)
    rewards = rng.integers(0, 2, (steps * 8, 2)).astype(np.float64)
    plain = rewards.copy()
    if odd != "int":
        plain[:8, 1] = np.nan  # the same log, the first file's reward missing
    root = tmp_path_factory.mktemp("odd")
    write = _write_trl if trainer == "trl" else _write_verl
    write(root / "odd", rewards, odd)
    write(root / "plain", plain, None)
    got, want = _numbers(root / "odd"), _numbers(root / "plain")
    assert got["objective_order"] == ["first", "second"]
    assert got == want


# --------------------------------------------------------------------------------------------
# Figures and outputs on real-shaped logs
# --------------------------------------------------------------------------------------------


def test_isolated_points() -> None:
    from dvao_cli.plot.figures import isolated

    nan = float("nan")
    values = np.array([1.0, nan, 2.0, nan, nan, 3.0, 4.0, nan, 5.0])
    assert isolated(values).tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 1]
    assert isolated(np.array([0.5])).tolist() == [True]  # a one-step log


def test_an_isolated_step_is_visible_in_the_figures(tmp_path: Path) -> None:
    from dvao_cli.plot.source import build_figures, load_source

    # 100 steps (no markers on the lines); objective b has a reward at step 50 only
    n = 100
    frame = pl.DataFrame(
        {
            "step": np.repeat(np.arange(n), 4),
            "group_id": np.zeros(4 * n, dtype=np.int64),
            "a": np.tile([0.0, 1.0, 1.0, 0.0], n),
            "b": [v if s == 50 else None for s in range(n) for v in (0.0, 1.0, 0.5, 0.5)],
        }
    )
    frame.write_parquet(tmp_path / "log.parquet")
    source = load_source(tmp_path / "log.parquet", nan="ignore")
    figs, _ = build_figures(source, ["a", "b"], smooth=1)
    marked = [
        (line.get_xdata().tolist(), line.get_marker())
        for line in figs["rewards"].axes[0].get_lines()
        if line.get_linestyle() == "None"
    ]
    assert marked == [([50], "o")]


def test_plot_never_writes_inside_a_trainer_folder(cli, tmp_path: Path, monkeypatch) -> None:
    _verl_dump(tmp_path / "dump", SHARED)
    monkeypatch.chdir(tmp_path)
    res = cli("plot", tmp_path / "dump", "-O", "acc")
    assert res.code == 0, res.err
    assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == ["1.jsonl"]
    assert (tmp_path / "dvao-plots" / "weights.png").is_file()


# --------------------------------------------------------------------------------------------
# Real logs (tests/fixtures/real_logs: each folder's SOURCE.md says where it comes from)
# --------------------------------------------------------------------------------------------

REAL = Path(__file__).parent / "fixtures" / "real_logs"


def test_real_verl_dump_of_one_response_per_prompt(cli, tmp_path: Path) -> None:
    dump = REAL / "verl_gsm8k_n1"
    out = tmp_path / "log.parquet"
    res = cli("import", "verl", dump, "-o", out, "--ragged", "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert (report["rows"], report["steps"], report["groups"]) == (12, 1, 12)
    assert report["group_sizes"] == {"1": 12}
    assert report["objectives"] == ["score"]
    assert report["group_keys"] == []  # this dump has no uid: grouped by (step, input)
    frame = pl.read_parquet(out)
    # by hand: row 7 is Connie's grandmother, scored 0.0 against gts 1944
    connie = frame.filter(pl.col("prompt").str.contains("Connie"))
    assert connie.select("group_id", "score", "gts").rows() == [(6, 0.0, "1944")]
    assert frame["score"].sum() == 7.0
    # every group holds one response: no within-group variance, refused with the cause
    res = cli("analyze", dump, "--ragged")
    assert res.code == 2
    assert "every group left has one response (12 groups of size 1" in res.err
    # without --ragged the sizes are one size (1): the same refusal, no traceback
    assert cli("analyze", dump).code == 2


def test_verl_reward_first_seen_in_a_later_file_imports_once_more(cli, tmp_path: Path) -> None:
    # the plan from the first file lacks 'length': the import starts again with the survey of
    # every file, and its report counts each row once
    dump = tmp_path / "dump"
    dump.mkdir()
    for step in (1, 2, 3):
        rows = [{"input": f"q{i // 4}", "output": "o", "step": step, "acc": 1.0 * (i % 2)}
                for i in range(8)]  # fmt: skip
        if step == 3:
            for i, row in enumerate(rows):
                row["length"] = 0.25 * (i % 4)
        (dump / f"{step}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = cli("import", "verl", dump, "-o", tmp_path / "o.parquet", "--json")
    report = json.loads(res.out)
    assert report["objectives"] == ["acc", "length"]
    assert (report["rows"], report["batches"], report["groups"]) == (24, 3, 6)
    assert report["missing_rewards"] == {"length": 16}


def test_real_trl_completions_folder(cli) -> None:
    folder = REAL / "trl_illustrated_grpo" / "completions"
    res = cli("analyze", folder, "--ddof", "1", "--eps", "1e-4", "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert (summary["rows"], summary["steps"], summary["groups"]) == (48, 8, 8)
    reward = summary["objectives"]["correctness_reward"]
    assert reward["saturation"] == 0.75  # steps 2-6 all pass, step 8 all fail
    assert (reward["saturation_pass"], reward["saturation_fail"]) == (0.625, 0.125)
    assert summary["schemes"]["rc"]["logged_max_diff"] < 1e-6  # TRL's advantage is RC's
    # by hand, step 1: rewards 1, 0, 0, 1, 0, 1: mean 0.5, Bessel std sqrt(1.5 / 5)
    frame = pl.read_parquet(folder / "completions_00001.parquet")
    std = (1.5 / 5) ** 0.5
    expected = [(r - 0.5) / (std + 1e-4) for r in frame["correctness_reward"]]
    assert np.allclose(frame["advantage"].to_numpy(), expected, atol=1e-6)
    assert round(expected[0], 6) == 0.912704


def test_real_verl_rows_sharing_one_prompt_text(cli, tmp_path: Path) -> None:
    # the real dump's keys and types, a multimodal run's shape: 24 prompts (images) whose text
    # is the same, 4 responses each, rows shuffled; verl's v1 trainer adds uid
    real = [json.loads(line) for line in (REAL / "verl_gsm8k_n1" / "1.jsonl").open()]
    rows = []
    for g in range(24):
        for j in range(4):
            row = dict(real[g % 12], output=f"{real[g % 12]['output']} ({j})")
            row.update(input=real[0]["input"], score=float(g < 6 or j % 2), uid=f"img-{g}")
            rows.append(row)
    random.Random(1).shuffle(rows)
    for uid in (False, True):
        dump = tmp_path / ("uid" if uid else "text")
        dump.mkdir()
        lines = [{k: v for k, v in r.items() if uid or k != "uid"} for r in rows]
        (dump / "1.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    res = cli("analyze", tmp_path / "text", "--json")
    assert res.code == 2
    assert res.err.startswith(
        f"error: {tmp_path / 'text' / '1.jsonl'}: step 1: one group holds all 96 responses"
    )
    res = cli("analyze", tmp_path / "uid", "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert (summary["groups"], summary["rows"]) == (24, 96)
    assert summary["objectives"]["score"]["saturation"] == pytest.approx(6 / 24)

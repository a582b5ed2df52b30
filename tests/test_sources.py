"""The way back to the trainer's rows, a trainer's log found below a folder, and any table.

- `advantages.parquet` is in `row` order, whatever order the engine took the rows in;
- `source_file` / `source_row` (ms-swift: `source_index`) lead from every imported row, read in
  place or through `dvao import`, to the exact row of the trainer's file;
- `dvao analyze DIR` reads the one trainer log a few levels below DIR, and says which;
- `dvao import table` / `--format table`: JSON lines, CSV, Parquet, a folder, a glob.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from trainer_fixtures import write_swift_completions, write_trl_completions

R2 = math.sqrt(2.0)


def _ok(res) -> None:
    assert res.code == 0, (res.code, res.out, res.err)


def _error(res) -> str:
    assert res.code == 2, (res.code, res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    return lines[0]


def _advantages(cli, log: object, out: Path, *args: object) -> pl.DataFrame:
    res = cli("analyze", log, "--out", out, "--json", *args)
    _ok(res)
    return pl.read_parquet(out / "advantages.parquet")


# --------------------------------------------------------------------------------------------
# advantages.parquet in row order
# --------------------------------------------------------------------------------------------


def test_advantages_parquet_is_in_row_order(cli, tmp_path: Path) -> None:
    # two groups interleaved: the engine takes them as (group 0, group 1), the file keeps rows
    log = tmp_path / "log.parquet"
    pl.DataFrame(
        {"step": [0] * 5, "group_id": [1, 0, 1, 0, 1], "acc": [1.0, 1.0, 0.0, 0.0, 0.0]}
    ).write_parquet(log)
    adv = _advantages(cli, log, tmp_path / "out", "-s", "grpo")
    assert adv["row"].to_list() == [0, 1, 2, 3, 4]
    assert adv["group_id"].to_list() == [1, 0, 1, 0, 1]
    # group 1: rewards 1, 0, 0 (mean 1/3, population std sqrt(2)/3); group 0: 1, 0
    want = [R2, 1.0, -1 / R2, -1.0, -1 / R2]
    assert adv["adv_grpo"].to_list() == pytest.approx(want, abs=1e-12)
    assert "source_file" not in adv.columns  # a dvao log without them: none written


def test_advantages_parquet_row_order_when_steps_are_spread(cli, tmp_path: Path) -> None:
    """Rows shuffled over the whole log, read in chunks: chunks interleave, the file is sorted
    once more; every response keeps its advantage."""
    sample = pl.read_parquet("sample_data/rollouts.parquet").head(6000)
    shuffled = sample.with_row_index("orig").sample(fraction=1.0, shuffle=True, seed=3)
    shuffled.drop("orig").write_parquet(tmp_path / "shuffled.parquet", row_group_size=500)
    sample.write_parquet(tmp_path / "sorted.parquet")
    a = _advantages(cli, tmp_path / "shuffled.parquet", tmp_path / "a", "--chunk-rows", "1000")
    b = _advantages(cli, tmp_path / "sorted.parquet", tmp_path / "b")
    assert a["row"].to_list() == list(range(6000))
    # row i of the shuffled log is row orig[i] of the sorted one
    orig = shuffled["orig"].to_numpy()
    for name in ("adv_rc", "adv_dvao", "w_accuracy"):
        assert a[name].to_numpy() == pytest.approx(b[name].to_numpy()[orig], abs=1e-12)


# --------------------------------------------------------------------------------------------
# source_file, source_row: back to the trainer's rows
# --------------------------------------------------------------------------------------------


def _write_verl(dump: Path) -> None:
    """One step, rows reordered as verl's batch balancing does, and a blank line."""
    dump.mkdir(parents=True)
    records = [
        {"input": "q1", "output": "a", "step": 1, "acc": 1},
        {"input": "q2", "output": "b", "step": 1, "acc": 0},
        None,
        {"input": "q1", "output": "c", "step": 1, "acc": 0},
        {"input": "q2", "output": "d", "step": 1, "acc": 1},
    ]
    text = "\n".join("" if r is None else json.dumps(r) for r in records) + "\n"
    (dump / "1.jsonl").write_text(text)


@pytest.mark.parametrize("imported", [False, True])
def test_verl_rows_lead_back_to_their_lines(cli, tmp_path: Path, imported: bool) -> None:
    dump = tmp_path / "dump"
    _write_verl(dump)
    log: Path = dump
    if imported:
        log = tmp_path / "log.parquet"
        _ok(cli("import", "verl", dump, "-o", log, "-q"))
        frame = pl.read_parquet(log)
        assert frame["completion"].to_list() == ["a", "c", "b", "d"]
        assert frame["source_file"].dtype == pl.Categorical  # one string per file
    adv = _advantages(cli, log, tmp_path / "out", "-s", "grpo")
    assert adv["source_file"].cast(pl.String).to_list() == ["1.jsonl"] * 4
    assert adv["source_row"].to_list() == [0, 3, 1, 4]  # 0-based lines, the blank one counted
    assert adv["adv_grpo"].to_list() == pytest.approx([1.0, -1.0, -1.0, 1.0])
    lines = (dump / "1.jsonl").read_text().splitlines()
    outputs = [json.loads(lines[i])["output"] for i in adv["source_row"].to_list()]
    assert outputs == ["a", "c", "b", "d"]


@pytest.mark.parametrize("imported", [False, True])
def test_trl_rows_lead_back_to_their_parquet_rows(cli, tmp_path: Path, imported: bool) -> None:
    rows = write_trl_completions(tmp_path / "run" / "completions", steps=(1, 2))
    log: Path = tmp_path / "run"
    if imported:
        log = tmp_path / "log.parquet"
        _ok(cli("import", "trl", tmp_path / "run", "-o", log, "-q"))
    adv = _advantages(cli, log, tmp_path / "out")
    names = ["completions/completions_00001.parquet"] * 12
    names += ["completions/completions_00002.parquet"] * 12
    assert adv["source_file"].cast(pl.String).to_list() == names
    assert adv["source_row"].to_list() == list(range(12)) * 2
    for got, (name, row) in zip(
        adv.iter_rows(named=True), zip(names, adv["source_row"].to_list(), strict=True), strict=True
    ):
        table = pl.read_parquet(tmp_path / "run" / name)
        assert table["step"][row] == got["step"]
    assert [r["completion"] for r in rows][:3] == ["answer 1-0", "answer 1-1", "answer 1-2"]


@pytest.mark.parametrize("imported", [False, True])
def test_swift_rows_lead_back_to_line_and_list_index(cli, tmp_path: Path, imported: bool) -> None:
    write_swift_completions(tmp_path / "out" / "completions.jsonl", steps=(1, 2))
    log: Path = tmp_path / "out" / "completions.jsonl"
    if imported:
        log = tmp_path / "log.parquet"
        _ok(cli("import", "swift", tmp_path / "out", "-o", log, "-q"))
        frame = pl.read_parquet(log)
        assert frame["source_file"].cast(pl.String).to_list() == ["completions.jsonl"] * 16
    adv = _advantages(cli, log, tmp_path / "res")
    assert adv["source_file"].cast(pl.String).to_list() == ["completions.jsonl"] * 16
    assert adv["source_row"].to_list() == [0] * 8 + [1] * 8  # the line
    assert adv["source_index"].to_list() == list(range(8)) * 2  # the position in its lists
    lines = (tmp_path / "out" / "completions.jsonl").read_text().splitlines()
    for got in adv.iter_rows(named=True):
        line = json.loads(lines[got["source_row"]])
        assert int(line["step"][got["source_index"]]) == got["step"]


def test_reserved_source_names_are_never_objectives(cli, tmp_path: Path) -> None:
    log = tmp_path / "log.parquet"
    pl.DataFrame(
        {"step": [0, 0], "group_id": [0, 0], "acc": [1.0, 0.0], "source_row": [5, 9]}
    ).write_parquet(log)
    res = cli("analyze", log, "--json")
    _ok(res)
    assert list(json.loads(res.out)["objectives"]) == ["acc"]


# --------------------------------------------------------------------------------------------
# A trainer's log a few levels below the folder named
# --------------------------------------------------------------------------------------------


def test_a_log_a_few_levels_down_is_found_and_named(cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_trl_completions(repo / "output" / "completions", steps=(1,))
    # never looked into: hidden folders, virtual environments, node_modules
    write_trl_completions(repo / ".cache" / "completions", steps=(1,))
    write_trl_completions(repo / "env" / "completions", steps=(1,))
    (repo / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    write_trl_completions(repo / "node_modules" / "x" / "completions", steps=(1,))
    res = cli("analyze", repo, "--json")
    _ok(res)
    assert json.loads(res.out)["rows"] == 12
    assert res.err == f"{repo}: reading the trainer log found in {repo}/output/completions\n"
    res = cli("-q", "analyze", repo, "--json")
    _ok(res)
    assert res.err == ""
    out = tmp_path / "log.parquet"
    _ok(cli("import", repo, "-o", out, "-q"))
    # source_file stays relative to the folder named
    assert pl.read_parquet(out)["source_file"].cast(pl.String).unique().to_list() == [
        "output/completions/completions_00001.parquet"
    ]


def test_several_logs_below_a_folder_are_named(cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_trl_completions(repo / "output" / "completions", steps=(1,))
    _write_verl(repo / "runs" / "x" / "rollout_data")
    want = (
        f"error: {repo}: 2 trainer logs below this folder: {repo}/output/completions, "
        f"{repo}/runs/x/rollout_data; name the one to read"
    )
    assert _error(cli("analyze", repo)) == want
    assert _error(cli("plot", repo, "--out", tmp_path / "figs")) == want
    assert _error(cli("import", repo, "-o", tmp_path / "log.parquet")) == want
    # naming one reads it
    res = cli("analyze", repo / "runs" / "x", "--json")
    _ok(res)
    assert json.loads(res.out)["rows"] == 4


def test_no_log_below_a_folder_says_where_it_looked(cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src" / "a" / "b" / "c" / "d").mkdir(parents=True)
    _write_verl(repo / "src" / "a" / "b" / "c" / "d" / "deep")  # 5 levels down: too deep
    assert _error(cli("import", repo, "-o", tmp_path / "log.parquet")) == (
        f"error: {repo}: no trainer log files here or below (found 1 entry: src); looked for "
        "completions_<step>.parquet (TRL), <step>.jsonl (verl), completions.jsonl (ms-swift); "
        "4 levels down, leaving out hidden folders and virtual environments"
    )


# --------------------------------------------------------------------------------------------
# dvao import table, --format table
# --------------------------------------------------------------------------------------------

ROWS = [
    {"step": 3, "example_id": 7, "completion": "a", "acc": 1.0, "fmt": 1, "num_tokens": 5,
     "advantage": 0.5},
    {"step": 3, "example_id": 8, "completion": "b", "acc": 0.0, "fmt": 0, "num_tokens": 6,
     "advantage": -0.5},
    {"step": 3, "example_id": 7, "completion": "c", "acc": 0.0, "fmt": 1, "num_tokens": 7,
     "advantage": -0.5},
    {"step": 3, "example_id": 8, "completion": "d", "acc": 1.0, "fmt": 1, "num_tokens": 8,
     "advantage": 0.5},
]  # fmt: skip


def _write_table(path: Path, rows: list[dict], kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif kind == "csv":
        pl.DataFrame(rows).write_csv(path)
    else:
        pl.DataFrame(rows).write_parquet(path)


def _import_json(cli, *args: object) -> dict:
    res = cli("import", *args, "--json")
    _ok(res)
    return json.loads(res.out)


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_import_table_from_each_format(cli, tmp_path: Path, kind: str) -> None:
    src = tmp_path / f"rollouts.{kind}"
    _write_table(src, ROWS, kind)
    out = tmp_path / "log.parquet"
    report = _import_json(
        cli, "table", src, "-o", out, "--step", "step", "--group", "example_id",
        "--advantage", "advantage",
    )  # fmt: skip
    assert report["format"] == "table"
    assert (report["steps"], report["groups"], report["rows"]) == (1, 2, 4)
    assert report["objectives"] == ["acc", "fmt"]  # not the id, token count or advantage
    assert report["logged_advantage"] is True
    assert report["grouping"] == "rows with the same (step, example_id)"
    frame = pl.read_parquet(out)
    assert frame["step"].to_list() == [3, 3, 3, 3]
    assert frame["group_id"].to_list() == [0, 0, 1, 1]
    assert frame["completion"].to_list() == ["a", "c", "b", "d"]
    assert frame["logged_advantage"].to_list() == [0.5, -0.5, -0.5, 0.5]
    assert frame["source_file"].cast(pl.String).to_list() == [f"rollouts.{kind}"] * 4
    assert frame["source_row"].to_list() == [0, 2, 1, 3]  # CSV: data rows, header excluded
    adv = _advantages(cli, out, tmp_path / "res", "-s", "grpo", "-O", "acc")
    assert adv["adv_grpo"].to_list() == pytest.approx([1.0, -1.0, -1.0, 1.0])


def test_table_in_place_without_step_is_one_step_and_says_so(cli, tmp_path: Path) -> None:
    src = tmp_path / "rollouts.jsonl"
    rows = [{k: v for k, v in r.items() if k != "step"} for r in ROWS]
    _write_table(src, rows, "jsonl")
    res = cli("analyze", src, "--group", "example_id", "--json")  # --group: a table
    _ok(res)
    summary = json.loads(res.out)
    assert (summary["steps"], summary["groups"], summary["rows"]) == (1, 2, 4)
    assert res.err == (
        f"{src}: no --step: the table is read as one step (step 0); name its step column with "
        "--step COL\n"
    )
    adv = _advantages(cli, src, tmp_path / "res", "--format", "table", "--group", "example_id")
    assert adv["step"].to_list() == [0, 0, 0, 0]
    assert adv["source_row"].to_list() == [0, 2, 1, 3]


def test_table_folder_and_glob_read_every_file_in_natural_order(cli, tmp_path: Path) -> None:
    # a step spread over two files (one per rank) still makes whole groups
    folder = tmp_path / "dump"
    _write_table(folder / "rank_10.csv", ROWS[2:], "csv")
    _write_table(folder / "rank_2.csv", ROWS[:2], "csv")
    out = tmp_path / "log.parquet"
    for source in (folder, f"{folder}/*.csv"):
        report = _import_json(
            cli, "table", source, "-o", out, "--step", "step", "--group", "example_id"
        )
        assert (report["files"], report["groups"], report["group_sizes"]) == (2, 2, {"2": 2})
        frame = pl.read_parquet(out)
        assert frame["completion"].to_list() == ["a", "c", "b", "d"]
        assert frame["source_file"].cast(pl.String).to_list() == [
            "rank_2.csv", "rank_10.csv", "rank_2.csv", "rank_10.csv"
        ]  # fmt: skip
        assert frame["source_row"].to_list() == [0, 0, 1, 1]


def test_table_nested_fields_and_several_group_columns(cli, tmp_path: Path) -> None:
    src = tmp_path / "rollouts.jsonl"
    rows = [
        {"step": 1, "task": "t", "seed": 1, "rewards": {"acc": 1.0}},
        {"step": 1, "task": "t", "seed": 2, "rewards": {"acc": 1.0}},
        {"step": 1, "task": "t", "seed": 1, "rewards": {"acc": 0.0}},
        {"step": 1, "task": "t", "seed": 2, "rewards": {"acc": 0.0}},
    ]
    _write_table(src, rows, "jsonl")
    out = tmp_path / "log.parquet"
    report = _import_json(
        cli, "table", src, "-o", out, "--step", "step", "--group", "task", "--group", "seed",
        "-O", "rewards.acc",
    )  # fmt: skip
    assert report["objectives"] == ["rewards.acc"]
    assert report["grouping"] == "rows with the same (step, task, seed)"
    assert pl.read_parquet(out)["source_row"].to_list() == [0, 2, 1, 3]


def test_table_bad_names_are_one_line_naming_the_column(cli, tmp_path: Path) -> None:
    src = tmp_path / "rollouts.jsonl"
    _write_table(src, ROWS, "jsonl")
    out = tmp_path / "log.parquet"
    args = ("import", "table", src, "-o", out)
    assert _error(cli(*args, "--step", "stpe", "--group", "example_id")) == (
        f"error: {src}: column 'stpe': no such column (named by --step) (did you mean 'step'?)"
    )
    assert _error(cli(*args, "--group", "exmple_id")).startswith(
        f"error: {src}: column 'exmple_id': no such column (named by --group) (did you mean "
        "'example_id'"
    )
    assert _error(cli(*args, "--group", "example_id", "-O", "acx")).startswith(
        f"error: {src}: column 'acx': no such reward column (did you mean 'acc'"
    )
    assert _error(cli(*args, "--step", "step")) == (
        "error: a table needs its group key: --group COL (repeatable; the rows of one step with "
        "the same values there are one group), or --group-size N where each group's N rows "
        "follow one another"
    )
    assert _error(cli("analyze", src, "--format", "dvao", "--step", "step")) == (
        "error: --step names a column of a table (--format table), not of a dvao log"
    )
    assert not out.exists()


def test_table_null_group_key_and_bad_step_name_the_line(cli, tmp_path: Path) -> None:
    src = tmp_path / "rollouts.jsonl"
    rows = [dict(r) for r in ROWS]
    rows[2]["example_id"] = None
    rows[3]["step"] = "three"
    _write_table(src, rows, "jsonl")
    args = ("import", "table", src, "-o", tmp_path / "log.parquet", "--group", "example_id")
    assert _error(cli(*args)).startswith(
        f"error: {src}:3: column 'example_id': no group key (null) for a response"
    )
    rows[2]["example_id"] = 7
    _write_table(src, rows, "jsonl")
    assert _error(cli(*args, "--step", "step")) == (
        f"error: {src}:4: column 'step': not an integer step: 'three'"
    )


def test_row_order_counting_sort_and_its_fallback() -> None:
    import numpy as np

    from dvao_cli.analysis.pipeline import _row_order

    rows = np.array([7, 5, 6, 9])  # a range less a row: the counting sort
    assert _row_order(rows).tolist() == [1, 2, 0, 3]
    rows = np.array([100, 0, 50])  # spread wider than 4 x N: an argsort
    assert _row_order(rows).tolist() == [1, 2, 0]


REAL = Path(__file__).parent / "fixtures" / "real_logs"


def test_a_real_custom_loggers_table(cli, tmp_path: Path) -> None:
    """A public repository's rollout JSON lines (tests/fixtures/real_logs/medical_triage): one
    prompt's five responses, rewards nested under reward_components, no step column."""
    src = REAL / "medical_triage" / "train_rollouts.jsonl"
    names = ["esi_accuracy", "rank_order", "rationale_quality"]
    picks = [arg for name in names for arg in ("-O", f"reward_components.{name}")]
    out = tmp_path / "log.parquet"
    report = _import_json(cli, "table", src, "-o", out, "--group", "task_id", *picks)
    assert (report["steps"], report["groups"], report["rows"]) == (1, 1, 5)
    adv = _advantages(cli, out, tmp_path / "res", "-s", "rc")
    # by hand: s = mean of the three rewards per response = 0.644467, 0.8, 0.8259, 0.774067,
    # 0.8259; their mean 0.774067, population std 0.067590
    want = [-1.917441, 0.383686, 0.766878, 0.0, 0.766878]
    assert adv["adv_rc"].to_list() == pytest.approx(want, abs=2e-6)
    assert adv["source_file"].cast(pl.String).to_list() == ["train_rollouts.jsonl"] * 5
    assert adv["source_row"].to_list() == [0, 1, 2, 3, 4]
    line = src.read_text().splitlines()[0]
    assert json.loads(line)["reward_components"]["esi_accuracy"] == 0.5  # row 0's low score
    # without its columns named, a .jsonl is taken for verl's, and the message says what to do
    assert _error(cli("analyze", src)) == (
        f"error: {src}:1: not a verl rollout record: no 'input' key (another trainer's table of "
        "rollouts: name its columns with --step COL --group COL)"
    )


def test_table_of_nemo_rl_lines_in_blocks_of_group_size(cli, tmp_path: Path) -> None:
    """NeMo-RL's train_data_step<N>.jsonl: every value a one-element list, no prompt id (each
    prompt's responses follow one another): --group-size cuts the groups."""
    dump = tmp_path / "exp_001"
    dump.mkdir()
    lines = [
        {"content": [[{"role": "user", "content": f"q{i // 2}"}]], "rewards": [float(r)],
         "input_lengths": [12], "idx": i}
        for i, r in enumerate([1, 0, 0, 0])
    ]  # fmt: skip
    (dump / "train_data_step1.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "log.parquet"
    report = _import_json(cli, "table", dump, "-o", out, "--group-size", "2")
    assert report["objectives"] == ["rewards"]  # not the lengths nor idx
    assert report["grouping"] == "fixed blocks of 2 rows"
    assert report["group_sizes"] == {"2": 2}
    frame = pl.read_parquet(out)
    assert frame["rewards"].to_list() == [1.0, 0.0, 0.0, 0.0]
    assert frame["source_file"].cast(pl.String).to_list() == ["train_data_step1.jsonl"] * 4
    assert _error(cli("import", "table", dump, "-o", out)).startswith(
        "error: a table needs its group key: --group COL"
    )


def test_table_parquet_files_with_int_and_float_rewards_and_mixed_formats(
    cli, tmp_path: Path
) -> None:
    folder = tmp_path / "dump"
    folder.mkdir()
    first = pl.DataFrame({"step": [1, 1], "example_id": [7, 7], "acc": [1, 0]})  # int64
    second = pl.DataFrame({"step": [1, 1], "example_id": [8, 8], "acc": [0.5, 0.0]})  # double
    first.write_parquet(folder / "a.parquet")
    second.write_parquet(folder / "b.parquet")
    out = tmp_path / "log.parquet"
    report = _import_json(
        cli, "table", folder, "-o", out, "--step", "step", "--group", "example_id"
    )
    assert report["objectives"] == ["acc"]
    assert pl.read_parquet(out)["acc"].to_list() == [1.0, 0.0, 0.5, 0.0]
    (folder / "c.csv").write_text("step,example_id,acc\n1,9,1\n")
    assert _error(cli("import", "table", folder, "-o", out, "--group", "example_id")) == (
        f"error: {folder}: a table is files of one format; these differ: {folder}/c.csv (CSV), "
        f"{folder}/a.parquet (Parquet)"
    )


def test_table_in_place_from_a_quoted_glob(cli, tmp_path: Path) -> None:
    folder = tmp_path / "dump"
    _write_table(folder / "rank_2.jsonl", ROWS[:2], "jsonl")
    _write_table(folder / "rank_10.jsonl", ROWS[2:], "jsonl")
    res = cli("analyze", f"{folder}/*.jsonl", "--step", "step", "--group", "example_id", "--json")
    _ok(res)
    assert (json.loads(res.out)["groups"], json.loads(res.out)["rows"]) == (2, 4)
    # the shell's expansion gives several LOG arguments: the message says to quote it
    two = (folder / "rank_2.jsonl", folder / "rank_10.jsonl")
    assert _error(cli("analyze", *two, "--group", "example_id")) == (
        "error: --format table reads one trainer log (a folder or a file or a glob in quotes, "
        "which the shell leaves to dvao), not 2 LOG arguments"
    )


def test_the_search_below_a_folder_is_bounded(cli, tmp_path: Path, monkeypatch) -> None:
    from dvao_cli.importers import detect, run

    monkeypatch.setattr(detect, "SEARCH_ENTRIES", 5)
    monkeypatch.setattr(run, "SEARCH_ENTRIES", 5)
    repo = tmp_path / "repo"
    for i in range(6):
        (repo / f"dir{i}").mkdir(parents=True)
    write_trl_completions(repo / "dir5" / "out" / "completions", steps=(1,))
    assert _error(cli("import", repo, "-o", tmp_path / "log.parquet")) == (
        f"error: {repo}: no trainer log files here or below (found 6 entries: dir0, dir1, dir2, "
        "...); looked for completions_<step>.parquet (TRL), <step>.jsonl (verl), "
        "completions.jsonl (ms-swift); stopped after 5 entries"
    )
    found, stopped = detect.nearby_logs(repo)
    assert (found, stopped) == ([], True)
    monkeypatch.setattr(detect, "SEARCH_ENTRIES", 100)
    assert detect.nearby_logs(repo) == ([repo / "dir5" / "out" / "completions"], False)


def test_table_csv_with_a_byte_order_mark(cli, tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"  # spreadsheets write a BOM before the header
    src.write_bytes(b"\xef\xbb\xbfstep,example_id,acc\n1,7,1\n1,7,0\n")
    out = tmp_path / "log.parquet"
    report = _import_json(cli, "table", src, "-o", out, "--step", "step", "--group", "example_id")
    assert (report["objectives"], report["rows"]) == (["acc"], 2)

"""Trainer logs read in place: `dvao analyze` and `dvao plot` take a TRL
`completions/` folder, a verl `rollout_data_dir` and an ms-swift `completions.jsonl` directly,
with the numbers of `dvao import` then analyze, and write nothing beside them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from trainer_fixtures import write_swift_completions, write_trl_completions, write_verl_rollouts

from dvao_cli.plot.source import load_source
from dvao_cli.reader.discovery import LogSource
from dvao_cli.reader.opening import open_log

from .logs import one_error_line, small_log


def _trl(root: Path) -> Path:
    write_trl_completions(root / "run" / "completions", none_rate=0.2)
    return root / "run" / "completions"


def _trl_output_dir(root: Path) -> Path:
    write_trl_completions(root / "run" / "completions", none_rate=0.2)
    return root / "run"


def _verl(root: Path) -> Path:
    write_verl_rollouts(root / "dump")
    return root / "dump"


def _swift(root: Path) -> Path:
    write_swift_completions(root / "out" / "completions.jsonl")
    return root / "out" / "completions.jsonl"


TRAINERS: dict[str, Callable[[Path], Path]] = {
    "trl": _trl,
    "trl-output-dir": _trl_output_dir,
    "verl": _verl,
    "swift": _swift,
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _json(cli, *args: object) -> dict:
    res = cli(*args)
    assert res.code == 0, res.err
    return json.loads(res.out)


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_analyze_in_place_equals_import_then_analyze(cli, tmp_path: Path, trainer: str) -> None:
    source = TRAINERS[trainer](tmp_path / "src")
    before = _snapshot(tmp_path / "src")
    imported = tmp_path / "imported.parquet"
    assert cli("import", source, "-o", imported).code == 0
    options = ("--nan", "ignore", "--ddof", "1", "--eps", "1e-4")
    in_place = _json(cli, "analyze", source, "--json", *options)
    expected = _json(cli, "analyze", imported, "--json", *options)
    files = in_place.pop("files")
    assert expected.pop("files") == [str(imported)]
    assert in_place == expected
    assert files == [str(p) for p in open_log(source).files]
    # the per-response output too
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("analyze", source, "--out", a, *options).code == 0
    assert cli("analyze", imported, "--out", b, *options).code == 0
    assert pl.read_parquet(a / "advantages.parquet").equals(
        pl.read_parquet(b / "advantages.parquet")
    )
    assert pl.read_parquet(a / "steps.parquet").equals(pl.read_parquet(b / "steps.parquet"))
    assert _snapshot(tmp_path / "src") == before  # nothing written beside the user's files


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["trl", "verl", "swift"])
def test_plot_in_place_equals_plot_of_the_import(cli, tmp_path: Path, trainer: str) -> None:
    source = TRAINERS[trainer](tmp_path / "src")
    imported = tmp_path / "imported.parquet"
    assert cli("import", source, "-o", imported).code == 0
    in_place = load_source(source, nan="ignore")
    expected = load_source(imported, nan="ignore")
    assert in_place.kind == expected.kind == "log"
    assert in_place.objectives == expected.objectives
    assert in_place.steps.equals(expected.steps)
    assert in_place.schemes.equals(expected.schemes)
    before = _snapshot(tmp_path / "src")
    res = cli("plot", source, "--nan", "ignore", "-o", tmp_path / "figures")
    assert res.code == 0, res.err
    assert (tmp_path / "figures" / "weights.png").is_file()
    assert _snapshot(tmp_path / "src") == before


def test_the_input_set_lists_the_trainer_files_and_the_others(tmp_path: Path) -> None:
    source = _verl(tmp_path)
    (source / "notes.txt").write_text("not a rollout")
    spec = open_log(source)
    assert spec.format == "verl"
    assert spec.files == [source / "1.jsonl", source / "2.jsonl"]
    assert spec.skipped == [source / "notes.txt"]
    assert spec.label == str(source)


def test_the_input_set_of_a_dvao_folder_lists_the_skipped_files(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    small_log().write_parquet(folder / "part-0.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-1.parquet.tmp").write_text("")
    (folder / "README.md").write_text("")
    spec = open_log(folder)
    assert spec.format == "dvao"
    assert spec.files == [folder / "part-0.parquet"]
    assert spec.skipped == [
        folder / ".part-1.parquet.tmp",
        folder / "README.md",
        folder / "_SUCCESS",
    ]


def test_format_forces_the_layout(cli, tmp_path: Path) -> None:
    source = _trl(tmp_path)
    # a TRL completions file under another name is a dvao log to auto detection...
    renamed = tmp_path / "rollouts.parquet"
    shutil.copy(source / "completions_00001.parquet", renamed)
    res = cli("analyze", renamed)
    assert res.code == 2 and "missing required column" in one_error_line(res)
    # ...and read as TRL when told so, as `dvao import trl` reads it
    imported = tmp_path / "imported.parquet"
    assert cli("import", "trl", renamed, "-o", imported).code == 0
    forced = _json(cli, "analyze", renamed, "--format", "trl", "--json", "--nan", "ignore")
    expected = _json(cli, "analyze", imported, "--json", "--nan", "ignore")
    forced.pop("files"), expected.pop("files")
    assert forced == expected
    # --format dvao reads a trainer folder as a dvao log (which it is not)
    res = cli("analyze", source, "--format", "dvao")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {source / 'completions_00001.parquet'}: column 'group_id': missing required "
        "column (a dvao log needs 'step' and 'group_id'; bring trainer logs in with `dvao import`)"
    )
    # a dvao log named like TRL's files stays a dvao log
    dvao = tmp_path / "dvao" / "completions_00001.parquet"
    dvao.parent.mkdir()
    small_log().write_parquet(dvao)
    assert open_log(dvao).format == "dvao" and open_log(dvao.parent).format == "dvao"


def test_a_wrong_format_says_which_one_it_looks_like(cli, tmp_path: Path) -> None:
    trl, verl = _trl(tmp_path), _verl(tmp_path)
    res = cli("analyze", trl, "--format", "verl")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {trl}: no verl files here (<step>.jsonl); this looks like a TRL log: --format trl"
    )
    res = cli("plot", verl, "--log-format", "swift")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {verl}: no ms-swift files here (completions.jsonl); this looks like a verl log: "
        "--log-format verl"
    )
    res = cli("analyze", trl, "--format", "tlr")
    assert res.code == 2
    assert (
        one_error_line(res)
        == "error: --format 'tlr' is not a log format (did you mean 'trl', 'table'?)"
    )
    res = cli("analyze", trl, verl, "--format", "trl")
    assert res.code == 2
    assert one_error_line(res) == (
        "error: --format trl reads one trainer log (a folder or a file), not 2 LOG arguments"
    )


def test_group_size_and_ragged_as_in_import(cli, tmp_path: Path) -> None:
    source = _verl(tmp_path)  # 3 prompts x 4 responses per step
    imported = tmp_path / "imported.parquet"
    assert cli("import", source, "-o", imported, "--group-size", "2").code == 0
    in_place = _json(cli, "analyze", source, "--group-size", "2", "--json")
    expected = _json(cli, "analyze", imported, "--json")
    in_place.pop("files"), expected.pop("files")
    assert in_place == expected
    assert (in_place["rows"], in_place["groups"]) == (24, 12)  # blocks of 2, not groups of 4
    # a step whose prompts have different counts of responses: refused, then --ragged
    lines = (source / "2.jsonl").read_text().splitlines()
    (source / "2.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    res = cli("analyze", source)
    assert res.code == 2
    assert "inconsistent group sizes" in one_error_line(res)
    assert "--ragged" in one_error_line(res)
    assert cli("analyze", source, "--ragged", "--json").code == 0
    res = cli("analyze", imported, "--group-size", "2")
    assert res.code == 2
    assert one_error_line(res) == (
        "error: --group-size applies to a trainer's log or a table read in place (TRL, verl, "
        "ms-swift, table), not to a dvao log, whose groups are its group_id column"
    )


def test_python_api_reads_in_place(tmp_path: Path) -> None:
    from dvao_cli.reader.memory import read_log

    source = _swift(tmp_path)
    data = read_log(LogSource((source,), format="swift"))
    assert data.objectives == ["AccuracyReward", "FormatReward"]
    assert data.rows == 24 and data.sizes.tolist() == [4] * 6
    assert data.files == [source]


def test_messages_about_a_log_read_in_place_name_the_source(cli, tmp_path: Path) -> None:
    source = _trl(tmp_path / "src")  # rewards returned None: NaN, an error under --nan error
    imported = tmp_path / "imported.parquet"
    assert cli("import", source, "-o", imported).code == 0
    expected = cli("analyze", imported)
    res = cli("analyze", source)
    assert res.code == expected.code == 2
    line = one_error_line(expected)
    assert line.startswith(f"error: {imported}: column '") and "NaN" in line
    assert one_error_line(res) == line.replace(str(imported), str(source))


@pytest.mark.slow
def test_plot_format_takes_a_log_format_as_analyze_does(cli, tmp_path: Path) -> None:
    """`dvao plot --format verl` reads SOURCE as a verl log (the name `dvao analyze` uses),
    while `--format` keeps naming the image format: the two sets of names share none."""
    verl = _verl(tmp_path)
    by_format = cli("plot", verl, "--format", "verl", "-o", tmp_path / "a", "-q")
    by_log_format = cli("plot", verl, "--log-format", "verl", "-o", tmp_path / "b", "-q")
    assert by_format.code == 0 and by_log_format.code == 0, by_format.err
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names and all(name.endswith(".png") for name in names)
    svg = cli("plot", verl, "--format", "svg", "--log-format", "verl", "-o", tmp_path / "c", "-q")
    assert svg.code == 0 and all(p.suffix == ".svg" for p in (tmp_path / "c").iterdir())
    res = cli("plot", verl, "--format", "swift")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {verl}: no ms-swift files here (completions.jsonl); this looks like a verl log: "
        "--format verl"
    )
    res = cli("plot", verl, "--format", "bmp")
    assert res.code == 2
    assert one_error_line(res) == (
        "error: --format 'bmp' is neither an image format (png, svg, pdf) nor a log format "
        "(auto, dvao, trl, verl, swift, table)"
    )
    res = cli("plot", verl, "--format", "trl", "--log-format", "verl")
    assert res.code == 2
    assert one_error_line(res) == "error: --format trl and --log-format verl name two log formats"

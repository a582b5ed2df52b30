"""No silent regrouping (hostile-input family 5): a response logged twice, or a partition folder
that contradicts the file's own column, is refused with exit 2 naming the first repeat."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dvao_cli.errors import InputError
from dvao_cli.reader.memory import read_log

from .logs import one_error_line, small_log


def test_the_same_file_twice_in_a_folder(cli, tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.mkdir()
    small_log().write_parquet(folder / "part-0.parquet")
    shutil.copy(folder / "part-0.parquet", folder / "part-0 copy.parquet")
    res = cli("analyze", folder)
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {folder / 'part-0.parquet'}: step 0, group_id 0, sample_id 0 is already in "
        f"{folder / 'part-0 copy.parquet'}: a response must be one row (is a file in the log "
        "twice?)"
    )


def test_one_row_repeated_inside_a_file(cli, tmp_path: Path) -> None:
    frame = small_log(steps=3)
    repeated = pl.concat([frame, frame.filter((pl.col("step") == 2) & (pl.col("group_id") == 1))])
    path = tmp_path / "log.parquet"
    repeated.slice(0, 33).write_parquet(path)  # step 2, group_id 1, sample_id 0 twice
    res = cli("analyze", path, "--json")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {path}: step 2, group_id 1, sample_id 0 is repeated (2 rows): a response must "
        "be one row"
    )


def test_repeat_in_ragged_unsorted_groups_with_string_ids(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "step": [0, 0, 0, 0, 0, 1, 1, 1],
            "group_id": ["b", "a", "b", "a", "a", "x", "x", "x"],
            "sample_id": [1, 0, 0, 2, 1, 0, 2, 2],  # (1, 'x', 2) twice
            "accuracy": [1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.25, 0.0],
        }
    )
    path = tmp_path / "ragged.parquet"
    frame.write_parquet(path)
    with pytest.raises(InputError) as err:
        read_log(path)
    assert str(err.value) == (
        f"{path}: step 1, group_id 'x', sample_id 2 is repeated (2 rows): a response must be "
        "one row"
    )
    # the same ids without the repeat, in any order within a group: read as before
    ok = tmp_path / "ok.parquet"
    frame.with_columns(sample_id=pl.Series([1, 0, 0, 2, 1, 0, 2, 1])).write_parquet(ok)
    data = read_log(ok)
    assert data.sizes.tolist() == [3, 2, 3]
    assert data.frame.columns == ["row", "step", "group_id", "accuracy"]


def test_the_first_repeat_is_named_when_many(tmp_path: Path) -> None:
    frame = small_log(steps=4, groups=3, size=8)
    path = tmp_path / "log.parquet"
    # groups of 8 whose sample ids are 0..3 twice: every group repeats; the first is named
    frame.with_columns(pl.col("sample_id") % 4).write_parquet(path)
    with pytest.raises(InputError) as err:
        read_log(path)
    assert str(err.value) == (
        f"{path}: step 0, group_id 0, sample_id 0 is repeated (2 rows): a response must be one row"
    )


def test_unique_sample_ids_in_any_order_pass(tmp_path: Path) -> None:
    frame = small_log(steps=3, groups=4, size=6)
    reversed_ids = frame.with_columns((5 - pl.col("sample_id")).alias("sample_id"))
    path = tmp_path / "log.parquet"
    reversed_ids.write_parquet(path)
    data = read_log(path)
    assert data.rows == 72 and data.sizes.tolist() == [6] * 12
    kept = read_log(path, extra_columns=["sample_id"])
    assert kept.frame["sample_id"].to_list() == reversed_ids["sample_id"].to_list()


def test_without_sample_id_rows_are_responses_but_a_copied_file_is_refused(
    cli, tmp_path: Path
) -> None:
    """Without sample_id a response has no key beyond its group: every row is a response. A
    file holding the same bytes as another file of the log is still refused."""
    frame = small_log().drop("sample_id")
    path = tmp_path / "log.parquet"
    pl.concat([frame, frame]).write_parquet(path)
    assert read_log(path).sizes.tolist() == [8, 8, 8, 8]
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.write_parquet(folder / "a.parquet")
    frame.with_columns(pl.col("accuracy") * 0.5).write_parquet(folder / "b.parquet")
    assert read_log(folder).sizes.tolist() == [8, 8, 8, 8]  # equal groups, different rows
    shutil.copy(folder / "a.parquet", folder / "c.parquet")
    res = cli("analyze", folder)
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {folder / 'c.parquet'}: holds the same bytes as {folder / 'a.parquet'}: its rows "
        "would be read twice (is a file in the log twice?)"
    )
    for s in (0, 1):  # identical bytes in two partitions are two partitions' rows
        part = tmp_path / "hive" / f"step={s}"
        part.mkdir(parents=True)
        frame.filter(pl.col("step") == 0).drop("step").write_parquet(part / "p.parquet")
    assert read_log(tmp_path / "hive").rows == 16


def test_a_null_sample_id_is_refused(cli, tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    small_log().with_columns(
        pl.when(pl.col("sample_id") == 3)
        .then(None)
        .otherwise(pl.col("sample_id"))
        .alias("sample_id")
    ).write_parquet(path)
    res = cli("analyze", path)
    assert res.code == 2
    assert one_error_line(res) == f"error: {path}: column 'sample_id': 4 missing (null) values"


def test_the_same_partition_twice_in_a_hive_folder(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    for s in range(2):
        folder = tmp_path / "log" / f"step={s}"
        folder.mkdir(parents=True)
        frame.filter(pl.col("step") == s).drop("step").write_parquet(folder / "a.parquet")
    copy = tmp_path / "log" / "step=1" / "b.parquet"
    shutil.copy(tmp_path / "log" / "step=1" / "a.parquet", copy)
    res = cli("analyze", tmp_path / "log")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {copy}: step 1, group_id 0, sample_id 0 is already in "
        f"{tmp_path / 'log' / 'step=1' / 'a.parquet'}: a response must be one row (is a file in "
        "the log twice?)"
    )


def test_a_partition_folder_contradicting_the_file_is_refused(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    folders = {s: tmp_path / "log" / f"step={s}" for s in (0, 1)}
    for s, folder in folders.items():
        folder.mkdir(parents=True)
        frame.filter(pl.col("step") == s).write_parquet(folder / "part.parquet")  # keeps step
    assert read_log(tmp_path / "log").rows == 16  # folder and rows agree: read
    bad = folders[1] / "part.parquet"
    frame.filter(pl.col("step") == 1).with_columns(pl.lit(5).alias("step")).write_parquet(bad)
    res = cli("analyze", tmp_path / "log")
    assert res.code == 2
    assert one_error_line(res) == (
        f"error: {bad}: column 'step': the folder says step=1 but the file's rows say step 5; "
        "rename the folder or drop the column"
    )


@pytest.mark.parametrize("statistics", [True, False])
def test_a_contradicting_partition_with_mixed_rows(tmp_path: Path, statistics: bool) -> None:
    """Footers without statistics: the column is read to check it."""
    folder = tmp_path / "log" / "group_id=3"
    folder.mkdir(parents=True)
    path = folder / "part.parquet"
    small_log().write_parquet(path, statistics=statistics)
    with pytest.raises(InputError) as err:
        read_log(tmp_path / "log")
    assert str(err.value) == (
        f"{path}: column 'group_id': the folder says group_id=3 but the file's rows say "
        "group_id from 0 to 1; rename the folder or drop the column"
    )


def test_the_repeat_check_is_one_pass_on_sorted_logs(tmp_path: Path) -> None:
    """A long uniform log: unique ids pass, one repeat deep inside is found."""
    steps, groups, size = 50, 40, 16
    n = steps * groups * size
    frame = pl.DataFrame(
        {
            "step": np.repeat(np.arange(steps), groups * size),
            "group_id": np.tile(np.repeat(np.arange(groups), size), steps),
            "sample_id": np.tile(np.arange(size), steps * groups),
            "accuracy": np.random.default_rng(0).integers(0, 2, n).astype(float),
        }
    )
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    assert read_log(path).rows == n
    ids = frame["sample_id"].to_numpy().copy()
    ids[(37 * groups + 11) * size + 9] = 4  # step 37, group 11: sample 4 twice
    frame.with_columns(sample_id=pl.Series(ids)).write_parquet(path)
    with pytest.raises(InputError) as err:
        read_log(path)
    assert str(err.value) == (
        f"{path}: step 37, group_id 11, sample_id 4 is repeated (2 rows): a response must be one "
        "row"
    )


def _partitioned(root: Path, folders: dict[str, pl.DataFrame]) -> Path:
    for name, frame in folders.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        frame.write_parquet(root / name / "part.parquet")
    return root


def test_partition_folders_that_cannot_be_read_as_one_log(cli, tmp_path: Path) -> None:
    frame = small_log(steps=2)
    step0 = frame.filter(pl.col("step") == 0)
    cases = {
        # a folder value that is not of the file's column type contradicts it too
        "text": ({"step=abc": frame}, "step=abc/part.parquet", "column 'step': the folder says "
                 "step=abc but the file's rows say step from 0 to 1; rename the folder or drop "
                 "the column"),
        "twice": ({"step=1/step=2": step0.drop("step")}, "step=1/step=2/part.parquet",
                  "the folders name partition column 'step' twice (step=1, step=2)"),
        "mixed": ({"a=1": frame, "b=2": frame.with_columns(pl.col("group_id") + 5)},
                  "b=2/part.parquet", "partition folders b= here but a= in "
                  "{root}/a=1/part.parquet: every file of a partitioned log needs the same "
                  "partition folders"),
        "step": ({"step=0": step0.drop("step"), "step=x1": step0.drop("step")},
                 "step=x1/part.parquet", "the folder says step=x1: a step must be an integer"),
    }  # fmt: skip
    for name, (folders, where, message) in cases.items():
        root = _partitioned(tmp_path / name, folders)
        res = cli("analyze", root)
        assert res.code == 2, name
        assert one_error_line(res) == f"error: {root / where}: " + message.format(root=root)


def test_partition_columns_are_not_objectives_unless_named(tmp_path: Path) -> None:
    frame = small_log(steps=2)
    root = _partitioned(
        tmp_path / "log",
        {f"seed={s}": frame.with_columns(pl.col("group_id") + 10 * s) for s in (0, 1)},
    )
    assert read_log(root).objectives == ["accuracy", "format"]
    assert read_log(root, objectives=["accuracy", "seed"]).objectives == ["accuracy", "seed"]


def test_a_file_named_twice_is_read_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    small_log().write_parquet("log.parquet")
    (tmp_path / "sub").mkdir()
    for spelling in (
        ["log.parquet", str(tmp_path / "log.parquet")],
        ["log.parquet", "sub/../log.parquet"],
    ):
        data = read_log(spelling)
        assert data.rows == 16 and data.files == [Path("log.parquet")]
    folder = tmp_path / "linked"
    folder.mkdir()
    small_log().write_parquet(folder / "a.parquet")
    (folder / "b.parquet").symlink_to(folder / "a.parquet")
    data = read_log(folder)
    assert data.rows == 16 and data.files == [folder / "a.parquet"]

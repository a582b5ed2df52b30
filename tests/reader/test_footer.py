"""Parquet footers decoded without pyarrow (`dvao_cli/reader/footer.py`) give pyarrow's
answers: row counts, row groups, leaf paths, integer minima per row group, key-value
metadata; and anything they cannot decode goes to pyarrow."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dvao_cli.reader.footer import Footer, read_footer

ROOT = Path(__file__).resolve().parents[2]


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "step": [i // 40 - 3 for i in range(n)],
            "group_id": [i // 8 for i in range(n)],
            "small": pl.Series([i % 100 for i in range(n)], dtype=pl.Int8),
            "unsigned": pl.Series([i for i in range(n)], dtype=pl.UInt32),
            "accuracy": [float(i % 2) for i in range(n)],
            "prompt": [f"p{i // 8}" for i in range(n)],
            "nested": [{"a": i, "b": f"x{i}"} for i in range(n)],
            "tokens": [[i, i + 1] for i in range(n)],
        }
    )


def _files(tmp: Path) -> list[Path]:
    frame = _frame(1000)
    out = []
    for name, write in {
        "polars": lambda p: frame.write_parquet(p, row_group_size=128),
        "polars-nostats": lambda p: frame.write_parquet(p, statistics=False),
        "polars-one": lambda p: frame.head(0).write_parquet(p),
        "pyarrow": lambda p: pq.write_table(frame.to_arrow(), p, row_group_size=300),
        "pyarrow-nostats": lambda p: pq.write_table(
            frame.to_arrow(), p, row_group_size=300, write_statistics=False
        ),
        "pyarrow-meta": lambda p: pq.write_table(
            frame.to_arrow().replace_schema_metadata({"dvao": '{"objectives": ["accuracy"]}'}),
            p,
            row_group_size=100,
        ),
        "pyarrow-int32": lambda p: pq.write_table(
            pa.table({"step": pa.array(range(500), pa.int32()), "r": [0.5] * 500}),
            p,
            row_group_size=64,
        ),
    }.items():
        path = tmp / f"{name}.parquet"
        write(path)
        out.append(path)
    return [*out, *sorted((ROOT / "sample_data").glob("*.parquet"))]


def test_footers_answer_as_pyarrow(tmp_path: Path) -> None:
    for path in _files(tmp_path):
        ours, theirs = read_footer(path), pq.ParquetFile(path).metadata
        assert isinstance(ours, Footer), path
        assert ours.num_rows == theirs.num_rows
        assert ours.num_row_groups == theirs.num_row_groups
        assert ours.num_columns == theirs.num_columns
        assert ours.metadata == theirs.metadata
        for j in range(theirs.num_columns):
            assert ours.schema.column(j).path == theirs.schema.column(j).path
        for i in range(theirs.num_row_groups):
            assert ours.row_group(i).num_rows == theirs.row_group(i).num_rows
            for j in range(theirs.num_columns):
                got = ours.row_group(i).column(j).statistics
                want = theirs.row_group(i).column(j).statistics
                assert (got is None) == (want is None), (path, i, j)
                if want is not None:
                    assert got.has_min_max == want.has_min_max, (path, i, j)
                    if want.has_min_max:
                        assert got.min == want.min, (path, i, j)
        if path.stem in ("polars", "pyarrow", "pyarrow-int32"):  # the step floors' question
            footer = read_footer(path)
            for i in range(footer.num_row_groups):
                assert footer.row_group(i).column(0).statistics.has_min_max
            assert "pyarrow" not in footer.__dict__, "answered without pyarrow"


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-3],
        lambda b: b[:-8] + (10**9).to_bytes(4, "little") + b"PAR1",
        lambda b: b[:-8] + b"\x05\x00\x00\x00PARE",
        lambda b: b[: len(b) // 2] + b[-8:],
        lambda b: b[:-40] + b"\xff" * 32 + b[-8:],
        lambda b: b"",
    ],
)
def test_a_footer_not_decoded_goes_to_pyarrow(tmp_path: Path, damage) -> None:
    good = tmp_path / "good.parquet"
    _frame(50).write_parquet(good)
    path = tmp_path / "bad.parquet"
    path.write_bytes(damage(good.read_bytes()))
    try:
        expected: object = pq.ParquetFile(path).metadata
    except Exception as err:
        expected = type(err)
    try:
        got: object = read_footer(path)
    except Exception as err:
        got = type(err)
    if isinstance(expected, type):
        assert got is expected
    else:
        assert got.num_rows == expected.num_rows  # decoded, or pyarrow's


def test_an_in_memory_part_is_pyarrows(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    _frame(10).write_parquet(path)
    footer = read_footer(path.read_bytes())
    assert not isinstance(footer, Footer)
    assert footer.num_rows == 10


def test_a_large_footer_is_pyarrows(tmp_path: Path) -> None:
    """Thousands of row groups: pyarrow decodes them faster than its import costs."""
    path = tmp_path / "many.parquet"
    pq.write_table(_frame(2000).to_arrow(), path, row_group_size=2)
    footer = read_footer(path)
    assert not isinstance(footer, Footer)
    assert footer.num_row_groups == 1000


def test_a_hostile_footer_is_refused_quickly(tmp_path: Path) -> None:
    """Lists nested 100,000 deep, or claiming more elements than the footer holds: refused
    by the decoder (then pyarrow, which refuses the file too)."""
    from dvao_cli.reader import footer as module

    for body in (b"\x19\x19" + b"\x19" * 100_000, b"\x19\xf9\xff\xff\xff\x0f\x00"):
        reader = module._Compact(body + b"\x00")
        with pytest.raises(module._Undecodable):
            reader.struct()

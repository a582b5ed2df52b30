"""Parquet footers without pyarrow, for the few facts the reader asks of them.

Importing pyarrow costs about 30 ms of a 0.3 s `dvao analyze LOG --json`, and the reader only
needs, from each file's footer: the row count, the row groups' row counts, the leaf columns'
paths, an integer column's minimum per row group (the step floors of `reader/stream.py`) and
the key-value metadata (`reader/spec.recorded_objectives`). `read_footer` decodes those from
the footer itself (Thrift compact protocol, `parquet.thrift`) and answers them exactly as
pyarrow's `FileMetaData` does; anything else, and any file it cannot decode completely
(encrypted, damaged, unusual statistics), goes to pyarrow, so errors read as before.
`tests/reader/test_footer.py` compares both on files from polars and pyarrow writers.
"""

from __future__ import annotations

import struct
from functools import cached_property
from pathlib import Path
from typing import Any

# A larger footer (thousands of row groups) decodes faster in pyarrow than its import costs
# here (about 15 us per column chunk in Python).
_MAX_FOOTER = 256 << 10
_MAX_DEPTH = 64

# physical types (parquet.thrift Type) whose minimum is read here, and their byte widths
_INT_WIDTH = {1: 4, 2: 8}  # INT32, INT64
_SIGNED_CONVERTED = {15, 16, 17, 18}  # INT_8 .. INT_64 (UINT_* sort unsigned: pyarrow's)


class _Undecodable(Exception):
    """Not decoded here: pyarrow's answer is the one to give."""


class _Compact:
    """A Thrift compact-protocol reader over one footer: every struct as {field id: value},
    lists as Python lists, binaries as bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Undecodable("footer ends early")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise _Undecodable("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        n = self.varint()
        if n > len(self.data) - self.pos:
            raise _Undecodable("binary past the footer")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def value(self, kind: int, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Undecodable("values nested too deep")
        if kind in (1, 2):  # a bool in a list or map: one byte
            return self.byte() == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            if len(self.data) - self.pos < 8:
                raise _Undecodable("double past the footer")
            self.pos += 8
            return struct.unpack_from("<d", self.data, self.pos - 8)[0]
        if kind == 8:
            return self.binary()
        if kind in (9, 10):
            head = self.byte()
            size, elem = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if size > len(self.data) - self.pos:  # every element takes a byte at least
                raise _Undecodable("list longer than the footer")
            return [self.value(elem, depth + 1) for _ in range(size)]
        if kind == 11:
            size = self.varint()
            if size == 0:
                return {}
            if 2 * size > len(self.data) - self.pos:
                raise _Undecodable("map longer than the footer")
            head = self.byte()
            return {
                self.value(head >> 4, depth + 1): self.value(head & 0x0F, depth + 1)
                for _ in range(size)
            }
        if kind == 12:
            return self.struct(depth + 1)
        raise _Undecodable(f"unknown thrift type {kind}")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        if depth > _MAX_DEPTH:
            raise _Undecodable("structs nested too deep")
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            if kind == 1:
                fields[last] = True
            elif kind == 2:
                fields[last] = False
            else:
                fields[last] = self.value(kind, depth)


class _Statistics:
    def __init__(self, minimum: int, maximum: int) -> None:
        self.has_min_max = True
        self.min = minimum
        self.max = maximum


class _Column:
    def __init__(self, footer: Footer, group: int, index: int) -> None:
        self._footer, self._group, self._index = footer, group, index

    @property
    def statistics(self) -> Any:
        footer = self._footer
        try:
            return footer._int_statistics(self._group, self._index)
        except (_Undecodable, KeyError, IndexError, TypeError, ValueError, AttributeError):
            return footer.pyarrow.row_group(self._group).column(self._index).statistics


class _RowGroup:
    def __init__(self, footer: Footer, index: int, fields: dict[int, Any]) -> None:
        self._footer, self._index = footer, index
        self.num_rows = int(fields[3])

    def column(self, index: int) -> _Column:
        if not 0 <= index < self._footer.num_columns:
            raise IndexError(index)
        return _Column(self._footer, self._index, index)


class _SchemaColumn:
    def __init__(self, path: str) -> None:
        self.path = path


class _Schema:
    def __init__(self, paths: list[str]) -> None:
        self._paths = paths

    def column(self, index: int) -> _SchemaColumn:
        return _SchemaColumn(self._paths[index])


class Footer:
    """The part of pyarrow's `FileMetaData` the reader uses (`num_rows`, `num_row_groups`,
    `num_columns`, `row_group(i).num_rows`, `row_group(i).column(j).statistics`,
    `schema.column(j).path`, `metadata`), decoded here; pyarrow's own for anything else."""

    def __init__(self, path: Path, fields: dict[int, Any]) -> None:
        self._path = path
        self._fields = fields
        self.data_end = 0  # the byte where the footer starts (`_decode` sets it)
        self.num_rows = int(fields[3])
        schema = fields[2]
        paths: list[str] = []
        leaves: list[dict[int, Any]] = []
        self._walk(schema, 0, [], paths, leaves, top=True)
        self.num_columns = len(paths)
        self._leaves = leaves
        self.schema = _Schema(paths)
        groups = fields.get(4, [])
        self._groups = groups
        self.num_row_groups = len(groups)
        self._row_groups = [_RowGroup(self, i, g) for i, g in enumerate(groups)]
        for group in groups:
            if len(group.get(1, ())) != self.num_columns:
                raise _Undecodable("a row group's columns do not match the schema")

    @staticmethod
    def _walk(
        schema: list[dict[int, Any]],
        at: int,
        prefix: list[str],
        paths: list[str],
        leaves: list[dict[int, Any]],
        top: bool = False,
    ) -> int:
        if at >= len(schema):
            raise _Undecodable("schema ends early")
        element = schema[at]
        children = int(element.get(5, 0))
        name = element[4].decode("utf-8")
        here = prefix if top else [*prefix, name]
        at += 1
        if children == 0 and not top:
            paths.append(".".join(here))
            leaves.append(element)
            return at
        for _ in range(children):
            at = Footer._walk(schema, at, here, paths, leaves)
        if top and at != len(schema):
            raise _Undecodable("schema elements left over")
        return at

    def row_group(self, index: int) -> _RowGroup:
        return self._row_groups[index]

    def chunk_ranges(self) -> list[tuple[int, str, int, int]]:
        """(row group, column path, first byte, size) of every column chunk held in this
        file (ColumnChunk.meta_data: dictionary_page_offset, data_page_offset and
        total_compressed_size)."""
        out = []
        for g, group in enumerate(self._groups):
            for j, chunk in enumerate(group[1]):
                if chunk.get(1) is not None:  # file_path: the chunk is in another file
                    continue
                meta = chunk[3]
                start = _chunk_start(meta.get(11), meta[9])
                out.append((g, self.schema.column(j).path, start, int(meta[7])))
        return out

    @cached_property
    def pyarrow(self) -> Any:
        return parquet_file(self._path).metadata

    @property
    def metadata(self) -> dict[bytes, bytes] | None:
        """The file's key-value metadata (pyarrow's `FileMetaData.metadata`)."""
        pairs = self._fields.get(5)
        if pairs is None:
            return None
        return {kv[1]: kv.get(2, b"") for kv in pairs}

    def _int_statistics(self, group: int, index: int) -> _Statistics:
        """The column's minimum and maximum in the row group where it is a signed integer with exact
        new-style statistics (what polars and pyarrow write); _Undecodable otherwise."""
        created_by = self._fields.get(6, b"")
        if not isinstance(created_by, bytes) or created_by.startswith(b"parquet-mr"):
            raise _Undecodable("a writer whose statistics pyarrow judges by version")
        leaf = self._leaves[index]
        width = _INT_WIDTH.get(leaf.get(1, -1))
        if width is None:
            raise _Undecodable("not an integer column")
        converted, logical = leaf.get(6), leaf.get(10)
        if converted is not None and converted not in _SIGNED_CONVERTED:
            raise _Undecodable("not a signed integer")
        if logical is not None and not (
            set(logical) == {10} and logical[10].get(2) is True
        ):  # LogicalType.INTEGER(isSigned=true), or none
            raise _Undecodable("not a signed integer")
        chunk = self._groups[group][1][index]
        stats = chunk.get(3, {}).get(12)
        if not stats or 5 not in stats or 6 not in stats:  # min_value and max_value
            raise _Undecodable("no new-style statistics")
        low = stats[6]
        if len(low) != width or len(stats[5]) != width:
            raise _Undecodable("statistics of the wrong width")
        return _Statistics(
            int.from_bytes(low, "little", signed=True),
            int.from_bytes(stats[5], "little", signed=True),
        )


def parquet_file(part: Path | bytes) -> Any:
    """A pyarrow ParquetFile over a part: a file, or a Parquet file held in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.ParquetFile(str(part) if isinstance(part, Path) else pa.BufferReader(part))


def decode_footer(path: Path) -> Footer:
    """The footer of the Parquet file at `path`, decoded here without pyarrow (or numpy); an
    exception for a file it cannot decode (for callers that must not import pyarrow:
    `analysis.workers.start_early`). `read_footer` falls back to pyarrow instead."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if size < 12:
            raise _Undecodable("too small for Parquet")
        f.seek(size - 8)
        tail = f.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or not 0 < length <= min(size - 12, _MAX_FOOTER):
            raise _Undecodable("not a plain Parquet footer")
        f.seek(size - 8 - length)
        data = f.read(length)
    reader = _Compact(data)
    fields = reader.struct()
    if not isinstance(fields.get(2), list) or not isinstance(fields.get(3), int):
        raise _Undecodable("no schema or row count")
    if 8 in fields:  # encryption_algorithm: a signed plaintext footer, for pyarrow
        raise _Undecodable("encrypted")
    footer = Footer(path, fields)
    footer.data_end = size - 8 - length  # the column chunks lie before the footer
    return footer


def _chunk_start(dictionary: int | None, data: int) -> int:
    """A column chunk's first byte: its dictionary page when it has one before its data."""
    return int(dictionary) if dictionary is not None and 0 < dictionary < data else int(data)


def check_pages(path: Path) -> None:
    """InputError when a column chunk that the footer lists lies outside the file's data
    (between the leading magic and the footer): a file cut short or spliced whose footer
    survived. polars would panic reading its pages, printing a Rust panic (and with
    RUST_BACKTRACE set, a backtrace) on stderr before any error could be caught. Anything
    this cannot judge (no readable footer) is left to the reader, whose error names it."""
    facts = _decoded_chunks(path) or _pyarrow_chunks(path)
    if facts is None:
        return
    data_end, chunks = facts
    for group, column, start, size in chunks:
        if start < 4 or size < 0 or start + size > data_end:
            from dvao_cli.errors import InputError

            raise InputError(
                f"cannot read: a damaged file (column '{column}' of row group {group} is "
                f"listed at bytes {start}..{start + size}, but the data ends at byte "
                f"{data_end}: was the file cut short?)",
                path=path,
            )


def _decoded_chunks(path: Path) -> tuple[int, list[tuple[int, str, int, int]]] | None:
    try:
        footer = decode_footer(path)
        return footer.data_end, footer.chunk_ranges()
    except (_Undecodable, KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    except (RecursionError, OSError):
        return None


def _pyarrow_chunks(path: Path) -> tuple[int, list[tuple[int, str, int, int]]] | None:
    """check_pages' facts from pyarrow's reading of the footer (one this module does not
    decode); None when there is no footer to judge by."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(size - 8)
            data_end = size - 8 - int.from_bytes(f.read(4), "little")
        meta = parquet_file(path).metadata
        chunks = []
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for j in range(group.num_columns):
                column = group.column(j)
                if column.file_path:
                    continue
                start = _chunk_start(column.dictionary_page_offset, column.data_page_offset)
                chunks.append((g, column.path_in_schema, start, column.total_compressed_size))
    except Exception:  # noqa: BLE001 - the reader names what is wrong with the file
        return None
    return data_end, chunks


def read_footer(part: Path | bytes) -> Any:
    """A part's footer: decoded here for a plain file, else pyarrow's `FileMetaData`."""
    if isinstance(part, Path):
        try:
            return decode_footer(part)
        except (_Undecodable, KeyError, IndexError, TypeError, ValueError, AttributeError):
            pass
        except RecursionError:  # a schema nested past Python's stack
            pass
        except OSError:
            pass  # pyarrow names the error
    return parquet_file(part).metadata

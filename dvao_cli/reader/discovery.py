"""Which files a LOG argument names: files, folders (recursively, hive partitions included) and
globs, and what the user asked to read them as (`LogSource`).

Discovery opens no file. It also lists the files it passed over inside the named folders
(hidden or `_` files, files that are not Parquet): commands that write must not replace those
either.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvao_cli.errors import InputError, UsageError, not_found

LOG_FORMATS = ("auto", "dvao", "trl", "verl", "swift", "table")  # `--format` of analyze, plot
# what a LOG may be, for messages about a file or folder dvao does not read
READS = (
    "dvao reads dvao logs (Parquet files: .parquet, folders of them, globs), TRL "
    "completions_<step>.parquet files (or their completions/ folder), verl rollout dumps "
    "(<step>.jsonl), ms-swift completions.jsonl files and tables of rollouts "
    "(--format table: JSON lines, CSV or Parquet)"
)


def nothing_to_read(
    directory: Path, what: str, reads: str = READS, where: str = "here"
) -> InputError:
    """The error for a folder holding no `what`: "empty directory" only when it holds nothing
    at all; else what it holds, and what is read (`reads`); `where` says where was looked
    ("here or below")."""
    from dvao_cli.errors import counted

    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return InputError(f"empty directory: no {what} in it", path=directory)
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    return InputError(
        f"no {what} {where} (found {counted(len(entries), 'entry', 'entries')}: {shown}); {reads}",
        path=directory,
    )


@dataclass(frozen=True)
class LogSource:
    """The LOG arguments and how to read them.

    `format`: "dvao" (the dvao log format), a trainer ("trl", "verl", "swift": its logs read in
    place, as `dvao import` reads them) or "auto" (detect, as `dvao import` does). `group_size`
    and `ragged` are the importer's grouping options (trainer logs only), and so are
    `group_keys`, the trainer's columns that make a group within a step (`--group-key`).
    `option` is the command's option naming the format, as messages name it. `table` names a
    table's columns (`importers.table.TableOptions`: --step, --group, --advantage; they make
    "auto" a table). `allow_large_groups` keeps groups that look wrongly built
    (`dvao_cli.reader.plausible`) as warnings instead of refusing them, for any log.
    """

    paths: tuple[str | Path, ...]
    format: str = "auto"
    group_size: int | None = None
    ragged: bool = False
    option: str = "--format"
    table: Any = None
    group_keys: tuple[str, ...] = ()
    allow_large_groups: bool = False

    @classmethod
    def of(cls, paths: str | Path | Sequence[str | Path] | LogSource) -> LogSource:
        if isinstance(paths, LogSource):
            return paths
        if isinstance(paths, (str, Path)):
            return cls((paths,))
        return cls(tuple(paths))


@dataclass(frozen=True)
class Discovered:
    """The Parquet files of a dvao log, in sorted path order."""

    files: list[Path]
    skipped: list[Path] = field(default_factory=list)  # files in the named folders not read
    hive: bool = False  # a `key=value` folder (hive partitioning) was seen


def is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _files_under(directory: Path) -> tuple[list[Path], list[Path]]:
    """(Parquet part files, other files) below `directory`; hidden and `_` paths (temp files,
    _SUCCESS markers) are among the others."""
    files, others = [], []
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(directory).parts
        hidden = any(part.startswith((".", "_")) for part in rel)
        (files if path.suffix == ".parquet" and not hidden else others).append(path)
    return sorted(files), sorted(others)


def _has_hive_folder(directory: Path, files: list[Path]) -> bool:
    return any("=" in part for f in files for part in f.relative_to(directory).parts[:-1])


def resolve_paths(paths: str | Path | Sequence[str | Path]) -> Discovered:
    """Expand files, directories (recursively, hive-partitioned included) and globs."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UsageError("no LOG given")
    files: list[Path] = []
    skipped: list[Path] = []
    hive = False
    for raw in paths:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            found, others = _files_under(path)
            if not found:
                raise nothing_to_read(path, "Parquet files")
            hive = hive or _has_hive_folder(path, found)
            files.extend(found)
            skipped.extend(others)
        elif path.is_file():
            files.append(path)
        elif is_glob(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            found = [p for p in matched if p.is_file()]
            for folder in (p for p in matched if p.is_dir()):
                inside, others = _files_under(folder)
                found.extend(inside)
                skipped.extend(others)
            if not found:
                raise InputError("the pattern matches no file", path=text)
            files.extend(sorted(found))
        else:
            raise not_found(text)
    # one file named twice (under any spelling, or through a link) is read once, under the
    # name it is first given; order is sorted path order
    first: dict[Path, Path] = {}
    for path in files:
        first.setdefault(path.resolve(), path)
    unique = sorted(first.values(), key=lambda p: str(p))
    passed = sorted({p for p in skipped if p.resolve() not in first}, key=lambda p: str(p))
    return Discovered(files=unique, skipped=passed, hive=hive)


def hive_values(path: Path) -> dict[str, str]:
    """`.../step=3/part.parquet` -> {"step": "3"} (the innermost folder wins)."""
    values: dict[str, str] = {}
    for part in path.parts[:-1]:
        if "=" in part:
            key, _, value = part.partition("=")
            values[key] = value
    return values

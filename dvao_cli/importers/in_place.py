"""Trainer logs read in place: a TRL `completions/` folder, a verl `rollout_data_dir`, an
ms-swift `completions.jsonl`, named directly as LOG (`dvao analyze`, `dvao plot`).

The layout is detected as `dvao import` detects it (dvao_cli/importers: one definition), and the
log is imported exactly as `dvao import` would import it, into a Parquet file held in memory
(without the text columns, which no analysis reads): nothing is written anywhere, so nothing
is left behind by an error or a kill. The numbers are those of `dvao import` then analyze.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dvao_cli.errors import UsageError
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.discovery import LOG_FORMATS, LogSource
from dvao_cli.reader.footer import parquet_file
from dvao_cli.reader.format import GROUP

if TYPE_CHECKING:
    from dvao_cli.importers.run import InMemoryImport

TRAINER_FORMATS = ("trl", "verl", "swift", "table")


def is_trainer_log(path: Path) -> bool:
    """Whether `path` is a trainer's log, as `dvao import auto` finds one (which trainer, and
    whether the files mix trainers, is `dvao_cli.importers.find_files`' to say).

    A `.jsonl` file, a Parquet file named like TRL's, or a folder holding files named as a
    trainer names them (itself or its completions/ subfolders), or one a few levels below it
    (`detect.nearby_logs`) when it holds no Parquet file itself. A Parquet file, or a folder of
    them, with a `group_id` column is a dvao log even when named like TRL's completions files.
    """
    from dvao_cli.importers.detect import nearby_logs

    if path.is_file() or not path.is_dir():
        return _is_trainer_folder(path)
    if _is_trainer_folder(path):
        return True
    # a folder holding no dvao log Parquet file of its own, with a trainer's log a few levels
    # down (a repository root, runs/x/rollout_data/): read in place, the import says which
    if any(p.suffix == ".parquet" and p.is_file() for p in path.iterdir()):
        return False
    return bool(nearby_logs(path, accept=_is_trainer_folder)[0])


def _is_trainer_folder(path: Path) -> bool:
    """`is_trainer_log` without the search below a folder."""
    from dvao_cli.importers.detect import classify, trainer_folder

    if path.is_file():
        return path.suffix == ".jsonl" or (classify(path) == "trl" and not _has_group_id(path))
    if not path.is_dir():
        return False
    kinds = {p: classify(p) for p in trainer_folder(path)}
    found = [p for p, kind in kinds.items() if kind is not None]
    if not found:
        return False
    return any(kinds[p] != "trl" for p in found) or not _has_group_id(found[0])


def _has_group_id(path: Path) -> bool:
    try:
        return GROUP in parquet_file(path).schema_arrow.names
    except Exception:  # unreadable: the reader that opens it says why
        return False


def resolve_format(source: LogSource) -> str:
    """ "dvao" or the trainer whose log `source` names, from `source.format` ("auto": detect)."""
    fmt = source.format
    if fmt not in LOG_FORMATS:
        raise UsageError(
            f"{source.option} '{fmt}' is not a log format" + did_you_mean(fmt, list(LOG_FORMATS))
        )
    if fmt == "auto" and source.table is not None:  # --step, --group: a table's columns
        fmt = "table"
    if fmt == "dvao":
        return "dvao"
    if fmt in TRAINER_FORMATS:
        if len(source.paths) != 1:
            glob = " or a glob in quotes, which the shell leaves to dvao" if fmt == "table" else ""
            raise UsageError(
                f"{source.option} {fmt} reads one trainer log (a folder or a file{glob}), "
                f"not {len(source.paths)} LOG arguments"
            )
        return fmt
    if len(source.paths) != 1:
        return "dvao"
    return "auto" if is_trainer_log(Path(source.paths[0])) else "dvao"


def import_trainer_log(
    source: LogSource, fmt: str, objectives: Sequence[str] | None = None
) -> InMemoryImport:
    """Import the trainer log `source` names into memory, as `dvao import` would; the reader
    (`reader.opening.open_log`) opens the result as a dvao log.

    `objectives` are the importer's `--objective` (reward columns of the trainer's log); the
    spec's objectives are those the import recorded. `fmt` is a trainer or "auto".
    """
    from dvao_cli.importers import import_in_memory

    return import_in_memory(
        str(source.paths[0]),
        fmt,
        objectives=list(objectives) if objectives else None,
        group_size=source.group_size,
        ragged=source.ragged,
        table=source.table,
        group_keys=source.group_keys,
        allow_large_groups=source.allow_large_groups,
        hint=lambda name: f"{source.option} {name}",
    )

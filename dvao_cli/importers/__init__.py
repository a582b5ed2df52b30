"""`dvao import`: bring a trainer's completion logs into the dvao log format.

    run_import(source, out, "trl" | "verl" | "swift" | "auto", objectives=..., group_size=...,
               ragged=...) -> ImportReport
    import_in_memory(source, ...) -> InMemoryImport   (read in place by analyze and plot)

Finds the trainer's files under SOURCE (a directory or one file), detects the trainer when
asked (`auto`), then streams the files one at a time into OUT (Parquet, written atomically),
or into a Parquet file held in memory without the text columns.
Every problem is an `InputError` (bad data: exit 2) or a `UsageError` (bad option: exit 2).

    detect.py           which trainer's file a path is, by name (light: the reader asks it)
    run.py              find_files, run_import, import_in_memory
    trl.py, verl.py, swift.py   each trainer's files -> Batches
    table.py            any trainer's table (JSON lines, CSV, Parquet) -> one Batch
    source.py           source_file, source_row: the way back to the trainer's rows
    batch.py            the log format's extra columns, value kinds, Batch, Trainer, ImportReport
    values.py           value coercion and kinds
    layout.py           the output schema: objectives, extra columns, types
    groups.py           group rebuilding within a step
    columns.py          one batch's columns in output order
    stream.py           the streaming import into one Parquet file
    in_place.py         trainer logs read in place (analyze, plot)
"""

from typing import Any

from dvao_cli.importers.detect import PATTERNS, SUBDIRS, classify, trainer_folder

# the importing machinery (pyarrow, the trainers' readers) loads on first use
_LAZY = (
    "FORMATS",
    "TRAINERS",
    "ImportReport",
    "InMemoryImport",
    "classify_file",
    "detect",
    "find_files",
    "format_label",
    "import_in_memory",
    "run_import",
)

__all__ = ["PATTERNS", "SUBDIRS", "classify", "trainer_folder", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dvao_cli.importers' has no attribute '{name}'")
    from dvao_cli.importers import run

    return getattr(run, name)

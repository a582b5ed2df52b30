"""Finding a trainer's files under SOURCE and importing them: `run_import` (into a Parquet
file, atomically), `import_in_memory` (into a Parquet file held in memory, for reading in
place). See the package docstring.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvao_cli.errors import DvaoInfo, InputError, UsageError, not_found
from dvao_cli.importers import swift, trl, verl
from dvao_cli.importers import table as tables
from dvao_cli.importers.batch import Batch, ImportReport, Trainer
from dvao_cli.importers.detect import (
    PATTERNS,
    SEARCH_DEPTH,
    SEARCH_ENTRIES,
    classify,
    nearby_logs,
    trainer_folder,
)
from dvao_cli.importers.layout import Survey, survey_batches, survey_schemas
from dvao_cli.importers.stream import Replan, import_batches
from dvao_cli.objective_names import did_you_mean
from dvao_cli.reader.discovery import nothing_to_read

FORMATS = ("trl", "verl", "swift", "table", "auto")
# the trainers detected from their files' names (a table is only ever named: `table`)
TRAINERS: dict[str, Trainer] = {"trl": trl.TRAINER, "verl": verl.TRAINER, "swift": swift.TRAINER}


def _label(fmt: str) -> str:
    return TRAINERS[fmt].label if fmt in TRAINERS else tables.TRAINER.label


format_label = _label  # how reports name a format ("TRL", "ms-swift", "table")


def _import_hint(fmt: str) -> str:
    """How `dvao import` names a format (messages of the other commands name their option)."""
    return f"dvao import {fmt} SOURCE"


def classify_file(path: Path, fmt: str, hint: Callable[[str], str] = _import_hint) -> str:
    """A single SOURCE file: by name, then by content for .parquet/.jsonl."""
    if fmt != "auto":
        return fmt
    kind = classify(path)
    if kind == "swift" or (kind is None and path.suffix == ".jsonl"):
        columnar = swift.first_line_is_columnar(path)
        if columnar is None:
            raise InputError("empty file: no JSON lines in it", path=path)
        return "swift" if columnar else "verl"
    if kind is not None:
        return kind
    if path.suffix == ".parquet":
        return "trl"
    raise InputError(
        "cannot tell which trainer wrote this file (expected "
        + ", ".join(f"{PATTERNS[f]} ({_label(f)})" for f in TRAINERS)
        + "); name the format: "
        + hint("trl|verl|swift"),
        path=path,
    )


def find_files(
    source: str | Path,
    fmt: str = "auto",
    out: str | Path | None = None,
    *,
    hint: Callable[[str], str] = _import_hint,
) -> tuple[str, list[Path], list[Path]]:
    """The trainer, its files under SOURCE in step order, and the other files found beside them
    (not read). `hint(fmt)` is how messages tell the user to name a format."""
    if fmt not in FORMATS:
        raise UsageError(
            f"unknown format '{fmt}'"
            + did_you_mean(fmt, list(FORMATS))
            + "; choose trl, verl, swift, table or auto"
        )
    if fmt == "table":
        files = tables.find_files(source)
        if out is not None and any(p.resolve() == Path(out).resolve() for p in files):
            raise UsageError(f"OUT {out} is a file of the table itself; write elsewhere")
        return "table", files, []
    path = Path(source)
    out_path = Path(out).resolve() if out is not None else None
    if not path.is_file() and not path.is_dir():
        raise not_found(path)
    if path.is_file():
        if out_path is not None and path.resolve() == out_path:
            raise UsageError(f"OUT {out} is the SOURCE file itself; write elsewhere")
        return classify_file(path, fmt, hint), [path], []

    candidates = trainer_folder(path, out_path)
    if not candidates:  # a trainer's log a few levels down (a repository root, runs/x/...)
        path, candidates = _nearby(path, out_path)

    kinds = {p: classify(p) for p in candidates}
    # a completions.jsonl that is not columnar is not ms-swift's
    for p, kind in kinds.items():
        if kind == "swift" and swift.first_line_is_columnar(p) is False:
            raise InputError(
                "not an ms-swift log: the first line's values are not lists "
                "(ms-swift writes one line per step holding columns as lists)",
                path=p,
                line=1,
            )
    found = Counter(k for k in kinds.values() if k is not None)
    if fmt == "auto":
        order = list(TRAINERS)
        fmt = max(found, key=lambda k: (found[k], -order.index(k)))
    if fmt not in found:
        other = next(iter(found))
        raise InputError(
            f"no {_label(fmt)} files here ({PATTERNS[fmt]}); this looks like a {_label(other)} "
            f"log: {hint(other)}",
            path=path,
        )
    for p, kind in kinds.items():
        if kind is not None and kind != fmt:
            raise InputError(
                f"a {_label(kind)} file ({PATTERNS[kind]}) in a {_label(fmt)} log directory; "
                "one import reads one trainer's files: move it away or import it separately",
                path=p,
            )
    files = [p for p, kind in kinds.items() if kind == fmt]
    others = [p for p, kind in kinds.items() if kind != fmt]
    step_of = {"trl": trl.step_of, "verl": verl.step_of}.get(fmt)
    if step_of is not None:  # step order, not name order: steps past 99999 or unpadded names
        files.sort(key=lambda p: (step_of(p) if step_of(p) is not None else -1, p.name))
    return fmt, files, others


def _nearby(path: Path, out_path: Path | None) -> tuple[Path, list[Path]]:
    """The one folder below `path` holding a trainer's log, and its files; said on stderr.
    Several are an InputError naming them, none one saying where was looked."""
    found, stopped = nearby_logs(path)
    if len(found) > 1:
        shown = ", ".join(str(p) for p in found[:8]) + (" ..." if len(found) > 8 else "")
        raise InputError(
            f"{len(found)} trainer logs below this folder: {shown}; name the one to read",
            path=path,
        )
    if not found:
        bound = (
            f"stopped after {SEARCH_ENTRIES:,} entries"
            if stopped
            else f"{SEARCH_DEPTH} levels down, leaving out hidden folders and virtual environments"
        )
        raise nothing_to_read(
            path,
            "trainer log files",
            "looked for "
            + ", ".join(f"{PATTERNS[f]} ({_label(f)})" for f in TRAINERS)
            + f"; {bound}",
            where="here or below",
        )
    warnings.warn(f"{path}: reading the trainer log found in {found[0]}", DvaoInfo, stacklevel=2)
    return found[0], trainer_folder(found[0], out_path)


def detect(source: str | Path) -> str:
    """The trainer that wrote SOURCE ('trl', 'verl' or 'swift')."""
    return find_files(source, "auto")[0]


def _check_grouping(group_size: int | None, ragged: bool) -> None:
    if group_size is not None and ragged:
        raise UsageError(
            "--group-size and --ragged exclude each other: fixed blocks are never ragged"
        )
    if group_size is not None and group_size < 1:
        raise UsageError(f"--group-size must be at least 1, not {group_size}")


def _batches(
    fmt: str,
    files: list[Path],
    report: ImportReport,
    objectives: list[str] | None,
    table: tables.TableOptions | None,
    on_file: Callable[[int, int], None] | None = None,
) -> tuple[Trainer, Iterator[Batch]]:
    """The trainer and its batches; a table is read whole (its Trainer depends on its
    columns)."""
    if fmt != "table":
        return TRAINERS[fmt], _stream(fmt, files, report, on_file)
    assert table is not None
    batch = tables.read_table(files, table, objectives or ())
    if on_file is not None:
        on_file(len(files), len(files))
    return tables.trainer_for(batch, table), iter([batch])


def _table_done(report: ImportReport, table: tables.TableOptions | None) -> None:
    """A table imported: its grouping in the report, and a line saying when it has no step."""
    if report.format != "table" or table is None:
        return
    if report.grouping.startswith("rows"):
        keys = [table.step or "one step", *table.group]
        report.grouping = f"rows with the same ({', '.join(keys)})"
    if table.step is None:
        warnings.warn(
            f"{report.source}: no --step: the table is read as one step (step 0); name its step "
            "column with --step COL",
            DvaoInfo,
            stacklevel=2,
        )


def _stream(
    fmt: str,
    files: list[Path],
    report: ImportReport,
    on_file: Callable[[int, int], None] | None = None,
) -> Iterator[Batch]:
    """The batches of a trainer's files, in order; `on_file(done, total)` as files (TRL, verl)
    or bytes (ms-swift) are read."""
    if fmt == "swift":
        total = sum(p.stat().st_size for p in files)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if on_file is not None:
                on_file(min(done, total), total)

        for path in files:
            yield from swift.batches(path, report.skipped, advance)
        return
    inner = trl.batches(files) if fmt == "trl" else verl.batches(files, report.skipped)
    for i, batch in enumerate(inner, start=1):
        yield batch
        if on_file is not None:
            on_file(i, len(files))


def survey(
    fmt: str,
    files: list[Path],
    objectives: list[str] | None = None,
    table: tables.TableOptions | None = None,
) -> Survey:
    """Every column of the log over all its files, before any row is written: TRL from the
    Parquet schemas (no row read), verl, ms-swift and tables from a first pass over their rows
    (docs/performance.md: its cost)."""
    if fmt == "trl":
        return survey_schemas(trl.schemas(files), ("step", "prompt"))
    report = ImportReport(format=fmt, source="", out="")
    return survey_batches(_batches(fmt, files, report, objectives, table)[1])


def _import(
    fmt: str,
    files: list[Path],
    report: ImportReport,
    tmp: Path | None,
    on_file: Callable[[int, int], None] | None,
    table: tables.TableOptions | None,
    objectives: list[str] | None = None,
    **options: Any,
) -> bytes | None:
    """`import_batches` over the trainer's files, its objectives and types from the whole log:
    TRL's from the schemas first; verl's, ms-swift's and a table's from the batches as they
    come, and in the rare log where a later batch changes them (a reward int, null or absent
    in the batches before), from a first pass over every file, then imported again (a table
    is one batch: never)."""
    if table is not None and table.group:  # a table's --group: group keys like --group-key
        keys = (*table.group, *options.get("group_keys", ()))
        options["group_keys"] = tuple(dict.fromkeys(keys))
    initial = copy.deepcopy(report)
    found, complete = (survey(fmt, files), True) if fmt == "trl" else (Survey(), False)
    trainer, batches = _batches(fmt, files, report, objectives, table, on_file)
    try:
        return import_batches(
            trainer, batches, tmp, report,
            objectives=objectives, survey=found, complete=complete, **options,
        )  # fmt: skip
    except Replan:
        report.__dict__.update(copy.deepcopy(initial).__dict__)
        found = survey(fmt, files, objectives, table)
        trainer, batches = _batches(fmt, files, report, objectives, table, on_file)
        return import_batches(
            trainer, batches, tmp, report,
            objectives=objectives, survey=found, complete=True, **options,
        )  # fmt: skip


def run_import(
    source: str | Path,
    out: str | Path,
    fmt: str = "auto",
    *,
    objectives: list[str] | None = None,
    group_size: int | None = None,
    ragged: bool = False,
    table: tables.TableOptions | None = None,
    group_keys: list[str] | tuple[str, ...] = (),
    allow_large_groups: bool = False,
    on_file: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import SOURCE into the Parquet file OUT (atomically); return what was read.

    `table` names a table's columns (format "table"). `group_keys`: the trainer's columns
    that make a group within a step (`--group-key`); `allow_large_groups`: keep implausible
    groups (`reader.plausible`) as warnings in the report instead of refusing them.
    `on_file(done, total)` is called as files (TRL, verl) or bytes (ms-swift) are read.
    """
    from dvao_cli.io import atomic_path, check_outputs, input_files

    _check_grouping(group_size, ragged)
    fmt, table = tables.check_options(table, fmt, group_size)
    # never over a file read or skipped, nor a name a trainer's discovery reads in the source
    # folder (completions_<step>.parquet, <step>.jsonl; a table's files): it would be imported
    # with it next time
    scanned = [source] if Path(source).is_dir() else []
    kinds: tuple[str, ...] = ("completions_*.parquet", "*.jsonl")
    if fmt == "table":
        kinds = tuple(f"*{suffix}" for suffix in tables.SUFFIXES)
    check_outputs([out], input_files([source]), scanned=scanned, kinds=kinds, option="-o")
    fmt, files, others = find_files(source, fmt, out)
    report = ImportReport(format=fmt, source=str(source), out=str(out), files=len(files))
    if others:
        report.skipped["other files ignored"] = len(others)
    with atomic_path(out) as tmp:
        _import(
            fmt,
            files,
            report,
            tmp,
            on_file,
            table,
            objectives=objectives,
            group_size=group_size,
            ragged=ragged,
            group_keys=group_keys,
            allow_large_groups=allow_large_groups,
        )
    _table_done(report, table)
    return report


@dataclass
class InMemoryImport:
    """A trainer's log imported into memory (for reading in place: nothing is written)."""

    parquet: bytes  # the dvao log without its text columns (prompt, completion, text extras)
    report: ImportReport
    files: list[Path]  # the trainer's files read
    others: list[Path]  # the files found beside them, not read


def import_in_memory(
    source: str | Path,
    fmt: str = "auto",
    *,
    objectives: list[str] | None = None,
    group_size: int | None = None,
    ragged: bool = False,
    table: tables.TableOptions | None = None,
    group_keys: list[str] | tuple[str, ...] = (),
    allow_large_groups: bool = False,
    hint: Callable[[str], str] = _import_hint,
) -> InMemoryImport:
    """Import SOURCE exactly as `run_import` does, into a Parquet file held in memory, leaving
    out the text columns that no analysis reads. `hint(fmt)` is how messages name a format."""
    _check_grouping(group_size, ragged)
    fmt, table = tables.check_options(table, fmt, group_size)
    fmt, files, others = find_files(source, fmt, hint=hint)
    report = ImportReport(format=fmt, source=str(source), out="", files=len(files))
    parquet = _import(
        fmt,
        files,
        report,
        None,
        None,
        table,
        objectives=objectives,
        group_size=group_size,
        ragged=ragged,
        group_keys=group_keys,
        allow_large_groups=allow_large_groups,
    )
    assert parquet is not None
    _table_done(report, table)
    return InMemoryImport(parquet=parquet, report=report, files=files, others=others)

"""What every trainer importer shares: the log format's extra columns, value kinds, `Batch`,
`Trainer` and `ImportReport`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvao_cli.errors import LogWarning

# Columns of the dvao log format beyond those of dvao_cli.reader.format (docs/log-format.md).
PROMPT = "prompt"
COMPLETION = "completion"
RENAME_PREFIX = "raw_"  # a trainer column whose name is reserved is kept as raw_<name>
ROWS_PER_ROW_GROUP = 65_536
BYTES_PER_WRITE = 64 << 20  # flush the write buffer at this size (text dominates the bytes)

# Kinds of a column, decided from its values (JSON) or its Arrow type (Parquet).
FLOAT, INT, BOOL, STRING, MIXED, NULL, OTHER = (
    "float",
    "int",
    "bool",
    "string",
    "mixed",
    "null",
    "other",
)
NUMERIC_KINDS = (FLOAT, INT, BOOL, NULL)


@dataclass
class Batch:
    """One unit of a trainer's dump, with its rows in file order.

    `columns` maps every other column (completion, rewards, advantages, extras) to a list of
    Python values (JSON formats) or an Arrow array (Parquet), each of length `len(step)`.
    `lines[i]` is the line of row i in the file (verl); `line` the line of the whole batch
    (ms-swift). They serve error messages, and say where each row is in its file (the output's
    `source_row`, see `importers.source`): with neither, row i of the batch is row i of the
    file, unless `source_rows` says otherwise (a CSV file: its data rows). A batch of several
    files (a table) names them in `files`, row i being in `files[file_of_row[i]]`.
    """

    path: Path
    step: list[int]
    prompt: list[Any]
    columns: dict[str, Any]
    lines: list[int] | None = None
    line: int | None = None
    source_rows: Sequence[int] | None = None
    files: list[Path] | None = None
    file_of_row: Sequence[int] | None = None

    @property
    def rows(self) -> int:
        return len(self.step)

    def where(self, row: int | None = None) -> dict[str, Any]:
        """`path=`/`line=` keyword arguments for an error about `row` (or the whole batch)."""
        path = self.path
        if self.files is not None and self.file_of_row is not None and row is not None:
            path = self.files[self.file_of_row[row]]
        if self.lines is not None and row is not None and row < len(self.lines):
            return {"path": path, "line": self.lines[row]}
        return {"path": path, "line": self.line}


@dataclass
class Trainer:
    """How one trainer's columns map onto the dvao log format."""

    name: str  # "trl", "verl", "swift"
    label: str  # "TRL", "verl", "ms-swift"
    grouping: str  # "runs": consecutive rows with one prompt; "key": same (step, prompt) anywhere
    completion_key: str | None  # the trainer's column that becomes `completion`
    advantage_key: str | None  # the trainer's column that becomes `logged_advantage`
    not_rewards: frozenset[str]  # known columns that are never objectives by default
    text_keys: frozenset[str]  # known columns always kept as text
    objective_kinds: tuple[str, ...]  # kinds (over the whole log) that make a default objective
    lists: bool = False  # one line holds many responses as lists (ms-swift): source_index
    prompt_key: str = "prompt"  # the trainer's prompt column (a `--group-key` may name it)
    group_key: str | None = None  # a column the trainer writes that is the true group key


@dataclass
class ImportReport:
    """What an import read and wrote (rendered by the command, also as --json)."""

    format: str
    source: str
    out: str
    files: int = 0
    batches: int = 0
    rows: int = 0
    steps: int = 0
    groups: int = 0
    group_sizes: dict[int, int] = field(default_factory=dict)  # size -> number of groups
    objectives: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    logged_advantage: bool = False
    renamed: dict[str, str] = field(default_factory=dict)  # trainer column -> output column
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (not rows)
    missing_rewards: dict[str, int] = field(default_factory=dict)  # objective -> null/NaN rows
    grouping: str = ""
    group_keys: list[str] = field(default_factory=list)  # the columns groups were keyed on
    reordered: bool = False
    warnings: list[LogWarning] = field(default_factory=list)  # e.g. oversized_group

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "out": self.out,
            "files": self.files,
            "batches": self.batches,
            "rows": self.rows,
            "steps": self.steps,
            "groups": self.groups,
            "group_sizes": {str(k): v for k, v in sorted(self.group_sizes.items())},
            "objectives": list(self.objectives),
            "extra_columns": list(self.extra_columns),
            "logged_advantage": self.logged_advantage,
            "renamed": dict(self.renamed),
            "dropped": dict(self.dropped),
            "skipped": dict(self.skipped),
            "missing_rewards": dict(self.missing_rewards),
            "grouping": self.grouping,
            "group_keys": list(self.group_keys),
            "reordered": self.reordered,
            "warnings": [w.to_json() for w in self.warnings],
        }

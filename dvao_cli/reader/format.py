"""The dvao rollout-log format: column names, reserved names and how dtypes are judged.

A log is one row per sampled response: `step` (integer), `group_id` (integer or string; the
responses to one prompt at one step share it), optional `sample_id` (integer, the response's
position in its group), `prompt`, `completion`, `logged_advantage`, and one numeric column per
reward objective. The long layout holds `objective` + `reward` columns instead, one row per
response and objective. See docs/log-format.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

STEP = "step"
GROUP = "group_id"
SAMPLE = "sample_id"
LOGGED = "logged_advantage"
ROW = "row"  # added by the reader: the 0-based position of a response in the log
# Where a response is in the trainer's own files (written by `dvao import`, passed through to
# advantages.parquet): the file, relative to the folder the user named, and its 0-based row
# there (a JSON-lines file: its line); ms-swift's lines hold many responses: the list index.
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"
SOURCE_INDEX = "source_index"
SOURCE_COLUMNS = (SOURCE_FILE, SOURCE_ROW, SOURCE_INDEX)
LONG_OBJECTIVE = "objective"
LONG_REWARD = "reward"
RESERVED = (
    STEP,
    GROUP,
    SAMPLE,
    "prompt",
    "completion",
    LOGGED,
    LONG_OBJECTIVE,
    LONG_REWARD,
    ROW,
    *SOURCE_COLUMNS,
)
NAN_POLICIES = ("error", "drop", "ignore")
DEFAULT_CHUNK_ROWS = 1_000_000
METADATA_KEY = b"dvao"  # Parquet key-value metadata written by dvao: {"objectives": [...], ...}


def dtype_family(dtype: pl.DataType) -> str:
    """Dtypes that read as the same thing count as one (Int32 vs Int64 is no clash)."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if dtype.is_numeric():
        return "numeric"
    name = str(dtype)
    if name in ("String", "Utf8", "Categorical", "Enum") or name.startswith(
        ("Categorical", "Enum")
    ):
        return "string"
    return name


def is_numeric(dtype: pl.DataType) -> bool:
    """A dtype a reward can have: numbers and booleans."""
    return dtype.is_numeric() or str(dtype) == "Boolean"

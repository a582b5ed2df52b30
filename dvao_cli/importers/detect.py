"""Which trainer's file a path is, by the names TRL, verl and ms-swift give their files, and
where they put them. Light on purpose (no pyarrow, no importer): the log reader asks it at
every open whether LOG is a trainer's log (dvao_cli/importers/in_place.py).
"""

from __future__ import annotations

import re
from pathlib import Path

TRL_FILE = re.compile(r"^completions_(\d+)\.parquet$")  # completions/completions_00012.parquet
VERL_FILE = re.compile(r"^(\d+)\.jsonl$")  # <rollout_data_dir>/12.jsonl
SWIFT_FILE = "completions.jsonl"  # <output_dir>/completions.jsonl
PATTERNS = {
    "trl": "completions_<step>.parquet",
    "verl": "<step>.jsonl",
    "swift": SWIFT_FILE,
}
# where trainers put their files below the directory a user is likely to name
SUBDIRS = ("completions", "completions/train", "train")


def classify(path: Path) -> str | None:
    """The trainer whose file name this is (content is checked when the file is read)."""
    name = path.name
    if TRL_FILE.match(name):
        return "trl"
    if VERL_FILE.match(name):
        return "verl"
    if name == SWIFT_FILE:
        return "swift"
    return None


def visible_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    )


def trainer_folder(path: Path, out_path: Path | None = None) -> list[Path]:
    """The visible files of the folder holding a trainer's files: `path` itself or the first of
    SUBDIRS below it with a file named as a trainer names its files; [] when there is none."""
    for sub in ("", *SUBDIRS):
        folder = path / sub if sub else path
        if not folder.is_dir():
            continue
        files = [p for p in visible_files(folder) if out_path is None or p.resolve() != out_path]
        if any(classify(p) for p in files):
            return files
    return []

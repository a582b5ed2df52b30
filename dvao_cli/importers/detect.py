"""Which trainer's file a path is, by the names TRL, verl and ms-swift give their files, and
where they put them. Light on purpose (no pyarrow, no importer): the log reader asks it at
every open whether LOG is a trainer's log (dvao_cli/importers/in_place.py).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
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
# the search for a trainer's log below a folder that holds none (`nearby_logs`): how deep, how
# many directory entries at most, and the folders never looked into (besides hidden ones and
# virtual environments, which hold a pyvenv.cfg)
SEARCH_DEPTH = 4
SEARCH_ENTRIES = 20_000
SKIP_FOLDERS = frozenset({"node_modules", "site-packages", "__pycache__", "venv", "wandb"})


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


def holds_trainer_files(folder: Path) -> bool:
    """Whether `folder` itself holds a file named as a trainer names its files."""
    return any(classify(p) for p in visible_files(folder))


def nearby_logs(
    root: Path, accept: Callable[[Path], bool] | None = None
) -> tuple[list[Path], bool]:
    """The folders below `root` holding a trainer's files (`accept` may refuse one), breadth
    first: at most SEARCH_DEPTH levels down and SEARCH_ENTRIES directory entries looked at;
    hidden folders, virtual environments and SKIP_FOLDERS are left out, and a folder found is
    not searched further. Returns (folders, whether the search stopped at its bound)."""
    found: list[Path] = []
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    seen = 0
    while queue:
        folder, depth = queue.popleft()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:  # unreadable: nothing to find there
            continue
        seen += len(entries)
        if seen > SEARCH_ENTRIES:
            return found, True
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if entry.name.startswith(".") or entry.name in SKIP_FOLDERS:
                continue
            if (path / "pyvenv.cfg").exists():
                continue
            if holds_trainer_files(path) and (accept is None or accept(path)):
                found.append(path)
            elif depth + 1 < SEARCH_DEPTH:
                queue.append((path, depth + 1))
    return found, False

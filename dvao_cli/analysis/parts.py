"""What the map step of `dvao analyze` takes and gives: the run's settings, and a chunk's
per-step sums (plain data, pickled between worker processes).

A leaf of the analysis package: it imports no other analysis module but `step_sums`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import polars as pl

from dvao_cli.analysis.runtime import gpu_present
from dvao_cli.analysis.step_sums import AgreementSums, ObjectiveSums, PairSums, SchemeSums
from dvao_cli.reader.chunk import Chunk
from dvao_cli.reader.format import SOURCE_COLUMNS
from dvao_cli.reader.plausible import GroupStats
from dvao_cli.reader.spec import LogSpec

if TYPE_CHECKING:
    import torch


@dataclass
class Settings:
    names: list[str]
    weights: list[float]
    schemes: list[str]
    ddof: int
    eps: float
    nan: str
    device_name: str  # auto, cpu, cuda, ...: resolved on the first chunk that needs the engine
    has_logged: bool
    write_advantages: bool
    spec: LogSpec
    chunk_rows: int  # rows per chunk; the engine takes at most ENGINE_PIECE_ROWS of them at once
    backend: str = "auto"  # a name of `backends.BACKENDS`, or auto (`backends.choose`)

    @property
    def sources(self) -> list[str]:
        """The log's `source_*` columns, read and written beside the advantages (with --out)."""
        if not self.write_advantages:
            return []
        return [name for name in SOURCE_COLUMNS if name in self.spec.columns]

    @cached_property
    def device(self) -> torch.device | None:
        """Where the row engine runs: None for numpy on the CPU (torch is not imported), a
        torch device for CUDA (`--device cuda`, or `auto` on a machine with a GPU)."""
        if self.device_name == "cpu" or (self.device_name == "auto" and not gpu_present()):
            return None
        from dvao_cli.advantages import resolve_device

        found = resolve_device(self.device_name)
        return None if found.type == "cpu" else found

    @property
    def device_label(self) -> str:
        return "cpu" if self.device is None else str(self.device)

    @property
    def per_response(self) -> bool:
        """Whether every response's advantages are needed (`--out`, or a logged_advantage
        column to compare with), whatever backend computes the sums."""
        return self.has_logged or self.write_advantages


@dataclass
class Part:
    """The per-step sums of some whole steps of a chunk."""

    steps: list[int]  # (S,) the step values, in order
    obj: ObjectiveSums
    sch: dict[str, SchemeSums]
    pairs: PairSums


@dataclass(frozen=True)
class Counts:
    """What the reduce step reads of a chunk: its counts, without its rows (sent back by a
    worker process instead of the chunk)."""

    rows: int
    n_groups: int
    skipped_groups: int
    skipped_rows: int
    dropped_rows: int

    @classmethod
    def of(cls, chunk: Chunk | Counts) -> Counts:
        return cls(
            chunk.rows, chunk.n_groups, chunk.skipped_groups, chunk.skipped_rows,
            chunk.dropped_rows,
        )  # fmt: skip


@dataclass
class ChunkResult:
    chunk: Chunk | Counts
    parts: list[Part] = field(default_factory=list)  # in step order
    agreement: dict[str, list[AgreementSums]] = field(default_factory=dict)
    advantages: list[pl.DataFrame] = field(default_factory=list)  # rows in chunk order
    device: str | None = None  # where the engine ran; None when it was not needed
    backend: str | None = None  # the backend that computed the sums (None: no rows left)
    # a dvao log's groups per step (reader.plausible: implausible groups); a trainer's log's
    # import checked them already
    groups: GroupStats = field(default_factory=GroupStats)

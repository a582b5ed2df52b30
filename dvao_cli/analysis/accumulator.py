"""The reduce step's state: every chunk's per-step sums, in input order, and the whole-log
counts (`Accumulator`); `summary.build_summary` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from dvao_cli.analysis.parts import ChunkResult
from dvao_cli.analysis.step_sums import AgreementSums, ObjectiveSums, PairSums, SchemeSums
from dvao_cli.reader.plausible import GroupStats

# ObjectiveSums' per-step fields ((S,) or (S, K)); `binary` (K,) is and-ed over the chunks
STEP_FIELDS = tuple(f.name for f in fields(ObjectiveSums) if f.name != "binary")


@dataclass
class Accumulator:
    """Per-step sums from every chunk, and the whole-log agreement with logged_advantage.

    Each part's sums are kept as Python lists, not small arrays: Python's allocator keeps them
    apart from the large per-chunk temporaries, so the heap does not fragment."""

    objectives: list[str]
    schemes: list[str]
    has_logged: bool
    step_values: list[list[int]] = field(default_factory=list)  # per part, its (S,) steps
    obj: list[ObjectiveSums] = field(default_factory=list)  # per part; `binary` left None
    sch: dict[str, list[SchemeSums]] = field(default_factory=dict)  # scheme -> per part
    pairs: list[PairSums] = field(default_factory=list)  # per part, (S, K, K) each
    binary: np.ndarray = field(init=False)  # (K,) bool
    agreement: dict[str, list[AgreementSums]] = field(default_factory=dict)
    rows: int = 0
    groups: int = 0
    skipped_groups: int = 0
    skipped_rows: int = 0
    dropped_rows: int = 0
    device: str | None = None  # where the engine ran, if any chunk needed it
    backends: dict[str, int] = field(default_factory=dict)  # backend -> chunks it computed
    group_stats: GroupStats = field(default_factory=GroupStats)  # for reader.plausible

    def __post_init__(self) -> None:
        k = len(self.objectives)
        self.binary = np.ones(k, dtype=bool)
        self.sch = {name: [] for name in self.schemes}
        self.agreement = {name: [] for name in self.schemes}

    def add(self, res: ChunkResult) -> None:
        chunk = res.chunk
        self.group_stats.merge(res.groups)
        self.skipped_groups += chunk.skipped_groups
        self.skipped_rows += chunk.skipped_rows
        self.dropped_rows += chunk.dropped_rows
        self.device = res.device or self.device
        if not res.parts:
            return  # nothing left in this chunk
        if res.backend is not None:
            self.backends[res.backend] = self.backends.get(res.backend, 0) + 1
        self.rows += chunk.rows
        self.groups += chunk.n_groups
        for part in res.parts:
            self.step_values.append(list(part.steps))
            obj = part.obj
            lists = {name: _to_list(getattr(obj, name)) for name in STEP_FIELDS}
            self.obj.append(ObjectiveSums(**lists, binary=None))
            for name, sums in part.sch.items():
                self.sch[name].append(
                    SchemeSums(**{f.name: _to_list(getattr(sums, f.name)) for f in fields(sums)})
                )
            self.pairs.append(PairSums(_to_list(part.pairs.corr_sum), _to_list(part.pairs.count)))
            self.binary &= np.asarray(_to_list(obj.binary), dtype=bool)
        for name, agreement in res.agreement.items():
            self.agreement[name] += agreement

    def steps(self) -> np.ndarray:
        """(S,) int64 every part's step values, in input order."""
        return np.concatenate([np.asarray(v, dtype=np.int64) for v in self.step_values])

    def objective_columns(self) -> dict[str, np.ndarray]:
        """ObjectiveSums' per-step fields over every part, in input order: (S,) or (S, K)."""
        return {name: _cat(self.obj, name) for name in STEP_FIELDS}

    def correlation_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, K) each: the correlation sums and group counts over every step, added step by
        step in input order."""
        k = len(self.objectives)
        corr = [np.asarray(p.corr_sum, dtype=np.float64).reshape(-1, k, k) for p in self.pairs]
        count = [np.asarray(p.count, dtype=np.float64).reshape(-1, k, k) for p in self.pairs]
        if not corr:
            return np.zeros((k, k)), np.zeros((k, k))
        return np.concatenate(corr).sum(axis=0), np.concatenate(count).sum(axis=0)

    def scheme_columns(self, scheme: str) -> dict[str, np.ndarray]:
        """One scheme's SchemeSums fields over every part, in input order: (S,) each."""
        return {f.name: _cat(self.sch[scheme], f.name) for f in fields(SchemeSums)}


def _to_list(values: object) -> list[object]:
    """A numpy array as nested Python lists."""
    return np.asarray(values).tolist()


def _cat(parts: list[ObjectiveSums] | list[SchemeSums], name: str) -> np.ndarray:
    return np.concatenate([np.asarray(getattr(p, name), dtype=np.float64) for p in parts])

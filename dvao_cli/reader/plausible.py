"""Implausible groups: a group that holds every row of a large step, or one far above the log's
median group size, is almost always a wrong group key (prompts that share text, such as
multimodal prompts whose image is not in the text), not a sampling choice.

`GroupStats` gathers, per step, how many groups and rows it has and its largest group, and the
log's histogram of group sizes; it merges across chunks, batches and worker processes (plain
dicts: cheap to pickle). `check_groups` refuses such groups with one line (exit 2) or, with
`--allow-large-groups`, returns them as `oversized_group` warnings. The importers and the
analysis of a dvao log share this one definition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dvao_cli.errors import InputError, LogWarning, counted

WHOLE_STEP_ROWS = 64  # a step of more rows than this held by one group is refused
MEDIAN_RATIO = 4  # a group more than this many times the log's median group size is refused
OVERSIZED = "oversized_group"


@dataclass
class GroupStats:
    """Per step: groups, rows and the largest group; over the log: group size -> groups.

    Groups of one response are left out of `sizes` (they are skipped by the analysis and carry
    no variance) but counted in their step's rows and groups."""

    groups: Counter[int] = field(default_factory=Counter)  # step -> groups
    rows: Counter[int] = field(default_factory=Counter)  # step -> rows
    largest: dict[int, int] = field(default_factory=dict)  # step -> its largest group
    sizes: Counter[int] = field(default_factory=Counter)  # group size (>= 2) -> groups
    where: dict[int, str] = field(default_factory=dict)  # step -> the file it is first in

    def add_group(self, step: int, size: int, where: str | Path | None = None) -> None:
        self.groups[step] += 1
        self.rows[step] += size
        if size > self.largest.get(step, 0):
            self.largest[step] = size
        if size >= 2:
            self.sizes[size] += 1
        if where is not None and step not in self.where:
            self.where[step] = str(where)

    def add_steps(
        self,
        steps: Iterable[int],
        groups: Iterable[int],
        rows: Iterable[int],
        largest: Iterable[int],
        sizes: dict[int, int],
    ) -> None:
        """Whole steps at once (a chunk of the analysis): per step its groups, rows and
        largest group, and the chunk's size histogram (groups of two or more)."""
        for step, g, r, big in zip(steps, groups, rows, largest, strict=True):
            self.groups[step] += g
            self.rows[step] += r
            self.largest[step] = max(self.largest.get(step, 0), big)
        self.sizes.update({s: n for s, n in sizes.items() if s >= 2})

    def merge(self, other: GroupStats) -> None:
        steps = list(other.groups)
        self.add_steps(
            steps,
            [other.groups[s] for s in steps],
            [other.rows[s] for s in steps],
            [other.largest[s] for s in steps],
            other.sizes,
        )
        for step, path in other.where.items():
            self.where.setdefault(step, path)

    def median(self) -> float:
        """The median size of the groups of two or more responses (0 with none)."""
        total = sum(self.sizes.values())
        if not total:
            return 0.0
        ordered = sorted(self.sizes.items())
        lo = hi = None
        seen = 0
        for size, n in ordered:
            seen += n
            if lo is None and seen >= (total + 1) // 2:
                lo = size
            if seen >= total // 2 + 1:
                hi = size
                break
        assert lo is not None and hi is not None
        return (lo + hi) / 2


def _cases(stats: GroupStats) -> list[tuple[str, list[int]]]:
    """(what, steps) of each rule broken: one group holding a large step; groups far above
    the median. Steps in order."""
    whole = sorted(s for s, g in stats.groups.items() if g == 1 and stats.rows[s] > WHOLE_STEP_ROWS)
    median = stats.median()
    big = sorted(
        s
        for s, size in stats.largest.items()
        if median and size > MEDIAN_RATIO * median and s not in whole
    )
    cases = []
    if whole:
        first = whole[0]
        cases.append(
            (
                f"step {first}: one group holds all {counted(stats.rows[first], 'response')} "
                f"of the step (a step of more than {WHOLE_STEP_ROWS} rows in one group"
                + (f"; {counted(len(whole) - 1, 'more step')} like it" if len(whole) > 1 else "")
                + ")",
                whole,
            )
        )
    if big:
        first = big[0]
        cases.append(
            (
                f"step {first}: a group of {counted(stats.largest[first], 'response')}, more "
                f"than {MEDIAN_RATIO}x the log's median group size ({median:g})"
                + (f"; {counted(len(big) - 1, 'more step')} like it" if len(big) > 1 else ""),
                big,
            )
        )
    return cases


CAUSE = (
    "such a group usually joins the responses to different prompts that share a group key "
    "(prompts that share text, e.g. multimodal prompts whose image is not in the text)"
)


def check_groups(
    stats: GroupStats, allow: bool, *, dvao_log: bool = False, label: str | None = None
) -> list[LogWarning]:
    """Refuse implausible groups (InputError, one line) or, with `allow`
    (`--allow-large-groups`), return one `oversized_group` warning per rule broken.

    `dvao_log`: the groups come from a dvao log's group_id column (the ways out differ).
    `label`: the file named when a step's own file is unknown."""
    cases = _cases(stats)
    if allow:
        return [
            LogWarning(OVERSIZED, None, f"{what}: kept as asked (--allow-large-groups); {CAUSE}")
            for what, _ in cases
        ]
    if not cases:
        return []
    what, steps = cases[0]
    if dvao_log:
        ways = (
            "if the log was imported from a trainer's log, import it again grouped by a column "
            "that tells the prompts apart (dvao import --group-key COL; a verl dump with uid "
            "is grouped by it), or with --group-size N only where the rows keep their order "
            "(never for verl); --allow-large-groups if you really sample groups this large"
        )
    else:
        ways = (
            "group by a column that tells the prompts apart with --group-key COL, write "
            "verl's uid into the dump (it is then the group key), or use --group-size N only "
            "where the rows keep their order (never for verl); --allow-large-groups if you "
            "really sample groups this large"
        )
    raise InputError(f"{what}: {CAUSE}; {ways}", path=stats.where.get(steps[0], label))

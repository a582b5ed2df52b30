"""`open_log`: a log's spec (`spec.open_spec`: footers and schemas) less its combined scores
(`combined.py`: the one step of opening a log that reads rows). Above both: combined.py reads
through spec.py, so spec.py cannot call it without an import circle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dvao_cli.reader.combined import with_combined_scores
from dvao_cli.reader.discovery import LogSource
from dvao_cli.reader.spec import LogSpec, open_spec


def open_log(
    paths: str | Path | Sequence[str | Path] | LogSource, objectives: Sequence[str] | None = None
) -> LogSpec:
    """Resolve the LOG arguments and check their schemas; pick the objectives, less the
    combined scores (`combined.py`: one pass over the objective columns, a second only when
    one is likely; named with `objectives` they stay, with a warning).

    `paths` may be a `LogSource` naming the format; plain paths mean format "auto": a trainer's
    log (detected as `dvao import` detects it) is read in place, anything else as a dvao log.
    """
    return with_combined_scores(open_spec(paths, objectives), explicit=bool(objectives))

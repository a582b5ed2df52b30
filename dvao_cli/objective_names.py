"""Objective names and weights as users type them: a double-quoted name (the one quoting form
of every option that names objectives), did-you-mean suggestions, and `--weight NAME=W`.

Plain functions that raise `UsageError`: the reader, the gate and the analysis use them
without loading the command line (typer).
"""

from __future__ import annotations

import difflib
import re

from dvao_cli.errors import UsageError

_WEIGHT_RE = re.compile(r"^\s*([^=]+?)\s*=\s*([-+0-9.eE]+)\s*$")
_QUOTED_WEIGHT_RE = re.compile(r"^\s*=\s*([-+0-9.eE]+)\s*$")
QUOTING = (
    'a name holding = , [ ] or spaces goes in double quotes, JSON-style (\\" and \\\\ inside): '
    "--weight '\"a=b\"=0.5', --fail-on 'dvao_weight[\"fmt[x]\"]<0.05'"
)


def quoted_name(text: str, start: int, option: str) -> tuple[str, int] | None:
    """The double-quoted name at `text[start]` (a JSON string: `\\"` and `\\\\` escape) and the
    index after it; None when no quote starts there. An unterminated one is a UsageError.

    The one quoting form of every option that names objectives (`--weight`, `--fail-on`), so
    any name can be given, whatever characters it holds."""
    import json

    if start >= len(text) or text[start] != '"':
        return None
    try:
        name, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        raise UsageError(
            f"{option} '{text}': unterminated or malformed quoted name; {QUOTING}"
        ) from None
    return str(name), end


MAX_WEIGHT = 1e6  # a preference weight larger than this is refused (`parse_weights`)
# A positive preference weight smaller than this is refused (`check_weight_size`): w_k sigma_k
# and the squares of weighted rewards would underflow (to 0 in float32 from about 1e-19, in
# float64 from 1e-154 when squared, and 1e-320 is already a denormal), and every weighted
# advantage would come out 0 without a word. Weights are relative, so none needs to be smaller.
MIN_WEIGHT = 1e-12


def check_weight_size(value: float, label: str) -> None:
    """UsageError naming `label` for a positive weight below MIN_WEIGHT."""
    if 0 < value < MIN_WEIGHT:
        raise UsageError(
            f"{label}: {value!r} is too small to compute with (a positive weight must be at "
            f"least {MIN_WEIGHT:g}; weights are relative: scale them all up, or give 0 to "
            "leave an objective out)"
        )


def parse_weights(specs: list[str] | None) -> dict[str, float]:
    """`["accuracy=0.7", "format=0.3"]` -> {"accuracy": 0.7, "format": 0.3}.

    A name may be double-quoted (`'"a=b"=0.5'`), which any name can be."""
    weights: dict[str, float] = {}
    for spec in specs or []:
        lead = len(spec) - len(spec.lstrip())
        quoted = quoted_name(spec, lead, "--weight")
        if quoted is not None:
            name, end = quoted
            match = _QUOTED_WEIGHT_RE.match(spec[end:])
            number = match.group(1) if match else None
        else:
            match = _WEIGHT_RE.match(spec)
            name, number = (match.group(1), match.group(2)) if match else ("", None)
        value: float | None = None
        if number is not None:
            try:
                value = float(number)
            except ValueError:
                value = None
        if value is None:
            raise UsageError(f"--weight '{spec}' is not of the form NAME=W (e.g. accuracy=0.7)")
        if value < 0 or value != value or value in (float("inf"), float("-inf")):
            raise UsageError(f"--weight '{spec}': the weight must be a finite number >= 0")
        if value > MAX_WEIGHT:  # w * reward, squared and summed, must fit in float64
            raise UsageError(
                f"--weight '{spec}': weights above {MAX_WEIGHT:g} would overflow the weighted "
                "sums; weights are relative (DVAO, RC and GDPO do not change when all are "
                "scaled alike): use e.g. accuracy=0.7 format=0.3"
            )
        check_weight_size(value, f"--weight '{spec}'")
        if name in weights:
            raise UsageError(f"--weight '{spec}': objective '{name}' is weighted twice")
        weights[name] = value
    return weights


def resolve_weights(objectives: list[str], weights: dict[str, float]) -> list[float]:
    """Weights in objective order: given ones as given, default 1/K when none is given.

    When some but not all objectives are weighted, the rest get weight 0 would be a silent
    surprise, so that is an error.
    """
    unknown = [name for name in weights if name not in objectives]
    if unknown:
        raise UsageError(
            f"--weight names '{unknown[0]}', which is not an objective"
            + did_you_mean(unknown[0], objectives)
        )
    if not weights:
        return [1.0 / len(objectives)] * len(objectives)
    missing = [name for name in objectives if name not in weights]
    if missing:
        raise UsageError(
            f"--weight is given for some objectives but not for '{missing[0]}'; "
            "weight every objective or none"
        )
    for name, value in weights.items():
        check_weight_size(value, f"--weight {name}={value!r}")
    if sum(weights.values()) <= 0:
        raise UsageError("--weight: at least one weight must be positive")
    return [weights[name] for name in objectives]


def did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if close:
        return " (did you mean " + ", ".join(f"'{c}'" for c in close) + "?)"
    if candidates:
        return " (available: " + ", ".join(f"'{c}'" for c in candidates) + ")"
    return ""

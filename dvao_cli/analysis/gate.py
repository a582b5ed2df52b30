"""`--fail-on` expressions: a CI gate over analyze's summary.

Form: `METRIC[NAME] OP NUMBER`, e.g. `saturation[format]>0.9`, `dvao_weight[accuracy]<0.2`,
`max_abs[gdpo]>=5`, `correlation[accuracy,length]<-0.5`, `skipped_groups>0`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from dvao_cli.analysis.summary import (
    LoggedAgreement,
    ObjectiveSummary,
    SchemeSummary,
    Summary,
    binary_only,
    figure_names,
)
from dvao_cli.core.schemes import SCHEMES
from dvao_cli.errors import UsageError
from dvao_cli.objective_names import did_you_mean, quoted_name
from dvao_cli.reader.format import LOGGED

# the metric names are the summary's field names marked as gate metrics
# (dvao_cli/analysis/summary.py)
OBJECTIVE_METRICS = figure_names(ObjectiveSummary, gate=True)
LOGGED_METRICS = figure_names(LoggedAgreement, gate=True)  # need a logged_advantage column
SCHEME_METRICS = figure_names(SchemeSummary, gate=True) + LOGGED_METRICS
GLOBAL_METRICS = figure_names(Summary, gate=True)
PAIR_METRICS = figure_names(Summary, gate="pair")
# defined for binary objectives only
BINARY_METRICS = tuple(m for m in binary_only(ObjectiveSummary) if m in OBJECTIVE_METRICS)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_METRIC = re.compile(r"\s*(?P<metric>[a-z_]+)\s*")
_TAIL = re.compile(
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
FORM = (
    "METRIC[NAME]OP NUMBER, e.g. 'saturation[format]>0.9', 'dvao_weight[accuracy]<0.2', "
    "'max_abs[gdpo]>=5', 'correlation[accuracy,length]<-0.5', 'skipped_groups>0'; "
    f"objective metrics: {', '.join(OBJECTIVE_METRICS)}; "
    f"scheme metrics: {', '.join(SCHEME_METRICS)}; "
    f"log metrics: {', '.join(GLOBAL_METRICS)}; OP one of > >= < <= == !="
)


@dataclass(frozen=True)
class Condition:
    text: str
    metric: str
    name: str | None
    op: str
    value: float

    def label(self) -> str:
        return self.metric if self.name is None else f"{self.metric}[{self.name}]"


def _bracket(text: str, i: int) -> tuple[str, int] | None:
    """The `[NAME]` or `[A,B]` at text[i] (just past the `[`): the name (a pair joined by a
    comma) and the index past the `]`. Each item is bare, brackets balanced (`fmt[x]`), or
    double-quoted (`"a]b"`, see `options.quoted_name`). None when malformed."""
    items: list[str] = []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        quoted = quoted_name(text, i, "--fail-on")
        if quoted is not None:
            item, i = quoted
        else:
            j, depth = i, 0
            while j < len(text) and not (depth == 0 and text[j] in ",]"):
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            item, i = text[i:j].strip(), j
            if not item:
                return None
        items.append(item)
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text) or text[i] not in ",]":
            return None
        i += 1
        if text[i - 1] == "]":
            return ",".join(items), i


def parse_condition(text: str) -> Condition:
    """Parse one `--fail-on` expression; a malformed one is a UsageError showing the form.

    NAME may be double-quoted, JSON-style, which any objective name can be:
    `dvao_weight["fmt[x]"]<0.05`, `mean["a,b"]>0.5`, `correlation["a]", "b"]<0`."""
    head = _METRIC.match(text)
    parsed: tuple[str | None, int] | None = None
    if head is not None:
        parsed = (None, head.end())
        if head.end() < len(text) and text[head.end()] == "[":
            parsed = _bracket(text, head.end() + 1)
    tail = _TAIL.match(text, parsed[1]) if parsed is not None else None
    if head is None or parsed is None or tail is None:
        raise UsageError(f"--fail-on '{text}' is not of the form {FORM}")
    metric, name = head.group("metric"), parsed[0]
    known = OBJECTIVE_METRICS + SCHEME_METRICS + GLOBAL_METRICS + PAIR_METRICS
    if metric not in known:
        raise UsageError(
            f"--fail-on '{text}': unknown metric '{metric}'"
            + did_you_mean(metric, list(known))
            + f"; the form is {FORM}"
        )
    if metric in GLOBAL_METRICS and name is not None:
        raise UsageError(f"--fail-on '{text}': '{metric}' takes no [NAME]; the form is {FORM}")
    if metric not in GLOBAL_METRICS and name is None:
        what = "two objectives [A,B]" if metric in PAIR_METRICS else "a [NAME]"
        raise UsageError(f"--fail-on '{text}': '{metric}' needs {what}; the form is {FORM}")
    return Condition(text, metric, name, tail.group("op"), float(tail.group("value")))


def check_names(
    conditions: list[Condition],
    objectives: list[str],
    schemes: list[str],
    has_logged: bool = False,
) -> None:
    """What can be checked before reading any data: the names exist in this analysis, and the
    metric can exist in this log (a gate that cannot be evaluated must not pass silently)."""
    for cond in conditions:
        if cond.metric in OBJECTIVE_METRICS:
            _check(cond, cond.name, objectives, "objective")
        elif cond.metric in SCHEME_METRICS:
            if cond.name in SCHEMES and cond.name not in schemes:
                raise UsageError(
                    f"--fail-on '{cond.text}': scheme '{cond.name}' is not computed in this run "
                    f"(it computes {', '.join(schemes)}); add --scheme {cond.name}"
                )
            _check(cond, cond.name, schemes, "analyzed scheme")
            if cond.metric in LOGGED_METRICS and not has_logged:
                raise UsageError(
                    f"--fail-on '{cond.text}': {cond.metric} compares a scheme with the log's "
                    f"{LOGGED} column, and this log has none"
                )
        elif cond.metric in PAIR_METRICS:
            parts = _pair(cond)
            if len(parts) != 2:
                raise UsageError(
                    f"--fail-on '{cond.text}': correlation needs two objectives, "
                    "e.g. correlation[accuracy,length]<-0.5"
                )
            for part in parts:
                _check(cond, part, objectives, "objective")


def _pair(cond: Condition) -> list[str]:
    """The objectives named by a pair metric's [A,B]."""
    return [p.strip() for p in (cond.name or "").split(",")]


def _check(cond: Condition, name: str | None, candidates: list[str], kind: str) -> None:
    if name not in candidates:
        raise UsageError(
            f"--fail-on '{cond.text}': '{name}' is not an {kind}"
            + did_you_mean(name or "", candidates)
        )


def metric_value(cond: Condition, summary: Summary) -> float | None:
    """The metric's value in the summary; None where it is undefined (n/a)."""
    if cond.metric in GLOBAL_METRICS:
        return getattr(summary, cond.metric)
    if cond.metric in OBJECTIVE_METRICS:
        return getattr(summary.objectives[cond.name or ""], cond.metric)
    if cond.metric in LOGGED_METRICS:
        logged = summary.schemes[cond.name or ""].logged
        return None if logged is None else getattr(logged, cond.metric)
    if cond.metric in SCHEME_METRICS:
        return getattr(summary.schemes[cond.name or ""], cond.metric)
    a, b = _pair(cond)
    return summary.correlation[a][b]


def undefined(cond: Condition, summary: Summary) -> UsageError:
    """Why the metric of `cond` came out n/a on this log: a gate that cannot be checked."""
    head = f"--fail-on '{cond.text}': "
    named = _pair(cond) if cond.metric in PAIR_METRICS else [cond.name or ""]
    if cond.metric in OBJECTIVE_METRICS or cond.metric in PAIR_METRICS:
        for name in named:
            if not summary.has_rewards(name):
                missing = summary.objectives[name].missing_rewards
                return UsageError(
                    f"{head}'{name}' has no valid reward (all {missing:,} are missing), "
                    f"so {cond.label()} is n/a"
                )
    if cond.metric in BINARY_METRICS and not summary.objectives[cond.name or ""].binary:
        return UsageError(
            f"{head}{cond.metric} is defined for binary objectives only, and '{cond.name}' has "
            "rewards other than 0 and 1"
        )
    if cond.metric in LOGGED_METRICS:
        logged = summary.schemes[cond.name or ""].logged
        measured = logged is not None and logged.logged_max_diff is not None
        why = f"{LOGGED} has no finite value"
        if measured:  # some finite rows, yet no correlation
            why = f"{LOGGED} or the scheme's advantages are constant"
    elif cond.metric in PAIR_METRICS:
        why = "no group where both objectives vary"
    else:
        why = "undefined for these rewards"
    return UsageError(f"{head}{cond.label()} is n/a on this log ({why}), so it cannot be checked")


@dataclass(frozen=True)
class Trip:
    condition: Condition
    value: float

    def message(self) -> str:
        cond = self.condition
        return f"{cond.label()} = {self.value:.6g} {cond.op} {cond.value:g}"


def evaluate(conditions: list[Condition], summary: Summary) -> list[Trip]:
    """The conditions that hold (each one is a failure). A metric that came out undefined on
    this log (n/a, e.g. saturation_pass of a non-binary objective) is a UsageError: a gate that
    cannot be checked must not pass silently."""
    trips = []
    for cond in conditions:
        value = metric_value(cond, summary)
        if value is None:
            raise undefined(cond, summary)
        if _OPS[cond.op](float(value), cond.value):
            trips.append(Trip(cond, value))
    return trips

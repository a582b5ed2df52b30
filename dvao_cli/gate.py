"""`--fail-on` expressions: a CI gate over analyze's summary.

Form: `METRIC[NAME] OP NUMBER`, e.g. `saturation[format]>0.9`, `dvao_weight[accuracy]<0.2`,
`max_abs[gdpo]>=5`, `correlation[accuracy,length]<-0.5`, `skipped_groups>0`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dvao_cli.errors import UsageError
from dvao_cli.options import did_you_mean, quoted_name

OBJECTIVE_METRICS = (
    "mean",
    "within_group_std",
    "saturation",
    "saturation_pass",
    "saturation_fail",
    "dvao_weight",
    "dvao_weight_first",
    "dvao_weight_last",
)
SCHEME_METRICS = (
    "mean_square",
    "max_abs",
    "zero_share",
    "resolution",
    "logged_max_diff",
    "logged_corr",
)
GLOBAL_METRICS = ("rows", "steps", "groups", "skipped_groups", "skipped_rows", "dropped_rows")
PAIR_METRICS = ("correlation",)

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


def check_names(conditions: list[Condition], objectives: list[str], schemes: list[str]) -> None:
    """Names must exist in this analysis (a typo must not make a gate pass silently)."""
    for cond in conditions:
        if cond.metric in OBJECTIVE_METRICS:
            _check(cond, cond.name, objectives, "objective")
        elif cond.metric in SCHEME_METRICS:
            _check(cond, cond.name, schemes, "analyzed scheme")
        elif cond.metric in PAIR_METRICS:
            parts = [p.strip() for p in (cond.name or "").split(",")]
            if len(parts) != 2:
                raise UsageError(
                    f"--fail-on '{cond.text}': correlation needs two objectives, "
                    "e.g. correlation[accuracy,length]<-0.5"
                )
            for part in parts:
                _check(cond, part, objectives, "objective")


def _check(cond: Condition, name: str | None, candidates: list[str], kind: str) -> None:
    if name not in candidates:
        raise UsageError(
            f"--fail-on '{cond.text}': '{name}' is not an {kind}"
            + did_you_mean(name or "", candidates)
        )


def metric_value(cond: Condition, summary: dict[str, Any]) -> float | None:
    if cond.metric in GLOBAL_METRICS:
        return summary.get(cond.metric)
    if cond.metric in OBJECTIVE_METRICS:
        return summary["objectives"][cond.name][cond.metric]
    if cond.metric in SCHEME_METRICS:
        return summary["schemes"][cond.name].get(cond.metric)
    a, b = (p.strip() for p in (cond.name or "").split(","))
    return summary["correlation"][a][b]


@dataclass(frozen=True)
class Trip:
    condition: Condition
    value: float | None

    def message(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.6g}"
        return f"{self.condition.label()} = {shown} {self.condition.op} {self.condition.value:g}"


def evaluate(conditions: list[Condition], summary: dict[str, Any]) -> list[Trip]:
    """The conditions that hold (each one is a failure). A metric that is undefined (n/a,
    e.g. saturation_pass of a non-binary objective) never trips."""
    trips = []
    for cond in conditions:
        value = metric_value(cond, summary)
        if value is not None and _OPS[cond.op](float(value), cond.value):
            trips.append(Trip(cond, value))
    return trips

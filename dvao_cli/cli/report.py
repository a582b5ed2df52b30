"""Rendering `dvao analyze`'s summary: rich tables on a terminal, plain text when piped, and a
short plain-language reading of the run built from the numbers. No computing here beyond
choosing what to say."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from dvao_cli.analysis.summary import LoggedAgreement, ObjectiveSummary, SchemeSummary, Summary
from dvao_cli.cli.console import table_box
from dvao_cli.errors import counted


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _sci(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _table(title: str, plain: bool, caption: str | None = None) -> Table:
    return Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=table_box(plain),
    )


def _trend(o: ObjectiveSummary) -> str:
    if o.dvao_weight_first is None and o.dvao_weight_last is None:
        return "n/a"
    return f"{_f(o.dvao_weight_first)}→{_f(o.dvao_weight_last)}"


# One (header, cell) per column: where each figure of the summary is shown.
_OBJECTIVE_COLUMNS: tuple[tuple[str, Callable[[ObjectiveSummary], str]], ...] = (
    ("mean", lambda o: _f(o.mean)),
    ("within std", lambda o: _f(o.within_group_std)),
    ("saturated", lambda o: _pct(o.saturation)),
    ("all-pass", lambda o: _pct(o.saturation_pass)),
    ("all-fail", lambda o: _pct(o.saturation_fail)),
    ("pref. weight", lambda o: _f(o.preference_weight)),
    ("DVAO weight", lambda o: _f(o.dvao_weight)),
    ("trend", _trend),
)
_SCHEME_COLUMNS: tuple[tuple[str, Callable[[SchemeSummary], str]], ...] = (
    ("mean square", lambda s: _f(s.mean_square)),
    ("max |A|", lambda s: _f(s.max_abs)),
    ("zero", lambda s: _pct(s.zero_share)),
    ("distinct A / group", lambda s: _f(s.distinct_advantages_per_group, 2)),
    ("distinct rewards / group", lambda s: _f(s.distinct_rewards_per_group, 2)),
    ("resolution", lambda s: _f(s.resolution)),
)
_LOGGED_COLUMNS: tuple[tuple[str, Callable[[LoggedAgreement], str]], ...] = (
    ("vs logged: max |diff|", lambda a: _sci(a.logged_max_diff)),
    ("corr", lambda a: _f(a.logged_corr, 4)),
)


def objectives_caption(summary: Summary) -> str:
    """Below the Objectives table (here and on `dvao report`'s page): what the DVAO weight
    averages, and over which steps its trend is taken."""
    return (
        f"DVAO weight: mean over the groups with a signal ({_pct(summary.no_signal_share)} of "
        "groups have none: every objective constant)\n"
        "trend: the same over the first → last tenth of steps"
    )


SCHEMES_CAPTION = "resolution: distinct advantages per group / distinct reward vectors per group"
CORRELATION_CAPTION = "mean Pearson over the groups where both objectives vary"

Cells = tuple[list[str], list[list[str]]]  # headers, rows: a table's text, shown as is


def objective_cells(summary: Summary) -> Cells:
    """The Objectives table: one row per objective (here and in `dvao report`'s page)."""
    headers = ["objective", *[header for header, _ in _OBJECTIVE_COLUMNS]]
    rows = [
        [name, *[cell(summary.objectives[name]) for _, cell in _OBJECTIVE_COLUMNS]]
        for name in summary.objective_order
    ]
    return headers, rows


def scheme_cells(summary: Summary) -> Cells:
    """The Schemes table: one row per scheme, with the agreement with logged_advantage."""
    logged = summary.has_logged_advantage
    columns = _SCHEME_COLUMNS + (_LOGGED_COLUMNS if logged else ())
    headers = ["scheme", *[header for header, _ in columns]]
    rows = []
    for name, s in summary.schemes.items():
        row = [name, *[cell(s) for _, cell in _SCHEME_COLUMNS]]
        if logged:
            agreement = s.logged or LoggedAgreement(None, None)
            row += [cell(agreement) for _, cell in _LOGGED_COLUMNS]
        rows.append(row)
    return headers, rows


def correlation_cells(summary: Summary) -> Cells:
    """The within-group correlation table, objectives by objectives."""
    names = summary.objective_order
    rows = [[a, *[_f(summary.correlation[a][b], 2) for b in names]] for a in names]
    return ["", *names], rows


def _rich_table(title: str, caption: str, cells: Cells, plain: bool, **widths: int) -> Table:
    """`cells` as a rich table: the first column left, the numbers right (`widths`: a column's
    minimum width, by header)."""
    table = _table(title, plain, caption=caption)
    headers, rows = cells
    for i, header in enumerate(headers):
        table.add_column(
            header,
            justify="left" if i == 0 else "right",
            no_wrap=i == 0 and header == "objective",
            min_width=widths.get(header),
        )
    for row in rows:
        table.add_row(*row)
    return table


def objectives_table(summary: Summary, plain: bool = False) -> Table:
    return _rich_table(
        "Objectives", objectives_caption(summary), objective_cells(summary), plain, trend=11
    )


def schemes_table(summary: Summary, plain: bool = False) -> Table:
    return _rich_table("Schemes", SCHEMES_CAPTION, scheme_cells(summary), plain)


def correlation_table(summary: Summary, plain: bool = False) -> Table:
    return _rich_table(
        "Within-group correlation", CORRELATION_CAPTION, correlation_cells(summary), plain
    )


def reading(summary: Summary) -> list[str]:
    """A few sentences a person would say after looking at the numbers."""
    # the warnings first, each as summary.json holds it
    lines: list[str] = [f"warning ({w.code}): {w.message}" for w in summary.warnings]
    objectives = summary.objectives
    names = summary.objective_order
    groups = summary.groups

    gainers = sorted(
        names,
        key=lambda n: (
            (objectives[n].dvao_weight_last or 0) - (objectives[n].dvao_weight_first or 0)
        ),
        reverse=True,
    )
    for name in names:
        o = objectives[name]
        if not summary.has_rewards(name):
            lines.append(
                f"{name} has no valid reward: all {o.missing_rewards:,} are missing (skipped "
                f"under --nan {summary.settings.nan}), so its figures are n/a."
            )
        elif o.saturated_from_step is not None:
            kind = f" ({o.saturated_kind})" if o.saturated_kind else ""
            text = (
                f"{name} saturated{kind} in {_pct(o.saturation_after)} of groups from step "
                f"{o.saturated_from_step}"
            )
            first, last = o.dvao_weight_first, o.dvao_weight_last
            if len(names) > 1 and first is not None and last is not None and last < first - 0.05:
                to = gainers[0] if gainers[0] != name else None
                text += f"; DVAO moved its weight from {name} ({first:.2f} → {last:.2f})"
                if to is not None:
                    t = objectives[to]
                    text += f" to {to} ({_f(t.dvao_weight_first, 2)} → {_f(t.dvao_weight_last, 2)})"
            lines.append(text + ".")
        elif (o.saturation or 0) >= 0.5:
            lines.append(
                f"{name} has zero within-group variance in {_pct(o.saturation)} of groups: "
                "little learning signal left there."
            )
    if len(names) > 1:
        for name in names:
            o = objectives[name]
            pref, got = o.preference_weight, o.dvao_weight
            if (
                not o.binary
                and got is not None
                and pref > 0
                and got > 1.25 * pref
                and got == max(objectives[n].dvao_weight or 0 for n in names)
            ):
                lines.append(
                    f"{name} is continuous and takes the largest DVAO weight ({got:.2f} against "
                    f"a preference of {pref:.2f}): variance is not learnability, so check that its "
                    "spread is signal and not noise."
                )
    # a correlation seen in a handful of groups is not worth a sentence
    enough = max(5, 0.01 * groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rho = summary.correlation[a][b]
            if rho is None or summary.correlation_groups[a][b] < enough:
                continue
            if rho <= -0.3:
                lines.append(
                    f"{a} and {b} conflict within groups (correlation {rho:.2f}): AC ignores "
                    "this, RC and DVAO account for it."
                )
            elif rho >= 0.8:
                lines.append(
                    f"{a} and {b} move together within groups (correlation {rho:.2f}): "
                    "DVAO and RC nearly coincide there."
                )
    schemes = summary.schemes
    if "rc" in schemes and "dvao" in schemes:
        rc, dv = schemes["rc"].mean_square, schemes["dvao"].mean_square
        if rc and dv is not None:
            lines.append(
                f"DVAO's advantages are {dv / rc:.0%} of RC's in mean square ({dv:.3f} vs "
                f"{rc:.3f}): never larger for any response, as the bound |A_DVAO| <= |A_RC| says."
            )
    # GRPO reads one objective by design: compare the multi-reward schemes only
    resolutions = {
        n: s.resolution for n, s in schemes.items() if s.resolution is not None and n != "grpo"
    }
    if len(resolutions) > 1:
        worst = min(resolutions, key=lambda n: resolutions[n])
        best = max(resolutions.values())
        if resolutions[worst] < best - 0.05:
            lines.append(
                f"{worst} tells fewer responses apart than the others (resolution "
                f"{resolutions[worst]:.2f} distinct advantages per distinct reward vector, best "
                f"{best:.2f})."
            )
    match = summary.best_matching_scheme
    if summary.has_logged_advantage and match is not None:
        logged = schemes[match].logged
        diff = None if logged is None else logged.logged_max_diff
        tied = summary.matching_schemes
        if len(tied) > 1:
            one = " (with one objective they are the same advantage)" if len(names) == 1 else ""
            lines.append(
                f"logged_advantage matches {_listed(tied)} alike (max difference {_sci(diff)} "
                f"or less): these schemes coincide on this log{one}, so the log cannot tell "
                "which one your trainer ran."
            )
        elif tied:
            lines.append(
                f"logged_advantage matches {match} (max difference {_sci(diff)}): that is the "
                "scheme your trainer ran with these settings."
            )
        else:
            lines.append(
                f"logged_advantage matches no scheme closely (closest: {match}, max difference "
                f"{_sci(diff)}); try --ddof 1 --eps 1e-4 (TRL) or the trainer's weights."
            )
    if summary.skipped_groups:
        lines.append(f"{counted(summary.skipped_groups, 'group')} of size 1 were skipped.")
    return lines


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def left_out(summary: Summary) -> list[str]:
    """The objectives left out of the default set as combined scores (their warnings say so)."""
    return [
        w.objective
        for w in summary.warnings
        if w.code == "combined_score"
        and w.objective is not None
        and w.objective not in summary.objective_order
    ]


def render(summary: Summary, console: Console, label: str) -> None:
    names = summary.objective_order
    settings = summary.settings
    dropped = left_out(summary)
    without = f"; {_listed(dropped)} left out: a combined score" if dropped else ""
    console.print(
        f"{label}: {counted(summary.rows, 'response')}, {counted(summary.steps, 'step')}, "
        f"{counted(summary.groups, 'group')}, {counted(len(names), 'objective')} "
        f"(ddof {settings.ddof}, eps {settings.eps:g}, nan {settings.nan}){without}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print()
    plain = not console.is_terminal
    console.print(objectives_table(summary, plain))
    console.print()
    console.print(schemes_table(summary, plain))
    if len(names) > 1:
        console.print()
        console.print(correlation_table(summary, plain))
    lines = reading(summary)
    if lines:
        console.print()
        console.print("Reading", style="bold", markup=False, highlight=False)
        for line in lines:
            console.print(f"- {line}", markup=False, highlight=False, soft_wrap=True)

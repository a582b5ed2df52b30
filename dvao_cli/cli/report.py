"""Rendering `dvao analyze`'s summary: rich tables on a terminal, plain text when piped, and a
short plain-language reading of the run built from the numbers. No computing here beyond
choosing what to say."""

from __future__ import annotations

from collections.abc import Callable
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


def objectives_table(summary: Summary, plain: bool = False) -> Table:
    table = _table(
        "Objectives", plain, caption="trend: mean DVAO weight over the first → last tenth of steps"
    )
    table.add_column("objective", justify="left", no_wrap=True)
    for header, _ in _OBJECTIVE_COLUMNS:
        table.add_column(header, justify="right", min_width=11 if header == "trend" else None)
    for name in summary.objective_order:
        o = summary.objectives[name]
        table.add_row(name, *[cell(o) for _, cell in _OBJECTIVE_COLUMNS])
    return table


def schemes_table(summary: Summary, plain: bool = False) -> Table:
    logged = summary.has_logged_advantage
    table = _table(
        "Schemes",
        plain,
        caption="resolution: distinct advantages per group / distinct reward vectors per group",
    )
    table.add_column("scheme", justify="left")
    for header, _ in _SCHEME_COLUMNS + (_LOGGED_COLUMNS if logged else ()):
        table.add_column(header, justify="right")
    for name, s in summary.schemes.items():
        row = [name, *[cell(s) for _, cell in _SCHEME_COLUMNS]]
        if logged:
            agreement = s.logged or LoggedAgreement(None, None)
            row += [cell(agreement) for _, cell in _LOGGED_COLUMNS]
        table.add_row(*row)
    return table


def correlation_table(summary: Summary, plain: bool = False) -> Table:
    names = summary.objective_order
    table = _table(
        "Within-group correlation",
        plain,
        caption="mean Pearson over the groups where both objectives vary",
    )
    table.add_column("", justify="left")
    for name in names:
        table.add_column(name, justify="right")
    for a in names:
        table.add_row(a, *[_f(summary.correlation[a][b], 2) for b in names])
    return table


def reading(summary: Summary) -> list[str]:
    """A few sentences a person would say after looking at the numbers."""
    lines: list[str] = []
    objectives = summary.objectives
    names = summary.objective_order
    groups = summary.groups
    group_size = summary.rows / groups if groups else 0.0

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
        if diff is not None and diff < 1e-3:
            lines.append(
                f"logged_advantage matches {match} (max difference {diff:.2g}): that is the "
                "scheme your trainer ran with these settings."
            )
        else:
            lines.append(
                f"logged_advantage matches no scheme closely (closest: {match}, max difference "
                f"{_sci(diff)}); try --ddof 1 --eps 1e-4 (TRL) or the trainer's weights."
            )
    if 0 < group_size <= 4:
        lines.append(
            f"groups are small ({group_size:.1f} responses on average): within-group variance is "
            "a noisy estimate at this size."
        )
    if summary.skipped_groups:
        lines.append(f"{counted(summary.skipped_groups, 'group')} of size 1 were skipped.")
    return lines


def render(summary: Summary, console: Console, label: str) -> None:
    names = summary.objective_order
    settings = summary.settings
    console.print(
        f"{label}: {counted(summary.rows, 'response')}, {counted(summary.steps, 'step')}, "
        f"{counted(summary.groups, 'group')}, {counted(len(names), 'objective')} "
        f"(ddof {settings.ddof}, eps {settings.eps:g}, nan {settings.nan})",
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

"""`dvao report`'s page: one self-contained HTML file from an analysis, a train run or a
comparison. No computing here beyond choosing what to show.

Self-contained: the style sheet is inline, the figures are PNG data URIs, there is no script,
and a Content-Security-Policy forbids every other load, so the page opens offline in any
browser and asks the network for nothing. Every string from the data (objective names, paths,
messages) is escaped: `<b>`, `a[b]` and `$x$` print as they are. The tables are the terminal's
(`dvao_cli/cli/report.py`: the same headers and cells); the figures are `dvao plot`'s.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dvao_cli.cli import report as terminal

if TYPE_CHECKING:
    import polars as pl

    from dvao_cli.analysis.summary import Summary

PER_STEP_ROWS = 5000  # rows shown of a per-step table (the whole table: `dvao analyze --out`)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# figures in the order shown, with what each one answers
FIGURE_CAPTIONS = {
    "weights": "DVAO weight per objective over the steps (dashed: the preference weights).",
    "saturation": "Share of groups where an objective has no within-group variance.",
    "rewards": "Mean reward per objective over the steps.",
    "advantages": "Scale of each scheme's advantages over the steps.",
    "correlation": "Within-group correlation between objectives.",
    "learning_curves": "Mean reward per objective over the training steps.",
    "pareto": "Final rewards per scheme: the Pareto front.",
}


@dataclass(frozen=True)
class Verdict:
    """One `--fail-on` condition: its text, the metric's value and whether it tripped."""

    condition: str
    value: float
    tripped: bool


@dataclass(frozen=True)
class Comparison:
    """A `dvao train --compare` folder's table (`train.compare.comparison_table`)."""

    note: str
    headers: list[str]
    rows: list[list[str]]
    missing: list[str] = field(default_factory=list)  # planned runs not in compare.parquet


@dataclass
class Page:
    """What the page shows; None or empty: that section is left out."""

    label: str  # the source, short (the title)
    source: str  # the source as given
    kind: str  # "log", "analysis", "train" or "compare"
    version: str
    summary: Summary | None = None
    summary_json: Mapping[str, Any] = field(default_factory=dict)  # summary.json's content
    steps: pl.DataFrame | None = None
    schemes: pl.DataFrame | None = None
    figures: dict[str, bytes] = field(default_factory=dict)  # stem -> PNG
    skipped: dict[str, str] = field(default_factory=dict)  # stem -> why it is not drawn
    gate: list[Verdict] | None = None  # None: no --fail-on
    gate_recorded: bool = False  # the gate is the one `dvao analyze` recorded (no exit 3 here)
    comparison: Comparison | None = None
    run: dict[str, Any] = field(default_factory=dict)  # a train run's settings to show


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    """A class-name-safe form of a code from the data (`scale_mismatch`)."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:40] or "other"


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    cls: str = "",
    caption: str = "",
    text: Sequence[int] = (),
) -> str:
    """An HTML table: the first column is a label (left), the others numbers (right) but the
    `text` ones (left)."""

    def tag(name: str, i: int) -> str:
        return f'<{name} class="t">' if i in text else f"<{name}>"

    head = "".join(f"{tag('th', i)}{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"{tag('td', i)}{_e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    lines = "<br>".join(_e(line) for line in caption.splitlines())
    cap = f'<p class="caption">{lines}</p>' if caption else ""
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{cap}"
    )


def _correlation(summary: Summary) -> str:
    """The correlation table with each cell tinted by its value (blue +, red -)."""
    headers, rows = terminal.correlation_cells(summary)
    names = summary.objective_order
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for a, row in zip(names, rows, strict=True):
        cells = [f"<td>{_e(row[0])}</td>"]
        for b, text in zip(names, row[1:], strict=True):
            rho = summary.correlation[a][b]
            style = ""
            if rho is not None and a != b:
                hue = "33,102,172" if rho > 0 else "178,24,43"
                style = f' style="background: rgba({hue},{min(abs(rho), 1.0) * 0.55:.2f})"'
            cells.append(f"<td{style}>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="corr"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="caption">{_e(terminal.CORRELATION_CAPTION)}</p>'
    )


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _gate(verdicts: list[Verdict], recorded: bool) -> str:
    tripped = [v for v in verdicts if v.tripped]
    n = len(verdicts)
    given = "recorded by `dvao analyze`" if recorded else "(exit code 3)"
    if tripped:
        banner = (
            f'<div class="banner fail"><strong>Gate tripped</strong>: {len(tripped)} of {n} '
            f"--fail-on condition{'s' if n != 1 else ''} "
            f"{'holds' if len(tripped) == 1 else 'hold'} {given}</div>"
        )
    else:
        banner = (
            f'<div class="banner pass"><strong>Gate passed</strong>: none of {n} --fail-on '
            f"condition{'s' if n != 1 else ''} holds"
            f"{' ' + given if recorded else ''}</div>"
        )
    rows = "".join(
        f'<tr class="{"tripped" if v.tripped else "passed"}"><td><code>{_e(v.condition)}</code>'
        f"</td><td>{_e(f'{v.value:.6g}')}</td><td>{'tripped' if v.tripped else 'passed'}</td></tr>"
        for v in verdicts
    )
    table = (
        '<div class="scroll"><table class="gate"><thead><tr><th>--fail-on condition</th>'
        f"<th>value</th><th>verdict</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    return banner + table


def _description(page: Page) -> str:
    summary = page.summary
    items: list[tuple[str, str]] = [("source", page.source)]
    if summary is not None:
        s = summary.settings
        names = summary.objective_order
        items += [
            ("responses", f"{summary.rows:,}"),
            (
                "steps",
                f"{summary.steps:,} (steps {summary.first_step} to {summary.last_step})",
            ),
            (
                "groups",
                f"{summary.groups:,} ({summary.rows / max(summary.groups, 1):.1f} responses each "
                "on average)",
            ),
            ("objectives", ", ".join(names)),
            (
                "preference weights",
                ", ".join(f"{n} {summary.weights[n]:.3g}" for n in names),
            ),
            ("schemes", ", ".join(s.schemes)),
            ("settings", f"ddof {s.ddof}, eps {s.eps:g}, nan {s.nan}, engine on {s.device}"),
            ("logged advantage", "yes" if summary.has_logged_advantage else "no"),
        ]
        if summary.skipped_groups:
            items.append(
                (
                    "skipped",
                    f"{summary.skipped_groups:,} groups of one response "
                    f"({summary.skipped_rows:,} rows)",
                )
            )
        if summary.dropped_rows:
            items.append(("dropped", f"{summary.dropped_rows:,} rows (--nan drop)"))
    items += [(key, str(value)) for key, value in page.run.items()]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    body = f'<table class="facts"><tbody>{rows}</tbody></table>'
    if summary is not None and summary.files:
        n = len(summary.files)
        files = "".join(f"<li><code>{_e(f)}</code></li>" for f in summary.files)
        body += (
            f"<details><summary>{n:,} file{'s' if n != 1 else ''} read</summary>"
            f'<ul class="files">{files}</ul></details>'
        )
    return body


def _reading(page: Page) -> str:
    """The warnings (summary.json's `warnings`, styled by code), then the Reading's lines."""
    assert page.summary is not None
    warnings = page.summary_json.get("warnings") or []
    messages = set()
    items = []
    for w in warnings:
        if not isinstance(w, Mapping):
            continue
        code = str(w.get("code") or "warning")
        message = str(w.get("message") or "")
        messages.add(message)
        about = w.get("objective")
        badge = f'<span class="code">{_e(code)}</span>'
        on = f' <span class="about">{_e(about)}</span>' if about is not None else ""
        items.append(f'<li class="warning warn-{_slug(code)}">{badge}{on} {_e(message)}</li>')
    # a warning the Reading already says (as its message) is said once, styled
    lines = [line for line in terminal.reading(page.summary) if line not in messages]
    items += [f"<li>{_e(line)}</li>" for line in lines]
    if not items:
        return '<p class="muted">Nothing stands out in these numbers.</p>'
    return f'<ul class="reading">{"".join(items)}</ul>'


def _schemes(page: Page) -> str:
    assert page.summary is not None
    summary = page.summary
    headers, rows = terminal.scheme_cells(summary)
    body = _table(headers, rows, cls="num", caption=terminal.SCHEMES_CAPTION)
    if summary.has_logged_advantage:
        matching = page.summary_json.get("matching_schemes")
        best = summary.best_matching_scheme
        text = (
            "The log has a logged_advantage column: each scheme's max |difference| and "
            "correlation with it are in the last two columns. "
        )
        if isinstance(matching, list) and matching:
            text += "Schemes that match it: " + ", ".join(str(m) for m in matching) + "."
        elif best is not None:
            text += f"Closest scheme: {best}."
        body = f'<p class="note">{_e(text)}</p>' + body
    return body


def _figures(page: Page, names: Sequence[str]) -> str:
    parts = []
    for name in names:
        data = page.figures.get(name)
        if data is None:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        caption = FIGURE_CAPTIONS.get(name, "")
        parts.append(
            f'<figure id="fig-{_slug(name)}"><img src="{uri}" alt="{_e(name)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    for name, why in page.skipped.items():
        if name in names:
            parts.append(f'<p class="muted">{_e(name)}: not drawn ({_e(why)}).</p>')
    return "".join(parts)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _per_step(title: str, frame: pl.DataFrame | None) -> str:
    """A per-step table, folded (`<details>`: no script), cut at PER_STEP_ROWS rows."""
    if frame is None or frame.height == 0:
        return ""
    shown = frame.head(PER_STEP_ROWS)
    rows = [[_cell(v) for v in row] for row in shown.iter_rows()]
    more = ""
    if frame.height > shown.height:
        more = (
            f'<p class="muted">First {shown.height:,} of {frame.height:,} rows; '
            "`dvao analyze --out` writes them all.</p>"
        )
    import polars as pl

    text = [i for i, dtype in enumerate(frame.dtypes) if dtype == pl.String]
    table = _table(frame.columns, rows, cls="num steps", text=text)
    return f"<details><summary>{_e(title)} ({frame.height:,} rows)</summary>{table}{more}</details>"


def _comparison(comparison: Comparison) -> str:
    body = ""
    if comparison.missing:
        n = len(comparison.missing)
        body += (
            f'<div class="banner warn"><strong>Incomplete comparison</strong>: {n} planned '
            f"run{'s are' if n != 1 else ' is'} missing from compare.parquet: "
            f"{_e(', '.join(comparison.missing))}. The table covers the runs that finished."
            "</div>"
        )
    body += f'<p class="note">{_e(comparison.note)}</p>'
    body += _table(comparison.headers, comparison.rows, cls="num")
    return body


def render_page(page: Page) -> str:
    """The whole page as one HTML document."""
    sections = []
    nav: list[tuple[str, str]] = []

    def add(title: str, body: str, anchor: str) -> None:
        if body:
            sections.append(_section(title, body, anchor))
            nav.append((anchor, title))

    if page.gate is not None:
        add("Gate", _gate(page.gate, page.gate_recorded), "gate")
    add("Source" if page.summary is None else "Log", _description(page), "log")
    if page.comparison is not None:
        add("Comparison", _comparison(page.comparison), "comparison")
        add("Figures", _figures(page, ["learning_curves", "pareto"]), "figures")
    summary = page.summary
    if summary is not None:
        add("Reading", _reading(page), "reading")
        headers, rows = terminal.objective_cells(summary)
        add(
            "Objectives",
            _table(headers, rows, cls="num", caption=terminal.objectives_caption(summary)),
            "objectives",
        )
        add("Schemes", _schemes(page), "schemes")
        if len(summary.objective_order) > 1:
            add("Within-group correlation", _correlation(summary), "correlation")
        add(
            "Figures",
            _figures(
                page,
                [
                    "learning_curves",
                    "weights",
                    "saturation",
                    "rewards",
                    "advantages",
                    "correlation",
                ],
            ),
            "figures",
        )
        per_step = _per_step("Objectives per step", page.steps) + _per_step(
            "Schemes per step", page.schemes
        )
        add("Per step", per_step, "per-step")
    links = " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav)
    kind = {
        "log": "rollout log",
        "analysis": "dvao analyze --out folder",
        "train": "dvao train run",
        "compare": "dvao train --compare folder",
    }.get(page.kind, page.kind)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dvao {_e(page.version)}">
<title>dvao report: {_e(page.label)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header><div class="wrap"><div class="brand">dvao report</div>
<h1>{_e(page.label)}</h1><p class="sub">{_e(kind)} &middot; dvao {_e(page.version)}</p>
<nav>{links}</nav></div></header>
<main class="wrap">
{"".join(sections)}
</main>
<footer class="wrap">Written by <code>dvao report</code>, dvao {_e(page.version)}. One file:
the figures are embedded and nothing is loaded from the network.</footer>
</body>
</html>
"""


_STYLE = """
:root { --ink: #1f2430; --muted: #667085; --line: #e4e7ec; --bg: #f6f7f9; --card: #ffffff;
  --accent: #0b5cad; --pass: #1a7f37; --fail: #b42318; --warn: #b54708; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 24px; }
header { background: #17202e; color: #fff; padding: 22px 0 0; margin-bottom: 24px; }
header .brand { font-size: 12px; letter-spacing: .12em; text-transform: uppercase;
  color: #9fb3c8; }
header h1 { margin: 4px 0 2px; font-size: 26px; font-weight: 600; word-break: break-all; }
header .sub { margin: 0 0 14px; color: #c3cfdb; font-size: 13px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 10px 0 12px;
  border-top: 1px solid #2c3a4f; font-size: 13px; }
nav a { color: #c9dcf2; text-decoration: none; }
nav a:hover { color: #fff; text-decoration: underline; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 18px 22px 16px; margin-bottom: 18px; }
h2 { margin: 0 0 12px; font-size: 18px; font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
thead th { background: #f1f3f6; font-weight: 600; text-align: right; white-space: normal;
  vertical-align: bottom; border-bottom: 1px solid #d0d5dd; }
thead th:first-child, tbody td:first-child { text-align: left; }
td { text-align: right; }
th.t, td.t { text-align: left; }
table.num tbody tr:nth-child(even) td { background-color: #fafbfc; }
table.corr td { text-align: center; min-width: 72px; }
table.corr td:first-child { text-align: left; min-width: 0; }
table.facts th { text-align: left; color: var(--muted); font-weight: 500; background: none;
  border: 0; padding: 3px 18px 3px 0; vertical-align: top; }
table.facts td { text-align: left; border: 0; padding: 3px 0; white-space: normal;
  word-break: break-word; }
table.gate td:first-child code { font-size: 13px; }
table.gate tr.tripped td { color: var(--fail); font-weight: 600; }
table.gate tr.passed td:last-child { color: var(--pass); }
.caption, .muted { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
.note { margin: 0 0 10px; }
.banner { border-radius: 6px; padding: 10px 14px; margin-bottom: 12px; }
.banner.pass { background: #e9f7ef; color: var(--pass); border: 1px solid #abe3c0; }
.banner.fail { background: #fdecea; color: var(--fail); border: 1px solid #f5b5ae; }
.banner.warn { background: #fff6e5; color: var(--warn); border: 1px solid #f7d59b; }
ul.reading { margin: 0; padding-left: 20px; }
ul.reading li { margin: 4px 0; }
ul.reading li.warning { list-style: none; margin-left: -20px; padding: 8px 12px;
  border-left: 4px solid var(--warn); background: #fff8ec; border-radius: 4px; }
li.warning .code { font: 600 11.5px ui-monospace, "DejaVu Sans Mono", monospace;
  text-transform: uppercase; letter-spacing: .04em; color: var(--warn); margin-right: 6px; }
li.warning .about { font-weight: 600; }
li.warn-scale_mismatch, li.warn-oversized_group { border-left-color: var(--fail) !important;
  background: #fdf0ef !important; }
li.warn-scale_mismatch .code, li.warn-oversized_group .code { color: var(--fail); }
li.warn-small_groups { border-left-color: var(--accent) !important;
  background: #eef5fc !important; }
li.warn-small_groups .code { color: var(--accent); }
figure { margin: 0 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
  background: #fff; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
ul.files { font-size: 12.5px; margin: 6px 0; max-height: 240px; overflow-y: auto; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
footer { color: var(--muted); font-size: 12px; padding: 6px 24px 32px; }
"""

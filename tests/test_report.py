"""`dvao report`: the page's contents (every objective and scheme, the warnings, the gate's
verdict, escaping, no network resource), exit 3 with the page written, the output checks, train
run and compare folder pages, and a headless Chromium render (`scripts/install-chromium`)."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from test_plot import write_compare, write_log

from dvao_cli.analysis.pipeline import analyze
from dvao_cli.analysis.summary import summary_from_json
from dvao_cli.cli import report as terminal
from dvao_cli.cli.html_report import Page, render_page
from dvao_cli.core.schemes import SCHEMES
from dvao_cli.train.compare import comparison_table, summarize

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "rollouts.parquet"
ODD = ("<b>", "a[b]", "$x$")  # objective names are data


class _Tables(HTMLParser):
    """Every table of a page, by the id of its section: a list of rows of cell texts (th and
    td), and every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._section = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section][-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


def text_of(page: str) -> str:
    return " ".join("".join(parse(page).text).split())


def external_refs(page: str) -> list[str]:
    """Every reference the page would load: src/href attributes (but in-page anchors and data
    URIs), url(...) and @import in styles."""
    refs = []
    for _tag, attrs in parse(page).tags:
        for key in ("src", "href", "srcset", "poster", "data", "action"):
            value = attrs.get(key)
            if value is not None and not value.startswith(("#", "data:")):
                refs.append(value)
    refs += re.findall(r"url\(\s*['\"]?(?!data:)([^)'\"]*)", page)
    refs += re.findall(r"@import", page)
    return refs


@pytest.fixture
def odd_log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "logs" / "odd.parquet", n_steps=4, names=ODD)


def test_log_page_holds_every_objective_scheme_and_table(cli, odd_log: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    result = cli("report", odd_log, "-o", out)
    assert result.code == 0, result.err
    assert result.err == f"wrote {out}\n" and result.out == ""
    page = out.read_text(encoding="utf-8")
    summary = analyze(odd_log).summary
    tables = parse(page).tables
    # the terminal's tables, cell for cell: every objective and every scheme
    headers, rows = terminal.objective_cells(summary)
    assert tables["objectives"][0] == [headers, *rows]
    assert [row[0] for row in rows] == list(ODD)
    headers, rows = terminal.scheme_cells(summary)
    assert tables["schemes"][0] == [headers, *rows]
    assert [row[0] for row in rows] == list(SCHEMES)
    headers, rows = terminal.correlation_cells(summary)
    assert tables["correlation"][0] == [headers, *rows]
    facts = dict(tables["log"][0])
    assert facts["responses"] == "64" and facts["objectives"] == "<b>, a[b], $x$"
    assert facts["steps"] == "4 (steps 0 to 3)"
    # the Reading, every line
    text = text_of(page)
    for line in terminal.reading(summary):
        assert " ".join(line.split()) in text
    # the per-step tables, folded: one row per (step, objective) and per (step, scheme)
    per_step = tables["per-step"]
    assert [len(t) - 1 for t in per_step] == [4 * 3, 4 * len(SCHEMES)]
    assert per_step[0][0] == analyze(odd_log).steps.columns
    assert page.count("<details>") == 3  # the files read, and the two per-step tables
    assert "Objectives per step (12 rows)" in text
    # dvao plot's figures, embedded
    images = [a["src"] for tag, a in parse(page).tags if tag == "img"]
    assert len(images) == 5
    for src in images:
        assert src is not None and src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing loaded from anywhere: no script, no external reference, a CSP that forbids it
    assert external_refs(page) == []
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page


def test_names_print_as_they_are(cli, odd_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert cli("report", odd_log, "-o", out, "--fail-on", "mean[<b>]>2").code == 0
    page = out.read_text(encoding="utf-8")
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert "a[b]" in page and "$x$" in page
    assert "mean[&lt;b&gt;]&gt;2" in page
    tables = parse(page).tables
    assert [row[0] for row in tables["objectives"][0][1:]] == list(ODD)


def test_gate_tripped_writes_the_page_and_exits_3(cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    conditions = ["saturation[format]>0.8", "dvao_weight[accuracy]<0.2"]
    result = cli("report", SAMPLE, "-o", out, *[f"--fail-on={c}" for c in conditions])
    assert result.code == 3
    assert result.err.splitlines() == [
        f"wrote {out}",
        "gate tripped: saturation[format] = 0.894271 > 0.8",
        "error: 1 --fail-on condition tripped",
    ]
    page = out.read_text(encoding="utf-8")
    summary = analyze(SAMPLE).summary
    gate = parse(page).tables["gate"][0]
    assert gate == [
        ["--fail-on condition", "value", "verdict"],
        ["saturation[format]>0.8", "0.894271", "tripped"],
        [
            "dvao_weight[accuracy]<0.2",
            f"{summary.objectives['accuracy'].dvao_weight:.6g}",
            "passed",
        ],
    ]
    assert "Gate tripped: 1 of 2 --fail-on conditions holds (exit code 3)" in text_of(page)


def test_gate_passed_is_said(cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = cli("report", SAMPLE, "-o", out, "--fail-on", "rows<1", "-q")
    assert (result.code, result.out, result.err) == (0, "", "")  # -q: nothing but errors
    page = out.read_text(encoding="utf-8")
    assert parse(page).tables["gate"][0][1] == ["rows<1", "15360", "passed"]
    assert "Gate passed: none of 1 --fail-on condition holds" in text_of(page)
    out.unlink()
    assert cli("report", SAMPLE, "-o", out).code == 0
    assert "gate" not in parse(out.read_text()).tables  # no --fail-on: no gate section


def test_analysis_options_reach_the_page(cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    args = ["-O", "accuracy", "-O", "length", "-w", "accuracy=0.8", "-w", "length=0.2"]
    args += ["-s", "rc", "-s", "dvao", "--ddof", "1", "--eps", "1e-4", "--nan", "ignore"]
    assert cli("report", SAMPLE, "-o", out, *args).code == 0
    summary = analyze(
        SAMPLE,
        objectives=["accuracy", "length"],
        weights={"accuracy": 0.8, "length": 0.2},
        schemes=["rc", "dvao"],
        ddof=1,
        eps=1e-4,
        nan="ignore",
    ).summary
    tables = parse(out.read_text()).tables
    headers, rows = terminal.objective_cells(summary)
    assert tables["objectives"][0] == [headers, *rows]
    assert [row[0] for row in tables["schemes"][0][1:]] == ["rc", "dvao"]
    assert dict(tables["log"][0])["settings"] == "ddof 1, eps 0.0001, nan ignore, engine on cpu"


def test_trainer_log_in_place(cli, tmp_path: Path) -> None:
    """A TRL completions/ folder, read in place with TRL's conventions: the logged advantage's
    agreement is on the page, and it names the scheme TRL ran."""
    from trainer_fixtures import write_trl_completions

    folder = tmp_path / "completions"
    write_trl_completions(folder, num_generations=8)
    out = tmp_path / "report.html"
    args = ["--ddof", "1", "--eps", "1e-4", "--nan", "ignore", "--format", "trl"]
    assert cli("report", folder, "-o", out, *args).code == 0
    summary = analyze(folder, ddof=1, eps=1e-4, nan="ignore").summary
    assert summary.best_matching_scheme == "rc"
    page = out.read_text()
    headers, rows = terminal.scheme_cells(summary)
    assert parse(page).tables["schemes"][0] == [headers, *rows]
    assert summary.matching_schemes == ("rc",)
    assert "Schemes that match it: rc." in text_of(page)
    assert any("logged_advantage matches rc" in line for line in terminal.reading(summary))


def test_report_takes_group_key(cli, tmp_path: Path) -> None:
    """--group-key and --allow-large-groups are analysis options: `dvao report` has them, and
    they reach the analysis as `dvao analyze`'s do."""
    from trainer_fixtures import write_trl_completions

    folder = tmp_path / "completions"
    write_trl_completions(folder, num_generations=8)
    out = tmp_path / "report.html"
    args = ["--format", "trl", "--group-key", "prompt", "--allow-large-groups"]
    assert cli("report", folder, "-o", out, *args).code == 0
    assert out.exists()
    # the same refusal as analyze's on a dvao log (whose groups are its group_id column)
    for command in (["analyze"], ["report", "-o", tmp_path / "x.html"]):
        result = cli(*command, SAMPLE, "--group-key", "group_id")
        assert result.code == 2
        assert "--group-key applies to a trainer's log or a table read in place" in result.err


def test_report_takes_every_analyze_option(cli) -> None:
    """One shared set: every option of `dvao analyze` but its outputs is one of report's."""
    import typer

    from dvao_cli.cli.app import app

    command = typer.main.get_command(app)
    options = {
        name: {p.name: tuple(p.opts) for p in command.commands[name].params}  # type: ignore[attr-defined]
        for name in ("analyze", "report")
    }
    own = {"out", "json_out"}
    shared = {k: v for k, v in options["analyze"].items() if k not in own}
    assert shared.items() <= options["report"].items()
    assert options["report"]["output"] == ("--output", "-o")
    result = cli("report", "--help")
    assert result.code == 0
    for flag in ("--objective", "--weight", "--scheme", "--ddof", "--eps", "--nan", "--fail-on"):
        assert flag in result.out
    for flag in ("--format", "--group-size", "--ragged", "--device", "--output"):
        assert flag in result.out


def test_warnings_and_matching_schemes_are_shown(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.parquet", n_steps=3, names=("acc", "len"))
    frame = pl.read_parquet(log)
    frame = frame.with_columns(pl.Series("logged_advantage", np.linspace(-1, 1, frame.height)))
    frame.write_parquet(log)
    analysis = analyze(log)
    data = analysis.summary.to_json()
    data["warnings"] = [
        {"code": "scale_mismatch", "objective": "len", "message": "len <leaves> [0, 1]"},
        {"code": "small_groups", "objective": None, "message": "groups of 4 & fewer"},
        {"code": "some<new>code", "objective": None, "message": "a code not known yet"},
    ]
    data["matching_schemes"] = ["rc", "dvao"]
    page = render_page(
        Page(
            label="log",
            source=str(log),
            kind="log",
            version="0",
            summary=analysis.summary,
            summary_json=data,
        )
    )
    items = re.findall(r'<li class="(warning [^"]*)">(.*?)</li>', page)
    assert items == [
        (
            "warning warn-scale_mismatch",
            '<span class="code">scale_mismatch</span> <span class="about">len</span> '
            "len &lt;leaves&gt; [0, 1]",
        ),
        (
            "warning warn-small_groups",
            '<span class="code">small_groups</span> groups of 4 &amp; fewer',
        ),
        (
            "warning warn-some-new-code",
            '<span class="code">some&lt;new&gt;code</span> a code not known yet',
        ),
    ]
    assert "Schemes that match it: rc, dvao." in text_of(page)
    headers = parse(page).tables["schemes"][0][0]
    assert headers[-2:] == ["vs logged: max |diff|", "corr"]


def test_analysis_folder_page_and_its_gate(cli, tmp_path: Path) -> None:
    folder = tmp_path / "an"
    assert cli("analyze", SAMPLE, "--out", folder, "-q").code == 0
    data = json.loads((folder / "summary.json").read_text())
    data["warnings"] = [{"code": "combined_score", "objective": "format", "message": "sum"}]
    (folder / "summary.json").write_text(json.dumps(data))
    out = tmp_path / "report.html"
    result = cli("report", folder, "-o", out, "--fail-on", "saturation[format]>0.8")
    assert result.code == 3
    assert "gate tripped: saturation[format] = 0.894271 > 0.8" in result.err
    page = out.read_text()
    summary = summary_from_json(data)
    headers, rows = terminal.objective_cells(summary)
    assert parse(page).tables["objectives"][0] == [headers, *rows]
    assert parse(page).tables["gate"][0][1] == ["saturation[format]>0.8", "0.894271", "tripped"]
    assert 'class="warning warn-combined_score"' in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 5
    # without --fail-on, the gate `dvao analyze --fail-on` recorded is shown (and exits 0)
    assert cli("analyze", SAMPLE, "--out", folder, "-q", "--fail-on", "mean[format]>0.9").code == 3
    assert cli("report", folder, "-o", out).code == 0
    page = out.read_text()
    assert parse(page).tables["gate"][0][1] == ["mean[format]>0.9", "0.956576", "tripped"]
    assert "Gate tripped: 1 of 1 --fail-on condition holds recorded by `dvao analyze`" in text_of(
        page
    )
    # an option the folder would ignore is refused, not silently dropped
    result = cli("report", folder, "-o", tmp_path / "x.html", "--scheme", "rc")
    assert result.code == 2
    assert result.err == (
        "error: --scheme does not apply here: the source is a `dvao analyze --out` folder, "
        "read as is; pass the log to analyze it with this option\n"
    )
    # a gate the folder cannot check is a usage error, as in analyze
    result = cli("report", folder, "-o", tmp_path / "x.html", "--fail-on", "mean[nope]>0")
    assert result.code == 2 and "'nope' is not an objective" in result.err
    assert not (tmp_path / "x.html").exists()
    # a summary.json this dvao cannot read is the user's input: exit 2, naming it
    data = json.loads((folder / "summary.json").read_text())
    data["objectives"]["format"]["mean"] = "high"
    (folder / "summary.json").write_text(json.dumps(data))
    result = cli("report", folder, "-o", out)
    assert result.code == 2
    assert result.err == (
        f"error: {folder / 'summary.json'}: not a summary this dvao can read "
        "(summary.objectives.format.mean: expected float, not 'high')\n"
    )


def test_summary_from_json_is_to_json_inverted(tmp_path: Path) -> None:
    summary = analyze(SAMPLE, fail_on=["rows>1"]).summary
    assert summary_from_json(json.loads(json.dumps(summary.to_json()))) == summary
    data = summary.to_json()
    del data["rows"]
    with pytest.raises(ValueError, match="summary: the key 'rows' is missing"):
        summary_from_json(data)
    data = summary.to_json()
    data["objectives"]["format"]["mean"] = "high"
    with pytest.raises(ValueError, match="summary.objectives.format.mean: expected float"):
        summary_from_json(data)


def test_refuses_to_overwrite_an_input(cli, tmp_path: Path) -> None:
    log = write_log(tmp_path / "logs" / "a.parquet")
    before = log.read_bytes()
    result = cli("report", log, "-o", log)
    assert result.code == 2
    assert result.err == (
        f"error: {log}: --output would overwrite an input (a file this command reads or "
        "skips); write elsewhere\n"
    )
    assert log.read_bytes() == before
    # a file the reader skips in a log folder is the user's: refused too
    notes = tmp_path / "logs" / "notes.txt"
    notes.write_text("mine")
    assert cli("report", tmp_path / "logs", "-o", notes).code == 2
    assert notes.read_text() == "mine"
    # and so is a new page there, which would be such a file next time
    page = tmp_path / "logs" / "sub" / "report.html"
    result = cli("report", tmp_path / "logs", "-o", page)
    assert result.code == 2
    assert result.err == (
        f"error: {page}: is inside the log folder {tmp_path / 'logs'}, which this report "
        "reads; --output must be outside it\n"
    )
    assert not page.exists()
    assert cli("report", log, "-o", tmp_path / "logs" / "report.html").code == 0  # a file: fine
    # an existing folder is not a page
    result = cli("report", log, "-o", tmp_path)
    assert result.code == 2 and "would replace a folder holding an input" in result.err
    other = tmp_path / "other"
    other.mkdir()
    result = cli("report", log, "-o", other)
    assert result.code == 2 and "is not a regular file" in result.err
    # an analysis folder's summary.json
    folder = tmp_path / "an"
    assert cli("analyze", log, "--out", folder, "-q").code == 0
    summary = (folder / "summary.json").read_bytes()
    assert cli("report", folder, "-o", folder / "summary.json").code == 2
    assert (folder / "summary.json").read_bytes() == summary


def test_page_is_written_whole(cli, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old page")
    # a failed analysis leaves the old page, and no temp file
    result = cli("report", SAMPLE, "-o", out, "-O", "nope")
    assert result.code == 2
    assert out.read_text() == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert cli("report", SAMPLE, "-o", out).code == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def write_train_run(run: Path, steps: int = 3) -> Path:
    write_log(run / "rollouts" / "step-000001.parquet", n_steps=steps, names=("a", "b", "junk"))
    config = {
        "task": "arithmetic",
        "scheme": "dvao",
        "seed": 7,
        "objectives": ["a", "b"],
        "weights": {"a": 0.75, "b": 0.25},
        "ddof": 1,
        "nan": "error",
    }
    (run / "config.json").write_text(json.dumps(config))
    pl.DataFrame(
        {
            "step": list(range(1, steps + 1)),
            "rewards/a/mean": [0.1, 0.2, 0.3][:steps],
            "rewards/b/mean": [0.9, 0.8, 0.7][:steps],
        }
    ).write_parquet(run / "metrics.parquet")
    return run


def test_train_run_page_adds_the_learning_curves(cli, tmp_path: Path) -> None:
    run = write_train_run(tmp_path / "run")
    out = run / "report.html"  # beside the run's files, as plots/ is
    result = cli("report", run, "-o", out, "--fail-on", "mean[a]>2")
    assert result.code == 0, result.err
    page = out.read_text()
    summary = analyze(
        run / "rollouts", objectives=["a", "b"], weights={"a": 0.75, "b": 0.25}, ddof=1
    ).summary
    tables = parse(page).tables
    headers, rows = terminal.objective_cells(summary)
    assert tables["objectives"][0] == [headers, *rows]  # the run's objectives and weights
    facts = dict(tables["log"][0])
    assert (facts["task"], facts["trained with"], facts["seed"]) == ("arithmetic", "dvao", "7")
    assert facts["settings"].startswith("ddof 1,")
    assert 'id="fig-learning_curves"' in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 6
    # run again: the old page is replaced (it is no input)
    assert cli("report", run, "-o", out, "--ddof", "0").code == 0
    assert dict(parse(out.read_text()).tables["log"][0])["settings"].startswith("ddof 0,")


def test_compare_folder_page(cli, tmp_path: Path) -> None:
    folder = write_compare(tmp_path / "cmp", seeds=2)
    out = tmp_path / "cmp.html"
    result = cli("report", folder, "-o", out)
    assert result.code == 0, result.err
    page = out.read_text()
    frame = pl.read_parquet(folder / "compare.parquet")
    names = ["accuracy", "length"]
    note, headers, rows = comparison_table(summarize(frame, names), names, seeds=2, sweep=True)
    assert parse(page).tables["comparison"][0] == [headers, *rows]
    assert note in text_of(page)
    assert 'id="fig-pareto"' in page and "Incomplete comparison" not in page
    assert external_refs(page) == []
    # a comparison stopped before its end says which runs are missing
    frame.filter(pl.col("scheme") != "ac").write_parquet(folder / "compare.parquet")
    assert cli("report", folder, "-o", out).code == 0
    text = text_of(out.read_text())
    assert (
        "Incomplete comparison: 4 planned runs are missing from compare.parquet: ac-w0.3-s0, "
        "ac-w0.3-s1, ac-w0.7-s0, ac-w0.7-s1." in text
    )
    result = cli("report", folder, "-o", out, "--fail-on", "rows>0")
    assert result.code == 2 and result.err.startswith("error: --fail-on does not apply here")


def test_compare_folder_with_curves(cli, tmp_path: Path) -> None:
    folder = tmp_path / "cmp"
    frame = []
    for scheme in ("rc", "dvao"):
        for seed in (0, 1):
            run = f"{scheme}-s{seed}"
            write_train_run(folder / run)
            frame.append(
                {"scheme": scheme, "seed": seed, "run": run, "w_a": 0.5, "w_b": 0.5}
                | {"final_a": 0.3 + seed / 10, "final_b": 0.7, "wall_s": 1.0}
            )
    pl.DataFrame(frame).write_parquet(folder / "compare.parquet")
    config = {"compare": True, "objectives": ["a", "b"], "schemes": ["rc", "dvao"]}
    (folder / "config.json").write_text(json.dumps(config | {"seeds": [0, 1]}))
    out = tmp_path / "cmp.html"
    assert cli("report", folder, "-o", out).code == 0
    page = out.read_text()
    assert 'id="fig-learning_curves"' in page and 'id="fig-pareto"' in page
    assert parse(page).tables["comparison"][0][0] == [
        "scheme", "a", "b", "a - dvao", "b - dvao", "wall s",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------
# The page in a real browser: headless Chromium over the DevTools protocol (a pipe)


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found is None and os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "chromium is missing in CI: scripts/test installs it (scripts/install-chromium)"
        )
    return found


class _DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out): JSON
    messages ended by a NUL byte."""

    def __init__(self, chromium: str, profile: str) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: no real network
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # the pipe's ends as fds 3 and 4 of chromium: bash moves them there
        self._proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', "bash", chromium]
            + flags,
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next(60)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while True:
            event = self._next(deadline - time.monotonic())
            self.events.append(event)
            if event.get("method") == method:
                return

    def _next(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._w)
        os.close(self._r)


def render_in_chromium(page: Path, chromium: str) -> dict[str, Any]:
    """Load `page` and return what the browser saw: the requests it made, the ones that
    failed, console and CSP reports, a full-page screenshot (PNG), the DOM's tables and
    whether every image decoded."""
    with tempfile.TemporaryDirectory() as profile:
        tools = _DevTools(chromium, profile)
        try:
            target = tools.send("Target.createTarget", url="about:blank")["targetId"]
            session = tools.send("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Network", "Page", "Log", "Runtime"):
                tools.send(f"{domain}.enable", session)
            tools.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=1200,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            tools.events.clear()
            tools.send("Page.navigate", session, url=page.resolve().as_uri())
            tools.wait_for("Page.loadEventFired")

            def evaluate(expression: str) -> Any:
                reply = tools.send(
                    "Runtime.evaluate", session, expression=expression, returnByValue=True
                )
                return reply["result"]["value"]

            seen = {
                "tables": evaluate(
                    "[...document.querySelectorAll('table')].map(t => [...t.rows].map("
                    "r => [...r.cells].map(c => c.textContent)))"
                ),
                "images": evaluate(
                    "[...document.images].map(i => i.complete && i.naturalWidth > 0)"
                ),
                "details": evaluate("document.querySelectorAll('details').length"),
                "height": evaluate("document.documentElement.scrollHeight"),
            }
            shot = tools.send(
                "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
            )
            seen["screenshot"] = base64.b64decode(shot["data"])
            events = [e for e in tools.events if e.get("sessionId") == session]
            seen["requests"] = [
                e["params"]["request"]["url"]
                for e in events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            seen["failed"] = [
                e["params"] for e in events if e.get("method") == "Network.loadingFailed"
            ]
            seen["log"] = [
                e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
            ]
            return seen
        finally:
            tools.close()


def test_page_renders_in_headless_chromium(cli, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install-chromium installs it)")
    out = tmp_path / "report.html"
    assert cli("report", SAMPLE, "-o", out, "--fail-on", "saturation[format]>0.8").code == 3
    seen = render_in_chromium(out, chromium)
    # every request is the page itself or one of its data URIs, and none failed
    others = [url for url in seen["requests"] if not url.startswith(("data:", "file://"))]
    assert others == [] and seen["failed"] == [] and seen["log"] == []
    assert [url for url in seen["requests"] if url.startswith("file://")] == [out.as_uri()]
    # a real page: its tables in the DOM, every figure decoded, the per-step tables folded
    tables = seen["tables"]
    summary = analyze(SAMPLE).summary
    headers, rows = terminal.objective_cells(summary)
    assert [headers, *rows] in tables
    headers, rows = terminal.scheme_cells(summary)
    assert [headers, *rows] in tables
    assert ["saturation[format]>0.8", "0.894271", "tripped"] in [r for t in tables for r in t]
    assert seen["images"] == [True] * 5
    assert seen["details"] == 3
    # and not blank: the screenshot, as tall as the page, is mostly drawn on
    from matplotlib.image import imread

    png = tmp_path / "shot.png"
    png.write_bytes(seen["screenshot"])
    pixels = imread(png)[..., :3]  # (H, W, 3) in [0, 1]
    assert pixels.shape[0] == seen["height"] > 3000 and pixels.shape[1] == 1200
    not_white = (pixels < 0.97).any(axis=2).mean()
    rgb = (pixels * 255).astype(np.uint32)
    colours = len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]))
    assert not_white > 0.3 and colours > 200


def test_the_browser_check_sees_a_page_that_loads_from_the_network(tmp_path: Path) -> None:
    """The harness above is not vacuous: a page with an external image and style sheet shows
    both requests, failed (nothing resolves), and an image that did not decode."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install-chromium installs it)")
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><p>x</p><img src="https://example.com/x.png">'
        '<link rel="stylesheet" href="http://example.org/a.css">'
    )
    seen = render_in_chromium(page, chromium)
    assert seen["requests"][1:] == ["https://example.com/x.png", "http://example.org/a.css"]
    assert len(seen["failed"]) == 2 and seen["images"] == [False]
    assert external_refs(page.read_text()) == [
        "https://example.com/x.png",
        "http://example.org/a.css",
    ]

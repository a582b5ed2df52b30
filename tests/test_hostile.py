"""Hostile but realistic use (issue 11): one test per family, each with cases of its own.

1 no input is ever overwritten; 3 an output set is whole (the kill test is in
test_hostile_kill.py); 6 names are data, never markup; 7 the user's OS errors are exit 2 with one
line naming the path; 9 `-q` and `--debug` after the command.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from trainer_fixtures import write_trl_completions, write_verl_rollouts

from dvao_cli import io

COMMANDS = ["analyze", "plot", "simulate", "train", "import"]
OUT_FILES = ["advantages.parquet", "schemes.parquet", "steps.parquet", "summary.json"]


def small_log(path: Path, names: tuple[str, ...] = ("accuracy", "format"), seed: int = 0) -> Path:
    """3 steps x 2 groups x 4 responses, binary rewards that vary inside most groups."""
    rows = 24
    frame = {
        "step": [i // 8 for i in range(rows)],
        "group_id": [(i // 4) % 2 for i in range(rows)],
        "sample_id": [i % 4 for i in range(rows)],
    }
    rng = np.random.default_rng(seed)
    for name in names:
        frame[name] = rng.integers(0, 2, rows).astype(np.float64).tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(frame).write_parquet(path)
    return path


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under the roots (hidden ones too) with its bytes."""
    files = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                files[str(path)] = path.read_bytes()
    return files


def leftovers(folder: Path) -> list[str]:
    """dvao's hidden temp files and staging folders in `folder`."""
    return sorted(p.name for p in folder.iterdir() if ".dvao-" in p.name)


# --------------------------------------------------------------------------------------------
# Family 1: an input is never overwritten
# --------------------------------------------------------------------------------------------


def _log_part_named_steps(tmp: Path) -> tuple[list[str], Path]:
    log = small_log(tmp / "run" / "steps.parquet")  # the user's log, named like a table
    return ["analyze", log, "--out", tmp / "run"], log


def _log_folder_as_out(tmp: Path) -> tuple[list[str], Path]:
    small_log(tmp / "logs" / "part-0.parquet")
    return ["analyze", tmp / "logs", "--out", tmp / "logs"], tmp / "logs" / "advantages.parquet"


def _out_inside_log_folder(tmp: Path) -> tuple[list[str], Path]:
    small_log(tmp / "logs" / "part-0.parquet")
    report = tmp / "logs" / "report"
    return ["analyze", tmp / "logs", "--out", report], report / "advantages.parquet"


def _hard_link(tmp: Path) -> tuple[list[str], Path]:
    log = small_log(tmp / "log.parquet")
    (tmp / "out").mkdir()
    os.link(log, tmp / "out" / "summary.json")
    return ["analyze", log, "--out", tmp / "out"], tmp / "out" / "summary.json"


def _symlink(tmp: Path) -> tuple[list[str], Path]:
    log = small_log(tmp / "log.parquet")
    (tmp / "out").mkdir()
    (tmp / "out" / "schemes.parquet").symlink_to(log)
    return ["analyze", log, "--out", tmp / "out"], tmp / "out" / "schemes.parquet"


def _skipped_hidden_file(tmp: Path) -> tuple[list[str], Path]:
    small_log(tmp / "logs" / "part-0.parquet")
    cache = tmp / "logs" / ".cache"
    cache.mkdir()
    small_log(cache / "steps.parquet")  # discovery skips hidden folders: still the user's
    return ["analyze", tmp / "logs", "--out", cache], cache / "steps.parquet"


def _verl_step_file(tmp: Path) -> tuple[list[str], Path]:
    write_verl_rollouts(tmp / "dump")
    return [
        "import",
        "verl",
        tmp / "dump",
        "-o",
        tmp / "dump" / "1.jsonl",
    ], tmp / "dump" / "1.jsonl"


def _trl_skipped_file(tmp: Path) -> tuple[list[str], Path]:
    write_trl_completions(tmp / "trl")
    (tmp / "trl" / "notes.txt").write_text("my notes\n")  # not a TRL file: import skips it
    return [
        "import",
        "trl",
        tmp / "trl",
        "-o",
        tmp / "trl" / "notes.txt",
    ], tmp / "trl" / "notes.txt"


def _plot_over_its_log(tmp: Path) -> tuple[list[str], Path]:
    log = small_log(tmp / "figs" / "weights.png")  # a Parquet log with an image's name
    return ["plot", log, "--out", tmp / "figs"], log


def _trl_new_step_file(tmp: Path) -> tuple[list[str], Path]:
    write_trl_completions(tmp / "trl")  # a name TRL's discovery reads next time
    out = tmp / "trl" / "completions_99999.parquet"
    return ["import", "trl", tmp / "trl", "-o", out], out


def _verl_new_step_file(tmp: Path) -> tuple[list[str], Path]:
    write_verl_rollouts(tmp / "dump")
    out = tmp / "dump" / "9.jsonl"
    return ["import", "verl", tmp / "dump", "-o", out], out


def _out_beside_the_log_file(tmp: Path) -> tuple[list[str], Path]:
    log = small_log(tmp / "run" / "log.parquet")  # `dvao analyze run` would read the tables
    return ["analyze", log, "--out", tmp / "run" / "sub" / ".."], tmp / "run" / "summary.json"


def _out_beside_a_glob_through_a_link(tmp: Path) -> tuple[list[str], Path]:
    small_log(tmp / "run" / "log.parquet")
    (tmp / "link").symlink_to(tmp / "run")
    return ["analyze", f"{tmp}/run/*.parquet", "--out", tmp / "link"], tmp / "link" / "x"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (_trl_new_step_file, "{tmp}/trl/completions_99999.parquet: is inside the log folder"),
        (_verl_new_step_file, "{tmp}/dump/9.jsonl: is inside the log folder {tmp}/dump: it"),
        (_out_beside_the_log_file, "{tmp}/run/sub/../advantages.parquet: is beside the log"),
        (_out_beside_a_glob_through_a_link, "{tmp}/link/advantages.parquet: is beside the log"),
        (_log_part_named_steps, "{tmp}/run/steps.parquet: --out would overwrite an input"),
        (_log_folder_as_out, "{tmp}/logs/advantages.parquet: is inside the log folder {tmp}/logs"),
        (_out_inside_log_folder, "{tmp}/logs/report/advantages.parquet: is inside the log folder"),
        (_hard_link, "{tmp}/out/summary.json: --out would overwrite an input (a file this "),
        (_symlink, "{tmp}/out/schemes.parquet: --out would overwrite an input"),
        (_skipped_hidden_file, "{tmp}/logs/.cache/steps.parquet: --out would overwrite an input"),
        (_verl_step_file, "{tmp}/dump/1.jsonl: -o would overwrite an input"),
        (_trl_skipped_file, "{tmp}/trl/notes.txt: -o would overwrite an input"),
        (_plot_over_its_log, "{tmp}/figs/weights.png: --out would overwrite an input"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:],
)
def test_family1_an_input_is_never_overwritten(cli, tmp_path: Path, case, message: str) -> None:
    args, protected = case(tmp_path)
    before = snapshot(tmp_path)
    result = cli(*args)
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith(
        "error: " + message.format(tmp=tmp_path)
    )
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced
    assert protected.exists() or not before.get(str(protected))
    for folder in {tmp_path, *(p.parent for p in tmp_path.rglob("*"))}:
        assert leftovers(folder) == []


def test_family1_exact_message_and_hard_link_named(cli, tmp_path: Path) -> None:
    args, _ = _hard_link(tmp_path)
    result = cli(*args)
    assert result.err == (
        f"error: {tmp_path}/out/summary.json: --out would overwrite an input (a file this "
        f"command reads or skips ({tmp_path}/log.parquet)); write elsewhere\n"
    )


def test_family1_import_beside_the_trainer_files_with_another_name(cli, tmp_path: Path) -> None:
    trl = tmp_path / "run"
    write_trl_completions(trl / "completions")  # TRL's layout: <output_dir>/completions/
    before = snapshot(trl / "completions")
    assert cli("import", "trl", trl, "-o", trl / "log.parquet", "-q").code == 0
    assert cli("import", "trl", trl, "-o", trl / "log2.parquet", "-q").code == 0
    assert snapshot(trl / "completions") == before


def test_family1_check_outputs_api(tmp_path: Path) -> None:
    log = small_log(tmp_path / "a.parquet")
    io.check_outputs([tmp_path / "b.parquet"], [log])  # a new file: fine
    with pytest.raises(Exception, match="would overwrite an input"):
        io.check_outputs([tmp_path / "x" / ".." / "a.parquet"], [log], option="-o")
    assert io.input_files([tmp_path / "*.parquet"]) == [log]
    assert io.input_files([tmp_path / "missing"]) == []


# --------------------------------------------------------------------------------------------
# Family 3: an output set is whole (the SIGKILL test: test_hostile_kill.py)
# --------------------------------------------------------------------------------------------


def _set(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUT_FILES}


def test_family3_a_new_set_replaces_the_old_whole_and_keeps_your_files(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out, "--ddof", "0").code == 0
    (out / "plots").mkdir()
    (out / "plots" / "weights.png").write_bytes(b"png")
    (out / "notes.txt").write_text("mine\n")
    assert cli("analyze", log, "--out", out, "--ddof", "1").code == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["ddof"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUT_FILES, "notes.txt", "plots"])
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "plots" / "weights.png").read_bytes() == b"png"
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def test_family3_without_the_exchange_rename_too(cli, tmp_path: Path, monkeypatch) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out, "--ddof", "0").code == 0
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    (out / "notes.txt").write_text("mine\n")
    assert cli("analyze", log, "--out", out, "--ddof", "1").code == 0
    assert json.loads((out / "summary.json").read_text())["settings"]["ddof"] == 1
    assert (out / "notes.txt").read_text() == "mine\n"
    assert leftovers(tmp_path) == []


def test_family3_a_failed_swap_keeps_the_old_set(cli, tmp_path: Path, monkeypatch) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out).code == 0
    old = _set(out)

    def broken(a: Path, b: Path) -> bool:
        raise OSError(errno.EIO, "Input/output error", str(b))

    monkeypatch.setattr(io, "_exchange", broken)
    result = cli("analyze", log, "--out", out, "--ddof", "1")
    assert (result.code, result.err) == (
        2,
        f"error: {out}: cannot write (Input/output error); nothing was written\n",
    )
    assert _set(out) == old
    assert leftovers(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_family3_the_next_run_cleans_up_after_a_killed_one(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out).code == 0
    dead = _dead_pid()
    # a staged set that never got swapped in (killed while writing): hundreds of MB, hidden
    partial = tmp_path / f".out.dvao-{dead}-0a0a0a0a"
    partial.mkdir()
    (partial / io.MARKER).touch()
    (partial / "advantages.parquet").write_bytes(b"x" * 1000)
    # an old folder swapped out, killed before your files were moved back
    swapped = tmp_path / f".out.dvao-{dead}-0b0b0b0b"
    swapped.mkdir()
    (swapped / "summary.json").write_text("old\n")
    (swapped / "notes.txt").write_text("mine\n")
    # a file temp of a killed import, and one of a live run (left alone)
    (tmp_path / f".log2.parquet.dvao-{dead}-0c0c0c0c.tmp").write_bytes(b"half")
    live = tmp_path / f".log2.parquet.dvao-{os.getppid()}-0d0d0d0d.tmp"
    live.write_bytes(b"busy")
    (out / io.MARKER).touch()  # killed just after a swap
    assert cli("analyze", log, "--out", out, "--ddof", "1").code == 0
    assert leftovers(tmp_path) == sorted([f".log2.parquet.dvao-{dead}-0c0c0c0c.tmp", live.name])
    assert (out / "notes.txt").read_text() == "mine\n"
    assert json.loads((out / "summary.json").read_text())["settings"]["ddof"] == 1
    assert not (out / io.MARKER).exists()
    io.write_text("new\n", tmp_path / "log2.parquet")
    assert leftovers(tmp_path) == [live.name]


def test_family3_cut_just_after_the_swap(cli, tmp_path: Path, monkeypatch) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out).code == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "plots").mkdir()
    (out / "plots" / "a.png").write_bytes(b"png")

    def killed(old: Path, target: Path) -> None:
        raise KeyboardInterrupt  # as if killed between the swap and moving your folders back

    monkeypatch.setattr(io, "_carry_over", killed)
    assert cli("analyze", log, "--out", out, "--ddof", "1").code == 130
    # the new set is in, and your files with it (hard-linked before the swap); plots/ waits
    assert json.loads((out / "summary.json").read_text())["settings"]["ddof"] == 1
    assert (out / "notes.txt").read_text() == "mine\n" and not (out / "plots").exists()
    monkeypatch.undo()
    io.recover(out)  # what the next run does first
    assert (out / "plots" / "a.png").read_bytes() == b"png"
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUT_FILES, "notes.txt", "plots"])
    assert leftovers(tmp_path) == []


def test_family3_a_missing_target_gets_the_swapped_out_set_back(tmp_path: Path) -> None:
    # the fallback path killed between its two renames: no folder at the target
    dead = _dead_pid()
    old = tmp_path / f".out.dvao-{dead}-01010101"
    old.mkdir()
    (old / "summary.json").write_text("old\n")
    new = tmp_path / f".out.dvao-{dead}-02020202"
    new.mkdir()
    (new / io.MARKER).touch()
    (new / "summary.json").write_text("new, incomplete\n")
    io.recover(tmp_path / "out")
    assert (tmp_path / "out" / "summary.json").read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_family3_plot_figures_are_one_set(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    figs = tmp_path / "figs"
    assert cli("plot", log, "--out", figs, "--format", "svg").code == 0
    names = sorted(p.name for p in figs.iterdir())
    assert names and all(n.endswith(".svg") for n in names)
    assert leftovers(tmp_path) == [] and leftovers(figs) == []
    # an analyze folder's figures go to its plots/, again and again
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out).code == 0
    for _ in range(2):
        assert cli("plot", out, "-q").code == 0
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        n.replace(".svg", ".png") for n in names
    ]


# --------------------------------------------------------------------------------------------
# Family 4: numbers at the edges (messages name the real cause)
# --------------------------------------------------------------------------------------------


def test_family4_nothing_left_to_analyze_says_why(cli, tmp_path: Path) -> None:
    allnan = tmp_path / "allnan.parquet"
    frame = pl.read_parquet(small_log(tmp_path / "base.parquet"))
    frame.with_columns(accuracy=pl.lit(float("nan"))).write_parquet(allnan)
    singles = tmp_path / "singles.parquet"
    frame.with_columns(group_id=pl.int_range(pl.len())).write_parquet(singles)
    for args, message in [
        ((allnan, "--nan", "drop"), "--nan drop dropped all 24 rows (each has a NaN, infinite"),
        ((singles,), "every group left has one response (24 groups of size 1: no within-group"),
        ((tmp_path / "base.parquet", "--nan", "drop", "--objective", "accuracy"), None),
    ]:
        result = cli("analyze", *args)
        if message is None:
            assert result.code == 0
            continue
        assert result.code == 2 and result.err.startswith(
            f"error: {args[0]}: the log has no rows to analyze: {message}"
        )
    plot = cli("plot", allnan, "--nan", "drop", "--out", tmp_path / "f")
    assert plot.code == 2 and "--nan drop dropped all 24 rows" in plot.err


def test_family4_weights_that_would_overflow_are_refused(cli, tmp_path: Path) -> None:
    frame = pl.read_parquet(small_log(tmp_path / "base.parquet"))
    big = tmp_path / "big.parquet"
    frame.with_columns(accuracy=pl.col("accuracy") * 1e149).write_parquet(big)
    huge = cli("analyze", big, "--weight", "accuracy=1e308", "--weight", "format=1e308")
    assert huge.code == 2 and huge.err.startswith(
        "error: --weight 'accuracy=1e308': weights above 1e+06 would overflow the weighted sums"
    )
    times = cli("analyze", big, "--weight", "accuracy=11", "--weight", "format=1", "--json")
    assert (times.code, times.out) == (2, "")  # was rc's mean square 0, silently
    assert times.err == (
        f"error: {big}: column 'accuracy': rewards reach 1e+149 in magnitude, and 11 x that "
        "passes 1e+150 (sums of the squares of weighted rewards must fit in float64): rescale "
        "the rewards or the weights\n"
    )
    fine = cli("analyze", big, "--weight", "accuracy=10", "--weight", "format=1", "--json")
    scaled = cli("analyze", big, "--weight", "accuracy=1", "--weight", "format=0.1", "--json")
    rc = [json.loads(r.out)["schemes"]["rc"]["mean_square"] for r in (fine, scaled)]
    assert fine.code == 0 and rc[0] == pytest.approx(rc[1]) and rc[0] > 0.5


# --------------------------------------------------------------------------------------------
# Family 5: no silent regrouping
# --------------------------------------------------------------------------------------------


def test_family5_a_response_without_a_prompt_is_refused(cli, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    write_verl_rollouts(dump, steps=(1,))
    lines = [json.loads(line) for line in (dump / "1.jsonl").read_text().splitlines()]
    lines[5]["input"] = None  # grouped by (step, input): it would join no group, or all nulls
    (dump / "1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    trl = tmp_path / "trl"
    write_trl_completions(trl, steps=(1,))
    part = trl / "completions_00001.parquet"
    frame = pl.read_parquet(part)
    frame.with_columns(prompt=pl.lit(None, dtype=pl.String)).write_parquet(part)
    message = "column 'prompt': no prompt (null) for a response: groups are rebuilt from the"
    for args, where in [
        (("import", "verl", dump, "-o", tmp_path / "v.parquet"), f"{dump}/1.jsonl:6"),
        (("analyze", dump), f"{dump}/1.jsonl:6"),
        (("import", "trl", trl, "-o", tmp_path / "t.parquet", "--group-size", "4"), str(part)),
    ]:
        result = cli(*args)
        assert result.code == 2 and result.err.startswith(f"error: {where}: {message}"), args
    assert not (tmp_path / "v.parquet").exists() and not (tmp_path / "t.parquet").exists()


# --------------------------------------------------------------------------------------------
# Family 6: names are data, never markup
# --------------------------------------------------------------------------------------------

ODD = ("[/bold]", "a[b]", "fmt[x]", "$\\frac{x$")


def test_family6_names_print_verbatim_in_tables_messages_and_gates(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "odd.parquet", names=ODD)
    result = cli("analyze", log)
    assert result.code == 0
    lines = result.out.splitlines()
    for name in ODD:  # a row of the objectives table and one of the correlation table
        assert sum(line.startswith(f"  {name} ") for line in lines) == 2, name
    header = [line for line in lines if "fmt[x]" in line and "a[b]" in line]
    assert header and header[0].split() == list(ODD)  # the correlation table's header

    weights = ["--weight", '"[/bold]"=0.5', "--weight", "a[b]=0.2"]
    weights += ["--weight", '"fmt[x]"=0.2', "--weight", '"$\\\\frac{x$"=0.1']
    summary = json.loads(cli("analyze", log, "--json", *weights).out)
    assert summary["weights"] == {"[/bold]": 0.5, "a[b]": 0.2, "fmt[x]": 0.2, "$\\frac{x$": 0.1}
    equal = json.loads(cli("analyze", log, "--json").out)
    w = equal["objectives"]["fmt[x]"]["dvao_weight"]
    gated = cli("analyze", log, "--json", "--fail-on", f'dvao_weight["fmt[x]"] < {w + 0.01}')
    assert gated.code == 3
    assert (
        gated.err.splitlines()[0] == f"gate tripped: dvao_weight[fmt[x]] = {w:.6g} < {w + 0.01:g}"
    )
    bare = cli("analyze", log, "--json", "--fail-on", "mean[[/bold]]>=0")
    assert bare.code == 3 and bare.err.startswith("gate tripped: mean[[/bold]] = ")

    unknown = cli("analyze", log, "--weight", '"[/bol"=1')
    assert (unknown.code, unknown.err) == (
        2,
        "error: --weight names '[/bol', which is not an objective (did you mean '[/bold]'?)\n",
    )
    bad = cli("analyze", log, "--fail-on", 'mean["a[b]>0')
    assert bad.code == 2 and bad.err.startswith(
        "error: --fail-on 'mean[\"a[b]>0': unterminated or malformed quoted name; a name holding"
    )


def test_family6_control_characters_in_names_never_reach_the_terminal(cli, tmp_path) -> None:
    names = ("\x1b[31mred", "bell\x07", "line\nbreak")
    log = small_log(tmp_path / "ctl.parquet", names=names)
    result = cli("analyze", log)
    assert result.code == 0 and "\x1b" not in result.out and "\x07" not in result.out
    assert "  \\x1b[31mred " in result.out and "  bell\\x07 " in result.out
    gated = cli("analyze", log, "--fail-on", 'mean["\\u001b[31mred"]>-1')
    assert gated.code == 3 and gated.err.startswith("gate tripped: mean[\\x1b[31mred] = ")
    bad = cli("analyze", log, "--weight", '"line\\nbreaks"=1')
    assert bad.code == 2 and bad.err.count("\n") == 1  # one line, though the name holds one
    assert "'line\\nbreaks', which is not an objective" in bad.err


def test_family6_consoles_never_read_markup(capsys, monkeypatch) -> None:
    from rich.table import Table

    from dvao_cli.cli.console import get_console, info

    monkeypatch.setenv("COLUMNS", "60")
    table = Table(title="[red]t[/red]")
    table.add_column("[/bold] a long enough header")
    table.add_row("a[b]")
    get_console().print(table)
    info("[/bold] [link=x]y[/link]")
    out, err = capsys.readouterr()
    assert "[red]t[/red]" in out and "[/bold]" in out and "a[b]" in out
    assert err == "[/bold] [link=x]y[/link]\n"


def test_family6_figures_draw_names_as_typed(tmp_path: Path) -> None:
    import matplotlib.text

    from dvao_cli.plot.source import build_figures, load_source, save_figure

    log = small_log(tmp_path / "odd.parquet", names=ODD)
    src = load_source(log)
    figures, _ = build_figures(src, list(src.objectives), smooth=None)
    texts = set()
    for fig in figures.values():
        texts |= {t.get_text() for t in fig.findobj(matplotlib.text.Text)}
    for name in ODD:
        assert any(name in t for t in texts), name
    for name, fig in figures.items():  # mathtext would raise on "$\frac{x$"
        save_figure(fig, tmp_path / f"{name}.png", "png")


# --------------------------------------------------------------------------------------------
# Family 7: the user's OS errors are exit 2, one line naming the path
# --------------------------------------------------------------------------------------------


def test_family7_outputs_that_are_not_what_is_asked(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    afile = tmp_path / "taken.txt"
    afile.write_text("x")
    under_file = afile / "x.parquet"
    not_folder = "exists and is not a folder; --out takes a folder"
    not_file = (
        "--out must be a regular file, not a link, device or pipe (Parquet cannot be streamed)"
    )
    blocked = f"cannot write ({afile} is not a folder); nothing was written"
    not_regular = "is not a regular file; write to a file path"
    a_folder = "--out is a directory; give a file name such as rollouts.parquet"
    trl = write_trl_dir(tmp_path)
    cases = [
        (("analyze", log, "--out", afile), f"{afile}: {not_folder}"),
        (("analyze", log, "--out", "/dev/null"), f"/dev/null: {not_folder}"),
        (("plot", log, "--out", "/dev/null"), f"/dev/null: {not_folder}"),
        (("simulate", "-o", "/dev/null"), f"/dev/null: {not_file}"),
        (("import", "trl", trl, "-o", "/dev/null"), f"/dev/null: {not_regular}"),
        (("simulate", "-o", tmp_path), f"{tmp_path}: {a_folder}"),
        (("simulate", "-o", under_file), f"{under_file}: {blocked}"),
        (("import", "trl", trl, "-o", under_file), f"{under_file}: {blocked}"),
        (("analyze", log, "--out", afile / "sub"), f"{afile / 'sub'}: {blocked}"),
    ]  # fmt: skip
    for args, message in cases:
        result = cli(*args)
        assert (result.code, result.err) == (2, f"error: {message}\n"), args
    assert afile.read_text() == "x"


def _deny_under(monkeypatch, folder: Path, code: int, text: str) -> None:
    """Creating anything under `folder` fails as on a read-only or full filesystem."""
    real_open, real_mkdir = os.open, os.mkdir
    inside = str(folder) + os.sep

    def fake_open(path, flags, *args, **kwargs):
        if str(path).startswith(inside) and flags & os.O_CREAT:
            raise OSError(code, text, str(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if str(path).startswith(inside):
            raise OSError(code, text, str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_family7_read_only_destination(cli, tmp_path: Path, monkeypatch) -> None:
    log = small_log(tmp_path / "log.parquet")
    ro = tmp_path / "ro"
    ro.mkdir()
    _deny_under(monkeypatch, ro, errno.EROFS, "Read-only file system")
    for args, target in [
        (("analyze", log, "--out", ro / "out"), ro / "out"),
        (("simulate", "-o", ro / "s.parquet"), ro / "s.parquet"),
        (("import", "trl", write_trl_dir(tmp_path), "-o", ro / "t.parquet"), ro / "t.parquet"),
        (("plot", log, "--out", ro / "figs"), ro / "figs"),
    ]:
        result = cli(*args)
        assert (result.code, result.err) == (
            2,
            f"error: {target}: cannot write (Read-only file system); nothing was written\n",
        ), args
    assert list(ro.iterdir()) == []


def write_trl_dir(tmp_path: Path) -> Path:
    if not (tmp_path / "trl").exists():
        write_trl_completions(tmp_path / "trl")
    return tmp_path / "trl"


def _full_disk(monkeypatch) -> None:
    """Every Parquet write fails half-way with ENOSPC, as on a full disk."""
    import pyarrow.parquet as pq

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)


def test_family7_disk_full_leaves_the_old_output_and_no_partial_file(
    cli, tmp_path: Path, monkeypatch
) -> None:
    log = small_log(tmp_path / "log.parquet")
    out = tmp_path / "out"
    assert cli("analyze", log, "--out", out).code == 0
    sim = tmp_path / "sim.parquet"
    assert cli("simulate", "-o", sim, "--steps", "2", "--groups", "2").code == 0
    trl = write_trl_dir(tmp_path)
    before = snapshot(tmp_path)
    _full_disk(monkeypatch)
    for args, target in [
        (("analyze", log, "--out", out), out),
        (("simulate", "-o", sim, "--steps", "3"), sim),
        (("import", "trl", trl, "-o", tmp_path / "t.parquet"), tmp_path / "t.parquet"),
    ]:
        result = cli(*args)
        assert (result.code, result.err) == (
            2,
            f"error: {target}: disk full (No space left on device); nothing was written\n",
        ), args
    assert snapshot(tmp_path) == before
    assert leftovers(tmp_path) == [] and leftovers(out) == []


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


def test_family7_a_real_full_disk_and_a_real_read_only_mount(cli, tmp_path: Path) -> None:
    small, ro = tmp_path / "small", tmp_path / "ro"
    if not (_mount_tmpfs(small, "size=64k") and _mount_tmpfs(ro, "ro,size=64k")):
        subprocess.run(["umount", str(small)], capture_output=True)
        pytest.skip("needs root and tmpfs mounts (the monkeypatched tests above still run)")
    try:
        result = cli("simulate", "-o", small / "s.parquet", "--steps", "40", "--groups", "64")
        assert (result.code, result.err) == (
            2,
            f"error: {small}/s.parquet: disk full (No space left on device); nothing was written\n",
        )
        assert list(small.iterdir()) == []
        result = cli("simulate", "-o", ro / "s.parquet", "--steps", "2")
        assert (result.code, result.err) == (
            2,
            f"error: {ro}/s.parquet: cannot write (Read-only file system); nothing was written\n",
        )
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_family7_inputs_that_are_not_files_say_what_they_are(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.parquet"
    os.mkfifo(fifo)  # reading it would block forever
    broken = tmp_path / "gone.parquet"
    broken.symlink_to(tmp_path / "nowhere.parquet")
    fifo_msg = "is a FIFO (named pipe), not a regular file or folder: give a file dvao can read"
    for args, message in [
        (("analyze", fifo), f"{fifo}: {fifo_msg}"),
        (("plot", fifo), f"{fifo}: {fifo_msg}"),
        (("import", "verl", fifo, "-o", tmp_path / "o.parquet"), f"{fifo}: {fifo_msg}"),
        (("analyze", broken), f"{broken}: is a broken link (to {tmp_path}/nowhere.parquet)"),
        (("import", "trl", broken, "-o", tmp_path / "o.parquet"), f"{broken}: is a broken link"),
        (("analyze", "/dev/null"), "/dev/null: is a device, not a regular file or folder"),
    ]:
        result = cli(*args)
        assert result.code == 2 and result.err.startswith(f"error: {message}"), args
        assert result.err.count("\n") == 1


def test_family7_an_unreadable_log_says_permission_denied(tmp_path: Path) -> None:
    from dvao_cli.errors import unreadable_parquet

    denied = unreadable_parquet(OSError("Permission denied (os error 13): x.parquet"), "x")
    assert denied.render() == "x: cannot read (Permission denied)"
    assert unreadable_parquet(ValueError("bad magic"), "x").render() == (
        "x: not a readable Parquet file (bad magic)"
    )
    log = small_log(tmp_path / "log.parquet")
    log.chmod(0)
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop the override of file permissions")
    done = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m"]
        + ["dvao_cli", "analyze", str(log)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stderr) == (2, f"error: {log}: cannot read (Permission denied)\n")


def test_family7_stdout_on_a_full_disk_names_stdout(tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    trl = write_trl_dir(tmp_path)
    with open("/dev/full", "w") as full:
        for args in (["analyze", log, "--json"], ["import", "trl", trl, "-o", tmp_path / "t.pq"]):
            done = subprocess.run(
                [sys.executable, "-m", "dvao_cli", *map(str, args)],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert (done.returncode, done.stderr) == (
                2,
                "error: stdout: cannot write (No space left on device)\n",
            ), args


def test_family7_broken_pipe_ends_quietly(tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvao_cli", "analyze", str(log), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        proc.stdout.close()  # the reader is gone before dvao writes: `| head -0`
        err = proc.stderr.read().decode()
        assert (proc.wait(), err) == (141, "")


def test_family7_import_json_too_big_or_too_deep(cli, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    write_verl_rollouts(dump, steps=(1,))
    line = json.loads((dump / "1.jsonl").read_text().splitlines()[0])
    for name, value, message in [
        ("big", "9" * 5000, "a number in this JSON line is too long to read (over 4300 digits)"),
        ("deep", "[" * 100_000 + "]" * 100_000, "this JSON line is nested too deeply to read"),
    ]:
        bad = json.dumps(line)[:-1] + f', "{name}": {value}}}\n'
        (dump / "2.jsonl").write_text(bad)
        result = cli("import", "verl", dump, "-o", tmp_path / "o.parquet")
        assert (result.code, result.err) == (2, f"error: {dump}/2.jsonl:1: {message}\n")
    assert not (tmp_path / "o.parquet").exists()
    log = small_log(tmp_path / "log.parquet")  # an analyze folder's summary.json, for plot
    assert cli("analyze", log, "--out", tmp_path / "rep").code == 0
    summary = tmp_path / "rep" / "summary.json"
    for text, message in [
        ('{"rows": ' + "9" * 5000 + "}", "a number in this JSON file is too long to read"),
        ('{"rows": ' + "[" * 100_000 + "]" * 100_000 + "}", "this JSON file is nested too deeply"),
    ]:
        summary.write_text(text)
        result = cli("plot", tmp_path / "rep")
        assert result.code == 2 and result.err.startswith(f"error: {summary}: {message}")


def test_family7_plot_of_a_hand_edited_summary_json(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    rep = tmp_path / "rep"
    assert cli("analyze", log, "--out", rep).code == 0
    summary = json.loads((rep / "summary.json").read_text())
    for key, value, message in [
        ("weights", {"accuracy": "x"}, "\"weights\": the weight of 'accuracy' must be a number"),
        ("weights", {"format": None}, "\"weights\": the weight of 'format' must be a number"),
        ("correlation", "x", '"correlation" must be an object {name: {name: number}}'),
        ("correlation", {"a": {"b": [1]}}, "\"correlation\": the value for 'a', 'b' must be"),
    ]:
        (rep / "summary.json").write_text(json.dumps({**summary, key: value}))
        result = cli("plot", rep, "--out", tmp_path / "figs")
        assert result.code == 2, (key, value)
        assert result.err.startswith(f"error: {rep}/summary.json: {message}"), (key, value)


def test_family7_parquet_with_a_footer_but_missing_data_pages(cli, tmp_path: Path) -> None:
    good = small_log(tmp_path / "good.parquet")
    cli("simulate", "-o", good, "--steps", "5", "--groups", "4")
    data = good.read_bytes()
    footer_len = struct.unpack("<i", data[-8:-4])[0]
    footer, body = data[-(footer_len + 8) :], data[: -(footer_len + 8)]
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(body[: int(len(body) * 0.9)] + footer)  # polars panics on this one
    for args in (["analyze", cut], ["analyze", cut, "--out", tmp_path / "o"], ["plot", cut]):
        result = cli(*args)
        assert result.code == 2, args
        assert result.err.startswith(f"error: {cut}: cannot read") and result.err.count("\n") == 1
        assert "Traceback" not in result.err
    # nothing written: the damage is found while the objectives are read (combined scores),
    # before the output folder is made
    assert not (tmp_path / "o").exists() or not [p for p in (tmp_path / "o").iterdir()]


# --------------------------------------------------------------------------------------------
# Family 9: -q and --debug after the command
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_family9_every_command_takes_quiet_and_debug(cli, name: str) -> None:
    out = cli(name, "--help").out.replace("--quiet", "QUIET")  # plain or rich help
    assert "QUIET" in out and "-q" in out and "--debug" in out


def test_family9_quiet_and_debug_after_the_command(cli, tmp_path: Path) -> None:
    log = small_log(tmp_path / "log.parquet")
    loud = cli("analyze", log, "--out", tmp_path / "a")
    assert loud.err.startswith("wrote ")
    assert cli("analyze", log, "--out", tmp_path / "a", "-q").err == ""
    assert cli("plot", log, "--out", tmp_path / "f", "--quiet").err == ""
    assert cli("simulate", "-o", tmp_path / "s.parquet", "--steps", "2", "-q").err == ""
    quiet = cli("import", "trl", write_trl_dir(tmp_path), "-o", tmp_path / "t.parquet", "-q")
    assert quiet.out == f"wrote {tmp_path}/t.parquet: 36 rows, 3 steps, 9 groups\n"
    assert cli("-q", "analyze", log, "--out", tmp_path / "a").err == ""  # before still works
    debug = cli("analyze", tmp_path / "nope.parquet", "--debug")
    assert debug.code == 2
    assert "Traceback (most recent call last)" in debug.err
    assert (
        debug.err.splitlines()[-1] == f"error: {tmp_path}/nope.parquet: no such file or directory"
    )
    plain = cli("analyze", tmp_path / "nope.parquet")
    assert plain.err == f"error: {tmp_path}/nope.parquet: no such file or directory\n"

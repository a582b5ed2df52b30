"""CLI basics: version, help text for every command and option, lazy imports, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from dvao_cli import __version__
from dvao_cli.cli.app import app

COMMANDS = ["analyze", "plot", "report", "simulate", "train", "import"]


def _commands():
    group = typer.main.get_command(app)
    return group, group.commands  # type: ignore[attr-defined]


def test_version(cli) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.out == f"dvao {__version__}\n"


def test_every_command_is_registered() -> None:
    _, commands = _commands()
    assert sorted(commands) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_and_option_has_help_text(cli, name: str) -> None:
    _, commands = _commands()
    command = commands[name]
    assert command.help and "being built" not in command.help
    for param in command.params:
        if param.param_type_name == "option":
            assert getattr(param, "help", None), f"{name} {param.opts} has no help text"
        else:
            assert getattr(param, "help", None), f"{name} argument {param.name} has no help text"
    result = cli(name, "--help")
    assert result.code == 0
    assert "Usage: dvao " + name in " ".join(result.out.split())


def test_root_help_lists_commands(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for name in COMMANDS:
        assert name in result.out


def test_help_does_not_import_torch_or_matplotlib() -> None:
    code = (
        "import sys\n"
        "from dvao_cli.cli.app import run\n"
        "for argv in (['--help'], ['analyze', '--help'], ['plot', '--help'], ['train', '--help'],"
        " ['import', '--help'], ['simulate', '--help']):\n"
        "    assert run(argv) == 0\n"
        "heavy = ('torch', 'matplotlib', 'polars', 'numpy', 'pyarrow')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100"},
    ).stdout
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dvao_cli", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out == f"dvao {__version__}\n"


def test_unknown_option_is_a_usage_error(cli) -> None:
    result = cli("analyze", "--bogus")
    assert result.code == 2
    assert "No such option: --bogus" in result.err


def test_unknown_command(cli) -> None:
    result = cli("frobnicate")
    assert result.code == 2
    assert "No such command 'frobnicate'" in result.err


class _FakeTTY:
    def isatty(self) -> bool:
        return True


def test_rich_only_on_a_terminal_without_no_color(monkeypatch) -> None:
    from dvao_cli.cli.console import is_rich

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert is_rich(_FakeTTY())
    assert not is_rich(object())  # no isatty: a pipe or a file
    monkeypatch.setenv("NO_COLOR", "1")
    assert not is_rich(_FakeTTY())


def test_quiet_silences_status_lines(cli, tmp_path) -> None:
    out = tmp_path / "sim.parquet"
    loud = cli("simulate", "-o", out, "--steps", "2", "--groups", "2")
    assert loud.code == 0 and loud.err.startswith("wrote ")
    quiet = cli("--quiet", "simulate", "-o", out, "--steps", "2", "--groups", "2")
    assert quiet.code == 0 and quiet.err == ""

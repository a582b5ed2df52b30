"""Command-line values without pydantic (`dvao_cli.cli.values`): the same value as typer's own
coercion for every option of every command, and the start-up it saves."""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

import polars as pl
import pytest
import typer

from dvao_cli.cli import values as cli_values
from dvao_cli.cli.app import app

_COMMON = [None, "", "-", " 1", "abc", "ü", True, False, 0, 1, 2.5, (), ("a", "b")]
_NUMBERS = [
    "0", "7", "-3", "-0", "1", "2", "999", "1000", "1001", "007", "+5", "5 ", "1_000",
    "99999999999999999", "999999999999999999999", "1e3", "0.5", "1.", ".5", "-.5", "1e-4",
    "2.5E+3", "1e400", "inf", "-inf", "nan", "0x10", "1,5", 0.0, 1.0, -1.5, 10**6, 3, -1,
]  # fmt: skip
_PATHS = ["x", "out/dir", "/tmp", ".", "a\0b", Path("y"), "~", "a b"]


def _samples(annotation: Any) -> list[Any]:
    leaf = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    values: list[Any] = list(_COMMON)
    if isinstance(leaf, type) and issubclass(leaf, Enum):
        names = [m.value for m in leaf]
        values += [*names, *(n.upper() for n in names), *leaf, "nope"]
    elif leaf in (int, float):
        values += _NUMBERS
    elif isinstance(leaf, type) and issubclass(leaf, Path):
        values += _PATHS
    if get_origin(annotation) is list:
        values += [tuple(values[-6:]), list(values[-3:]), (values[-1],)]
    return values


def _outcome(coercer: Any, given: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        value = coercer.coerce(given, param=param, ctx=ctx)
    except Exception as err:  # compared by type and message
        return "error", (type(err).__name__, str(err))
    items = value if isinstance(value, (list, tuple)) else [value]
    return "value", (repr(value), type(value), [type(v) for v in items])  # repr: nan == nan


def _parameters() -> list[tuple[str, Any, Any]]:
    cmd = typer.main.get_command(app)
    return [(name, sub, p) for name, sub in cmd.commands.items() for p in sub.params]


@pytest.mark.parametrize(
    "name,command,param", _parameters(), ids=lambda x: x if isinstance(x, str) else None
)
def test_plain_values_are_typers_values(name: str, command: Any, param: Any) -> None:
    from typer.core import build_runtime_param

    ctx = typer.Context(command)
    descriptor = param.type_descriptor
    theirs = build_runtime_param(descriptor)
    ours = cli_values._PlainValues(descriptor, build_runtime_param)
    for value in _samples(descriptor.annotation):
        expected = _outcome(theirs, value, param, ctx)
        got = _outcome(ours, value, param, ctx)
        assert got == expected, (name, param.name, value)


def test_install_is_idempotent_and_patches_typer() -> None:
    assert cli_values.install()
    assert cli_values.install()
    from typer.core import _TyperParameter

    assert getattr(_TyperParameter.get_runtime_param, "_dvao_plain", False)


@pytest.mark.slow
def test_analyze_json_loads_neither_pydantic_nor_rich_nor_pyarrow(tmp_path: Path) -> None:
    """`dvao analyze LOG --json` (the gate path) with typical options imports only what it
    needs: typer's pydantic coercion, rich (the report) and pyarrow (footers: `reader/footer`)
    cost 0.1 s of start-up."""
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "step": [0] * 8 + [1] * 8,
            "group_id": ([0] * 4 + [1] * 4) * 2,
            "accuracy": [1.0, 0.0, 1.0, 0.0] * 4,
            "score": [0.1 * i for i in range(16)],
        }
    ).write_parquet(path)
    code = (
        "import sys; from dvao_cli.cli.app import run; "
        f"code = run(['analyze', {str(path)!r}, '--json', '-s', 'dvao', '-s', 'rc', "
        "'--eps', '1e-4', '--ddof', '1', '--chunk-rows', '5000', '--nan', 'drop', "
        "'--fail-on', 'saturation[accuracy]>0.99', '-O', 'accuracy', '-O', 'score']); "
        "print(code, sorted(m for m in ('pydantic', 'rich', 'pyarrow', 'torch') "
        "if m in sys.modules), file=sys.stderr)"
    )
    assert _fresh_python(code).stderr.strip().splitlines()[-1] == "0 []"


@pytest.mark.slow
def test_typers_public_api_still_needs_pydantic() -> None:
    """Why `cli/values.py` patches typer's private classes: a public `parser=` is coerced
    through pydantic too. When this fails, typer's public API avoids pydantic: use it there."""
    code = (
        "import sys\n"
        "from typing import Annotated\n"
        "import typer\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def main(n: Annotated[int, typer.Option(parser=int)] = 1) -> None:\n"
        "    print(n, 'pydantic' in sys.modules)\n"
        "app(['--n', '3'], standalone_mode=False)\n"
    )
    assert _fresh_python(code).stdout.split() == ["3", "True"]


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by a Python process of its own (what it imports is not this one's)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )

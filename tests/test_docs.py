"""The docs cannot rot: every shown command's output in README.md and
docs/*.md is what a real run prints, and every command has a section.

Regenerate after an output change with `python scripts/update_docs.py` (see its docstring for
the skip and setup declarations).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["analyze", "plot", "report", "import", "train", "simulate"]


def _script():
    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "scripts/update_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["update_docs"] = module
    spec.loader.exec_module(module)
    return module


docs = _script()
BLOCKS = [block for path in docs.doc_files() for block in docs.find_blocks(path)]


def test_the_docs_show_commands_and_declare_what_is_not_run() -> None:
    assert len(BLOCKS) >= 5
    skipped = [(b.path.name, b.commands()[0], b.skip) for b in BLOCKS if b.skip is not None]
    assert skipped == [
        ("README.md", "dvao train --out runs/demo", "dvao train runs for a minute or more")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_shown_output_is_what_the_command_prints(block) -> None:
    reason = block.why_skipped()
    if reason is not None:
        pytest.skip(reason)
    problems = docs.check([block])
    assert not problems, (
        "the docs show other output than a real run; regenerate with "
        "`python scripts/update_docs.py`:\n" + "\n".join(problems)
    )


def test_the_block_parser_and_the_rewrite(tmp_path: Path, monkeypatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- docs: skip slow -->\n```\n$ sleep 100\n```\n\n"
        "```\n$ echo hi   \nstale\n$ (exit 3)\n$ echo $?\n0\n```\n```python\nx = 1\n```\n"
    )
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.setattr(docs, "_scratch", lambda: _empty_scratch(tmp_path))
    blocks = docs.find_blocks(page)
    assert [(b.start, b.end, b.skip) for b in blocks] == [(3, 4, "slow"), (7, 12, None)]
    assert docs.run_block(blocks[1]) == ["$ echo hi", "hi", "$ (exit 3)", "$ echo $?", "3"]
    assert docs.rewrite(page) == 1
    assert page.read_text().splitlines()[6:13] == [
        "```",
        "$ echo hi",
        "hi",
        "$ (exit 3)",
        "$ echo $?",
        "3",
        "```",
    ]
    assert docs.rewrite(page) == 0


def _empty_scratch(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    (scratch / ".bin").mkdir(parents=True, exist_ok=True)
    return scratch


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_docs_section(name: str) -> None:
    heading = re.compile(rf"^#+ .*`dvao {name}\b", re.MULTILINE)
    assert any(heading.search(path.read_text()) for path in docs.doc_files()), name

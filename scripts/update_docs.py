#!/usr/bin/env python3
"""Regenerate the shown commands' output in README.md and docs/*.md from real runs.

    python scripts/update_docs.py           # rewrite every such block in place
    python scripts/update_docs.py --check   # exit 1 and show the differences instead

A block is a fenced code block holding lines that start with `$ ` (a shell command, as typed);
the lines after a command, up to the next `$ ` line or the fence, are its output (stdout and
stderr together). Each block runs in one bash session (so `echo $?` sees the previous command)
in a scratch copy of `sample_data/`, with `dvao` on PATH as this checkout, COLUMNS=120 and
NO_COLOR=1, so the output is the same on every machine. Lines are compared and written without
trailing spaces, and a command's trailing blank lines are dropped.

An HTML comment on the line before the fence declares what a block needs:

    <!-- docs: skip REASON -->      not run (e.g. `dvao train` takes a minute); kept as written
    <!-- docs: setup NAME -->       run SETUPS[NAME] in the scratch folder first

A block whose commands use a tool that is not installed (jq) is skipped the same way, saying so.
tests/test_docs.py runs this check in the test suite.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = "120"
TOOLS = ("jq",)  # tools a block may pipe into, besides dvao and the shell's own
_MARK = "@@dvao-docs-command@@"
_DIRECTIVE = re.compile(r"^<!--\s*docs:\s*(skip|setup)\s*(.*?)\s*-->\s*$")


def _trl_fixture(scratch: Path) -> None:
    """runs/grpo/: a TRL completions dump (3 steps, 4 prompts x 8 completions, a missing
    reward), as the README's import example reads it."""
    sys.path.insert(0, str(ROOT / "tests"))
    from trainer_fixtures import write_trl_completions

    write_trl_completions(
        scratch / "runs" / "grpo",
        steps=(1, 2, 3),
        num_generations=8,
        prompts_per_step=4,
        reward_names=("accuracy_reward", "format_reward"),
        none_rate=0.01,
        seed=0,
    )


SETUPS: dict[str, Callable[[Path], None]] = {"trl-completions": _trl_fixture}


@dataclass
class Block:
    path: Path
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    lines: list[str]
    skip: str | None = None
    setups: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.start}"

    def commands(self) -> list[str]:
        return [line[2:].rstrip() for line in self.lines if line.startswith("$ ")]

    def why_skipped(self) -> str | None:
        if self.skip is not None:
            return self.skip
        for tool in TOOLS:
            used = any(re.search(rf"(^|\|)\s*{tool}\b", c) for c in self.commands())
            if used and shutil.which(tool) is None:
                return f"needs {tool}, which is not installed"
        return None


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def find_blocks(path: Path) -> list[Block]:
    """The fenced blocks of `path` that show commands (`$ ` lines)."""
    text = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(text):
        if not text[i].startswith("```"):
            i += 1
            continue
        j = i + 1
        while j < len(text) and not text[j].startswith("```"):
            j += 1
        inner = text[i + 1 : j]
        if any(line.startswith("$ ") for line in inner):
            block = Block(path, i + 1, j, inner)
            k = i - 1
            while k >= 0 and (match := _DIRECTIVE.match(text[k])):
                if match.group(1) == "skip":
                    block.skip = match.group(2) or "declared"
                else:
                    block.setups.append(match.group(2))
                k -= 1
            blocks.append(block)
        i = j + 1
    return blocks


def _scratch() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="dvao-docs-"))
    shutil.copytree(ROOT / "sample_data", scratch / "sample_data")
    bin_dir = scratch / ".bin"
    bin_dir.mkdir()
    for name, command in (("dvao", f'"{sys.executable}" -m dvao_cli'), ("python", sys.executable)):
        shim = bin_dir / name  # this checkout's dvao, this interpreter
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    return scratch


def _env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVAO_", "RUST_BACKTRACE"))}
    env.update(
        PATH=f"{scratch / '.bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        COLUMNS=COLUMNS,
        NO_COLOR="1",
        TERM="dumb",
    )
    return env


def run_block(block: Block, scratch: Path | None = None) -> list[str]:
    """The block's lines with each command's output replaced by a real run's."""
    own = scratch is None
    scratch = scratch or _scratch()
    try:
        for name in block.setups:
            SETUPS[name](scratch)
        script = []
        for command in block.commands():
            script += [f"__s=$?; echo '{_MARK}'; (exit $__s)", command]
        done = subprocess.run(
            ["bash", "-c", "\n".join(script) + "\n"],
            cwd=scratch,
            env=_env(scratch),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
    finally:
        if own:
            shutil.rmtree(scratch, ignore_errors=True)
    outputs = done.stdout.split(_MARK + "\n")[1:]
    lines: list[str] = []
    for command, output in zip(block.commands(), outputs, strict=True):
        shown = [line.rstrip() for line in output.splitlines()]
        while shown and not shown[-1]:  # a table's closing blank line
            shown.pop()
        lines += [f"$ {command}", *shown]
    return lines


def expected(block: Block) -> list[str]:
    return [line.rstrip() for line in block.lines]


def check(blocks: list[Block], scratch: Path | None = None) -> list[str]:
    """A unified diff per block whose shown output differs from a real run's."""
    problems = []
    for block in blocks:
        if block.why_skipped() is not None:
            continue
        got = run_block(block, scratch)
        if got != expected(block):
            diff = difflib.unified_diff(
                expected(block), got, f"{block.where} (shown)", "(real run)", lineterm=""
            )
            problems.append("\n".join(diff))
    return problems


def rewrite(path: Path) -> int:
    """Regenerate `path`'s blocks in place; return how many changed."""
    text = path.read_text().splitlines()
    changed = 0
    for block in reversed(find_blocks(path)):  # from the end: indices stay valid
        reason = block.why_skipped()
        if reason is not None:
            print(f"skipped {block.where}: {reason}", file=sys.stderr)
            continue
        got = run_block(block)
        if got != expected(block):
            text[block.start : block.end] = got
            changed += 1
    if changed:
        path.write_text("\n".join(text) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--check", action="store_true", help="show differences, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check([b for path in doc_files() for b in find_blocks(path)])
        for problem in problems:
            print(problem + "\n")
        return 1 if problems else 0
    for path in doc_files():
        n = rewrite(path)
        if n:
            print(f"{path.relative_to(ROOT)}: {n} block{'s' if n != 1 else ''} regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shape of the tree: no import cycle inside `dvao_cli`, few modules at its top, and the
layers importing only downwards.

The import graph is read from the source with `ast`, not by importing: every `import` and
`from ... import` anywhere in a module counts, at its top, inside a function or under
`if TYPE_CHECKING:`. `from pkg import name` is an edge to the submodule `pkg.name` when there is
one, else to `pkg` (its `__init__`). The packages a module sits in are not edges: Python runs
their `__init__` first, but they are the module's own folders, not something it uses.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "dvao_cli"
TOP_MODULES_MAX = 10


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package at `root`, by dotted name."""
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among `modules` that module `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def deepest(dotted: str) -> str | None:  # `import a.b.c` uses a.b.c (a module, or its package)
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(m for a in node.names if (m := deepest(a.name)) is not None)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in modules else deepest(source)
                if target is not None:
                    found.add(target)
    found.discard(name)
    return found


@cache
def _graph(root: Path = ROOT) -> dict[str, frozenset[str]]:
    """Module -> the modules of the same package it imports."""
    modules = _modules(root)
    return {name: frozenset(_imported(name, path, modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, frozenset[str]]) -> list[tuple[list[str], list[str]]]:
    """Each strongly connected component of more than one module (or a module importing
    itself): one shortest cycle through it, as [a, b, ..., a], and all its modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for component in components:
        start = min(component)
        paths = {start: [start]}  # breadth first inside the component: a shortest way back
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            following = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w == start:
                        cycle = [*paths[v], start]
                        break
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        following.append(w)
                if cycle is not None:
                    break
            frontier = following
        cycles.append((cycle or [start, start], sorted(component)))
    return cycles


def test_the_graph_is_read_as_written(tmp_path: Path) -> None:
    """Every kind of import is an edge: at the top, in a function, under TYPE_CHECKING,
    relative, `from pkg import module` (to the module) and `from pkg import name` (to pkg)."""
    files = {
        "__init__.py": "from pkg.sub import helper\n",
        "a.py": "import pkg.b\n\ndef f():\n    from pkg import c\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub.d import D\n",
        "c.py": "import os\nfrom pkg import sub\n",
        "sub/__init__.py": "",
        "sub/d.py": "from .. import a\nfrom pkg.sub import helper_name\n",
        "sub/helper.py": "",
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    graph = _graph(tmp_path / "pkg")
    assert {m: sorted(e) for m, e in graph.items()} == {
        "pkg": ["pkg.sub.helper"],
        "pkg.a": ["pkg.b", "pkg.c"],
        "pkg.b": ["pkg.sub.d"],
        "pkg.c": ["pkg.sub"],
        "pkg.sub": [],
        "pkg.sub.d": ["pkg.a", "pkg.sub"],
        "pkg.sub.helper": [],
    }
    ((cycle, members),) = _cycles(graph)
    assert cycle == ["pkg.a", "pkg.b", "pkg.sub.d", "pkg.a"]
    assert members == ["pkg.a", "pkg.b", "pkg.sub.d"]
    three = {"a": frozenset({"b", "d"}), "b": frozenset({"c"}), "c": frozenset({"a"})}
    assert _cycles({**three, "d": frozenset({"a"})}) == [(["a", "d", "a"], ["a", "b", "c", "d"])]
    assert _cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles inside dvao_cli:\n" + "\n".join(
        f"{' -> '.join(cycle)}  (the circle: {', '.join(members)})" for cycle, members in cycles
    )


def test_few_modules_at_the_top() -> None:
    top = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(top) <= TOP_MODULES_MAX, f"{len(top)} modules at the top of dvao_cli: {top}"


def _layer(module: str) -> str:
    """`core`, `reader`, ... for a module in a package of dvao_cli; `top` for the others."""
    parts = module.split(".")
    in_package = len(parts) > 2 or (len(parts) == 2 and _modules()[module].name == "__init__.py")
    return parts[1] if in_package else "top"


# layer -> the layers it must never import (each holds at the time of writing)
FORBIDDEN = {
    # the formulas: numpy / torch arithmetic, nothing about files, analysis or terminals
    "core": {"reader", "importers", "analysis", "plot", "cli", "train", "integrations"},
    # reading logs, and computing on them: no typer, rich or terminal state
    "reader": {"analysis", "plot", "cli", "train", "integrations"},
    "importers": {"analysis", "plot", "cli", "train", "integrations"},
    "analysis": {"plot", "cli", "train", "integrations"},
    # what a trainer imports: the schemes, never the command line
    "integrations": {"reader", "importers", "analysis", "plot", "cli", "train"},
    # a GRPO run from the library: its options are built into `dvao train` from its config
    "train": {"plot", "cli"},
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_downwards(layer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) in FORBIDDEN[layer]
    )
    assert not wrong, "\n".join(wrong)


def test_the_top_modules_import_no_command_line() -> None:
    """The library's top modules (simulate, advantages, io, ...): only `__main__` starts the
    command line."""
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) == "top" and module != "dvao_cli.__main__"
        for target in targets
        if _layer(target) == "cli"
    )
    assert not wrong, "\n".join(wrong)


TERMINAL = {"typer", "rich", "click"}


@pytest.mark.parametrize(
    "layer", ["core", "reader", "importers", "analysis", "integrations", "train"]
)
def test_the_library_layers_need_no_terminal_packages(layer: str) -> None:
    """typer, rich and click are the command line's: a library user does not load them."""
    wrong = []
    for module, path in _modules().items():
        if _layer(module) != layer:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            wrong += [f"{module} imports {n}" for n in names if n.split(".")[0] in TERMINAL]
    assert not wrong, "\n".join(wrong)

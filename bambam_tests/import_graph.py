"""Read a source tree's imports with the AST, for the layer and import-cycle tests.

Every import counts, wherever it stands (module top, inside a function, under `if
TYPE_CHECKING`): the walk is `ast.walk`, not the module body. Relative imports are resolved
against the importing module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One imported name, as a dotted module path, and where it is imported."""

    importer: str  # dotted name of the importing module
    target: str  # dotted name imported: a module, a package, or module.attribute
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.target}"


def modules_under(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` (a folder under root, dotted), by dotted name.

    A package's `__init__.py` is the module named by the package itself.
    """
    base = root.joinpath(*package.split("."))
    found: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute dotted name of `from <level dots><name> import ...` inside `module`."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(package):
        raise ValueError(f"{module}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(path: Path, module: str) -> Iterator[Import]:
    """Every name `module` (the file at path) imports, top-level or not.

    `import a.b` yields a.b; `from a import b, c` yields a.b and a.c (each is a submodule or
    an attribute of a; the caller decides which), or a itself for `from a import *`.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                target = source if alias.name == "*" else f"{source}.{alias.name}"
                yield Import(module, target, path, node.lineno)


def known_module(target: str, modules: Iterable[str]) -> str | None:
    """The longest module in `modules` that target is, or is an attribute of; None if none."""
    names = set(modules)
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def import_graph(modules: Mapping[str, Path]) -> dict[str, dict[str, Import]]:
    """Module -> {imported module in `modules`: the first import of it}, self-imports left out.

    `from pkg import name` points at pkg.name when that is a module, else at pkg (its
    `__init__`). Modules outside `modules` (stdlib, third party) are left out.
    """
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for name, path in modules.items():
        for imp in imports_of(path, name):
            target = known_module(imp.target, modules)
            if target is not None and target != name:
                graph[name].setdefault(target, imp)
    return graph


def cycles(graph: Mapping[str, Mapping[str, object]]) -> list[frozenset[str]]:
    """The import cycles of graph, each as the set of modules that import each other
    (a strongly connected component of 2+ modules, or one module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for start in sorted(graph):  # Tarjan's algorithm, iterative (no recursion limit)
        if start in index:
            continue
        enter(start)
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    enter(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, {})))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while node not in component:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                    if len(component) > 1 or node in graph.get(node, {}):
                        found.append(frozenset(component))
    return sorted(found, key=sorted)


def cycle_path(graph: Mapping[str, Mapping[str, object]], members: frozenset[str]) -> list[str]:
    """A shortest import path from the first (sorted) member of a cycle back to itself,
    through members only: [a, b, ..., a]."""
    first = min(members)
    came_from: dict[str, str] = {}
    frontier = [first]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt not in members or nxt in came_from:
                    continue
                came_from[nxt] = node
                if nxt == first:
                    path = [first]
                    while path[-1] != first or len(path) == 1:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise ValueError(f"no cycle through {first} in {sorted(members)}")

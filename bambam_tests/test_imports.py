"""Import hygiene, checked on the source (AST): no import cycles in bambam_assets or bench
(imports at module top and inside functions, package __init__ modules included); bench imports
no test; no test module imports another test module (shared builders live in builders.py)."""

from __future__ import annotations

from pathlib import Path

from bambam_tests.import_graph import (
    cycle_path,
    cycles,
    import_graph,
    imports_of,
    known_module,
    modules_under,
)

REPO = Path(__file__).resolve().parents[1]

# Cycles other changes in flight remove; each is tolerated only as exactly this set of modules,
# and the test keeps passing once it is gone.
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # none: a new cycle is fixed, not listed


def _describe(graph: dict, members: frozenset[str]) -> str:
    path = cycle_path(graph, members)
    steps = "\n".join(f"    {graph[a][b]}" for a, b in zip(path, path[1:], strict=False))
    return " -> ".join(path) + "\n" + steps


def unexpected_cycles(package: str, root: Path = REPO) -> list[str]:
    graph = import_graph(modules_under(root, package))
    return [_describe(graph, c) for c in cycles(graph) if c not in KNOWN_CYCLES]


def test_no_import_cycles_in_bambam_assets():
    found = unexpected_cycles("bambam_assets")
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_import_cycles_in_bench():
    found = unexpected_cycles("bench")
    assert not found, "import cycles:\n" + "\n".join(found)


def test_bench_imports_no_test_code():
    bad = [str(imp) for name, path in modules_under(REPO, "bench").items()
           for imp in imports_of(path, name)
           if imp.target.split(".")[0] == "bambam_tests"]
    assert not bad, "bench must not import bambam_tests:\n" + "\n".join(bad)


def _is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def test_no_test_module_imports_another():
    modules = modules_under(REPO, "bambam_tests")
    bad = []
    for name, path in modules.items():
        for imp in imports_of(path, name):
            target = known_module(imp.target, modules)
            if target is not None and target != name and _is_test_module(target):
                bad.append(str(imp))
    assert not bad, ("test modules (test_*.py, conftest.py) must not be imported; move shared "
                     "helpers to bambam_tests/builders.py:\n" + "\n".join(bad))


def test_cycle_finder_names_cycles_through_functions_and_packages(tmp_path: Path):
    files = {
        "pkg/__init__.py": "from pkg.a import f\nVERSION = 1\n",
        "pkg/a.py": "import os\n\n\ndef f():\n    from . import b\n",  # inside a function
        "pkg/b.py": "from pkg import VERSION\n",  # a name of the package __init__
        "pkg/c.py": "import pkg.a\n",  # imports into the cycle, not part of it
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "from ..sub import y\n",  # relative, two levels
        "pkg/sub/y.py": "from .x import g\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(modules_under(tmp_path, "pkg"))
    found = cycles(graph)
    assert found == [frozenset({"pkg", "pkg.a", "pkg.b"}), frozenset({"pkg.sub.x", "pkg.sub.y"})]
    assert cycle_path(graph, found[0]) == ["pkg", "pkg.a", "pkg.b", "pkg"]
    described = _describe(graph, found[0])
    assert described.startswith("pkg -> pkg.a -> pkg.b -> pkg\n")
    assert "pkg/a.py:5: pkg.a imports pkg.b" in described
    assert cycle_path(graph, found[1]) == ["pkg.sub.x", "pkg.sub.y", "pkg.sub.x"]

"""The layer rule of bambam_assets/lib, checked on the source (AST), not by importing it.

Allowed directions: core <- ingest <- dimensions; core <- models <- forecasts <- live; live
may also use ingest; core <- demo. Nothing under lib imports dagster (or dagster_*), nor any
project module outside bambam_assets.lib.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bambam_tests.import_graph import Import, imports_of, modules_under

REPO = Path(__file__).resolve().parents[2]

# Layer -> the other layers it may import (a layer may always import itself).
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "ingest": frozenset({"core"}),
    "dimensions": frozenset({"core", "ingest"}),
    "models": frozenset({"core"}),
    "forecasts": frozenset({"core", "models"}),
    "live": frozenset({"core", "models", "forecasts", "ingest"}),
    "demo": frozenset({"core"}),
}

# Project modules outside lib that lib may import, as the layer they count as: none.
OUTSIDE_AS_LAYER: dict[str, str] = {}

FORBIDDEN_LIBRARIES = ("dagster",)  # and every dagster_* package


def _layer_of(module: str, lib: str) -> str | None:
    """The layer of a module under lib ('core', ...), '' for lib's own __init__, else None."""
    if module == lib:
        return ""
    if module.startswith(lib + "."):
        return module[len(lib) + 1 :].split(".")[0]
    return None


def layer_violations(
    root: Path,
    lib: str = "bambam_assets.lib",
    project: str = "bambam_assets",
    allowed: dict[str, frozenset[str]] = ALLOWED,
    outside_as_layer: dict[str, str] = OUTSIDE_AS_LAYER,
) -> list[str]:
    """Every import under `lib` (a dotted package under root) that breaks the layer rule."""
    found: list[str] = []

    def bad(imp: Import, why: str) -> None:
        found.append(f"{imp}: {why}")

    for module, path in modules_under(root, lib).items():
        layer = _layer_of(module, lib)
        if layer not in allowed and layer != "":
            found.append(f"{path}: {module} is in no known layer ({sorted(allowed)})")
            continue
        for imp in imports_of(path, module):
            top = imp.target.split(".")[0]
            if top in FORBIDDEN_LIBRARIES or top.startswith("dagster_"):
                bad(imp, "lib must not import dagster")
                continue
            if top != project:
                continue  # stdlib or third party
            outside = next(
                (name for name in outside_as_layer
                 if imp.target == name or imp.target.startswith(name + ".")),
                None,
            )
            if outside is not None:
                target_layer: str | None = outside_as_layer[outside]
            else:
                target_layer = _layer_of(imp.target, lib)
                if target_layer is None:
                    bad(imp, f"lib must not import project modules outside {lib}")
                    continue
            if target_layer in ("", layer):
                continue
            if layer == "":
                bad(imp, f"{lib}/__init__ must not import the layers")
            elif target_layer not in allowed.get(layer, frozenset()):
                bad(imp, f"layer {layer!r} may import only {sorted(allowed[layer]) or 'itself'}")
    return found


def test_lib_follows_the_layer_rule():
    violations = layer_violations(REPO)
    assert not violations, "layer rule broken:\n" + "\n".join(violations)


def test_every_lib_package_is_a_known_layer():
    lib = REPO / "bambam_assets" / "lib"
    packages = {p.name for p in lib.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def synthetic_project(tmp_path: Path) -> Path:
    """A small project `proj` with lib layers core/models/forecasts and one wrong import each:
    core -> models (the wrong way, relative), a dagster import inside a function, and an
    import of proj.defs (outside lib)."""
    for rel in ("proj/__init__.py", "proj/lib/__init__.py", "proj/lib/core/__init__.py",
                "proj/lib/models/__init__.py", "proj/lib/forecasts/__init__.py",
                "proj/defs/__init__.py", "proj/settings.py"):
        _write(tmp_path, rel, "")
    _write(tmp_path, "proj/lib/core/base.py",
           "from ..models import fit\nfrom proj import settings\n")
    _write(tmp_path, "proj/lib/models/fit.py",
           "from proj.lib.core import base\n\n\ndef run():\n    import dagster as dg\n"
           "    return dg\n")
    _write(tmp_path, "proj/lib/forecasts/out.py",
           "from proj.lib.models.fit import run\n\n\ndef later():\n"
           "    from proj.defs import things\n    from dagster_duckdb import x\n")
    return tmp_path


def test_checker_reports_wrong_way_and_dagster_imports(synthetic_project: Path):
    violations = layer_violations(
        synthetic_project, lib="proj.lib", project="proj",
        allowed={"core": frozenset(), "models": frozenset({"core"}),
                 "forecasts": frozenset({"core", "models"})},
        outside_as_layer={"proj.settings": "core"},
    )
    text = "\n".join(violations)
    assert len(violations) == 4, text
    # wrong way, relative import resolved: core imports models
    assert "proj.lib.core.base imports proj.lib.models.fit" in text
    # dagster inside a function body, and a dagster_* package
    assert "proj.lib.models.fit imports dagster: lib must not import dagster" in text
    assert "imports dagster_duckdb.x: lib must not import dagster" in text
    # outside lib; proj.settings counts as core and is allowed
    assert "proj.lib.forecasts.out imports proj.defs.things" in text
    assert "settings" not in text

"""Import direction between the Dagster layers: what a module loads, measured in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after_import(module: str, then: str = "") -> set[str]:
    """The bambam_assets modules (and whether dagster) a fresh interpreter holds after
    importing `module` and running `then` (`m` is the module)."""
    code = (f"import importlib, json, sys; m = importlib.import_module({module!r}); "
            f"{then or 'pass'}; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.startswith('bambam_assets') or m == 'dagster')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_asset_layers_do_not_import_the_automation_layer() -> None:
    loaded = loaded_after_import("bambam_assets.defs.models.assets")
    loaded |= loaded_after_import("bambam_assets.defs.forecasts.assets")
    assert not {m for m in loaded if m.startswith("bambam_assets.defs.automation.")}, loaded


def test_dashboard_names_groups_without_loading_the_code_location() -> None:
    loaded = loaded_after_import("bambam_assets.dashboard.runs",
                                 "assert m.asset_groups()['entity_model'] == 'models'")
    assert "bambam_assets.definitions" not in loaded
    assert "dagster" not in loaded
    assert not {m for m in loaded if m.startswith("bambam_assets.defs.")} - {
        "bambam_assets.defs.groups"}


def test_group_table_is_the_groups_of_the_definitions() -> None:
    from bambam_assets.definitions import defs
    from bambam_assets.defs.groups import ASSET_GROUPS

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string(): graph.get(k).group_name
            for k in graph.get_all_asset_keys()} == ASSET_GROUPS


def test_the_retrain_builder_of_lib_is_dagster_free() -> None:
    assert "dagster" not in loaded_after_import("bambam_assets.lib.models.retrain")

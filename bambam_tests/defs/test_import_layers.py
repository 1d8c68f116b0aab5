"""Import direction between the Dagster layers: what a module loads, measured in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after_import(module: str) -> set[str]:
    """The bambam_assets modules (and whether dagster) a fresh interpreter holds after
    importing `module`."""
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
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

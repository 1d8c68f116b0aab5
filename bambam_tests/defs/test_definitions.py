"""The code location loads, validates and holds the expected graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bambam_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[2]


def test_asset_graph_has_every_layer() -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "fct_wait_times", "fct_rejected_rows", "entity_index", "dim_entity", "dim_calendar",
        "dim_season", "dim_park_hours", "dim_park_hours_versions", "dim_event_days", "dim_events",
        "dim_metatable",
    } <= keys
    assert defs.resolve_sensor_def("raw_files_sensor") is not None


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"DAGSTER_HOME": str(tmp_path), "PATH": str(dagster.parent), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr

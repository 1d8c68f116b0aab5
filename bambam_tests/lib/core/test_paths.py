"""The home layout of lib/core/paths.py is the on-disk layout homes already have."""

from __future__ import annotations

from pathlib import Path

import pytest

from bambam_assets.lib.core import paths
from bambam_assets.lib.core.paths import HomePaths


def test_layout_is_unchanged(tmp_path: Path) -> None:
    h = HomePaths(str(tmp_path))  # a str is accepted too
    assert h.root == tmp_path
    assert h.warehouse == tmp_path / "warehouse.duckdb"
    assert h.warehouse_lock == tmp_path / "warehouse.write.lock"
    assert h.models == tmp_path / "models"
    assert h.forecasts == tmp_path / "forecasts" and h.backfill == tmp_path / "backfill"
    assert h.progress == tmp_path / "status" / "progress.json"
    assert h.fetch_status == tmp_path / "status" / "fetch"
    assert h.fetch_lock == tmp_path / "status" / "fetch" / ".lock"
    assert h.park_hours_cache == tmp_path / "status" / "fetch" / ".park_hours_cache.parquet"
    assert h.dagster_yaml == tmp_path / "dagster" / "dagster.yaml"
    assert h.raw_cache == tmp_path / "cache" / "raw"
    assert h.raw == tmp_path / "raw" and h.backtests == tmp_path / "backtests"
    assert h.curve_file(paths.FORECASTS_DIR, "MK1") == \
        tmp_path / "forecasts" / "entity_code=MK1" / "forecast.parquet"
    assert h.curve_file(paths.BACKFILL_DIR, "MK1") == \
        tmp_path / "backfill" / "entity_code=MK1" / "backfill.parquet"
    assert h.curve_glob(paths.FORECASTS_DIR) == \
        str(tmp_path / "forecasts" / "entity_code=*" / "forecast.parquet")
    with pytest.raises(ValueError, match="unknown curve kind"):
        h.curves("models")

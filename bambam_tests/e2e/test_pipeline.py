"""The whole graph once on generated demo data, through the CLI runner and the local instance."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.instance import local_instance
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.runner import run_pipeline


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pipeline") / "home"
    demo_data.generate(home / "raw", ["MK", "DL"], 3, date(2024, 1, 1), date(2024, 6, 30), seed=3)
    return home


@pytest.fixture
def env(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BAMBAM_HOME", str(demo_home))
    monkeypatch.delenv("BAMBAM_RAW", raising=False)
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-06-30")
    return demo_home


def test_run_builds_every_layer_then_is_idempotent(env: Path) -> None:
    instance = local_instance(env)
    summary = run_pipeline(instance, log=lambda _msg: None)
    assert summary.success and not summary.failed_checks
    assert {"fct_wait_times", "dim_entity", "dim_park_hours", "dim_calendar", "dim_season",
            "entity_model"} <= set(summary.materialized)
    with wh.reader(env) as conn:
        facts = conn.execute("SELECT count(*) FROM fct_wait_times").fetchall()[0][0]
        entities = [c for (c,) in conn.execute(
            "SELECT entity_code FROM entity_index ORDER BY 1").fetchall()]
        parks = dict(conn.execute(
            "SELECT park_code, count(*) FROM dim_entity GROUP BY 1").fetchall())
        dl_tz_hours = conn.execute(
            "SELECT count(*) FROM dim_park_hours WHERE park_code = 'DL' AND source = 'donor'"
        ).fetchall()[0][0]
        current = {c for (c,) in conn.execute(
            "SELECT entity_code FROM model_registry WHERE is_current").fetchall()}
        with_targets = {c for (c,) in conn.execute(
            "SELECT entity_code FROM entity_index "
            "WHERE actual_count + priority_count > 0").fetchall()}
    assert facts > 10_000
    assert parks == {"MK": 3, "DL": 3}
    assert dl_tz_hours > 0  # future days beyond the official export get donor hours
    # every entity with targets has a current model and a materialized partition (UI)
    assert current == with_targets and len(current) >= 5
    assert set(instance.get_dynamic_partitions("entity")) == set(entities)
    assert instance.get_materialized_partitions(dg.AssetKey("entity_model")) == current

    assert {"entity_forecast", "entity_backfill", "park_wti", "park_wti_daily"} <= set(
        summary.materialized)

    # a second run reads no file, adds no row, and retrains nothing (no entity is stale)
    lines: list[str] = []
    again = run_pipeline(instance, log=lines.append)
    assert again.success
    assert "no entity is due for retraining" in lines
    assert "entity_model" not in again.materialized
    with wh.reader(env) as conn:
        assert conn.execute("SELECT count(*) FROM fct_wait_times").fetchall()[0][0] == facts
        assert conn.execute("SELECT max(version) FROM model_registry").fetchall()[0][0] == 1
    events = instance.fetch_materializations(dg.AssetKey("fct_wait_times"), limit=1).records
    assert events[0].asset_materialization.metadata["rows_added"].value == 0

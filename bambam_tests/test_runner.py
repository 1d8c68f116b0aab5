"""runner.run_pipeline: the home, raw source and run knobs are passed to every run explicitly
(resource config and tags), never through the environment."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from bambam_assets.defs.resources import (
    AS_OF_TAG,
    BACKFILL_DAYS_TAG,
    FORECAST_DAYS_TAG,
    TRAIN_MODE_TAG,
    RunKnobs,
)
from bambam_assets.instance import instance_at
from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.forecasts import forecast
from bambam_assets.runner import run_pipeline


def test_every_run_carries_the_knobs_and_uses_the_given_home(bambam_home: Path,
                                                             tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    demo_data.generate(raw, ["MK"], 2, date(2024, 3, 1), date(2024, 5, 31), seed=7, qt_days=0)
    home = tmp_path / "explicit"
    as_of = date(2024, 5, 31)  # the environment says 2024-03-31 (bambam_home fixture)
    knobs = RunKnobs(as_of=as_of, forecast_days=3, backfill_days=5, train_mode="full")
    env_before = dict(os.environ)
    instance = instance_at(home)
    try:
        summary = run_pipeline(instance, log=lambda _m: None, home=home, raw_uri=str(raw),
                               knobs=knobs)
        assert summary.success
        assert {"entity_model", "entity_forecast", "entity_backfill",
                "park_wti"} <= set(summary.materialized)
        runs = [instance.get_run_by_id(run_id) for run_id in summary.run_ids]
        # a range run plans each asset once, with the range as a subset: not one event-log
        # write per entity partition (5,082 of them per run at 1,694 entities)
        planned = {run.run_id: instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
            for run in runs if run.tags.get("dagster/asset_partition_range_start")}
    finally:
        instance.dispose()
    assert len(runs) == 5  # upstream layers, entity_model, forecast, backfill, WTI
    for run in runs:
        assert run.tags[AS_OF_TAG] == "2024-05-31"
        assert run.tags[FORECAST_DAYS_TAG] == "3"
        assert run.tags[BACKFILL_DAYS_TAG] == "5"
        assert run.tags[TRAIN_MODE_TAG] == "full"
        resources = run.run_config["resources"]
        assert resources["warehouse"]["config"]["home"] == str(home.resolve())
        assert resources["raw_source"]["config"]["uri"] == str(raw)
        assert resources["run_settings"]["config"] == {
            "as_of": "2024-05-31", "forecast_days": 3, "backfill_days": 5}
    assert len(planned) == 3  # entity_model, entity_forecast, entity_backfill
    for records in planned.values():
        (event,) = records
        data = event.event_log_entry.dagster_event.event_specific_data
        assert data.partition is None and set(data.partitions_subset.get_partition_keys()) == {
            "MK1", "MK2"}
    (model_run,) = [r for r in runs if "entity_model" in r.run_config.get("ops", {})]
    assert model_run.run_config["ops"]["entity_model"]["config"]["mode"] == "full"
    # the given home holds everything; the environment's home and the environment are untouched
    assert HomePaths(home).warehouse.exists() and HomePaths(home).models.is_dir()
    assert not HomePaths(bambam_home).warehouse.exists()
    assert dict(os.environ) == env_before
    span = duckdb.connect().execute(
        "SELECT min(park_date), max(park_date) FROM read_parquet(?)",
        [HomePaths(home).curve_glob(FORECASTS_DIR)]).fetchall()[0]
    assert span == forecast.forecast_window(as_of, 3)  # the as-of week's window


def test_knobs_default_to_the_settings(monkeypatch) -> None:
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-02-29")
    monkeypatch.setenv("BAMBAM_FORECAST_DAYS", "10")
    monkeypatch.delenv("BAMBAM_BACKFILL_DAYS", raising=False)
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "incremental")
    knobs = RunKnobs.from_settings()
    assert knobs == RunKnobs(date(2024, 2, 29), 10, None, "incremental")
    assert knobs.tags() == {AS_OF_TAG: "2024-02-29", FORECAST_DAYS_TAG: "10",
                            BACKFILL_DAYS_TAG: "all", TRAIN_MODE_TAG: "incremental"}
    assert knobs.tags(train_mode="full")[TRAIN_MODE_TAG] == "full"
    assert RunKnobs.from_settings(as_of=date(2024, 1, 1), forecast_days=2).tags()[
        FORECAST_DAYS_TAG] == "2"
    monkeypatch.delenv("BAMBAM_FORECAST_DAYS")
    assert RunKnobs.from_settings().tags()[FORECAST_DAYS_TAG] == "730"


def test_selecting_one_asset_of_a_step_runs_the_whole_step(bambam_home: Path,
                                                           tmp_path: Path) -> None:
    """`bambam run --select fct_wait_times`: the ingest step writes three assets in one
    transaction and cannot be split, so the selection grows to all three instead of ending in
    Dagster's DagsterInvalidSubsetError; an unknown name is refused in one line."""
    import pytest
    from click.testing import CliRunner

    from bambam_assets.cli.run import run as run_command

    raw = tmp_path / "raw"
    demo_data.generate(raw, ["MK"], 1, date(2024, 5, 1), date(2024, 5, 7), seed=7, qt_days=0)
    home = tmp_path / "home"
    instance = instance_at(home)
    said: list[str] = []
    try:
        summary = run_pipeline(instance, ["fct_wait_times"], log=said.append, home=home,
                               raw_uri=str(raw), knobs=RunKnobs(as_of=date(2024, 5, 7)))
        with pytest.raises(ValueError, match="unknown asset fct_waits; known assets: .*"):
            run_pipeline(instance, ["fct_waits"], log=said.append, home=home, raw_uri=str(raw))
    finally:
        instance.dispose()
    assert summary.success
    assert {"fct_wait_times", "fct_rejected_rows", "entity_index"} <= set(summary.materialized)
    assert "entity_model" not in summary.materialized
    assert any(m.startswith("fct_wait_times is written together with") for m in said)
    with duckdb.connect(str(HomePaths(home).warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM fct_wait_times").fetchone()[0] > 0
    refused = CliRunner().invoke(run_command, ["--select", "nope"])
    assert refused.exit_code == 2 and "unknown asset nope" in refused.output

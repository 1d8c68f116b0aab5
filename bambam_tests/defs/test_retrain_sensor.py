"""The retrain sensor's request (one range run, due list in tier order, stable run key, skips),
the schedules' requests, and that every automation object loads in one Definitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.defs.automation import schedules, sensors
from bambam_assets.defs.resources import RunKnobs, RunSettingsResource, WarehouseResource
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.models import batch as tb
from bambam_tests.builders import WORLD, WORLD_NOW, build_world

KEYS = sorted(WORLD)  # DL1 ... UF1: range start DL1, end UF1


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dg.DagsterInstance]:
    home = tmp_path / "home"
    build_world(home)
    # the sensor compares with the real training code version and params
    monkeypatch.setattr(tb, "TRAINING_CODE_VERSION", "7")
    monkeypatch.setattr(tb, "params_hash", lambda: "abc123")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", KEYS)
    _materialized(instance, sensors.NEEDED_BEFORE_TRAINING)
    return home, instance


def _materialized(instance: dg.DagsterInstance, names) -> None:
    """Record that the assets the retrain run reads were built (the world built their tables)."""
    for name in names:
        instance.report_runless_asset_event(dg.AssetMaterialization(name))


def _tick(home: Path, instance: dg.DagsterInstance, now: datetime):
    sensor = sensors.build_retrain_sensor(clock=lambda: now)
    ctx = dg.build_sensor_context(instance=instance, resources={
        "warehouse": WarehouseResource(home=str(home)),
        "run_settings": RunSettingsResource(as_of="2024-06-01")})
    return sensor.evaluate_tick(ctx)


def test_one_range_run_with_due_entities_in_tier_order(world, monkeypatch) -> None:
    home, instance = world
    monkeypatch.delenv("BAMBAM_TRAIN_MODE", raising=False)
    data = _tick(home, instance, WORLD_NOW)
    assert data.skip_message is None
    assert len(data.run_requests) == 1
    req = data.run_requests[0]
    assert req.tags[sensors.RANGE_START] == "DL1" and req.tags[sensors.RANGE_END] == "UF1"
    assert req.tags["bambam/trigger"] == "retrain_sensor"
    assert req.tags["bambam/as_of"] == "2024-06-01" and req.tags["bambam/train_mode"] == "auto"
    cfg = req.run_config["ops"]["entity_model"]["config"]
    assert cfg["only"] == ["MK1", "MK2", "MK3", "EP1", "EP2", "DL2", "TDL1"]
    assert cfg["mode"] == "auto"  # BAMBAM_TRAIN_MODE's default, read at each tick
    assert cfg["evaluated_at"] == WORLD_NOW.isoformat()
    assert cfg["reasons"]["MK2"] == "120 new targets (>= 100)"
    assert cfg["reasons"]["DL2"] == "age 80.0h >= 72h (high tier, 2h grace)"
    assert req.asset_selection == [dg.AssetKey("entity_model")]
    # same state in the same window: the same key (not requested twice); next window: new key
    assert _tick(home, instance, WORLD_NOW + timedelta(minutes=30)).run_requests[0].run_key == \
        req.run_key
    later = _tick(home, instance, WORLD_NOW + timedelta(hours=6)).run_requests[0]
    assert later.run_key != req.run_key
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "full")
    forced = _tick(home, instance, WORLD_NOW).run_requests[0]
    assert forced.run_config["ops"]["entity_model"]["config"]["mode"] == "full"
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "sometimes")
    with pytest.raises(Exception, match="BAMBAM_TRAIN_MODE"):
        _tick(home, instance, WORLD_NOW)
    monkeypatch.delenv("BAMBAM_TRAIN_MODE")
    # new targets for a due entity change its state: a new key at once
    with wh.writer(home) as conn:
        conn.execute("UPDATE model_registry SET version = 2 WHERE entity_code = 'MK2'")
    assert _tick(home, instance, WORLD_NOW + timedelta(minutes=30)).run_requests[0].run_key != \
        req.run_key


def test_skip_reason_lists_why_not_when_nothing_due(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    build_world(home, {k: WORLD[k] for k in ("DL1", "UF1", "MK4")})
    monkeypatch.setattr(tb, "TRAINING_CODE_VERSION", "7")
    monkeypatch.setattr(tb, "params_hash", lambda: "abc123")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", ["DL1", "MK4", "UF1"])
    _materialized(instance, sensors.NEEDED_BEFORE_TRAINING)
    data = _tick(home, instance, WORLD_NOW)
    assert data.run_requests == []
    assert data.skip_message.startswith("nothing due among 3 entities (as of 2024-06-01): ")
    assert "DL1: fresh: 0 new targets (< 100), age 50.0h < 72h" in data.skip_message
    assert "MK4: no target observations" in data.skip_message


def test_waits_for_what_training_reads_on_a_fresh_home(tmp_path: Path) -> None:
    """Before the automation built the dimensions, posted_aggregates and the global model, the
    sensor requests nothing and names what it waits for."""
    home = tmp_path / "home"
    build_world(home)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", KEYS)
    _materialized(instance, [n for n in sensors.NEEDED_BEFORE_TRAINING
                             if n not in ("dim_park_hours", "posted_aggregates")])
    data = _tick(home, instance, WORLD_NOW)
    assert data.run_requests == []
    assert data.skip_message.startswith("waiting for dim_park_hours, posted_aggregates")
    _materialized(instance, ["dim_park_hours", "posted_aggregates"])
    assert len(_tick(home, instance, WORLD_NOW).run_requests) == 1


def test_skip_while_the_warehouse_is_locked(world) -> None:
    home, instance = world
    with wh.writer(home):
        data = _tick(home, instance, WORLD_NOW)
    assert data.run_requests == []
    assert data.skip_message.startswith("warehouse locked by a writer")


def test_stale_entity_without_partition_is_added_not_requested(world) -> None:
    home, instance = world
    instance.delete_dynamic_partition("entity", "TDL1")
    data = _tick(home, instance, WORLD_NOW)
    assert "TDL1" not in data.run_requests[0].run_config["ops"]["entity_model"]["config"]["only"]
    assert data.dynamic_partitions_requests[0].partition_keys == ["TDL1"]


def test_window_start() -> None:
    t = datetime(2024, 6, 2, 13, 45, 10, tzinfo=UTC)
    assert sensors.window_start(t, 6) == datetime(2024, 6, 2, 12, tzinfo=UTC)
    assert sensors.window_start(t, 24) == datetime(2024, 6, 2, 0, tzinfo=UTC)


def test_weekly_full_retrain_and_daily_schedules() -> None:
    with dg.instance_for_test() as instance:
        _check_schedules(instance)


def _check_schedules(instance: dg.DagsterInstance) -> None:
    when = datetime(2024, 6, 2, 3, 0, tzinfo=UTC)
    weekly = schedules.build_weekly_full_retrain_schedule()
    empty = weekly.evaluate_tick(dg.build_schedule_context(instance, scheduled_execution_time=when))
    assert empty.skip_message == "no entity partitions yet"
    instance.add_dynamic_partitions("entity", ["MK1", "MK2", "DL1"])
    data = weekly.evaluate_tick(dg.build_schedule_context(instance, scheduled_execution_time=when))
    (req,) = data.run_requests
    assert req.tags[sensors.RANGE_START] == "MK1" and req.tags[sensors.RANGE_END] == "DL1"
    assert req.run_config["ops"]["entity_model"]["config"] == {"only": [], "mode": "full"}
    assert req.run_key == "weekly-full-2024-06-02"
    assert req.tags["bambam/train_mode"] == "full" and "bambam/as_of" in req.tags
    assert weekly.cron_schedule == "0 3 * * 0"
    assert weekly.execution_timezone == "America/New_York"
    daily = schedules.build_daily_schedule(cron="30 5 * * *")
    (dreq,) = daily.evaluate_tick(
        dg.build_schedule_context(instance, scheduled_execution_time=when)).run_requests
    assert dreq.run_key == "daily-new_york-2024-06-01"  # 23:00 in New York: still June 1st
    assert {"bambam/as_of", "bambam/forecast_days", "bambam/backfill_days"} <= set(dreq.tags)
    assert daily.cron_schedule == "30 5 * * *" and daily.job_name == "daily_pipeline_job"
    assert schedules.daily_pipeline_schedule.cron_schedule == "0 6 * * *"


def test_everything_loads_in_one_definitions() -> None:
    from bambam_assets.definitions import defs as base

    defs = dg.Definitions.merge(base, dg.Definitions(
        # the sensors are built with the code location (their intervals from the settings)
        jobs=[schedules.daily_pipeline_job],
        schedules=[schedules.daily_pipeline_schedule, schedules.weekly_full_retrain_schedule],
    ))
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("daily_pipeline_job")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"fct_wait_times", "entity_index", "dim_entity", "dim_park_hours"} <= selected
    assert "entity_model" not in selected
    assert defs.resolve_sensor_def("retrain_sensor").default_status == \
        dg.DefaultSensorStatus.RUNNING
    for name in ("bambam_automation_sensor", "bambam_entity_automation_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    model = defs.resolve_assets_def("entity_model")
    policy = model.specs_by_key[dg.AssetKey("entity_model")].freshness_policy
    assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=26)


def test_bambam_run_and_the_sensor_build_the_same_entity_model_run(world, monkeypatch) -> None:
    """`bambam run` (runner) and the sensor share one builder: same due list, config and range
    and due tags for the same warehouse and clock; only the trigger tag differs."""
    from bambam_assets import runner

    home, instance = world
    monkeypatch.setenv("BAMBAM_HOME", str(home))
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-06-01")
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "full")

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return WORLD_NOW.astimezone(tz)

    monkeypatch.setattr(runner, "datetime", FrozenClock)
    lines: list[str] = []
    target = runner._Target(home, str(home / "raw"), RunKnobs.from_settings())
    run = runner._due_run(KEYS, lines.append, target)
    req = _tick(home, instance, WORLD_NOW).run_requests[0]
    assert run.run_config == req.run_config
    assert run.run_config["ops"]["entity_model"]["config"]["only"] == \
        ["MK1", "MK2", "MK3", "EP1", "EP2", "DL2", "TDL1"]
    # the run knobs (bambam/as_of, ...) are added to every CLI run when it executes
    knob_tags = set(RunKnobs.from_settings().tags())
    sensor_tags = {k: v for k, v in req.tags.items()
                   if not k.startswith("dagster/sensor") and k not in knob_tags}
    assert {**run.tags, "bambam/trigger": "retrain_sensor"} == sensor_tags
    assert run.tags["bambam/trigger"] == "cli"
    assert lines == ["7 of 11 entities due for retraining"]
    # the weekly schedule and `bambam run --retrain-all` share the full-retrain run as well
    from bambam_assets.defs.models.retrain import full_retrain_run

    full = full_retrain_run(KEYS, "cli")
    assert full.run_config == {"ops": {"entity_model": {"config": {"only": [], "mode": "full"}}}}
    assert full.tags == {sensors.RANGE_START: "DL1", sensors.RANGE_END: "UF1",
                         "bambam/trigger": "cli"}


def test_one_daily_schedule_per_time_zone_group_as_of_its_park_date(monkeypatch) -> None:
    monkeypatch.delenv("BAMBAM_AS_OF", raising=False)
    by_tz = {s.execution_timezone: s for s in schedules.daily_pipeline_schedules}
    assert set(by_tz) == {"America/New_York", "America/Los_Angeles", "Asia/Tokyo"}
    assert all(s.cron_schedule == "0 6 * * *" for s in by_tz.values())
    assert by_tz["America/New_York"].name == "daily_pipeline_schedule"
    # Tokyo's 06:00 on June 2nd is 21:00 UTC on June 1st: its run is as of June 2nd (its park
    # date), not the machine's June 1st
    tick = datetime(2024, 6, 1, 21, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        (req,) = by_tz["Asia/Tokyo"].evaluate_tick(
            dg.build_schedule_context(instance, scheduled_execution_time=tick)).run_requests
        assert req.run_key == "daily-tokyo-2024-06-02"
        assert req.tags["bambam/as_of"] == "2024-06-02"
        assert req.tags[schedules.TZ_GROUP_TAG] == "Asia/Tokyo"
        # the run computes as of that date (resource config), not as of its own start
        assert req.run_config["resources"]["run_settings"]["config"]["as_of"] == "2024-06-02"
        ny = datetime(2024, 6, 2, 10, 0, tzinfo=UTC)  # 06:00 in New York
        (nyreq,) = by_tz["America/New_York"].evaluate_tick(
            dg.build_schedule_context(instance, scheduled_execution_time=ny)).run_requests
        assert nyreq.tags["bambam/as_of"] == "2024-06-02"
        monkeypatch.setenv("BAMBAM_AS_OF", "2023-12-24")  # replays still override
        (replay,) = by_tz["Asia/Tokyo"].evaluate_tick(
            dg.build_schedule_context(instance, scheduled_execution_time=tick)).run_requests
        assert replay.tags["bambam/as_of"] == "2023-12-24"

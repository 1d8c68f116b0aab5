"""One training at a time, whoever starts it: the retrain sensor skips while a weekly full
retrain runs, naming it. (Two concurrent `bambam run` processes: bambam_tests/e2e/
test_training_processes.py.)"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from bambam_assets.defs.automation import schedules, sensors
from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.models import registry, training_lock
from bambam_tests.builders import TRAINING_AS_OF as AS_OF
from bambam_tests.builders import build_training_home

KEYS = ["MK1", "MK2", "MK3", "MK4"]


def _resources(home: Path) -> dict:
    return {"warehouse": WarehouseResource(home=str(home)),
            "run_settings": RunSettingsResource(as_of=AS_OF.isoformat())}


def _run_in_thread(home: Path, instance: dg.DagsterInstance, req: dg.RunRequest) -> tuple:
    """Materialize the request's entity_model run in a thread; returns (thread, results)."""
    results: list = []

    def target() -> None:
        results.append(dg.materialize(
            [entity_model], instance=instance, resources=_resources(home),
            run_config=req.run_config, tags=req.tags, raise_on_error=False))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, results


def _wait_for_started(instance: dg.DagsterInstance, n: int, timeout_s: float = 60) -> list:
    # (one run thread at a time: two runs in threads of one process deadlock in Dagster's
    # sqlite run storage; concurrent runs are tested as processes)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if len(runs) >= n:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"{n} runs did not start in {timeout_s}s")


def _tick(home: Path, instance: dg.DagsterInstance):
    sensor = sensors.build_retrain_sensor()
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance,
                                                        resources=_resources(home)))


def test_retrain_sensor_skips_while_a_weekly_full_retrain_runs(tmp_path: Path) -> None:
    home = build_training_home(tmp_path / "home")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("entity", KEYS)
        for name in sensors.NEEDED_BEFORE_TRAINING:  # the training home built their tables
            instance.report_runless_asset_event(dg.AssetMaterialization(name))
        weekly = schedules.build_weekly_full_retrain_schedule()
        (req,) = weekly.evaluate_tick(dg.build_schedule_context(
            instance, scheduled_execution_time=datetime(2024, 6, 30, 3, tzinfo=UTC))).run_requests
        # Another training holds the lock, so the weekly run stays in progress at its step.
        with training_lock.training_lock(home, "earlier-training"):
            thread, results = _run_in_thread(home, instance, req)
            (weekly_run,) = _wait_for_started(instance, 1)
            busy = _tick(home, instance)
        thread.join(120)
        after = _tick(home, instance)
    assert busy.run_requests == []
    assert busy.skip_message.startswith(
        f"training run {weekly_run.run_id} (weekly_full_retrain, STARTED) in progress")
    assert "training lock held by run earlier-training" in busy.skip_message
    # The weekly run trained every entity once the lock was free; the sensor evaluates again.
    assert results[0].success
    assert {registry.current_version(home / "models", k) for k in ("MK1", "MK2", "MK3")} == {1}
    assert after.skip_message.startswith("nothing due among 4 entities")

"""After the daemon was down for days, each daily schedule is caught up ONCE (Dagster 1.13's
scheduler, run here through its own tick function on the real code location), as of its time-zone
group's latest park date."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._scheduler.scheduler import launch_scheduled_runs

REPO = Path(__file__).resolve().parents[2]
DAILY = {"daily_pipeline_schedule": "America/New_York",
         "daily_pipeline_schedule_los_angeles": "America/Los_Angeles",
         "daily_pipeline_schedule_tokyo": "Asia/Tokyo"}


def _tick(context, at: datetime) -> None:
    with freeze_time(at):
        list(launch_scheduled_runs(context, logging.getLogger("catch_up_test"), at, {}))


@pytest.mark.integration
def test_missed_daily_ticks_are_caught_up_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BAMBAM_AS_OF", raising=False)
    monkeypatch.setenv("BAMBAM_HOME", str(tmp_path / "home"))
    target = ModuleTarget(module_name="bambam_assets.definitions", attribute=None,
                          working_directory=str(REPO), location_name="bambam")
    with dg.instance_for_test(overrides={"run_launcher": {
            "module": "dagster._core.test_utils", "class": "MockedRunLauncher"}}) as instance, \
            create_test_daemon_workspace_context(target, instance) as context:
        start = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # Monday 08:00 New York
        _tick(context, start)  # the daemon starts: schedules begin from here, nothing due
        assert instance.get_runs() == []
        # down from Monday noon UTC to Thursday 15:00 UTC: three 06:00 ticks missed per group
        _tick(context, start + timedelta(days=3, hours=3))
        runs = instance.get_runs()
    by_schedule: dict[str, list] = {}
    for run in runs:
        by_schedule.setdefault(run.tags["dagster/schedule_name"], []).append(run)
    assert {name: len(r) for name, r in by_schedule.items()} == {name: 1 for name in DAILY}
    # ... each as of its group's latest park date at the latest missed tick
    assert {name: r[0].tags["bambam/as_of"] for name, r in by_schedule.items()} == {
        "daily_pipeline_schedule": "2024-06-06",  # Thursday 06:00 New York
        "daily_pipeline_schedule_los_angeles": "2024-06-06",  # Thursday 06:00 Los Angeles
        # Thursday 06:00 Tokyo (Wednesday 21:00 UTC); Friday's is at 21:00 UTC, still ahead
        "daily_pipeline_schedule_tokyo": "2024-06-06",
    }

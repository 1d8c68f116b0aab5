"""The alert sensors: a real failed run (bad raw data stopped by the fact table's blocking check)
is reported once, in status/alerts.jsonl, on the dashboard's status page and to a real local
HTTP webhook; a webhook that fails does not lose the alert; a freshness failure judged by
Dagster's freshness daemon is reported once per failure."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.dashboard.context import make_context
from bambam_assets.dashboard.pages import status
from bambam_assets.definitions import defs
from bambam_assets.defs.automation.alerts import freshness_alert, run_failure_alert
from bambam_assets.defs.groups import DIMENSIONS, GROUP_ASSETS
from bambam_assets.defs.resources import WarehouseResource
from bambam_assets.instance import instance_at
from bambam_assets.lib.core import alerts, settings
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.runner import run_pipeline
from bambam_tests.builders import WebhookReceiver, wrong_year_export

CHECK = "fct_wait_times:fct_wait_times_keys_unique_not_future"


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch):
    receiver = WebhookReceiver()
    monkeypatch.setenv(settings.ALERT_WEBHOOK, receiver.url)
    yield receiver
    receiver.close()


def _tick(instance: dg.DagsterInstance, home: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs,
        resources={"warehouse": WarehouseResource(home=str(home))})
    return run_failure_alert.evaluate_tick(context)


def test_a_failed_run_raises_one_alert_everywhere(bambam_home: Path, webhook, monkeypatch) -> None:
    raw = bambam_home / "raw"
    demo_data.generate(raw, ["MK"], 1, date(2024, 3, 1), date(2024, 3, 31), seed=3, qt_days=0)
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-04-02")
    wrong_year_export(raw, 2042)
    instance = instance_at(bambam_home)
    try:
        first = _tick(instance, bambam_home, None)  # a new sensor starts at the newest event
        assert not webhook.bodies and first.cursor
        summary = run_pipeline(instance, ["fct_wait_times", *GROUP_ASSETS[DIMENSIONS]],
                               log=lambda _m: None)
        assert not summary.success
        (failed_run,) = summary.run_ids
        second = _tick(instance, bambam_home, first.cursor)
        _tick(instance, bambam_home, second.cursor)  # nothing new: no second alert
    finally:
        instance.dispose()

    (body,) = webhook.bodies
    alert = body["alert"]
    assert alert["kind"] == alerts.RUN_FAILURE and alert["subject"] == failed_run
    assert CHECK in alert["details"]["failed_checks"]
    assert CHECK in body["text"] and failed_run[:8] in body["text"]

    (recorded,) = alerts.read_alerts(bambam_home)
    assert recorded["subject"] == failed_run and recorded["webhook"] == "sent"

    page = json.dumps(status.content(make_context(bambam_home)).to_plotly_json(), default=str)
    assert failed_run in page and "fct_wait_times_keys_unique_not_future" in page


def test_a_broken_webhook_keeps_the_alert(tmp_path: Path) -> None:
    receiver = WebhookReceiver(status=500)
    try:
        alert = alerts.raise_alert(tmp_path, alerts.Alert(kind=alerts.FRESHNESS,
                                                          subject="park_wti",
                                                          message="park_wti is not fresh"),
                                   receiver.url)
    finally:
        receiver.close()
    assert len(receiver.bodies) == 3  # retried: a 5xx may pass
    assert alert.webhook == "failed: HTTP 500"
    (recorded,) = alerts.read_alerts(tmp_path)
    assert recorded["subject"] == "park_wti" and recorded["webhook"] == "failed: HTTP 500"
    # nothing listens any more: the alert is still recorded, with the reason
    refused = alerts.raise_alert(tmp_path, alerts.Alert(kind=alerts.FRESHNESS, subject="x",
                                                        message="m"), receiver.url)
    assert refused.webhook.startswith("failed: ConnectError")
    assert [a["subject"] for a in alerts.read_alerts(tmp_path)] == ["x", "park_wti"]


def _freshness_tick(instance: dg.DagsterInstance, home: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs,
        resources={"warehouse": WarehouseResource(home=str(home))})
    return freshness_alert.evaluate_tick(context)


def test_a_freshness_failure_alerts_once_per_failure(bambam_home: Path, webhook) -> None:
    """Dagster's own FreshnessDaemon judges park_wti (its 26-hour policy) in-process, with the
    clock moved on; park_wti's materializations are reported to the instance as an external
    materialization would be (what builds the WTI is not under test here)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name="bambam_assets.definitions",
                                                    attribute="defs"),
        location_name="bambam")
    start = datetime.now(UTC)
    instance = instance_at(bambam_home)
    try:
        with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
            def judge(at: datetime) -> None:
                with freeze_time(at):
                    list(FreshnessDaemon().run_iteration(workspace))

            instance.report_runless_asset_event(dg.AssetMaterialization("park_wti"))
            judge(start)
            fresh = _freshness_tick(instance, bambam_home, None)
            assert not webhook.bodies
            judge(start + timedelta(hours=27))  # 27 h without a new WTI: FAIL
            failed = _freshness_tick(instance, bambam_home, fresh.cursor)
            again = _freshness_tick(instance, bambam_home, failed.cursor)  # still FAIL
            assert len(webhook.bodies) == 1
            with freeze_time(start + timedelta(hours=28)):
                instance.report_runless_asset_event(dg.AssetMaterialization("park_wti"))
            judge(start + timedelta(hours=28))  # fresh again
            judge(start + timedelta(hours=55))  # and late again: a new failure
            _freshness_tick(instance, bambam_home, again.cursor)
    finally:
        instance.dispose()
    assert [b["alert"]["subject"] for b in webhook.bodies] == ["park_wti", "park_wti"]
    assert all(b["alert"]["kind"] == alerts.FRESHNESS for b in webhook.bodies)
    assert [a["subject"] for a in alerts.read_alerts(bambam_home)] == ["park_wti", "park_wti"]

"""queue_times_poll: expected conditions skip the tick with the reason; a programming error or a
bad setting raises (a sensor error in the UI), never a skip."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from bambam_assets.defs.live import sensors as live
from bambam_assets.defs.live.sensors import queue_times_poll
from bambam_assets.defs.resources import RawSourceResource, WarehouseResource
from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.live import fetch_status, poller
from bambam_tests.builders import POLLER_MAPPING as MAPPING
from bambam_tests.builders import POLLER_NOW as NOW
from bambam_tests.builders import FakeQueueTimes, mk_snapshot, write


@pytest.fixture
def server():
    api = FakeQueueTimes(mk_snapshot(NOW))
    api.behaviour.update({6: ["ok"]})  # MK answers; DL (16) is unknown to the server: 404
    yield api
    api.close()


@pytest.fixture
def poll_env(bambam_home: Path, server, monkeypatch: pytest.MonkeyPatch):
    write(bambam_home / "raw", "queue_times/entity_mapping.csv", MAPPING)
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_URL", server.url)
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_PARKS", "MK")
    return bambam_home


def _tick(home: Path, cursor: str | None = None):
    ctx = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), cursor=cursor,
        resources={"raw_source": RawSourceResource(uri=str(home / "raw")),
                   "warehouse": WarehouseResource(home=str(home))})
    return queue_times_poll(ctx)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hours_away_from_now(home: Path, park: str = "MK") -> None:
    """dim_park_hours where `park` opens 5 h from now on each of its park days around now."""
    now = datetime.now(UTC)
    day = poller.park_day(now, park)
    days = [day + timedelta(days=k) for k in (-1, 0, 1)]
    opening = pd.Series([pd.Timestamp(now + timedelta(hours=5, days=k)) for k in (-1, 0, 1)])
    hours = pd.DataFrame({
        "park_code": park, "park_date": pd.to_datetime(days), "opening_time": opening,
        "closing_time": opening + pd.Timedelta(hours=1), "opening_time_with_emh": opening,
        "closing_time_with_emh": opening + pd.Timedelta(hours=1), "emh_morning": False,
        "emh_evening": False, "source": "official", "confidence": 1.0})
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        schema.replace_dimension(conn, "dim_park_hours", hours)


def test_no_park_in_its_window_is_a_skip_with_the_reason(poll_env: Path, server) -> None:
    _hours_away_from_now(poll_env)
    result = _tick(poll_env)
    assert isinstance(result, dg.SensorResult) and result.cursor  # the check counts as a poll
    assert result.skip_reason.skip_message.startswith(
        "no park inside its polling window (hours ± 90 min): MK: outside_window (window ")
    assert server.hits == {}


def test_queue_times_unreachable_or_http_errors_are_a_skip_with_the_reason(
        poll_env: Path, server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_PARKS", "DL")
    result = _tick(poll_env)  # no warehouse: hours unknown, DL fails open and answers 404
    assert isinstance(result, dg.SensorResult) and result.cursor
    assert result.skip_reason.skip_message.startswith(
        "no park fetched (recorded in fetch_status, retried next poll): DL: http_404: HTTP 404")
    # the failure is still recorded and folded into fetch_status
    assert [e.asset_key.path[0] for e in result.asset_events] == \
        ["fetch_status", "queue_times_unmapped"]
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(live, "QueueTimesClient",
                        lambda **kw: poller.QueueTimesClient(attempts=1, backoff_s=0.01, **kw))
    down = _tick(poll_env)
    assert "DL: connection: ConnectError" in down.skip_reason.skip_message
    # the S3 raw source out of reach (a RawSource raises ConnectionError): skip, cursor kept
    def unreachable(source):
        raise ConnectionError("S3 read on s3://bucket: cannot reach http://minio:9000")

    monkeypatch.setattr(fetch_status, "read_mapping", unreachable)
    skipped = _tick(poll_env)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == ("poll failed: ConnectionError: S3 read on s3://bucket: "
                                    "cannot reach http://minio:9000")


def test_a_programming_error_is_a_sensor_error(poll_env: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(result, snap, mapping):
        raise KeyError("rides")

    monkeypatch.setattr(poller, "summarize", broken)  # after a successful fetch of MK
    with pytest.raises(KeyError, match="rides"):
        _tick(poll_env)
    # through Dagster's evaluation too: an error, not a skipped tick
    ctx = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"raw_source": RawSourceResource(uri=str(poll_env / "raw")),
                   "warehouse": WarehouseResource(home=str(poll_env))})
    with pytest.raises(Exception, match="rides"):
        queue_times_poll.evaluate_tick(ctx)


@pytest.mark.parametrize(("env", "value", "message"), [
    ("BAMBAM_QUEUE_TIMES_URL", "ftp://queue-times.com", "BAMBAM_QUEUE_TIMES_URL must be an"),
    ("BAMBAM_QUEUE_TIMES_PARKS", "XX,YY",
     "BAMBAM_QUEUE_TIMES_PARKS must be comma-separated park codes"),
    ("BAMBAM_QUEUE_TIMES_INTERVAL_S", "soon",
     "BAMBAM_QUEUE_TIMES_INTERVAL_S must be a whole number"),
    ("BAMBAM_RAW", "s3://", "names no bucket"),
])
def test_a_bad_setting_is_a_sensor_error(poll_env: Path, monkeypatch: pytest.MonkeyPatch,
                                         env: str, value: str, message: str) -> None:
    monkeypatch.setenv(env, value)
    ctx = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"raw_source": RawSourceResource(), "warehouse": WarehouseResource()})
    with pytest.raises(ValueError, match=message):
        queue_times_poll(ctx)

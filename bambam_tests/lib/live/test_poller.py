"""The queue-times poller against a real HTTP server on localhost: window, retries, snapshots,
ingest of the written snapshot, fetch status and the unmapped report."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from bambam_assets.defs.live.sensors import queue_times_poll
from bambam_assets.defs.resources import RawSourceResource, WarehouseResource
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.ingest.ingest import ingest
from bambam_assets.lib.ingest.raw_source import LocalRawSource
from bambam_assets.lib.live import fetch_status as fs
from bambam_assets.lib.live.poller import poll, snapshot_key, window_status
from bambam_assets.lib.live.queue_times_client import QueueTimesClient
from bambam_tests.builders import (
    POLLER_MAPPING as MAPPING,
)
from bambam_tests.builders import (
    POLLER_NOW as NOW,
)
from bambam_tests.builders import (
    FakeQueueTimes,
    mk_snapshot,
    write,
)


@pytest.fixture
def api():
    server = FakeQueueTimes(mk_snapshot(NOW))
    yield server
    server.close()


def hours_frame(rows: list[tuple[str, str, str, str, str | None]]) -> pd.DataFrame:
    """(park, park_date, open, close, open_with_emh) with ISO instants -> dim_park_hours rows."""
    df = pd.DataFrame(rows, columns=["park_code", "park_date", "opening_time", "closing_time",
                                     "opening_time_with_emh"])
    df["park_date"] = pd.to_datetime(df["park_date"])
    for col in ("opening_time", "closing_time", "opening_time_with_emh"):
        df[col] = pd.to_datetime(df[col], utc=True)
    df["closing_time_with_emh"] = df["closing_time"]
    return df


HOURS = hours_frame([
    ("MK", "2024-03-14", "2024-03-14T09:00:00-04:00", "2024-03-15T01:00:00-04:00", None),
    ("MK", "2024-03-15", "2024-03-15T09:00:00-04:00", "2024-03-15T21:00:00-04:00",
     "2024-03-15T08:00:00-04:00"),
    ("TDS", "2024-03-15", "2024-03-15T09:00:00+09:00", "2024-03-15T21:00:00+09:00", None),
    ("TDS", "2024-03-16", "2024-03-16T09:00:00+09:00", "2024-03-16T21:00:00+09:00", None),
])


def in_window(at: str, park: str = "MK") -> tuple[bool, str, date]:
    row = window_status(HOURS, datetime.fromisoformat(at), [park]).iloc[0]
    return bool(row["in_window"]), row["reason"], row["park_date"]


def test_window_by_hours_zone_and_6am_rule() -> None:
    got = window_status(HOURS, NOW, ["MK", "TDS"]).set_index("park_code")
    assert bool(got.at["MK", "in_window"]) and not bool(got.at["TDS", "in_window"])  # same instant
    assert got.at["TDS", "reason"] == "outside_window"  # 23:00 JST > 21:00 + 90 min
    # EMH opening 08:00 -> window from 06:30; the edges are inclusive to the second
    assert in_window("2024-03-15T06:30:00-04:00")[:2] == (True, "in_window")
    assert in_window("2024-03-15T06:29:59-04:00")[:2] == (False, "outside_window")
    assert in_window("2024-03-15T22:30:00-04:00")[0] is True
    assert in_window("2024-03-15T22:30:01-04:00")[0] is False
    # 6 AM rule: 02:15 on the 15th belongs to park day 14 (closing 01:00 + 90 min = 02:30)
    assert in_window("2024-03-15T02:15:00-04:00") == (True, "in_window", date(2024, 3, 14))
    assert in_window("2024-03-15T02:31:00-04:00")[0] is False
    # TDS the next morning, Tokyo time: 07:30 JST is in, 07:29 out
    assert in_window("2024-03-16T07:30:00+09:00", "TDS")[0] is True
    assert in_window("2024-03-16T07:29:00+09:00", "TDS")[0] is False
    # a park day without hours fails open
    assert in_window("2024-03-15T10:00:00-04:00", "EP") == (True, "no_hours", date(2024, 3, 15))


def test_snapshot_written_ingested_and_status_folded(bambam_home: Path, api) -> None:
    raw = bambam_home / "raw"
    write(raw, "queue_times/entity_mapping.csv", MAPPING)
    api.behaviour[6] = ["ok"]
    source = LocalRawSource(raw)
    with QueueTimesClient(api.url, timeout_s=2, attempts=2, backoff_s=0.01) as client:
        results, windows = poll(client, source, ["MK", "TDS"], HOURS, now=NOW)
    assert windows.set_index("park_code")["in_window"].to_dict() == {"MK": True, "TDS": False}
    (r,) = results  # TDS outside its window: not fetched
    assert api.hits == {6: 1}
    assert r.ok and r.attempts == 1
    assert r.snapshot_key == "queue_times/MK/2024-03-15/MK_20240315T140000Z.json"
    assert json.loads((raw / r.snapshot_key).read_text()) == mk_snapshot(NOW)
    assert (r.rides_seen, r.rows_written, r.stale_rows) == (4, 3, 1)
    assert r.unmapped.to_dict("list") == {"queue_times_id": [9999],
                                          "queue_times_name": ["Meet Mickey"]}
    fs.record_results(bambam_home, results, mapped_ids=[9101, 9102, 9103])

    with warehouse.writer(bambam_home) as conn:
        report = ingest(conn, source, bambam_home / "cache")
        facts = conn.execute("SELECT entity_code, wait_time_type, wait_time_minutes, park_date, "
                             "observed_at FROM fct_wait_times ORDER BY 1").fetchall()
        rejected = conn.execute("SELECT reason, raw FROM fct_rejected_rows").fetchall()
        assert fs.fold_status(conn, bambam_home) == (1, 1)
        status = conn.execute("SELECT park_code, queue_times_id, last_attempt, last_success, "
                              "rides_seen, rows_written, stale_rows, unmapped_rides, error "
                              "FROM fetch_status").fetchall()
        unmapped = conn.execute("SELECT * FROM queue_times_unmapped").fetchall()
    assert report.files_failed == 0
    assert [f[:4] for f in facts] == [
        ("MK101", "POSTED", 40, date(2024, 3, 15)), ("MK102", "CLOSED", None, date(2024, 3, 15)),
        ("MK103", "POSTED", 25, date(2024, 3, 13))]  # the stale row is kept (and counted)
    assert facts[0][4] == NOW - timedelta(minutes=3)  # observed_at = last_updated
    assert [(reason, json.loads(raw_)["id"]) for reason, raw_ in rejected] == \
        [("unmapped_ride", 9999)]
    assert status == [("MK", 6, NOW, NOW, 4, 3, 1, 1, None)]
    assert unmapped == [("MK", 9999, "Meet Mickey", NOW, NOW)]


def test_500_and_timeout_retried_then_recorded(bambam_home: Path, api) -> None:
    raw = bambam_home / "raw"
    write(raw, "queue_times/entity_mapping.csv", MAPPING)
    source = LocalRawSource(raw)
    hours = fs.empty_hours()  # no hours: every park fails open
    api.behaviour.update({6: ["500", "ok"], 5: ["500"], 7: ["slow"], 8: ["malformed"]})
    with QueueTimesClient(api.url, timeout_s=0.3, attempts=3, backoff_s=0.01) as client:
        first, _ = poll(client, source, ["MK", "EP", "HS", "AK", "DL", "BB"], hours, now=NOW)
    by = {r.park_code: r for r in first}
    assert by["MK"].ok and by["MK"].attempts == 2  # 500 then OK: retried
    assert (by["EP"].error_kind, by["EP"].attempts, api.hits[5]) == ("http_500", 3, 3)
    assert (by["HS"].error_kind, by["HS"].attempts, api.hits[7]) == ("timeout", 3, 3)
    assert (by["AK"].error_kind, by["AK"].attempts) == ("malformed_json", 1)
    assert (by["DL"].error_kind, api.hits[16]) == ("http_404", 1)  # not retried
    assert by["BB"].error_kind == "unknown_park"  # no queue-times id
    written = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.json"))
    assert written == ["queue_times/MK/2024-03-15/MK_20240315T140000Z.json"]  # failures write none
    fs.record_results(bambam_home, first, [9101, 9102, 9103])

    # next tick: EP recovers; MK fails, and keeps its last success (no earlier data lost)
    later = NOW + timedelta(minutes=5)
    api.behaviour.update({6: ["500"], 5: ["ok"]})
    with QueueTimesClient(api.url, timeout_s=0.3, attempts=2, backoff_s=0.01) as client:
        second, _ = poll(client, source, ["MK", "EP"], hours, now=later)
    fs.record_results(bambam_home, second, [9101, 9102, 9103])
    status, unmapped = fs.read_status(bambam_home)
    s = status.set_index("park_code")
    assert s.at["MK", "last_success"] == NOW and s.at["MK", "last_attempt"] == later
    assert s.at["MK", "error_kind"] == "http_500" and s.at["MK", "consecutive_failures"] == 1
    assert s.at["MK", "rides_seen"] == 4 and s.at["MK", "rows_written"] == 3
    assert s.at["EP", "last_success"] == later and pd.isna(s.at["EP", "error"])
    assert s.at["HS", "error_kind"] == "timeout" and pd.isna(s.at["HS", "last_success"])
    assert s.at["BB", "error_kind"] == "unknown_park"
    # the unmapped ride seen by MK (NOW) and EP (later) keeps per-park first/last seen
    u = unmapped.set_index("park_code")
    assert u.at["MK", "first_seen"] == NOW and u.at["EP", "first_seen"] == later
    assert (raw / snapshot_key("EP", later)).exists()


def test_sensor_polls_on_interval_and_never_raises(bambam_home: Path, api,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bambam_home / "raw"
    write(raw, "queue_times/entity_mapping.csv", MAPPING)
    api.behaviour.update({6: ["ok"]})  # DL (16) is unknown to the server: 404
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_URL", api.url)
    monkeypatch.setenv("BAMBAM_QUEUE_TIMES_PARKS", "MK,DL")
    resources = {"raw_source": RawSourceResource(uri=str(raw)),
                 "warehouse": WarehouseResource(home=str(bambam_home))}
    instance = dg.DagsterInstance.ephemeral()
    ctx = dg.build_sensor_context(instance=instance, resources=resources)
    result = queue_times_poll(ctx)  # no warehouse yet: hours unknown, both parks fail open
    assert isinstance(result, dg.SensorResult)
    assert [e.asset_key.path[0] for e in result.asset_events] == \
        ["fetch_status", "queue_times_unmapped"]
    with warehouse.reader(bambam_home) as conn:
        rows = conn.execute("SELECT park_code, error_kind, rows_written FROM fetch_status "
                            "ORDER BY 1").fetchall()
    assert rows == [("DL", "http_404", None), ("MK", None, 3)]
    again = queue_times_poll(dg.build_sensor_context(instance=instance, resources=resources,
                                                     cursor=result.cursor))
    assert isinstance(again, dg.SkipReason) and "next poll in" in again.skip_message
    # a busy warehouse: the poll still writes files; the fold waits for the next tick
    with warehouse.writer(bambam_home):
        busy = queue_times_poll(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(busy, dg.SensorResult) and busy.asset_events == []
    assert len(list(raw.glob("queue_times/MK/*/*.json"))) >= 1

"""The same-day re-forecast where users see it: GET /live/{park}/today on a real uvicorn server
and the dashboard's curves page, on the pipeline's own forecast files (demo home, as of the day
before) and live readings that took the real path (queue-times server -> poller -> snapshot in
the raw source -> ingest -> warehouse -> live engine / dashboard)."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bambam_assets.api.live import create_app
from bambam_assets.dashboard.context import make_context
from bambam_assets.dashboard.pages import curves
from bambam_assets.defs.resources import RunKnobs
from bambam_assets.instance import instance_at
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.ingest.ingest import ingest
from bambam_assets.lib.ingest.raw_source import LocalRawSource
from bambam_assets.lib.live import fetch_status as fs
from bambam_assets.lib.live import same_day
from bambam_assets.lib.live.engine import LiveEngine
from bambam_assets.lib.live.poller import poll
from bambam_assets.lib.live.queue_times_client import QueueTimesClient
from bambam_assets.runner import run_pipeline
from bambam_tests.builders import FakeQueueTimes, iso, serve, write

AS_OF, TODAY = date(2024, 5, 30), date(2024, 5, 31)
TZ = "America/New_York"
NOW = pd.Timestamp("2024-05-31 13:00").tz_localize(TZ).tz_convert(UTC).to_pydatetime()
READ_AT = NOW - timedelta(minutes=5)  # the sign's reading, 12:55 park time
FACTOR = 1.6  # the park is busier than the morning's forecast said


def forecast_of(home: Path, entity: str) -> pd.DataFrame:
    """Today's rows of the entity's forecast file, read straight from the Parquet file."""
    path = curve_files.entity_file(home, curve_files.FORECASTS_DIR, entity)
    frame = pq.read_table(path, filters=[("park_date", "=", TODAY)]).to_pandas()
    frame["slot_start"] = pd.to_datetime(frame["slot_start"], utc=True)
    return frame.sort_values("slot_start", ignore_index=True)


@pytest.fixture(scope="module")
def today_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    base = tmp_path_factory.mktemp("same_day")
    raw, home = base / "raw", base / "home"
    demo_data.generate(raw, ["MK"], 3, date(2024, 3, 1), AS_OF, seed=7, qt_days=0)
    instance = instance_at(home)
    try:
        summary = run_pipeline(instance, log=lambda _m: None, home=home, raw_uri=str(raw),
                               knobs=RunKnobs(as_of=AS_OF, forecast_days=2, backfill_days=3,
                                              train_mode="full"))
    finally:
        instance.dispose()
    assert summary.success
    with warehouse.reader(home) as conn:
        standby = [r[0] for r in conn.execute(
            "SELECT entity_code FROM dim_entity WHERE queue_type = 'STANDBY' "
            "ORDER BY entity_code").fetchall()]
    ents = [e for e in standby
            if curve_files.entity_file(home, curve_files.FORECASTS_DIR, e).exists()]
    assert len(ents) >= 2, standby
    busy, down = ents[0], ents[1]
    fc = forecast_of(home, busy)
    at_read = fc.loc[fc["slot_start"] == pd.Timestamp(READ_AT), "posted_predicted"]
    assert len(at_read) == 1 and at_read.iloc[0] > 0
    posted = round(float(at_read.iloc[0]) * FACTOR)
    # the live path: a queue-times server, one poll, the snapshot ingested like any raw file
    write(raw, "queue_times/entity_mapping.csv",
          "entity_code,park_code,queue_times_id,queue_times_name\n"
          f"{busy},MK,9101,Busy Ride\n{down},MK,9102,Broken Ride\n")
    body = {"lands": [{"id": 1, "name": "Land", "rides": [
        {"id": 9101, "name": "Busy Ride", "is_open": True, "wait_time": posted,
         "last_updated": iso(READ_AT)},
        {"id": 9102, "name": "Broken Ride", "is_open": False, "wait_time": 0,
         "last_updated": iso(READ_AT)}]}], "rides": []}
    server = FakeQueueTimes(body)
    try:
        server.behaviour[6] = ["ok"]
        with QueueTimesClient(server.url, timeout_s=5, attempts=2, backoff_s=0.01) as client:
            results, _ = poll(client, LocalRawSource(raw), ["MK"], fs.empty_hours(),
                              now=NOW - timedelta(minutes=2))
    finally:
        server.close()
    assert [r.ok for r in results] == [True]
    with warehouse.writer(home) as conn:
        report = ingest(conn, LocalRawSource(raw), home / "cache")
        got = conn.execute("SELECT entity_code, wait_time_type, wait_time_minutes FROM "
                           "fct_wait_times WHERE park_date = ? ORDER BY 1", [TODAY]).fetchall()
    assert report.files_failed == 0
    assert got == [(busy, "POSTED", posted), (down, "CLOSED", None)]
    ratio = posted / float(at_read.iloc[0])
    return home, {"busy": busy, "down": down, "ratio": ratio, "others": ents[2:]}


def test_today_answers_the_updated_curve_beside_the_morning(today_home, monkeypatch) -> None:
    home, case = today_home
    monkeypatch.setenv("BAMBAM_SAME_DAY_UPDATE", "on")
    engine = LiveEngine(home, now=lambda: NOW, live_ttl_s=0)
    with serve(create_app(engine=engine, user="", password="")) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        got = http.get("/live/mk/today")
        one = http.get("/live/MK/today", params={"entity": case["busy"].lower()})
        monkeypatch.setenv("BAMBAM_SAME_DAY_UPDATE", "off")
        off = http.get("/live/MK/today")
        bad_park = http.get("/live/XX/today")
        bad_entity = http.get("/live/MK/today", params={"entity": "MK999"})
        monkeypatch.setenv("BAMBAM_SAME_DAY_UPDATE", "sometimes")
        bad_setting = http.get("/live/MK/today")
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["park_date"], body["same_day_update"]) == ("2024-05-31", True)
    ent = {e["entity_code"]: e for e in body["entities"]}
    assert {case["busy"], case["down"], *case["others"]} <= set(ent)
    p = same_day.DEFAULT_PARAMS
    busy = ent[case["busy"]]
    assert busy["readings"] == 1 and busy["ratio"] == pytest.approx(case["ratio"])
    assert pd.Timestamp(busy["last_reading_at"]) == pd.Timestamp(READ_AT)
    # the remaining slots: from 13:00 to the file's last slot, the morning's values unchanged
    morning = forecast_of(home, case["busy"])
    rest = morning[morning["slot_start"] >= pd.Timestamp(NOW)].reset_index(drop=True)
    slots = pd.DataFrame(busy["slots"])
    assert slots["slot"].tolist() == rest["slot"].tolist() and slots["slot"].iloc[0] == "13:00"
    np.testing.assert_allclose(slots["actual_predicted"].astype(float),
                               rest["actual_predicted"], atol=1e-9)
    np.testing.assert_allclose(slots["posted_predicted"].astype(float),
                               rest["posted_predicted"], atol=1e-9)
    assert body["update_params"] == {"window_min": p.window_min, "weight": p.weight,
                                     "half_life_min": None}  # the tuned default: no fading
    # busier than forecast: every open slot goes up (by less further on, were there fading)
    ahead = (rest["slot_start"] - pd.Timestamp(READ_AT)).dt.total_seconds().to_numpy() / 60
    expected = rest["actual_predicted"].to_numpy() * (
        1 + (case["ratio"] - 1) * p.weight * 0.5 ** (ahead / p.half_life_min))
    np.testing.assert_allclose(slots["actual_updated"].astype(float), expected, rtol=1e-9)
    lift = slots["actual_updated"].astype(float) / slots["actual_predicted"].astype(float)
    assert (lift > 1).all() and (lift.diff().dropna() <= 1e-12).all()
    # a ride whose reading is CLOSED, and rides without readings: the morning's curve
    for code in (case["down"], *case["others"]):
        e = ent[code]
        assert (e["ratio"], e["readings"]) == (None, 0)
        s = pd.DataFrame(e["slots"])
        assert s["actual_updated"].tolist() == s["actual_predicted"].tolist()
    assert [e["entity_code"] for e in one.json()["entities"]] == [case["busy"]]
    # switched off: the morning's curve alone
    assert off.status_code == 200 and off.json()["same_day_update"] is False
    for e in off.json()["entities"]:
        assert e["ratio"] is None and all(s["actual_updated"] is None for s in e["slots"])
    assert bad_park.status_code == 404 and "unknown park" in bad_park.text
    assert bad_entity.status_code == 404 and "MK999" in bad_entity.text
    assert bad_setting.status_code == 500 and "BAMBAM_SAME_DAY_UPDATE" in bad_setting.text


def test_curves_page_shows_the_updated_curve_beside_the_morning(today_home, monkeypatch) -> None:
    home, case = today_home
    monkeypatch.setenv("BAMBAM_SAME_DAY_UPDATE", "on")
    ctx = make_context(home, stale_days=2, as_of=TODAY)
    main = curves.figures(ctx, case["busy"], TODAY, now=NOW)[0]
    traces = {t.name.split(" (")[0]: t for t in main.data}
    assert {"forecast ACTUAL", "updated ACTUAL", "observed POSTED"} <= set(traces)
    assert f"×{case['ratio']:.2f}" in traces["updated ACTUAL"].name
    morning = forecast_of(home, case["busy"])
    rest = morning[morning["slot_start"] >= pd.Timestamp(NOW)]
    updated = np.asarray(traces["updated ACTUAL"].y, dtype=float)
    assert len(updated) == len(rest) and (updated > rest["actual_predicted"].to_numpy()).all()
    assert len(traces["forecast ACTUAL"].y) == len(morning)  # the morning's whole day, beside it
    # another day, a ride without readings, or the update switched off: no updated curve
    for entity, day in ((case["busy"], TODAY - timedelta(days=1)), (case["down"], TODAY)):
        names = [t.name for t in curves.figures(ctx, entity, day, now=NOW)[0].data]
        assert not any(n.startswith("updated ACTUAL") for n in names), (entity, day)
    monkeypatch.setenv("BAMBAM_SAME_DAY_UPDATE", "off")
    names = [t.name for t in curves.figures(ctx, case["busy"], TODAY, now=NOW)[0].data]
    assert "forecast ACTUAL" in names and not any(n.startswith("updated") for n in names)

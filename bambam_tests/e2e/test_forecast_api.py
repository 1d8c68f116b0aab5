"""The forecast API on a real uvicorn server over a home the real pipeline built (demo data):
park-day curves against the entity forecast files and park_wti, the crowd calendar against
park_wti_daily, best times, exports, bad input, ETag revalidation, and what a later run
republishes."""

from __future__ import annotations

import io
import shutil
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bambam_assets.api.live import create_app
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.forecasts import best_times as bt
from bambam_assets.lib.forecasts import crowd, published
from bambam_tests.builders import run_demo_pipeline
from bambam_tests.builders import served as serve

USER, PASSWORD = "wilma", "pebbles"
DAY = date(2024, 5, 6)  # a Monday inside the 60-day horizon


@pytest.fixture(scope="module")
def api(forecast_home: Path):
    app = create_app(home=forecast_home, user=USER, password=PASSWORD)
    with serve(app) as url, httpx.Client(base_url=url, auth=(USER, PASSWORD),
                                         timeout=30) as client:
        yield client


def _entity_day(home: Path, entity: str, day: date) -> pd.DataFrame:
    path = home / "forecasts" / f"entity_code={entity}" / "forecast.parquet"
    return pq.read_table(path, filters=[("park_date", "=", day)]).to_pandas().sort_values(
        "slot_start", ignore_index=True)


def _entities(home: Path, park: str) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in (home / "forecasts").iterdir()
                  if p.name.startswith(f"entity_code={park}"))


def test_park_day_is_every_entity_forecast_and_the_park_wti(api: httpx.Client,
                                                           forecast_home: Path) -> None:
    r = api.get(f"/forecast/MK/{DAY}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["park_code"] == "MK" and body["park_date"] == str(DAY)
    got = [e["entity_code"] for e in body["entities"]]
    assert got == _entities(forecast_home, "MK") and len(got) == 2
    for ent in body["entities"]:
        expected = _entity_day(forecast_home, ent["entity_code"], DAY)
        assert len(expected) > 100
        by_slot = dict(zip(body["slots"], ent["actual_predicted"], strict=True))
        assert [by_slot[s] for s in expected["slot"]] == pytest.approx(
            expected["actual_predicted"].round(2).tolist())
        p10 = dict(zip(body["slots"], ent["actual_p10"], strict=True))
        assert [p10[s] for s in expected["slot"]] == pytest.approx(
            expected["actual_p10"].round(2).tolist())
        closed = dict(zip(body["slots"], ent["closed"], strict=True))
        assert [closed[s] for s in expected["slot"]] == expected["actual_predicted"].isna(
        ).tolist()
    with warehouse.reader(forecast_home) as conn:
        wti = conn.execute("SELECT slot, wti FROM park_wti WHERE park_code = 'MK' AND "
                           "park_date = ? ORDER BY slot_start", [DAY]).df()
        daily = conn.execute("SELECT wti FROM park_wti_daily WHERE park_code = 'MK' AND "
                             "park_date = ?", [DAY]).fetchone()[0]
    assert body["wti"]["slots"] == wti["slot"].tolist() and len(wti) > 50
    assert body["wti"]["wti"] == pytest.approx(wti["wti"].round(2).tolist())
    assert body["day"]["wti"] == pytest.approx(round(daily, 2))
    assert 1 <= body["day"]["crowd_level"] <= 10


def test_bad_input_gets_a_clear_4xx(api: httpx.Client) -> None:
    cases = {
        f"/forecast/XX/{DAY}": (404, "unknown park"),
        "/forecast/MK/2024-02-30": (422, "not a date"),
        "/forecast/MK/yesterday": (422, "not a date"),
        "/forecast/MK/2024-04-01": (404, "outside the forecast horizon"),  # history only
        "/forecast/MK/2026-01-01": (404, "outside the forecast horizon"),
        "/forecast/entity/MK999": (404, "no forecast for entity"),
        "/forecast/entity/not-a-code": (404, "no forecast for entity"),
        "/forecast/entity/MK1?from=2024-05-01&to=2024-06-15": (422, "at most 31"),
        "/forecast/entity/MK1?from=2024-05-10&to=2024-05-01": (422, "before from"),
        "/forecast/entity/MK1?from=2023-01-01&to=2023-01-02": (404, "outside the forecast"),
        "/best-times/MK/2030-01-01": (404, "outside the forecast horizon"),
        "/calendar/ZZ": (404, "unknown park"),
        "/calendar/MK?from=2021-01-01&to=2021-02-01": (404, "no calendar day"),
        "/export/MK/forecast.csv": (422, "from is required"),
        f"/export/MK/forecast.xlsx?from={DAY}": (422, "format"),
        f"/export/MK/forecast.csv?from={DAY}&to={DAY + timedelta(days=40)}": (422, "at most"),
        "/export/MK/everything.csv": (404, "no export"),
    }
    for url, (status, words) in cases.items():
        r = api.get(url)
        assert r.status_code == status, (url, r.status_code, r.text)
        assert words in r.json()["detail"], (url, r.text)
    assert httpx.get(str(api.base_url) + f"/forecast/MK/{DAY}").status_code == 401


def test_etag_revalidation(api: httpx.Client) -> None:
    for url in (f"/forecast/MK/{DAY}", f"/best-times/DL/{DAY}", "/calendar/MK",
                "/forecast/entity/MK2?from=2024-05-01&to=2024-05-03",
                f"/export/DL/forecast.parquet?from={DAY}&to={DAY + timedelta(days=2)}"):
        first = api.get(url)
        assert first.status_code == 200, (url, first.text)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('"') and modified.endswith("GMT")
        again = api.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", url
        assert again.headers["etag"] == etag
        other = api.get(url, headers={"If-None-Match": '"0000000000000000"'})
        assert other.status_code == 200 and other.content == first.content, url


def test_exports_hold_the_forecast_and_the_calendar(api: httpx.Client,
                                                   forecast_home: Path) -> None:
    start, end = date(2024, 5, 30), date(2024, 6, 2)  # across a month boundary
    csv = api.get(f"/export/DL/forecast.csv?from={start}&to={end}")
    assert csv.status_code == 200
    assert csv.headers["content-disposition"] == (
        f'attachment; filename="DL_forecast_{start}_{end}.csv"')
    frame = pd.read_csv(io.StringIO(csv.text))
    expected = sum(len(pq.read_table(
        forecast_home / "forecasts" / f"entity_code={e}" / "forecast.parquet",
        filters=[("park_date", ">=", start), ("park_date", "<=", end)]))
        for e in _entities(forecast_home, "DL"))
    assert len(frame) == expected > 0
    assert sorted(frame["park_date"].unique()) == [str(start + timedelta(days=i))
                                                   for i in range(4)]
    parquet = api.get(f"/export/DL/forecast.parquet?from={start}&to={end}")
    table = pq.read_table(io.BytesIO(parquet.content)).to_pandas()
    assert len(table) == len(frame)
    assert np.allclose(table["actual_predicted"].round(2).fillna(-1),
                       frame["actual_predicted"].fillna(-1))
    cal = api.get(f"/export/DL/calendar.csv?from={start}&to={end}")
    cal_frame = pd.read_csv(io.StringIO(cal.text))
    js = api.get(f"/calendar/DL?from={start}&to={end}").json()["days"]
    assert cal_frame["crowd_level"].tolist() == [d["crowd_level"] for d in js]
    assert len(cal_frame) == 4
    pcal = pq.read_table(io.BytesIO(api.get(
        f"/export/DL/calendar.parquet?from={start}&to={end}").content)).to_pandas()
    assert pcal["crowd_text"].tolist() == cal_frame["crowd_text"].tolist()


def test_calendar_scale_is_the_deciles_of_the_parks_history(api: httpx.Client,
                                                            forecast_home: Path) -> None:
    body = api.get("/calendar/MK?from=2024-04-01&to=2024-06-30").json()
    days = pd.DataFrame(body["days"])
    first_forecast = min(d for d, k in zip(days["park_date"], days["kind"], strict=True)
                         if k == "forecast")
    assert first_forecast == "2024-04-29"  # the Monday of the as-of week
    with warehouse.reader(forecast_home) as conn:
        history = conn.execute("SELECT wti FROM park_wti_daily WHERE park_code = 'MK' AND "
                               "park_date < DATE '2024-04-29' AND wti IS NOT NULL").df()
    assert body["scale"]["history_days"] == len(history) > 28
    deciles = np.quantile(history["wti"], np.arange(1, 10) / 10)
    assert body["scale"]["deciles"] == pytest.approx(deciles.round(2).tolist())
    assert sum(d["wti"] is not None for d in body["days"]) > 80
    for d in body["days"]:
        if d["wti"] is None:  # a day some curve covers without a WTI: no level either
            assert d["crowd_level"] is None
            continue
        level = 1 + int(np.searchsorted(deciles, d["wti"], side="left"))
        assert d["crowd_level"] == level
        if d["kind"] == "history":
            assert d["crowd_low"] == d["crowd_high"] == level
        else:  # the band: the park's residual spread, one level range around the day
            assert d["crowd_low"] <= level <= d["crowd_high"]
            assert d["wti_low"] < d["wti"] < d["wti_high"]
            assert d["crowd_text"] == (str(level) if d["crowd_low"] == d["crowd_high"]
                                       else f"{d['crowd_low']}-{d['crowd_high']}")


def test_best_times_are_the_lowest_predicted_windows(api: httpx.Client,
                                                     forecast_home: Path) -> None:
    body = api.get(f"/best-times/DL/{DAY}").json()
    assert [e["entity_code"] for e in body["entities"]] == _entities(forecast_home, "DL")
    for ent in body["entities"]:
        curve = _entity_day(forecast_home, ent["entity_code"], DAY)
        waits = curve["actual_predicted"].to_numpy(float)
        low = np.nanmin(waits)
        assert ent["lowest_wait"] == pytest.approx(round(low, 1))
        assert ent["windows"], ent
        slots = curve["slot"].tolist()
        for w in ent["windows"]:  # slots in time order (after midnight: 00:00, 00:05, ...)
            i, n = slots.index(w["start"]), w["minutes"] // 5
            assert (waits[i:i + n] <= low + bt.WINDOW_MARGIN).all()
            assert w["end"] == bt._clock(slots[i + n - 1])
            assert w["mean_wait"] == pytest.approx(round(float(waits[i:i + n].mean()), 1))
            if i + n < len(waits):  # maximal: the next slot is above the margin
                assert waits[i + n] > low + bt.WINDOW_MARGIN
        rope = waits[: bt.ROPE_DROP_MINUTES // 5]
        assert ent["rope_drop"] == pytest.approx(round(float(np.nanmean(rope)), 1))
        means = {k: ent[k] for k in bt.PERIODS if ent[k] is not None}
        assert ent["best_period"] == min(means, key=means.get)


def test_later_runs_republish_only_what_changed(forecast_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(forecast_home, home)
    curves = sorted((home / "published" / "MK" / "curves").glob("*.parquet"))
    before = {p.name: p.stat().st_mtime_ns for p in curves}
    scale_before = (home / "published" / "MK" / published.SCALE_FILE).read_text()
    old_etag = _get_etag(home, f"/forecast/MK/{DAY}")

    run_demo_pipeline(home)  # nothing new: nothing republished
    assert {p.name: p.stat().st_mtime_ns for p in sorted(
        (home / "published" / "MK" / "curves").glob("*.parquet"))} == before
    assert _get_etag(home, f"/forecast/MK/{DAY}") == old_etag

    run_demo_pipeline(home, as_of="2024-05-07")  # next week: the window moves
    app = create_app(home=home, user=USER, password=PASSWORD)
    with serve(app) as url, httpx.Client(base_url=url, auth=(USER, PASSWORD)) as api:
        r = api.get(f"/forecast/MK/{DAY}", headers={"If-None-Match": old_etag})
        assert r.status_code == 200 and r.headers["etag"] != old_etag
        assert api.get("/forecast/MK/2024-04-29").status_code == 404  # left the window
        assert api.get("/calendar/MK?from=2024-04-29&to=2024-04-29").json()["days"][0][
            "kind"] == "history"
    # the scale is frozen: a run a week later keeps it (history < a year: still provisional)
    assert (home / "published" / "MK" / published.SCALE_FILE).read_text() == scale_before
    assert crowd.load_scale(home / "published" / "MK" / published.SCALE_FILE).provisional
    assert not (home / "published" / "MK" / "curves" / "2024-04.parquet").exists() or (
        min(pq.read_table(home / "published" / "MK" / "curves" / "2024-04.parquet",
                          columns=["park_date"]).column(0).to_pylist()) >= date(2024, 5, 6))


def _get_etag(home: Path, url: str) -> str:
    app = create_app(home=home, user=USER, password=PASSWORD)
    with serve(app) as base, httpx.Client(base_url=base, auth=(USER, PASSWORD)) as api:
        r = api.get(url)
        assert r.status_code == 200, r.text
        return r.headers["etag"]


def test_answers_never_open_the_warehouse(forecast_home: Path, tmp_path: Path) -> None:
    """Every forecast route answers with the warehouse file gone: files only."""
    home = tmp_path / "home"
    shutil.copytree(forecast_home / "published", home / "published")
    shutil.copytree(forecast_home / "forecasts", home / "forecasts")
    app = create_app(home=home, user=USER, password=PASSWORD)
    with serve(app) as url, httpx.Client(base_url=url, auth=(USER, PASSWORD)) as api:
        for path in (f"/forecast/MK/{DAY}", "/forecast/entity/MK1", f"/best-times/MK/{DAY}",
                     "/calendar/MK", f"/export/MK/forecast.csv?from={DAY}",
                     "/export/MK/calendar.parquet"):
            r = api.get(path)
            assert r.status_code == 200, (path, r.text)
    assert not (home / "warehouse.duckdb").exists()

"""The live API on a real uvicorn server: /live/{park} and /predict checked against the model,
reload when a new version becomes current, bad input, Basic Auth."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from bambam_assets.api.live import create_app
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.live.engine import LiveEngine
from bambam_assets.lib.live.view import live_predictions
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame, feature_ctes_sql, park_params
from bambam_tests.builders import serve
from bench.homes import (
    NOW,
    TODAY,
    TZ,
    build_live_home,
    forecast_today,
    insert_facts,
    local,
    save,
    today_facts,
)


def expected(home: Path, entity: str, hhmm: str, matched: float, mean30: float,
             mean60: float, version: int | None = None) -> float:
    """The model's answer on features built from the warehouse itself (not the live copy)."""
    base = pd.DataFrame({"entity_code": [entity], "park_code": ["MK"], "park_date": [TODAY],
                         "observed_at": [local("2024-03-15", hhmm)], "posted_matched": [matched],
                         "posted_mean_30": [mean30], "posted_mean_60": [mean60]})
    with warehouse.reader(home) as conn:
        conn.register("base_rows", base)
        frame = conn.execute(f"WITH b AS (SELECT * FROM base_rows), {feature_ctes_sql('b')} "
                             "SELECT * FROM featured", park_params()).df()
    assert frame["mins_since_park_open"].tolist() == [(local("2024-03-15", hhmm) - local(
        "2024-03-15", "09:00")).total_seconds() / 60]
    model = registry.load_model(home / "models", entity, version)
    assert training.WITH_POSTED in model.models
    return float(training.predict(model, frame, with_posted=True)[0])


FORECAST_FIELDS = ("actual_predicted", "actual_p10", "actual_p90", "posted_predicted")


def forecast_row(home: Path, entity: str, slot: str) -> tuple:
    """The entity's forecast of TODAY's `slot` as the pipeline wrote it (its Parquet file)."""
    path = curve_files.entity_file(home, curve_files.FORECASTS_DIR, entity)
    frame = pd.read_parquet(path)
    row = frame[(pd.to_datetime(frame["park_date"]).dt.date == TODAY) & (frame["slot"] == slot)]
    assert len(row) == 1, (entity, slot, len(row))
    return tuple(None if pd.isna(v) else round(float(v), 4)
                 for v in row.iloc[0][list(FORECAST_FIELDS)])


def _forecast_now(entity: dict) -> tuple:
    values = (entity[f"forecast_{c}"] for c in FORECAST_FIELDS)
    return tuple(None if v is None else round(float(v), 4) for v in values)


def test_a_forecast_run_leaves_todays_remaining_slots(live_home: Path) -> None:
    """The forecast run as of TODAY covers today from the current slot (10:20) to closing (the
    park runs 09:00-21:00), every modeled entity with an ACTUAL prediction in each slot."""
    for code in ("MK1", "MK2"):
        frame = pd.read_parquet(curve_files.entity_file(live_home, curve_files.FORECASTS_DIR,
                                                        code))
        today = frame[pd.to_datetime(frame["park_date"]).dt.date == TODAY]
        remaining = today[today["slot"] >= "10:20"]
        expected = [f"{m // 60:02d}:{m % 60:02d}" for m in range(10 * 60 + 20, 21 * 60 + 1, 5)]
        assert sorted(remaining["slot"]) == expected, code
        assert remaining["actual_predicted"].notna().all()
        assert (remaining["actual_p10"] <= remaining["actual_p90"]).all()


@pytest.fixture(scope="module")
def live_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("live") / "home"
    home.mkdir()
    build_live_home(home)
    return home


def engine_for(home: Path) -> LiveEngine:
    return LiveEngine(home, now=lambda: NOW, live_ttl_s=0)


def test_live_and_predict_match_the_model(live_home: Path) -> None:
    with serve(create_app(engine=engine_for(live_home), user="", password="")) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        got = http.get("/live/mk")
        assert got.status_code == 200, got.text
        body = got.json()
        pred = http.post("/predict", json={"entity_code": "mk1", "posted": 70,
                                           "observed_at": "2024-03-15T10:25:00-04:00"})
        bad = {
            "naive": http.post("/predict", json={"entity_code": "MK1", "posted": 70,
                                                 "observed_at": "2024-03-15T10:25:00"}),
            "negative": http.post("/predict", json={"entity_code": "MK1", "posted": -5,
                                                    "observed_at": "2024-03-15T14:25:00Z"}),
            "no_model": http.post("/predict", json={"entity_code": "MK3", "posted": 5,
                                                    "observed_at": "2024-03-15T14:25:00Z"}),
            "no_park": http.post("/predict", json={"entity_code": "ZZ1", "posted": 5,
                                                   "observed_at": "2024-03-15T14:25:00Z"}),
            "park": http.get("/live/XX"),
        }
        quiet = http.get("/live/EP").json()  # a park without facts today
    assert (quiet["entities"], quiet["wti"], quiet["wti_slots"]) == ([], None, [])
    assert body["park_date"] == "2024-03-15"
    ent = {e["entity_code"]: e for e in body["entities"]}
    assert sorted(ent) == ["MK1", "MK2", "MK3"]
    # MK1: latest POSTED 60 at 10:20 with 40 (10:00) and 50 (10:10) before it in the hour
    mk1_at_1020 = expected(live_home, "MK1", "10:20", 60, 50, 50)
    assert ent["MK1"]["latest_posted"] == 60
    assert ent["MK1"]["actual_predicted"] == pytest.approx(mk1_at_1020, abs=1e-4)
    assert (ent["MK1"]["actual_source"], ent["MK1"]["closed"], ent["MK1"]["age_s"]) == \
        ("predicted", False, 120.0)
    assert (ent["MK1"]["model_version"], ent["MK1"]["entity_name"]) == (1, "One")
    # "forecast now": the 10:20 slot of the files the pipeline's forecast step wrote
    for code in ("MK1", "MK2", "MK3"):
        assert _forecast_now(ent[code]) == forecast_row(live_home, code, "10:20"), code
    assert ent["MK1"]["forecast_actual_predicted"] is not None
    # MK3 has no model: a POSTED-only forecast (actual columns null, never 0)
    assert ent["MK3"]["forecast_actual_predicted"] is None
    assert ent["MK3"]["forecast_posted_predicted"] is not None
    # MK2 closed at 10:15: no actual (closed is null, never 0)
    assert (ent["MK2"]["closed"], ent["MK2"]["actual"], ent["MK2"]["observed_actual"]) == \
        (True, None, 25)
    assert (ent["MK3"]["actual_predicted"], ent["MK3"]["model"]) == (None, None)
    # WTI so far: 10:00 = MK1's prediction and MK2's observed 25; 10:15 only CLOSED: no slot
    slots = {s["slot"]: s for s in body["wti_slots"]}
    assert sorted(slots) == ["10:00", "10:10", "10:20"]
    mk1_at_1000 = expected(live_home, "MK1", "10:00", 40, 40, 40)
    assert slots["10:00"]["n_entities"] == 2
    assert slots["10:00"]["wti"] == pytest.approx((mk1_at_1000 + 25) / 2, abs=1e-4)
    mk2_at_1010 = expected(live_home, "MK2", "10:10", 35, 32.5, 32.5)
    mk1_at_1010 = expected(live_home, "MK1", "10:10", 50, 45, 45)
    assert slots["10:10"]["wti"] == pytest.approx((mk1_at_1010 + mk2_at_1010) / 2, abs=1e-4)
    assert body["wti"] == {"slot": "10:20", "wti": pytest.approx(mk1_at_1020, abs=1e-4),
                           "n_entities": 1}
    # /predict at 10:25 with POSTED 70: the hour before holds 40, 50, 60
    assert pred.status_code == 200, pred.text
    p = pred.json()
    assert (p["entity_code"], p["model_version"], p["model"]) == ("MK1", 1, "with_posted")
    assert p["actual_predicted"] == pytest.approx(expected(live_home, "MK1", "10:25", 70, 55, 55),
                                                  abs=1e-3)
    assert bad["naive"].status_code == 422 and "time zone offset" in bad["naive"].text
    assert bad["negative"].status_code == 422 and "posted" in bad["negative"].text
    assert bad["no_model"].status_code == 404 and "MK3 has no current model" in bad["no_model"].text
    assert bad["no_park"].status_code == 422 and "known park" in bad["no_park"].text
    assert bad["park"].status_code == 404 and "unknown park" in bad["park"].text


def test_model_reloads_when_a_new_version_becomes_current(live_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    req = {"entity_code": "MK1", "posted": 70, "observed_at": "2024-03-15T14:25:00Z"}
    with serve(create_app(engine=engine_for(home), user="", password="")) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        before = http.post("/predict", json=req).json()
        with warehouse.reader(home) as conn:
            frame = build_training_frame(conn, ["MK1"], date(2024, 3, 14))
        outcome = save(home, training.train_entity(frame.assign(y=frame["y"] + 30), "STANDBY"),
                       incumbent_mae=1e9)
        assert outcome.promoted and outcome.version == 2
        after = http.post("/predict", json=req).json()
        registry.rollback(home / "models", "MK1", 1)
        back = http.post("/predict", json=req).json()
    assert before["model_version"] == 1 and after["model_version"] == 2
    assert after["actual_predicted"] == pytest.approx(expected(home, "MK1", "10:25", 70, 55, 55, 2),
                                                      abs=1e-3)
    assert after["actual_predicted"] > before["actual_predicted"] + 15
    assert back == before


def test_basic_auth(live_home: Path) -> None:
    app = create_app(engine=engine_for(live_home), user="ops", password="s3cret")
    with TestClient(app) as client:
        assert client.get("/health").status_code == 401
        assert client.get("/health", auth=("ops", "wrong")).status_code == 401
        denied = client.get("/live/MK")
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic")
        assert client.get("/health", auth=("ops", "s3cret")).json()["ok"] is True
        assert client.get("/live/MK", auth=("ops", "s3cret")).status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json"):  # every route, the docs included
            assert client.get(path).status_code == 401, path
            assert client.get(path, auth=("ops", "s3cret")).status_code == 200, path
        spec = client.get("/openapi.json", auth=("ops", "s3cret")).json()
        assert {"/live/{park}", "/predict", "/health"} <= set(spec["paths"])
        assert "/docs" not in spec["paths"]


def test_docs_open_without_credentials(live_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAMBAM_DASH_USER", raising=False)
    monkeypatch.delenv("BAMBAM_DASH_PASSWORD", raising=False)
    app = create_app(engine=engine_for(live_home))  # localhost use: no credentials set
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("at", [
    "2024-03-15T10:25:00-04:00",  # the hour before holds 40, 50, 60
    "2024-03-15T10:30:00-04:00",  # 10:00 exactly 30 min before: inside both windows
    "2024-03-15T10:59:30-04:00",  # 10:00 is 59.5 min before: only in the 60-min mean
    "2024-03-15T05:30:00-04:00",  # before 06:00: park day 14, before opening
    "2024-03-16T00:30:00-04:00",  # after midnight: still park day 15
    "2024-03-10T03:30:00-04:00",  # the DST night (02:00 EST -> 03:00 EDT)
    "2024-03-10T09:00:00-04:00",  # opening instant on the DST day
])
def test_fast_predict_path_equals_the_sql_features(live_home: Path, at: str) -> None:
    engine = engine_for(live_home)
    t = pd.Timestamp(at).tz_convert(UTC)
    got = engine.predict("MK1", t.to_pydatetime(), 55)
    local_t = t.tz_convert(TZ)
    pday = (local_t - pd.Timedelta(hours=6)).date()
    hist = today_facts().query("entity_code == 'MK1' and wait_time_type == 'POSTED'")
    hist = hist[(hist["observed_at"] < t) & (hist["observed_at"] >= t - pd.Timedelta(hours=1))]
    if pday != TODAY:
        hist = hist.iloc[0:0]
    rows = pd.DataFrame({"entity_code": "MK1", "park_code": "MK", "park_date": pd.Timestamp(pday),
                         "observed_at": pd.DatetimeIndex(list(hist["observed_at"]) + [t]),
                         "posted": list(hist["wait_time_minutes"].astype(float)) + [55.0]})
    sql = engine.featurize(rows)  # the SQL path: feature_ctes_sql + the training windows
    sql = sql[sql["observed_at"] == t]
    for col, value in got.features.items():
        want = sql[col].iloc[0]
        same = (np.isnan(value) and pd.isna(want)) or value == pytest.approx(float(want), abs=1e-9)
        assert same, col
    model = engine.models.get("MK1")
    assert got.actual_predicted == pytest.approx(float(training.predict(model, sql, True)[0]),
                                                 abs=1e-4)


def test_busy_warehouse_serves_the_last_copy(live_home: Path) -> None:
    engine = engine_for(live_home)
    first = engine.park_state("MK")
    with warehouse.writer(live_home):  # e.g. an ingest run holds the file
        started = time.monotonic()
        again = engine.park_state("MK")
        p = engine.predict("MK1", NOW, 60)
    assert again is first and time.monotonic() - started < 5
    assert p.features["posted_mean_30"] == 52.5  # history 40, 50, 60 (10:00-10:20) + 60 now


def test_live_reuses_its_work_until_facts_models_or_forecasts_change(live_home: Path,
                                                                     tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    engine = LiveEngine(home, now=lambda: NOW, live_ttl_s=3600)  # facts read once
    with serve(create_app(engine=engine, user="", password="")) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        first = http.get("/live/MK").json()
        state = engine.park_state("MK")
        preds = live_predictions(engine, state)
        assert http.get("/live/MK").json()["entities"] == first["entities"]
        assert live_predictions(engine, state) is preds  # the same facts, dims and models
        # a new current model of MK1: its predictions are recomputed at once
        with warehouse.reader(home) as conn:
            frame = build_training_frame(conn, ["MK1"], date(2024, 3, 14))
        assert save(home, training.train_entity(frame.assign(y=frame["y"] + 30), "STANDBY"),
                    incumbent_mae=1e9).promoted
        promoted = {e["entity_code"]: e for e in http.get("/live/MK").json()["entities"]}
        # the forecast step rewrites MK1's file for its new model: read again at once
        results = {r.entity_code: r.mode for r in forecast_today(home)}
        assert results == {"MK1": "model", "MK2": "unchanged", "MK3": "unchanged"}
        rewritten = {e["entity_code"]: e for e in http.get("/live/MK").json()["entities"]}
    before = {e["entity_code"]: e for e in first["entities"]}
    assert before["MK1"]["model_version"] == 1 and promoted["MK1"]["model_version"] == 2
    assert promoted["MK1"]["actual_predicted"] > before["MK1"]["actual_predicted"] + 15
    assert promoted["MK2"]["actual_predicted"] == before["MK2"]["actual_predicted"]
    assert _forecast_now(before["MK1"]) == forecast_row(live_home, "MK1", "10:20")
    assert _forecast_now(rewritten["MK1"]) == forecast_row(home, "MK1", "10:20")
    assert rewritten["MK1"]["forecast_actual_predicted"] > \
        before["MK1"]["forecast_actual_predicted"] + 15  # the new model adds 30 minutes


def test_a_re_read_of_unchanged_facts_keeps_the_predictions(live_home: Path,
                                                            tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(live_home, home)
    engine = engine_for(home)  # live_ttl_s=0: every call re-reads the park's facts
    first = engine.park_state("MK")
    preds = live_predictions(engine, first)
    again = engine.park_state("MK")
    assert again is not first and live_predictions(engine, again) is preds
    new = today_facts().query("entity_code == 'MK1' and wait_time_type == 'POSTED'").tail(1)
    with warehouse.writer(home) as conn:  # a poll lands one more POSTED
        insert_facts(conn, new.assign(observed_at=new["observed_at"] + pd.Timedelta(minutes=1),
                                      wait_time_minutes=65))
    changed = live_predictions(engine, engine.park_state("MK"))
    assert changed is not preds and len(changed) == len(preds) + 1

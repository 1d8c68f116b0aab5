"""Forecast and backfill on a tiny hand-made warehouse with trained models."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.dimensions import calendar, entities, season
from bambam_assets.lib.forecasts import backfill, forecast, posted_aggregates
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame

NY = ZoneInfo("America/New_York")
AS_OF = date(2024, 6, 30)
HORIZON = 14
FIRST_DAY = AS_OF - timedelta(days=59)
SLOTS_PER_DAY = 13 * 12 + 1  # 09:00..22:00
QUIET_DAY = date(2024, 6, 10)  # hand-made facts only (backfill source rules)


def facts_frame(rng: np.random.Generator) -> pd.DataFrame:
    """MK1: 900 ACTUAL + POSTED (xgboost); MK3: 150 ACTUAL (hourly fallback); MK2: POSTED only."""
    days = pd.date_range(FIRST_DAY, AS_OF, freq="D")
    days = days[days != pd.Timestamp(QUIET_DAY)]
    parts = []
    for code, n_actual, n_posted in (("MK1", 900, 1500), ("MK3", 150, 300), ("MK2", 0, 600)):
        day = rng.choice(days, size=n_posted)
        minute = rng.integers(9 * 60, 22 * 60, size=n_posted)
        local = pd.to_datetime(day) + pd.to_timedelta(minute, unit="m")
        base = 15 + 30 * np.sin((minute - 540) / 780 * np.pi) + 15 * (local.dayofweek >= 5)
        observed = local.tz_localize(NY).tz_convert("UTC")
        posted = pd.DataFrame({"entity_code": code, "observed_at": observed,
                               "wait_time_type": "POSTED",
                               "wait_time_minutes": (base + 10).round()})
        parts.append(posted)
        if n_actual:
            act = posted.iloc[:n_actual].copy()
            act["wait_time_type"] = "ACTUAL"
            act["observed_at"] = act["observed_at"] + pd.Timedelta(minutes=2)
            act["wait_time_minutes"] = (base[:n_actual] + rng.normal(0, 3, n_actual)).round()
            parts.append(act)
    return _finish(pd.concat(parts, ignore_index=True))


def _finish(facts: pd.DataFrame) -> pd.DataFrame:
    facts = facts.copy()
    facts["park_code"] = "MK"
    local = facts["observed_at"].dt.tz_convert(NY)
    facts["park_date"] = (local - pd.Timedelta(hours=6)).dt.date
    facts["source_file"] = "test"
    facts["wait_time_minutes"] = facts["wait_time_minutes"].astype("Int64")
    return facts[list(schema.FACT_COLUMNS)]


def local_fact(code: str, day: date, hh: int, mm: int, kind: str, minutes) -> pd.DataFrame:
    ts = pd.Timestamp(datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)).tz_convert("UTC")
    return _finish(pd.DataFrame({"entity_code": [code], "observed_at": [ts],
                                 "wait_time_type": [kind], "wait_time_minutes": [minutes]}))


def insert_facts(home: Path, facts: pd.DataFrame) -> None:
    with wh.writer(home) as conn:
        conn.register("new_facts", facts)
        conn.execute("INSERT INTO fct_wait_times BY NAME SELECT * FROM new_facts")
        conn.unregister("new_facts")


def train_and_aggregate(home: Path) -> None:
    """Aggregates and models as of AS_OF (what posted_aggregates and entity_model do)."""
    with wh.writer(home) as conn:
        posted_aggregates.build_posted_aggregates(conn, AS_OF)
        frame = build_training_frame(conn, ["MK1", "MK3"], AS_OF)
    for code in ("MK1", "MK3"):
        rows = frame[frame["entity_code"] == code]
        trained = training.train_entity(rows, "STANDBY", nthread=1)
        registry.save_version(home / "models", trained, code_version="t", params_hash="t",
                              target_count=len(rows), tolerance=10.0)


def build_home(home: Path) -> Path:
    """A warehouse with facts, dimensions (one date group and season for every day, so days of
    the same weekday share all features), two trained models and the posted aggregates."""
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        cal = calendar.build_calendar(AS_OF, HORIZON, start=FIRST_DAY - timedelta(days=7))
        cal["date_group_id"] = "ANY_DAY"
        schema.replace_dimension(conn, "dim_calendar", cal)
        seasons = season.build_season(cal).assign(season="SUMMER", season_year="SUMMER_2024")
        schema.replace_dimension(conn, "dim_season", seasons)
        raw = pd.DataFrame({"code": ["MK1", "MK2", "MK3"], "name": ["a", "b", "c"],
                            "fastpass_booth": ["false", "false", "false"]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))
        days = pd.date_range(FIRST_DAY, AS_OF + timedelta(days=HORIZON))
        opening = days.tz_localize(NY) + pd.Timedelta(hours=9)
        schema.replace_dimension(conn, "dim_park_hours", pd.DataFrame({
            "park_code": "MK", "park_date": days, "opening_time": opening,
            "closing_time": opening + pd.Timedelta(hours=13), "opening_time_with_emh": opening,
            "closing_time_with_emh": opening + pd.Timedelta(hours=13), "emh_morning": False,
            "emh_evening": False, "source": "official", "confidence": 1.0}))
    insert_facts(home, facts_frame(np.random.default_rng(3)))
    train_and_aggregate(home)
    return home


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return build_home(tmp_path_factory.mktemp("forecast") / "home")


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def test_forecast_columns_rows_band_and_modes(home: Path) -> None:
    results = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1", "MK2", "MK3", "MK7"],
                                    AS_OF, HORIZON)
    modes = {r.entity_code: r.mode for r in results}
    assert modes == {"MK1": "model", "MK2": "posted_only", "MK3": "model", "MK7": "no_data"}
    mk1 = _read(results[0].path)
    assert tuple(mk1.columns) == curve_files.FORECAST_COLUMNS
    assert len(mk1) == HORIZON * SLOTS_PER_DAY == results[0].rows
    assert mk1["park_date"].min() == AS_OF + timedelta(days=1)
    assert mk1["park_date"].max() == AS_OF + timedelta(days=HORIZON)
    assert mk1["actual_predicted"].notna().all()
    assert (mk1["actual_p10"] <= mk1["actual_predicted"]).all()
    assert (mk1["actual_predicted"] <= mk1["actual_p90"]).all()
    assert (mk1["actual_p90"] > mk1["actual_p10"]).mean() > 0.9
    assert (mk1["posted_predicted"] % 5 == 0).all()
    assert pq.read_schema(results[0].path).equals(curve_files.FORECAST_SCHEMA, check_metadata=False)
    # midday waits are longer than the first slot's (the synthetic curve peaks mid-day)
    first_day = mk1[mk1["park_date"] == mk1["park_date"].min()].set_index("slot")
    assert (first_day.loc["15:30", "actual_predicted"]
            > first_day.loc["09:00", "actual_predicted"] + 10)
    mk2 = _read(results[1].path)
    assert len(mk2) == HORIZON * SLOTS_PER_DAY
    assert mk2[["actual_predicted", "actual_p10", "actual_p90"]].isna().all().all()
    assert mk2["posted_predicted"].notna().all()
    assert "POSTED-only" in results[1].notes[0]
    assert not curve_files.entity_file(home, curve_files.FORECASTS_DIR, "MK7").exists()
    mk3 = _read(results[2].path)  # hourly fallback model: one value per local hour
    assert mk3.groupby(mk3["slot"].str[:2])["actual_predicted"].nunique().max() == 1


def test_each_distinct_feature_row_is_predicted_once(home: Path, monkeypatch) -> None:
    calls: list[int] = []
    real = training.predict

    def counting(model, frame, with_posted, nthread=None):
        calls.append(len(frame))
        return real(model, frame, with_posted, nthread)

    monkeypatch.setattr(training, "predict", counting)
    with wh.reader(home) as conn:
        sf = forecast.slot_features(conn, "MK", AS_OF + timedelta(days=1),
                                    AS_OF + timedelta(days=HORIZON))
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1"], AS_OF, HORIZON)
    # 14 days, one date group and season: each weekday's two days share every feature
    assert len(sf.frame) == HORIZON * SLOTS_PER_DAY
    assert len(sf.distinct) == 7 * SLOTS_PER_DAY == res.distinct_rows
    # one call for the band (the newest 30% of MK1's 900 training rows), one for the forecast
    assert calls == [270, 7 * SLOTS_PER_DAY]


def test_backfill_source_rules(home: Path) -> None:
    extra = pd.concat([
        local_fact("MK1", QUIET_DAY, 10, 2, "ACTUAL", 33),  # -> 10:00 and 10:05 observed
        local_fact("MK1", QUIET_DAY, 11, 8, "POSTED", 40),  # -> 11:00..11:20 imputed
        local_fact("MK1", QUIET_DAY, 14, 0, "CLOSED", None),  # -> 13:50..14:15 closed
        local_fact("MK1", QUIET_DAY, 15, 55, "CLOSED", None),  # reopened at 16:00 ...
        local_fact("MK1", QUIET_DAY, 16, 0, "POSTED", 25),  # ... so 15:50 is imputed
    ])
    sub = home.parent / "backfill_home"
    build_home(sub)
    insert_facts(sub, extra)
    [res] = backfill.run_backfill(lambda: wh.reader(sub), sub, ["MK1"], AS_OF, window_days=60)
    frame = _read(res.path)
    assert tuple(frame.columns) == curve_files.BACKFILL_COLUMNS
    day = frame[frame["park_date"] == QUIET_DAY].set_index("slot")
    assert len(day) == SLOTS_PER_DAY
    src = day["source"]
    assert src[["10:00", "10:05"]].tolist() == ["observed"] * 2
    assert day.loc["10:00", "actual"] == 33 and day.loc["10:05", "actual"] == 33
    assert src[["09:55", "10:10"]].tolist() == ["missing"] * 2
    assert src[["11:00", "11:05", "11:10", "11:15", "11:20"]].tolist() == ["imputed"] * 5
    assert day.loc[["11:00", "11:20"], "actual"].notna().all()
    assert src[["10:55", "11:25"]].tolist() == ["missing"] * 2
    assert src[["13:50", "13:55", "14:00", "14:05", "14:10", "14:15"]].tolist() == ["closed"] * 6
    assert day.loc[src == "closed", "actual"].isna().all()
    assert src[["13:45", "14:20"]].tolist() == ["missing"] * 2
    assert src["15:50"] == "imputed"
    assert res.by_source["observed"] >= 2 and frame["park_date"].min() >= FIRST_DAY

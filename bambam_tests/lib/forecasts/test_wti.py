"""WTI by hand: backfill before forecast, closed and null excluded (never 0), PRIORITY left out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts import forecast, wti

D1, D2 = date(2024, 6, 29), date(2024, 7, 1)
S1, S2 = pd.Timestamp("2024-06-29 14:00", tz="UTC"), pd.Timestamp("2024-06-29 14:05", tz="UTC")
F1 = pd.Timestamp("2024-07-01 14:00", tz="UTC")
NAN = np.nan


def _backfill(code: str, actual: list[float], source: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"entity_code": code, "park_date": [D1, D1], "slot": ["10:00", "10:05"],
                         "slot_start": [S1, S2], "actual": actual, "source": source})


def _forecast(code: str, days: list[date], starts: list, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"entity_code": code, "park_date": days, "slot": ["10:00"] * len(days),
                         "slot_start": starts, "actual_predicted": values, "actual_p10": NAN,
                         "actual_p90": NAN, "posted_predicted": 30.0})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    backfills = {
        "MK1": _backfill("MK1", [10.0, NAN], ["observed", "closed"]),
        "MK2": _backfill("MK2", [20.0, NAN], ["imputed", "closed"]),
        "MK3": _backfill("MK3", [NAN, NAN], ["closed", "missing"]),
    }
    forecasts = {
        # MK3 has a (stale) forecast at the slot its backfill says closed: it must not count
        "MK3": _forecast("MK3", [D1, D2], [S1, F1], [99.0, 60.0]),
        "MK1": _forecast("MK1", [D2], [F1], [40.0]),
        "MK2": _forecast("MK2", [D2], [F1], [NAN]),  # POSTED-only forecast: no ACTUAL value
        "MK4": _forecast("MK4", [D1, D2], [S1, F1], [500.0, 500.0]),  # PRIORITY entity
    }
    for code, frame in backfills.items():
        curve_files.write_entity_file(
            frame, curve_files.entity_file(home, curve_files.BACKFILL_DIR, code),
            curve_files.BACKFILL_SCHEMA)
    for code, frame in forecasts.items():
        curve_files.write_entity_file(
            frame, curve_files.entity_file(home, curve_files.FORECASTS_DIR, code),
            curve_files.FORECAST_SCHEMA)
    return home


def test_wti_by_hand(home: Path) -> None:
    slots, daily = wti.compute_wti(home, excluded_entities=["MK4"])
    got = slots.set_index("slot_start")
    assert len(got) == 3
    # D1 10:00: MK1 observed 10, MK2 imputed 20, MK3 closed (its forecast 99 ignored)
    assert (got.loc[S1, ["wti", "n_entities", "min_actual", "max_actual"]].tolist()
            == [15, 2, 10, 20])
    # D1 10:05: every entity closed or unknown -> NULL, never 0
    assert np.isnan(got.loc[S2, "wti"]) and got.loc[S2, "n_entities"] == 0
    # D2: forecasts MK1 40 and MK3 60; MK2 has no ACTUAL value
    assert got.loc[F1, ["wti", "n_entities"]].tolist() == [50, 2]
    assert got.loc[F1, "park_code"] == "MK" and got.loc[F1, "slot"] == "10:00"
    d = daily.set_index(daily["park_date"].dt.date)
    assert d.loc[D1, ["wti", "p10", "p90", "n_entities", "n_slots"]].tolist() == [15, 15, 15, 2, 1]
    assert d.loc[D2, ["wti", "n_entities", "n_slots"]].tolist() == [50, 2, 1]


def test_priority_entities_are_excluded_and_tables_are_written(home: Path) -> None:
    with_priority, _ = wti.compute_wti(home)
    assert with_priority.set_index("slot_start").loc[F1, "n_entities"] == 3
    slots, daily = wti.compute_wti(home, ["MK4"])
    with wh.writer(home) as conn:
        wti.write_wti(conn, slots, daily)
        rows = conn.execute("SELECT park_code, park_date, slot, wti, n_entities FROM park_wti "
                            "ORDER BY slot_start").fetchall()
        n_daily = conn.execute("SELECT count(*) FROM park_wti_daily").fetchall()[0][0]
    assert [r[3] for r in rows][0] == 15 and rows[1][3] is None and rows[1][4] == 0
    assert n_daily == 2


def test_no_curve_files_gives_empty_tables(tmp_path: Path) -> None:
    slots, daily = wti.compute_wti(tmp_path)
    assert len(slots) == 0 and len(daily) == 0


def test_emh_only_slots_stay_out_of_the_park_wti(home: Path) -> None:
    # official hours of D1 open at 14:05 UTC: S1 (14:00) is an EMH-morning slot; D2's official
    # hours contain F1. The curves keep the EMH slot; the park WTI leaves it out.
    hours = pd.DataFrame({
        "park_code": ["MK", "MK"], "park_date": [pd.Timestamp(D1), pd.Timestamp(D2)],
        "opening_time": [S2, F1], "closing_time": [S2 + pd.Timedelta(hours=8),
                                                  F1 + pd.Timedelta(hours=8)]})
    slots, daily = wti.compute_wti(home, ["MK4"], hours=hours)
    assert set(slots["slot_start"]) == {S2, F1}
    d = daily.set_index(daily["park_date"].dt.date)
    assert d.loc[D1, "n_slots"] == 0 and d.loc[D2, ["wti", "n_slots"]].tolist() == [50, 1]
    # the same rule through the warehouse's dim_park_hours, and with only some days
    with wh.writer(home) as conn:
        conn.execute("INSERT INTO dim_park_hours BY NAME "
                     "SELECT *, 'official' AS source FROM hours")
        read = wti.official_hours(conn)
    days = pd.DataFrame({"park_code": ["MK"], "park_date": [D1]})
    only_d1, _ = wti.compute_wti(home, ["MK4"], days, read)
    assert only_d1["slot_start"].tolist() == [S2]


def test_official_hours_without_the_dimension_is_none() -> None:
    assert wti.official_hours(duckdb.connect()) is None


def test_a_forecast_files_level_factor_scales_its_forecast_days_only(tmp_path: Path) -> None:
    # MK1 records a factor 1.5 (its version's mean/median level, forecast.LEVEL_KEY), MK2 none:
    # the forecast day is (40 x 1.5 + 60) / 2 = 60; the backfill day keeps its values
    home = tmp_path / "home"
    for code, actual, level in (("MK1", 10.0, 1.5), ("MK2", 20.0, None)):
        curve_files.write_entity_file(
            _backfill(code, [actual, NAN], ["observed", "closed"]),
            curve_files.entity_file(home, curve_files.BACKFILL_DIR, code),
            curve_files.BACKFILL_SCHEMA)
        curve_files.write_entity_file(
            _forecast(code, [D2], [F1], [40.0 if code == "MK1" else 60.0]),
            curve_files.entity_file(home, curve_files.FORECASTS_DIR, code),
            curve_files.FORECAST_SCHEMA,
            metadata=None if level is None else {forecast.LEVEL_KEY: repr(level)})
    slots, daily = wti.compute_wti(home)
    got = slots.set_index("slot_start")
    assert got.loc[S1, "wti"] == 15  # backfill: 10 and 20, unscaled
    assert got.loc[F1, ["wti", "min_actual", "max_actual"]].tolist() == [60, 60, 60]
    # the same files through the park-day path (a daily run's dirty days)
    days = pd.DataFrame({"park_code": ["MK"], "park_date": [D2]})
    only_d2, _ = wti.compute_wti(home, days=days)
    assert only_d2["wti"].tolist() == [60]
    assert wti.forecast_levels([]) is None

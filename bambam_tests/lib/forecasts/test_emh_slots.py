"""EMH mornings and party nights: the forecast and the backfill have slots before the official
opening / after the official closing; a day without EMH has none outside its hours (the
forecast home of bambam_tests.builders, its hours edited)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import backfill, forecast
from bambam_assets.lib.forecasts.forecast import forecast_window
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_HORIZON,
    FORECAST_QUIET_DAY,
    FORECAST_SLOTS_PER_DAY,
    NY,
    build_forecast_home,
    insert_facts,
    local_fact,
)

FIRST, _ = forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
EMH_MORNING = FIRST + timedelta(days=8)  # future: 08:00 EMH, official 09:00-22:00
PARTY = FIRST + timedelta(days=9)  # future: official 09:00-22:00, party until 00:30
PLAIN = FIRST + timedelta(days=10)  # future: no EMH
PAST_EMH = FORECAST_QUIET_DAY  # past: 07:30 EMH, with a guest-timed wait at 07:42


def _at(day: date, hh: int, mm: int = 0) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)).tz_convert("UTC")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("emh") / "home")
    with wh.writer(home) as conn:
        for day, column, value, flag in (
                (EMH_MORNING, "opening_time_with_emh", _at(EMH_MORNING, 8), "emh_morning"),
                (PARTY, "closing_time_with_emh", _at(PARTY + timedelta(days=1), 0, 30), None),
                (PAST_EMH, "opening_time_with_emh", _at(PAST_EMH, 7, 30), "emh_morning")):
            flag_sql = f", {flag} = true" if flag else ""
            conn.execute(f"UPDATE dim_park_hours SET {column} = $v{flag_sql} "
                         "WHERE park_code = 'MK' AND park_date = $d", {"v": value, "d": day})
    insert_facts(home, local_fact("MK1", PAST_EMH, 7, 42, "ACTUAL", 12))
    return home


def _slots(frame: pd.DataFrame, day: date) -> list[str]:
    return frame.loc[frame["park_date"] == pd.Timestamp(day), "slot"].tolist()


def test_forecast_has_emh_and_party_slots_and_none_outside_a_plain_day(home: Path) -> None:
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                  FORECAST_HORIZON, recompute_all=True)
    frame = pd.read_parquet(res.path)
    frame["park_date"] = pd.to_datetime(frame["park_date"])
    morning, party, plain = (_slots(frame, d) for d in (EMH_MORNING, PARTY, PLAIN))
    assert (morning[0], morning[-1], len(morning)) == ("08:00", "22:00", 14 * 12 + 1)
    assert (party[0], party[-1], len(party)) == ("09:00", "00:30", FORECAST_SLOTS_PER_DAY + 30)
    assert (plain[0], plain[-1], len(plain)) == ("09:00", "22:00", FORECAST_SLOTS_PER_DAY)
    emh = frame[(frame["park_date"] == pd.Timestamp(EMH_MORNING)) & (frame["slot"] < "09:00")]
    assert len(emh) == 12 and emh["actual_predicted"].notna().all()
    late = frame[(frame["park_date"] == pd.Timestamp(PARTY)) & (frame["slot"] < "01:00")]
    assert len(late) == 7 and late["actual_predicted"].notna().all()


def test_backfill_covers_the_emh_morning(home: Path) -> None:
    [res] = backfill.run_backfill(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                  window_days=60)
    frame = pd.read_parquet(res.path)
    frame["park_date"] = pd.to_datetime(frame["park_date"])
    day = frame[frame["park_date"] == pd.Timestamp(PAST_EMH)].set_index("slot")
    assert (day.index[0], day.index[-1]) == ("07:30", "22:00")
    assert day.loc["07:40", "source"] == "observed" and day.loc["07:40", "actual"] == 12
    assert day.loc["07:45", "source"] == "observed"
    other = frame[frame["park_date"] == pd.Timestamp(PAST_EMH + timedelta(days=1))]
    assert other["slot"].min() == "09:00" and len(other) == FORECAST_SLOTS_PER_DAY

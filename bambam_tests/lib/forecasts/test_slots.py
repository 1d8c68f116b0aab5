"""Slots of park days: open..close inclusive (EMH and party hours included), local labels, across
midnight and DST, donor hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.dimensions import calendar, park_hours_donor
from bambam_assets.lib.forecasts.slots import park_slots

NY = ZoneInfo("America/New_York")


def _row(park: str, day: date, open_local: datetime, close_local: datetime) -> dict:
    o, c = pd.Timestamp(open_local).tz_convert("UTC"), pd.Timestamp(close_local).tz_convert("UTC")
    return {"park_code": park, "park_date": pd.Timestamp(day), "opening_time": o,
            "closing_time": c, "opening_time_with_emh": o, "closing_time_with_emh": c,
            "emh_morning": False, "emh_evening": False, "source": "official", "confidence": 1.0}


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def _load(conn, rows: list[dict]) -> None:
    schema.replace_dimension(conn, "dim_park_hours", pd.DataFrame(rows))


def test_regular_day_has_157_slots_from_open_to_close(conn) -> None:
    day = date(2024, 6, 3)
    _load(conn, [_row("MK", day, datetime(2024, 6, 3, 9, tzinfo=NY),
                      datetime(2024, 6, 3, 22, tzinfo=NY))])
    s = park_slots(conn, ["MK"], day, day)
    assert len(s) == 157
    assert (s["slot"].iloc[0], s["slot"].iloc[-1]) == ("09:00", "22:00")
    assert s["slot_start"].iloc[0] == pd.Timestamp("2024-06-03 13:00", tz="UTC")
    assert list(s.columns) == ["park_code", "park_date", "slot", "slot_start", "official"]
    assert s["official"].all()  # no EMH: nothing outside the official hours


def test_day_open_across_midnight_keeps_its_park_date(conn) -> None:
    day = date(2024, 6, 1)
    _load(conn, [_row("MK", day, datetime(2024, 6, 1, 18, tzinfo=NY),
                      datetime(2024, 6, 2, 2, tzinfo=NY))])
    s = park_slots(conn, ["MK"], day, day)
    assert len(s) == 8 * 12 + 1
    assert set(s["park_date"].dt.date) == {day}
    labels = s["slot"].tolist()
    assert labels[labels.index("23:55") + 1] == "00:00"
    assert labels[-1] == "02:00"


def test_spring_forward_day_has_one_hour_fewer(conn) -> None:
    # 20:00 EST on 9 March 2024 to 04:00 EDT on 10 March: 7 real hours, 02:xx never exists
    normal, dst = date(2024, 3, 2), date(2024, 3, 9)
    _load(conn, [
        _row("MK", normal, datetime(2024, 3, 2, 20, tzinfo=NY), datetime(2024, 3, 3, 4, tzinfo=NY)),
        _row("MK", dst, datetime(2024, 3, 9, 20, tzinfo=NY), datetime(2024, 3, 10, 4, tzinfo=NY)),
    ])
    s = park_slots(conn, ["MK"], normal, dst)
    per_day = s.groupby(s["park_date"].dt.date).size()
    assert per_day[normal] == 8 * 12 + 1
    assert per_day[dst] == 7 * 12 + 1
    labels = s.loc[s["park_date"].dt.date == dst, "slot"].tolist()
    assert labels[labels.index("01:55") + 1] == "03:00"
    assert not any(lab.startswith("02:") for lab in labels)


def test_each_park_uses_its_own_time_zone_and_bad_hours_give_no_slots(conn) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    day = date(2024, 6, 3)
    bad = _row("MK", day, datetime(2024, 6, 3, 9, tzinfo=NY), datetime(2024, 6, 3, 9, tzinfo=NY))
    _load(conn, [_row("TDL", day, datetime(2024, 6, 3, 9, tzinfo=tokyo),
                      datetime(2024, 6, 3, 9, 10, tzinfo=tokyo)), bad])
    s = park_slots(conn, ["TDL", "MK"], day, day)
    assert s["slot"].tolist() == ["09:00", "09:05", "09:10"]
    assert s["slot_start"].iloc[0] == pd.Timestamp("2024-06-03 00:00", tz="UTC")


def test_future_days_without_official_hours_use_donor_hours(conn) -> None:
    as_of = date(2024, 6, 30)
    past = [as_of - timedelta(days=i) for i in range(28)]
    official = pd.DataFrame([_row("MK", d, datetime(d.year, d.month, d.day, 10, tzinfo=NY),
                                  datetime(d.year, d.month, d.day, 20, tzinfo=NY)) for d in past])
    cal = calendar.build_calendar(as_of, 10)
    hours = park_hours_donor.assemble_park_hours(official, pd.DataFrame(), cal, as_of, 10)
    _load(conn, hours.to_dict("records"))
    s = park_slots(conn, ["MK"], as_of + timedelta(days=1), as_of + timedelta(days=10))
    per_day = s.groupby(s["park_date"].dt.date)["slot"].agg(["size", "first", "last"])
    assert len(per_day) == 10
    assert (per_day["size"] == 10 * 12 + 1).all()
    assert set(per_day["first"]) == {"10:00"} and set(per_day["last"]) == {"20:00"}
    sources = conn.execute("SELECT DISTINCT source FROM dim_park_hours WHERE park_date > ?",
                           [as_of]).fetchall()
    assert sources == [("donor",)]


def _emh(row: dict, open_local: datetime | None = None, close_local: datetime | None = None,
         morning: bool = False, evening: bool = False) -> dict:
    out = dict(row, emh_morning=morning, emh_evening=evening)
    if open_local is not None:
        out["opening_time_with_emh"] = pd.Timestamp(open_local).tz_convert("UTC")
    if close_local is not None:
        out["closing_time_with_emh"] = pd.Timestamp(close_local).tz_convert("UTC")
    return out


def test_emh_morning_and_party_evening_get_slots_outside_the_official_hours(conn) -> None:
    morning, party, plain = date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)

    def regular(d: date) -> dict:
        return _row("MK", d, datetime(d.year, d.month, d.day, 9, tzinfo=NY),
                    datetime(d.year, d.month, d.day, 18, tzinfo=NY))

    _load(conn, [
        _emh(regular(morning), open_local=datetime(2024, 6, 3, 8, tzinfo=NY), morning=True),
        # a party night: closing_time_with_emh_or_party after midnight, no EMH flag
        _emh(regular(party), close_local=datetime(2024, 6, 5, 0, 30, tzinfo=NY)),
        regular(plain),
    ])
    s = park_slots(conn, ["MK"], morning, plain)
    by_day = {d: g for d, g in s.groupby(s["park_date"].dt.date)}
    m = by_day[morning]
    assert (m["slot"].iloc[0], m["slot"].iloc[-1]) == ("08:00", "18:00")
    assert len(m) == 10 * 12 + 1
    assert (~m["official"]).sum() == 12  # 08:00 .. 08:55
    assert m.loc[m["slot"] == "09:00", "official"].item()
    p = by_day[party]
    assert (p["slot"].iloc[0], p["slot"].iloc[-1]) == ("09:00", "00:30")
    assert p.loc[~p["official"], "slot"].iloc[0] == "18:05"
    assert (~p["official"]).sum() == 6 * 12 + 6  # 18:05 .. 00:30
    q = by_day[plain]
    assert (q["slot"].iloc[0], q["slot"].iloc[-1]) == ("09:00", "18:00")
    assert q["official"].all() and len(q) == 9 * 12 + 1


def test_emh_times_beyond_24_hours_are_ignored(conn) -> None:
    day = date(2024, 6, 3)
    row = _row("MK", day, datetime(2024, 6, 3, 9, tzinfo=NY), datetime(2024, 6, 3, 22, tzinfo=NY))
    _load(conn, [_emh(row, open_local=datetime(2024, 6, 2, 9, tzinfo=NY), morning=True)])
    s = park_slots(conn, ["MK"], day, day)
    assert len(s) == 157 and s["official"].all()

"""Park hours: export and metatable parsing (UTC instants, DST), versions, donors, assembly."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from bambam_assets.lib.dimensions.calendar import build_calendar
from bambam_assets.lib.dimensions.park_hours import (
    HOURS_ROW_COLUMNS,
    VERSION_COLUMNS,
    hours_as_of,
    hours_from_metatable,
    merge_versions,
    official_hours_from_export,
)
from bambam_assets.lib.dimensions.park_hours_donor import (
    PARK_HOURS_COLUMNS,
    assemble_park_hours,
    donor_hours,
)

EXPORT_HEADER = ["date", "park", "opening_time", "closing_time", "opening_time_with_emh",
                 "closing_time_with_emh_or_party", "emh_morning", "emh_evening"]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def export(rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=EXPORT_HEADER, dtype=str)


def test_official_hours_utc_instants_midnight_close_and_blanks() -> None:
    raw = export([
        # MK, day before the spring DST change; closes at 01:00 the next calendar day.
        ["2024-03-09", "mk", "2024-03-09T09:00:00-05:00", "2024-03-10T01:00:00-05:00",
         "2024-03-09T08:30:00-05:00", "", "1", ""],
        # TDL (Tokyo, no DST).
        ["2024-07-01", "TDL", "2024-07-01T09:00:00+09:00", "2024-07-01T21:00:00+09:00",
         "", "", "0", "nan"],
        # DL in summer (PDT), EMH evening close given.
        ["2024-07-02", "DL", "2024-07-02T08:00:00-07:00", "2024-07-03T00:00:00-07:00",
         "", "2024-07-03T01:00:00-07:00", "", "TRUE"],
        # USH in winter, times without offset: the park's local wall clock (PST).
        ["2024-12-02", "USH", "2024-12-02 09:00:00", "2024-12-02 20:00:00", "", "", "", ""],
        # Blank close: dropped (the legacy wrote a 1999 sentinel).
        ["2024-07-03", "DL", "2024-07-03T08:00:00-07:00", "", "", "", "", ""],
        # Unknown park: dropped.
        ["2024-07-03", "ZZ", "2024-07-03T08:00:00-07:00", "2024-07-03T20:00:00-07:00",
         "", "", "", ""],
        # A repeated (park, date) keeps its last row.
        ["2024-07-01", "TDL", "2024-07-01T08:00:00+09:00", "2024-07-01T22:00:00+09:00",
         "", "", "", ""],
    ])
    out = official_hours_from_export(raw).set_index(["park_code", "park_date"])
    assert list(out.reset_index().columns) == list(HOURS_ROW_COLUMNS)
    assert len(out) == 4
    mk = out.loc[("MK", pd.Timestamp("2024-03-09"))]
    assert mk["opening_time"] == utc("2024-03-09 14:00")
    assert mk["closing_time"] == utc("2024-03-10 06:00")
    assert mk["opening_time_with_emh"] == utc("2024-03-09 13:30")
    assert mk["closing_time_with_emh"] == utc("2024-03-10 06:00")  # blank -> regular
    assert (mk["emh_morning"], mk["emh_evening"], mk["source"]) == (True, False, "official")
    tdl = out.loc[("TDL", pd.Timestamp("2024-07-01"))]
    assert (tdl["opening_time"], tdl["closing_time"]) == (utc("2024-06-30 23:00"),
                                                          utc("2024-07-01 13:00"))
    assert (tdl["emh_morning"], tdl["emh_evening"]) == (False, False)  # "", "nan" -> False
    dl = out.loc[("DL", pd.Timestamp("2024-07-02"))]
    assert (dl["opening_time"], dl["closing_time"]) == (utc("2024-07-02 15:00"),
                                                        utc("2024-07-03 07:00"))
    assert dl["closing_time_with_emh"] == utc("2024-07-03 08:00")
    assert dl["emh_evening"]
    ush = out.loc[("USH", pd.Timestamp("2024-12-02"))]
    assert (ush["opening_time"], ush["closing_time"]) == (utc("2024-12-02 17:00"),
                                                          utc("2024-12-03 04:00"))
    assert str(out["opening_time"].dtype) == "datetime64[ns, UTC]"


def test_metatable_hours_park_day_clock_and_dst() -> None:
    meta = pd.DataFrame({
        "DATE": ["03/09/2024", "11/02/2024", "07/04/2024", "07/05/2024"],
        "MKOPEN": ["09:00", "8:00", "", "09:00"],
        "MKCLOSE": ["25:00", "25:00", "", "23:00"],
        "MKEMHMORN": ["1", "0", "", ""],
        "MKEMHEVE": ["0", "1", "", ""],
        "DLOPEN": ["", "", "08:00", ""],
        "DLCLOSE": ["", "", "24:00", ""],
        "TDSOPEN": ["", "", "09:00", ""],
        "TDSCLOSE": ["", "", "21:00", ""],
    }, dtype=str)
    out = hours_from_metatable(meta).set_index(["park_code", "park_date"])
    assert sorted(out.index.tolist()) == sorted([
        ("MK", pd.Timestamp("2024-03-09")), ("MK", pd.Timestamp("2024-11-02")),
        ("MK", pd.Timestamp("2024-07-05")), ("DL", pd.Timestamp("2024-07-04")),
        ("TDS", pd.Timestamp("2024-07-04")),
    ])
    mk = out.loc[("MK", pd.Timestamp("2024-03-09"))]
    # 25:00 = 01:00 on Mar 10, still EST (DST starts at 02:00).
    assert (mk["opening_time"], mk["closing_time"]) == (utc("2024-03-09 14:00"),
                                                        utc("2024-03-10 06:00"))
    assert (mk["emh_morning"], mk["emh_evening"], mk["source"]) == (True, False, "metatable")
    assert mk["opening_time_with_emh"] == mk["opening_time"]
    fall = out.loc[("MK", pd.Timestamp("2024-11-02"))]
    # 01:00 on Nov 3 happens twice; the first (EDT) is taken.
    assert (fall["opening_time"], fall["closing_time"]) == (utc("2024-11-02 12:00"),
                                                            utc("2024-11-03 05:00"))
    assert fall["emh_evening"]
    dl = out.loc[("DL", pd.Timestamp("2024-07-04"))]
    assert (dl["opening_time"], dl["closing_time"]) == (utc("2024-07-04 15:00"),
                                                        utc("2024-07-05 07:00"))
    tds = out.loc[("TDS", pd.Timestamp("2024-07-04"))]
    assert (tds["opening_time"], tds["closing_time"]) == (utc("2024-07-04 00:00"),
                                                          utc("2024-07-04 12:00"))


T1 = datetime(2024, 3, 1, 12, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 12, tzinfo=UTC)
T3 = datetime(2024, 3, 3, 12, tzinfo=UTC)


def _two_days(close_day2: str, emh_evening_day2: str = "") -> pd.DataFrame:
    return official_hours_from_export(export([
        ["2024-03-20", "MK", "2024-03-20T09:00:00-04:00", "2024-03-20T22:00:00-04:00",
         "", "", "", ""],
        ["2024-03-21", "MK", "2024-03-21T09:00:00-04:00", close_day2, "", "", "",
         emh_evening_day2],
    ]))


def test_versions_only_on_change_and_recovery_as_of() -> None:
    first = merge_versions(pd.DataFrame(), _two_days("2024-03-21T22:00:00-04:00"), T1, "a.csv")
    assert list(first.columns) == list(VERSION_COLUMNS)
    assert len(first) == 2 and first["valid_until"].isna().all()
    assert (first["valid_from"] == utc("2024-03-01 12:00")).all()

    # Same hours again (blank EMH flags must stay False, not become True): nothing added.
    second = merge_versions(first, _two_days("2024-03-21T22:00:00-04:00"), T2, "b.csv")
    pd.testing.assert_frame_equal(second, first)

    # Day 2 closes an hour later; day 1 unchanged.
    third = merge_versions(second, _two_days("2024-03-21T23:00:00-04:00"), T3, "c.csv")
    assert len(third) == 3
    day2 = third[third["park_date"] == pd.Timestamp("2024-03-21")].sort_values("valid_from")
    assert day2["valid_until"].tolist()[0] == utc("2024-03-03 12:00")
    assert pd.isna(day2["valid_until"].tolist()[1])
    assert day2["source_file"].tolist() == ["a.csv", "c.csv"]

    before = hours_as_of(third, datetime(2024, 3, 2, 18, tzinfo=UTC))
    after = hours_as_of(third, datetime(2024, 3, 4, tzinfo=UTC))
    assert len(before) == 2 and len(after) == 2
    pick = lambda f: f.set_index("park_date").loc["2024-03-21", "closing_time"]  # noqa: E731
    assert pick(before) == utc("2024-03-22 02:00")
    assert pick(after) == utc("2024-03-22 03:00")
    assert hours_as_of(third, datetime(2024, 2, 1, tzinfo=UTC)).empty

    # An EMH flag change is a change; a key missing from the export keeps its open version.
    fourth = merge_versions(third, _two_days("2024-03-21T23:00:00-04:00", "1").iloc[1:],
                            datetime(2024, 3, 5, tzinfo=UTC), "d.csv")
    assert len(fourth) == 4
    open_now = fourth[fourth["valid_until"].isna()].set_index("park_date")
    assert open_now.loc["2024-03-20", "source_file"] == "a.csv"
    assert open_now.loc["2024-03-21", "emh_evening"]


def _mk(day: str, open_: str, close: str, offset: str = "-04:00",
        emh_evening: str = "") -> list[str]:
    return [day, "MK", f"{day}T{open_}:00{offset}", f"{day}T{close}:00{offset}", "", "",
            "", emh_evening]


AS_OF = date(2024, 6, 30)


@pytest.fixture(scope="module")
def calendar() -> pd.DataFrame:
    return build_calendar(AS_OF, horizon_days=400, start=date(2023, 1, 1))


@pytest.fixture(scope="module")
def known() -> pd.DataFrame:
    return official_hours_from_export(export([
        _mk("2023-07-04", "09:00", "23:00", emh_evening="1"),  # INDEPENDENCE_DAY
        _mk("2023-07-13", "09:00", "22:00"),  # JUL_WEEK2_THU
        _mk("2024-06-27", "09:00", "21:00"),  # JUN_WEEK4OR5_THU
        _mk("2024-06-30", "08:00", "20:00"),  # as_of day, JUN_WEEK4OR5_SUN
        _mk("2024-07-11", "10:00", "18:00"),  # future official day, JUL_WEEK2_THU
    ]))


def test_donor_choice_confidence_and_no_future_donor(known: pd.DataFrame,
                                                     calendar: pd.DataFrame) -> None:
    donors = donor_hours(known, calendar, AS_OF, horizon_days=400)
    assert list(donors.columns) == list(PARK_HOURS_COLUMNS)
    assert len(donors) == 399  # 400 days minus the one with official hours
    assert (donors["source"] == "donor").all()
    by_day = donors.set_index("park_date")
    assert pd.Timestamp("2024-07-11") not in by_day.index

    # Same date_group_id a year back beats a non-matching day 4 days back (legacy: 0.7 > 0.50).
    july4 = by_day.loc["2024-07-04"]
    assert july4["donor_date"] == pd.Timestamp("2023-07-04")
    assert july4["confidence"] == pytest.approx(1 / (1 + 362 / 365))
    assert (july4["opening_time"], july4["closing_time"]) == (utc("2024-07-04 13:00"),
                                                              utc("2024-07-05 03:00"))
    assert july4["emh_evening"]
    # JUL_WEEK2_THU of 2025: the past 2023-07-13, never the future 2024-07-11.
    thu = by_day.loc["2025-07-10"]
    assert thu["donor_date"] == pd.Timestamp("2023-07-13")
    assert thu["confidence"] == pytest.approx(1 / (1 + 353 / 365))
    assert thu["closing_time"] == utc("2025-07-11 02:00")
    # No same group: same weekday and month ...
    jul18 = by_day.loc["2024-07-18"]
    assert jul18["donor_date"] == pd.Timestamp("2023-07-13")
    assert jul18["confidence"] == pytest.approx(0.7 / (1 + 353 / 365))
    # ... then same weekday (a summer donor carried into winter: 09:00 EST = 14:00 UTC) ...
    dec = by_day.loc["2024-12-05"]
    assert dec["donor_date"] == pd.Timestamp("2024-06-27")
    assert dec["confidence"] == pytest.approx(0.7 / (1 + 3 / 365))
    assert (dec["opening_time"], dec["closing_time"]) == (utc("2024-12-05 14:00"),
                                                          utc("2024-12-06 02:00"))
    # ... then the most recent day at all.
    sat = by_day.loc["2024-08-03"]
    assert sat["donor_date"] == pd.Timestamp("2024-06-30")
    assert sat["confidence"] == pytest.approx(0.7)
    assert (donors["donor_date"] <= pd.Timestamp(AS_OF)).all()
    assert (donors["confidence"] <= 1.0).all()


def test_donor_tokyo_and_los_angeles_keep_local_clock() -> None:
    known = official_hours_from_export(export([
        ["2024-07-01", "TDS", "2024-07-01T09:00:00+09:00", "2024-07-01T21:00:00+09:00",
         "", "", "", ""],
        ["2024-07-01", "CA", "2024-07-01T08:00:00-07:00", "2024-07-02T00:30:00-07:00",
         "", "", "", ""],
    ]))
    calendar = build_calendar(date(2024, 7, 1), horizon_days=200, start=date(2024, 1, 1))
    out = donor_hours(known, calendar, date(2024, 7, 1), horizon_days=200)
    assert len(out) == 400
    by_key = out.set_index(["park_code", "park_date"])
    tds = by_key.loc[("TDS", pd.Timestamp("2024-12-02"))]
    assert (tds["opening_time"], tds["closing_time"]) == (utc("2024-12-02 00:00"),
                                                          utc("2024-12-02 12:00"))
    ca = by_key.loc[("CA", pd.Timestamp("2024-12-02"))]  # PST now: 08:00 = 16:00 UTC
    assert (ca["opening_time"], ca["closing_time"]) == (utc("2024-12-02 16:00"),
                                                        utc("2024-12-03 08:30"))


def test_assemble_official_then_metatable_then_donors(known: pd.DataFrame,
                                                      calendar: pd.DataFrame) -> None:
    meta = hours_from_metatable(pd.DataFrame({
        "DATE": ["07/04/2023", "06/01/2024", "07/01/2024"],
        "MKOPEN": ["07:00", "09:00", "09:00"],
        "MKCLOSE": ["23:00", "21:00", "26:00"],
    }, dtype=str))
    out = assemble_park_hours(known, meta, calendar, AS_OF, horizon_days=400)
    assert list(out.columns) == list(PARK_HOURS_COLUMNS)
    assert not out.duplicated(["park_code", "park_date"]).any()
    by_day = out.set_index("park_date")
    assert by_day.loc["2023-07-04", "source"] == "official"  # official beats metatable
    assert by_day.loc["2023-07-04", "opening_time"] == utc("2023-07-04 13:00")
    assert by_day.loc["2024-06-01", "source"] == "metatable"
    assert by_day.loc["2024-07-01", "source"] == "metatable"  # a future day it knows
    assert by_day.loc["2024-07-01", "closing_time"] == utc("2024-07-02 06:00")
    assert by_day.loc["2024-07-11", "source"] == "official"
    assert (out.loc[out["source"] != "donor", "confidence"] == 1.0).all()
    assert out.loc[out["source"] != "donor", "donor_date"].isna().all()
    donors = out[out["source"] == "donor"]
    assert len(donors) == 398
    assert donors["park_date"].min() == pd.Timestamp("2024-07-02")
    assert donors["park_date"].max() == pd.Timestamp("2025-08-04")
    # The metatable day (2024-06-01, JUN_WEEK1_SAT) now donates to JUN_WEEK1_SAT of 2025.
    assert by_day.loc["2025-06-07", "donor_date"] == pd.Timestamp("2024-06-01")

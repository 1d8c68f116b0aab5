"""Calendar, holiday codes, date_group_id and seasons pinned on known dates."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from bambam_assets.lib.dimensions.calendar import (
    CALENDAR_COLUMNS,
    build_calendar,
    date_group_ids,
    easter_sundays,
    holiday_codes,
)
from bambam_assets.lib.dimensions.season import build_season

AS_OF = date(2026, 6, 15)


@pytest.fixture(scope="module")
def calendar() -> pd.DataFrame:
    return build_calendar(AS_OF)


@pytest.fixture(scope="module")
def by_date(calendar: pd.DataFrame) -> pd.DataFrame:
    season = build_season(calendar)
    return calendar.merge(season, on="park_date").set_index("park_date")


EASTERS = ["2019-04-21", "2020-04-12", "2021-04-04", "2022-04-17", "2023-04-09",
           "2024-03-31", "2025-04-20", "2026-04-05", "2027-03-28"]


def test_easter_sundays_2019_2027(by_date: pd.DataFrame) -> None:
    days = pd.Series(pd.to_datetime(EASTERS))
    assert (easter_sundays(days) == days).all()
    for easter in EASTERS:
        row = by_date.loc[easter]
        assert (row["holiday_code"], row["date_group_id"]) == ("ESS", "EASTER_SUNDAY")
        assert row["season"] == "EASTER"


# (date, date_group_id, season_year): every holiday, date-group and season rule at least once.
CASES = [
    # Presidents' Day followed by Mardi Gras (2015): PMP/PMM and a 7-day combined season.
    ("2015-02-12", "FEB_WEEK2_THU", "WINTER_2015"),
    ("2015-02-13", "FEB_WEEK2_FRI", "PRESIDENTS_DAY_MARDI_GRAS_2015"),
    ("2015-02-16", "PRESIDENTS_DAY_WITH_MARDI_GRAS", "PRESIDENTS_DAY_MARDI_GRAS_2015"),
    ("2015-02-17", "MARDI_GRAS_WITH_PRESIDENTS_DAY", "PRESIDENTS_DAY_MARDI_GRAS_2015"),
    ("2015-02-18", "ASH_WEDNESDAY", "PRESIDENTS_DAY_MARDI_GRAS_2015"),
    ("2015-02-19", "FEB_WEEK3_THU", "PRESIDENTS_DAY_MARDI_GRAS_2015"),
    ("2015-02-20", "FEB_WEEK3_FRI", "WINTER_2015"),
    # 2024: Mardi Gras (Feb 13) a week before Presidents' Day (Feb 19): separate windows,
    # PRESIDENTS applied first so Feb 16 (MG+3, PRS-3) is PRESIDENTS_DAY.
    ("2024-02-09", "FEB_WEEK2_FRI", "WINTER_2024"),
    ("2024-02-10", "FEB_WEEK2_SAT", "MARDI_GRAS_2024"),
    ("2024-02-13", "MARDI_GRAS", "MARDI_GRAS_2024"),
    ("2024-02-15", "FEB_WEEK3_THU", "MARDI_GRAS_2024"),
    ("2024-02-16", "FEB_WEEK3_FRI", "PRESIDENTS_DAY_2024"),
    ("2024-02-19", "PRESIDENTS_DAY", "PRESIDENTS_DAY_2024"),
    ("2024-02-21", "FEB_WEEK3_WED", "PRESIDENTS_DAY_2024"),
    ("2024-02-22", "FEB_WEEK4OR5_THU", "WINTER_2024"),
    # MLK: 3 days before, 2 after.
    ("2024-01-11", "JAN_WEEK2_THU", "WINTER_2024"),
    ("2024-01-12", "JAN_WEEK2_FRI", "MLK_JR_DAY_2024"),
    ("2024-01-15", "MARTIN_LUTHER_KING_DAY", "MLK_JR_DAY_2024"),
    ("2024-01-17", "JAN_WEEK3_WED", "MLK_JR_DAY_2024"),
    ("2024-01-18", "JAN_WEEK3_THU", "WINTER_2024"),
    # Jersey Week 2021: Tue Nov 2 .. Sat Nov 6, season +-1 day.
    ("2021-11-01", "NOV_WEEK1_MON", "JERSEY_WEEK_2021"),
    ("2021-11-02", "JERSEY_WEEK_TUE", "JERSEY_WEEK_2021"),
    ("2021-11-04", "JERSEY_WEEK_THU", "JERSEY_WEEK_2021"),
    ("2021-11-06", "JERSEY_WEEK_SAT", "JERSEY_WEEK_2021"),
    ("2021-11-07", "NOV_WEEK1_SUN", "JERSEY_WEEK_2021"),
    ("2021-11-08", "NOV_WEEK2_MON", "AUTUMN_2021"),
    ("2021-11-10", "NOV_WEEK2_WED", "VETERANS_DAY_2021"),
    ("2021-11-11", "VETERANS_DAY", "VETERANS_DAY_2021"),
    # 2024: Jersey Week starts Sat Nov 2, so Halloween's +1 day (Nov 1) is Jersey Week.
    ("2024-10-31", "HALLOWEEN", "HALLOWEEN_2024"),
    ("2024-11-01", "NOV_WEEK1_FRI", "JERSEY_WEEK_2024"),
    ("2024-11-02", "JERSEY_WEEK_SAT", "JERSEY_WEEK_2024"),
    ("2024-11-05", "JERSEY_WEEK_TUE", "JERSEY_WEEK_2024"),
    # Christmas, the Dec 27-30 overrides and the peak across the new year.
    ("2024-12-22", "DEC_WEEK4OR5_SUN", "WINTER_2024"),
    ("2024-12-23", "DEC_WEEK4OR5_MON", "CHRISTMAS_2024"),
    ("2024-12-25", "CHRISTMAS_DAY", "CHRISTMAS_2024"),
    ("2024-12-26", "BOXING_DAY", "CHRISTMAS_2024"),
    ("2024-12-27", "DEC27", "CHRISTMAS_PEAK_2024"),
    ("2024-12-30", "DEC30", "CHRISTMAS_PEAK_2024"),
    ("2024-12-31", "NEW_YEARS_EVE", "CHRISTMAS_PEAK_2024"),
    ("2025-01-01", "NEW_YEARS_DAY", "CHRISTMAS_PEAK_2024"),
    ("2025-01-02", "JAN_WEEK1_THU", "CHRISTMAS_2024"),
    ("2025-01-03", "JAN_WEEK1_FRI", "WINTER_2025"),
    # Easter prefixes (Mar/Apr only; after = on or after Good Friday) and the Easter window.
    ("2024-03-27", "BEFORE_EASTER_MAR_WEEK4OR5_WED", "BEFORE_EASTER_2024"),
    ("2024-03-28", "BEFORE_EASTER_MAR_WEEK4OR5_THU", "EASTER_2024"),
    ("2024-03-29", "GOOD_FRIDAY", "EASTER_2024"),
    ("2024-03-30", "EASTER_SATURDAY", "EASTER_2024"),
    ("2024-04-01", "EASTER_MONDAY", "EASTER_2024"),
    ("2024-04-02", "AFTER_EASTER_APR_WEEK1_TUE", "EASTER_2024"),
    ("2024-04-03", "AFTER_EASTER_APR_WEEK1_WED", "AFTER_EASTER_2024"),
    ("2025-03-10", "BEFORE_EASTER_MAR_WEEK2_MON", "BEFORE_EASTER_2025"),
    ("2025-04-10", "BEFORE_EASTER_APR_WEEK2_THU", "BEFORE_EASTER_2025"),
    ("2025-04-25", "AFTER_EASTER_APR_WEEK4OR5_FRI", "AFTER_EASTER_2025"),
    # Thanksgiving +-1 and the other Monday holidays.
    ("2024-11-26", "NOV_WEEK4OR5_TUE", "AUTUMN_2024"),
    ("2024-11-27", "NOV_WEEK4OR5_WED", "THANKSGIVING_2024"),
    ("2024-11-28", "THANKSGIVING", "THANKSGIVING_2024"),
    ("2024-11-29", "NOV_WEEK4OR5_FRI", "THANKSGIVING_2024"),
    ("2024-11-30", "NOV_WEEK4OR5_SAT", "AUTUMN_2024"),
    ("2024-05-27", "MEMORIAL_DAY", "MEMORIAL_DAY_2024"),
    ("2024-05-24", "MAY_WEEK4OR5_FRI", "MEMORIAL_DAY_2024"),
    ("2024-09-02", "LABOR_DAY", "LABOR_DAY_2024"),
    ("2024-10-14", "COLUMBUS_DAY", "COLUMBUS_DAY_2024"),
    ("2024-10-15", "OCT_WEEK3_TUE", "COLUMBUS_DAY_2024"),
    # Default seasons.
    ("2024-05-15", "MAY_WEEK3_WED", "SPRING_2024"),
    ("2024-07-04", "INDEPENDENCE_DAY", "SUMMER_2024"),
    ("2024-08-10", "AUG_WEEK2_SAT", "SUMMER_2024"),
    ("2024-10-16", "OCT_WEEK3_WED", "AUTUMN_2024"),
    ("2024-02-02", "FEB_WEEK1_FRI", "WINTER_2024"),
    ("2024-06-08", "JUN_WEEK2_SAT", "SUMMER_2024"),
    ("2024-06-22", "JUN_WEEK4OR5_SAT", "SUMMER_2024"),
]


@pytest.mark.parametrize(("day", "group", "season_year"), CASES)
def test_date_group_id_and_season(by_date: pd.DataFrame, day: str, group: str,
                                  season_year: str) -> None:
    row = by_date.loc[day]
    assert row["date_group_id"] == group
    assert row["season_year"] == season_year
    assert season_year.startswith(row["season"] + "_")


def test_pmp_pmm_codes_and_seven_day_season(by_date: pd.DataFrame) -> None:
    feb = by_date.loc["2015-02-01":"2015-02-28"]
    assert feb.loc["2015-02-16", "holiday_code"] == "PMP"
    assert feb.loc["2015-02-17", "holiday_code"] == "PMM"
    combined = feb.index[feb["season"] == "PRESIDENTS_DAY_MARDI_GRAS"]
    assert list(combined) == list(pd.date_range("2015-02-13", "2015-02-19"))
    # PMP iff Easter = Presidents' Day + 48 days: Easter Apr 4-10 (Apr 5-11 in leap years).
    pmp_days = by_date.index[by_date["holiday_code"] == "PMP"].strftime("%Y-%m-%d").tolist()
    assert pmp_days == ["2007-02-19", "2010-02-15", "2012-02-20", "2015-02-16",
                        "2021-02-15", "2023-02-20", "2026-02-16"]
    pmm_days = by_date.index[by_date["holiday_code"] == "PMM"]
    assert list(pmm_days) == list(pd.to_datetime(pmp_days) + pd.Timedelta(days=1))
    assert by_date.loc["2024-02-19", "holiday_code"] == "PRS"
    assert by_date.loc["2024-02-13", "holiday_code"] == "MGR"


def test_good_friday_starts_after_easter_prefix() -> None:
    days = pd.Series(pd.to_datetime(["2024-03-28", "2024-03-29", "2024-05-01", "2025-02-28"]))
    none = pd.Series(["NONE"] * 4)
    assert date_group_ids(days, none).tolist() == [
        "BEFORE_EASTER_MAR_WEEK4OR5_THU", "AFTER_EASTER_MAR_WEEK4OR5_FRI",
        "MAY_WEEK1_WED", "FEB_WEEK4OR5_FRI",
    ]


def test_holiday_codes_on_unsorted_sparse_dates() -> None:
    days = pd.Series(pd.to_datetime(
        ["2026-02-17", "2026-12-31", "2026-02-16", "2026-01-19", "2026-07-04", "2026-03-04"]
    ), index=[10, 11, 12, 13, 14, 15])
    codes = holiday_codes(days)
    assert codes.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert codes.tolist() == ["PMM", "NYE", "PMP", "MLK", "IND", "NONE"]


def test_calendar_shape_and_columns(calendar: pd.DataFrame, by_date: pd.DataFrame) -> None:
    assert tuple(calendar.columns) == CALENDAR_COLUMNS
    assert calendar["park_date"].iloc[0] == pd.Timestamp("2005-01-01")
    assert calendar["park_date"].iloc[-1] == pd.Timestamp("2028-06-14")  # as_of + 730
    assert len(calendar) == (date(2028, 6, 14) - date(2005, 1, 1)).days + 1
    assert calendar["park_date"].is_unique
    row = by_date.loc["2021-01-01"]  # a Friday in ISO week 53 of 2020
    assert (row["day_of_week"], row["week_of_year"], row["quarter"], row["day_of_year"]) == (
        5, 53, 1, 1)
    assert (row["month_name"], row["month_mmm"], row["day_of_week_name"],
            row["day_of_week_ddd"]) == ("January", "Jan", "Friday", "Fri")
    assert (row["holiday_code"], row["holiday_name"]) == ("NYD", "New Year's Day")
    plain = by_date.loc["2024-06-08"]
    assert (plain["holiday_code"], plain["holiday_name"]) == ("NONE", "None")
    # Every day has a season, and no season is left to the month fallback.
    assert by_date["season"].notna().all()
    assert set(by_date["season"]) <= {
        "CHRISTMAS_PEAK", "MLK_JR_DAY", "PRESIDENTS_DAY", "MARDI_GRAS", "MEMORIAL_DAY",
        "LABOR_DAY", "THANKSGIVING", "CHRISTMAS", "EASTER", "JERSEY_WEEK", "HALLOWEEN",
        "VETERANS_DAY", "COLUMBUS_DAY", "PRESIDENTS_DAY_MARDI_GRAS", "AFTER_EASTER",
        "BEFORE_EASTER", "SPRING", "SUMMER", "AUTUMN", "WINTER",
    }

"""The date dimension: calendar columns, US holiday codes and the date_group_id (the legacy
dimdategroupid).

`date_group_id` is the calendar feature every model uses: a holiday's own id (`EASTER_SUNDAY`,
`THANKSGIVING`, ...) or else `[BEFORE_|AFTER_EASTER_]MMM_WEEKn_DDD`, so that "the second Saturday
of June" is the same group in every year.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
from dateutil.easter import easter

CALENDAR_START = date(2005, 1, 1)
NO_HOLIDAY = "NONE"

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

HOLIDAY_NAMES: dict[str, str] = {
    "NYD": "New Year's Day", "MLK": "Martin Luther King Jr. Day", "PRS": "Presidents' Day",
    "MGR": "Mardi Gras", "ASH": "Ash Wednesday", "GFR": "Good Friday", "EST": "Easter Saturday",
    "ESS": "Easter Sunday", "ESM": "Easter Monday", "MEM": "Memorial Day",
    "IND": "Independence Day", "LAB": "Labor Day", "COL": "Columbus Day", "HAL": "Halloween",
    "NJC": "Jersey Week", "VET": "Veterans Day", "THK": "Thanksgiving", "CME": "Christmas Eve",
    "CMD": "Christmas Day", "BOX": "Boxing Day", "NYE": "New Year's Eve",
    "PMP": "Presidents' Day with Mardi Gras", "PMM": "Mardi Gras with Presidents' Day",
}

# Holiday code -> its date_group_id (NJC is JERSEY_WEEK_{DDD}, built below).
HOLIDAY_GROUP_IDS: dict[str, str] = {
    "ASH": "ASH_WEDNESDAY", "EST": "EASTER_SATURDAY", "ESS": "EASTER_SUNDAY",
    "ESM": "EASTER_MONDAY", "GFR": "GOOD_FRIDAY", "HAL": "HALLOWEEN", "IND": "INDEPENDENCE_DAY",
    "LAB": "LABOR_DAY", "MEM": "MEMORIAL_DAY", "MLK": "MARTIN_LUTHER_KING_DAY",
    "NYD": "NEW_YEARS_DAY", "NYE": "NEW_YEARS_EVE", "PRS": "PRESIDENTS_DAY", "THK": "THANKSGIVING",
    "VET": "VETERANS_DAY", "BOX": "BOXING_DAY", "COL": "COLUMBUS_DAY", "CMD": "CHRISTMAS_DAY",
    "CME": "CHRISTMAS_EVE", "MGR": "MARDI_GRAS", "PMP": "PRESIDENTS_DAY_WITH_MARDI_GRAS",
    "PMM": "MARDI_GRAS_WITH_PRESIDENTS_DAY",
}

CALENDAR_COLUMNS: tuple[str, ...] = (
    "park_date", "year", "month", "day", "day_of_week", "quarter", "week_of_year", "day_of_year",
    "month_name", "month_mmm", "day_of_week_name", "day_of_week_ddd",
    "holiday_code", "holiday_name", "date_group_id",
)


def _as_dates(dates: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.Series(dates)).dt.normalize().astype("datetime64[ns]")


def easter_sundays(dates: pd.Series) -> pd.Series:
    """Easter Sunday (Western, anonymous Gregorian algorithm) of each date's year."""
    years = dates.dt.year
    # One dateutil call per distinct year (a few dozen), then a vectorized map.
    by_year = {int(y): pd.Timestamp(easter(int(y))) for y in years.unique()}
    return years.map(by_year).astype("datetime64[ns]")


def holiday_codes(dates: pd.Series) -> pd.Series:
    """Holiday code per date (rules in a fixed order, later ones overwrite earlier), NONE if none.

    A Presidents' Day followed by Mardi Gras becomes the pair PMP (Monday) / PMM (Tuesday).
    The result has the index of `dates`.
    """
    d = _as_dates(dates)
    m, dd, dow = d.dt.month, d.dt.day, d.dt.dayofweek + 1  # ISO: Monday = 1
    from_easter = (d - easter_sundays(d)).dt.days
    monday = dow == 1
    rules: list[tuple[str, pd.Series]] = [
        ("NYD", (m == 1) & (dd == 1)),
        ("MLK", (m == 1) & monday & dd.between(15, 21)),
        ("PRS", (m == 2) & monday & dd.between(15, 21)),
        ("MGR", from_easter == -47),
        ("ASH", from_easter == -46),
        ("GFR", from_easter == -2),
        ("EST", from_easter == -1),
        ("ESS", from_easter == 0),
        ("ESM", from_easter == 1),
        ("MEM", (m == 5) & monday & dd.between(25, 31)),
        ("IND", (m == 7) & (dd == 4)),
        ("LAB", (m == 9) & monday & dd.between(1, 7)),
        ("COL", (m == 10) & monday & dd.between(8, 14)),
        ("HAL", (m == 10) & (dd == 31)),
        ("NJC", (m == 11) & dow.between(2, 6) & dd.between(2, 8)),
        ("VET", (m == 11) & (dd == 11)),
        ("THK", (m == 11) & (dow == 4) & dd.between(22, 28)),
        ("CME", (m == 12) & (dd == 24)),
        ("CMD", (m == 12) & (dd == 25)),
        ("BOX", (m == 12) & (dd == 26)),
        ("NYE", (m == 12) & (dd == 31)),
    ]
    codes = np.full(len(d), NO_HOLIDAY, dtype=object)
    for code, mask in rules:
        codes[mask.to_numpy()] = code
    # Tested on the dates themselves (not on neighbouring rows) so any set of dates works.
    pmp = (codes == "PRS") & (from_easter == -48).to_numpy()  # tomorrow is Mardi Gras
    pmm = (codes == "MGR") & ((m == 2) & (dow == 2) & (dd - 1).between(15, 21)).to_numpy()
    codes[pmp] = "PMP"
    codes[pmm] = "PMM"
    return pd.Series(codes, index=d.index, name="holiday_code")


def date_group_ids(dates: pd.Series, holiday_codes: pd.Series) -> pd.Series:
    """date_group_id per date (upper case), aligned on the index of `dates`."""
    d = _as_dates(dates)
    codes = pd.Series(np.asarray(holiday_codes, dtype=object), index=d.index)
    m, dd = d.dt.month, d.dt.day
    mmm = pd.Series(np.array([n[:3].upper() for n in MONTH_NAMES])[m - 1], index=d.index)
    ddd = pd.Series(np.array([n[:3].upper() for n in DAY_NAMES])[d.dt.dayofweek], index=d.index)
    week = pd.Series(
        np.select([dd <= 7, dd <= 14, dd <= 21], ["WEEK1", "WEEK2", "WEEK3"], "WEEK4OR5"),
        index=d.index,
    )
    good_friday = easter_sundays(d) - pd.Timedelta(days=2)
    prefix = pd.Series(
        np.where(m.isin([3, 4]), np.where(d >= good_friday, "AFTER_EASTER_", "BEFORE_EASTER_"), ""),
        index=d.index,
    )
    group = prefix + mmm + "_" + week + "_" + ddd
    group = codes.map(HOLIDAY_GROUP_IDS).fillna(group)
    group = group.mask(codes == "NJC", "JERSEY_WEEK_" + ddd)
    # Dec 27-30 override everything.
    late_dec = (m == 12) & dd.between(27, 30)
    group = group.mask(late_dec, "DEC" + dd.astype(str))
    return group.rename("date_group_id")


def build_calendar(
    as_of: date, horizon_days: int = 730, start: date = CALENDAR_START
) -> pd.DataFrame:
    """dim_calendar: one row per date from `start` to `as_of + horizon_days` (inclusive).

    `park_date` is datetime64[ns] at midnight (store it as DATE).
    """
    dates = pd.Series(pd.date_range(start, as_of + timedelta(days=horizon_days), freq="D"))
    codes = holiday_codes(dates)
    month, dow0 = dates.dt.month, dates.dt.dayofweek
    cal = pd.DataFrame({
        "park_date": dates,
        "year": dates.dt.year.astype("int32"),
        "month": month.astype("int32"),
        "day": dates.dt.day.astype("int32"),
        "day_of_week": (dow0 + 1).astype("int32"),
        "quarter": dates.dt.quarter.astype("int32"),
        "week_of_year": dates.dt.isocalendar().week.astype("int32"),
        "day_of_year": dates.dt.dayofyear.astype("int32"),
        "month_name": np.array(MONTH_NAMES)[month - 1],
        "month_mmm": np.array([n[:3] for n in MONTH_NAMES])[month - 1],
        "day_of_week_name": np.array(DAY_NAMES)[dow0],
        "day_of_week_ddd": np.array([n[:3] for n in DAY_NAMES])[dow0],
        "holiday_code": codes,
        "holiday_name": codes.map(HOLIDAY_NAMES).fillna("None"),
        "date_group_id": date_group_ids(dates, codes),
    })
    return cal.loc[:, list(CALENDAR_COLUMNS)]

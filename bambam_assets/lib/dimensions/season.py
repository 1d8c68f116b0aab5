"""The season dimension (the legacy dimseason): a season label and a season_year per date.

Seasons are derived from the calendar's date_group_id: fixed Christmas peak, windows around
holidays, a combined Presidents' Day / Mardi Gras week, then Easter halves and meteorological
seasons for every remaining day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEASON_COLUMNS: tuple[str, ...] = ("park_date", "season", "season_year")

# (regex on date_group_id, season, days before, days after), applied in this order; a day keeps
# the first season it gets. The legacy MARATHON rule is left out: no date_group_id contains it.
HOLIDAY_WINDOWS: tuple[tuple[str, str, int, int], ...] = (
    ("MARTIN_LUTHER|MLK", "MLK_JR_DAY", 3, 2),
    ("PRESIDENTS", "PRESIDENTS_DAY", 3, 2),
    ("MARDI_GRAS", "MARDI_GRAS", 3, 2),
    ("MEMORIAL", "MEMORIAL_DAY", 3, 2),
    ("LABOR", "LABOR_DAY", 3, 2),
    ("THANKSGIVING", "THANKSGIVING", 1, 1),
    ("CHRISTMAS|NEW_YEAR|BOXING", "CHRISTMAS", 1, 1),
    ("EASTER_MONDAY|EASTER_SATURDAY|EASTER_SUNDAY|GOOD_FRIDAY", "EASTER", 1, 1),
    ("JERSEY", "JERSEY_WEEK", 1, 1),
    ("HALLOWEEN", "HALLOWEEN", 1, 1),
    ("VETERANS", "VETERANS_DAY", 1, 1),
    ("COLUMBUS", "COLUMBUS_DAY", 1, 1),
)

# Days still without a season, by date_group_id, first match wins.
DEFAULT_SEASONS: tuple[tuple[str, str], ...] = (
    ("AFTER_EASTER", "AFTER_EASTER"),
    ("BEFORE_EASTER", "BEFORE_EASTER"),
    ("MAY_WEEK", "SPRING"),
    ("(?:JUN|JUL|AUG)_WEEK|INDEPENDENCE", "SUMMER"),
    ("(?:SEP|OCT|NOV)_WEEK", "AUTUMN"),
    ("(?:DEC|JAN|FEB)_WEEK", "WINTER"),
)
# Safety net by month for a day no rule reached (none is expected with the rules above).
_MONTH_SEASON = np.array(["WINTER", "WINTER", "SPRING", "SPRING", "SPRING", "SUMMER", "SUMMER",
                          "SUMMER", "AUTUMN", "AUTUMN", "AUTUMN", "WINTER"], dtype=object)

PRESIDENTS_DAY_IDS = ("PRESIDENTS_DAY", "PRESIDENTS_DAY_WITH_MARDI_GRAS")
MARDI_GRAS_IDS = ("MARDI_GRAS", "MARDI_GRAS_WITH_PRESIDENTS_DAY")


def _window(anchors: pd.Series, before: int, after: int) -> pd.DatetimeIndex:
    """Every date from `before` days before to `after` days after each anchor date."""
    if anchors.empty:
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(
        np.concatenate([(anchors + pd.Timedelta(days=k)).to_numpy()
                        for k in range(-before, after + 1)])
    )


def build_season(calendar: pd.DataFrame) -> pd.DataFrame:
    """dim_season: one row per date of `calendar` (needs park_date, date_group_id), date order."""
    cal = calendar.loc[:, ["park_date", "date_group_id"]].sort_values("park_date")
    cal = cal.reset_index(drop=True)
    d = pd.to_datetime(cal["park_date"]).astype("datetime64[ns]")
    group = cal["date_group_id"].astype(str)
    m, dd = d.dt.month, d.dt.day
    season = pd.Series(None, index=cal.index, dtype=object)

    peak = ((m == 12) & (dd >= 27)) | ((m == 1) & (dd == 1))
    season[peak] = "CHRISTMAS_PEAK"

    for pattern, label, before, after in HOLIDAY_WINDOWS:
        hits = d[group.str.contains(pattern, regex=True)]
        inside = d.isin(_window(hits, before, after))
        season = season.mask(inside & season.isna(), label)

    # A Presidents' Day with a Mardi Gras within 3 days: the 7 days around it form one season.
    presidents = d[group.isin(PRESIDENTS_DAY_IDS)]
    mardi_gras = pd.DatetimeIndex(d[group.isin(MARDI_GRAS_IDS)])
    near_mardi_gras = np.zeros(len(presidents), dtype=bool)
    for k in range(-3, 4):
        near_mardi_gras |= (presidents + pd.Timedelta(days=k)).isin(mardi_gras).to_numpy()
    season[d.isin(_window(presidents[near_mardi_gras], 3, 3))] = "PRESIDENTS_DAY_MARDI_GRAS"

    blank = season.isna()
    defaults = np.select(
        [group.str.contains(p, regex=True) for p, _ in DEFAULT_SEASONS],
        [s for _, s in DEFAULT_SEASONS],
        default=None,
    )
    season = season.mask(blank, pd.Series(defaults, index=cal.index))
    season = season.fillna(pd.Series(_MONTH_SEASON[m - 1], index=cal.index))

    # The Christmas of December Y runs into January Y+1 but belongs to year Y.
    year = d.dt.year - ((m == 1) & season.isin(["CHRISTMAS", "CHRISTMAS_PEAK"])).astype(int)
    return pd.DataFrame({
        "park_date": d,
        "season": season.astype(str),
        "season_year": season.astype(str) + "_" + year.astype(str),
    })

"""Demo data: the park calendar (crowd level, park hours, EMH, hard-ticket events) of each day.

Everything is vectorized over the days of one park; loops run over years or event kinds only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import PARKS, PROPERTY_OF_PARK, tz_of_park

# Regular (non-EMH) hours of an ordinary day, minutes after local midnight of the park date.
BASE_HOURS: dict[str, tuple[int, int]] = {
    "MK": (540, 1260), "EP": (540, 1260), "HS": (540, 1260), "AK": (480, 1140),
    "BB": (600, 1020), "TL": (600, 1020), "DL": (480, 1380), "CA": (480, 1320),
    "UF": (540, 1260), "IA": (540, 1260), "EU": (540, 1260), "USH": (540, 1200),
    "TDL": (540, 1260), "TDS": (540, 1260),
}
# The latest close we ever write: 01:00 the next day. DST switches happen at 02:00, so every
# moment of a park day shares the UTC offset of its noon.
LATEST_CLOSE = 1500


@dataclass(frozen=True)
class Event:
    """A seasonal event: a hard-ticket party shortens the day guests' hours on its nights."""

    park: str
    abbrev: str
    code: str
    name: str
    hard_ticket: bool
    first_md: int  # month*100 + day, inclusive
    last_md: int
    weekdays: tuple[int, ...]  # Monday = 0
    open_min: int
    close_min: int


EVENTS: tuple[Event, ...] = (
    Event("MK", "MNSSHP", "WDW028", "Mickey's Not-So-Scary Halloween Party", True,
          809, 1031, (1, 4, 6), 1140, 1440),
    Event("MK", "MVMCP", "WDW029", "Mickey's Very Merry Christmas Party", True,
          1108, 1220, (0, 1, 3, 4), 1140, 1440),
    Event("EP", "EFW", "WDW030", "EPCOT International Food & Wine Festival", False,
          829, 1120, tuple(range(7)), 660, 1260),
    Event("EP", "EFG", "WDW031", "EPCOT International Flower & Garden Festival", False,
          301, 531, tuple(range(7)), 600, 1260),
    Event("CA", "OBB", "DLR010", "Oogie Boogie Bash", True, 905, 1031, (1, 3, 6), 1080, 1380),
    Event("UF", "HHN", "UOR005", "Halloween Horror Nights", True, 901, 1031, (3, 4, 5), 1110, 1500),
)


def easter(year: int) -> date:
    """Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """n-th (1-based; -1 = last) weekday of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _holiday_boost(dates: pd.DatetimeIndex) -> np.ndarray:
    """Crowd multiplier of public holidays and the weeks around Easter and Thanksgiving."""
    boost = np.ones(len(dates))
    for year in range(dates.year.min(), dates.year.max() + 1):
        days: list[tuple[date, int, float]] = [  # (day, days after it also boosted, factor)
            (_nth_weekday(year, 1, 0, 3), 0, 1.2), (_nth_weekday(year, 2, 0, 3), 0, 1.2),
            (_nth_weekday(year, 5, 0, -1), 0, 1.2), (date(year, 7, 4), 0, 1.35),
            (_nth_weekday(year, 9, 0, 1), 0, 1.15), (_nth_weekday(year, 10, 0, 2), 0, 1.1),
            (date(year, 11, 11), 0, 1.1), (easter(year) - timedelta(days=7), 14, 1.3),
            (_nth_weekday(year, 11, 3, 4) - timedelta(days=5), 8, 1.35),
        ]
        for day, span, factor in days:
            lo, hi = pd.Timestamp(day), pd.Timestamp(day + timedelta(days=span))
            boost[(dates >= lo) & (dates <= hi)] *= factor
    return boost


def season_factor(dates: pd.DatetimeIndex, prop: str) -> np.ndarray:
    """Crowd multiplier of the time of year and day of week, without noise (1.0 = ordinary)."""
    md = dates.month * 100 + dates.day
    f = np.ones(len(dates))
    f[(md >= 1220) | (md <= 101)] = 1.6
    f[(md >= 1227) & (md <= 1231)] = 1.75
    f[(md >= 102) & (md <= 105)] = 1.2
    f[(md >= 106) & (md <= 210)] = 0.85
    f[(md >= 308) & (md <= 420)] = 1.2  # spring break
    f[(md >= 610) & (md <= 810)] = 1.25  # summer
    f[(md >= 815) & (md <= 930)] = 0.75
    if prop == "tdr":
        f[(md >= 429) & (md <= 505)] = 1.5  # Golden Week
    dow = np.array([1.02, 0.95, 0.93, 0.95, 1.0, 1.12, 1.05])[dates.dayofweek]
    return f * dow * _holiday_boost(dates)


def utc_offset_minutes(dates: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """UTC offset (minutes) of each date's local noon: DST-correct for a whole park day."""
    noon = (dates + pd.Timedelta(hours=12)).tz_localize(tz)
    return ((noon.tz_localize(None) - noon.tz_convert("UTC").tz_localize(None))
            // pd.Timedelta(minutes=1)).to_numpy().astype(np.int64)


def offset_strings(offset_min: np.ndarray) -> np.ndarray:
    """`-05:00` / `+09:00` for offsets in minutes (formatted once per distinct offset)."""
    uniq, inv = np.unique(np.asarray(offset_min, dtype=np.int64), return_inverse=True)
    txt = [f"{'-' if o < 0 else '+'}{abs(o) // 60:02d}:{abs(o) % 60:02d}" for o in uniq.tolist()]
    return np.array(txt + [""], dtype=object)[inv.ravel()] if len(uniq) else \
        np.zeros(0, dtype=object)


def park_days(park: str, first: date, last: date, seed: int) -> pd.DataFrame:
    """One row per park date in [first, last]: crowd `load`, hours and events of the day.

    Columns: date (datetime64), load, open, close, open_emh, close_emh (minutes after local
    midnight of the park date; close may pass 1440), emh_morning, emh_evening, blank (no hours
    published: the park did not operate), event (hard-ticket event abbrev or ''), fireworks,
    offset (UTC offset minutes).
    """
    rng = np.random.default_rng([seed, PARKS.index(park), 0, 1])
    dates = pd.date_range(first, last, freq="D")
    n = len(dates)
    prop = PROPERTY_OF_PARK[park]
    load = season_factor(dates, prop) * rng.lognormal(0.0, 0.08, n)
    base_open, base_close = BASE_HOURS[park]
    # Busier days get longer hours, quiet days shorter ones, in whole hours.
    extra = np.select([load > 1.75, load > 1.55, load > 1.3, load > 1.1, load < 0.8],
                      [4, 3, 2, 1, -1], 0)
    close = np.minimum(base_close + 60 * extra, LATEST_CLOSE)
    open_ = base_open - 60 * (load > 1.4)
    emh_morning = rng.random(n) < 1 / 3
    emh_evening = (rng.random(n) < 0.15) & (close + 120 <= LATEST_CLOSE)
    close_emh = close + 120 * emh_evening
    event = np.full(n, "", dtype=object)
    md = dates.month * 100 + dates.day
    for ev in EVENTS:
        if ev.park != park or not ev.hard_ticket:
            continue
        on = (md >= ev.first_md) & (md <= ev.last_md) & np.isin(dates.dayofweek, ev.weekdays)
        if ev.abbrev == "MNSSHP":
            on |= md == 1031
        event[on] = ev.abbrev
        close[on] = ev.open_min - 60
        close_emh[on] = ev.close_min
        emh_evening[on] = False
    blank = rng.random(n) < 0.004
    return pd.DataFrame({
        "date": dates, "load": load, "open": open_, "close": close,
        "open_emh": open_ - 60 * emh_morning, "close_emh": close_emh,
        "emh_morning": emh_morning, "emh_evening": emh_evening, "blank": blank,
        "event": event, "fireworks": rng.random(n) < (0.2 if park == "AK" else 0.9),
        "offset": utc_offset_minutes(dates, tz_of_park(park)),
    })


def iso_times(dates: pd.Series, minutes: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """`YYYY-MM-DDTHH:MM:SS±HH:MM` of park date + minutes (a time past midnight carries the
    next calendar date)."""
    wall = dates.to_numpy().astype("datetime64[m]") + minutes.astype("timedelta64[m]")
    return np.datetime_as_string(wall, unit="s").astype(object) + offset_strings(offset)


_CLOCK = np.array([f"{m // 60:02d}:{m % 60:02d}" for m in range(LATEST_CLOSE + 1)], dtype=object)


def clock_strings(minutes: np.ndarray) -> np.ndarray:
    """`HH:MM` on the park-day clock (`25:00` = 01:00 the next day)."""
    return _CLOCK[np.asarray(minutes, dtype=np.int64)]

"""Donor hours for future days without known hours, and the assembled dim_park_hours.

A future day of a park without official (or metatable) hours borrows the hours of the most
similar earlier day of the same park, its "donor" (the legacy donor imputation), with confidence
w * (1.0 if the date_group_id matches else 0.7), w = 1 / (1 + days_ago / 365).

Legacy quirk fixed: the legacy ranked every candidate by that score alone, so a non-matching
day from yesterday (0.7) beat a matching day older than ~156 days. Here similarity comes first:
the most recent donor with the same date_group_id wins; only a day with no such donor falls back
to the most recent day with the same weekday and month, then the same weekday, then any day.
Within a tier, most recent = highest score. Donors are never later than as_of (the legacy's
future donors gave w > 1 and divided by zero at days_ago = -365).
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from bambam_assets.lib.core.parks import tz_of_park
from bambam_assets.lib.dimensions.calendar import date_group_ids, holiday_codes
from bambam_assets.lib.dimensions.park_hours import (
    DONOR,
    METATABLE,
    OFFICIAL,
    TIME_COLUMNS,
    VALUE_COLUMNS,
    normalize_hours,
)
from bambam_assets.lib.dimensions.parsing import localize_wall_clock

PARK_HOURS_COLUMNS: tuple[str, ...] = (
    "park_code", "park_date", *VALUE_COLUMNS, "source", "confidence", "donor_date",
)
MATCH_FACTOR, OTHER_FACTOR = 1.0, 0.7
# (calendar keys a donor must share with the target besides the park, score factor), in order.
DONOR_TIERS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("date_group_id",), MATCH_FACTOR),
    (("day_of_week", "month"), OTHER_FACTOR),
    (("day_of_week",), OTHER_FACTOR),
    ((), OTHER_FACTOR),
)


def _with_calendar_keys(frame: pd.DataFrame, calendar: pd.DataFrame) -> pd.DataFrame:
    """Add date_group_id (from the calendar; computed for dates it lacks), day_of_week, month."""
    cal = pd.DataFrame({
        "park_date": pd.to_datetime(calendar["park_date"], cache=False).astype("datetime64[ns]"),
        "date_group_id": calendar["date_group_id"].astype(object),
    }).drop_duplicates("park_date")
    out = frame.merge(cal, on="park_date", how="left")
    missing = out["date_group_id"].isna()
    if missing.any():
        days = out.loc[missing, "park_date"]
        out.loc[missing, "date_group_id"] = date_group_ids(days, holiday_codes(days))
    out["day_of_week"] = out["park_date"].dt.dayofweek + 1
    out["month"] = out["park_date"].dt.month
    return out


def _move_to_target_day(picked: pd.DataFrame) -> pd.DataFrame:
    """Carry each donor's local clock times (offset from its park-day midnight) to the target day.

    Done in the park's time zone, so 09:00 stays 09:00 local across a DST change.
    """
    out = picked.copy()
    for park in out["park_code"].unique():  # one pass per park (time zone)
        sel = out["park_code"] == park
        tz = tz_of_park(park)
        for name in TIME_COLUMNS:
            wall = out.loc[sel, name].dt.tz_convert(tz).dt.tz_localize(None)
            offset = wall - out.loc[sel, "donor_date"]
            out.loc[sel, name] = localize_wall_clock(out.loc[sel, "park_date"] + offset, tz)
    return out


def donor_hours(
    known: pd.DataFrame, calendar: pd.DataFrame, as_of: date, horizon_days: int = 730
) -> pd.DataFrame:
    """Donor rows: one per (park_code, park_date) for each park in `known` and each date
    as_of+1 .. as_of+horizon_days that `known` has no hours for.

    `known`: hours rows (official/metatable) of any dates; only those dated <= as_of donate.
    `calendar`: dim_calendar (park_date, date_group_id). Columns PARK_HOURS_COLUMNS with
    source 'donor', confidence = the donor's score, donor_date. A park with no day <= as_of
    gets no donor rows.
    """
    known = normalize_hours(known)
    as_of_ts = pd.Timestamp(as_of)
    parks = sorted(known["park_code"].unique())
    dates = pd.date_range(as_of + timedelta(days=1), periods=horizon_days, freq="D")
    targets = pd.MultiIndex.from_product(
        [parks, dates], names=["park_code", "park_date"]
    ).to_frame(index=False)
    targets["park_date"] = targets["park_date"].astype("datetime64[ns]")
    targets = targets.merge(known[["park_code", "park_date"]].drop_duplicates(),
                            how="left", indicator=True)
    targets = _with_calendar_keys(targets[targets["_merge"] == "left_only"]
                                  .drop(columns="_merge"), calendar)

    donors = known.loc[known["park_date"] <= as_of_ts, ["park_code", "park_date", *VALUE_COLUMNS]]
    donors = _with_calendar_keys(donors, calendar).rename(columns={"park_date": "donor_date"})
    donors = donors.sort_values("donor_date")

    picks, remaining = [], targets[["park_code", "park_date", "date_group_id",
                                    "day_of_week", "month"]]
    for keys, factor in DONOR_TIERS:
        if remaining.empty or donors.empty:
            break
        on = ["park_code", *keys]
        latest = donors.drop_duplicates(on, keep="last")[[*on, "donor_date", *VALUE_COLUMNS]]
        hit = remaining[["park_code", "park_date", *keys]].merge(latest, on=on, how="inner")
        days_ago = (as_of_ts - hit["donor_date"]).dt.days
        hit["confidence"] = factor / (1.0 + days_ago / 365.0)
        picks.append(hit.drop(columns=list(keys)))
        left = remaining.merge(hit[["park_code", "park_date"]], how="left", indicator=True)
        remaining = left[left["_merge"] == "left_only"].drop(columns="_merge")

    if not picks:
        return _typed(pd.DataFrame(columns=list(PARK_HOURS_COLUMNS)))
    out = _move_to_target_day(pd.concat(picks, ignore_index=True))
    out["source"] = DONOR
    return _typed(out)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = normalize_hours(frame.reindex(columns=list(PARK_HOURS_COLUMNS)))
    out["confidence"] = out["confidence"].astype(float)
    out["donor_date"] = pd.to_datetime(out["donor_date"], cache=False).astype("datetime64[ns]")
    out["park_code"] = out["park_code"].astype(object)
    out["source"] = out["source"].astype(object)
    return out.sort_values(["park_code", "park_date"], ignore_index=True)


def assemble_park_hours(
    official: pd.DataFrame, metatable_hours: pd.DataFrame, calendar: pd.DataFrame,
    as_of: date, horizon_days: int = 730,
) -> pd.DataFrame:
    """dim_park_hours: one row per (park_code, park_date).

    Official hours (as known at as_of, e.g. hours_as_of(versions, as_of)) first; metatable hours
    fill the days the export lacks; donors fill every other day up to as_of + horizon_days.
    Confidence 1.0 for official and metatable rows (recorded hours), the score for donors.
    """
    off = normalize_hours(official).assign(source=OFFICIAL, confidence=1.0, donor_date=pd.NaT)
    meta = normalize_hours(metatable_hours)
    meta = meta.merge(off[["park_code", "park_date"]], how="left", indicator=True)
    meta = meta[meta["_merge"] == "left_only"].drop(columns="_merge")
    meta = meta.assign(source=METATABLE, confidence=1.0, donor_date=pd.NaT)
    known = pd.concat([_typed(off), _typed(meta)], ignore_index=True)
    donors = donor_hours(known, calendar, as_of, horizon_days)
    return _typed(pd.concat([known, donors], ignore_index=True))

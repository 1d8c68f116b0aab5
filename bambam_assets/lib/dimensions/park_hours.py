"""Park hours (the legacy dimparkhours, flat and versioned): official hours, metatable hours and
their version history.

Every time is a tz-aware UTC instant; a close after midnight is an instant on the next calendar
day. One "hours row" has the columns HOURS_ROW_COLUMNS; `dim_park_hours_versions` adds
`valid_from`, `valid_until` (NULL while in force) and `source_file`.
Donor hours for future days live in park_hours_donor.py.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import PARKS, tz_of_park
from bambam_assets.lib.dimensions.events import clean_metatable
from bambam_assets.lib.dimensions.parsing import (
    blank_to_na,
    clock_minutes,
    localize_wall_clock,
    parse_dates,
    to_bool,
)

OFFICIAL, METATABLE, DONOR = "official", "metatable", "donor"
TIME_COLUMNS: tuple[str, ...] = (
    "opening_time", "closing_time", "opening_time_with_emh", "closing_time_with_emh",
)
FLAG_COLUMNS: tuple[str, ...] = ("emh_morning", "emh_evening")
VALUE_COLUMNS: tuple[str, ...] = (*TIME_COLUMNS, *FLAG_COLUMNS)
HOURS_ROW_COLUMNS: tuple[str, ...] = ("park_code", "park_date", *VALUE_COLUMNS, "source")
VERSION_COLUMNS: tuple[str, ...] = (*HOURS_ROW_COLUMNS, "valid_from", "valid_until", "source_file")
# Where both exist for a park day, official hours beat the metatable's.
SOURCE_RANK: dict[str, int] = {OFFICIAL: 0, METATABLE: 1, DONOR: 2}

_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _utc(value: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def normalize_hours(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce an hours frame (e.g. read back from DuckDB) to the canonical dtypes.

    park_date datetime64[ns] at midnight, times datetime64[ns, UTC], flags bool.
    """
    out = frame.copy()
    for name in ("park_code", "park_date", *VALUE_COLUMNS):
        if name not in out.columns:
            out[name] = pd.NA
    # cache=False: the values are already dates; pandas' uniqueness probe iterates them in Python
    out["park_date"] = (pd.to_datetime(out["park_date"], cache=False).dt.normalize()
                        .astype("datetime64[ns]"))
    for name in TIME_COLUMNS + tuple(c for c in ("valid_from", "valid_until") if c in out):
        out[name] = pd.to_datetime(out[name], utc=True, cache=False).astype("datetime64[ns, UTC]")
    for name in FLAG_COLUMNS:
        out[name] = out[name].fillna(False).astype(bool)
    return out


def _instants(text: pd.Series, park: pd.Series) -> pd.Series:
    """ISO-8601 times -> UTC; a time without offset is the park's local wall clock."""
    text = blank_to_na(text)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    with_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    if with_offset.any():
        out[with_offset] = pd.to_datetime(
            text[with_offset], utc=True, format="ISO8601", errors="coerce"
        )
    naive = text.notna() & ~with_offset
    for code in park[naive].dropna().unique():  # one pass per park (time zone)
        sel = naive & (park == code)
        local = pd.to_datetime(text[sel], format="ISO8601", errors="coerce")
        out[sel] = localize_wall_clock(local, tz_of_park(code))
    return out


def _next_day_if_not_after(close: pd.Series, open_: pd.Series) -> pd.Series:
    # A close written on the opening's calendar day though it is after midnight: move it a day.
    not_after = close.notna() & open_.notna() & (close <= open_)
    return close.mask(not_after, close + pd.Timedelta(days=1))


def official_hours_from_export(raw: pd.DataFrame) -> pd.DataFrame:
    """Official hours from `{prop}_park_hours.csv` rows: one row per (park_code, park_date).

    Rows of an unknown park, without a date, or with a blank open or close are dropped (the
    legacy wrote a 1999 sentinel instead); a blank EMH time is the regular time; EMH flags
    blank -> False. A repeated (park, date) keeps its last row. source = 'official'.
    """
    park = blank_to_na(raw["park"]).str.upper()
    date_column = "date" if "date" in raw.columns else "park_day_id"
    out = pd.DataFrame({"park_code": park, "park_date": parse_dates(raw[date_column])})
    for name, column in (
        ("opening_time", "opening_time"), ("closing_time", "closing_time"),
        ("opening_time_with_emh", "opening_time_with_emh"),
        ("closing_time_with_emh", "closing_time_with_emh_or_party"),
    ):
        source = raw[column] if column in raw.columns else pd.Series("", index=raw.index)
        out[name] = _instants(source, park)
    out["closing_time"] = _next_day_if_not_after(out["closing_time"], out["opening_time"])
    out["opening_time_with_emh"] = out["opening_time_with_emh"].fillna(out["opening_time"])
    out["closing_time_with_emh"] = _next_day_if_not_after(
        out["closing_time_with_emh"].fillna(out["closing_time"]), out["opening_time_with_emh"]
    )
    for name in FLAG_COLUMNS:
        out[name] = to_bool(raw[name]) if name in raw.columns else False
    out["source"] = OFFICIAL
    keep = (out["park_code"].isin(PARKS) & out["park_date"].notna()
            & out["opening_time"].notna() & out["closing_time"].notna())
    out = out[keep].drop_duplicates(["park_code", "park_date"], keep="last")
    out["park_code"] = out["park_code"].astype(object)
    return out.loc[:, list(HOURS_ROW_COLUMNS)].sort_values(["park_code", "park_date"],
                                                           ignore_index=True)


def hours_from_metatable(meta: pd.DataFrame) -> pd.DataFrame:
    """Hours from the metatable's `{P}OPEN`/`{P}CLOSE` park-day clock (`25:00` = 01:00 next day).

    One row per (park_code, park_date) with both times; `meta` is dim_metatable (or the raw
    export, cleaned first). EMH flags from `{P}EMHMORN`/`{P}EMHEVE`; the metatable has no EMH
    times, so the *_with_emh times equal the regular ones. source = 'metatable'.
    """
    if "park_date" not in meta.columns:
        meta = clean_metatable(meta)
    frames = []
    for park in PARKS:  # one pass per park: its columns and its time zone
        if f"{park}OPEN" not in meta.columns or f"{park}CLOSE" not in meta.columns:
            continue
        opens = clock_minutes(meta[f"{park}OPEN"].astype("string"))
        closes = clock_minutes(meta[f"{park}CLOSE"].astype("string"))
        keep = meta["park_date"].notna() & opens.notna() & closes.notna()
        day = pd.to_datetime(meta.loc[keep, "park_date"], cache=False).astype("datetime64[ns]")
        tz = tz_of_park(park)
        opening = localize_wall_clock(day + pd.to_timedelta(opens[keep], unit="min"), tz)
        closing = localize_wall_clock(day + pd.to_timedelta(closes[keep], unit="min"), tz)
        closing = _next_day_if_not_after(closing, opening)
        flags = {
            name: to_bool(meta.loc[keep, column].astype("string")) if column in meta.columns
            else pd.Series(False, index=day.index)
            for name, column in (("emh_morning", f"{park}EMHMORN"),
                                 ("emh_evening", f"{park}EMHEVE"))
        }
        frames.append(pd.DataFrame({
            "park_code": park, "park_date": day,
            "opening_time": opening, "closing_time": closing,
            "opening_time_with_emh": opening, "closing_time_with_emh": closing,
            **flags, "source": METATABLE,
        }))
    if not frames:
        return normalize_hours(pd.DataFrame(columns=list(HOURS_ROW_COLUMNS)))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["park_code", "park_date"], ignore_index=True)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    return ((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)


def merge_versions(
    versions: pd.DataFrame, current: pd.DataFrame, now: datetime, source_file: str
) -> pd.DataFrame:
    """dim_park_hours_versions after one export: one row per (park, date, source, version).

    For each (park, date, source) of `current`: if no version is open, a new one opens
    (valid_from = now); if the open one has other hours or EMH flags, it closes
    (valid_until = now) and a new one opens; if unchanged, nothing is added. Keys absent from
    `current` keep their open version (the export drops past days, their hours stay known).
    """
    now_ts = _utc(now)
    if versions is None or versions.empty:
        versions = pd.DataFrame(columns=list(VERSION_COLUMNS))
    versions = normalize_hours(versions.reindex(columns=list(VERSION_COLUMNS)))
    versions = versions.reset_index(drop=True)
    key = ["park_code", "park_date", "source"]
    current = normalize_hours(current.loc[:, list(HOURS_ROW_COLUMNS)])
    current = current.drop_duplicates(key, keep="last")

    open_versions = versions.loc[versions["valid_until"].isna(), key + list(VALUE_COLUMNS)]
    merged = current.merge(
        open_versions.reset_index(names="_row"), on=key, how="left",
        suffixes=("", "_old"), indicator=True,
    )
    unchanged = np.ones(len(merged), dtype=bool)
    for name in VALUE_COLUMNS:
        unchanged &= _same(merged[name], merged[f"{name}_old"])
    found = (merged["_merge"] == "both").to_numpy()
    changed = found & ~unchanged
    opened = merged.loc[~found | changed, list(HOURS_ROW_COLUMNS)].assign(
        valid_from=now_ts, valid_until=pd.NaT, source_file=source_file
    )
    closed = versions.copy()
    closed.loc[merged.loc[changed, "_row"].astype(int).to_numpy(), "valid_until"] = now_ts
    out = pd.concat([closed, normalize_hours(opened)], ignore_index=True)
    out = normalize_hours(out)
    return out.sort_values(["park_code", "park_date", "source", "valid_from"], ignore_index=True)


def hours_as_of(versions: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The hours in force at `as_of`: one row per (park_code, park_date).

    In force = valid_from <= as_of < valid_until (or still open). If both an official and a
    metatable version are in force for a day, the official one wins. A naive `as_of` is UTC.
    """
    at = _utc(as_of)
    v = normalize_hours(versions)
    live = (v["valid_from"] <= at) & (v["valid_until"].isna() | (at < v["valid_until"]))
    v = v[live].assign(_rank=lambda f: f["source"].map(SOURCE_RANK).fillna(9))
    v = v.sort_values(["park_code", "park_date", "_rank", "valid_from"],
                      ascending=[True, True, True, False])
    v = v.drop_duplicates(["park_code", "park_date"], keep="first")
    return v.loc[:, list(HOURS_ROW_COLUMNS)].reset_index(drop=True)

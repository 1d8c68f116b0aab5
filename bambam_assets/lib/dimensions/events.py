"""Event and metatable dimensions: event days, the event list, the metatable (the legacy
dimeventdays, dimevents and dimmetatable).

None of these feed the models; they are cleaned, typed copies for analysis and for the
metatable's park hours (see park_hours.hours_from_metatable).
"""

from __future__ import annotations

import re

import pandas as pd

from bambam_assets.lib.dimensions.parsing import blank_to_na, parse_dates, to_bool

EVENT_DAY_COLUMNS: tuple[str, ...] = (
    "park_date", "park_code", "event_abbreviation", "event_opening_time", "event_closing_time",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "property_code", "event_abbreviation", "event_code", "event_name", "event_hard_ticket",
)

# As in the legacy: a metatable column is a flag if its name has one of these parts and none of the
# excluded ones (those name times and hour counts, e.g. MKEMHMORN is a flag, MKOPEN a time).
_FLAG_NAME = re.compile(r"MORN|EVE|YEST|TOM|PRDDAY|PRDNGT|FIREWK|SHWNGT|OPTIMIZERS")
_NOT_FLAG_NAME = re.compile(r"OPEN|CLOSE|T1|T2|HOURS|DT1|DT2|NT1|NT2")


def _text(raw: pd.DataFrame, name: str) -> pd.Series:
    if name not in raw.columns:
        return pd.Series(pd.NA, index=raw.index, dtype="string")
    return blank_to_na(raw[name])


def _objects(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    # Plain Python strings with None for missing: what DuckDB and Parquet expect for VARCHAR.
    for name in names:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def clean_event_days(raw: pd.DataFrame) -> pd.DataFrame:
    """dim_event_days: one row per (park_date, park_code, event_abbreviation).

    park_code is upper case and NULL when the export leaves it blank (it always does today);
    event times are kept as the export's text. Rows without a date or an event are dropped;
    a repeated key keeps its last row.
    """
    out = pd.DataFrame({
        "park_date": parse_dates(_text(raw, "date")),
        "park_code": _text(raw, "park_abbreviation").str.upper(),
        "event_abbreviation": _text(raw, "event_abbreviation").str.upper(),
        "event_opening_time": _text(raw, "event_opening_time"),
        "event_closing_time": _text(raw, "event_closing_time"),
    })
    out = out[out["park_date"].notna() & out["event_abbreviation"].notna()]
    key = ["park_date", "park_code", "event_abbreviation"]
    out = out.drop_duplicates(key, keep="last").sort_values(key, ignore_index=True)
    return _objects(out, EVENT_DAY_COLUMNS[1:])


def clean_events(raw: pd.DataFrame) -> pd.DataFrame:
    """dim_events: one row per event_code (upper case; a repeated code keeps its last row).

    property_code lower case, event_abbreviation upper case, event_hard_ticket bool (0/1).
    """
    out = pd.DataFrame({
        "property_code": _text(raw, "property_abbrev").str.lower(),
        "event_abbreviation": _text(raw, "event_abbreviation").str.upper(),
        "event_code": _text(raw, "event_code").str.upper(),
        "event_name": _text(raw, "event_name"),
        "event_hard_ticket": to_bool(raw["event_hard_ticket"]) if "event_hard_ticket" in raw
        else False,
    })
    out = out[out["event_code"].notna()].drop_duplicates("event_code", keep="last")
    out = out.sort_values("event_code", ignore_index=True)
    out["event_hard_ticket"] = out["event_hard_ticket"].astype(bool)
    return _objects(out, EVENT_COLUMNS[:4])


def is_flag_column(name: str) -> bool:
    """The legacy rule naming the metatable's boolean columns."""
    upper = name.upper()
    return bool(_FLAG_NAME.search(upper)) and not _NOT_FLAG_NAME.search(upper)


def clean_metatable(raw: pd.DataFrame) -> pd.DataFrame:
    """dim_metatable: one row per park_date (from `DATE`, MM/DD/YYYY; last row wins).

    Columns keep their export names. Flag columns (is_flag_column) become bool (blank False);
    a column whose non-blank values are all numbers becomes DOUBLE; everything else, such as
    the `HH:MM` park-day clock times (`25:00` = 01:00 next day), stays text with NULL for blank.
    """
    date_column = "DATE" if "DATE" in raw.columns else "date"
    out = {"park_date": parse_dates(raw[date_column])}
    # A loop over columns (about 490), each converted vectorized.
    for name in raw.columns:
        if name == date_column:
            continue
        if is_flag_column(name):
            out[name] = to_bool(raw[name])
            continue
        text = blank_to_na(raw[name])
        number = pd.to_numeric(text, errors="coerce")
        numeric = text.notna().any() and number.notna().eq(text.notna()).all()
        if numeric:
            out[name] = number.astype(float)
        else:
            out[name] = text.astype(object).where(text.notna(), None)
    frame = pd.DataFrame(out, index=raw.index)
    frame = frame[frame["park_date"].notna()].drop_duplicates("park_date", keep="last")
    return frame.sort_values("park_date", ignore_index=True)

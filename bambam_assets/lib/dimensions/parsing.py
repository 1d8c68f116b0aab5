"""Parsing helpers shared by the dimension cleaners: blanks, booleans, dates, park-day clocks.

Every input is a Series of strings as read with
`pd.read_csv(..., dtype=str, keep_default_na=False)`, so a missing value arrives as "" (or as NA
when a column was added by an outer union).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The legacy flag rule: a flag is true iff its trimmed, lower-cased text is one of these.
# "1.0" is added because a flag column that passed through a float round-trip reads "1.0".
TRUTHY: frozenset[str] = frozenset({"true", "1", "yes", "y", "t", "1.0"})

_BLANKS = ("", "nan")


def blank_to_na(values: pd.Series) -> pd.Series:
    """Trimmed strings (pandas `string` dtype); "", "nan" (any case) and missing become NA."""
    text = values.astype("string").str.strip()
    return text.mask(text.str.lower().isin(_BLANKS))


def to_bool(values: pd.Series) -> pd.Series:
    """Boolean flags: True iff the text is one of TRUTHY; blank or anything else is False.

    Blank is False on purpose: the legacy `bool(NaN)` made a missing flag True.
    """
    text = blank_to_na(values).str.lower()
    return text.isin(TRUTHY).fillna(False).astype(bool)


def parse_dates(values: pd.Series) -> pd.Series:
    """Calendar dates as datetime64[ns] at midnight (NaT when blank or unreadable).

    Accepts `YYYY-MM-DD` (anything after the first 10 characters, such as a time, is ignored)
    and `MM/DD/YYYY` (the metatable's format).
    """
    text = blank_to_na(values)
    iso = pd.to_datetime(
        text.str.extract(r"^(\d{4}-\d{2}-\d{2})", expand=False), format="%Y-%m-%d", errors="coerce"
    )
    us = pd.to_datetime(
        text.str.extract(r"^(\d{1,2}/\d{1,2}/\d{4})", expand=False), format="%m/%d/%Y",
        errors="coerce",
    )
    return iso.fillna(us).astype("datetime64[ns]")


def clock_minutes(values: pd.Series) -> pd.Series:
    """Minutes after midnight of a park-day clock `H:MM` / `HH:MM[:SS]` (25:00 -> 1500).

    NaN when blank or unreadable.
    """
    parts = blank_to_na(values).str.extract(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
    hours = pd.to_numeric(parts[0], errors="coerce")
    minutes = pd.to_numeric(parts[1], errors="coerce")
    seconds = pd.to_numeric(parts[2], errors="coerce").fillna(0)
    return (hours * 60 + minutes + seconds / 60).astype(float)


def localize_wall_clock(local: pd.Series, tz: str) -> pd.Series:
    """Naive local wall-clock times of one time zone -> tz-aware UTC instants.

    An ambiguous wall time (the repeated hour when DST ends) takes the first occurrence (DST);
    a non-existent one (the skipped hour when DST starts) moves forward to the first valid instant.
    """
    if local.empty:
        return local.astype("datetime64[ns, UTC]")
    first_occurrence = np.ones(len(local), dtype=bool)
    return (
        local.astype("datetime64[ns]")
        .dt.tz_localize(tz, ambiguous=first_occurrence, nonexistent="shift_forward")
        .dt.tz_convert("UTC")
    )

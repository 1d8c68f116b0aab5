"""Demo data: the park-hours, events and metatable exports, written from the park calendars."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import PROPERTY_OF_PARK
from bambam_assets.lib.demo.calendar import EVENTS, clock_strings, iso_times, season_factor

PARK_HOURS_HEADER = (
    "date", "park", "opening_time", "closing_time", "opening_time_with_emh",
    "closing_time_with_emh_or_party", "emh_morning", "emh_evening",
)
EVENT_DAYS_HEADER = (
    "date", "park_abbreviation", "event_abbreviation", "event_opening_time", "event_closing_time",
)
EVENTS_HEADER = ("property_abbrev", "event_abbreviation", "event_code", "event_name",
                 "event_hard_ticket")


def _write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def _flag(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "1", "0").astype(object)


def _iso(d: pd.DataFrame, col: str) -> np.ndarray:
    """ISO times of a calendar column, blank on days without published hours."""
    return np.where(d["blank"].to_numpy(), "",
                    iso_times(d["date"], d[col].to_numpy(), d["offset"].to_numpy()))


def write_park_hours(root: Path, days: Mapping[str, pd.DataFrame]) -> list[Path]:
    """`export/park_hours/{prop}_park_hours.csv`: one row per park and date of its calendar."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for park, d in days.items():
        blank = d["blank"].to_numpy()
        frames.setdefault(PROPERTY_OF_PARK[park], []).append(pd.DataFrame({
            "date": d["date"].dt.strftime("%Y-%m-%d"), "park": park,
            "opening_time": _iso(d, "open"), "closing_time": _iso(d, "close"),
            "opening_time_with_emh": _iso(d, "open_emh"),
            "closing_time_with_emh_or_party": _iso(d, "close_emh"),
            "emh_morning": np.where(blank, "", _flag(d["emh_morning"].to_numpy())),
            "emh_evening": np.where(blank, "", _flag(d["emh_evening"].to_numpy())),
        }))
    return [
        _write(pd.concat(f, ignore_index=True).sort_values("date", kind="stable"),
               root / "export" / "park_hours" / f"{prop}_park_hours.csv")
        for prop, f in frames.items()
    ]


def write_events(root: Path, days: Mapping[str, pd.DataFrame]) -> list[Path]:
    """`export/events/current_events.csv` (one row per event of the requested parks) and
    `current_event_days.csv` (one row per event night or festival day)."""
    events = [ev for ev in EVENTS if ev.park in days]
    ev_rows = pd.DataFrame(
        [(PROPERTY_OF_PARK[ev.park], ev.abbrev, ev.code, ev.name, int(ev.hard_ticket))
         for ev in events], columns=list(EVENTS_HEADER))
    day_frames = []
    for ev in events:
        d = days[ev.park]
        md = d["date"].dt.month * 100 + d["date"].dt.day
        on = (d["event"] == ev.abbrev) if ev.hard_ticket else (
            (md >= ev.first_md) & (md <= ev.last_md))
        on &= ~d["blank"]
        sel = d[on]
        off = sel["offset"].to_numpy()
        n = len(sel)
        day_frames.append(pd.DataFrame({
            "date": sel["date"].dt.strftime("%Y-%m-%d"), "park_abbreviation": ev.park,
            "event_abbreviation": ev.abbrev,
            "event_opening_time": iso_times(sel["date"], np.full(n, ev.open_min), off),
            "event_closing_time": iso_times(sel["date"], np.full(n, ev.close_min), off),
        }))
    event_days = (pd.concat(day_frames, ignore_index=True).sort_values("date", kind="stable")
                  if day_frames else pd.DataFrame(columns=list(EVENT_DAYS_HEADER)))
    base = root / "export" / "events"
    return [_write(event_days, base / "current_event_days.csv"),
            _write(ev_rows, base / "current_events.csv")]


def write_metatable(root: Path, days: Mapping[str, pd.DataFrame], start: date,
                    end: date) -> Path:
    """`export/metatable/current_metatable.csv`: one row per date in [start, end], per park
    OPEN/CLOSE (HH:MM park-day clock), EMHMORN/EMHEVE/FIREWK (0/1), and a ticket season per
    property."""
    dates = pd.date_range(start, end, freq="D")
    out = pd.DataFrame({"DATE": dates.strftime("%m/%d/%Y")})
    for park, d in days.items():
        d = d.set_index("date").reindex(dates)
        blank = d["blank"].to_numpy(dtype=bool)
        for col, src in (("OPEN", "open"), ("CLOSE", "close")):
            out[f"{park}{col}"] = np.where(blank, "", clock_strings(d[src].to_numpy(np.int64)))
        out[f"{park}EMHMORN"] = _flag(d["emh_morning"].to_numpy(dtype=bool) & ~blank)
        out[f"{park}EMHEVE"] = _flag(d["emh_evening"].to_numpy(dtype=bool) & ~blank)
        out[f"{park}FIREWK"] = _flag(d["fireworks"].to_numpy(dtype=bool) & ~blank)
    for prop in dict.fromkeys(PROPERTY_OF_PARK[p] for p in days):
        f = season_factor(dates, prop)
        out[f"{prop.upper()}TICKETSEASON"] = np.select(
            [f < 0.95, f < 1.2], ["value", "regular"], "peak")
    return _write(out, root / "export" / "metatable" / "current_metatable.csv")


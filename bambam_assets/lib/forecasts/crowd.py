"""The crowd calendar's scale: a 1-10 crowd level per park day from the daily WTI.

The scale is the park's own: the nine deciles of its daily WTI over its history (the park days
before its forecast window, i.e. backfilled days: observed ACTUAL, else imputed from POSTED).
Level k means the day's WTI is above k - 1 of those deciles: level 1 is a day as quiet as the
quietest tenth of the park's past days, level 10 as busy as the busiest tenth. Levels of two
parks are not comparable in minutes, only in "how busy for this park".

Frozen: the scale is written once (`crowd_scale.json`) and reused by every later forecast run, so
a day's level changes only when its forecast does, never because the history grew. It is built
when the park has at least MIN_HISTORY_DAYS days of history; a scale built from fewer than
FULL_YEAR_DAYS days is provisional (a few months do not hold a whole season cycle) and is built
once more, then frozen for good, when a full year of history exists. A scale of an older method
(METHOD) is rebuilt.

Uncertainty (`low`..`high` levels): a park-level spread, not a mean of entity bands (the mean of
entity p10s is not the park's p10: the entities' errors are neither independent nor identical).
It is the spread of the park's own daily WTI around what the calendar explains: for each history
day d, r_d = ln(WTI_d / median WTI of the same weekday within +-28 days of d, d itself left out);
the 10th and 90th percentiles of r over the history give the day's band WTI x exp(q10) ..
WTI x exp(q90). A forecast is built from calendar features (weekday, season, hours), so the
day-to-day variation those do not explain is the part of a park day it cannot know in advance;
this is that variation, measured on the park's history (an assumption: the model's daily error
is about as large as the calendar's, and no larger). Days of the history show their own level.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

METHOD = 1  # bump when the scale's definition changes: stored scales of older methods rebuild
MIN_HISTORY_DAYS = 28
FULL_YEAR_DAYS = 365
NEIGHBOUR_DAYS = 28  # the calendar's expectation: same weekday within this many days
LEVELS = 10


@dataclass(frozen=True)
class CrowdScale:
    """One park's frozen scale: deciles of its history's daily WTI and the residual spread."""

    park_code: str
    deciles: list[float]  # 9 cut points, ascending
    q10: float  # 10th percentile of ln(WTI / calendar expectation)
    q90: float
    history_first: str
    history_last: str
    history_days: int
    built_at: str
    method: int = METHOD

    @property
    def provisional(self) -> bool:
        return self.history_days < FULL_YEAR_DAYS


def residuals(history: pd.DataFrame) -> np.ndarray:
    """ln(WTI_d / median WTI of the same weekday within +-NEIGHBOUR_DAYS, d excluded), for each
    day of `history` (park_date, wti) that has such neighbours."""
    frame = history.dropna(subset=["wti"])
    frame = frame[frame["wti"] > 0]
    days = pd.to_datetime(frame["park_date"]).to_numpy("datetime64[D]")
    wti = frame["wti"].to_numpy(float)
    out = []
    for i, d in enumerate(days):
        gap = (days - d).astype(int)
        near = (gap != 0) & (np.abs(gap) <= NEIGHBOUR_DAYS) & (gap % 7 == 0)
        if near.any():
            out.append(math.log(wti[i] / float(np.median(wti[near]))))
    return np.asarray(out, dtype=float)


def build_scale(park: str, history: pd.DataFrame) -> CrowdScale | None:
    """The scale from a park's history (park_date, wti), or None under MIN_HISTORY_DAYS days."""
    frame = history.dropna(subset=["wti"])
    if len(frame) < MIN_HISTORY_DAYS:
        return None
    wti = frame["wti"].to_numpy(float)
    deciles = np.quantile(wti, np.arange(1, LEVELS) / LEVELS).tolist()
    res = residuals(frame)
    q10, q90 = (float(np.quantile(res, 0.1)), float(np.quantile(res, 0.9))) if len(res) else (
        0.0, 0.0)
    first, last = pd.to_datetime(frame["park_date"]).agg(["min", "max"])
    return CrowdScale(park_code=park, deciles=[float(x) for x in deciles], q10=q10, q90=q90,
                      history_first=first.date().isoformat(),
                      history_last=last.date().isoformat(), history_days=len(frame),
                      built_at=datetime.now(UTC).isoformat(timespec="seconds"))


def load_scale(path: Path) -> CrowdScale | None:
    try:
        return CrowdScale(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def save_scale(scale: CrowdScale, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(scale), indent=1))
    tmp.replace(path)


def frozen_scale(park: str, history: pd.DataFrame, path: Path) -> CrowdScale | None:
    """The park's stored scale; built (and stored) when there is none, when it is of an older
    METHOD, or when it is provisional and a full year of history exists now."""
    stored = load_scale(path)
    n_history = int(history["wti"].notna().sum()) if len(history) else 0
    if stored is not None and stored.method == METHOD and not (
            stored.provisional and n_history >= FULL_YEAR_DAYS):
        return stored
    scale = build_scale(park, history)
    if scale is None:
        return stored if stored is not None and stored.method == METHOD else None
    save_scale(scale, path)
    return scale


def level_of(scale: CrowdScale, wti: np.ndarray) -> np.ndarray:
    """Crowd level 1..10 of each daily WTI (NaN stays NaN)."""
    wti = np.asarray(wti, dtype=float)
    levels = 1.0 + np.searchsorted(np.asarray(scale.deciles), wti, side="left")
    return np.where(np.isnan(wti), np.nan, levels)


def calendar_levels(scale: CrowdScale | None, daily: pd.DataFrame,
                    first_forecast_day: date | None) -> pd.DataFrame:
    """`daily` (park_date, wti, ...) with columns kind ('history' before the first forecast day,
    else 'forecast'), wti_low, wti_high (the band; equal to wti on history days), crowd_level,
    crowd_low, crowd_high (nullable integers; null without a scale)."""
    out = daily.copy()
    dates = pd.to_datetime(out["park_date"]).dt.date
    forecast = (dates >= first_forecast_day) if first_forecast_day is not None else (
        pd.Series(False, index=out.index))
    out["kind"] = np.where(forecast, "forecast", "history")
    wti = out["wti"].to_numpy(float)
    q10, q90 = (scale.q10, scale.q90) if scale is not None else (0.0, 0.0)
    out["wti_low"] = np.where(forecast, wti * math.exp(q10), wti)
    out["wti_high"] = np.where(forecast, wti * math.exp(q90), wti)
    for col, src in (("crowd_level", "wti"), ("crowd_low", "wti_low"),
                     ("crowd_high", "wti_high")):
        values = (level_of(scale, out[src].to_numpy(float)) if scale is not None
                  else np.full(len(out), np.nan))
        out[col] = pd.array(np.where(np.isnan(values), None, values), dtype="Int64")
    return out


def level_text(level, low, high) -> str:
    """'6' or '5-7' (the band's levels); '' without a level."""
    if level is None or pd.isna(level):
        return ""
    if pd.isna(low) or pd.isna(high) or int(low) == int(high):
        return str(int(level))
    return f"{int(low)}-{int(high)}"

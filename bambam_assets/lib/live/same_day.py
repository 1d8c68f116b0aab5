"""Same-day re-forecast: today's remaining slots updated from the live POSTED readings.

No retraining: the morning's forecast file (one row per 5-minute slot with `actual_predicted`
and `posted_predicted`) is the base. The POSTED readings of the last `window_min` minutes say
how far the sign runs from its forecast today:

    ratio = sum(observed POSTED) / sum(forecast POSTED at the readings' slots)

clipped to RATIO_BOUNDS (one odd reading must not triple a curve). It is carried to ACTUAL in
relative terms (a sign 20 % above its forecast means queues about 20 % longer than the ACTUAL
forecast said: POSTED and ACTUAL scale together, while their gap in minutes does not), and it
fades back to the morning's curve with the minutes between the latest reading and each slot:

    actual_updated = actual_predicted * (1 + (ratio - 1) * weight * 0.5 ** (ahead / half_life))

A slot the morning's curve has as closed (null) stays closed, slots before now are not part of
the answer, and no usable reading leaves the curve as it was. The p10-p90 band is the
morning's. The defaults (DEFAULT_PARAMS) were tuned on the 2017-2018 as-of dates of the real
backtest (bench/same_day_backtest.py) and came out without fading (half-life infinite): the
decay is kept as a parameter, measured, not used. README "Same-day re-forecast (issue 17)" has
the measured effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bambam_assets.lib.forecasts.slots import SLOT_SECONDS

RATIO_BOUNDS = (1 / 3, 3.0)


@dataclass(frozen=True)
class UpdateParams:
    """How the deviation is read and how it fades (minutes)."""

    half_life_min: float = 120.0  # inf: no fading
    weight: float = 1.0
    window_min: float = 60.0


# tuned on the 2017-2018 as-of dates of bench/same_day_backtest.py (192 combinations of window
# 30 min .. the whole day, half-life 15 min .. none, weight 0.25 .. 1): every reading of the day
# so far, three quarters of the deviation, no fading. Shorter windows and fading were worse
# there: a park busier than forecast in the morning stays busier all day.
DEFAULT_PARAMS = UpdateParams(half_life_min=float("inf"), weight=0.75, window_min=1440.0)


@dataclass(frozen=True)
class Deviation:
    """What today's readings say: ratio is None when no reading could be used."""

    ratio: float | None
    readings: int  # readings used (inside the window, at a slot with a POSTED forecast)
    last_reading_at: pd.Timestamp | None


NO_DEVIATION = Deviation(None, 0, None)


def slot_floor(instants: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """The 5-minute slot start (UTC, epoch-aligned as lib.forecasts.slots) of each instant."""
    return pd.Series(pd.to_datetime(instants, utc=True)).dt.floor(f"{SLOT_SECONDS}s")


def posted_deviation(curve: pd.DataFrame, readings: pd.DataFrame, now: pd.Timestamp,
                     window_min: float = DEFAULT_PARAMS.window_min) -> Deviation:
    """The ratio of today's observed POSTED to the forecast POSTED at the same slots.

    Args:
        curve: the entity's forecast of the day (slot_start UTC, posted_predicted).
        readings: the entity's POSTED readings of the day (observed_at UTC, posted minutes).
        now: readings after it are ignored (a replay sees only what was known then).
        window_min: only readings of the last `window_min` minutes before `now` count.

    Returns:
        Deviation; NO_DEVIATION when no reading of the window meets a positive POSTED forecast.
    """
    if readings is None or readings.empty or curve is None or curve.empty:
        return NO_DEVIATION
    now = pd.Timestamp(now).tz_convert("UTC")
    at = pd.to_datetime(readings["observed_at"], utc=True)
    keep = (at <= now) & (at > now - pd.Timedelta(minutes=window_min)) & \
        readings["posted"].notna()
    if not keep.any():
        return NO_DEVIATION
    part = pd.DataFrame({"observed_at": at[keep].to_numpy(),
                         "posted": readings.loc[keep, "posted"].astype(float).to_numpy()})
    part["slot_start"] = slot_floor(part["observed_at"]).to_numpy()
    fc = curve[["slot_start", "posted_predicted"]].assign(
        slot_start=lambda f: pd.to_datetime(f["slot_start"], utc=True))
    part = part.merge(fc, on="slot_start", how="inner")
    part = part[part["posted_predicted"].notna() & (part["posted_predicted"] > 0)]
    if part.empty:
        return NO_DEVIATION
    ratio = float(part["posted"].sum() / part["posted_predicted"].sum())
    return Deviation(float(np.clip(ratio, *RATIO_BOUNDS)), len(part),
                     pd.Timestamp(part["observed_at"].max()))


def decay(minutes_ahead: np.ndarray, params: UpdateParams = DEFAULT_PARAMS) -> np.ndarray:
    """The share of the deviation kept `minutes_ahead` after the latest reading (0 when the
    weight is 0; a slot before the reading keeps the whole weight)."""
    ahead = np.maximum(np.asarray(minutes_ahead, dtype=float), 0.0)
    return params.weight * np.power(0.5, ahead / params.half_life_min)


def updated_actual(actual: np.ndarray, minutes_ahead: np.ndarray,
                   ratio: float | np.ndarray | None,
                   params: UpdateParams = DEFAULT_PARAMS) -> np.ndarray:
    """The morning's ACTUAL forecast scaled by the decayed deviation; NaN (closed) stays NaN,
    no ratio (None, or NaN in an array of one ratio per slot) leaves it unchanged. Never
    negative (ratios are positive)."""
    actual = np.asarray(actual, dtype=float)
    if ratio is None:
        return actual.copy()
    ratio = np.asarray(ratio, dtype=float)
    scaled = actual * (1.0 + (ratio - 1.0) * decay(minutes_ahead, params))
    return np.where(np.isnan(ratio), actual, scaled)


def reforecast(curve: pd.DataFrame, readings: pd.DataFrame, now: pd.Timestamp,
               params: UpdateParams = DEFAULT_PARAMS) -> tuple[pd.DataFrame, Deviation]:
    """The remaining slots of the day with the morning's and the updated ACTUAL.

    Args:
        curve: one entity's forecast rows of one park day (the forecast file's columns:
            slot, slot_start, actual_predicted, actual_p10, actual_p90, posted_predicted).
        readings: that entity's POSTED readings of the day (observed_at, posted).
        now: the current instant; the slot holding it and the later ones are returned.
        params: the window and the decay.

    Returns:
        (frame, deviation). Grain of frame: one row per slot from now's slot on: the curve's
        columns plus `actual_updated` (null where the morning's curve is null).
    """
    now = pd.Timestamp(now).tz_convert("UTC")
    start = pd.to_datetime(curve["slot_start"], utc=True)
    rest = curve[(start >= now.floor(f"{SLOT_SECONDS}s")).to_numpy()].copy()
    rest = rest.sort_values("slot_start", ignore_index=True)
    dev = posted_deviation(curve, readings, now, params.window_min)
    ahead = np.zeros(len(rest))
    if dev.last_reading_at is not None:
        ahead = ((pd.to_datetime(rest["slot_start"], utc=True) - dev.last_reading_at)
                 .dt.total_seconds() / 60.0).to_numpy()
    rest["actual_updated"] = updated_actual(rest["actual_predicted"].to_numpy(dtype=float),
                                            ahead, dev.ratio, params)
    return rest, dev

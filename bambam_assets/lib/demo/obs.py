"""Demo data: the wait-time model of one entity, vectorized over all its days.

Times are minutes after local midnight of the park date (`tm`, may pass 1440 on late nights) on
day index `day` of the park calendar; `key = day * 1440 + tm` orders them (a park day never runs
past 25:00 nor starts before 06:00, so keys of consecutive days never overlap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bambam_assets.lib.demo.entities import DemoEntity

KIND_POSTED, KIND_ACTUAL, KIND_CLOSED = 0, 1, 2
CLOSED_SENTINEL = -999
_HOURS = 26  # hour buckets of a park day (00:00 .. 25:59)


@dataclass(frozen=True)
class Obs:
    """Rows of one entity in time order: day index, minute of park day, kind, value."""

    day: np.ndarray
    tm: np.ndarray
    kind: np.ndarray
    value: np.ndarray


def _grid(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, gap_lo: int,
          gap_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Random-gap times in [lo, hi) of each selected day: (row of lo/hi, minute), time-sorted."""
    if len(lo) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = int((hi - lo).max()) // gap_lo + 2
    gaps = rng.integers(gap_lo, gap_hi + 1, size=(len(lo), k))
    t = lo[:, None] + rng.integers(0, gap_hi, size=len(lo))[:, None] + np.cumsum(gaps, 1) \
        - gaps[:, :1]
    i, j = np.nonzero(t < hi[:, None])
    return i, t[i, j]


class StandbyModel:
    """POSTED / ACTUAL / downtime of a STANDBY entity over the days `d` of its park calendar."""

    def __init__(self, ent: DemoEntity, d: pd.DataFrame, rng: np.random.Generator) -> None:
        n = len(d)
        self.rng = rng
        self.u = ent.popularity
        # Mean ACTUAL on an ordinary day at the daily peak: log-uniform 5..120 minutes.
        self.mean_wait = 5.0 * 24.0 ** self.u
        self.peak = 0.35 + 0.2 * rng.random()  # fraction of the day where waits peak
        self.open, self.close = d["open"].to_numpy(), d["close"].to_numpy()
        self.lo, self.hi = d["open_emh"].to_numpy(), d["close_emh"].to_numpy()
        self.load = d["load"].to_numpy()
        self.operating = ent.active_days(d["date"].to_numpy().astype("datetime64[D]")) & \
            ~d["blank"].to_numpy()
        self.day_noise = rng.lognormal(0.0, 0.12, n)
        self.hour_noise = rng.lognormal(0.0, 0.1, n * _HOURS)
        # Unexpected downtime: ~0.2 stretches of 30-90 minutes per day, on every day.
        cnt = rng.poisson(0.22, n)
        ev_day = np.repeat(np.arange(n), cnt)
        start = ev_day * 1440 + self.lo[ev_day] + (
            rng.random(len(ev_day)) * (self.hi - self.lo)[ev_day]).astype(np.int64)
        end = start + rng.integers(30, 91, len(start))
        order = np.argsort(start, kind="stable")
        self.down_start = start[order]
        # Running max of the ends, so overlapping stretches still cover every minute.
        self.down_end = np.maximum.accumulate(end[order]) if len(start) else end

    def actual_mean(self, day: np.ndarray, tm: np.ndarray) -> np.ndarray:
        """Expected ACTUAL wait (minutes) at these moments."""
        x = np.clip((tm - self.open[day]) / np.maximum(self.close[day] - self.open[day], 60),
                    -0.1, 1.1)
        curve = 0.3 + 0.7 * np.exp(-(((x - self.peak) / 0.3) ** 2))
        hour = np.clip(tm // 60, 0, _HOURS - 1)
        return (self.mean_wait * self.load[day] * self.day_noise[day] * curve
                * self.hour_noise[day * _HOURS + hour])

    def posted(self, day: np.ndarray, tm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Posted wait: over-states ACTUAL (more at peaks), multiples of 5, at least 5."""
        raw = (1.2 * self.actual_mean(day, tm) + 9.0) * rng.lognormal(0.0, 0.06, len(tm))
        return np.clip(5 * np.round(raw / 5), 5, 300).astype(np.int64)

    def down(self, day: np.ndarray, tm: np.ndarray) -> np.ndarray:
        """Mask: the ride is down (posted -999) at these moments."""
        key = day * 1440 + tm
        i = np.searchsorted(self.down_start, key, side="right") - 1
        return (i >= 0) & (self.down_end[np.maximum(i, 0)] > key)

    def observations(self) -> Obs:
        """POSTED every 5-15 minutes on the days the ride had a reporter, sparse ACTUALs."""
        rng, u = self.rng, self.u
        days = np.flatnonzero(self.operating & (rng.random(len(self.load)) < 0.25 + 0.75 * u))
        i, p_tm = _grid(rng, self.lo[days], self.hi[days], 5, 15 - round(5 * u))
        p_day = days[i]
        p_val = np.where(self.down(p_day, p_tm), CLOSED_SENTINEL, self.posted(p_day, p_tm, rng))
        # ACTUALs: a few per day, more on popular rides and busy days (~3% of all rows).
        per_day = np.bincount(p_day, minlength=len(self.load))
        lam = 0.031 * per_day * (0.5 + u) * self.load
        a_day = np.repeat(np.arange(len(lam)), rng.poisson(lam))
        a_tm = self.lo[a_day] + (rng.random(len(a_day)) * (self.hi - self.lo)[a_day]).astype(
            np.int64)
        keep = ~self.down(a_day, a_tm)
        _, first = np.unique(a_day[keep] * 1440 + a_tm[keep], return_index=True)
        a_day, a_tm = a_day[keep][first], a_tm[keep][first]
        a_val = np.clip(np.round(self.actual_mean(a_day, a_tm)
                                 * rng.lognormal(0.0, 0.3, len(a_day))), 0, 600).astype(np.int64)
        day = np.concatenate([p_day, a_day])
        tm = np.concatenate([p_tm, a_tm])
        kind = np.concatenate([np.where(p_val == CLOSED_SENTINEL, KIND_CLOSED, KIND_POSTED),
                               np.full(len(a_day), KIND_ACTUAL)])
        order = np.lexsort((kind, day * 1440 + tm))
        return Obs(day[order], tm[order], kind[order],
                   np.concatenate([p_val, a_val])[order])


@dataclass(frozen=True)
class FastpassObs:
    """Return-time rows of a PRIORITY entity: observation and return minute of the park day."""

    day: np.ndarray
    tm: np.ndarray
    ret: np.ndarray
    sold_out: np.ndarray


def fastpass_observations(ent: DemoEntity, d: pd.DataFrame,
                          rng: np.random.Generator) -> FastpassObs:
    """A row every 15-30 minutes; return waits grow through the day (0..~600 minutes) and the
    rest of a busy day is sold out once returns would fall after closing (late returns of
    after-midnight nights roll past 24:00)."""
    u, n = ent.popularity, len(d)
    lo, hi = d["open_emh"].to_numpy(), d["close_emh"].to_numpy()
    load = d["load"].to_numpy() * rng.lognormal(0.0, 0.12, n)
    ok = ent.active_days(d["date"].to_numpy().astype("datetime64[D]")) & ~d["blank"].to_numpy()
    days = np.flatnonzero(ok & (rng.random(n) < 0.6 + 0.4 * u))
    i, tm = _grid(rng, lo[days], hi[days], 15, 30)
    day = days[i]
    x = np.clip((tm - lo[day]) / (hi - lo)[day], 0, 1)
    # Return times fill the rest of the day at a rate set by demand: near "now" for quiet
    # rides, hours ahead for headliners; once returns would pass closing, it is sold out.
    demand = 0.02 * 50.0 ** u * load[day] * rng.lognormal(0.0, 0.1, len(tm))
    fill = demand * (0.05 + x)
    ret = np.maximum(tm, 5 * np.round((tm + fill * (hi[day] - tm)) / 5).astype(np.int64))
    sold = fill > 0.97
    # Once sold out, the rest of that day stays sold out: running max of (2*day + sold).
    sold = (np.maximum.accumulate(2 * day + sold) - 2 * day) == 1 if len(day) else sold
    return FastpassObs(day, tm, ret, sold)

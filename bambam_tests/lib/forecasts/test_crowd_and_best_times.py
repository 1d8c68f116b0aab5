"""The crowd scale (deciles of the history, frozen, its band from the park's residual spread)
and the best-times rules, on small series whose answers are known by construction."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.forecasts import best_times as bt
from bambam_assets.lib.forecasts import crowd


def _history(n: int, start: date = date(2024, 1, 1), noise: float = 0.0,
             seed: int = 1) -> pd.DataFrame:
    """Daily WTI: 20 minutes on weekdays, 40 on weekends, times a multiplicative noise."""
    rng = np.random.default_rng(seed)
    days = [start + timedelta(days=i) for i in range(n)]
    wti = np.array([40.0 if d.weekday() >= 5 else 20.0 for d in days])
    return pd.DataFrame({"park_date": days, "wti": wti * np.exp(noise * rng.standard_normal(n))})


def test_levels_are_the_deciles_of_the_history() -> None:
    hist = pd.DataFrame({"park_date": [date(2024, 1, 1) + timedelta(days=i) for i in range(100)],
                         "wti": np.arange(1.0, 101.0)})
    scale = crowd.build_scale("MK", hist)
    assert scale.deciles == pytest.approx([10.9, 20.8, 30.7, 40.6, 50.5, 60.4, 70.3, 80.2, 90.1])
    assert crowd.level_of(scale, np.array([1.0, 10.9, 11.0, 50.0, 95.0, 1000.0])).tolist() == [
        1, 1, 2, 5, 10, 10]
    assert np.isnan(crowd.level_of(scale, np.array([np.nan]))[0])


def test_the_band_is_the_parks_residual_spread_around_its_calendar() -> None:
    quiet = crowd.build_scale("MK", _history(120))  # the weekday pattern explains everything
    assert quiet.q10 == pytest.approx(0.0) and quiet.q90 == pytest.approx(0.0)
    noisy = crowd.build_scale("MK", _history(400, noise=0.2))
    # ln residuals of a N(0, 0.2) noise against a median of ~8 neighbours: about +-1.28 x 0.2
    assert -0.33 < noisy.q10 < -0.2 and 0.2 < noisy.q90 < 0.33
    frame = crowd.calendar_levels(noisy, pd.DataFrame({
        "park_date": [date(2025, 3, 1), date(2025, 3, 2)], "wti": [30.0, 30.0]}),
        first_forecast_day=date(2025, 3, 2))
    assert frame["kind"].tolist() == ["history", "forecast"]
    assert frame["crowd_low"].iloc[0] == frame["crowd_high"].iloc[0] == frame["crowd_level"].iloc[0]
    assert frame["crowd_low"].iloc[1] < frame["crowd_level"].iloc[1] < frame["crowd_high"].iloc[1]
    assert frame["wti_low"].iloc[1] == pytest.approx(30 * np.exp(noisy.q10))


def test_the_scale_is_frozen_until_a_full_year(tmp_path: Path) -> None:
    path = tmp_path / "crowd_scale.json"
    assert crowd.frozen_scale("MK", _history(20), path) is None  # too little history
    first = crowd.frozen_scale("MK", _history(100), path)
    assert first.provisional and first.history_days == 100
    again = crowd.frozen_scale("MK", _history(200, noise=0.3), path)  # more history: kept
    assert again == first
    year = crowd.frozen_scale("MK", _history(400, noise=0.3), path)  # a full year: rebuilt
    assert not year.provisional and year.history_days == 400
    assert crowd.frozen_scale("MK", _history(700), path) == year  # then frozen for good
    assert crowd.level_text(5, 4, 7) == "4-7" and crowd.level_text(5, 5, 5) == "5"


def test_windows_are_the_longest_runs_near_the_lowest_wait() -> None:
    slots = [f"{9 + i // 12:02d}:{i % 12 * 5:02d}" for i in range(36)]  # 09:00 .. 11:55
    waits = np.full(36, 30.0)
    waits[0:6] = [5, 6, 7, 8, 9, 9]   # 09:00-09:30, within 5 of the low (5)
    waits[20:30] = 10                 # 10:40-11:30, 50 minutes at the margin
    waits[33] = np.nan
    found = bt.windows(slots, waits)
    assert [(w["start"], w["end"], w["minutes"]) for w in found] == [
        ("10:40", "11:30", 50), ("09:00", "09:30", 30)]
    assert found[1]["min_wait"] == 5 and found[1]["mean_wait"] == pytest.approx(7.3)
    assert bt._clock("23:55") == "00:00"


def test_periods_compare_rope_drop_midday_and_evening() -> None:
    slots = [f"{8 + i // 12:02d}:{i % 12 * 5:02d}" for i in range(12 * 14)]  # 08:00 .. 21:55
    waits = np.full(len(slots), 40.0)
    waits[:12] = 10.0     # rope drop: the first hour
    waits[-24:] = 25.0    # evening: the last two hours
    out = bt.periods(slots, waits)
    assert out == {"rope_drop": 10.0, "midday": 40.0, "evening": 25.0, "best_period": "rope_drop"}

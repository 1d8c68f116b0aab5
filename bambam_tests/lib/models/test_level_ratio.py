"""The WTI level factor stored with each version (training.level_ratio): the mean of the newest
training targets over the mean of the version's predictions for them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bambam_assets.lib.forecasts import forecast
from bambam_assets.lib.models import training


def _skewed_frame(seed: int) -> pd.DataFrame:
    """Sixty days of an entity whose waits are skewed to the right (exponential crowds on top
    of a daily curve), as real waits are."""
    rng = np.random.default_rng(seed)
    n_days, per_day = 60, 30
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    park_date = days[np.repeat(np.arange(n_days), per_day)]
    mins = rng.integers(180, 900, size=n_days * per_day).astype(float)
    base = 20 + 15 * np.sin(np.pi * (mins - 180) / 720)
    y = np.maximum(0, base + rng.exponential(15, len(mins)) - 5).round()
    frame = pd.DataFrame({
        "entity_code": "MK9", "park_code": "MK", "park_date": park_date,
        "observed_at": park_date.tz_localize("UTC") + pd.to_timedelta(mins + 600, unit="min"),
        "queue_type": "STANDBY", "y": y, "mins_since_6am": mins,
        "local_hour": 6 + mins // 60, "day_of_week": park_date.dayofweek.to_numpy() + 1.0,
        "month": park_date.month.to_numpy().astype(float), "date_group_id": "ANY",
        "season": "WINTER", "season_year": "WINTER_2024", "weight": 1.0,
    }).sort_values("observed_at", ignore_index=True)
    for col in training.FEATURES_WITH_POSTED:
        if col not in frame:
            frame[col] = np.nan
    return frame


def test_level_ratio_is_mean_over_mean_clipped() -> None:
    assert training.level_ratio(np.array([10.0, 30.0]), np.array([10.0, 10.0])) == 2.0
    assert training.level_ratio(np.array([12.0, np.nan]), np.array([10.0, 5.0])) == 1.2
    assert training.level_ratio(np.array([1.0, 1.0]), np.array([10.0, 10.0])) == 0.5  # clipped
    assert training.level_ratio(np.array([5.0]), np.array([0.0])) is None


def test_a_median_model_of_skewed_waits_stores_a_level_above_one() -> None:
    frame = _skewed_frame(3)
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    assert trained.kind != training.FALLBACK_KIND
    level = trained.metrics[training.WITHOUT_POSTED]["level_ratio"]
    # by hand: the band's newest rows (30 %, at least 200), the shipped model's predictions
    recent = frame.iloc[len(frame) - max(200, int(np.ceil(len(frame) * 0.3))):]
    pred = training.predict(trained, recent, with_posted=False)
    assert level == round(recent["y"].mean() / pred.mean(), 4)
    assert level > 1.05  # absolute error predicts the median, below the skewed mean
    assert forecast.level_of(trained) == level


def test_a_fallback_version_stores_its_level_too() -> None:
    frame = _skewed_frame(4).iloc[:300]
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    assert trained.kind == training.FALLBACK_KIND
    assert forecast.level_of(trained) is not None


def test_the_level_is_measured_within_the_official_hours() -> None:
    # the park opens at 09:00 (mins_since_6am 180) for 12 hours; timings before the opening
    # (guests timing the rope drop) are low waits: the WTI covers the official hours only, so
    # the level is measured on the rows within them
    frame = _skewed_frame(5)
    mins = frame["mins_since_6am"].to_numpy(float)
    early = np.random.default_rng(6).random(len(frame)) < 0.3
    mins[early] = 90.0  # 07:30
    frame["mins_since_6am"] = mins
    frame.loc[early, "y"] = 5.0
    frame["local_hour"] = 6 + mins // 60
    frame["mins_since_park_open"] = mins - 180
    frame["park_hours_open"] = 12.0
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    level = trained.metrics[training.WITHOUT_POSTED]["level_ratio"]
    recent = frame.iloc[len(frame) - max(200, int(np.ceil(len(frame) * 0.3))):]
    pred = training.predict(trained, recent, with_posted=False)
    inside = (recent["mins_since_park_open"] >= 0).to_numpy()
    assert inside.sum() >= training.LEVEL_MIN_ROWS and (~inside).sum() > 50
    assert level == round(recent["y"].to_numpy()[inside].mean() / pred[inside].mean(), 4)
    assert level != round(recent["y"].mean() / pred.mean(), 4)

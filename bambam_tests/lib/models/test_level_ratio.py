"""The WTI level factor stored with each version (training.level_ratio): the mean of the newest
training targets over the mean of the version's predictions for them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bambam_assets.lib.forecasts import forecast
from bambam_assets.lib.models import training
from bambam_tests.builders import synthetic_frame


def _skewed_frame(seed: int) -> pd.DataFrame:
    """Sixty days of an entity (bambam_tests.builders.synthetic_frame) whose waits are skewed to
    the right: exponential crowds on top of its daily curve, as real waits are."""
    frame = synthetic_frame(60, shift_from=60, shift=0.0, seed=seed)
    crowd = np.random.default_rng(seed).exponential(15, len(frame))
    frame["y"] = np.maximum(0, frame["y"] + crowd - 15).round()
    return frame.sort_values("observed_at", ignore_index=True)


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
    assert forecast.wti_level(trained) == level


def test_a_fallback_version_stores_its_level_too() -> None:
    frame = _skewed_frame(4).iloc[:300]
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    assert trained.kind == training.FALLBACK_KIND
    assert forecast.wti_level(trained) is not None


def test_the_level_is_measured_within_the_official_hours() -> None:
    # the park opens at 09:00 for 12 hours (synthetic_frame); timings before the opening
    # (guests timing the rope drop) are low waits: the WTI covers the official hours only, so
    # the level is measured on the rows within them
    frame = _skewed_frame(5)
    early = np.random.default_rng(6).random(len(frame)) < 0.3
    frame.loc[early, ["mins_since_6am", "local_hour", "mins_since_park_open", "y"]] = (
        90.0, 7.0, -90.0, 5.0)  # 07:30, before the 09:00 opening
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    level = trained.metrics[training.WITHOUT_POSTED]["level_ratio"]
    recent = frame.iloc[len(frame) - max(200, int(np.ceil(len(frame) * 0.3))):]
    pred = training.predict(trained, recent, with_posted=False)
    inside = (recent["mins_since_park_open"] >= 0).to_numpy()
    assert inside.sum() >= training.LEVEL_MIN_ROWS and (~inside).sum() > 50
    assert level == round(recent["y"].to_numpy()[inside].mean() / pred[inside].mean(), 4)
    assert level != round(recent["y"].mean() / pred.mean(), 4)

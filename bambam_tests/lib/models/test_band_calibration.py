"""The p10-p90 band's conformal width scale (issue 14) on synthetic residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bambam_assets.lib.forecasts import band
from bambam_assets.lib.models import training
from bambam_assets.lib.models.band_calibration import (
    BAND_TARGET_COVERAGE,
    MAX_SCALE,
    conformal_scale,
    hourly_offsets,
)


def _residuals(rng: np.random.Generator, n: int, widen: float) -> tuple[np.ndarray, np.ndarray]:
    """Residuals whose spread depends on the hour (09-21) and is skewed to positive (late
    crowds), times `widen`."""
    hours = rng.integers(9, 22, size=n).astype(float)
    sd = 4 + 8 * np.exp(-((hours - 14) ** 2) / 8)
    resid = widen * (rng.normal(0, sd) + rng.exponential(sd / 2) - sd / 2)
    return resid, hours


def _coverage(low, high, scale, resid, hours) -> float:
    h = hours.astype(int)
    return float(((resid >= scale * low[h]) & (resid <= scale * high[h])).mean())


def test_conformal_scale_hits_target_coverage_on_fresh_residuals() -> None:
    rng = np.random.default_rng(0)
    # in-sample residuals are narrow (the model saw those rows); out-of-sample ones 1.8x wider
    inside, in_hours = _residuals(rng, 3000, widen=1.0)
    low, high = hourly_offsets(inside, in_hours)
    assert (low <= 0).all() and (high >= 0).all()
    assert high[14] > 1.5 * high[10]  # the shape follows the hour
    calib, calib_hours = _residuals(rng, 1500, widen=1.8)
    scale = conformal_scale(low, high, calib, calib_hours)
    assert 1.5 < scale < 2.2
    fresh, fresh_hours = _residuals(rng, 20000, widen=1.8)
    assert _coverage(low, high, 1.0, fresh, fresh_hours) < 0.6  # uncalibrated: far too narrow
    covered = _coverage(low, high, scale, fresh, fresh_hours)
    assert 0.75 <= covered <= 0.85
    assert abs(covered - BAND_TARGET_COVERAGE) < 0.03


def test_conformal_scale_edges() -> None:
    low, high = np.full(24, -2.0), np.full(24, 2.0)
    assert conformal_scale(low, high, np.array([]), np.array([])) is None
    # every residual 0: no width needed
    assert conformal_scale(low, high, np.zeros(10), np.full(10, 12.0)) == 0.0
    # a zero-width side never covers: the scale is capped, not infinite
    assert np.isfinite(conformal_scale(low, np.zeros(24), np.full(10, 3.0), np.full(10, 12.0)))


def test_training_stores_the_scale_and_the_band_uses_it() -> None:
    rng = np.random.default_rng(1)
    n_days, per_day = 60, 30
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    day = np.repeat(np.arange(n_days), per_day)
    mins = rng.integers(180, 900, size=n_days * per_day).astype(float)
    park_date = days[day]
    y = np.maximum(0, 30 + 20 * np.sin(np.pi * (mins - 180) / 720)
                   + rng.normal(0, 8, len(mins))).round()
    frame = pd.DataFrame({
        "entity_code": "MK9", "park_code": "MK", "park_date": park_date,
        "observed_at": park_date.tz_localize("UTC") + pd.to_timedelta(mins + 600, unit="min"),
        "queue_type": "STANDBY", "y": y, "mins_since_6am": mins,
        "local_hour": 6 + mins // 60, "day_of_week": park_date.dayofweek.to_numpy() + 1.0,
        "month": park_date.month.to_numpy().astype(float), "date_group_id": "ANY",
        "season": "WINTER", "park_year": 2024.0, "weight": 1.0,
    })
    for col in training.FEATURES_WITH_POSTED:
        if col not in frame:
            frame[col] = np.nan
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    scale = trained.metrics[training.WITHOUT_POSTED]["band_scale"]
    assert 0.5 < scale <= MAX_SCALE  # fitted: a finite width factor
    fitted = band.fit_band(trained, frame)
    assert fitted.scale == scale
    # the band stored at training is fit_band on the rows the version was trained on (the
    # forecast then reads no training rows): same offsets to the stored rounding
    stored = band.stored_band(trained)
    assert stored is not None and stored.scale == scale and stored.rows == fitted.rows
    np.testing.assert_allclose(stored.low, fitted.low, atol=1e-3 * scale)
    np.testing.assert_allclose(stored.high, fitted.high, atol=1e-3 * scale)
    assert band.has_stored_band({"metrics": trained.metrics})
    # an old version without the stored scale keeps the old rule (never narrower than in-sample)
    trained.metrics[training.WITHOUT_POSTED].pop("band_scale")
    assert band.fit_band(trained, frame).scale >= 1.0


def test_a_fallback_version_stores_its_band_too() -> None:
    # an entity under MIN_TARGETS_FOR_XGB (hourly means) stores fit_band's offsets as well, so
    # its forecast reads no training rows either
    rng = np.random.default_rng(2)
    n = 300
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    park_date = days[rng.integers(0, 30, size=n)].sort_values()
    mins = rng.integers(180, 900, size=n).astype(float)
    frame = pd.DataFrame({
        "entity_code": "MK8", "park_code": "MK", "park_date": park_date,
        "observed_at": park_date.tz_localize("UTC") + pd.to_timedelta(mins + 600, unit="min"),
        "queue_type": "STANDBY", "y": (25 + rng.normal(0, 6, n)).round(),
        "mins_since_6am": mins, "local_hour": 6 + mins // 60,
        "day_of_week": park_date.dayofweek.to_numpy() + 1.0,
        "month": park_date.month.to_numpy().astype(float), "date_group_id": "ANY",
        "season": "WINTER", "park_year": 2024.0, "weight": 1.0,
    }).sort_values("observed_at", ignore_index=True)
    for col in training.FEATURES_WITH_POSTED:
        if col not in frame:
            frame[col] = np.nan
    trained = training.train_entity(frame, "STANDBY", nthread=1)
    assert trained.kind == training.FALLBACK_KIND
    stored, fitted = band.stored_band(trained), band.fit_band(trained, frame)
    assert band.has_stored_band({"metrics": trained.metrics}) and stored.rows == fitted.rows
    np.testing.assert_allclose(stored.low, fitted.low, atol=1e-3 * fitted.scale)
    np.testing.assert_allclose(stored.high, fitted.high, atol=1e-3 * fitted.scale)
    assert abs(stored.scale - fitted.scale) < 1e-3

"""The p10-p90 band of a forecast ACTUAL: residual quantiles per local hour (pure numpy/pandas).

Why residuals and not quantile models: the entity's current model is the one being forecast, so
its own errors are the honest spread, and no second set of models has to be trained and kept in
step with the registry.

How: the current without-POSTED model predicts the entity's newest training rows (the newest 30%
of rows, at least 200), residual = observed - predicted (done at training on the rows the
version was trained on and stored with it: stored_band; fit_band does it for older versions);
the 10% and 90% residual quantiles are taken per local hour (hours with fewer than 20 residuals
use the quantiles of all rows). The shipped model was refit on those rows, so in-sample
residuals are too narrow; the quantiles are therefore scaled by the version's conformal width
scale (`band_scale`, fitted at training on out-of-sample residuals to cover 82 %:
lib.models.band_calibration), or, for versions trained before it existed and fallback models, by
max(1, holdout_mae / in-sample MAE), where holdout_mae is the model's MAE on its held-out newest
days (stored in the registry).
p10 = max(0, pred + low), p90 = pred + high,
with low <= 0 <= high so that p10 <= actual_predicted <= p90 always holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bambam_assets.lib.models import training
from bambam_assets.lib.models.band_calibration import (  # noqa: F401 - re-exported
    BAND_QUANTILES,
    MIN_ROWS_PER_HOUR,
    hourly_offsets,
)

NEWEST_FRACTION = training.BAND_NEWEST_FRACTION
MIN_NEWEST_ROWS = training.BAND_MIN_NEWEST_ROWS


@dataclass(frozen=True)
class ResidualBand:
    """Residual offsets per local hour 0..23 (already scaled), and how they were fitted."""

    low: np.ndarray
    high: np.ndarray
    scale: float
    rows: int


def newest_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest NEWEST_FRACTION of one entity's rows by observed_at (at least MIN_NEWEST_ROWS)."""
    n = min(len(rows), max(MIN_NEWEST_ROWS, int(np.ceil(len(rows) * NEWEST_FRACTION))))
    return rows.sort_values("observed_at", kind="stable").tail(n)


def fit_band(model: Any, rows: pd.DataFrame) -> ResidualBand | None:
    """Fit the band of `model` (a LoadedModel or TrainedEntity) on one entity's training rows
    (`features.build_training_frame`); None when there are no rows."""
    if len(rows) == 0:
        return None
    recent = newest_rows(rows)
    resid = recent["y"].to_numpy(float) - training.predict(model, recent, with_posted=False)
    hours = pd.to_numeric(recent["local_hour"], errors="coerce").to_numpy(float)
    low, high = hourly_offsets(resid, hours)
    scale = stored_metric(model, "band_scale")  # the version's conformal width scale
    if scale is None:
        insample = float(np.abs(resid).mean())
        holdout = _holdout_mae(model)
        scale = max(1.0, holdout / insample) if holdout and insample > 0 else 1.0
    return ResidualBand(low * scale, high * scale, scale, len(recent))


def stored_band(model: Any) -> ResidualBand | None:
    """The band stored with the version at training (training.insample_band: the same fit on
    the rows the version was trained on), scaled as fit_band scales it; None for versions
    without one (versions trained before it was stored)."""
    return band_from_metrics(without_posted_metrics(model), _holdout_mae(model))


def band_from_metrics(m: dict, holdout_mae: float | None) -> ResidualBand | None:
    """A ResidualBand from a version's without-POSTED metrics (see stored_band)."""
    if m.get("band_low") is None or m.get("band_high") is None:
        return None
    low, high = np.asarray(m["band_low"], dtype=float), np.asarray(m["band_high"], dtype=float)
    scale = m.get("band_scale")
    if scale is None or not np.isfinite(float(scale)):
        insample = float(m.get("band_insample_mae") or 0.0)
        scale = max(1.0, holdout_mae / insample) if holdout_mae and insample > 0 else 1.0
    return ResidualBand(low * float(scale), high * float(scale), float(scale),
                        int(m.get("band_insample_rows") or 0))


def has_stored_band(meta: dict) -> bool:
    """Whether a version's meta.json carries its band (then the forecast reads no rows)."""
    m = ((meta.get("metrics") or {}).get(training.WITHOUT_POSTED) or {})
    return m.get("band_low") is not None


def apply_band(band: ResidualBand | None, pred: np.ndarray,
               local_hour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p10, p90) per prediction; NaN where there is no band or no hour."""
    pred = np.asarray(pred, dtype=float)
    hours = np.asarray(local_hour, dtype=float)
    p10, p90 = np.full(len(pred), np.nan), np.full(len(pred), np.nan)
    if band is None:
        return p10, p90
    ok = ~np.isnan(hours) & ~np.isnan(pred)
    h = hours[ok].astype(int) % 24
    p10[ok] = np.maximum(pred[ok] + band.low[h], 0.0)
    p90[ok] = pred[ok] + band.high[h]
    return p10, p90


def stored_metric(model: Any, key: str) -> float | None:
    """The finite number the version's without-POSTED metrics hold under `key` (training's
    band_scale, level_ratio), else None (versions trained before it was stored)."""
    value = without_posted_metrics(model).get(key)
    return float(value) if value is not None and np.isfinite(float(value)) else None


def without_posted_metrics(model: Any) -> dict:
    """The version's without-POSTED metrics (band, level factor) of a registry.LoadedModel
    (its meta.json) or a freshly trained entity; {} when it has none."""
    metrics = model.meta.get("metrics") if hasattr(model, "meta") else getattr(model, "metrics",
                                                                                None)
    return (metrics or {}).get(training.WITHOUT_POSTED) or {}


def _holdout_mae(model: Any) -> float | None:
    meta = model.meta if hasattr(model, "meta") else {}
    value = meta.get("holdout_mae", getattr(model, "holdout_mae", None))
    return float(value) if value is not None and np.isfinite(float(value)) else None

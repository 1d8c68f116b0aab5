"""Chronological split and held-out metrics for per-entity models (pure numpy/pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_FRACTIONS = (0.70, 0.85)  # train = first 70% of days, val up to 85%, test = the rest


def chronological_split(frame: pd.DataFrame) -> np.ndarray:
    """Split label (TRAIN/VAL/TEST) per row of one entity's target rows.

    By the entity's distinct park_dates of target rows (legacy quirk fixed: it split on the dates
    of all rows). With 3+ days every part gets at least one day; with fewer days the rows
    themselves are split chronologically so a busy short history still trains.
    """
    n_rows = len(frame)
    if n_rows == 0:
        return np.zeros(0, dtype=np.int8)
    days = pd.to_datetime(frame["park_date"]).to_numpy()
    uniq = np.unique(days)
    if len(uniq) >= 3:
        n = len(uniq)
        n_train = min(max(1, int(n * SPLIT_FRACTIONS[0])), n - 2)
        n_val_end = min(max(n_train + 1, int(n * SPLIT_FRACTIONS[1])), n - 1)
        pos = np.searchsorted(uniq, days)
    else:
        # rows in time order; position stands in for the day
        n = n_rows
        n_train = int(n * SPLIT_FRACTIONS[0])
        n_val_end = int(n * SPLIT_FRACTIONS[1])
        pos = np.empty(n, dtype=np.int64)
        pos[np.argsort(frame["observed_at"].to_numpy(), kind="stable")] = np.arange(n)
    return np.where(pos < n_train, TRAIN, np.where(pos < n_val_end, VAL, TEST)).astype(np.int8)


def split_bounds(frame: pd.DataFrame, split: np.ndarray) -> dict[str, str | None]:
    """First and last park_date of each split part (ISO strings), for metadata and the guard."""
    out: dict[str, str | None] = {}
    days = pd.to_datetime(frame["park_date"])
    for name, label in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        part = days[split == label]
        out[f"{name}_start"] = part.min().date().isoformat() if len(part) else None
        out[f"{name}_end"] = part.max().date().isoformat() if len(part) else None
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE, MAPE (%, over y != 0) and R² of one prediction; None where undefined."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    if len(y) == 0:
        return {"mae": None, "rmse": None, "mape": None, "r2": None}
    err = pred - y
    nonzero = y != 0
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "mape": float((np.abs(err[nonzero]) / np.abs(y[nonzero])).mean() * 100)
        if nonzero.any() else None,
        "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else None,
    }


def _dow_halfhour(frame: pd.DataFrame) -> pd.Series:
    # park-day clock: half hour = minutes since 06:00 // 30 (0..47)
    return frame["day_of_week"].astype(int) * 48 + (frame["mins_since_6am"] // 30).astype(int)


def naive_mae(train: pd.DataFrame, test: pd.DataFrame) -> float | None:
    """MAE on `test` of the naive baseline: median y by day of week and half hour over `train`.

    Keys never seen in train take the overall train median.
    """
    if len(test) == 0 or len(train) == 0:
        return None
    medians = train["y"].groupby(_dow_halfhour(train)).median()
    pred = _dow_halfhour(test).map(medians).fillna(float(train["y"].median()))
    return float(np.abs(pred.to_numpy(dtype=float) - test["y"].to_numpy(dtype=float)).mean())


def model_metrics(
    frame: pd.DataFrame, split: np.ndarray, pred_test: np.ndarray, best_iteration: int | None
) -> dict[str, float | int | None]:
    """The metrics of one model: test-split errors, naive baseline, split sizes."""
    test = frame[split == TEST]
    out: dict[str, float | int | None] = dict(regression_metrics(test["y"].to_numpy(), pred_test))
    out["naive_mae"] = naive_mae(frame[split == TRAIN], test)
    out["best_iteration"] = best_iteration
    out["n_train"] = int((split == TRAIN).sum())
    out["n_val"] = int((split == VAL).sum())
    out["n_test"] = int((split == TEST).sum())
    return out

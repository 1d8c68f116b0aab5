"""Per-entity model training and prediction (pure: no DuckDB, no dagster).

Input is one entity's rows of `features.build_training_frame` (one row per target observation).
Quirks of the legacy training fixed: recency weights are used as sample weights; nulls stay missing
(XGBoost learns a default direction) instead of per-split median fills; category mappings live in
the model version, unseen values map to a reserved code instead of raising; the fallback model is a
mean per local hour, not one global mean, and PRIORITY targets never include 8888; the shipped model
is refit on all rows with the early-stopped number of rounds; nthread is capped by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.models.band_calibration import conformal_scale, hourly_offsets
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITH_POSTED,
    FEATURES_WITHOUT_POSTED,
)
from bambam_assets.lib.models.metrics import (
    TEST,
    TRAIN,
    VAL,
    chronological_split,
    model_metrics,
    split_bounds,
)

XGB_PARAMS: dict[str, Any] = {
    "objective": "reg:absoluteerror",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.5,
    "min_child_weight": 10,
    "seed": 42,
    "eval_metric": "mae",
    "verbosity": 0,
}
# The POSTED model's trees: shallower than the ACTUAL models', with at least 20 rows a leaf.
# Chosen by the real-data backtest (bench.real_backtest, three seeds; bench/README.md,
# 2026-12-05): the 60-day POSTED forecast gained on the tune and the report dates, while the same
# trees for the ACTUAL models lost. min_child_weight counts sample weight, so the POSTED sample's
# weights are scaled to a mean of 1 first (_train_posted): a row weighs its entity's 1 / sampling
# rate (2.5 to 9.3 on the real data set, about 1 on a small one), and a minimum in raw weight
# meant 30 rows for a small entity and 3 for a large one. In params_hash: a change retrains
# every entity.
POSTED_XGB_PARAMS: dict[str, Any] = XGB_PARAMS | {"max_depth": 4, "min_child_weight": 20}
MAX_ROUNDS = 2000
EARLY_STOPPING = 50
MIN_TARGETS_FOR_XGB = 500
MIN_POSTED_ROWS = 50  # with-POSTED model needs this many target rows with a matched POSTED
# the band's in-sample rows: the newest 30 % (at least 200), as lib.forecasts.band takes them
BAND_NEWEST_FRACTION, BAND_MIN_NEWEST_ROWS = 0.30, 200
# the WTI level factor (level_ratio) never scales a forecast by more than half or double; it is
# measured on the band's rows within the official hours when there are LEVEL_MIN_ROWS of them
LEVEL_RATIO_BOUNDS = (0.5, 2.0)
LEVEL_MIN_ROWS = 50
UNKNOWN = "__unknown__"  # reserved key of every category mapping: code of unseen values
# ACTUAL chained from the POSTED forecast: the forecast's ACTUAL takes CHAIN_WEIGHT of the POSTED
# forecast times the ride's ACTUAL/POSTED ratio (chain_ratio: its last CHAIN_DAYS of targets with
# a matched POSTED), the rest from its ACTUAL model. The POSTED model learns the calendar from
# every reading of the sign, the ACTUAL model from a few timings a day. Chosen on the
# real-data backtest's tune dates (bench/README.md, "ACTUAL chained from the POSTED forecast").
CHAIN_WEIGHT = 0.2
CHAIN_DAYS = 365

WITHOUT_POSTED, WITH_POSTED = "without_posted", "with_posted"
# The POSTED model: the sign's wait from the non-POSTED features, trained on the entity's sampled
# POSTED rows (features.build_posted_frame); the forecast's posted_predicted (issue 14).
POSTED_MODEL = "posted"
FALLBACK_KIND = "hourly_fallback"  # a version of hourly means: no booster
MIN_POSTED_MODEL_ROWS = 500  # fewer sampled POSTED rows: no POSTED model (aggregates instead)
# a POSTED model whose held-out MAE is above its naive's by more than this is not kept
POSTED_NAIVE_TOLERANCE = 0.05
FEATURES_OF_MODEL = {WITHOUT_POSTED: FEATURES_WITHOUT_POSTED, WITH_POSTED: FEATURES_WITH_POSTED,
                     POSTED_MODEL: FEATURES_WITHOUT_POSTED}


@dataclass
class TrainedEntity:
    """One trained version of an entity's models, ready to store in the registry."""

    entity_code: str
    queue_type: str
    kind: str  # "xgboost" | "hourly_fallback"
    models: dict[str, bytes]  # model name -> raw booster bytes (UBJSON)
    encodings: dict  # {column: {value: code}}, incl. UNKNOWN
    fallback: dict | None  # {"hour_means": {hour: mean}, "overall_mean": float, "posted_ratio"}
    metrics: dict  # per model name: mae, rmse, mape, r2, naive_mae, ...; plus rows, seconds, split
    holdout_mae: float | None  # test-split MAE of the without-POSTED model
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    # transient, never stored: the without-POSTED model's held-out rows and its predictions on
    # them (the measuring model's, before the refit), for the promotion guard (lib/models/guard)
    test_rows: pd.DataFrame | None = None
    test_pred: np.ndarray | None = None


def fit_encodings(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Category mappings: sorted distinct non-null values -> 0..n-1, and UNKNOWN -> n."""
    out: dict[str, dict[str, int]] = {}
    for col in CATEGORICAL_FEATURES:
        values = sorted(frame[col].dropna().astype(str).unique()) if col in frame else []
        out[col] = {v: i for i, v in enumerate(values)} | {UNKNOWN: len(values)}
    return out


def encode_numeric(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The numeric feature columns of `frame` as float64 arrays: the part of `encode` that does
    not depend on a version's encodings (a park's forecast rows are encoded once for all its
    entities with it)."""
    return {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64,
                                                                  na_value=np.nan)
            for c in FEATURES_WITH_POSTED if c in frame.columns and c not in CATEGORICAL_FEATURES}


def encode(frame: pd.DataFrame, encodings: dict,
           numeric: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Feature columns of `frame` as float64: categories coded, unseen -> UNKNOWN code, null NaN.

    Grain unchanged (one row per input row); only the model feature columns present are returned.
    Vectorized (one index lookup per category column, the frame built once): every prediction
    encodes its rows, and a per-value map plus column-by-column inserts cost a fifth of the
    forecast's time. `numeric`: `encode_numeric(frame)`, when the caller already has it.
    """
    cols = [c for c in FEATURES_WITH_POSTED if c in frame.columns]
    data: dict[str, np.ndarray] = {}
    for col in cols:
        if numeric is not None and col in numeric:
            data[col] = numeric[col]
        elif col in CATEGORICAL_FEATURES:
            mapping = {k: v for k, v in encodings.get(col, {}).items() if k != UNKNOWN}
            unknown = float(encodings.get(col, {}).get(UNKNOWN, len(mapping)))
            # the few distinct values are looked up, then spread back (-1: missing)
            which, uniques = pd.factorize(frame[col], use_na_sentinel=True)
            names = pd.Series(uniques, dtype=object).astype("string").to_numpy(
                dtype=object, na_value=None)
            pos = pd.Index(list(mapping), dtype=object).get_indexer(names)
            per_unique = np.full(len(names), unknown)
            if mapping:
                codes = np.fromiter(mapping.values(), dtype=np.float64, count=len(mapping))
                per_unique = np.where(pos >= 0, codes[pos], unknown)
            data[col] = np.where(which >= 0, per_unique[which] if len(names) else np.nan,
                                 np.nan)
        else:
            data[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(data, index=frame.index, columns=cols)


def _dmatrix(x: pd.DataFrame, frame: pd.DataFrame | None, nthread: int, weighted: bool):
    label = None if frame is None else frame["y"].to_numpy(dtype=float)
    weight = frame["weight"].to_numpy(dtype=float) if weighted and frame is not None else None
    return xgb.DMatrix(x, label=label, weight=weight, nthread=nthread, missing=np.nan)


def _train_xgb(frame: pd.DataFrame, split: np.ndarray, features: list[str], enc_all: dict,
               nthread: int, calibrate: bool = False,
               xgb_params: dict[str, Any] | None = None) -> tuple[bytes, dict, np.ndarray]:
    """Early-stop on val, measure on test, then refit on all rows with best_iteration + 1 rounds.
    Returns the refit booster, its metrics and the early-stopped booster's test predictions.
    `xgb_params`: XGB_PARAMS unless given (the POSTED model's POSTED_XGB_PARAMS).

    `calibrate`: also fit the p10-p90 band's conformal width scale (metrics["band_scale"], see
    band_calibration) with the early-stopped booster."""
    params = (XGB_PARAMS if xgb_params is None else xgb_params) | {"nthread": nthread}
    enc_train = fit_encodings(frame[split == TRAIN])  # honest: val/test values can be unseen
    x = encode(frame, enc_train)[features]
    parts = {lab: (x[split == lab], frame[split == lab]) for lab in (TRAIN, VAL, TEST)}
    dtrain = _dmatrix(*parts[TRAIN], nthread, weighted=True)
    dval = _dmatrix(*parts[VAL], nthread, weighted=False)  # plain MAE decides the stop
    booster = xgb.train(params, dtrain, MAX_ROUNDS, evals=[(dval, "val")],
                        early_stopping_rounds=EARLY_STOPPING, verbose_eval=False)
    best = int(booster.best_iteration)
    pred_test = np.zeros(0)
    if len(parts[TEST][0]):
        pred_test = booster.predict(_dmatrix(parts[TEST][0], None, nthread, False),
                                    iteration_range=(0, best + 1)).clip(min=0)
    metrics = model_metrics(frame, split, pred_test, best)
    if calibrate:
        metrics.update(_band_scale(booster, best, x, frame, split, nthread))
    # DESIGN: refitting on all rows after early stopping cut MAE by 3%
    final = xgb.train(params, _dmatrix(encode(frame, enc_all)[features], frame, nthread, True),
                      best + 1)
    metrics["rounds"] = int(final.num_boosted_rounds())
    return bytes(final.save_raw("ubj")), metrics, pred_test


def _band_scale(booster: xgb.Booster, best: int, x: pd.DataFrame, frame: pd.DataFrame,
                split: np.ndarray, nthread: int) -> dict:
    """Band shape from the newest train rows (in-sample, as lib.forecasts.band fits it on the
    shipped model), scale from the val+test rows (out-of-sample). Frame in time order."""
    train_idx = np.flatnonzero(split == TRAIN)
    n = min(len(train_idx), max(BAND_MIN_NEWEST_ROWS,
                                int(np.ceil(len(train_idx) * BAND_NEWEST_FRACTION))))
    inside, outside = train_idx[len(train_idx) - n:], np.flatnonzero(split != TRAIN)
    if not len(inside) or not len(outside):
        return {}
    y = frame["y"].to_numpy(dtype=float)
    hours = pd.to_numeric(frame["local_hour"], errors="coerce").to_numpy(dtype=float)

    def resid(idx: np.ndarray) -> np.ndarray:
        pred = booster.predict(_dmatrix(x.iloc[idx], None, nthread, False),
                               iteration_range=(0, best + 1)).clip(min=0)
        return y[idx] - pred

    low, high = hourly_offsets(resid(inside), hours[inside])
    scale = conformal_scale(low, high, resid(outside), hours[outside])
    return {} if scale is None else {"band_scale": round(scale, 4), "band_rows": len(outside)}


def insample_band(raw: bytes, encodings: dict, frame: pd.DataFrame, nthread: int) -> dict:
    """The forecast band's hourly offsets (unscaled) of the shipped booster, fitted as
    lib.forecasts.band.fit_band fits them (the newest 30 % of the rows, at least 200, in-sample)
    on the rows it was trained on: stored with the version, so the forecast does not read the
    entity's training rows again (that read grew with history). Frame in time order."""
    recent = _band_rows(frame)
    if len(recent) == 0:
        return {}
    return _band_metrics(recent, _booster_predict(raw, {"encodings": encodings}, recent,
                                                  FEATURES_WITHOUT_POSTED, nthread))


def fallback_band(fallback: dict, frame: pd.DataFrame) -> dict:
    """`insample_band` for a fallback version (its hourly means predict): every version stores
    its band, the sparse entities' too (a third of the estate at 1,694 entities and one year;
    each of their forecasts read its training rows again without it)."""
    recent = _band_rows(frame)
    if len(recent) == 0:
        return {}
    return _band_metrics(recent, _predict_fallback(fallback, recent, False))


def _band_rows(frame: pd.DataFrame) -> pd.DataFrame:
    # the newest rows the band is fitted on (frame in time order): band.newest_rows's rule
    n = min(len(frame), max(BAND_MIN_NEWEST_ROWS, int(np.ceil(len(frame) * BAND_NEWEST_FRACTION))))
    return frame.iloc[len(frame) - n:]


def _band_metrics(recent: pd.DataFrame, pred: np.ndarray) -> dict:
    y = recent["y"].to_numpy(dtype=float)
    resid = y - pred
    hours = pd.to_numeric(recent["local_hour"], errors="coerce").to_numpy(dtype=float)
    low, high = hourly_offsets(resid, hours)
    out = {"band_low": [round(float(v), 4) for v in low],
           "band_high": [round(float(v), 4) for v in high],
           "band_insample_rows": int(len(recent)),
           "band_insample_mae": round(float(np.abs(resid).mean()), 4)}
    inside = _in_official_hours(recent)
    # on the rows within the official hours, the WTI's span (timings before the opening are
    # 11-46 % of a real ride's rows), unless too few of them
    pred = np.asarray(pred, dtype=float)
    level = (level_ratio(y[inside], pred[inside]) if inside.sum() >= LEVEL_MIN_ROWS
             else level_ratio(y, pred))
    if level is not None:
        out["level_ratio"] = level
    return out


def _in_official_hours(rows: pd.DataFrame) -> np.ndarray:
    """Rows observed between the park's official opening and closing (the WTI's span)."""
    if "mins_since_park_open" not in rows or "park_hours_open" not in rows:
        return np.zeros(len(rows), dtype=bool)
    since = pd.to_numeric(rows["mins_since_park_open"], errors="coerce").to_numpy(dtype=float)
    span = pd.to_numeric(rows["park_hours_open"], errors="coerce").to_numpy(dtype=float) * 60
    with np.errstate(invalid="ignore"):
        return (since >= 0) & (since <= span)


def chain_ratio(frame: pd.DataFrame) -> float | None:
    """Sum of the ACTUAL targets over the sum of the POSTED matched to them (`_matched`, as
    posted_ratio counts them, but unshrunk), over the entity's last CHAIN_DAYS park days; None
    with fewer than MIN_POSTED_ROWS such rows."""
    if not len(frame):
        return None
    days = pd.to_datetime(frame["park_date"])
    posted, actual = _matched(frame[(days > days.max() - pd.Timedelta(days=CHAIN_DAYS)).to_numpy()])
    if len(posted) < MIN_POSTED_ROWS:
        return None
    return round(float(actual.sum() / posted.sum()), 4)


def level_ratio(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean observed over mean predicted on the same rows (the band's newest rows within the
    official hours), clipped to LEVEL_RATIO_BOUNDS; None without a positive prediction sum.

    The models minimise absolute error, so they predict a median: for waits, skewed to the
    right, a median sits below the mean, and more so the less the model knows (the backfill's
    with-POSTED imputation knows the day's sign, the forecast only the calendar). The WTI is a
    mean, so its forecast days take the forecast times this ratio (wti.py): measured on real
    data, the WTI dropped 5-25 % at the as-of date where the observed waits did not (issue 14).
    """
    ok = ~np.isnan(y) & ~np.isnan(pred)
    total = float(pred[ok].sum())
    if total <= 0:
        return None
    lo, hi = LEVEL_RATIO_BOUNDS
    return round(min(hi, max(lo, float(y[ok].sum()) / total)), 4)


def _hour_means(frame: pd.DataFrame) -> dict:
    overall = float(frame["y"].mean()) if len(frame) else 0.0
    means = frame["y"].groupby(frame["local_hour"].astype(int)).mean()
    return {"hour_means": {int(h): float(v) for h, v in means.items()}, "overall_mean": overall}


# The POSTED -> ACTUAL ratio of a sparse entity: its ratio of sums over its POSTED-matched
# targets, shrunk toward a prior by POSTED_RATIO_PSEUDO rows. The prior is the cross-ride ratio
# of the mature rides (`pooled_posted_ratio`, lib/models/batch.py keeps it), else the relation
# TouringPlans documents (actual ~ 0.6-0.8 x posted): a handful of rows barely moves it.
POSTED_RATIO_PRIOR = 0.7
POSTED_RATIO_PSEUDO = 50


def _matched(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(posted, actual) of the target rows with a positive POSTED match."""
    if "posted_matched" not in frame:
        return np.zeros(0), np.zeros(0)
    posted = frame["posted_matched"].to_numpy(dtype=float)
    ok = ~np.isnan(posted) & (posted > 0)
    return posted[ok], frame["y"].to_numpy(dtype=float)[ok]


def pooled_posted_ratio(frames: Sequence[pd.DataFrame]) -> tuple[float, int] | None:
    """(sum actual / sum posted, rows) over the POSTED-matched rows of `frames`; None without."""
    num = den = 0.0
    rows = 0
    for frame in frames:
        posted, actual = _matched(frame)
        num, den, rows = num + float(actual.sum()), den + float(posted.sum()), rows + len(posted)
    return (num / den, rows) if den > 0 else None


def posted_ratio(frame: pd.DataFrame, prior: float = POSTED_RATIO_PRIOR) -> float:
    """actual / posted of `frame`'s POSTED-matched target rows, shrunk toward `prior`."""
    posted, actual = _matched(frame)
    if len(posted) == 0:
        return prior
    pseudo_posted = POSTED_RATIO_PSEUDO * float(posted.mean())
    return float((actual.sum() + prior * pseudo_posted) / (posted.sum() + pseudo_posted))


def _predict_fallback(fallback: dict, frame: pd.DataFrame,
                      with_posted: bool = False) -> np.ndarray:
    """The hourly means; `with_posted` and a stored ratio: ratio x the POSTED reading of each
    row that has one (a reading says more than the hour's mean, even for a sparse ride)."""
    out = _hour_mean_lookup(fallback, frame)
    ratio = fallback.get("posted_ratio")
    if with_posted and ratio is not None and "posted_matched" in frame:
        posted = pd.to_numeric(frame["posted_matched"], errors="coerce").to_numpy(dtype=float)
        has = ~np.isnan(posted)
        out[has] = float(ratio) * posted[has]
    return out.clip(min=0)


def _hour_mean_lookup(fallback: dict, frame: pd.DataFrame) -> np.ndarray:
    # 24-slot lookup table; hours without data (and rows without an hour) take the overall mean
    table = np.full(24, float(fallback["overall_mean"]))
    for hour, mean in fallback["hour_means"].items():  # JSON round trips turn keys into text
        table[int(hour)] = float(mean)
    hours = pd.to_numeric(frame["local_hour"], errors="coerce").to_numpy(dtype=float)
    ok = ~np.isnan(hours)
    out = np.full(len(frame), float(fallback["overall_mean"]))
    out[ok] = table[hours[ok].astype(int) % 24]
    return out


# A reopening after a long closure (the 2020 closure of every park; a ride's refurbishment) is
# not a season: its first months ran at a level of their own (reduced capacity, few guests),
# and as the newest rows they weighed the most; the forecast after them ran low (real data, as
# of 2021-06-30: the model put Kilimanjaro Safaris' first half of July at 14 minutes, its late
# June at 20, July taken from 2020's twelve reopening days; over the rides, 20.6 minutes against
# 30.3 observed in the two weeks after). The rows of the REOPEN_DAYS after the entity's newest gap
# (two park dates with a target or a POSTED reading at least REOPEN_GAP_DAYS apart) weigh
# REOPEN_WEIGHT times their recency weight. One setting, chosen before it was run
# (bench/README.md, "A reopening is not a season"); in params_hash.
REOPEN_GAP_DAYS = 30
REOPEN_DAYS = 180
REOPEN_WEIGHT = 0.25


def reopening_date(frame: pd.DataFrame, posted: pd.DataFrame | None = None) -> date | None:
    """The first park date after the entity's newest gap (two consecutive park dates with a
    row at least REOPEN_GAP_DAYS apart), or None. The park dates are those of its target rows
    and of its POSTED sample (`posted`): a ride whose guests time it rarely is not closed while
    its sign is read."""
    parts = [f["park_date"] for f in (frame, posted) if f is not None and len(f)]
    if not parts:
        return None
    days = np.sort(pd.to_datetime(pd.concat(parts, ignore_index=True)).dt.normalize().unique())
    gaps = np.flatnonzero(np.diff(days) >= np.timedelta64(REOPEN_GAP_DAYS, "D"))
    return pd.Timestamp(days[gaps[-1] + 1]).date() if len(gaps) else None


def downweight_reopening(frame: pd.DataFrame, reopened: date | None) -> pd.DataFrame:
    """`frame` with the weight of its rows in the REOPEN_DAYS from `reopened` times
    REOPEN_WEIGHT (unchanged without a reopening or a weight column)."""
    if reopened is None or "weight" not in frame or not len(frame):
        return frame
    d = pd.to_datetime(frame["park_date"]).dt.normalize()
    start = pd.Timestamp(reopened)
    inside = ((d >= start) & (d < start + pd.Timedelta(days=REOPEN_DAYS))).to_numpy()
    return frame.assign(weight=np.where(inside, frame["weight"] * REOPEN_WEIGHT,
                                        frame["weight"]))


def train_entity(frame: pd.DataFrame, queue_type: str, nthread: int = 1,
                 posted: pd.DataFrame | None = None,
                 ratio_prior: float = POSTED_RATIO_PRIOR) -> TrainedEntity:
    """Train one entity's models from its target rows (see module docstring for the rules), and
    its POSTED model from `posted` (its rows of features.build_posted_frame) when given.
    `ratio_prior`: what a sparse entity's POSTED ratio is shrunk toward."""
    started = time.perf_counter()
    frame = frame.sort_values("observed_at", kind="stable").reset_index(drop=True)
    reopened = reopening_date(frame, posted)
    frame = downweight_reopening(frame, reopened)
    if posted is not None:
        posted = downweight_reopening(posted, reopened)
    entity = str(frame["entity_code"].iloc[0]) if len(frame) else ""
    split = chronological_split(frame)
    metrics: dict[str, Any] = {"rows": len(frame), "split": split_bounds(frame, split)}
    if reopened is not None:
        metrics["reopened"] = reopened.isoformat()
    models: dict[str, bytes] = {}
    features: dict[str, list[str]] = {}
    fallback = None
    if posted is not None and len(posted):
        posted = posted.sort_values("observed_at", kind="stable").reset_index(drop=True)
        # one mapping for both: days seen only in POSTED rows keep their own category codes
        encodings = fit_encodings(pd.concat([frame[CATEGORICAL_FEATURES],
                                             posted[CATEGORICAL_FEATURES]], ignore_index=True))
    else:
        encodings = fit_encodings(frame)
    if len(frame) < MIN_TARGETS_FOR_XGB:
        kind = FALLBACK_KIND
        at_test = _predict_fallback(_hour_means(frame[split == TRAIN]), frame[split == TEST])
        metrics[WITHOUT_POSTED] = model_metrics(frame, split, at_test, None)
        test_pred = at_test
        fallback = _hour_means(frame) | {
            "posted_ratio": round(posted_ratio(frame, ratio_prior), 4),
            "posted_ratio_prior": round(float(ratio_prior), 4)}
        metrics[WITHOUT_POSTED].update(fallback_band(fallback, frame))
    else:
        kind = "xgboost"
        models[WITHOUT_POSTED], metrics[WITHOUT_POSTED], test_pred = _train_xgb(
            frame, split, FEATURES_WITHOUT_POSTED, encodings, nthread, calibrate=True)
        features[WITHOUT_POSTED] = list(FEATURES_WITHOUT_POSTED)
        metrics[WITHOUT_POSTED].update(insample_band(
            models[WITHOUT_POSTED], encodings, frame, nthread))
        if queue_type != "PRIORITY":
            has_posted = frame["posted_matched"].notna().to_numpy()
            sub_split = split[has_posted]
            if has_posted.sum() < MIN_POSTED_ROWS:
                metrics["with_posted_skipped"] = f"{int(has_posted.sum())} rows with POSTED"
            elif not ((sub_split == TRAIN).any() and (sub_split == VAL).any()):
                metrics["with_posted_skipped"] = "no POSTED-matched rows in train or val days"
            else:
                sub = frame[has_posted].reset_index(drop=True)
                models[WITH_POSTED], metrics[WITH_POSTED], _ = _train_xgb(
                    sub, sub_split, FEATURES_WITH_POSTED, encodings, nthread)
                features[WITH_POSTED] = list(FEATURES_WITH_POSTED)
    if queue_type != "PRIORITY" and (ratio := chain_ratio(frame)) is not None:
        metrics[WITHOUT_POSTED]["chain_ratio"] = ratio
    if posted is not None:
        _train_posted(posted, encodings, nthread, models, metrics, features)
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return TrainedEntity(
        entity_code=entity, queue_type=queue_type, kind=kind, models=models,
        encodings=encodings, fallback=fallback, metrics=metrics,
        holdout_mae=metrics[WITHOUT_POSTED]["mae"], feature_names=features,
        test_rows=frame[split == TEST].reset_index(drop=True), test_pred=test_pred,
    )


def _train_posted(posted: pd.DataFrame, encodings: dict, nthread: int, models: dict,
                  metrics: dict, features: dict) -> None:
    """The POSTED model into `models`/`metrics`/`features`, or the reason it was skipped."""
    if "weight" in posted and len(posted):
        # weights relative to their mean (one factor per entity: the leaves, weighted medians, are
        # unchanged), so that min_child_weight counts rows
        posted = posted.assign(weight=posted["weight"] / posted["weight"].mean())
    p_split = chronological_split(posted)
    if len(posted) < MIN_POSTED_MODEL_ROWS:
        metrics["posted_skipped"] = f"{len(posted)} sampled POSTED rows"
    elif not ((p_split == TRAIN).any() and (p_split == VAL).any()):
        metrics["posted_skipped"] = "no POSTED rows in train or val days"
    else:
        raw, m, _ = _train_xgb(posted, p_split, FEATURES_WITHOUT_POSTED, encodings, nthread,
                               xgb_params=POSTED_XGB_PARAMS)
        metrics[POSTED_MODEL] = m | {"rows": len(posted)}
        mae, naive = m.get("mae"), m.get("naive_mae")
        if mae is not None and naive is not None and mae > naive * (1 + POSTED_NAIVE_TOLERANCE):
            # a model that loses to the naive median on its own newest days is no model: the
            # aggregates serve instead (metrics kept, so the reason is visible)
            metrics["posted_skipped"] = f"held-out MAE {mae:.2f} > naive {naive:.2f}"
        else:
            models[POSTED_MODEL] = raw
            features[POSTED_MODEL] = list(FEATURES_WITHOUT_POSTED)


@lru_cache(maxsize=16)
def _booster(raw: bytes) -> xgb.Booster:
    # forecasts call predict in chunks: parse each stored model once per process
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def _attr(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def predict(trained_or_loaded: Any, frame: pd.DataFrame, with_posted: bool,
            nthread: int | None = None, encoded: pd.DataFrame | None = None) -> np.ndarray:
    """Predicted minutes (>= 0), one per row of `frame` (columns as in build_training_frame).

    Works on a TrainedEntity or anything with the same fields (attribute or dict). with_posted
    uses the with-POSTED model when the version has one, else the without-POSTED model; a
    fallback version answers its hourly means, or with_posted its POSTED ratio x the row's
    POSTED reading where it has one (versions trained since the ratio is stored).
    """
    if _attr(trained_or_loaded, "kind") == FALLBACK_KIND:
        return _predict_fallback(_attr(trained_or_loaded, "fallback"), frame, with_posted)
    models = _attr(trained_or_loaded, "models")
    name = WITH_POSTED if with_posted and WITH_POSTED in models else WITHOUT_POSTED
    return _booster_predict(models[name], trained_or_loaded, frame, FEATURES_OF_MODEL[name],
                            nthread, encoded, name)


def _booster_of(raw: bytes, trained_or_loaded: Any, name: str | None) -> xgb.Booster:
    # a registry.LoadedModel parses each of its boosters once (LazyBoosters): use that one
    # rather than parsing the same bytes again here
    boosters = None if isinstance(trained_or_loaded, dict) else getattr(
        trained_or_loaded, "boosters", None)
    if name is not None and boosters is not None and name in boosters:
        return boosters[name]
    return _booster(bytes(raw))


def _booster_predict(raw: bytes, trained_or_loaded: Any, frame: pd.DataFrame,
                     default_names: list[str], nthread: int | None,
                     encoded: pd.DataFrame | None = None,
                     name: str | None = None) -> np.ndarray:
    """One stored booster's predictions (>= 0) on `frame`, encoded with the version's mappings
    (`encoded`: `encode(frame, the version's encodings)`, when the caller already has it).

    inplace_predict on one float32 array: the same values as a DMatrix built from the frame
    (XGBoost converts to float32 either way), without building the DMatrix, which cost a tenth
    of the forecast's time."""
    if len(frame) == 0:
        return np.zeros(0)
    booster = _booster_of(raw, trained_or_loaded, name)
    if nthread is not None:
        booster.set_param({"nthread": nthread})
    x = encode(frame, _attr(trained_or_loaded, "encodings")) if encoded is None else encoded
    names = booster.feature_names or default_names
    values = np.ascontiguousarray(x[names].to_numpy(dtype=np.float32))
    return np.asarray(booster.inplace_predict(values, missing=np.nan)).clip(min=0)


def predict_posted(trained_or_loaded: Any, frame: pd.DataFrame,
                   nthread: int | None = None,
                   encoded: pd.DataFrame | None = None) -> np.ndarray | None:
    """POSTED minutes (>= 0) per row of `frame` from the version's POSTED model; None when the
    version has none (older versions, too few POSTED rows): the caller falls back to the
    posted aggregates."""
    raw = (_attr(trained_or_loaded, "models") or {}).get(POSTED_MODEL)
    if raw is None:
        return None
    return _booster_predict(raw, trained_or_loaded, frame, FEATURES_WITHOUT_POSTED, nthread,
                            encoded, POSTED_MODEL)

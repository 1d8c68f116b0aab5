"""Incremental model updates: continue boosting the current XGBoost model on the new rows only.

For an entity with a current XGBoost model, few new targets and a recent full retrain, adding a
few trees fitted on the rows that arrived since the model's data end is much cheaper than a full
retrain (early stopping over up to 2,000 rounds plus the refit). The update keeps the stored
category encodings (values unseen then map to the reserved UNKNOWN code), so the new trees read
the same feature codes as the old ones.

The update window is the new rows, reaching back to a minimum row count (`update_window`).
Evaluation mirrors the full path: the window is split chronologically; a measuring booster is
continued on the older part and scored on the newest held-out days, where the incumbent is scored
too (`metrics["incumbent_mae"]`, for the record: the window may reach back into rows the
incumbent saw, so the promotion guard uses only the held-out rows after its data end, see
lib/models/guard.py); the shipped booster is then continued on all new rows. A full retrain
stays due at least weekly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.models import training
from bambam_assets.lib.models.metrics import (
    TEST,
    chronological_split,
    model_metrics,
    split_bounds,
)

FULL, INCREMENTAL, AUTO = "full", "incremental", "auto"
MODES = (AUTO, FULL, INCREMENTAL)


@dataclass(frozen=True)
class IncrementalPolicy:
    """When an update may be incremental, and how big it is."""

    max_new_targets: int = 2000  # auto mode: more new targets than this -> full retrain
    full_retrain_max_age: timedelta = timedelta(days=7)  # a full retrain at least this often
    # A few small steps: on a simulated week (bench/incremental_quality.py, 24 entities, 168
    # entity-days scored on the next day) 30 trees at the full fit's eta 0.1 on a 300-row
    # window were 6 % worse than a daily full retrain; 10 trees at eta 0.03 on a 1,000-row
    # window were as good (-0.9 %).
    rounds: int = 10  # trees added per update
    eta: float = 0.03  # learning rate of the added trees (the full fit's is training.XGB_PARAMS)
    # The update window: the rows since the model's data end, reaching further back until it
    # holds this many target rows (or all of the entity's rows, when it has fewer). ACTUAL
    # targets are sparse (a few a day for most rides), so one new day alone is too small to fit
    # or to score trees on; the older rows of the window (already seen by the incumbent) anchor
    # the added trees to recent behaviour.
    min_window_rows: int = 1000


@dataclass(frozen=True)
class BaseModel:
    """The current version an update continues from (picklable: plain bytes and dicts)."""

    version: int
    models: dict[str, bytes]
    encodings: dict
    data_end: str | None  # newest observed_at the version was trained on (ISO), if recorded
    test_end: str | None  # its newest park_date (fallback when data_end is not recorded)
    last_full_retrain_at: str | None
    reopened: str | None = None  # the reopening its full training saw (training.reopening_date)


def last_full_retrain_at(meta: dict) -> str | None:
    """When the entity's last FULL retrain happened: recorded by updates, else the version's own
    trained_at (versions written before incremental mode existed were all full retrains)."""
    metrics = meta.get("metrics") or {}
    if metrics.get("training_mode") == INCREMENTAL:
        return metrics.get("last_full_retrain_at")
    return metrics.get("last_full_retrain_at") or meta.get("trained_at")


def choose_mode(
    requested: str, meta: dict | None, new_targets: int, now: datetime, *, code_version: str,
    params_hash: str, policy: IncrementalPolicy | None = None,
) -> tuple[str, str]:
    """(FULL | INCREMENTAL, why) for one entity given its current version's meta.

    "incremental" forces an update wherever one is possible (ignores max_new_targets); "auto"
    also needs new_targets < policy.max_new_targets.
    """
    policy = policy or IncrementalPolicy()
    if requested not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {requested!r}")
    if requested == FULL:
        return FULL, "full retrain requested"
    if meta is None:
        return FULL, "no current model"
    if meta.get("kind") != "xgboost":
        return FULL, f"current model is {meta.get('kind')}"
    if meta.get("code_version") != code_version or meta.get("params_hash") != params_hash:
        return FULL, "training code or parameters changed"
    last_full = last_full_retrain_at(meta)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if last_full is None or now - datetime.fromisoformat(last_full) > policy.full_retrain_max_age:
        return FULL, f"last full retrain {last_full} older than {policy.full_retrain_max_age}"
    if requested == AUTO and new_targets >= policy.max_new_targets:
        return FULL, f"{new_targets} new targets >= {policy.max_new_targets}"
    return INCREMENTAL, f"{new_targets} new targets, last full retrain {last_full}"


def base_from_loaded(loaded: Any) -> BaseModel:
    """BaseModel from a registry.LoadedModel."""
    metrics = loaded.meta.get("metrics") or {}
    return BaseModel(
        version=int(loaded.version), models=dict(loaded.models), encodings=loaded.encodings,
        data_end=metrics.get("data_end"), test_end=(metrics.get("split") or {}).get("test_end"),
        last_full_retrain_at=last_full_retrain_at(loaded.meta),
        reopened=metrics.get("reopened"),
    )


def new_rows(frame: pd.DataFrame, base: BaseModel) -> pd.DataFrame:
    """The entity's rows the base version never saw, in time order (same columns as `frame`)."""
    frame = frame.sort_values("observed_at", kind="stable")
    if base.data_end:
        keep = frame["observed_at"] > pd.Timestamp(base.data_end)
    elif base.test_end:
        keep = pd.to_datetime(frame["park_date"]) > pd.Timestamp(base.test_end)
    else:
        keep = pd.Series(False, index=frame.index)
    return frame[keep.to_numpy()].reset_index(drop=True)


def update_window(frame: pd.DataFrame, base: BaseModel,
                  policy: IncrementalPolicy) -> tuple[pd.DataFrame, int]:
    """(the rows an update fits and scores on, how many of them are new), in time order.

    The window is every row the base never saw, extended back to `policy.min_window_rows` rows
    (at most all of the entity's rows) when the new rows alone are fewer.
    """
    new = new_rows(frame, base)
    if len(new) >= policy.min_window_rows:
        return new, len(new)
    ordered = frame.sort_values("observed_at", kind="stable")
    return ordered.tail(policy.min_window_rows).reset_index(drop=True), len(new)


def _continue(raw: bytes, x: pd.DataFrame, rows: pd.DataFrame, policy: IncrementalPolicy,
              nthread: int) -> xgb.Booster:
    booster = xgb.Booster()  # a fresh copy each time: xgb.train grows the model it is given
    booster.load_model(bytearray(raw))
    dtrain = xgb.DMatrix(x, label=rows["y"].to_numpy(dtype=float),
                         weight=rows["weight"].to_numpy(dtype=float), nthread=nthread,
                         missing=np.nan)
    params = training.XGB_PARAMS | {"nthread": nthread, "eta": policy.eta}
    return xgb.train(params, dtrain, policy.rounds, xgb_model=booster, verbose_eval=False)


def _predict(booster: xgb.Booster, x: pd.DataFrame) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    return booster.predict(xgb.DMatrix(x, missing=np.nan)).clip(min=0)


def continue_training(
    frame: pd.DataFrame, base: BaseModel, queue_type: str, nthread: int = 1,
    policy: IncrementalPolicy | None = None,
) -> training.TrainedEntity | None:
    """An incremental version from the entity's full frame, or None when there is no row to fit
    (the caller then trains in full)."""
    policy = policy or IncrementalPolicy()
    started = time.perf_counter()
    new, n_new = update_window(frame, base, policy)
    if new.empty:
        return None
    # the same weights as a full training: a reopening's first months weigh less (training.py).
    # The reopening is the one the full training found (it saw the POSTED sample too), or a
    # newer one that ended among the new rows (a closure since then; seen in the targets only)
    reopened = date.fromisoformat(base.reopened) if base.reopened else None
    newest = training.reopening_date(frame)
    # the window ends with its n_new new rows (update_window)
    if newest is not None and n_new and \
            pd.Timestamp(new["park_date"].iloc[len(new) - n_new]) <= pd.Timestamp(newest):
        reopened = newest
    new = training.downweight_reopening(new, reopened)
    split = chronological_split(new)
    metrics: dict[str, Any] = {"rows": int(len(new)), "new_rows": int(n_new),
                               "split": split_bounds(new, split)}
    if reopened is not None:
        metrics["reopened"] = reopened.isoformat()
    test_pred = np.zeros(0)
    models: dict[str, bytes] = {}
    features: dict[str, list[str]] = {}
    for name, raw in base.models.items():
        if name == training.POSTED_MODEL:  # fitted on POSTED rows: kept until the full retrain
            models[name], features[name] = raw, list(training.FEATURES_OF_MODEL[name])
            continue
        cols = training.FEATURES_OF_MODEL[name]
        rows, sub_split = new, split
        if name == training.WITH_POSTED:
            has = new["posted_matched"].notna().to_numpy()
            rows, sub_split = new[has].reset_index(drop=True), split[has]
            if not (sub_split != TEST).any():
                continue  # nothing to add: the shipped version simply drops the POSTED model
        x = training.encode(rows, base.encodings)[cols]
        measuring = _continue(raw, x[sub_split != TEST], rows[sub_split != TEST],
                              policy, nthread)
        incumbent = xgb.Booster()
        incumbent.load_model(bytearray(raw))
        at_test = x[sub_split == TEST]
        measured = _predict(measuring, at_test)
        m = model_metrics(rows, sub_split, measured, None)
        if name == training.WITHOUT_POSTED:
            test_pred = measured
        inc_pred = _predict(incumbent, at_test)
        y_test = rows["y"].to_numpy(dtype=float)[sub_split == TEST]
        m["incumbent_mae"] = float(np.abs(inc_pred - y_test).mean()) if len(y_test) else None
        metrics[name] = m
        final = _continue(raw, x, rows, policy, nthread)
        models[name] = bytes(final.save_raw("ubj"))
        features[name] = list(cols)
        metrics[name]["rounds"] = int(final.num_boosted_rounds())
    if training.WITHOUT_POSTED not in models:
        return None
    main = metrics[training.WITHOUT_POSTED]
    # The band's offsets stored with the version, as a full retrain stores them: in-sample on
    # the newest rows this update read (its window and the rows read with it, time order), so
    # the forecast reads no training rows for it. Without it, every daily forecast of the
    # updated entities read their whole history again in the parent (35 of a 185 s forecast
    # step at 1,694 entities, bench/full_bench.py profiled). The newest 30 % (at least 200) of
    # the rows read, not of the whole history: the same rows up to the tail read's size.
    read = frame.sort_values("observed_at", kind="stable").reset_index(drop=True)
    main.update(training.insample_band(models[training.WITHOUT_POSTED], base.encodings, read,
                                       nthread))
    if queue_type != "PRIORITY" and (ratio := training.chain_ratio(read)) is not None:
        main["chain_ratio"] = ratio  # on the rows this update read, its newest
    metrics.update(
        training_mode=INCREMENTAL, base_version=base.version, rounds_added=policy.rounds,
        last_full_retrain_at=base.last_full_retrain_at, incumbent_mae=main["incumbent_mae"],
        data_end=pd.Timestamp(new["observed_at"].max()).isoformat(),
        seconds=round(time.perf_counter() - started, 3),
    )
    return training.TrainedEntity(
        entity_code=str(frame["entity_code"].iloc[0]), queue_type=queue_type, kind="xgboost",
        models=models, encodings=base.encodings, fallback=None, metrics=metrics,
        holdout_mae=main["mae"], feature_names=features,
        test_rows=new[split == TEST].reset_index(drop=True), test_pred=test_pred,
    )

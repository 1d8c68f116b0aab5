"""The legacy way of training ONE entity, as a fresh process (`scripts/train_entity_model.py`).

    python -m bench.legacy_train --base DIR --entity MK101 --as-of 2025-12-31

DIR is the legacy's output_base (written from a Bambam home by bench.legacy_base). Like the
legacy (spec §4 `load_entity_data`, §5, §7):
- it reads EVERY `fact_tables/clean/**/{park}_*.csv` of the entity's park in full with plain
  pandas (all dates, all entities of the park: no pruning) and filters the entity's rows in
  memory;
- queue type from `dimension_tables/dimentity.csv` (fastpass_booth -> PRIORITY);
- features in plain pandas (bench.legacy_features: Bambam's feature set, the legacy's way of
  building it, dimension tables read from the CSVs), categories label-encoded with the global
  mapping file (strategy `encode`), nulls filled per split (median / mode);
- XGBoost with the legacy's CURRENT parameters (since e4c3304): up to 2000 rounds with early
  stopping after 50 rounds without improvement of the validation MAE (evals [train, val], the
  last one monitored), no sample weights, nthread not capped; with- and without-POSTED models
  for STANDBY, without-POSTED for PRIORITY; a mean model under 500 targets (only reached when
  the entity is listed explicitly: the batch's index query never selects one, bench.legacy_index);
- it saves the models as the legacy did (`models/{entity}/model_{with,without}_posted.json`,
  booster JSON, and `metadata_*.json` with the feature names), which bench.legacy_forecast loads.
It prints one JSON line with the test-split MAE, the rounds and the timings.

Not copied (the issue allows it): the per-row Python loops (timestamps, POSTED matching). Kept
for a comparable MAE (see bench/README.md): the chronological split is Bambam's (by the entity's
target park_dates, so both sides score the same test days), PRIORITY targets exclude 8888, the
data is scanned once (the legacy scanned it twice), test predictions use the booster as
`xgb.train` returns it. So the legacy figures here are a lower bound of its real cost.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.core.parks import park_of_entity, tz_of_park
from bambam_assets.lib.models.features import FEATURES_WITH_POSTED, FEATURES_WITHOUT_POSTED
from bambam_assets.lib.models.metrics import TEST, TRAIN, VAL, chronological_split
from bambam_assets.lib.models.training import (
    EARLY_STOPPING,
    MAX_ROUNDS,
    MIN_TARGETS_FOR_XGB,
    XGB_PARAMS,
)
from bench import legacy_features as lf
from bench.legacy_base import FACTS, legacy_park

SOLD_OUT = 8888
MODELS = Path("models")


def load_entity(base: Path, entity: str, tz: str) -> tuple[pd.DataFrame, int, int]:
    """The entity's rows (observed_at UTC, type, value, park_date) found by reading every clean
    file of its park in full; also (rows read, files read)."""
    paths = sorted((base / FACTS).glob(f"**/{legacy_park(park_of_entity(entity))}_*.csv"))
    frames = [pd.read_csv(p) for p in paths]
    every = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["entity_code", "observed_at", "wait_time_type", "wait_time_minutes"])
    mine = every[every["entity_code"] == entity]
    rows = pd.DataFrame({
        "observed_at": pd.to_datetime(mine["observed_at"], utc=True, format="ISO8601"),
        "type": mine["wait_time_type"],
        "value": pd.to_numeric(mine["wait_time_minutes"], errors="coerce")})
    rows["park_date"] = lf.park_date(rows["observed_at"], tz)
    return rows.reset_index(drop=True), len(every), len(paths)


def queue_type_of(base: Path, entity: str) -> str:
    """PRIORITY when dimentity marks the entity as a fastpass booth, else STANDBY."""
    ents = pd.read_csv(base / lf.DIMS / "dimentity.csv", dtype=str)
    row = ents[ents["entity_code"].str.strip().str.upper() == entity]
    booth = row["fastpass_booth"].fillna("").str.strip().str.lower().isin(["1", "true", "t", "yes"])
    return "PRIORITY" if booth.any() else "STANDBY"


def train_model(x: pd.DataFrame, y: np.ndarray, split: np.ndarray
                ) -> tuple[xgb.Booster, float | None, int]:
    """Up to 2000 rounds, early stopping 50 on the validation MAE, no weights; returns
    (booster, test-split MAE, rounds trained)."""
    dtrain = xgb.DMatrix(x[split == TRAIN], label=y[split == TRAIN])
    has_val = bool((split == VAL).any())
    evals = [(dtrain, "train")]
    if has_val:
        evals.append((xgb.DMatrix(x[split == VAL], label=y[split == VAL]), "val"))
    booster = xgb.train(XGB_PARAMS, dtrain, MAX_ROUNDS, evals=evals,
                        early_stopping_rounds=EARLY_STOPPING if has_val else None,
                        verbose_eval=False)
    rounds = booster.num_boosted_rounds()
    if not (split == TEST).any():
        return booster, None, rounds
    pred = booster.predict(xgb.DMatrix(x[split == TEST]))
    return booster, float(np.abs(pred - y[split == TEST]).mean()), rounds


def _save(base: Path, entity: str, name: str, booster: xgb.Booster | None, meta: dict) -> None:
    """models/{entity}/model_{name}.json (booster JSON) and metadata_{name}.json; a mean model
    has no booster file (a stale one is removed: the legacy's stale-JSON quirk not copied)."""
    folder = base / MODELS / entity
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"model_{name}.json"
    if booster is not None:
        booster.save_model(str(model_path))
    elif model_path.exists():
        model_path.unlink()
    meta = {"entity_code": entity, "created_at": datetime.now(UTC).isoformat()} | meta
    (folder / f"metadata_{name}.json").write_text(json.dumps(meta, indent=1))


def train_entity(base: Path, entity: str, queue_type: str, as_of: date) -> dict:
    """The whole legacy job for one entity; returns the JSON record."""
    t0 = time.perf_counter()
    park = park_of_entity(entity)
    tz = tz_of_park(park)
    rows, scanned, files = load_entity(base, entity, tz)
    rows = rows[rows["park_date"] <= pd.Timestamp(as_of)]
    target_type = "PRIORITY" if queue_type == "PRIORITY" else "ACTUAL"
    targets = rows[(rows["type"] == target_type) & (rows["value"] != SOLD_OUT)]
    targets = targets.rename(columns={"value": "y"})[["observed_at", "park_date", "y"]]
    t1 = time.perf_counter()
    out = {"entity": entity, "queue_type": queue_type, "files_read": files,
           "rows_scanned": scanned, "entity_rows": len(rows), "targets": len(targets)}
    mae, mae_wp, n_test, rounds = None, None, 0, {}
    if len(targets) < MIN_TARGETS_FOR_XGB:
        out["kind"] = "mean"
        targets = targets.sort_values("observed_at", kind="stable")
        split = chronological_split(targets)
        y = targets["y"].to_numpy(dtype=float)
        n_test = int((split == TEST).sum())
        if n_test and (split == TRAIN).any():
            mae = float(np.abs(y[split == TEST] - y[split == TRAIN].mean()).mean())
        t2 = time.perf_counter()
        mean = float(y.mean()) if len(y) else 0.0
        for name in ("with_posted", "without_posted"):
            _save(base, entity, name, None, {"model_type": "mean", "mean_wait_time": mean,
                                             "observation_count": len(y), "feature_names": []})
        t3 = time.perf_counter()
    else:
        out["kind"] = "xgboost"
        posted = rows[rows["type"] == "POSTED"]
        frame = lf.add_features(targets, lf.read_calendar(base), lf.read_season(base),
                                lf.read_park_hours(base, park), tz)
        frame = lf.add_posted(frame, posted)
        frame["park_code"], frame["entity_code"] = park, entity
        codes = lf.encode(frame, base, "encode")
        split = chronological_split(frame)
        n_test = int((split == TEST).sum())
        y = frame["y"].to_numpy(dtype=float)
        t2 = time.perf_counter()
        models = [("without_posted", FEATURES_WITHOUT_POSTED)]
        if queue_type != "PRIORITY" and len(posted):
            models.append(("with_posted", FEATURES_WITH_POSTED))
        for name, features in models:
            x = lf.fill_per_split(lf.design(frame, codes, features), split)
            booster, test_mae, rounds[name] = train_model(x, y, split)
            _save(base, entity, name, booster, {"model_type": name, "feature_names": features,
                                                "metrics": {"mae": test_mae},
                                                "xgb_params": XGB_PARAMS})
            mae, mae_wp = (test_mae, mae_wp) if name == "without_posted" else (mae, test_mae)
        t3 = time.perf_counter()
    out.update(test_mae=mae, test_mae_with_posted=mae_wp, n_test=n_test, rounds=rounds,
               seconds_load=round(t1 - t0, 3), seconds_features=round(t2 - t1, 3),
               seconds_train=round(t3 - t2, 3), seconds=round(t3 - t0, 3))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the legacy output_base "
                    "(bench.legacy_base)")
    ap.add_argument("--entity", required=True)
    ap.add_argument("--queue-type", default=None, help="STANDBY or PRIORITY (default: from "
                    "dimentity, fastpass_booth true -> PRIORITY)")
    ap.add_argument("--as-of", type=date.fromisoformat, required=True)
    args = ap.parse_args(argv)
    entity = args.entity.strip().upper()
    queue_type = args.queue_type or queue_type_of(args.base, entity)
    print(json.dumps(train_entity(args.base, entity, queue_type, args.as_of)), flush=True)


if __name__ == "__main__":
    main()

"""The shared (global) model: one XGBoost over every entity's target rows (pure: no dagster).

Why: a ride with little history has only its opening weeks to learn from, and nothing else borrows
from similar rides. The global model learns the usual non-POSTED features (features.py) plus the
ride's park and attributes from dim_entity (queue type, duration, height restriction, flags), never
the entity's identity, so a new ride is predicted like the rides it resembles. It predicts in
units of the ride's POSTED level (median POSTED over the LEVEL_DAYS up to as_of, from its many
POSTED rows: a new ride has thousands of them but few timed actuals): the label is
ACTUAL / level with sample weight recency x level (so the absolute-error objective is the MAE in
minutes), the prediction ratio x level. Trees cannot extrapolate a level no training ride has
(Flight of Passage waits twice Everest's); a ratio can. Entities without POSTED get no level and
are neither trained on nor blended. The cold-start blend
(lib/forecasts/cold_start.py) mixes it with the entity's own model.

Bounded cost: the training rows are a deterministic Bernoulli sample of every target row (hash of
the row) capped at ROW_CAP expected rows, with the recency weight 0.5^(days_ago/365) as sample
weight; rounds are capped at MAX_ROUNDS. Rows of young entities (first target less than
cold_start's MATURE_DAYS before as_of) are left out, so a new ride's opening weeks never become
the prior it is shrunk toward (unless no entity is mature: then every row is used).

Stored like an entity's models (lib/models/registry.py: version dirs, CURRENT, meta.json,
promotion guard) under `{home}/global_model/global/`. Retraining rule (`retrain_due`): no current
model, a changed code version, target rows grown by RETRAIN_GROWTH since the current one, or its
data as-of at least RETRAIN_DAYS old.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.core.schema import POSTED
from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.models import guard, registry
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    TARGETS_SQL,
    compact_strings,
    feature_ctes_sql,
    target_params,
)
from bambam_assets.lib.models.metrics import (
    TEST,
    TRAIN,
    VAL,
    chronological_split,
    regression_metrics,
    split_bounds,
)
from bambam_assets.lib.models.training import UNKNOWN, XGB_PARAMS, encode, fit_encodings

GLOBAL_DIR = "global_model"  # under the home, beside models/ (not an entity dir)
GLOBAL_KEY = "global"  # the registry "entity" name of the global model
GLOBAL_CODE_VERSION = "2"  # 2: park_year replaces season_year
ROW_CAP = 2_000_000  # expected sampled training rows, whatever the estate's size
MAX_ROUNDS = 600
EARLY_STOPPING = 30
RETRAIN_DAYS = 7
RETRAIN_GROWTH = 0.10
RECENCY_HALF_LIFE_DAYS = 365
LEVEL_DAYS = 365
EXCLUDE_YOUNGER_THAN_DAYS = 180  # = cold_start.MATURE_DAYS (lib/models never imports forecasts)

# ride attributes from dim_entity: numeric (booleans as 0/1) and categorical
ATTRIBUTE_NUMERIC: list[str] = [
    "duration", "height_restriction", "fastpass_booth", "single_rider", "intense", "seasonal",
    "open_emh_morning", "open_emh_evening", "posted_level",
]
ATTRIBUTE_CATEGORICAL: list[str] = ["park_code", "queue_type"]
GLOBAL_FEATURES: list[str] = FEATURES_WITHOUT_POSTED + ATTRIBUTE_NUMERIC + ATTRIBUTE_CATEGORICAL


def global_root(home: Path) -> Path:
    """The registry root of the global model (`registry.*(global_root(home), GLOBAL_KEY)`)."""
    return Path(home) / GLOBAL_DIR


def params_hash() -> str:
    text = repr((sorted(XGB_PARAMS.items()), MAX_ROUNDS, EARLY_STOPPING, ROW_CAP,
                 GLOBAL_FEATURES, RECENCY_HALF_LIFE_DAYS, EXCLUDE_YOUNGER_THAN_DAYS))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def attributes_sql() -> str:
    """SELECT list of the attribute columns of dim_entity alias `e` and levels alias `lv`."""
    nums = [f"CAST(e.{c} AS DOUBLE) AS {c}" for c in ATTRIBUTE_NUMERIC if c != "posted_level"]
    return ", ".join(nums + ["lv.posted_level"])


# CTE `levels`: one row per entity with POSTED in the LEVEL_DAYS up to $as_of
LEVELS_CTE = """
levels AS (
    SELECT entity_code, CAST(median(wait_time_minutes) AS DOUBLE) AS posted_level
    FROM fct_wait_times
    WHERE wait_time_type = $posted AND wait_time_minutes IS NOT NULL
      AND park_date <= $as_of AND park_date > $as_of::DATE - $level_days::INTEGER
    GROUP BY entity_code HAVING median(wait_time_minutes) > 0
)"""


_FRAME_SQL = """
WITH {targets},
young AS (
    SELECT entity_code FROM targets GROUP BY entity_code
    HAVING min(park_date) > $as_of::DATE - $young_days::INTEGER
),
kept AS (
    SELECT * FROM targets
    WHERE ($use_young OR entity_code NOT IN (SELECT entity_code FROM young))
      AND hash(entity_code, observed_at, y) % 1000000 < $keep_ppm
),
{features},
{levels}
SELECT t.entity_code, t.park_code, t.park_date, t.observed_at, t.queue_type,
       CAST(t.y AS DOUBLE) AS y, {feature_cols}, {attrs},
       power(0.5, date_diff('day', t.park_date, $as_of::DATE) / $half_life) AS weight
FROM featured t
JOIN levels lv USING (entity_code)
LEFT JOIN (SELECT * FROM dim_entity QUALIFY row_number() OVER (PARTITION BY entity_code) = 1) e
  USING (entity_code)
ORDER BY t.park_date, t.entity_code, t.observed_at, t.y
"""

_COUNT_SQL = """
WITH {targets},
young AS (
    SELECT entity_code FROM targets GROUP BY entity_code
    HAVING min(park_date) > $as_of::DATE - $young_days::INTEGER
)
SELECT count(*) AS n_all,
       count(*) FILTER (WHERE entity_code NOT IN (SELECT entity_code FROM young)) AS n_mature
FROM targets
"""


def target_total(conn: duckdb.DuckDBPyConnection, as_of: date) -> tuple[int, int]:
    """(all target rows, target rows of mature entities) up to as_of: one scan."""
    params = {**target_params(None, as_of), "young_days": EXCLUDE_YOUNGER_THAN_DAYS}
    del params["park_codes"], params["park_tzs"]
    n_all, n_mature = conn.execute(_COUNT_SQL.format(targets=TARGETS_SQL.strip()),
                                   params).fetchone()
    return int(n_all or 0), int(n_mature or 0)


def build_global_frame(conn: duckdb.DuckDBPyConnection, as_of: date,
                       row_cap: int = ROW_CAP) -> pd.DataFrame:
    """The sampled training rows of the global model.

    Grain: one row per sampled TARGET observation (the rules of features.build_training_frame)
    with park_date <= as_of, of the mature entities (all entities when none is mature). Columns:
    entity_code, park_code, park_date, observed_at, queue_type, y, GLOBAL_FEATURES, weight.
    """
    n_all, n_mature = target_total(conn, as_of)
    use_young = n_mature == 0
    n = n_all if use_young else n_mature
    keep_ppm = 1_000_000 if n <= row_cap else int(1_000_000 * row_cap / n)
    feature_cols = ", ".join(f"t.{c}" if c in CATEGORICAL_FEATURES
                             else f"CAST(t.{c} AS DOUBLE) AS {c}" for c in FEATURES_WITHOUT_POSTED)
    sql = _FRAME_SQL.format(targets=TARGETS_SQL.strip(), features=feature_ctes_sql("kept"),
                            feature_cols=feature_cols, attrs=attributes_sql(),
                            levels=LEVELS_CTE.strip())
    params = {**target_params(None, as_of), "young_days": EXCLUDE_YOUNGER_THAN_DAYS,
              "use_young": use_young, "keep_ppm": keep_ppm,
              "half_life": float(RECENCY_HALF_LIFE_DAYS), "posted": POSTED,
              "level_days": LEVEL_DAYS}
    with step(conn, f"global model training rows (~{min(n, row_cap):,} of {n:,})"):
        return compact_strings(conn.execute(sql, params).df())


def fit_global_encodings(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """training.fit_encodings plus the attribute categories (park_code, queue_type)."""
    out = fit_encodings(frame)
    for col in ATTRIBUTE_CATEGORICAL:
        values = sorted(frame[col].dropna().astype(str).unique()) if col in frame else []
        out[col] = {v: i for i, v in enumerate(values)} | {UNKNOWN: len(values)}
    return out


def encode_global(frame: pd.DataFrame, encodings: dict) -> pd.DataFrame:
    """GLOBAL_FEATURES of `frame` as float64 (categories coded, unseen -> UNKNOWN, null NaN)."""
    out = encode(frame, encodings).reindex(columns=FEATURES_WITHOUT_POSTED)
    for col in ATTRIBUTE_NUMERIC:
        out[col] = (pd.to_numeric(frame[col], errors="coerce").astype("float64")
                    if col in frame else np.nan)
    for col in ATTRIBUTE_CATEGORICAL:
        mapping = {k: v for k, v in encodings.get(col, {}).items() if k != UNKNOWN}
        unknown = float(encodings.get(col, {}).get(UNKNOWN, len(mapping)))
        values = frame[col].astype("string") if col in frame else pd.Series(
            pd.NA, index=frame.index, dtype="string")
        codes = values.map(mapping).astype("float64")
        out[col] = codes.where(values.isna() | codes.notna(), unknown)
    return out[GLOBAL_FEATURES]


@dataclass
class TrainedGlobal:
    """One trained version of the global model (registry.TrainedLike)."""

    models: dict[str, bytes]
    encodings: dict
    metrics: dict
    holdout_mae: float | None
    entity_code: str = GLOBAL_KEY
    queue_type: str = "ALL"
    kind: str = "xgboost_global"
    fallback: dict | None = None
    feature_names: dict[str, list[str]] = field(
        default_factory=lambda: {"without_posted": list(GLOBAL_FEATURES)})
    # transient, never stored: the held-out rows and the early-stopped booster's predictions
    # on them, for the promotion guard (lib/models/guard.py)
    test_rows: pd.DataFrame | None = None
    test_pred: np.ndarray | None = None


def _dm(x: pd.DataFrame, frame: pd.DataFrame | None, weighted: bool, nthread: int):
    # label: ACTUAL / level; weight: level (x recency when `weighted`), so the objective is the
    # absolute error in minutes, |y - r * level| = level * |y / level - r|
    if frame is None:
        return xgb.DMatrix(x, missing=np.nan, nthread=nthread)
    level = frame["posted_level"].to_numpy(float)
    weight = level * (frame["weight"].to_numpy(float) if weighted else 1.0)
    return xgb.DMatrix(x, label=frame["y"].to_numpy(float) / level, weight=weight,
                       missing=np.nan, nthread=nthread)


def train_global(frame: pd.DataFrame, nthread: int = 2) -> TrainedGlobal:
    """Early-stop on the validation days, score the test days, refit on all rows (as training.py).

    The split is chronological over the frame's park dates (70/15/15), the holdout MAE the
    test-split MAE (the registry's promotion guard).
    """
    frame = frame[frame["posted_level"] > 0]
    if frame.empty:
        raise ValueError("no training rows for the global model")
    started = time.perf_counter()
    frame = frame.sort_values(["park_date", "observed_at"], kind="stable").reset_index(drop=True)
    split = chronological_split(frame)
    params = XGB_PARAMS | {"nthread": nthread}
    enc_train = fit_global_encodings(frame[split == TRAIN])
    x = encode_global(frame, enc_train)
    dtrain = _dm(x[split == TRAIN], frame[split == TRAIN], True, nthread)
    dval = _dm(x[split == VAL], frame[split == VAL], False, nthread)
    booster = xgb.train(params, dtrain, MAX_ROUNDS, evals=[(dval, "val")],
                        early_stopping_rounds=EARLY_STOPPING, verbose_eval=False)
    best = int(booster.best_iteration)
    test = frame[split == TEST]
    pred = booster.predict(_dm(x[split == TEST], None, False, nthread),
                           iteration_range=(0, best + 1)).clip(min=0)
    pred = pred * test["posted_level"].to_numpy(float)
    metrics: dict[str, Any] = dict(regression_metrics(test["y"].to_numpy(float), pred))
    metrics |= {"best_iteration": best, "n_train": int((split == TRAIN).sum()),
                "n_val": int((split == VAL).sum()), "n_test": int((split == TEST).sum()),
                "rows": len(frame), "entities": int(frame["entity_code"].nunique()),
                "split": split_bounds(frame, split)}
    encodings = fit_global_encodings(frame)
    final = xgb.train(params, _dm(encode_global(frame, encodings), frame, True, nthread), best + 1)
    metrics["rounds"] = int(final.num_boosted_rounds())
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return TrainedGlobal({"without_posted": bytes(final.save_raw("ubj"))}, encodings,
                         {"without_posted": metrics,
                          "data_end": pd.Timestamp(frame["observed_at"].max()).isoformat()},
                         metrics["mae"], test_rows=test.reset_index(drop=True), test_pred=pred)


def predict_global(model: Any, frame: pd.DataFrame, nthread: int | None = None) -> np.ndarray:
    """Predicted minutes (>= 0) per row of `frame` (FEATURES_WITHOUT_POSTED + attributes).

    `model` is a TrainedGlobal, a registry.LoadedModel or a GlobalSnapshot (fields `models`,
    `encodings`)."""
    if len(frame) == 0:
        return np.zeros(0)
    booster = xgb.Booster()
    booster.load_model(bytearray(model.models["without_posted"]))
    if nthread is not None:
        booster.set_param({"nthread": nthread})
    ratio = booster.predict(xgb.DMatrix(encode_global(frame, model.encodings), missing=np.nan))
    return (ratio * pd.to_numeric(frame["posted_level"], errors="coerce").to_numpy(float)).clip(0)


class GlobalRows:
    """The global model ready to predict one set of rows for many entities (a forecast chunk:
    one park's distinct feature rows, 25 entities): the booster parsed once and the rows'
    features encoded once; per entity only its attribute columns change. The same values as
    `predict_global` on `frame.assign(**attributes)` (XGBoost reads float32 either way).
    Parsing the booster and encoding the rows again for every young entity was 79 of the 300
    CPU seconds of a daily forecast at 1,694 entities (bench/full_bench.py, profiled)."""

    def __init__(self, model: Any, frame: pd.DataFrame, nthread: int | None = None) -> None:
        self._booster = xgb.Booster()
        self._booster.load_model(bytearray(model.models["without_posted"]))
        if nthread is not None:
            self._booster.set_param({"nthread": nthread})
        self._encodings = model.encodings
        names = list(self._booster.feature_names or GLOBAL_FEATURES)
        self._col = {name: j for j, name in enumerate(names)}
        base = encode(frame, model.encodings).reindex(columns=FEATURES_WITHOUT_POSTED)
        self._x = np.full((len(frame), len(names)), np.nan, dtype=np.float32)
        for col in FEATURES_WITHOUT_POSTED:
            self._x[:, self._col[col]] = base[col].to_numpy(dtype=np.float32)

    def predict(self, attributes: dict) -> np.ndarray:
        """Predicted minutes (>= 0) per row for one entity's attribute values."""
        if len(self._x) == 0:
            return np.zeros(0)
        # the attributes coded by encode_global itself, on one row: one rule for both paths
        codes = encode_global(pd.DataFrame([attributes]), self._encodings).iloc[0]
        for col in ATTRIBUTE_NUMERIC + ATTRIBUTE_CATEGORICAL:
            self._x[:, self._col[col]] = codes[col]
        # float64 as predict_global's product (a float32 array times a Python float stays float32)
        ratio = np.asarray(self._booster.inplace_predict(self._x, missing=np.nan), np.float64)
        return (ratio * float(codes["posted_level"])).clip(0)


def holdout_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's chronological test split (the challenger's held-out days)."""
    frame = frame.sort_values(["park_date", "observed_at"], kind="stable").reset_index(drop=True)
    return frame[chronological_split(frame) == TEST]


def retrain_due(root: Path, target_count: int, as_of: date) -> tuple[bool, str]:
    """Whether the global model needs a new version, and why (the retraining rule)."""
    current = registry.current_version(root, GLOBAL_KEY)
    if current is None:
        return True, "no current global model"
    meta = registry.read_meta(root, GLOBAL_KEY, current)
    if meta.get("code_version") != f"{GLOBAL_CODE_VERSION}-{params_hash()}":
        return True, "code or parameters changed"
    trained_as_of = date.fromisoformat(meta.get("metrics", {}).get("as_of", "1970-01-01"))
    if (as_of - trained_as_of).days >= RETRAIN_DAYS:
        return True, f"data as of {trained_as_of}, {RETRAIN_DAYS}+ days before {as_of}"
    before = int(meta.get("target_count") or 0)
    if target_count >= before * (1 + RETRAIN_GROWTH):
        return True, f"target rows grew {before:,} -> {target_count:,} (>= {RETRAIN_GROWTH:.0%})"
    return False, f"current v{current} as of {trained_as_of}, {before:,} target rows: not due"


@dataclass
class GlobalRead:
    """What one global-model step read (the DuckDB part, done before training)."""

    as_of: date
    due: bool
    reason: str
    target_rows: int
    frame: pd.DataFrame | None  # the sampled training rows when due


def read_if_due(conn: duckdb.DuckDBPyConnection, home: Path, as_of: date,
                force: bool = False) -> GlobalRead:
    """Apply the retraining rule; when due (or forced) read the sampled training rows."""
    n_all, _ = target_total(conn, as_of)
    due, reason = retrain_due(global_root(home), n_all, as_of)
    if force and not due:
        due, reason = True, f"forced ({reason})"
    frame = build_global_frame(conn, as_of) if due else None
    return GlobalRead(as_of, due, reason, n_all, frame)


def train_and_save(read: GlobalRead, home: Path, nthread: int = 2) -> dict:
    """Train on `read.frame`, score the incumbent on the challenger's test days and save a
    version (promotion-guarded). Returns a summary dict for metadata (no DuckDB)."""
    root = global_root(home)
    if not read.due or read.frame is None or read.frame.empty:
        why = read.reason if not read.due else "no training rows"
        return {"trained": False, "reason": why,
                "current_version": registry.current_version(root, GLOBAL_KEY),
                "target_rows": read.target_rows}
    frame = read.frame
    trained = train_global(frame, nthread=nthread)
    trained.metrics["as_of"] = read.as_of.isoformat()
    code_version = f"{GLOBAL_CODE_VERSION}-{params_hash()}"
    incumbent = guard.read_incumbent(root, GLOBAL_KEY)
    if incumbent is not None:
        if incumbent.data_end is None:  # versions before the guard recorded it: their as_of
            as_of = (registry.read_meta(root, GLOBAL_KEY, incumbent.version).get("metrics")
                     or {}).get("as_of")
            incumbent = replace(incumbent, test_end=as_of)
        trained.metrics["guard"] = guard.evidence(
            trained.test_rows, trained.test_pred, incumbent, challenger_kind=trained.kind,
            mode="full", now=datetime.now(UTC), code_version=code_version,
            params_hash=params_hash(),
            predict=lambda model, rows: predict_global(model, rows, nthread))
    trained.test_rows = trained.test_pred = None
    outcome = registry.save_version(
        root, trained, code_version=code_version, params_hash=params_hash(),
        target_count=read.target_rows, guard=trained.metrics.get("guard"))
    m = trained.metrics["without_posted"]
    return {"trained": True, "reason": read.reason, "version": outcome.version,
            "promoted": outcome.promoted, "decision": outcome.decision,
            "current_version": registry.current_version(root, GLOBAL_KEY),
            "rows": m["rows"], "entities": m["entities"], "mae": m["mae"],
            "rounds": m["rounds"], "seconds": m["seconds"], "target_rows": read.target_rows}

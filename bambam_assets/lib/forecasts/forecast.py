"""Two-year forecast curves per entity (legacy §9.1, without its per-slot reloads).

For each park, the slots of as_of+1 .. as_of+horizon (dim_park_hours: official, metatable or donor
hours) get their features in ONE DuckDB query through `features.feature_ctes_sql`, so they are
exactly the training features. The non-POSTED features do not depend on the entity, so a park's
slot features are built once and shared by all its entities, and each entity's model predicts
each DISTINCT feature row once (the result is spread back to the slots by an inverse index).
`posted_predicted` comes from the posted-aggregates fallback chain, looked up in one join for all
(entity, date_group_id, local hour) keys of an entity chunk.

The caller reads from DuckDB in the parent process only, one short read per park and entity
chunk (a read connection held open would block the warehouse writer), then predicts in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.band import apply_band, fit_band
from bambam_assets.lib.forecasts.posted_aggregates import lookup_cte_sql
from bambam_assets.lib.forecasts.slots import slots_cte_sql
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    build_training_frame,
    feature_ctes_sql,
    park_params,
)

DEFAULT_HORIZON_DAYS = 730
ENTITY_CHUNK = 25  # entities whose inputs are read in one go (bounds the parent's memory)
MODEL, POSTED_ONLY, NO_DATA, FAILED = "model", "posted_only", "no_data", "failed"

Reader = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def _feature_columns_sql() -> str:
    # numeric features as DOUBLE (NULL -> NaN), as build_training_frame returns them
    return ", ".join(c if c in CATEGORICAL_FEATURES else f"CAST({c} AS DOUBLE) AS {c}"
                     for c in FEATURES_WITHOUT_POSTED)


@dataclass
class SlotFeatures:
    """A park's future slots with features, their distinct feature rows and lookup keys."""

    frame: pd.DataFrame  # one row per slot: park_code, park_date, slot, slot_start, features
    distinct: pd.DataFrame  # one row per distinct feature row
    inverse: np.ndarray  # slot row -> row of `distinct`
    keys: pd.DataFrame  # one row per distinct (date_group_id, hour)
    key_inverse: np.ndarray  # slot row -> row of `keys`


def slot_features(conn: duckdb.DuckDBPyConnection, park_code: str, start: date,
                  end: date) -> SlotFeatures:
    """Features of every slot of `park_code` for park dates start..end (one query)."""
    sql = f"""
    WITH hours AS (
        SELECT * FROM dim_park_hours
        WHERE park_code = $park AND park_date BETWEEN $start AND $end
    ),
    {slots_cte_sql("hours")},
    base AS (SELECT CAST(NULL AS VARCHAR) AS entity_code, park_code, park_date,
                    slot_start AS observed_at, slot FROM slots),
    {feature_ctes_sql("base")}
    SELECT park_code, park_date, slot, observed_at AS slot_start, {_feature_columns_sql()}
    FROM featured ORDER BY slot_start
    """
    with step(conn, f"forecast slot features ({park_code})"):
        frame = conn.execute(sql, {**park_params(), "park": park_code, "start": start,
                                   "end": end}).df()
    inverse = frame.groupby(FEATURES_WITHOUT_POSTED, dropna=False, sort=False).ngroup().to_numpy()
    distinct = frame.loc[frame.index[np.unique(inverse, return_index=True)[1]],
                         FEATURES_WITHOUT_POSTED].reset_index(drop=True)
    key_cols = ["date_group_id", "local_hour"]
    key_inverse = frame.groupby(key_cols, dropna=False, sort=False).ngroup().to_numpy()
    keys = frame.loc[frame.index[np.unique(key_inverse, return_index=True)[1]], key_cols]
    keys = keys.rename(columns={"local_hour": "hour"}).reset_index(drop=True)
    return SlotFeatures(frame, distinct, inverse.astype(np.int64), keys,
                        key_inverse.astype(np.int64))


def posted_values(conn: duckdb.DuckDBPyConnection, park_code: str, entities: Sequence[str],
                  keys: pd.DataFrame, no_park_level: Sequence[str]) -> dict[str, np.ndarray]:
    """posted_predicted per entity, aligned with `keys` rows (one join for the whole chunk)."""
    grid = pd.DataFrame({
        "entity_code": np.repeat(list(entities), len(keys)),
        "park_code": park_code,
        "date_group_id": np.tile(keys["date_group_id"].to_numpy(object), len(entities)),
        "hour": np.tile(keys["hour"].to_numpy(float), len(entities)),
        "_pos": np.tile(np.arange(len(keys)), len(entities)),
    })
    conn.register("_forecast_keys", grid)
    try:
        with step(conn, f"forecast posted lookup ({park_code})"):
            out = conn.execute(
                f"WITH {lookup_cte_sql('_forecast_keys')} "
                "SELECT entity_code, _pos, posted_predicted FROM posted_lookup",
                {"no_park_level": list(no_park_level)}).df()
    finally:
        conn.unregister("_forecast_keys")
    result: dict[str, np.ndarray] = {}
    for code, part in out.groupby("entity_code"):  # a loop over entities, not slots
        values = np.full(len(keys), np.nan)
        values[part["_pos"].to_numpy(int)] = part["posted_predicted"].to_numpy(float)
        result[str(code)] = values
    return result


def forecast_frame(entity: str, sf: SlotFeatures, model, band, posted: np.ndarray | None,
                   nthread: int | None = None) -> pd.DataFrame:
    """One entity's forecast. Grain: one row per slot where actual or posted is known;
    columns curve_files.FORECAST_COLUMNS."""
    n = len(sf.frame)
    actual = p10 = p90 = np.full(n, np.nan)
    if model is not None and n:
        pred = training.predict(model, sf.distinct, with_posted=False, nthread=nthread)
        actual = np.round(pred.astype(np.float64)[sf.inverse], 1)
        p10, p90 = apply_band(band, actual, sf.frame["local_hour"].to_numpy(float))
        p10, p90 = np.round(p10, 1), np.round(p90, 1)
    out = pd.DataFrame({
        "entity_code": entity, "park_date": sf.frame["park_date"], "slot": sf.frame["slot"],
        "slot_start": sf.frame["slot_start"], "actual_predicted": actual, "actual_p10": p10,
        "actual_p90": p90,
        "posted_predicted": posted[sf.key_inverse] if posted is not None else np.nan,
    })
    keep = out["actual_predicted"].notna() | out["posted_predicted"].notna()
    return out[keep].reset_index(drop=True)


@dataclass
class EntityResult:
    entity_code: str
    mode: str  # MODEL | POSTED_ONLY | NO_DATA | FAILED
    rows: int = 0
    slots: int = 0
    distinct_rows: int = 0
    seconds: float = 0.0
    model_version: int | None = None
    model_kind: str | None = None
    band_scale: float | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)


def _entity_info(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
                 as_of: date) -> pd.DataFrame:
    """One row per requested entity with facts up to as_of: entity_code, park_code, queue_type."""
    return conn.execute("""
        SELECT f.entity_code, any_value(f.park_code) AS park_code,
               coalesce(any_value(d.queue_type), 'STANDBY') AS queue_type
        FROM fct_wait_times f
        LEFT JOIN dim_entity d USING (entity_code)
        WHERE f.park_date <= $as_of AND f.entity_code IN (SELECT unnest($codes::VARCHAR[]))
        GROUP BY f.entity_code ORDER BY f.entity_code
    """, {"as_of": as_of, "codes": list(entities)}).df()


def _load(models_root: Path, code: str):
    try:
        return registry.load_model(models_root, code)
    except registry.RegistryError:
        return None


def run_forecast(reader: Reader, home: Path, entities: Sequence[str], as_of: date,
                 horizon_days: int = DEFAULT_HORIZON_DAYS,
                 on_done: Callable[[EntityResult], None] | None = None,
                 nthread: int | None = None) -> list[EntityResult]:
    """Forecast and write every entity's file; returns one EntityResult per entity (input order).

    An entity without facts up to as_of gets no file (NO_DATA); one without a current model gets
    a POSTED-only forecast (actual columns null); an entity whose forecast raises is FAILED
    (error in `notes`) and the others go on.
    """
    home = Path(home)
    start, end = as_of + timedelta(days=1), as_of + timedelta(days=horizon_days)
    with reader() as conn:
        info = _entity_info(conn, entities, as_of)
    results: dict[str, EntityResult] = {}
    for code in sorted(set(entities) - set(info["entity_code"])):
        results[code] = EntityResult(code, NO_DATA, notes=[f"no facts up to {as_of}"])
        if on_done:
            on_done(results[code])
    for park, group in info.groupby("park_code", sort=True):  # one slot frame per park
        codes = group["entity_code"].tolist()
        priority = group.loc[group["queue_type"] == "PRIORITY", "entity_code"].tolist()
        sf = None
        for i in range(0, len(codes), ENTITY_CHUNK):
            chunk = codes[i:i + ENTITY_CHUNK]
            models = {c: _load(home / "models", c) for c in chunk}
            with reader() as conn:  # short: the writer cannot open the file while we hold it
                if sf is None:
                    sf = slot_features(conn, str(park), start, end)
                posted = posted_values(conn, str(park), chunk, sf.keys, priority)
                modeled = [c for c in chunk if models[c] is not None]
                train = build_training_frame(conn, modeled, as_of) if modeled else None
            for code in chunk:
                try:  # one failing entity never stops the others
                    results[code] = _one(code, sf, models[code], train, posted.get(code), home,
                                         nthread)
                except Exception as exc:  # noqa: BLE001 - reported per entity
                    results[code] = EntityResult(code, FAILED,
                                                 notes=[f"{type(exc).__name__}: {exc}"])
                if on_done:
                    on_done(results[code])
    return [results[c] for c in entities]


def _one(code: str, sf: SlotFeatures, model, train: pd.DataFrame | None,
         posted: np.ndarray | None, home: Path, nthread: int | None) -> EntityResult:
    started = time.perf_counter()
    res = EntityResult(code, MODEL if model is not None else POSTED_ONLY, slots=len(sf.frame))
    band = None
    if model is not None:
        res.model_version, res.model_kind = model.version, model.kind
        band = fit_band(model, train[train["entity_code"] == code]) if train is not None else None
        res.band_scale = None if band is None else round(band.scale, 3)
        res.distinct_rows = len(sf.distinct)
        if band is None:
            res.notes.append("no training rows: no p10/p90 band")
    else:
        res.notes.append("no current model: POSTED-only forecast, actual columns null")
    frame = forecast_frame(code, sf, model, band, posted, nthread)
    path = curve_files.entity_file(home, curve_files.FORECASTS_DIR, code)
    res.rows = curve_files.write_entity_file(frame, path, curve_files.FORECAST_SCHEMA)
    res.path = str(path)
    res.seconds = round(time.perf_counter() - started, 3)
    return res

"""The live views of a park: predicted ACTUAL per POSTED, entity lines, today's WTI so far.

Grains are stated per function; the engine (lib.live) supplies today's facts, features and models.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import park_of_entity
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED
from bambam_assets.lib.core.warehouse import memory_connection
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.slots import SLOT_SECONDS
from bambam_assets.lib.live import same_day
from bambam_assets.lib.live.engine import LiveEngine, ParkState, model_name, predict_actual

ACTUAL_MATCH_S = 600  # an observed ACTUAL within 10 min of the latest POSTED wins over the model
# forecast_slot answers by (files with size and mtime, slot): a few parks x the current slot
_FORECAST_CACHE: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_FORECAST_CACHE_SIZE = 64
_FORECAST_LOCK = threading.Lock()


def live_predictions(engine: LiveEngine, state: ParkState) -> pd.DataFrame:
    """Each POSTED of today with its predicted ACTUAL.

    Grain: one row per (entity_code, observed_at) of a POSTED today: posted, actual_predicted
    (NULL without a usable model), model_version, model. Computed once per copy of the facts,
    dimension copy and set of current model versions (kept on `state`; do not modify it).
    """
    posted = state.facts[state.facts["wait_time_type"] == POSTED]
    models = {str(e): engine.models.get(str(e)) for e in posted["entity_code"].unique()}
    key = (engine.dims_at, tuple((e, None if m is None else m.version)
                                 for e, m in sorted(models.items())))
    cached = state.derived.get("predictions")
    if cached is not None and cached[0] == key:
        return cached[1]
    rows = posted.rename(columns={"minutes": "posted"})[
        ["entity_code", "park_code", "park_date", "observed_at", "posted"]]
    rows = rows.assign(park_date=pd.to_datetime(rows["park_date"]))
    feats = engine.featurize(rows)
    feats["actual_predicted"] = np.nan
    feats["model_version"] = pd.array([pd.NA] * len(feats), dtype="Int64")
    feats["model"] = None
    for entity, idx in feats.groupby("entity_code").groups.items():  # a loop over entities
        model = models.get(str(entity))
        if model is None or model.queue_type == "PRIORITY":
            continue
        feats.loc[idx, "actual_predicted"] = predict_actual(model, feats.loc[idx])
        feats.loc[idx, "model_version"] = model.version
        feats.loc[idx, "model"] = model_name(model)
    out = feats[["entity_code", "observed_at", "posted", "actual_predicted",
                 "model_version", "model"]]
    state.derived["predictions"] = (key, out)
    return out


def forecast_slot(home: Path, entities: list[str], slot_start: pd.Timestamp) -> pd.DataFrame:
    """The forecast rows of `entities` at `slot_start` (Parquet under BAMBAM_HOME/forecasts).

    Grain: one row per entity that has a forecast file with that slot. Answers are reused while
    the slot and the files (path, size, mtime) are the same (writers replace files atomically).
    """
    stats = _file_stats(home, entities)
    if not stats:
        return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
    key = (tuple(stats), pd.Timestamp(slot_start).value)
    with _FORECAST_LOCK:
        if key in _FORECAST_CACHE:
            _FORECAST_CACHE.move_to_end(key)
            return _FORECAST_CACHE[key]
    con = memory_connection(home, small=True)  # own: Parquet reads never touch DuckDB files
    try:
        out = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true) WHERE slot_start = ?",
            [[f for f, _, _ in stats], slot_start.to_pydatetime()]).df()
    except duckdb.Error:  # a file of another shape: no forecast rather than no answer
        return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
    finally:
        con.close()
    with _FORECAST_LOCK:
        _FORECAST_CACHE[key] = out
        while len(_FORECAST_CACHE) > _FORECAST_CACHE_SIZE:
            _FORECAST_CACHE.popitem(last=False)
    return out


def slot_start_of(instant: pd.Timestamp | datetime) -> pd.Timestamp:
    """The 5-minute slot holding an instant (epoch-aligned, as lib.slots)."""
    return pd.Timestamp(instant).tz_convert(UTC).floor(f"{SLOT_SECONDS}s")


def wti_so_far(facts: pd.DataFrame, preds: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Today's park WTI per 5-minute slot so far, from observed ACTUAL (wins) else predicted.

    An entity whose last observation of the slot is CLOSED is left out (closed is null, never 0).
    Grain: one row per slot with a value: slot_start, slot (local HH:MM), wti, n_entities,
    wti_min, wti_max.
    """
    def per_slot(frame: pd.DataFrame, col: str) -> pd.Series:
        return frame.assign(slot_start=frame["observed_at"].dt.floor(f"{SLOT_SECONDS}s")) \
            .groupby(["entity_code", "slot_start"])[col].mean()

    observed = per_slot(facts[facts["wait_time_type"] == ACTUAL], "minutes")
    predicted = per_slot(preds.dropna(subset=["actual_predicted"]), "actual_predicted")
    last = facts.assign(slot_start=facts["observed_at"].dt.floor(f"{SLOT_SECONDS}s")) \
        .sort_values("observed_at").groupby(["entity_code", "slot_start"])["wait_time_type"].last()
    value = observed.combine_first(predicted).rename("actual").to_frame()
    value = value[last.reindex(value.index).ne(CLOSED).to_numpy()].reset_index()
    out = value.groupby("slot_start")["actual"].agg(["mean", "count", "min", "max"]).reset_index()
    out.columns = ["slot_start", "wti", "n_entities", "wti_min", "wti_max"]
    out["slot"] = out["slot_start"].dt.tz_convert(tz).dt.strftime("%H:%M")
    return out[["slot_start", "slot", "wti", "n_entities", "wti_min", "wti_max"]]


def park_wti(state: ParkState, preds: pd.DataFrame, tz: str) -> pd.DataFrame:
    """`wti_so_far` of the state's facts and `preds`, computed once per predictions frame (kept
    on `state`, like the predictions: the same facts and predictions give the same WTI)."""
    cached = state.derived.get("wti")
    if cached is not None and cached[0] is preds:
        return cached[1]
    out = wti_so_far(state.facts, preds, tz)
    state.derived["wti"] = (preds, out)
    return out


def entity_view(engine: LiveEngine, state: ParkState, preds: pd.DataFrame) -> pd.DataFrame:
    """The live line of each entity of the park seen today.

    Grain: one row per entity with a fact today: entity_code, entity_name, latest_posted,
    posted_at, actual_predicted, model_version, model, observed_actual, actual (observed within
    10 min of the latest POSTED wins, else predicted; null when closed), actual_source, closed,
    last_observed_at, age_s, forecast columns of the current slot (null without a forecast).
    """
    now = pd.Timestamp(engine.now()).tz_convert(UTC)
    f = state.facts.sort_values("observed_at")
    last = f.groupby("entity_code").tail(1).set_index("entity_code")
    lp = preds.sort_values("observed_at").groupby("entity_code").tail(1).set_index("entity_code")
    la = f[f["wait_time_type"] == ACTUAL].groupby("entity_code").tail(1).set_index("entity_code")
    out = pd.DataFrame(index=last.index.rename("entity_code"))
    out["latest_posted"] = lp["posted"]
    out["posted_at"] = lp["observed_at"]
    out["actual_predicted"] = lp["actual_predicted"]
    out["model_version"] = lp["model_version"].astype("Int64") if len(lp) else pd.NA
    out["model"] = lp["model"]
    out["observed_actual"] = la["minutes"]
    out["observed_actual_at"] = la["observed_at"]
    fresh_obs = out["observed_actual_at"].notna() & (
        out["posted_at"].isna() | (out["observed_actual_at"] >= out["posted_at"]
                                   - pd.Timedelta(seconds=ACTUAL_MATCH_S)))
    hours = engine.park_hours_today(state.park_code, state.park_date)
    park_open = hours is None or hours[0] <= now <= hours[1]  # unknown hours: trust the data
    out["closed"] = last["wait_time_type"].eq(CLOSED) | (not park_open)
    out["actual"] = out["observed_actual"].where(fresh_obs, out["actual_predicted"])
    out["actual_source"] = np.where(fresh_obs, "observed", np.where(
        out["actual_predicted"].notna(), "predicted", None))
    out.loc[out["closed"], ["actual", "actual_source"]] = None
    out["last_observed_at"] = last["observed_at"]
    out["age_s"] = (now - out["last_observed_at"]).dt.total_seconds()
    names = engine.entity_names().drop_duplicates("entity_code").set_index("entity_code")
    out["entity_name"] = names["entity_name"].reindex(out.index)
    fc = forecast_slot(engine.home, out.index.tolist(), slot_start_of(now))
    fc = fc.drop_duplicates("entity_code").set_index("entity_code")
    for col in ("actual_predicted", "actual_p10", "actual_p90", "posted_predicted", "slot"):
        out[f"forecast_{col}"] = fc[col].reindex(out.index) if col in fc else None
    return out.reset_index()


def forecast_day_rows(home: Path, entities: list[str], day: date) -> pd.DataFrame:
    """The forecast rows of `entities` on park day `day` (Parquet under BAMBAM_HOME/forecasts).

    Grain: one row per (entity_code, slot) of the day (the forecast file's columns). Reused while
    the day and the files (path, size, mtime) are the same, like `forecast_slot`.
    """
    stats = _file_stats(home, entities)
    if not stats:
        return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
    key = ("day", tuple(stats), day.isoformat())
    with _FORECAST_LOCK:
        if key in _FORECAST_CACHE:
            _FORECAST_CACHE.move_to_end(key)
            return _FORECAST_CACHE[key]
    con = memory_connection(home, small=True)
    try:
        out = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true) WHERE park_date = ? "
            "ORDER BY entity_code, slot_start", [[f for f, _, _ in stats], day]).df()
    except duckdb.Error:
        return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
    finally:
        con.close()
    out["slot_start"] = pd.to_datetime(out["slot_start"], utc=True)
    with _FORECAST_LOCK:
        _FORECAST_CACHE[key] = out
        while len(_FORECAST_CACHE) > _FORECAST_CACHE_SIZE:
            _FORECAST_CACHE.popitem(last=False)
    return out


def _file_stats(home: Path, entities: list[str]) -> list[tuple[str, int, int]]:
    stats = []
    for e in entities:  # one stat per entity of the park
        p = curve_files.entity_file(home, curve_files.FORECASTS_DIR, e)
        try:
            st = p.stat()
        except OSError:
            continue
        stats.append((str(p), st.st_size, st.st_mtime_ns))
    return stats


def park_forecast_entities(home: Path, park: str) -> list[str]:
    """Entities of `park` (by code) that have a forecast file."""
    root = HomePaths(home).curves(curve_files.FORECASTS_DIR)
    codes = [p.name.split("=", 1)[1] for p in root.glob("entity_code=*") if p.is_dir()]
    return sorted(c for c in codes if park_of_entity(c) == park)


def same_day_view(engine: LiveEngine, state: ParkState, enabled: bool,
                  params: same_day.UpdateParams = same_day.DEFAULT_PARAMS,
                  entity: str | None = None) -> list[dict]:
    """Today's remaining forecast slots of each entity of the park, the morning's and the one
    updated from today's POSTED readings (lib.live.same_day).

    Grain: one item per entity with a forecast file and slots left today: entity_code, ratio,
    readings, last_reading_at (null when disabled or without a usable reading) and `slots`, one
    frame row per remaining slot: slot, slot_start, actual_predicted, actual_p10, actual_p90,
    posted_predicted, actual_updated (null when disabled, or where the morning's curve is).
    """
    now = pd.Timestamp(engine.now()).tz_convert(UTC)
    entities = park_forecast_entities(engine.home, state.park_code)
    if entity is not None:
        entities = [e for e in entities if e == entity]
    rows = forecast_day_rows(engine.home, entities, state.park_date)
    f = state.facts
    posted = f[(f["wait_time_type"] == POSTED) & (f["observed_at"] <= now)] \
        .rename(columns={"minutes": "posted"})
    by_entity = dict(tuple(posted.groupby("entity_code")))
    out = []
    for code, curve in rows.groupby("entity_code", sort=True):  # a loop over the park's entities
        readings = by_entity.get(code) if enabled else None
        rest, dev = same_day.reforecast(curve, readings, now, params)
        if rest.empty:
            continue
        if not enabled:
            rest["actual_updated"] = np.nan
        out.append({"entity_code": str(code), "ratio": dev.ratio, "readings": dev.readings,
                    "last_reading_at": dev.last_reading_at,
                    "slots": rest[["slot", "slot_start", "actual_predicted", "actual_p10",
                                   "actual_p90", "posted_predicted", "actual_updated"]]})
    return out

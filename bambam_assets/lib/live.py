"""Live inference: each fresh POSTED of today -> a predicted ACTUAL, and today's park WTI so far.

Features are the training ones: `features.feature_ctes_sql` runs on an in-memory DuckDB holding
copies of the small dimensions (calendar, season, park hours, entity), so a request never opens
the warehouse; today's facts of a park are read with a short read-only connection at most once per
`live_ttl_s` (the pipeline's writers wait a few milliseconds at most, and a busy warehouse serves
the last copy). For POSTED at instant t: posted_matched = that POSTED; posted_mean_30/60 = mean of
the entity's POSTED in [t − 30/60 min, t], as the training windows. Models stay loaded; the
CURRENT file (a few bytes) is read on every use, so a promotion or rollback is picked up at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib import curve_files, registry, training, warehouse
from bambam_assets.lib.features import feature_ctes_sql, park_params
from bambam_assets.lib.parks import park_of_entity
from bambam_assets.lib.poller import park_day
from bambam_assets.lib.schema import ACTUAL, CLOSED, POSTED
from bambam_assets.lib.slots import SLOT_SECONDS

ACTUAL_MATCH_S = 600  # an observed ACTUAL within 10 min of the latest POSTED wins over the model
_DIMS_SQL = {  # in-memory copy: only the columns feature_ctes_sql and the API read
    "dim_calendar": "SELECT park_date, date_group_id FROM dim_calendar",
    "dim_season": "SELECT park_date, season, season_year FROM dim_season",
    "dim_park_hours": "SELECT park_code, park_date, opening_time, closing_time, "
                      "opening_time_with_emh, closing_time_with_emh, emh_morning, emh_evening "
                      "FROM dim_park_hours",
    "dim_entity": "SELECT entity_code, entity_name, queue_type FROM dim_entity",
}
_DIMS_EMPTY = {
    "dim_calendar": "park_date DATE, date_group_id VARCHAR",
    "dim_season": "park_date DATE, season VARCHAR, season_year VARCHAR",
    "dim_park_hours": "park_code VARCHAR, park_date DATE, opening_time TIMESTAMPTZ, "
                      "closing_time TIMESTAMPTZ, opening_time_with_emh TIMESTAMPTZ, "
                      "closing_time_with_emh TIMESTAMPTZ, emh_morning BOOLEAN, emh_evening BOOLEAN",
    "dim_entity": "entity_code VARCHAR, entity_name VARCHAR, queue_type VARCHAR",
}
# POSTED rows -> the with-POSTED features; `live_rows` has entity_code, park_code, park_date,
# observed_at, posted (several POSTED at one instant are averaged first, as in training).
_FEATURES_SQL = f"""
WITH p AS (
    SELECT entity_code, park_code, park_date, observed_at, avg(posted) AS posted
    FROM live_rows GROUP BY ALL
),
b AS (
    SELECT *, posted AS posted_matched,
        avg(posted) OVER (PARTITION BY entity_code ORDER BY observed_at
            RANGE BETWEEN INTERVAL 30 MINUTES PRECEDING AND CURRENT ROW) AS posted_mean_30,
        avg(posted) OVER (PARTITION BY entity_code ORDER BY observed_at
            RANGE BETWEEN INTERVAL 60 MINUTES PRECEDING AND CURRENT ROW) AS posted_mean_60
    FROM p
),
{feature_ctes_sql("b")}
SELECT * FROM featured ORDER BY entity_code, observed_at
"""


class WarehouseUnavailable(RuntimeError):
    """No copy of the warehouse data could be read (none yet, or busy with nothing cached)."""


class ModelUnavailable(LookupError):
    """The entity has no current model, or none that maps POSTED to ACTUAL."""


@dataclass
class Prediction:
    entity_code: str
    observed_at: datetime
    posted: float
    actual_predicted: float
    model_version: int
    model: str  # with_posted | without_posted | hourly_fallback


class ModelCache:
    """Loaded CURRENT models by entity, reloaded when CURRENT names another version."""

    def __init__(self, models_root: Path) -> None:
        self.models_root = Path(models_root)
        self._models: dict[str, registry.LoadedModel] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, entity: str) -> registry.LoadedModel | None:
        try:
            version = registry.current_version(self.models_root, entity)
        except registry.RegistryError:
            return None
        if version is None:
            return None
        cached = self._models.get(entity)
        if cached is not None and cached.version == version:
            return cached
        with self._lock:  # one load per new version even under concurrent requests
            cached = self._models.get(entity)
            if cached is None or cached.version != version:
                cached = registry.load_model(self.models_root, entity, version)
                self._models[entity] = cached
                self.loads += 1
            return cached


def model_name(model: registry.LoadedModel) -> str:
    if model.kind == "hourly_fallback":
        return "hourly_fallback"
    return training.WITH_POSTED if training.WITH_POSTED in model.boosters \
        else training.WITHOUT_POSTED


def predict_actual(model: registry.LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """training.predict(with_posted=True) on the already-loaded booster (no re-parse)."""
    name = model_name(model)
    if name == "hourly_fallback":
        return training.predict(model, frame, with_posted=True)
    booster = model.boosters[name]
    x = training.encode(frame, model.encodings)
    cols = booster.feature_names or training.FEATURES_OF_MODEL[name]
    if len(frame) == 0:
        return np.zeros(0)
    return np.asarray(booster.inplace_predict(x[cols], missing=np.nan)).clip(min=0)


@dataclass
class ParkState:
    park_code: str
    park_date: date
    facts: pd.DataFrame  # today's POSTED, ACTUAL, CLOSED rows of the park
    read_at: float  # monotonic
    read_wall: datetime


class LiveEngine:
    """Warm models, dimension copies and per-park caches behind the live API."""

    def __init__(self, home: Path, now: Callable[[], datetime] | None = None,
                 live_ttl_s: float = 30.0, dims_ttl_s: float = 600.0,
                 read_timeout_s: float = 2.0) -> None:
        self.home = Path(home)
        self.now = now or (lambda: datetime.now(UTC))
        self.live_ttl_s, self.dims_ttl_s, self.read_timeout_s = live_ttl_s, dims_ttl_s, \
            read_timeout_s
        self.models = ModelCache(self.home / "models")
        self._mem = duckdb.connect(":memory:")
        self._mem_lock = threading.Lock()
        self._dims_at: float | None = None
        self._parks: dict[str, ParkState] = {}
        self._read_lock = threading.Lock()

    # ---- warehouse copies --------------------------------------------------------------------

    def _copy_dims(self, conn: duckdb.DuckDBPyConnection) -> None:
        with self._mem_lock:
            for name, sql in _DIMS_SQL.items():  # four small tables, constant SQL
                if warehouse.table_exists(conn, name):
                    self._mem.register("_src", conn.execute(sql).to_arrow_table())
                    self._mem.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _src")
                    self._mem.unregister("_src")
                else:
                    self._mem.execute(f"CREATE OR REPLACE TABLE {name} ({_DIMS_EMPTY[name]})")
        self._dims_at = time.monotonic()

    def _ensure_dims(self) -> None:
        if self._dims_at is None:
            try:
                with warehouse.reader(self.home, timeout_s=self.read_timeout_s) as conn:
                    self._copy_dims(conn)
            except (FileNotFoundError, duckdb.Error):
                with self._mem_lock:  # no warehouse: features without dimensions (NULL)
                    for name, cols in _DIMS_EMPTY.items():
                        self._mem.execute(f"CREATE OR REPLACE TABLE {name} ({cols})")
                self._dims_at = time.monotonic() - self.dims_ttl_s  # retry on the next read

    def park_state(self, park: str) -> ParkState:
        """Today's facts of a park, re-read at most every live_ttl_s; the last copy if busy."""
        today = park_day(self.now(), park)
        state = self._parks.get(park)
        if state and state.park_date == today and time.monotonic() - state.read_at < self.live_ttl_s:
            self._ensure_dims()
            return state
        with self._read_lock:
            try:
                with warehouse.reader(self.home, timeout_s=self.read_timeout_s) as conn:
                    if self._dims_at is None or time.monotonic() - self._dims_at > self.dims_ttl_s:
                        self._copy_dims(conn)
                    facts = conn.execute(
                        "SELECT entity_code, park_code, park_date, observed_at, wait_time_type, "
                        "CAST(wait_time_minutes AS DOUBLE) AS minutes FROM fct_wait_times "
                        "WHERE park_code = ? AND park_date = ? AND wait_time_type IN (?, ?, ?)",
                        [park, today, POSTED, ACTUAL, CLOSED]).df() \
                        if warehouse.table_exists(conn, "fct_wait_times") else None
            except (FileNotFoundError, duckdb.Error) as exc:
                if state is not None and state.park_date == today:
                    return state  # busy: serve the last copy
                raise WarehouseUnavailable(f"warehouse not readable: {exc}") from exc
        if facts is None:
            facts = pd.DataFrame(columns=["entity_code", "park_code", "park_date", "observed_at",
                                          "wait_time_type", "minutes"])
        facts["observed_at"] = pd.to_datetime(facts["observed_at"], utc=True)
        state = ParkState(park, today, facts, time.monotonic(), self.now())
        self._parks[park] = state
        return state

    # ---- features and predictions ------------------------------------------------------------

    def featurize(self, rows: pd.DataFrame) -> pd.DataFrame:
        """With-POSTED feature rows for POSTED `rows` (entity_code, park_code, park_date,
        observed_at, posted). Grain: one row per distinct (entity_code, observed_at)."""
        self._ensure_dims()
        with self._mem_lock:
            self._mem.register("live_rows", rows)
            try:
                return self._mem.execute(_FEATURES_SQL, park_params()).df()
            finally:
                self._mem.unregister("live_rows")

    def predict(self, entity: str, observed_at: datetime, posted: float) -> Prediction:
        """Predicted ACTUAL for one POSTED, with the entity's earlier POSTED of the hour."""
        park = park_of_entity(entity)
        if park is None:
            raise ModelUnavailable(f"{entity!r} is not an entity code of a known park")
        model = self.models.get(entity)
        if model is None:
            raise ModelUnavailable(f"{entity} has no current model")
        if model.queue_type == "PRIORITY":
            raise ModelUnavailable(f"{entity} is a PRIORITY queue: it has no POSTED→ACTUAL model")
        t = pd.Timestamp(observed_at).tz_convert(UTC)
        pday = park_day(t.to_pydatetime(), park)
        history = pd.DataFrame(columns=["entity_code", "observed_at", "minutes"])
        try:
            state = self.park_state(park)
            if state.park_date == pday:
                f = state.facts
                keep = (f["entity_code"] == entity) & (f["wait_time_type"] == POSTED) & \
                       (f["observed_at"] < t) & (f["observed_at"] >= t - pd.Timedelta(minutes=60))
                history = f.loc[keep, ["entity_code", "observed_at", "minutes"]]
        except WarehouseUnavailable:
            pass  # no history: the request's own POSTED alone
        rows = pd.DataFrame({
            "entity_code": entity, "park_code": park, "park_date": pd.Timestamp(pday),
            "observed_at": pd.concat([history["observed_at"], pd.Series([t])],
                                     ignore_index=True),
            "posted": pd.concat([history["minutes"].astype(float),
                                 pd.Series([float(posted)])], ignore_index=True)})
        feats = self.featurize(rows)
        feats = feats[feats["observed_at"] == t]
        value = float(predict_actual(model, feats)[0])
        return Prediction(entity, t.to_pydatetime(), float(posted), value, model.version,
                          model_name(model))

    def forecast_slot(self, entities: list[str], slot_start: pd.Timestamp) -> pd.DataFrame:
        """The forecast rows of `entities` at `slot_start` (Parquet under BAMBAM_HOME/forecasts).

        Grain: one row per entity that has a forecast file with that slot.
        """
        files = [str(p) for e in entities
                 if (p := curve_files.entity_file(self.home, curve_files.FORECASTS_DIR, e)).exists()]
        if not files:
            return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
        con = duckdb.connect(":memory:")  # own connection: Parquet reads never touch DuckDB files
        try:
            return con.execute(
                "SELECT * FROM read_parquet(?, union_by_name = true) WHERE slot_start = ?",
                [files, slot_start.to_pydatetime()]).df()
        except duckdb.Error:  # a file of another shape: no forecast rather than no answer
            return pd.DataFrame(columns=list(curve_files.FORECAST_COLUMNS))
        finally:
            con.close()

    def live_predictions(self, state: ParkState) -> pd.DataFrame:
        """Each POSTED of today with its predicted ACTUAL.

        Grain: one row per (entity_code, observed_at) of a POSTED today: posted, actual_predicted
        (NULL without a usable model), model_version, model.
        """
        posted = state.facts[state.facts["wait_time_type"] == POSTED]
        rows = posted.rename(columns={"minutes": "posted"})[
            ["entity_code", "park_code", "park_date", "observed_at", "posted"]]
        rows = rows.assign(park_date=pd.to_datetime(rows["park_date"]))
        feats = self.featurize(rows)
        feats["actual_predicted"] = np.nan
        feats["model_version"] = pd.array([pd.NA] * len(feats), dtype="Int64")
        feats["model"] = None
        for entity, idx in feats.groupby("entity_code").groups.items():  # a loop over entities
            model = self.models.get(str(entity))
            if model is None or model.queue_type == "PRIORITY":
                continue
            feats.loc[idx, "actual_predicted"] = predict_actual(model, feats.loc[idx])
            feats.loc[idx, "model_version"] = model.version
            feats.loc[idx, "model"] = model_name(model)
        return feats[["entity_code", "observed_at", "posted", "actual_predicted",
                      "model_version", "model"]]

    def entity_names(self) -> pd.DataFrame:
        with self._mem_lock:
            return self._mem.execute("SELECT entity_code, entity_name, queue_type "
                                     "FROM dim_entity").df()

    def park_hours_today(self, park: str, day: date) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        with self._mem_lock:
            got = self._mem.execute(
                "SELECT coalesce(least(opening_time, opening_time_with_emh), opening_time), "
                "coalesce(greatest(closing_time, closing_time_with_emh), closing_time) "
                "FROM dim_park_hours WHERE park_code = ? AND park_date = ?", [park, day]).fetchall()
        if not got or got[0][0] is None or got[0][1] is None:
            return None
        return pd.Timestamp(got[0][0]).tz_convert(UTC), pd.Timestamp(got[0][1]).tz_convert(UTC)


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
    fc = engine.forecast_slot(out.index.tolist(), slot_start_of(now))
    fc = fc.drop_duplicates("entity_code").set_index("entity_code")
    for col in ("actual_predicted", "actual_p10", "actual_p90", "posted_predicted", "slot"):
        out[f"forecast_{col}"] = fc[col].reindex(out.index) if col in fc else None
    return out.reset_index()

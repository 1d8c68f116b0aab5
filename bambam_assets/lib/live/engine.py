"""Live inference engine: warm models, dimension copies, today's facts, POSTED -> ACTUAL.

Features are the training ones: `features.feature_ctes_sql` runs on an in-memory DuckDB holding
copies of the small dimensions (calendar, season, park hours, entity), so a request never opens
the warehouse; today's facts of a park are read with a short read-only connection at most once per
`live_ttl_s` (the pipeline's writers wait a few milliseconds at most, and a busy warehouse serves
the last copy). For POSTED at instant t: posted_matched = that POSTED; posted_mean_30/60 = mean of
the entity's POSTED in [t − 30/60 min, t], as the training windows. Models stay loaded; the
CURRENT file (a few bytes) is read on every use, so a promotion or rollback is picked up at once.
The park views built on it (entity lines, WTI so far) are in lib.live_view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.parks import park_of_entity, tz_of_park
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED
from bambam_assets.lib.live.poller import park_day
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import feature_ctes_sql, park_params

_DIMS_SQL = {  # in-memory copy: only the columns feature_ctes_sql and the API read
    "dim_calendar": "SELECT park_date, date_group_id FROM dim_calendar",
    "dim_season": "SELECT park_date, season FROM dim_season",
    "dim_park_hours": "SELECT park_code, park_date, opening_time, closing_time, "
                      "opening_time_with_emh, closing_time_with_emh, emh_morning, emh_evening "
                      "FROM dim_park_hours",
    "dim_entity": "SELECT entity_code, entity_name, queue_type FROM dim_entity",
}
_DIMS_EMPTY = {  # the same columns, empty: no warehouse file yet
    "dim_calendar": "park_date DATE, date_group_id VARCHAR",
    "dim_season": "park_date DATE, season VARCHAR",
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
    features: dict  # the per-request features (time of day, since opening, POSTED)


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
                for booster in cached.boosters.values():  # a few rows per call: one thread
                    booster.set_param({"nthread": 1})
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
class DayContext:
    features: pd.DataFrame  # one featured row of the park day (SQL), at its noon
    open_s: float | None  # epoch seconds of the opening time (None without hours)
    tz: ZoneInfo
    dims_at: float | None  # the dimension copy it was built from
    encoded: dict  # (version, model name) -> (encoded row, [(column index, live feature)])


@dataclass
class ParkState:
    park_code: str
    park_date: date
    facts: pd.DataFrame  # today's POSTED, ACTUAL, CLOSED rows of the park
    read_at: float  # monotonic
    read_wall: datetime
    # what the views derived from these facts, with the key it is valid for (lib.live.view)
    derived: dict = field(default_factory=dict, repr=False)


class LiveEngine:
    """Warm models, dimension copies and per-park caches behind the live API."""

    def __init__(self, home: Path, now: Callable[[], datetime] | None = None,
                 live_ttl_s: float = 30.0, dims_ttl_s: float = 600.0,
                 read_timeout_s: float = 2.0) -> None:
        self.home = Path(home)
        self.now = now or (lambda: datetime.now(UTC))
        self.live_ttl_s, self.dims_ttl_s, self.read_timeout_s = live_ttl_s, dims_ttl_s, \
            read_timeout_s
        self.models = ModelCache(HomePaths(self.home).models)
        self._mem = warehouse.memory_connection(self.home, small=True)  # DuckDB limits
        self._mem.execute("SET threads = 1")  # small queries: threads only add overhead
        self._mem_lock = threading.Lock()
        self._dims_at: float | None = None
        self._parks: dict[str, ParkState] = {}
        self._days: dict[tuple[str, date], DayContext] = {}
        self._read_lock = threading.Lock()

    @property
    def dims_at(self) -> float | None:
        """When the dimension copy was made (monotonic): features change only with it."""
        return self._dims_at

    # ---- warehouse copies --------------------------------------------------------------------

    def _copy_dims(self, conn: duckdb.DuckDBPyConnection) -> None:
        with self._mem_lock:
            for name, sql in _DIMS_SQL.items():  # four small tables, constant SQL
                self._mem.register("_src", conn.sql(sql).to_arrow_table())
                self._mem.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _src")
                self._mem.unregister("_src")
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
        fresh = state is not None and time.monotonic() - state.read_at < self.live_ttl_s
        if state and state.park_date == today and fresh:
            self._ensure_dims()
            return state
        with self._read_lock:
            state = self._parks.get(park)  # another request may have just read it
            if state and state.park_date == today and \
                    time.monotonic() - state.read_at < self.live_ttl_s:
                return state
            try:
                with warehouse.reader(self.home, timeout_s=self.read_timeout_s) as conn:
                    if self._dims_at is None or time.monotonic() - self._dims_at > self.dims_ttl_s:
                        self._copy_dims(conn)
                    facts = conn.execute(
                        "SELECT entity_code, park_code, park_date, observed_at, wait_time_type, "
                        "CAST(wait_time_minutes AS DOUBLE) AS minutes FROM fct_wait_times "
                        "WHERE park_code = ? AND park_date = ? AND wait_time_type IN (?, ?, ?) "
                        "ORDER BY ALL",  # the same rows read twice compare equal
                        [park, today, POSTED, ACTUAL, CLOSED]).df()
            except (FileNotFoundError, duckdb.Error) as exc:
                if state is not None and state.park_date == today:
                    state.read_at = time.monotonic()  # busy: serve the last copy a while longer
                    return state
                raise WarehouseUnavailable(f"warehouse not readable: {exc}") from exc
        facts["observed_at"] = pd.to_datetime(facts["observed_at"], utc=True)
        old, state = state, ParkState(park, today, facts, time.monotonic(), self.now())
        if old is not None and old.park_date == today and old.facts.equals(facts):
            state.derived = old.derived  # nothing new since the last read: still valid
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

    def _day(self, park: str, pday: date) -> DayContext:
        """The SQL-built features of a park day (all but time of day and POSTED), cached."""
        self._ensure_dims()
        ctx = self._days.get((park, pday))
        if ctx is not None and ctx.dims_at == self._dims_at:
            return ctx
        tz = tz_of_park(park)
        ref = pd.Timestamp(f"{pday} 12:00").tz_localize(tz).tz_convert(UTC)
        feats = self.featurize(pd.DataFrame({
            "entity_code": ["_"], "park_code": [park], "park_date": [pd.Timestamp(pday)],
            "observed_at": [ref], "posted": [0.0]}))
        with self._mem_lock:
            got = self._mem.execute(
                "SELECT epoch(opening_time) FROM dim_park_hours WHERE park_code = ? "
                "AND park_date = ?", [park, pday]).fetchall()
        open_s = got[0][0] if got and got[0][0] is not None else None
        ctx = DayContext(feats, open_s, ZoneInfo(tz), self._dims_at, {})
        self._days[(park, pday)] = ctx
        return ctx

    def _history(self, park: str, pday: date, entity: str, t: pd.Timestamp) -> pd.Series:
        """The entity's POSTED of the hour before t (same park day), mean per instant."""
        try:
            state = self.park_state(park)
        except WarehouseUnavailable:
            return pd.Series(dtype=float)  # no history: the request's own POSTED alone
        if state.park_date != pday:
            return pd.Series(dtype=float)
        f = state.facts
        keep = (f["entity_code"] == entity) & (f["wait_time_type"] == POSTED) & \
            (f["observed_at"] < t) & (f["observed_at"] >= t - pd.Timedelta(minutes=60))
        return f.loc[keep].groupby("observed_at")["minutes"].mean()

    def predict(self, entity: str, observed_at: datetime, posted: float) -> Prediction:
        """Predicted ACTUAL for one POSTED, with the entity's earlier POSTED of the hour.

        The fast path of the SQL features: the day's features come from `featurize` (cached per
        park day); only time of day, minutes since opening and the POSTED means are computed
        here, with the formulas of `feature_ctes_sql` (tests hold the two paths equal).
        """
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
        ctx = self._day(park, pday)
        hist = self._history(park, pday, entity, t)
        ago = (pd.DatetimeIndex(hist.index) - t).total_seconds().to_numpy() if len(hist) \
            else np.zeros(0)
        at = np.append(ago, 0.0)
        values = np.append(hist.to_numpy(dtype=float), float(posted))
        loc = t.tz_convert(ctx.tz)
        live = {
            "mins_since_6am": float(((loc.hour - 6) * 60 + loc.minute + 1440) % 1440),
            "local_hour": float(loc.hour),
            "mins_since_park_open": np.nan if ctx.open_s is None
            else (t.value / 1e9 - ctx.open_s) / 60.0,
            "posted_matched": float(posted),
            "posted_mean_30": float(values[at >= -1800].mean()),
            "posted_mean_60": float(values[at >= -3600].mean()),
        }
        name = model_name(model)
        if name == "hourly_fallback":
            value = float(training.predict(model, ctx.features.assign(**live), True)[0])
        else:
            booster = model.boosters[name]
            key = (model.version, name)
            if key not in ctx.encoded:  # encode the day's categories once per model version
                cols = booster.feature_names or training.FEATURES_OF_MODEL[name]
                row = training.encode(ctx.features, model.encodings).reindex(columns=cols)
                ctx.encoded[key] = (row.to_numpy(dtype=float)[0],
                                    [(cols.index(c), c) for c in live if c in cols])
            base, slots = ctx.encoded[key]
            x = base.copy()
            for i, c in slots:  # six feature columns
                x[i] = live[c]
            value = float(np.asarray(booster.inplace_predict(
                x[None, :], missing=np.nan, validate_features=False)).clip(min=0)[0])
        return Prediction(entity, t.to_pydatetime(), float(posted), value, model.version, name,
                          live)

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

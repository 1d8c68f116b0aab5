"""Queries behind the wait-time curves page (pure: no Dash).

Observations, profiles, park hours and WTI come from the warehouse (an open read-only
connection); forecasts and backfilled ACTUALs come from their Parquet files, read directly with
pyarrow (one day's row groups), so the warehouse file is never touched for them. Times are shown on
the park's own clock: `local_time` columns are naive local timestamps of the park's time zone.

The warehouse tables read here exist once the warehouse file does (lib.core.schema), except the
WTI tables, which exist once the WTI asset has run: their queries give None before.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bambam_assets.lib.core.parks import park_of_entity, tz_of_park
from bambam_assets.lib.core.paths import BACKFILL_DIR, FORECASTS_DIR, HomePaths
from bambam_assets.lib.core.warehouse import table_exists
from bambam_assets.lib.live import same_day

_SAFE_CODE = re.compile(r"^[A-Z0-9_\-]{1,32}$")  # codes become a path part: nothing else passes
OBSERVED_TYPES = ["POSTED", "ACTUAL", "PRIORITY"]


def checked_entity(code: str) -> str:
    """`code` upper-cased if it is a plausible entity code; ValueError otherwise."""
    code = (code or "").strip().upper()
    if not _SAFE_CODE.match(code):
        raise ValueError(f"not an entity code: {code!r}")
    return code


def park_tz(park_code: str | None, entity: str) -> str:
    """Time zone of the entity's park (from the dimension's park, else from its code)."""
    park = park_code or park_of_entity(entity)
    return tz_of_park(park) if park else "UTC"


def entity_choices(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Entities that can be plotted. Grain: one row per entity of entity_index: entity_code,
    entity_name, park_code, first_park_date, latest_park_date."""
    return conn.execute("""
        SELECT i.entity_code, coalesce(n.entity_name, i.entity_code) AS entity_name, i.park_code,
               CAST(i.first_park_date AS DATE) AS first_park_date,
               CAST(i.latest_park_date AS DATE) AS latest_park_date
        FROM entity_index i LEFT JOIN dim_entity n USING (entity_code)
        ORDER BY i.park_code, i.entity_code
    """).df()


def observations(conn: duckdb.DuckDBPyConnection, entity: str, day: date,
                 tz: str) -> pd.DataFrame:
    """Observed waits of one entity on one park day. Grain: one row per observation
    (POSTED, ACTUAL, PRIORITY): local_time, wait_time_type, wait_time_minutes."""
    return conn.execute("""
        SELECT timezone(?, observed_at) AS local_time, wait_time_type, wait_time_minutes
        FROM fct_wait_times
        WHERE entity_code = ? AND park_date = ? AND wait_time_type IN (SELECT unnest(?))
              AND wait_time_minutes IS NOT NULL
        ORDER BY observed_at
    """, [tz, entity, day, OBSERVED_TYPES]).df()


def park_hours(conn: duckdb.DuckDBPyConnection, park: str, day: date,
               tz: str) -> pd.DataFrame:
    """The park's hours that day, on its clock. Grain: at most one row: opening, closing, source."""
    return conn.execute("""
        SELECT timezone(?, opening_time) AS opening, timezone(?, closing_time) AS closing, source
        FROM dim_park_hours WHERE park_code = ? AND park_date = ?
    """, [tz, tz, park, day]).df()


def time_of_day_profile(conn: duckdb.DuckDBPyConnection, entity: str,
                        tz: str) -> pd.DataFrame:
    """Mean observed wait by local hour of day over the entity's history.
    Grain: one row per (wait_time_type, hour): mean_minutes, n."""
    return conn.execute("""
        SELECT wait_time_type, hour(timezone(?, observed_at)) AS hour,
               avg(wait_time_minutes) AS mean_minutes, count(*) AS n
        FROM fct_wait_times
        WHERE entity_code = ? AND wait_time_type IN (SELECT unnest(?))
              AND wait_time_minutes IS NOT NULL
        GROUP BY ALL ORDER BY wait_time_type, hour
    """, [tz, entity, OBSERVED_TYPES]).df()


def day_of_week_profile(conn: duckdb.DuckDBPyConnection, entity: str) -> pd.DataFrame:
    """Mean observed wait by ISO day of week (Mon=1) of the park day.
    Grain: one row per (wait_time_type, dow): mean_minutes, n."""
    return conn.execute("""
        SELECT wait_time_type, isodow(park_date) AS dow, avg(wait_time_minutes) AS mean_minutes,
               count(*) AS n
        FROM fct_wait_times
        WHERE entity_code = ? AND wait_time_type IN (SELECT unnest(?))
              AND wait_time_minutes IS NOT NULL
        GROUP BY ALL ORDER BY wait_time_type, dow
    """, [entity, OBSERVED_TYPES]).df()


def wti_day(conn: duckdb.DuckDBPyConnection, park: str, day: date) -> pd.DataFrame | None:
    """The park's wait-time index over one day. Grain: one row per slot: slot (local HH:MM),
    wti, n_entities, min_actual, max_actual."""
    if not table_exists(conn, "park_wti"):
        return None
    return conn.execute("""
        SELECT slot, wti, n_entities, min_actual, max_actual FROM park_wti
        WHERE park_code = ? AND park_date = ? ORDER BY slot
    """, [park, day]).df()


def wti_window(conn: duckdb.DuckDBPyConnection, park: str, day: date,
               weeks: int = 3) -> pd.DataFrame | None:
    """The park's daily WTI from `weeks` weeks before to `weeks` weeks after `day`.
    Grain: one row per park day: park_date, wti, p10, p90, n_entities."""
    if not table_exists(conn, "park_wti_daily"):
        return None
    span = timedelta(weeks=weeks)
    return conn.execute("""
        SELECT CAST(park_date AS DATE) AS park_date, wti, p10, p90, n_entities
        FROM park_wti_daily WHERE park_code = ? AND park_date BETWEEN ? AND ?
        ORDER BY park_date
    """, [park, day - span, day + span]).df()


# ---- Parquet (forecasts, backfill) -----------------------------------------------------------

def forecast_path(home: Path, entity: str) -> Path:
    return HomePaths(home).curve_file(FORECASTS_DIR, checked_entity(entity))


def backfill_path(home: Path, entity: str) -> Path:
    return HomePaths(home).curve_file(BACKFILL_DIR, checked_entity(entity))


def _read_day(path: Path, day: date, columns: list[str], tz: str) -> pd.DataFrame | None:
    """Rows of one park day from one Parquet file (pyarrow, filter pushed down), with
    `local_time` = slot_start on the park's clock; None when there is no file."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path, columns=["slot_start", *columns],
                              filters=[("park_date", "=", day)])
    except (OSError, pa.ArrowException):
        return None  # a damaged file: shown as "no data" (writers replace files atomically)
    df = table.to_pandas().sort_values("slot_start", ignore_index=True)
    start = pd.to_datetime(df.pop("slot_start"), utc=True)
    df.insert(0, "local_time", start.dt.tz_convert(tz).dt.tz_localize(None))
    return df


def forecast_day(home: Path, entity: str, day: date, tz: str) -> pd.DataFrame | None:
    """One entity's forecast for one park day. Grain: one row per slot: local_time, slot,
    actual_predicted, actual_p10, actual_p90, posted_predicted."""
    return _read_day(forecast_path(home, entity), day, [
        "slot", "actual_predicted", "actual_p10", "actual_p90", "posted_predicted"], tz)


def backfill_day(home: Path, entity: str, day: date, tz: str) -> pd.DataFrame | None:
    """One entity's backfilled ACTUAL waits for one park day. Grain: one row per slot:
    local_time, slot, actual, source."""
    return _read_day(backfill_path(home, entity), day, ["slot", "actual", "source"], tz)


def forecast_dates(home: Path, entity: str) -> tuple[date, date] | None:
    """First and last park day of the entity's forecast file, or None without one."""
    path = forecast_path(home, entity)
    if not path.is_file():
        return None
    try:
        days = pq.read_table(path, columns=["park_date"]).column("park_date")
    except (OSError, pa.ArrowException):
        return None
    if len(days) == 0:
        return None
    bounds = pc.min_max(days)
    return bounds["min"].as_py(), bounds["max"].as_py()


# ---- the same-day re-forecast (lib.live.same_day) ---------------------------------------------

def posted_readings(conn: duckdb.DuckDBPyConnection, entity: str, day: date) -> pd.DataFrame:
    """The entity's POSTED readings of one park day. Grain: one row per reading: observed_at
    (UTC), posted."""
    return conn.execute("""
        SELECT observed_at, CAST(wait_time_minutes AS DOUBLE) AS posted FROM fct_wait_times
        WHERE entity_code = ? AND park_date = ? AND wait_time_type = 'POSTED'
              AND wait_time_minutes IS NOT NULL
        ORDER BY observed_at
    """, [entity, day]).df()


def same_day_curve(home: Path, entity: str, day: date, tz: str, readings: pd.DataFrame | None,
                   now: datetime) -> tuple[pd.DataFrame, same_day.Deviation] | None:
    """Today's remaining forecast slots updated from the readings so far (same_day.reforecast).
    Grain: one row per remaining slot: local_time, slot, actual_predicted, actual_updated; None
    without a forecast file or a forecast for the day."""
    path = forecast_path(home, entity)
    if not path.is_file():
        return None
    try:
        curve = pq.read_table(path, filters=[("park_date", "=", day)]).to_pandas()
    except (OSError, pa.ArrowException):
        return None
    if curve.empty:
        return None
    rest, dev = same_day.reforecast(curve, readings, pd.Timestamp(now))
    rest.insert(0, "local_time", pd.to_datetime(rest["slot_start"], utc=True)
                .dt.tz_convert(tz).dt.tz_localize(None))
    return rest[["local_time", "slot", "actual_predicted", "actual_updated"]], dev

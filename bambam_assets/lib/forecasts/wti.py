"""The Wait Time Index (legacy §10): mean ACTUAL over a park's open entities, per slot and per day.

Value of one entity at one slot: the backfill `actual` (observed, else imputed), else the forecast
`actual_predicted`; a backfill slot with source `closed` has no value even if a forecast exists,
and null values are excluded, never counted as 0. Legacy quirks fixed: curves are read once
(DuckDB over all Parquet files) instead of once per entity x slot; PRIORITY entities are left out
(their values are return-time waits, not ACTUAL, and the index is "mean ACTUAL"); park = the
letters of the entity code before its first digit (so TDL/TDS/USH are their own parks).

- `park_wti`: one row per (park_code, slot_start): park_code, park_date, slot, slot_start, wti
  (mean of the values), n_entities (entities with a value), min_actual, max_actual. A slot whose
  entities are all closed or null has wti NULL and n_entities 0.
- `park_wti_daily`: one row per (park_code, park_date): wti = mean of the day's slot WTIs (each
  slot counts once, so a busy hour with few entities reporting is not under-weighted), p10/p90 =
  10th/90th percentiles of the slot WTIs over the day, n_entities = distinct entities with a
  value that day, n_slots = slots with a WTI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from bambam_assets.lib.core.warehouse import memory_connection, staged, step
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.backfill import CLOSED_SOURCE

SLOT_TABLE, DAILY_TABLE = "park_wti", "park_wti_daily"

_EMPTY_FORECAST = """(SELECT NULL::VARCHAR AS entity_code, NULL::DATE AS park_date,
    NULL::VARCHAR AS slot, NULL::TIMESTAMPTZ AS slot_start, NULL::DOUBLE AS actual_predicted
    WHERE false)"""
_EMPTY_BACKFILL = """(SELECT NULL::VARCHAR AS entity_code, NULL::DATE AS park_date,
    NULL::VARCHAR AS slot, NULL::TIMESTAMPTZ AS slot_start, NULL::DOUBLE AS actual,
    NULL::VARCHAR AS source WHERE false)"""


def values_sql(has_forecast: bool, has_backfill: bool) -> str:
    """SELECT of the entity-slot values from the Parquet files (bind $forecast_glob,
    $backfill_glob, $closed, $excluded). One row per (entity_code, slot_start) with a file row:
    entity_code, park_code, park_date, slot, slot_start, value (NULL: closed or unknown)."""
    f = ("read_parquet($forecast_glob, hive_partitioning = true)" if has_forecast
         else _EMPTY_FORECAST)
    b = ("read_parquet($backfill_glob, hive_partitioning = true)" if has_backfill
         else _EMPTY_BACKFILL)
    return f"""
    SELECT entity_code, regexp_extract(entity_code, '^([A-Z]+)', 1) AS park_code,
           park_date, slot, slot_start, value
    FROM (
        SELECT coalesce(b.entity_code, f.entity_code) AS entity_code,
               coalesce(b.park_date, f.park_date) AS park_date,
               coalesce(b.slot, f.slot) AS slot,
               coalesce(b.slot_start, f.slot_start) AS slot_start,
               CASE WHEN b.source = $closed THEN NULL
                    ELSE coalesce(b.actual, f.actual_predicted) END AS value
        FROM (SELECT entity_code, park_date, slot, slot_start, actual, source FROM {b}) b
        FULL OUTER JOIN (SELECT entity_code, park_date, slot, slot_start, actual_predicted
                         FROM {f}) f
            ON b.entity_code = f.entity_code AND b.slot_start = f.slot_start
    )
    WHERE entity_code NOT IN (SELECT unnest($excluded::VARCHAR[]))"""


SLOT_SQL = """
    SELECT park_code, any_value(park_date) AS park_date, any_value(slot) AS slot, slot_start,
           avg(value) AS wti, count(value) AS n_entities,
           min(value) AS min_actual, max(value) AS max_actual
    FROM wti_values GROUP BY park_code, slot_start ORDER BY park_code, slot_start
"""
DAY_ENTITIES_SQL = """
    SELECT park_code, park_date,
           count(DISTINCT entity_code) FILTER (WHERE value IS NOT NULL) AS n_entities
    FROM wti_values GROUP BY park_code, park_date
"""
DAILY_SQL = """
    SELECT s.park_code, s.park_date, avg(s.wti) AS wti,
           quantile_cont(s.wti, 0.1) AS p10, quantile_cont(s.wti, 0.9) AS p90,
           any_value(e.n_entities) AS n_entities, count(s.wti) AS n_slots
    FROM wti_slots s JOIN wti_day_entities e USING (park_code, park_date)
    GROUP BY s.park_code, s.park_date ORDER BY s.park_code, s.park_date
"""


def _tables(conn: duckdb.DuckDBPyConnection, values: str, params: dict
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    # two passes over the values (never held in pandas: hundreds of millions of rows at scale)
    with step(conn, "park_wti"):
        slots = conn.execute(f"WITH wti_values AS ({values}) {SLOT_SQL}", params).df()
        day_entities = conn.execute(f"WITH wti_values AS ({values}) {DAY_ENTITIES_SQL}",
                                    params).df()
    conn.register("wti_slots", slots)
    conn.register("wti_day_entities", day_entities)
    with step(conn, "park_wti_daily"):
        daily = conn.execute(DAILY_SQL).df()
    return slots, daily


def wti_from_values(values: pd.DataFrame, home: Path | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(park_wti, park_wti_daily) frames from a values frame shaped like `values_sql`
    (DuckDB spills under `home`, default BAMBAM_HOME)."""
    conn = memory_connection(home)
    try:
        conn.register("_values_frame", values)
        return _tables(conn, "SELECT * FROM _values_frame", {})
    finally:
        conn.close()


def compute_wti(home: Path, excluded_entities: Sequence[str] = ()
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(park_wti, park_wti_daily) from every forecast and backfill file under `home`.

    Runs in an in-memory DuckDB, so the warehouse is not held while all curves are read.
    """
    has_f = curve_files.has_files(home, curve_files.FORECASTS_DIR)
    has_b = curve_files.has_files(home, curve_files.BACKFILL_DIR)
    params = {"closed": CLOSED_SOURCE, "excluded": list(excluded_entities)}
    if has_f:
        params["forecast_glob"] = curve_files.glob_of(home, curve_files.FORECASTS_DIR)
    if has_b:
        params["backfill_glob"] = curve_files.glob_of(home, curve_files.BACKFILL_DIR)
    conn = memory_connection(home)
    try:
        return _tables(conn, values_sql(has_f, has_b), params)
    finally:
        conn.close()


def write_wti(conn: duckdb.DuckDBPyConnection, slots: pd.DataFrame, daily: pd.DataFrame) -> None:
    """Replace tables park_wti and park_wti_daily (one transaction)."""
    with staged(conn, _wti_slots=slots, _wti_daily=daily), step(conn, "write park_wti"):
        conn.execute(f"CREATE OR REPLACE TABLE {SLOT_TABLE} AS SELECT * FROM _wti_slots")
        conn.execute(f"CREATE OR REPLACE TABLE {DAILY_TABLE} AS SELECT * FROM _wti_daily")

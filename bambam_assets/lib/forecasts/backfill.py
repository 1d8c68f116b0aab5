"""Historical ACTUAL curves per entity (legacy §9.2, which never ran: hours and file names broke).

For every past park day on which the entity has facts (park_date <= as_of, optionally only the
last `window_days`), every 5-minute slot within the park's hours (slots.py) gets, in this order:

1. `observed`: the nearest target observation (ACTUAL; PRIORITY without 8888 for a PRIORITY
   entity) within +-5 minutes of the slot;
2. `closed` (actual NULL): a CLOSED fact within the slot's POSTED window [t-15 min, t+10 min] and
   no POSTED after that CLOSED fact up to t+10 min;
3. `imputed`: the slot's POSTED is the nearest at or after the slot within 10 minutes, else the
   nearest before it within 15 minutes; the entity's with-POSTED model (its without-POSTED
   model, or its hourly fallback, when it has none) predicts ACTUAL from it and the slot's
   features (the training features, via `features.feature_ctes_sql`; POSTED means of the
   preceding 30 and 60 minutes as in training);
4. `missing` (actual NULL): nothing observed and no POSTED nearby (or no model to impute with).

Slots outside park hours do not exist (no row): closed for every consumer. Everything up to the
prediction is one SQL query per entity chunk, read in the parent process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED, PRIORITY, SOLD_OUT
from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.forecast import Reader
from bambam_assets.lib.forecasts.slots import slots_cte_sql
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    feature_ctes_sql,
    park_params,
    posted_means_cte_sql,
)

OBSERVED, IMPUTED, CLOSED_SOURCE, MISSING = "observed", "imputed", "closed", "missing"
ACTUAL_MATCH_SECS, POSTED_AFTER_SECS, POSTED_BEFORE_SECS = 5 * 60, 10 * 60, 15 * 60
ENTITY_CHUNK = 5  # full histories are long: a few entities per read keeps memory bounded

_SLOTS_SQL = f"""
WITH ents AS (
    SELECT unnest($codes::VARCHAR[]) AS entity_code, unnest($queues::VARCHAR[]) AS queue_type
),
obs AS (
    SELECT f.entity_code, f.park_code, f.park_date, f.observed_at, f.wait_time_type AS t,
           f.wait_time_minutes AS v, e.queue_type
    FROM fct_wait_times f JOIN ents e USING (entity_code)
    WHERE f.park_date <= $as_of AND f.park_date >= $first_day - 1
),
days AS (
    SELECT DISTINCT entity_code, park_code, park_date FROM obs WHERE park_date >= $first_day
),
hours AS (
    SELECT * FROM dim_park_hours h
    WHERE EXISTS (SELECT 1 FROM days d WHERE d.park_code = h.park_code
                  AND d.park_date = h.park_date)
),
{slots_cte_sql("hours")},
eslots AS (
    SELECT d.entity_code, s.park_code, s.park_date, s.slot, s.slot_start,
           s.slot_start + INTERVAL {POSTED_AFTER_SECS} SECOND AS window_end
    FROM slots s JOIN days d USING (park_code, park_date)
),
targets AS (
    SELECT entity_code, observed_at, avg(v) AS y FROM obs
    WHERE v IS NOT NULL AND CASE WHEN queue_type = 'PRIORITY'
        THEN t = $priority AND v <> $sold_out ELSE t = $actual END
    GROUP BY entity_code, observed_at
),
posted AS (
    SELECT entity_code, observed_at, avg(v) AS posted FROM obs
    WHERE t = $posted AND v IS NOT NULL GROUP BY entity_code, observed_at
),
closed AS (SELECT DISTINCT entity_code, observed_at FROM obs WHERE t = $closed),
matched AS (
    SELECT s.*,
        epoch(s.slot_start) - epoch(tb.observed_at) AS tb_secs, tb.y AS tb_y,
        epoch(ta.observed_at) - epoch(s.slot_start) AS ta_secs, ta.y AS ta_y,
        epoch(pa.observed_at) - epoch(s.slot_start) AS pa_secs, pa.posted AS pa_v,
        epoch(s.slot_start) - epoch(pb.observed_at) AS pb_secs, pb.posted AS pb_v,
        c.observed_at AS closed_at, pl.observed_at AS last_posted_at
    FROM eslots s
    ASOF LEFT JOIN targets tb ON s.entity_code = tb.entity_code AND s.slot_start >= tb.observed_at
    ASOF LEFT JOIN targets ta ON s.entity_code = ta.entity_code AND s.slot_start <= ta.observed_at
    ASOF LEFT JOIN posted pa ON s.entity_code = pa.entity_code AND s.slot_start <= pa.observed_at
    ASOF LEFT JOIN posted pb ON s.entity_code = pb.entity_code AND s.slot_start >= pb.observed_at
    ASOF LEFT JOIN closed c ON s.entity_code = c.entity_code AND s.window_end >= c.observed_at
    ASOF LEFT JOIN posted pl ON s.entity_code = pl.entity_code AND s.window_end >= pl.observed_at
),
slot_points AS (SELECT DISTINCT entity_code, slot_start AS observed_at FROM eslots),
{posted_means_cte_sql("posted", "slot_points")},
base AS (
    SELECT m.entity_code, m.park_code, m.park_date, m.slot, m.slot_start,
           m.slot_start AS observed_at,
        CASE WHEN tb_secs <= {ACTUAL_MATCH_SECS} AND (ta_secs IS NULL OR tb_secs <= ta_secs)
             THEN tb_y WHEN ta_secs <= {ACTUAL_MATCH_SECS} THEN ta_y END AS observed,
        CASE WHEN pa_secs <= {POSTED_AFTER_SECS} THEN pa_v
             WHEN pb_secs <= {POSTED_BEFORE_SECS} THEN pb_v END AS posted_matched,
        coalesce(closed_at >= m.slot_start - INTERVAL {POSTED_BEFORE_SECS} SECOND
                 AND (last_posted_at IS NULL OR last_posted_at <= closed_at), false) AS is_closed
    FROM matched m
),
{feature_ctes_sql("base")}
SELECT f.entity_code, f.park_date, f.slot, f.slot_start,
       CAST(f.observed AS DOUBLE) AS observed, f.is_closed,
       {", ".join(c if c in CATEGORICAL_FEATURES else f"CAST(f.{c} AS DOUBLE) AS {c}"
                  for c in FEATURES_WITHOUT_POSTED)},
       CAST(f.posted_matched AS DOUBLE) AS posted_matched, r.posted_mean_30, r.posted_mean_60
FROM featured f
LEFT JOIN (SELECT * FROM rolling WHERE is_point) r
    ON r.entity_code = f.entity_code AND r.observed_at = f.slot_start
ORDER BY f.entity_code, f.slot_start
"""


def backfill_slots(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
                   queue_types: Sequence[str], as_of: date,
                   window_days: int | None = None) -> pd.DataFrame:
    """Matched observations and features of every slot of the entities' past park days.

    Grain: one row per (entity_code, slot_start) of park days with facts in the window. Columns:
    entity_code, park_date, slot, slot_start, observed (matched target or NaN), is_closed,
    FEATURES_WITHOUT_POSTED, posted_matched, posted_mean_30, posted_mean_60.
    """
    first_day = as_of - timedelta(days=window_days - 1) if window_days else date(1900, 1, 1)
    params = {
        **park_params(), "codes": list(entities), "queues": list(queue_types), "as_of": as_of,
        "first_day": first_day, "actual": ACTUAL, "priority": PRIORITY, "sold_out": SOLD_OUT,
        "posted": POSTED, "closed": CLOSED,
    }
    # DuckDB turns an ASOF join whose left side it estimates below 64 rows into a nested loop;
    # its estimate for the slot CTE is far too low (measured: 13 s instead of 0.3 s on 43k slots)
    previous = conn.execute("SELECT current_setting('asof_loop_join_threshold')").fetchall()[0][0]
    conn.execute("SET asof_loop_join_threshold = 0")
    try:
        with step(conn, f"backfill slots ({len(entities)} entities)"):
            return conn.execute(_SLOTS_SQL, params).df()
    finally:
        conn.execute("SET asof_loop_join_threshold = ?", [previous])


def backfill_frame(slots: pd.DataFrame, model) -> pd.DataFrame:
    """One entity's backfill from its `backfill_slots` rows and model (None: no imputation).

    Grain: one row per slot; columns curve_files.BACKFILL_COLUMNS.
    """
    observed = slots["observed"].to_numpy(float)
    closed = slots["is_closed"].to_numpy(bool)
    has_obs = ~np.isnan(observed)
    need = ~has_obs & ~closed & slots["posted_matched"].notna().to_numpy()
    if model is None:
        need[:] = False
    actual = np.where(has_obs, observed, np.nan)
    if need.any():
        pred = training.predict(model, slots[need], with_posted=True).astype(np.float64)
        actual[need] = np.round(pred, 1)
    source = np.select([has_obs, closed, need], [OBSERVED, CLOSED_SOURCE, IMPUTED], MISSING)
    return pd.DataFrame({
        "entity_code": slots["entity_code"].to_numpy(), "park_date": slots["park_date"],
        "slot": slots["slot"], "slot_start": slots["slot_start"], "actual": actual,
        "source": source,
    })


@dataclass
class BackfillResult:
    entity_code: str
    rows: int = 0
    by_source: dict | None = None
    seconds: float = 0.0
    model_version: int | None = None
    path: str | None = None
    error: str | None = None


def run_backfill(reader: Reader, home: Path, entities: Sequence[str], as_of: date,
                 window_days: int | None = None,
                 on_done: Callable[[BackfillResult], None] | None = None) -> list[BackfillResult]:
    """Backfill and write every entity's file; one BackfillResult per entity (input order).

    An entity without facts in the window gets an empty file.
    """
    home = Path(home)
    results: dict[str, BackfillResult] = {}
    for i in range(0, len(entities), ENTITY_CHUNK):
        chunk = list(entities[i:i + ENTITY_CHUNK])
        with reader() as conn:  # short read; prediction happens after it is closed
            queues = dict(conn.execute(
                "SELECT entity_code, any_value(queue_type) FROM dim_entity "
                "WHERE entity_code IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [chunk]
            ).fetchall())
            slots = backfill_slots(conn, chunk, [queues.get(c, "STANDBY") for c in chunk],
                                   as_of, window_days)
        for code in chunk:
            started = time.perf_counter()
            try:  # one failing entity never stops the others
                res = _one(home, code, slots[slots["entity_code"] == code])
            except Exception as exc:  # noqa: BLE001 - reported per entity
                res = BackfillResult(code, error=f"{type(exc).__name__}: {exc}")
            res.seconds = round(time.perf_counter() - started, 3)
            results[code] = res
            if on_done:
                on_done(res)
    return [results[c] for c in entities]


def _one(home: Path, code: str, slots: pd.DataFrame) -> BackfillResult:
    try:
        model = registry.load_model(home / "models", code)
    except registry.RegistryError:
        model = None
    frame = backfill_frame(slots, model)
    path = curve_files.entity_file(home, curve_files.BACKFILL_DIR, code)
    rows = curve_files.write_entity_file(frame, path, curve_files.BACKFILL_SCHEMA)
    return BackfillResult(code, rows, {str(k): int(v) for k, v in
                                       frame["source"].value_counts().items()},
                          model_version=None if model is None else model.version, path=str(path))

"""Historical ACTUAL curves per entity (the legacy backfill never ran: hours, file names broke).

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

Incremental: each entity's file records, per park day, a fingerprint of what that day's curve was
built from (the day's facts of the entity and the park's hours that day) and whether a model
imputed it. A later run recomputes only the days whose fingerprint changed (new or corrected
facts, new hours), the days imputed without a model when the entity has one now, and drops days
that left the window; every other day is kept as it was, so the daily cost follows the new
facts, not the history. Past days keep the model that imputed them (a new model does not rewrite
history; `recompute_all` does). Edge not covered: a fact before 06:00 (the previous park day)
that would match the first slot of a day changes that day's curve without changing its
fingerprint; it is picked up when the day is recomputed for another reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bambam_assets.lib.core.paths import HomePaths
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
# Park days of work read in one query: five entities' year of history on a first run (a few
# entities per read keeps memory bounded), every entity's new day in one read on a daily run.
CHUNK_DAYS = 5 * 366

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
only_days AS (
    SELECT unnest($only_codes::VARCHAR[]) AS entity_code, unnest($only_days::DATE[]) AS park_date
),
days AS (
    SELECT DISTINCT o.entity_code, o.park_code, o.park_date FROM obs o
    WHERE o.park_date >= $first_day AND ($only_all OR EXISTS (
        SELECT 1 FROM only_days q
        WHERE q.entity_code = o.entity_code AND q.park_date = o.park_date))
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


# Parquet metadata: {park_date: [fingerprint, version of the model that imputed it or null]}
STATE_KEY = b"bambam.backfill_days"

_DAY_STATE_SQL = """
SELECT f.entity_code, f.park_date,
       hash(count(*), bit_xor(hash(f.observed_at, f.wait_time_type, f.wait_time_minutes)),
            any_value(hash(h.opening_time, h.closing_time, h.opening_time_with_emh,
                           h.closing_time_with_emh))) AS fingerprint
FROM fct_wait_times f
LEFT JOIN dim_park_hours h ON h.park_code = f.park_code AND h.park_date = f.park_date
WHERE f.entity_code IN (SELECT unnest($codes::VARCHAR[]))
  AND f.park_date <= $as_of AND f.park_date >= $first_day
GROUP BY f.entity_code, f.park_date
"""


def day_states(conn: duckdb.DuckDBPyConnection, entities: Sequence[str], as_of: date,
               window_days: int | None = None) -> dict[str, dict[str, int]]:
    """Per entity, per park day with facts in the window: the fingerprint of what the day's
    curve is built from (the entity's facts of that day and the park's hours). One pass over
    the facts of the entities, grouped; cost grows with the facts, read once."""
    rows = conn.execute(_DAY_STATE_SQL, {"codes": list(entities), "as_of": as_of,
                                         "first_day": _first_day(as_of, window_days)}).fetchall()
    out: dict[str, dict[str, int]] = {}
    for code, day, fp in rows:
        out.setdefault(code, {})[day.isoformat()] = int(fp)
    return out


def read_state(path: Path) -> dict[str, tuple[int, int | None]] | None:
    """The day states an entity's file was built from ({park_date: (fingerprint, version of the
    model that imputed it, or None)}), or None when there is no file or it carries none (then
    every day is recomputed)."""
    footer = curve_files.read_footer(path)
    return None if footer is None else state_of(footer[0])


def state_of(metadata: dict[bytes, bytes]) -> dict[str, tuple[int, int | None]] | None:
    """The day states recorded in a backfill file's metadata (read_state), or None."""
    raw = metadata.get(STATE_KEY)
    if raw is None:
        return None
    return {day: (int(fp), None if v is None else int(v))
            for day, (fp, v) in json.loads(raw).items()}


def plan_days(now: dict[str, int], old: dict[str, tuple[int, int | None]] | None,
              has_model: bool) -> tuple[list[str], list[str]]:
    """(days to compute, days of the old file to keep). A day is computed when it is new, its
    fingerprint changed, or it was built without a model and the entity has one now."""
    if old is None:
        return sorted(now), []
    compute, keep = [], []
    for day, fp in now.items():
        before = old.get(day)
        if before is None or before[0] != fp or (has_model and before[1] is None):
            compute.append(day)
        else:
            keep.append(day)
    return sorted(compute), sorted(keep)


def _first_day(as_of: date, window_days: int | None) -> date:
    return as_of - timedelta(days=window_days - 1) if window_days else date(1900, 1, 1)


def backfill_slots(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
                   queue_types: Sequence[str], as_of: date,
                   window_days: int | None = None,
                   only_days: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Matched observations and features of every slot of the entities' past park days.

    Grain: one row per (entity_code, slot_start) of park days with facts in the window. Columns:
    entity_code, park_date, slot, slot_start, observed (matched target or NaN), is_closed,
    FEATURES_WITHOUT_POSTED, posted_matched, posted_mean_30, posted_mean_60.
    `only_days`: (entity_code, park_date ISO) pairs to compute instead of every day in the
    window; the facts read start the day before the earliest of them.
    """
    first_day = _first_day(as_of, window_days)
    if only_days is not None:
        if not only_days:
            return pd.DataFrame()
        first_day = max(first_day, min(date.fromisoformat(d) for _, d in only_days))
    params = {
        **park_params(), "codes": list(entities), "queues": list(queue_types), "as_of": as_of,
        "first_day": first_day, "actual": ACTUAL, "priority": PRIORITY, "sold_out": SOLD_OUT,
        "posted": POSTED, "closed": CLOSED, "only_all": only_days is None,
        "only_codes": [c for c, _ in only_days or ()],
        "only_days": [date.fromisoformat(d) for _, d in only_days or ()],
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
    days_computed: int = 0
    days_kept: int = 0
    unchanged: bool = False  # nothing to recompute: the file was left as it was


def run_backfill(reader: Reader, home: Path, entities: Sequence[str], as_of: date,
                 window_days: int | None = None,
                 on_done: Callable[[BackfillResult], None] | None = None,
                 recompute_all: bool = False) -> list[BackfillResult]:
    """Backfill every entity's file, recomputing only the park days that changed since its
    file was written (every day when `recompute_all` or the file carries no day states);
    one BackfillResult per entity (input order). An entity with nothing to recompute keeps its
    file (`unchanged`); one without facts in the window gets an empty file.
    """
    home = Path(home)
    results: dict[str, BackfillResult] = {}
    with reader() as conn:  # one grouped pass over the entities' facts
        states = day_states(conn, entities, as_of, window_days)
    plans: dict[str, tuple[list[str], list[str], dict | None]] = {}
    for code in entities:  # file footers only: what each entity must recompute
        path = curve_files.entity_file(home, curve_files.BACKFILL_DIR, code)
        footer = None if recompute_all else curve_files.read_footer(path)
        old = None if footer is None else state_of(footer[0])
        has_model = registry.current_version(HomePaths(home).models, code) is not None
        compute, keep = plan_days(states.get(code, {}), old, has_model)
        if old is not None and not compute and len(keep) == len(old):  # nothing changed
            results[code] = BackfillResult(
                code, rows=footer[1], path=str(path),
                days_kept=len(keep), unchanged=True)
            if on_done:
                on_done(results[code])
            continue
        plans[code] = (compute, keep, old)
    for chunk in _chunks(plans):
        pairs = [(c, d) for c in chunk for d in plans[c][0]]
        with reader() as conn:  # short read; prediction happens after it is closed
            queues = dict(conn.execute(
                "SELECT entity_code, any_value(queue_type) FROM dim_entity "
                "WHERE entity_code IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [chunk]
            ).fetchall())
            slots = backfill_slots(conn, chunk, [queues.get(c, "STANDBY") for c in chunk],
                                   as_of, window_days, only_days=pairs)
        by_entity = dict(tuple(slots.groupby("entity_code", sort=False))) if len(slots) else {}
        for code in chunk:
            compute, keep, old = plans[code]
            started = time.perf_counter()
            try:  # one failing entity never stops the others
                rows = by_entity.get(code, slots.iloc[0:0])
                res = _one(home, code, rows, compute, keep, old, states.get(code, {}))
            except Exception as exc:  # noqa: BLE001 - reported per entity
                res = BackfillResult(code, error=f"{type(exc).__name__}: {exc}")
            res.seconds = round(time.perf_counter() - started, 3)
            results[code] = res
            if on_done:
                on_done(res)
    return [results[c] for c in entities]


def _chunks(plans: dict[str, tuple[list[str], list[str], dict | None]]) -> list[list[str]]:
    """Entities to read together: up to CHUNK_DAYS park days of work per read (at least one
    entity), in plan order."""
    chunks: list[list[str]] = []
    days = 0
    for code, (compute, _, _) in plans.items():
        if not chunks or (days + len(compute) > CHUNK_DAYS and chunks[-1]):
            chunks.append([])
            days = 0
        chunks[-1].append(code)
        days += len(compute)
    return chunks


def _one(home: Path, code: str, slots: pd.DataFrame, compute: list[str], keep: list[str],
         old: dict | None, now: dict[str, int]) -> BackfillResult:
    try:
        model = registry.load_model(HomePaths(home).models, code)
    except registry.RegistryError:
        model = None
    path = curve_files.entity_file(home, curve_files.BACKFILL_DIR, code)
    fresh = (backfill_frame(slots, model) if len(slots)
             else pd.DataFrame(columns=list(curve_files.BACKFILL_COLUMNS)))
    frame = fresh
    if keep:  # the old file's kept days, then the recomputed ones, in slot order
        kept = pq.read_table(path, filters=[("park_date", "in",
                                              [date.fromisoformat(d) for d in keep])]).to_pandas()
        parts = [kept, fresh] if len(fresh) else [kept]
        frame = pd.concat(parts, ignore_index=True).sort_values("slot_start", kind="stable")
    version = None if model is None else model.version
    state = {d: [now[d], version] for d in compute}
    state |= {d: [old[d][0], old[d][1]] for d in keep}
    rows = curve_files.write_entity_file(frame, path, curve_files.BACKFILL_SCHEMA,
                                         metadata={STATE_KEY: json.dumps(state)})
    counts = fresh["source"].value_counts() if len(fresh) else pd.Series(dtype=int)
    return BackfillResult(code, rows, {str(k): int(v) for k, v in counts.items()},
                          model_version=None if model is None else model.version, path=str(path),
                          days_computed=len(compute), days_kept=len(keep))

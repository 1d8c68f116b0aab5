"""The Wait Time Index: mean ACTUAL over a park's open entities, per slot and per day.

Value of one entity at one slot: the backfill `actual` (observed, else imputed), else the forecast
`actual_predicted` times the forecast file's level factor (forecast.LEVEL_KEY; 1 without one);
a backfill slot with source `closed` has no value even if a forecast exists,
and null values are excluded, never counted as 0. Legacy quirks fixed: curves are read once
(DuckDB over all Parquet files) instead of once per entity x slot; PRIORITY entities are left out
(their values are return-time waits, not ACTUAL, and the index is "mean ACTUAL"); park = the
letters of the entity code before its first digit (so TDL/TDS/USH are their own parks).

Why the level factor: the models predict medians (absolute error), and a median of a wait
distribution skewed to the right is below its mean, the more so the less the model knows; the
backfill's imputation knows the day's POSTED, the forecast only the calendar. Unscaled, the daily
WTI dropped at the as-of date where the observed waits did not (real data, issue 14: 5-25 %).
Each version stores the ratio of its training targets' mean to its predictions' mean on its
newest rows within the official hours (training.level_ratio) and the forecast file carries it,
so the index's forecast days continue the backfill's level; the entity curves and the forecast
API keep the model's values.

EMH and party-only slots (the curves run from the EMH opening to the EMH/party closing, slots.py)
are left out of the park WTI: only some guests (resort guests, party ticket holders) can ride
then, and only some rides run, so those slots would describe a different crowd and make an EMH
day's daily index incomparable with a regular day's. The park WTI covers the official hours
(`official_hours`: opening_time..closing_time per park day, both included); the entity curves
keep their EMH slots.

- `park_wti`: one row per (park_code, slot_start): park_code, park_date, slot, slot_start, wti
  (mean of the values), n_entities (entities with a value), min_actual, max_actual. A slot whose
  entities are all closed or null has wti NULL and n_entities 0.
- `park_wti_daily`: one row per (park_code, park_date): wti = mean of the day's slot WTIs (each
  slot counts once, so a busy hour with few entities reporting is not under-weighted), p10/p90 =
  10th/90th percentiles of the slot WTIs over the day, n_entities = distinct entities with a
  value that day, n_slots = slots with a WTI.

Incremental by park day: `input_fingerprints` folds, per (park, park date), what the curves of
that day were built from (each backfill file's per-day state, each forecast file's inputs
fingerprint over its window) into one number, without reading any curve; `dirty_days` compares
it with table `wti_inputs` (what the stored WTI rows were computed from), and only those park
days are recomputed and replaced. A day of new facts costs one park day per park; a new model
costs its park's forecast window; nothing new costs a listing of the curve files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bambam_assets.lib.core.warehouse import cpu_count, memory_connection, staged, step
from bambam_assets.lib.forecasts import backfill, forecast
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.backfill import CLOSED_SOURCE

SLOT_TABLE, DAILY_TABLE, STATE_TABLE = "park_wti", "park_wti_daily", "wti_inputs"
_K_ENTITY, _K_STATE, _K_VERSION, _K_FORECAST = (np.uint64(0x9E3779B97F4A7C15),
                                                np.uint64(0xC2B2AE3D27D4EB4F),
                                                np.uint64(0x165667B19E3779F9),
                                                np.uint64(0xD6E8FEB86659FD93))

_EMPTY_FORECAST = """(SELECT NULL::VARCHAR AS entity_code, NULL::DATE AS park_date,
    NULL::VARCHAR AS slot, NULL::TIMESTAMPTZ AS slot_start, NULL::DOUBLE AS actual_predicted
    WHERE false)"""
_EMPTY_BACKFILL = """(SELECT NULL::VARCHAR AS entity_code, NULL::DATE AS park_date,
    NULL::VARCHAR AS slot, NULL::TIMESTAMPTZ AS slot_start, NULL::DOUBLE AS actual,
    NULL::VARCHAR AS source WHERE false)"""


def values_sql(has_forecast: bool, has_backfill: bool, one_park: bool = False,
               only_days: bool = False, levels: bool = False) -> str:
    """SELECT of the entity-slot values from the Parquet files (bind $forecast_glob,
    $backfill_glob, $closed, $excluded). One row per (entity_code, slot_start) with a file row:
    entity_code, park_code, park_date, slot, slot_start, value (NULL: closed or unknown).

    `one_park`: the files are one park's (bind $park, its code: no per-row regexp finds it).
    `only_days`: only the park days of a registered `_wti_days` (one park's) are read, each side
    filtered before the join, so a daily run joins the new days' rows, not every backfilled day
    of the park's history (a filter above a FULL OUTER JOIN is not pushed below it).
    `levels`: a registered `_wti_levels` (entity_code, level) scales each entity's forecast
    values (an entity without a row: factor 1)."""
    f = ("read_parquet($forecast_glob, hive_partitioning = true)" if has_forecast
         else _EMPTY_FORECAST)
    b = ("read_parquet($backfill_glob, hive_partitioning = true)" if has_backfill
         else _EMPTY_BACKFILL)
    # the same slot_start is the same park day on both sides, so filtering each side by day
    # before the join keeps exactly the joined rows of those days
    where = " WHERE park_date IN (SELECT park_date FROM _wti_days)" if only_days else ""
    park = "$park" if one_park else "regexp_extract(entity_code, '^([A-Z]+)', 1)"
    forecast_values = (
        f"SELECT entity_code, park_date, slot, slot_start, "
        f"actual_predicted * coalesce(l.level, 1.0) AS actual_predicted "
        f"FROM (SELECT * FROM {f}{where}) LEFT JOIN _wti_levels l USING (entity_code)"
        if levels else
        f"SELECT entity_code, park_date, slot, slot_start, actual_predicted FROM {f}{where}")
    return f"""
    SELECT entity_code, {park} AS park_code, park_date, slot, slot_start, value
    FROM (
        SELECT coalesce(b.entity_code, f.entity_code) AS entity_code,
               coalesce(b.park_date, f.park_date) AS park_date,
               coalesce(b.slot, f.slot) AS slot,
               coalesce(b.slot_start, f.slot_start) AS slot_start,
               CASE WHEN b.source = $closed THEN NULL
                    ELSE coalesce(b.actual, f.actual_predicted) END AS value
        FROM (SELECT entity_code, park_date, slot, slot_start, actual, source FROM {b}{where}) b
        FULL OUTER JOIN ({forecast_values}) f
            ON b.entity_code = f.entity_code AND b.slot_start = f.slot_start
    )
    WHERE entity_code NOT IN (SELECT unnest($excluded::VARCHAR[]))"""


# One pass over the values: grouping sets share one scan of the curve files (two queries read
# every forecast and backfill file of the park twice). Set g = 0: one row per (park, slot);
# g = 1: one row per (park, park day, entity), whose count says whether the entity had a value.
PASS_SQL = """
    SELECT park_code, slot_start, park_date, entity_code, any_value(park_date) AS slot_date,
           any_value(slot) AS slot, avg(value) AS wti, count(value) AS n_entities,
           min(value) AS min_actual, max(value) AS max_actual, grouping(slot_start) AS g
    FROM wti_values
    GROUP BY GROUPING SETS ((park_code, slot_start), (park_code, park_date, entity_code))
"""
SLOT_SQL = """
    SELECT park_code, slot_date AS park_date, slot, slot_start, wti, n_entities,
           min_actual, max_actual
    FROM wti_pass WHERE g = 0 ORDER BY park_code, slot_start
"""
DAY_ENTITIES_SQL = """
    SELECT park_code, park_date, count(*) FILTER (WHERE n_entities > 0) AS n_entities
    FROM wti_pass WHERE g = 1 GROUP BY park_code, park_date
"""
DAILY_SQL = """
    SELECT s.park_code, s.park_date, avg(s.wti) AS wti,
           quantile_cont(s.wti, 0.1) AS p10, quantile_cont(s.wti, 0.9) AS p90,
           any_value(e.n_entities) AS n_entities, count(s.wti) AS n_slots
    FROM wti_slots s JOIN wti_day_entities e USING (park_code, park_date)
    GROUP BY s.park_code, s.park_date ORDER BY s.park_code, s.park_date
"""


def official_hours(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The official hours of every park day in dim_park_hours: park_code, park_date,
    opening_time, closing_time (the WTI's span; EMH and party hours left out). None without
    dim_park_hours (then there are no slots, hence no curves, either)."""
    if not conn.execute("SELECT count(*) FROM information_schema.tables "
                        "WHERE table_name = 'dim_park_hours'").fetchone()[0]:
        return None
    return conn.execute("SELECT park_code, park_date, opening_time, closing_time "
                        "FROM dim_park_hours WHERE opening_time IS NOT NULL").df()


def _official_only(values: str) -> str:
    # the values of slots within the official hours (`_wti_hours` registered); a park day
    # without official hours has no official slot
    return (f"SELECT v.* FROM ({values}) v JOIN _wti_hours h USING (park_code, park_date) "
            "WHERE v.slot_start >= h.opening_time AND v.slot_start <= h.closing_time")


def _tables(conn: duckdb.DuckDBPyConnection, values: str, params: dict
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    # one pass over the values (never held in pandas: hundreds of millions of rows at scale);
    # its result is small (a row per slot and per entity-day)
    with step(conn, "park_wti"):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE wti_pass AS "
                     f"WITH wti_values AS ({values}) {PASS_SQL}", params)
        slots = conn.execute(SLOT_SQL).df()
        day_entities = conn.execute(DAY_ENTITIES_SQL).df()
        conn.execute("DROP TABLE wti_pass")
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


def _park_of(code: str) -> str:
    # the letters before the first digit, as values_sql's regexp_extract: unlike
    # parks.park_of_entity, an unknown park keeps its letters (its curves still form a WTI)
    return code[:len(code) - len(code.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))] if code else code


def _entity_files(home: Path, kind: str, excluded: set[str]) -> dict[str, Path]:
    """entity code -> its curve file of `kind` (one directory listing)."""
    root = Path(home) / kind
    name = Path(curve_files.glob_of(home, kind)).name
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for entry in root.iterdir():
        code = entry.name.partition("=")[2]
        path = entry / name
        if code and code not in excluded and path.is_file():
            out[code] = path
    return out


def compute_wti(home: Path, excluded_entities: Sequence[str] = (),
                days: pd.DataFrame | None = None, hours: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(park_wti, park_wti_daily) from the forecast and backfill files under `home`: for every
    park day, or only the (park_code, park_date) rows of `days` (reading only their parks'
    files). With `hours` (official_hours), only the slots within the official hours count (the
    pipeline's rule); without, every slot of the curves does.

    Park by park, one park per CPU at a time: a park's WTI reads only its entities' files, so
    DuckDB's memory and spill grow with the largest parks, not with the estate (one query over
    every park's backfill and forecast rows exceeded a 5.8 GiB memory and 4 GiB temp limit at
    1,694 entities x 3 years). Runs in in-memory DuckDBs, so the warehouse is not held while
    the curves are read.
    """
    excluded = set(excluded_entities)
    parks = None if days is None else set(days["park_code"])
    files: dict[str, dict[str, list[str]]] = {}  # park -> kind -> files
    for kind in (curve_files.FORECASTS_DIR, curve_files.BACKFILL_DIR):
        for code, path in _entity_files(home, kind, excluded).items():
            park = _park_of(code)
            if parks is None or park in parks:
                files.setdefault(park, {curve_files.FORECASTS_DIR: [],
                                        curve_files.BACKFILL_DIR: []})[kind].append(str(path))
    names = sorted(files) or [None]  # no curve file at all: the empty tables, with columns
    workers = max(1, min(len(names), cpu_count()))

    # One thread per CPU, one park each, each with its own in-memory DuckDB (one thread, its
    # share of the memory limit): DuckDB releases the GIL, and one park at a time left a core
    # idle while a park's files were decoded.
    def one(park: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        conn = memory_connection(home, threads=1, share=workers)
        try:
            if park is None:
                return _park_tables(conn, {curve_files.FORECASTS_DIR: [],
                                           curve_files.BACKFILL_DIR: []}, excluded, False, False)
            if days is not None:
                conn.register("_wti_days", days.loc[days["park_code"] == park,
                                                    ["park_code", "park_date"]])
            if hours is not None:
                conn.register("_wti_hours", hours.loc[hours["park_code"] == park,
                                                      ["park_code", "park_date", "opening_time",
                                                       "closing_time"]])
            return _park_tables(conn, files[park], excluded, days is not None,
                                hours is not None, park)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(one, names))
    slots = pd.concat([sl for sl, _ in parts], ignore_index=True)
    daily = pd.concat([d for _, d in parts], ignore_index=True)
    return slots, daily


def _park_tables(conn: duckdb.DuckDBPyConnection, files: dict[str, list[str]],
                 excluded: set[str], only_days: bool, only_official: bool,
                 park: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(park_wti, park_wti_daily) rows of one park's files, `park` (None: no file);
    `_wti_days` (that park's days) registered when `only_days`, `_wti_hours` when
    `only_official`."""
    forecasts = sorted(files[curve_files.FORECASTS_DIR])
    backfills = sorted(files[curve_files.BACKFILL_DIR])
    params: dict = {"closed": CLOSED_SOURCE, "excluded": sorted(excluded)}
    if forecasts:
        params["forecast_glob"] = forecasts
    if backfills:
        params["backfill_glob"] = backfills
    if park is not None:
        params["park"] = park
    levels = forecast_levels(forecasts)
    if levels is not None:
        conn.register("_wti_levels", levels)
    values = values_sql(bool(forecasts), bool(backfills), one_park=park is not None,
                        only_days=only_days, levels=levels is not None)
    if only_official:
        values = _official_only(values)
    try:
        return _tables(conn, values, params)
    finally:
        for name in ("wti_slots", "wti_day_entities",
                     *(("_wti_levels",) if levels is not None else ())):
            conn.unregister(name)


def forecast_levels(paths: Sequence[str]) -> pd.DataFrame | None:
    """(entity_code, level) of the forecast files that record a level factor (footers only);
    None when none does. The entity is the file's hive folder, as read_parquet sees it."""
    rows = []
    for path in paths:
        level = forecast.stored_level(Path(path))
        if level is not None:
            rows.append((Path(path).parent.name.partition("=")[2], level))
    if not rows:
        return None
    return pd.DataFrame(rows, columns=["entity_code", "level"])


def _salt(code: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(code.encode(), digest_size=8).digest(),
                                    "little"))


def _forecast_span(path: Path) -> tuple[date, date] | None:
    """First and last park_date of a forecast file, from its row-group statistics."""
    meta = pq.ParquetFile(path).metadata
    col = meta.schema.names.index("park_date")
    lo = hi = None
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max:
            table = pq.read_table(path, columns=["park_date"])
            values = table.column(0).to_pylist()
            return (min(values), max(values)) if values else None
        lo = stats.min if lo is None else min(lo, stats.min)
        hi = stats.max if hi is None else max(hi, stats.max)
    return None if lo is None else (lo, hi)


# the curve-file listing and spans, for the forecast API's publication (lib/forecasts/published.py)
park_of, entity_files, forecast_span = _park_of, _entity_files, _forecast_span


def input_fingerprints(home: Path, excluded_entities: Sequence[str] = ()) -> pd.DataFrame:
    """What each park day's WTI would be computed from, folded into one number.

    Grain: one row per (park_code, park_date) that a curve file of a non-excluded entity
    covers; `fingerprint` (uint64) is the XOR over those entities of a mix of the entity and
    (backfill) the day's fact fingerprint and imputing model version, (forecast) the file's
    inputs fingerprint, for every day of its window. Reads file footers only, never curves; a
    backfill file without day states contributes its size and mtime for each of its days.
    """
    excluded = set(excluded_entities)
    parts: list[pd.DataFrame] = []
    with np.errstate(over="ignore"):
        for code, path in _entity_files(home, curve_files.BACKFILL_DIR, excluded).items():
            state = backfill.read_state(path)
            if state is None:  # no per-day record: tie every day to the file's identity
                st = path.stat()
                days = pd.unique(pq.read_table(path, columns=["park_date"]).column(0)
                                 .to_numpy())
                fps = np.full(len(days), np.uint64(hash((st.st_size, st.st_mtime_ns))
                                                   & 0xFFFFFFFFFFFFFFFF))
                versions = np.zeros(len(days), dtype=np.uint64)
            else:
                days = np.array(list(state), dtype="datetime64[D]")
                fps = np.array([fp & 0xFFFFFFFFFFFFFFFF for fp, _ in state.values()],
                               dtype=np.uint64)
                versions = np.array([(v or 0) + 1 if v is not None else 0
                                     for _, v in state.values()], dtype=np.uint64)
            mix = (_salt(code) * _K_ENTITY) ^ (fps * _K_STATE) ^ (versions * _K_VERSION)
            parts.append(pd.DataFrame({"park_code": _park_of(code),
                                       "park_date": pd.to_datetime(days).date, "h": mix}))
        for code, path in _entity_files(home, curve_files.FORECASTS_DIR, excluded).items():
            span = _forecast_span(path)
            if span is None:
                continue
            fp = forecast.stored_fingerprint(path)
            if fp is None:
                st = path.stat()
                fp = f"{st.st_size}-{st.st_mtime_ns}"
            value = np.uint64(int(hashlib.blake2b(fp.encode(), digest_size=8).hexdigest(), 16))
            days = pd.date_range(span[0], span[1], freq="D").date
            mix = (_salt(code) * _K_ENTITY) ^ (value * _K_FORECAST)
            parts.append(pd.DataFrame({"park_code": _park_of(code), "park_date": days,
                                       "h": np.full(len(days), mix, dtype=np.uint64)}))
    if not parts:
        return pd.DataFrame({"park_code": pd.Series(dtype=object),
                             "park_date": pd.Series(dtype=object),
                             "fingerprint": pd.Series(dtype=np.uint64)})
    frame = pd.concat(parts, ignore_index=True).sort_values(["park_code", "park_date"],
                                                            kind="stable")
    keys = frame[["park_code", "park_date"]]
    starts = np.flatnonzero(~keys.duplicated().to_numpy())
    fingerprint = np.bitwise_xor.reduceat(frame["h"].to_numpy(np.uint64), starts)
    out = keys.iloc[starts].reset_index(drop=True)
    out["fingerprint"] = fingerprint
    return out


def dirty_days(conn: duckdb.DuckDBPyConnection, current: pd.DataFrame) -> pd.DataFrame:
    """The (park_code, park_date) rows whose fingerprint differs from table `wti_inputs`, or
    that only one side has (a new day, or a day no curve covers any more)."""
    conn.register("_wti_current", current)
    try:
        return conn.execute(f"""
            SELECT coalesce(c.park_code, s.park_code) AS park_code,
                   coalesce(c.park_date, s.park_date) AS park_date
            FROM _wti_current c FULL OUTER JOIN {STATE_TABLE} s
                ON s.park_code = c.park_code AND s.park_date = c.park_date
            WHERE c.fingerprint IS DISTINCT FROM s.fingerprint
            ORDER BY 1, 2""").df()
    finally:
        conn.unregister("_wti_current")


def write_wti(conn: duckdb.DuckDBPyConnection, slots: pd.DataFrame, daily: pd.DataFrame,
              days: pd.DataFrame | None = None, current: pd.DataFrame | None = None) -> None:
    """Replace tables park_wti and park_wti_daily (one transaction): wholly, or only the park
    days of `days` (the rows of those days in `slots`/`daily` replace the stored ones). With
    `current` (input_fingerprints), table wti_inputs records what those days were computed
    from."""
    frames = {"_wti_slots": slots, "_wti_daily": daily}
    if days is not None:
        frames["_wti_days"] = days.loc[:, ["park_code", "park_date"]]
    if current is not None:
        frames["_wti_current"] = current
    with staged(conn, **frames), step(conn, "write park_wti"):
        if days is None:
            conn.execute(f"CREATE OR REPLACE TABLE {SLOT_TABLE} AS SELECT * FROM _wti_slots")
            conn.execute(f"CREATE OR REPLACE TABLE {DAILY_TABLE} AS SELECT * FROM _wti_daily")
            if current is not None:
                conn.execute(f"DELETE FROM {STATE_TABLE}")
                conn.execute(f"INSERT INTO {STATE_TABLE} SELECT park_code, park_date, "
                             "fingerprint FROM _wti_current")
            return
        for table, frame in ((SLOT_TABLE, "_wti_slots"), (DAILY_TABLE, "_wti_daily")):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM {frame} LIMIT 0")
            conn.execute(f"DELETE FROM {table} t USING _wti_days d "
                         "WHERE t.park_code = d.park_code AND t.park_date = d.park_date")
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {frame}")
        if current is not None:
            conn.execute(f"DELETE FROM {STATE_TABLE} t USING _wti_days d "
                         "WHERE t.park_code = d.park_code AND t.park_date = d.park_date")
            conn.execute(f"INSERT INTO {STATE_TABLE} SELECT c.park_code, c.park_date, "
                         "c.fingerprint FROM _wti_current c SEMI JOIN _wti_days d "
                         "USING (park_code, park_date)")

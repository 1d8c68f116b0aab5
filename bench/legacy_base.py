"""The legacy's `output_base`, written from a Bambam home for the benchmarks (setup, not timed).

    write_legacy_base(home, base, as_of)

What the legacy's ETL and dimension scripts would have left on disk for its training and forecast
(docs: shared/spec/legacy_system.md §1.6, §3, §8), taken from the warehouse's tables so that both
sides read exactly the same observations:
- `fact_tables/clean/{YYYY-MM}/{park}_{YYYY-MM-DD}.csv`: one file per (park, park_date), grain one
  row per observation, the legacy's 4 columns `entity_code, observed_at, wait_time_type,
  wait_time_minutes`; observed_at as ISO-8601 with the park's UTC offset
  (`2024-01-15T10:30:00-05:00`), rows sorted by instant; park = the legacy's lower-case park code
  (USH -> `uh`). Only POSTED / ACTUAL / PRIORITY rows with minutes (the legacy had no CLOSED:
  its ETL dropped -999 with the 0..1000 filter). Written by ONE DuckDB `COPY ... PARTITION_BY`
  (no per-row Python), whose hive folders are then renamed to the legacy names (a loop over
  files: ~14 parks x 365 a year);
- `dimension_tables/`: `dimentity.csv` (dim_entity), `dimdategroupid.csv` (dim_calendar,
  2005-01-01 to the horizon as the legacy's spine), `dimseason.csv`, and the flat
  `dimparkhours.csv` (dim_park_hours: official hours, and donor hours for future days where the
  legacy's versioned table would have held its donor versions), times ISO with offset;
- `aggregates/posted_aggregates.parquet`: the legacy's grain (entity_code, dategroupid, hour)
  with its columns, from Bambam's `posted_aggregates` table (level `entity_dgid_hour`; local
  hour). Only when that table exists (the forecast asset has run): only the legacy forecast
  reads it.

Legacy quirks not copied: USH is Los Angeles time, park_date is Bambam's (6 AM rule in the park's
own zone), files are written sorted once instead of appended run after run.

A `.complete` marker records the warehouse's size and mtime and the as-of date: a second call on
an unchanged home reuses the folder (emptied of what earlier legacy runs wrote: models, encoding
mappings, curves).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date
from pathlib import Path

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import ACTUAL, POSTED, PRIORITY
from bambam_assets.lib.models.features import park_params

FACTS = Path("fact_tables") / "clean"
DIMS = Path("dimension_tables")
AGGREGATES = Path("aggregates") / "posted_aggregates.parquet"
MARKER = ".complete"
RUN_OUTPUTS = ("models", "state", "curves")  # written by the legacy's runs, not by its ETL


def legacy_park(park_code: str) -> str:
    """The legacy's park code of a Bambam park code (file names): lower case, USH -> uh."""
    return "uh" if park_code == "USH" else park_code.lower()


def _iso(col: str) -> str:
    """SQL: TIMESTAMPTZ `col` as local ISO-8601 with offset in zone column `tz`."""
    local = f"timezone(tz, {col})"
    off = f"CAST(round((epoch({local}) - epoch({col})) / 60) AS INTEGER)"
    return (f"CASE WHEN {col} IS NULL THEN NULL ELSE strftime({local}, '%Y-%m-%dT%H:%M:%S') "
            f"|| CASE WHEN {off} < 0 THEN '-' ELSE '+' END "
            f"|| lpad(CAST(abs({off}) // 60 AS VARCHAR), 2, '0') || ':' "
            f"|| lpad(CAST(abs({off}) % 60 AS VARCHAR), 2, '0') END")


_PARKS = """parks AS (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                          unnest($park_tzs::VARCHAR[]) AS tz)"""


def _marker(home: Path, as_of: date) -> dict:
    st = HomePaths(home).warehouse.stat()
    return {"warehouse": str(HomePaths(home).warehouse), "size": st.st_size,
            "mtime": st.st_mtime, "as_of": as_of.isoformat()}


def write_legacy_base(home: Path, base: Path, as_of: date, log=print) -> dict:
    """Write (or reuse) the legacy output_base under `base` from `home`; returns what it wrote."""
    want = _marker(home, as_of)
    marker = base / MARKER
    if marker.exists():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in want} == want:
            for produced in RUN_OUTPUTS:  # an earlier benchmark's models, mapping, curves
                shutil.rmtree(base / produced, ignore_errors=True)
            log(f"legacy base {base}: reused ({done['fact_files']} fact files)")
            return done | {"reused": True}
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    t0 = time.perf_counter()
    with warehouse.reader(home, heavy=True) as conn:
        rows = _write_facts(conn, base, as_of)
        t1 = time.perf_counter()
        _write_dimensions(conn, base)
        has_aggregates = warehouse.table_exists(conn, "posted_aggregates")
        if has_aggregates:
            _write_aggregates(conn, base)
    files = _rename_partitions(base)
    out = want | {"fact_rows": rows, "fact_files": files, "aggregates": has_aggregates,
                  "seconds_facts": round(t1 - t0, 1),
                  "seconds": round(time.perf_counter() - t0, 1),
                  "fact_bytes": sum(p.stat().st_size for p in (base / FACTS).rglob("*.csv"))}
    marker.write_text(json.dumps(out))
    log(f"legacy base {base}: {rows:,} rows in {files:,} fact files "
        f"({out['fact_bytes'] / 2**30:.2f} GB) in {out['seconds']:.0f}s")
    return out | {"reused": False}


def _write_facts(conn, base: Path, as_of: date) -> int:
    """One COPY of every fact row into hive folders `_hive/ym=YYYY-MM/name={park}_{date}/`."""
    parks = park_params()
    lp = [legacy_park(p) for p in parks["park_codes"]]
    sql = f"""
        COPY (
            WITH {_PARKS}, lp AS (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                                         unnest($legacy::VARCHAR[]) AS lpark)
            SELECT f.entity_code, {_iso('f.observed_at')} AS observed_at, f.wait_time_type,
                   f.wait_time_minutes,
                   strftime(f.park_date, '%Y-%m') AS ym,
                   lp.lpark || '_' || strftime(f.park_date, '%Y-%m-%d') AS name
            FROM fct_wait_times f JOIN parks USING (park_code) JOIN lp USING (park_code)
            WHERE f.park_date <= $as_of AND f.wait_time_minutes IS NOT NULL
              AND f.wait_time_type IN ('{POSTED}', '{ACTUAL}', '{PRIORITY}')
            ORDER BY ym, name, f.observed_at
        ) TO '{base / "_hive"}' (FORMAT csv, HEADER true, PARTITION_BY (ym, name))"""
    conn.execute(sql, parks | {"legacy": lp, "as_of": as_of})
    n = conn.execute(
        f"SELECT count(*) FROM fct_wait_times WHERE park_date <= $as_of AND wait_time_minutes "
        f"IS NOT NULL AND wait_time_type IN ('{POSTED}', '{ACTUAL}', '{PRIORITY}')",
        {"as_of": as_of}).fetchone()[0]
    return int(n)


def _rename_partitions(base: Path) -> int:
    """`_hive/ym=M/name=N/*.csv` -> `fact_tables/clean/M/N.csv` (several part files of one
    partition are concatenated, their headers dropped); returns the files written."""
    hive = base / "_hive"
    n = 0
    for part in sorted(hive.glob("ym=*/name=*")):  # a loop over partitions (files), not rows
        month = part.parent.name.split("=", 1)[1]
        name = part.name.split("=", 1)[1]
        dst = base / FACTS / month / f"{name}.csv"
        dst.parent.mkdir(parents=True, exist_ok=True)
        pieces = sorted(part.glob("*.csv"))
        if len(pieces) == 1:
            os.replace(pieces[0], dst)
        else:
            with open(dst, "wb") as out:
                for k, piece in enumerate(pieces):
                    with open(piece, "rb") as src:
                        if k:
                            src.readline()
                        shutil.copyfileobj(src, out)
        n += 1
    shutil.rmtree(hive, ignore_errors=True)
    return n


def _copy(conn, sql: str, path: Path, params: dict | None = None, fmt: str = "csv") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
    conn.execute(f"COPY ({sql}) TO '{path}' ({opts})", params or {})


def _write_dimensions(conn, base: Path) -> None:
    _copy(conn, "SELECT * FROM dim_entity ORDER BY entity_code", base / DIMS / "dimentity.csv")
    _copy(conn, """SELECT park_date, year, month, day, day_of_week, quarter, week_of_year,
                          day_of_year, month_name, month_mmm, day_of_week_name, day_of_week_ddd,
                          holiday_code AS holidaycode, holiday_name AS holidayname, date_group_id
                   FROM dim_calendar ORDER BY park_date""", base / DIMS / "dimdategroupid.csv")
    _copy(conn, "SELECT park_date, season, season_year FROM dim_season ORDER BY park_date",
          base / DIMS / "dimseason.csv")
    _copy(conn, f"""WITH {_PARKS}
                    SELECT h.park_code, h.park_date,
                           {_iso('h.opening_time')} AS opening_time,
                           {_iso('h.closing_time')} AS closing_time,
                           {_iso('h.opening_time_with_emh')} AS opening_time_with_emh,
                           {_iso('h.closing_time_with_emh')} AS closing_time_with_emh_or_party,
                           coalesce(h.emh_morning, false) AS emh_morning,
                           coalesce(h.emh_evening, false) AS emh_evening
                    FROM dim_park_hours h JOIN parks USING (park_code)
                    ORDER BY h.park_code, h.park_date""",
          base / DIMS / "dimparkhours.csv", park_params())


def _write_aggregates(conn, base: Path) -> None:
    _copy(conn, """SELECT entity_code, date_group_id AS dategroupid, hour, posted_median,
                          posted_mean, posted_median_unweighted, posted_mean_unweighted,
                          posted_count, avg_recency_weight, min_park_date, max_park_date
                   FROM posted_aggregates WHERE level = 'entity_dgid_hour'
                   ORDER BY entity_code, dategroupid, hour""", base / AGGREGATES, fmt="parquet")

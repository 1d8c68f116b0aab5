"""Forecast vintages and the accuracy scorecard ("how we did"): past forecasts against the
actuals that arrived since.

Vintage: what the forecast said on one as-of day D, kept at fixed horizons only: the park days
D+1, D+7, D+30 and D+60 (HORIZONS), every entity and slot. Sampling one day per horizon bucket
per vintage (rather than the first 60 days) keeps a vintage at 4/60 of the size while every
target day is still scored at each of the four horizons, by the vintages 1, 7, 30 and 60 days
before it. Vintages older than KEEP_DAYS are pruned. Layout under the home::

    vintages/as_of={D}/vintage.parquet   (entity_code, park_date, slot_start, and
                                          actual_predicted, actual_p10, actual_p90 to 0.1 min)

Table `forecast_scorecard`, grain: one row per (vintage as_of, entity_code, target park_date):
the horizon in days, the number of observed ACTUAL waits that fell in a forecast slot of that
day, the sums of absolute and signed errors (forecast - observed) and how many fell inside the
p10-p90 band. Sums, not means, so any grouping (park, horizon, weeks) pools exactly.

Drift: an entity's MAE over its RECENT_DAYS newest scored target days, at the shortest horizon,
against its own MAE over the target days before them; flagged when above DRIFT_RATIO x that
usual level with at least DRIFT_MIN_OBS observations on each side.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from bambam_assets.lib.core import schema
from bambam_assets.lib.core.paths import HomePaths

HORIZONS = (1, 7, 30, 60)  # days ahead of the vintage's as-of day: 1 day, 1 week, 1 and 2 months
KEEP_DAYS = 90  # vintages kept (by as-of day)
VINTAGE_DIR = "vintages"
VINTAGE_FILE = "vintage.parquet"
TABLE = "forecast_scorecard"
RECENT_DAYS = 14
DRIFT_RATIO = 1.5
DRIFT_MIN_OBS = 30



def vintage_root(home: Path) -> Path:
    return HomePaths(home).root / VINTAGE_DIR


def vintage_file(home: Path, as_of: date) -> Path:
    return vintage_root(home) / f"as_of={as_of.isoformat()}" / VINTAGE_FILE


def kept_vintages(home: Path) -> list[date]:
    """As-of days of the vintages on disk, oldest first."""
    root = vintage_root(home)
    if not root.exists():
        return []
    out = []
    for d in root.glob("as_of=*"):
        try:
            day = date.fromisoformat(d.name.removeprefix("as_of="))
        except ValueError:
            continue
        if (d / VINTAGE_FILE).exists():
            out.append(day)
    return sorted(out)


def write_vintage(conn: duckdb.DuckDBPyConnection, forecast_glob: str, home: Path,
                  as_of: date) -> int:
    """Snapshot the forecast files' HORIZONS days after `as_of` as that day's vintage
    (atomic: a temp file renamed into place; a rerun the same day replaces it). Rows written."""
    target = vintage_file(home, as_of)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{VINTAGE_FILE}.{uuid.uuid4().hex}.tmp"
    days = [as_of + timedelta(days=h) for h in HORIZONS]
    try:
        conn.execute(
            # a tenth of a minute is precision enough to score against whole-minute waits,
            # and rounded values compress ~3x: about 3.6 bytes a row, so 90 vintages of
            # 1,694 entities x 4 days x ~200 slots take ~0.45 GB (synthetic curves, measured)
            f"""COPY (SELECT entity_code, park_date, slot_start,
                             round(actual_predicted, 1)::FLOAT AS actual_predicted,
                             round(actual_p10, 1)::FLOAT AS actual_p10,
                             round(actual_p90, 1)::FLOAT AS actual_p90
                      FROM read_parquet($glob, hive_partitioning = true)
                      WHERE park_date IN (SELECT unnest($days::DATE[]))
                        AND actual_predicted IS NOT NULL
                      ORDER BY entity_code, slot_start)
                TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)""",
            {"glob": forecast_glob, "days": days})
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return conn.execute("SELECT count(*) FROM read_parquet($p)",
                        {"p": str(target)}).fetchone()[0]


def _sql_path(path: Path) -> str:
    # COPY ... TO takes no bound parameter for its target: quote it as a literal
    return str(path).replace("'", "''")


def prune_vintages(home: Path, as_of: date, keep_days: int = KEEP_DAYS) -> list[date]:
    """Delete vintages more than `keep_days` before `as_of`; returns the days removed."""
    gone = [d for d in kept_vintages(home) if d < as_of - timedelta(days=keep_days)]
    for d in gone:
        shutil.rmtree(vintage_file(home, d).parent, ignore_errors=True)
    return gone


def score(conn: duckdb.DuckDBPyConnection, home: Path, as_of: date) -> pd.DataFrame:
    """Scorecard rows of every kept vintage's target days up to `as_of` (the days whose actuals
    can have arrived): observed ACTUAL waits matched to the forecast slot they fall in."""
    vintages = [d for d in kept_vintages(home) if d < as_of]
    if not vintages:
        return _empty()
    files = [str(vintage_file(home, d)) for d in vintages]
    first = min(vintages) + timedelta(days=min(HORIZONS))
    return conn.execute(
        """WITH v AS (
                SELECT CAST(regexp_extract(filename, 'as_of=([0-9-]+)', 1) AS DATE)
                           AS vintage_as_of,
                       entity_code, park_date, slot_start, actual_predicted, actual_p10,
                       actual_p90
                FROM read_parquet($files, filename = true)
                WHERE park_date <= $as_of),
            obs AS (  -- observed ACTUAL waits of the target days, by the 5-minute slot they fall in
                SELECT entity_code, park_code, park_date,
                       time_bucket(INTERVAL 5 MINUTE, observed_at) AS slot_start,
                       wait_time_minutes AS observed
                FROM fct_wait_times
                WHERE wait_time_type = 'ACTUAL' AND wait_time_minutes IS NOT NULL
                  AND park_date BETWEEN $first AND $as_of)
            SELECT v.vintage_as_of, v.entity_code, any_value(o.park_code) AS park_code,
                   v.park_date, date_diff('day', v.vintage_as_of, v.park_date) AS horizon_days,
                   count(*) AS n_obs,
                   sum(abs(v.actual_predicted - o.observed)) AS abs_err_sum,
                   sum(v.actual_predicted - o.observed) AS err_sum,
                   count(*) FILTER (WHERE o.observed BETWEEN v.actual_p10 AND v.actual_p90)
                       AS in_band
            FROM v JOIN obs o USING (entity_code, park_date, slot_start)
            GROUP BY v.vintage_as_of, v.entity_code, v.park_date
            ORDER BY v.vintage_as_of, v.entity_code, v.park_date""",
        {"files": files, "as_of": as_of, "first": first}).df()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"vintage_as_of": pd.Series(dtype="datetime64[us]"),
                         "entity_code": pd.Series(dtype=str), "park_code": pd.Series(dtype=str),
                         "park_date": pd.Series(dtype="datetime64[us]"),
                         "horizon_days": pd.Series(dtype="int32"),
                         "n_obs": pd.Series(dtype="int64"),
                         "abs_err_sum": pd.Series(dtype=float), "err_sum": pd.Series(dtype=float),
                         "in_band": pd.Series(dtype="int64")})


def write_scorecard(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame,
                    keep_from: date) -> None:
    """Replace the scorecard with `rows` for the vintages on disk; rows of pruned vintages
    (before `keep_from`) go too. One transaction."""
    schema.ensure_tables(conn, (TABLE,))
    conn.execute("BEGIN")
    try:
        conn.execute(f"DELETE FROM {TABLE}")
        if len(rows):
            conn.register("scorecard_rows", rows)
            conn.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM scorecard_rows "
                         "WHERE vintage_as_of >= $keep", {"keep": keep_from})
            conn.unregister("scorecard_rows")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def summary(conn: duckdb.DuckDBPyConnection, by: tuple[str, ...] = ("park_code", "horizon_days"),
            since: date | None = None) -> pd.DataFrame:
    """Pooled MAE, bias and band coverage of the scorecard grouped by `by` (columns of the
    table), over target days from `since` on."""
    allowed = {"park_code", "entity_code", "horizon_days", "park_date", "vintage_as_of"}
    if not set(by) <= allowed:
        raise ValueError(f"group by one of {sorted(allowed)}")
    cols = ", ".join(by)
    return conn.execute(
        f"""SELECT {cols}, sum(n_obs) AS n_obs, sum(abs_err_sum) / sum(n_obs) AS mae,
                   sum(err_sum) / sum(n_obs) AS bias, sum(in_band) / sum(n_obs) AS band_coverage
            FROM {TABLE} WHERE park_date >= coalesce($since, DATE '1900-01-01')
            GROUP BY {cols} ORDER BY {cols}""", {"since": since}).df()


def drift(conn: duckdb.DuckDBPyConnection, recent_days: int = RECENT_DAYS,
          ratio: float = DRIFT_RATIO, min_obs: int = DRIFT_MIN_OBS) -> pd.DataFrame:
    """Entities whose recent MAE (newest `recent_days` scored target days, shortest horizon)
    exceeds `ratio` x their usual MAE (the target days before): entity_code, recent_mae,
    usual_mae, recent_obs, usual_obs."""
    return conn.execute(
        f"""WITH h AS (SELECT min(horizon_days) AS h FROM {TABLE}),
            s AS (SELECT t.* FROM {TABLE} t, h WHERE t.horizon_days = h.h),
            edge AS (SELECT entity_code, max(park_date) - $recent::INTEGER AS cut
                     FROM s GROUP BY entity_code),
            parts AS (
                SELECT s.entity_code, s.park_date > edge.cut AS recent,
                       sum(n_obs) AS n, sum(abs_err_sum) / sum(n_obs) AS mae
                FROM s JOIN edge USING (entity_code) GROUP BY ALL)
            SELECT r.entity_code, r.mae AS recent_mae, u.mae AS usual_mae,
                   r.n AS recent_obs, u.n AS usual_obs
            FROM parts r JOIN parts u ON r.entity_code = u.entity_code AND r.recent
                 AND NOT u.recent
            WHERE r.n >= $min_obs AND u.n >= $min_obs AND r.mae > $ratio * u.mae
            ORDER BY r.mae / u.mae DESC""",
        {"recent": recent_days, "ratio": ratio, "min_obs": min_obs}).df()


def disk_bytes(home: Path) -> int:
    """Bytes the kept vintages take on disk."""
    return sum(f.stat().st_size for f in vintage_root(home).rglob(VINTAGE_FILE))

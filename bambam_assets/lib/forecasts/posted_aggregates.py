"""Posted aggregates: recency-weighted POSTED statistics and their fallback lookup.

Built in one SQL statement over `fct_wait_times` (POSTED rows only; CLOSED rows carry no
minutes and are never POSTED) joined to `dim_calendar` for the date_group_id. Only rows with
park_date <= as_of count, each weighted w = 1 / (1 + days_ago / 365), days_ago = as_of - park_date.

How (cost linear in the POSTED rows, which are never sorted): one pass aggregates them into a
histogram at the finest grain, one row per (entity_code, park_code, date_group_id, local hour,
value v) with sum(w), count, min/max park_date; waits are integer minutes, so it is far smaller
than the rows once the history is long. Every level is that histogram re-aggregated on its key,
and only the histograms are sorted (by key, then v) for the running sums:
- posted_median: the first v whose cumulative weight reaches half the group's total weight
  ("reaches" up to a 1e-12 relative tolerance, so that a tie exact in exact arithmetic, e.g.
  1/2 + 1/3 + 1/6 = 1, is not lost to floating-point rounding: it takes the lower value);
- posted_median_unweighted: as DuckDB's median() (quantile_cont 0.5) of the rows: with the rows
  sorted, lo and hi are the values at 0-based positions floor((n-1)/2) and floor(n/2), read off
  the cumulative counts, and the median is lo + 0.5 * (hi - lo) (the mean of the two middle
  values for an even count, the middle value for an odd one);
- posted_mean = sum(v * w) / sum(w), posted_mean_unweighted = sum(v * count) / count,
  avg_recency_weight = sum(w) / count (equal to the row-by-row sums up to rounding).

Legacy quirks fixed: `hour` is the LOCAL hour of the park (the legacy grouped by the UTC hour but
looked up with local hours); the fallback levels are not medians of group medians computed per
call but proper weighted medians of the underlying rows, stored beside the main level so that a
lookup for a whole slot frame is one join; a PRIORITY entity never borrows its park's POSTED.

Table `posted_aggregates`. Grain: one row per (level, entity_code, park_code, date_group_id,
day_of_week, hour), the columns outside the level's key NULL; the entity levels key on park_code
too (an entity's rows all carry its park); a park_date missing from dim_calendar counts under
date_group_id NULL, a group of its own.

| level              | key                                          | lookup order |
|--------------------|----------------------------------------------|--------------|
| `entity_dow_hour`  | entity_code, park_code, day_of_week, hour    | 1            |
| `entity_dgid_hour` | entity_code, park_code, date_group_id, hour  | none         |
| `entity_dgid`      | entity_code, park_code, date_group_id        | none         |
| `entity_hour`      | entity_code, park_code, hour                 | 2            |
| `entity`           | entity_code, park_code                       | 3            |
| `park_hour`        | park_code, hour                              | 4            |

day_of_week is the ISO weekday of the park date (1 = Monday), as the models' feature. The
date-group levels are the legacy's statistics, kept for reading; no lookup uses them (see
LOOKUP_LEVELS for why).

Columns: level, entity_code, park_code, date_group_id, day_of_week, hour (NULL where not in the
key), posted_median (weighted), posted_mean (weighted), posted_median_unweighted,
posted_mean_unweighted, posted_count, avg_recency_weight, min_park_date, max_park_date, as_of.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pandas as pd

from bambam_assets.lib.core.schema import POSTED
from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.models.features import park_params

TABLE = "posted_aggregates"
LEVELS: tuple[str, ...] = ("entity_dow_hour", "entity_dgid_hour", "entity_dgid", "entity_hour",
                           "entity", "park_hour")
# The levels a lookup tries, in order. The date-group levels stay in the table (the legacy's
# statistics) but answer no lookup: a date group is one day a year, so its median is a handful of
# readings. On real data (bench.real_backtest, 60 days) the single-rider line answered from it
# lost to the plain weekday x half-hour median by 16-30 % at three dates; from weekday x hour it
# beats it by 2-16 % at all four dates it is scored (bench/README.md, "Posted fallback by
# weekday").
LOOKUP_LEVELS: tuple[str, ...] = ("entity_dow_hour", "entity_hour", "entity", "park_hour")
# A weekday x hour cell answers only from this many readings: a young ride's cells hold a few
# days each, and its hour's median over every day is steadier (real data, Na'vi River Journey a
# month after opening: +15.7 % over the naive from the hour's median, +1.1 % from its cells).
MIN_DOW_HOUR_COUNT = 50
ROUND_TO = 5  # posted_predicted is rounded to the nearest 5 minutes, like a real sign
RECENCY_DAYS = 365.0

_PARKS = """(SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                    unnest($park_tzs::VARCHAR[]) AS tz)"""

# Cumulative weight "reaches" half the group's weight up to this relative tolerance, so that a
# tie that is exact in exact arithmetic (e.g. weights 1/2 + 1/6 against 1/3 + 1/3) is decided the
# same way whatever order the floating-point sums ran in (their error is ~1e-14 relative).
HALF_TOLERANCE = 1e-12

_KEYS = "entity_code, park_code, date_group_id, day_of_week, hour"

BUILD_SQL = f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH hist AS MATERIALIZED (
    -- finest grain, one row per (entity_code, park_code, date_group_id, ISO weekday, local
    -- hour, value v); the date group mostly fixes the weekday (a holiday's group spans several)
    SELECT entity_code, park_code, date_group_id, day_of_week, hour, v,
           sum(w) AS w, count(*) AS n, min(park_date) AS min_d, max(park_date) AS max_d
    FROM (
        SELECT f.entity_code, f.park_code, c.date_group_id, isodow(f.park_date) AS day_of_week,
               hour(timezone(p.tz, f.observed_at)) AS hour, f.park_date,
               CAST(f.wait_time_minutes AS DOUBLE) AS v,
               1.0 / (1.0 + date_diff('day', f.park_date, $as_of::DATE) / $recency_days) AS w
        FROM fct_wait_times f
        JOIN {_PARKS} p USING (park_code)
        LEFT JOIN dim_calendar c ON c.park_date = f.park_date
        WHERE f.wait_time_type = $posted AND f.wait_time_minutes IS NOT NULL
          AND f.park_date <= $as_of
    )
    GROUP BY entity_code, park_code, date_group_id, day_of_week, hour, v
),
levels AS (
    -- every level's histogram (key, v) re-aggregated from the finest one
    SELECT 'entity_dow_hour' AS level, entity_code, park_code, NULL AS date_group_id,
           day_of_week, hour, v, sum(w) AS w, sum(n) AS n, min(min_d) AS min_d,
           max(max_d) AS max_d
    FROM hist GROUP BY entity_code, park_code, day_of_week, hour, v
    UNION ALL
    SELECT 'entity_dgid_hour', entity_code, park_code, date_group_id, NULL, hour, v,
           sum(w), sum(n), min(min_d), max(max_d)
    FROM hist GROUP BY entity_code, park_code, date_group_id, hour, v
    UNION ALL
    SELECT 'entity_dgid', entity_code, park_code, date_group_id, NULL, NULL, v,
           sum(w), sum(n), min(min_d), max(max_d)
    FROM hist GROUP BY entity_code, park_code, date_group_id, v
    UNION ALL
    SELECT 'entity_hour', entity_code, park_code, NULL, NULL, hour, v,
           sum(w), sum(n), min(min_d), max(max_d)
    FROM hist GROUP BY entity_code, park_code, hour, v
    UNION ALL
    SELECT 'entity', entity_code, park_code, NULL, NULL, NULL, v,
           sum(w), sum(n), min(min_d), max(max_d)
    FROM hist GROUP BY entity_code, park_code, v
    UNION ALL
    SELECT 'park_hour', NULL, park_code, NULL, NULL, hour, v,
           sum(w), sum(n), min(min_d), max(max_d)
    FROM hist GROUP BY park_code, hour, v
),
cum AS (
    -- running weight and count over each group's values in ascending order, and the totals
    SELECT *,
           sum(w) OVER (grp ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw,
           sum(n) OVER (grp ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cn,
           sum(w) OVER grp AS tw,
           sum(n) OVER grp AS tn
    FROM levels
    WINDOW grp AS (PARTITION BY level, {_KEYS})
),
agg AS (
    SELECT level, {_KEYS},
           -- weighted median: the first value whose cumulative weight reaches half
           min(v) FILTER (WHERE cw >= tw / 2 - {HALF_TOLERANCE} * tw) AS posted_median,
           sum(w * v) / sum(w) AS posted_mean,
           -- the values at 0-based positions floor((n-1)/2) and n//2 of the sorted rows
           min(v) FILTER (WHERE cn > (tn - 1) // 2) AS v_lo,
           min(v) FILTER (WHERE cn > tn // 2) AS v_hi,
           sum(n * v) / sum(n) AS posted_mean_unweighted,
           CAST(sum(n) AS BIGINT) AS posted_count,
           sum(w) / sum(n) AS avg_recency_weight,
           min(min_d) AS min_park_date,
           max(max_d) AS max_park_date
    FROM cum
    GROUP BY level, {_KEYS}
)
SELECT level, entity_code, park_code, date_group_id, CAST(day_of_week AS INTEGER) AS day_of_week,
       CAST(hour AS INTEGER) AS hour,
       posted_median, posted_mean,
       -- as median() (quantile_cont 0.5): lo + 0.5 * (hi - lo), the mean of the two middle
       -- values for an even count
       v_lo + 0.5 * (v_hi - v_lo) AS posted_median_unweighted,
       posted_mean_unweighted, posted_count, avg_recency_weight, min_park_date, max_park_date,
       $as_of::DATE AS as_of
FROM agg
ORDER BY level, entity_code, park_code, date_group_id, day_of_week, hour
"""


# Bumped whenever BUILD_SQL or its parameters change what the table holds (see inputs_digest).
BUILD_VERSION = "3"


def inputs_digest(conn: duckdb.DuckDBPyConnection, as_of: date) -> str:
    """A digest of everything the table as of `as_of` is built from: the POSTED facts up to
    as_of (count and an order-free hash of their key and minutes), the date groups of those
    days, the parks' time zones, the recency scale and BUILD_VERSION. One grouped pass over the
    facts: seconds at 25 M POSTED rows, against tens of seconds for the build it can save."""
    parks = park_params()
    facts, calendar = conn.execute("""
        SELECT (SELECT count(*) || ':' || coalesce(bit_xor(hash(entity_code, observed_at,
                                                                wait_time_minutes)), 0)
                FROM fct_wait_times
                WHERE wait_time_type = $posted AND wait_time_minutes IS NOT NULL
                  AND park_date <= $as_of),
               (SELECT count(*) || ':' || coalesce(bit_xor(hash(park_date, date_group_id)), 0)
                FROM dim_calendar WHERE park_date <= $as_of)
    """, {"as_of": as_of, "posted": POSTED}).fetchall()[0]
    zones = ",".join(f"{p}={z}" for p, z in zip(parks["park_codes"], parks["park_tzs"],
                                                strict=True))
    return f"{BUILD_VERSION}|{as_of}|{RECENCY_DAYS}|{zones}|{facts}|{calendar}"


def level_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of the table per level."""
    counts = dict(conn.execute(f"SELECT level, count(*) FROM {TABLE} GROUP BY 1").fetchall())
    return {level: int(counts.get(level, 0)) for level in LEVELS}


def build_posted_aggregates(conn: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, int]:
    """(Re)build table `posted_aggregates` as of `as_of`; returns the row count per level."""
    params = {**park_params(), "as_of": as_of, "posted": POSTED, "recency_days": RECENCY_DAYS}
    with step(conn, TABLE):
        conn.execute(BUILD_SQL, params)
    return level_counts(conn)


def lookup_cte_sql(keys: str) -> str:
    """CTE `posted_lookup` answering the fallback chain (LOOKUP_LEVELS) for every row of `keys`.

    `keys` (an identifier, never data) needs entity_code, park_code, day_of_week (ISO), hour.
    Bind `$no_park_level` (entity codes that must not fall back to their park, e.g. PRIORITY
    entities; may be empty). `posted_lookup` has one row per `keys` row: its columns plus
    posted_value (unrounded weighted median), posted_predicted (rounded to 5) and posted_level
    (the level that answered, NULL when none did).
    """
    agg = f"(SELECT * FROM {TABLE} WHERE level = "
    return f"""
    posted_lookup AS (
        SELECT k.*, v.posted_value,
               round(v.posted_value / {ROUND_TO}) * {ROUND_TO} AS posted_predicted,
               v.posted_level
        FROM {keys} k
        LEFT JOIN {agg}'entity_dow_hour') a1 ON a1.entity_code = k.entity_code
            AND a1.day_of_week = k.day_of_week AND a1.hour = k.hour
            AND a1.posted_count >= {MIN_DOW_HOUR_COUNT}
        LEFT JOIN {agg}'entity_hour') a2 ON a2.entity_code = k.entity_code AND a2.hour = k.hour
        LEFT JOIN {agg}'entity') a3 ON a3.entity_code = k.entity_code
        LEFT JOIN {agg}'park_hour') a4 ON a4.park_code = k.park_code AND a4.hour = k.hour
            AND k.entity_code NOT IN (SELECT unnest($no_park_level::VARCHAR[]))
        CROSS JOIN LATERAL (SELECT
            coalesce(a1.posted_median, a2.posted_median, a3.posted_median,
                     a4.posted_median) AS posted_value,
            CASE WHEN a1.posted_median IS NOT NULL THEN 'entity_dow_hour'
                 WHEN a2.posted_median IS NOT NULL THEN 'entity_hour'
                 WHEN a3.posted_median IS NOT NULL THEN 'entity'
                 WHEN a4.posted_median IS NOT NULL THEN 'park_hour' END AS posted_level) v
    )"""


def lookup_posted(
    conn: duckdb.DuckDBPyConnection, keys: pd.DataFrame, no_park_level: Sequence[str] = ()
) -> pd.DataFrame:
    """The fallback chain for a frame of keys (entity_code, park_code, day_of_week, hour).

    Grain: one row per row of `keys` (order kept), its columns plus posted_value,
    posted_predicted and posted_level.
    """
    frame = keys.reset_index(drop=True).assign(_row=lambda d: range(len(d)))
    conn.register("_posted_keys", frame)
    try:
        out = conn.execute(
            f"WITH {lookup_cte_sql('_posted_keys')} SELECT * FROM posted_lookup ORDER BY _row",
            {"no_park_level": list(no_park_level)},
        ).df()
    finally:
        conn.unregister("_posted_keys")
    return out.drop(columns="_row")

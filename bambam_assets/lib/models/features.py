"""Model features for per-entity training, built in one DuckDB pass for many entities at once.

Reads `fct_wait_times`, `dim_entity`, `dim_calendar`, `dim_season` and `dim_park_hours`
(docs/warehouse.md). Quirks of the legacy features fixed:
- local time uses the park's own time zone (TDL/TDS Tokyo, USH Los Angeles), never a default;
- a day without park hours gives NULL hours features instead of failing the entity;
- the PRIORITY target excludes 8888 (sold out);
- POSTED is matched to a target within ±10 minutes (nearest in either direction), not "closest
  at any distance" by nested Python loops;
- the recency weight 0.5^(days_ago/365) is returned so training actually uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import duckdb
import pandas as pd

from bambam_assets.lib.core.parks import parks_sql_values
from bambam_assets.lib.core.schema import ACTUAL, POSTED, PRIORITY, SOLD_OUT
from bambam_assets.lib.core.warehouse import step

# Categorical features (text here; training label-encodes them with stored mappings).
CATEGORICAL_FEATURES: list[str] = ["date_group_id", "season"]
# Entities whose training rows are read in one query (about one park's rides)
TRAINING_READ_ENTITIES = 128

FEATURES_WITHOUT_POSTED: list[str] = [
    "mins_since_6am", "local_hour", "day_of_week", "month",
    "date_group_id", "season",
    "mins_since_park_open", "park_open_hour", "park_close_hour", "park_hours_open",
    "emh_morning", "emh_evening", "park_year", "party_evening",
]
POSTED_FEATURES: list[str] = ["posted_matched", "posted_mean_30", "posted_mean_60"]
FEATURES_WITH_POSTED: list[str] = FEATURES_WITHOUT_POSTED + POSTED_FEATURES

POSTED_MATCH_MINUTES = 10
RECENCY_HALF_LIFE_DAYS = 365


def park_params() -> dict[str, list[str]]:
    """Bound parameters `$park_codes`, `$park_tzs`: the parks lookup used by `feature_ctes_sql`."""
    parks = parks_sql_values()
    return {"park_codes": [p[0] for p in parks], "park_tzs": [p[2] for p in parks]}


def target_params(entity_codes: Sequence[str] | None, as_of: date,
                  tail_entities: Sequence[str] = (), tail_rows: int | None = None
                  ) -> dict[str, object]:
    """The bound parameters of TARGETS_SQL (and the parks lookup of `feature_ctes_sql`)."""
    return {
        **park_params(),
        "entities": list(entity_codes) if entity_codes is not None else None,
        "as_of": as_of,
        "actual": ACTUAL,
        "priority": PRIORITY,
        "sold_out": SOLD_OUT,
        "tail_entities": list(tail_entities),
        "tail_rows": tail_rows,
    }


# The target rows of an entity: ACTUAL for STANDBY, PRIORITY (minus 8888) for PRIORITY entities.
# Entities missing from dim_entity count as STANDBY. `$entities` NULL means every entity. For
# the entities in `$tail_entities` only the newest `$tail_rows` target rows are kept (an
# incremental update reads nothing older than its window).
TARGETS_SQL = """
    queue AS (
        SELECT entity_code, any_value(queue_type) AS queue_type
        FROM dim_entity GROUP BY entity_code
    ),
    targets AS (
        SELECT f.entity_code, f.park_code, f.park_date, f.observed_at,
               f.wait_time_minutes AS y,
               coalesce(q.queue_type, 'STANDBY') AS queue_type
        FROM fct_wait_times f
        LEFT JOIN queue q USING (entity_code)
        WHERE f.park_date <= $as_of
          AND ($entities IS NULL OR f.entity_code IN (SELECT unnest($entities::VARCHAR[])))
          AND f.wait_time_minutes IS NOT NULL
          AND CASE WHEN coalesce(q.queue_type, 'STANDBY') = 'PRIORITY'
                   THEN f.wait_time_type = $priority AND f.wait_time_minutes <> $sold_out
                   ELSE f.wait_time_type = $actual END
        QUALIFY $tail_rows IS NULL
             OR NOT list_contains($tail_entities::VARCHAR[], f.entity_code)
             OR row_number() OVER (PARTITION BY f.entity_code
                                   ORDER BY f.observed_at DESC, f.wait_time_minutes DESC)
                <= $tail_rows
    )"""


def feature_ctes_sql(base: str) -> str:
    """CTEs `lt, featured` adding the non-POSTED features to relation `base`.

    `base` is a CTE or view name (an identifier, never data) with at least entity_code, park_code,
    park_date, observed_at (TIMESTAMPTZ). `featured` has one row per base row (a park unknown to
    `parks` gets NULL time features), every base column plus FEATURES_WITHOUT_POSTED. Bind
    `$park_codes` and `$park_tzs` (see `park_params`). The forecast can reuse it so that its
    features are exactly the training ones.
    """
    return f"""
    lt AS (
        SELECT b0.*, p.tz, timezone(p.tz, b0.observed_at) AS local_ts
        FROM {base} b0
        LEFT JOIN (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                     unnest($park_tzs::VARCHAR[]) AS tz) p USING (park_code)
    ),
    featured AS (
        SELECT lt.* EXCLUDE (tz, local_ts),
            ((hour(local_ts) - 6) * 60 + minute(local_ts) + 1440) % 1440 AS mins_since_6am,
            hour(local_ts) AS local_hour,
            isodow(lt.park_date) AS day_of_week,
            month(lt.park_date) AS month,
            c.date_group_id, s.season,
            -- the calendar year as a number, not the season_year category: a forecast's
            -- later season-years were never seen (coded UNKNOWN, they followed whichever code
            -- sorted last); a year past the last seen one takes the latest year's branch
            year(lt.park_date) AS park_year,
            (epoch(lt.observed_at) - epoch(h.opening_time)) / 60.0 AS mins_since_park_open,
            hour(timezone(tz, h.opening_time)) AS park_open_hour,
            hour(timezone(tz, h.closing_time)) AS park_close_hour,
            -- instants already handle a close after midnight; +24 guards hours stored on one date
            (epoch(h.closing_time) - epoch(h.opening_time)) / 3600.0
                + CASE WHEN h.closing_time <= h.opening_time THEN 24 ELSE 0 END
                AS park_hours_open,
            CAST(CASE WHEN h.opening_time IS NOT NULL THEN h.emh_morning END AS INTEGER)
                AS emh_morning,
            CAST(CASE WHEN h.opening_time IS NOT NULL THEN h.emh_evening END AS INTEGER)
                AS emh_evening,
            -- a hard-ticket party night: the day's guests leave at the official close and the
            -- park stays open for party ticket holders (the raw closing_time_with_emh_or_party
            -- later than the close on a day without an EMH evening); such days draw fewer day
            -- guests, and the evening's slots are the party's
            CAST(CASE WHEN h.opening_time IS NOT NULL THEN
                coalesce(h.closing_time_with_emh > h.closing_time
                         AND NOT coalesce(h.emh_evening, false), false) END AS INTEGER)
                AS party_evening
        FROM lt
        LEFT JOIN dim_calendar c ON c.park_date = lt.park_date
        LEFT JOIN dim_season s ON s.park_date = lt.park_date
        LEFT JOIN dim_park_hours h ON h.park_code = lt.park_code AND h.park_date = lt.park_date
    )"""


def posted_means_cte_sql(posted: str, points: str) -> str:
    """CTE `rolling`: mean POSTED over [t - 30 min, t] and [t - 60 min, t] at every instant t.

    `posted` is a relation (entity_code, observed_at, posted), `points` one of (entity_code,
    observed_at) instants to evaluate; grain of `rolling` rows WHERE is_point: one per point.
    RANGE windows run over POSTED and points together (points carry NULL, which avg ignores).
    Training's formula; the backfill computes the same means with binary searches on its
    workers (backfill._window_mean), pinned to this CTE by test_backfill_matching.
    """
    return f"""
    rolling AS (
        SELECT entity_code, observed_at,
            avg(posted) OVER (PARTITION BY entity_code ORDER BY observed_at
                RANGE BETWEEN INTERVAL 30 MINUTES PRECEDING AND CURRENT ROW) AS posted_mean_30,
            avg(posted) OVER (PARTITION BY entity_code ORDER BY observed_at
                RANGE BETWEEN INTERVAL 60 MINUTES PRECEDING AND CURRENT ROW) AS posted_mean_60,
            is_point
        FROM (
            SELECT entity_code, observed_at, posted, false AS is_point FROM {posted}
            UNION ALL
            SELECT entity_code, observed_at, NULL, true FROM {points}
        )
    )"""


# POSTED features of each distinct target instant. POSTED values sharing an instant are averaged
# first, so that the ASOF joins are deterministic.
_POSTED_SQL = """
    -- POSTED from 2 hours before an entity's first target on: an older value can neither be
    -- matched (+-10 min) nor fall in a 30/60-minute mean, so the result is exact and a tail
    -- read (incremental update) scans only the recent POSTED rows.
    posted AS (
        SELECT f.entity_code, f.observed_at, avg(f.wait_time_minutes) AS posted
        FROM fct_wait_times f
        JOIN (SELECT entity_code, min(observed_at) - INTERVAL 2 HOUR AS since
              FROM targets GROUP BY entity_code) s
          ON f.entity_code = s.entity_code AND f.observed_at >= s.since
        WHERE f.wait_time_type = $posted AND f.wait_time_minutes IS NOT NULL
          AND f.park_date <= $as_of
        GROUP BY f.entity_code, f.observed_at
    ),
    instants AS (SELECT DISTINCT entity_code, observed_at FROM targets),
    -- nearest POSTED in either direction = the better of a backward and a forward ASOF match
    nearest AS (
        SELECT i.entity_code, i.observed_at,
               epoch(i.observed_at) - epoch(b.observed_at) AS b_secs, b.posted AS b_val,
               epoch(f.observed_at) - epoch(i.observed_at) AS f_secs, f.posted AS f_val
        FROM instants i
        ASOF LEFT JOIN posted b
            ON i.entity_code = b.entity_code AND i.observed_at >= b.observed_at
        ASOF LEFT JOIN posted f
            ON i.entity_code = f.entity_code AND i.observed_at <= f.observed_at
    ),
    matched AS (
        SELECT entity_code, observed_at,
            CASE WHEN b_secs <= $match_secs AND (f_secs IS NULL OR b_secs <= f_secs) THEN b_val
                 WHEN f_secs <= $match_secs THEN f_val END AS posted_matched
        FROM nearest
    ),
    """ + posted_means_cte_sql("posted", "instants")


def _feature_select_list() -> list[str]:
    # Numeric features as DOUBLE (NULL -> NaN), so the frame has plain numpy dtypes.
    return [
        f"t.{c}" if c in CATEGORICAL_FEATURES else f"CAST(t.{c} AS DOUBLE) AS {c}"
        for c in FEATURES_WITHOUT_POSTED
    ]


def build_training_frame(
    conn: duckdb.DuckDBPyConnection, entity_codes: Sequence[str], as_of: date,
    tail_entities: Sequence[str] = (), tail_rows: int | None = None,
) -> pd.DataFrame:
    """Training rows of the given entities (one query per TRAINING_READ_ENTITIES of them).

    Grain: one row per TARGET observation (ACTUAL for STANDBY entities, PRIORITY without 8888 for
    PRIORITY entities) with park_date <= as_of, ordered by entity_code, observed_at. Columns:
    entity_code, park_code, park_date, observed_at, queue_type, y, FEATURES_WITH_POSTED, weight.
    With `tail_rows`, the entities in `tail_entities` get only their newest `tail_rows` rows
    (same values as in a full read).
    """
    sql = f"""
    WITH {TARGETS_SQL},
    {feature_ctes_sql("targets")},
    {_POSTED_SQL}
    SELECT t.entity_code, t.park_code, t.park_date, t.observed_at, t.queue_type,
           CAST(t.y AS DOUBLE) AS y,
           {", ".join(_feature_select_list())},
           CAST(m.posted_matched AS DOUBLE) AS posted_matched,
           r.posted_mean_30, r.posted_mean_60,
           power(0.5, date_diff('day', t.park_date, $as_of::DATE) / $half_life) AS weight
    FROM featured t
    LEFT JOIN matched m USING (entity_code, observed_at)
    LEFT JOIN (SELECT * FROM rolling WHERE is_point) r USING (entity_code, observed_at)
    ORDER BY t.entity_code, t.observed_at, t.y
    """
    return read_in_batches(conn, sql, entity_codes, lambda batch: {
        **target_params(batch, as_of, tail_entities, tail_rows),
        "posted": POSTED,
        "match_secs": POSTED_MATCH_MINUTES * 60,
        "half_life": float(RECENCY_HALF_LIFE_DAYS),
    }, "training features")


def read_in_batches(conn: duckdb.DuckDBPyConnection, sql: str, entity_codes: Sequence[str],
                    params_of: Callable[[list[str]], dict], label: str) -> pd.DataFrame:
    """`sql` run once per TRAINING_READ_ENTITIES of the sorted entity codes (`params_of(batch)`
    binds each), the frames concatenated with Arrow strings.

    Why batches: DuckDB's memory for the POSTED joins and windows grows with the batch, not with
    the estate (measured at 1,694 entities x 1 year: 8.8 GB peak RSS in one query); sorted
    batches keep a frame ordered by entity_code in order.
    """
    codes = sorted(set(entity_codes))
    parts = []
    for i in range(0, max(len(codes), 1), TRAINING_READ_ENTITIES):
        batch = codes[i:i + TRAINING_READ_ENTITIES]
        with step(conn, f"{label} ({len(batch)} of {len(codes)} entities)"):
            parts.append(compact_strings(conn.execute(sql, params_of(batch)).df()))
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


# The POSTED model's sample (issue 14). POSTED rows are ~25x the ACTUAL rows, so the POSTED
# model trains on a bounded sample: per entity about POSTED_SAMPLE_PER_TARGET x its target rows,
# at least POSTED_SAMPLE_MIN (new rides and fallback entities have few targets but plenty of
# POSTED) and at most POSTED_SAMPLE_MAX. Rows are drawn with probability proportional to their
# recency weight (capped at 1) by a hash of (entity, instant), so the draw is deterministic and
# needs no sort; each kept row weighs recency weight / probability (Horvitz-Thompson), so the
# weighted loss is the recency-weighted loss over all POSTED rows, with recent days denser.
POSTED_SAMPLE_PER_TARGET = 3
POSTED_SAMPLE_MIN = 2000
POSTED_SAMPLE_MAX = 30000


def build_posted_frame(conn: duckdb.DuckDBPyConnection, entity_codes: Sequence[str],
                       as_of: date) -> pd.DataFrame:
    """The POSTED model's training rows of the given entities (one query per
    TRAINING_READ_ENTITIES of them).

    Grain: one row per SAMPLED POSTED observation (see POSTED_SAMPLE_*) of an entity with at
    least one target row, park_date <= as_of, ordered by entity_code, observed_at. Columns:
    entity_code, park_code, park_date, observed_at, y (POSTED minutes), FEATURES_WITHOUT_POSTED,
    weight. Entities without target rows get no rows (they get no model at all).
    """
    sql = f"""
    WITH {TARGETS_SQL},
    caps AS (
        SELECT entity_code,
               least($max_rows, greatest($min_rows, $per_target * count(*))) AS cap
        FROM targets GROUP BY entity_code
    ),
    posted_all AS (
        SELECT f.entity_code, f.park_code, f.park_date, f.observed_at,
               f.wait_time_minutes AS y,
               power(0.5, date_diff('day', f.park_date, $as_of::DATE) / $half_life) AS w
        FROM fct_wait_times f
        WHERE f.park_date <= $as_of AND f.wait_time_type = $posted
          AND f.wait_time_minutes IS NOT NULL
          AND f.entity_code IN (SELECT entity_code FROM caps)
    ),
    keep AS (
        SELECT entity_code, least(1.0, any_value(c.cap) / sum(w)) AS rate
        FROM posted_all JOIN caps c USING (entity_code) GROUP BY entity_code
    ),
    sampled AS (
        SELECT p.entity_code, p.park_code, p.park_date, p.observed_at, p.y,
               p.w / least(1.0, k.rate * p.w) AS weight
        FROM posted_all p JOIN keep k USING (entity_code)
        WHERE (hash(p.entity_code, p.observed_at) % 1000000) / 1000000.0
              < least(1.0, k.rate * p.w)
    ),
    {feature_ctes_sql("sampled")}
    SELECT t.entity_code, t.park_code, t.park_date, t.observed_at,
           CAST(t.y AS DOUBLE) AS y, {", ".join(_feature_select_list())}, t.weight
    FROM featured t
    ORDER BY t.entity_code, t.observed_at, t.y
    """
    return read_in_batches(conn, sql, entity_codes, lambda batch: {
        **target_params(batch, as_of), "posted": POSTED,
        "half_life": float(RECENCY_HALF_LIFE_DAYS), "per_target": POSTED_SAMPLE_PER_TARGET,
        "min_rows": POSTED_SAMPLE_MIN, "max_rows": POSTED_SAMPLE_MAX,
    }, "POSTED model rows")


def compact_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its text columns as Arrow-backed strings (in place, column by column).

    Why: a Python str object per cell costs ~60 bytes; the full-scale training read (4.3 M rows,
    six text columns) held 1.5 GB of them, kept while the pool trains. Arrow strings hold the
    same values (missing as <NA>) in a few bytes per cell and compare, group and encode alike.
    """
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string[pyarrow]")
    return frame


def target_counts(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Target observations per entity up to as_of.

    Grain: one row per entity with at least one target row: entity_code, queue_type, target_count.
    """
    sql = f"""
    WITH {TARGETS_SQL}
    SELECT entity_code, any_value(queue_type) AS queue_type, count(*) AS target_count
    FROM targets GROUP BY entity_code ORDER BY entity_code
    """
    params = target_params(None, as_of)
    del params["park_codes"], params["park_tzs"]
    return conn.execute(sql, params).df()

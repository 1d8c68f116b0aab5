"""Warehouse queries behind the model-quality, freshness and status pages (pure: no Dash).

Every function takes an open read-only connection and returns a DataFrame (empty when nothing
was recorded yet). Every table read here exists once the warehouse file does (each writer runs
lib.core.schema.ensure_tables); a missing file is the store's "no data yet". Values from the page
are bound parameters (`?`); the only text put into SQL is constant fragments written here.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from bambam_assets.lib.core.parks import TIER_OF_PARK, park_of_entity
from bambam_assets.lib.ingest import quarantine

# The raw source an observation came from, from its file key (docs/raw_formats.md layouts):
# export/{kind}/... -> kind (wait_times, fastpass_times); public/..., queue_times/... -> top folder.
SOURCE_SQL = """CASE WHEN source_file LIKE 'export/%' THEN split_part(source_file, '/', 2)
                     ELSE split_part(source_file, '/', 1) END"""


def _with_park_and_tier(df: pd.DataFrame) -> pd.DataFrame:
    # park from the entity code when the dimension does not know the entity (fact-only codes)
    df["park_code"] = df["park_code"].fillna(df["entity_code"].map(park_of_entity))
    df["tier"] = df["park_code"].map(TIER_OF_PARK).fillna("other")
    return df


def model_quality(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The current model of each entity with its metrics.

    Grain: one row per entity having a current model: entity_code, entity_name, park_code, tier,
    version, kind, queue_type, trained_at, mae, rmse, naive_mae, skill (1 - mae/naive_mae),
    holdout_mae, decision.
    """
    df = conn.execute("""
        SELECT r.entity_code, coalesce(e.entity_name, r.entity_code) AS entity_name, e.park_code,
               r.version, r.kind, r.queue_type, r.trained_at, r.mae, r.rmse, r.naive_mae,
               r.holdout_mae, r.decision
        FROM model_registry r LEFT JOIN dim_entity e USING (entity_code)
        WHERE r.is_current
        ORDER BY r.entity_code
    """).df()
    df = _with_park_and_tier(df)
    df["skill"] = 1.0 - df["mae"] / df["naive_mae"].where(df["naive_mae"] > 0)
    return df


def mae_history(conn: duckdb.DuckDBPyConnection, entity: str) -> pd.DataFrame:
    """Every stored version of one entity's model. Grain: one row per version, ascending:
    version, trained_at, mae, holdout_mae, rmse, naive_mae, promoted, is_current, decision."""
    return conn.execute("""
        SELECT version, trained_at, mae, holdout_mae, rmse, naive_mae, promoted, is_current,
               decision
        FROM model_registry WHERE entity_code = ? ORDER BY version
    """, [entity]).df()


def worse_models(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Entities whose newest model version scored worse than the version before it.

    The score is holdout_mae (the version's MAE on its newest held-out days), else mae.
    Grain: one row per such entity, worst relative change first: entity_code, latest_version,
    previous_version, latest_mae, previous_mae, delta (minutes), pct (delta / previous), decision.
    """
    return conn.execute("""
        WITH v AS (
            SELECT entity_code, version, coalesce(holdout_mae, mae) AS score, decision,
                   row_number() OVER (PARTITION BY entity_code ORDER BY version DESC) AS rn
            FROM model_registry
        )
        SELECT a.entity_code, a.version AS latest_version, b.version AS previous_version,
               a.score AS latest_mae, b.score AS previous_mae, a.score - b.score AS delta,
               (a.score - b.score) / nullif(b.score, 0) AS pct, a.decision
        FROM v a JOIN v b ON a.entity_code = b.entity_code AND a.rn = 1 AND b.rn = 2
        WHERE a.score > b.score
        ORDER BY pct DESC NULLS LAST, a.entity_code
    """).df()


def retrain_evaluations(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The newest retraining evaluation of each entity. Grain: one row per entity:
    entity_code, stale, reasons, evaluated_at."""
    return conn.execute("""
        SELECT entity_code, stale, CAST(reasons AS VARCHAR) AS reasons, evaluated_at
        FROM retrain_evaluations
        QUALIFY row_number() OVER (PARTITION BY entity_code ORDER BY evaluated_at DESC) = 1
        ORDER BY stale DESC, entity_code
    """).df()


def model_failures(conn: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    """Newest failed training attempts. Grain: one row per failure: entity_code, failed_at,
    error, run_id."""
    return conn.execute("""
        SELECT entity_code, failed_at, error, run_id FROM model_failures
        ORDER BY failed_at DESC, entity_code LIMIT ?
    """, [limit]).df()


def entity_freshness(conn: duckdb.DuckDBPyConnection, as_of: date,
                     stale_days: int) -> pd.DataFrame:
    """Latest observation of each observed entity and whether it is stale.

    An entity is operating on `as_of` when the dimension has it opened by then and not extinct
    (unknown to the dimension: operating). Stale: operating and its latest park day is more than
    `stale_days` days before `as_of`. Grain: one row per entity of entity_index: entity_code,
    entity_name, park_code, latest_observed_at, latest_park_date, row_count, days_since,
    operating, stale; stale first, then the oldest.
    """
    return conn.execute("""
        WITH f AS (
            SELECT i.entity_code, coalesce(d.entity_name, i.entity_code) AS entity_name,
                   i.park_code, i.latest_observed_at, CAST(i.latest_park_date AS DATE)
                   AS latest_park_date, i.row_count,
                   date_diff('day', CAST(i.latest_park_date AS DATE), ?::DATE) AS days_since,
                   coalesce(d.opened_on <= ?::DATE, true)
                       AND coalesce(d.extinct_on > ?::DATE, true) AS operating
            FROM entity_index i LEFT JOIN dim_entity d USING (entity_code)
        )
        SELECT *, operating AND coalesce(days_since > ?, true) AS stale FROM f
        ORDER BY stale DESC, days_since DESC NULLS FIRST, entity_code
    """, [as_of, as_of, as_of, stale_days]).df()


def source_freshness(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Latest observation of each entity in each raw source (one scan of the facts).

    Grain: one row per (entity_code, source): latest_observed_at, latest_park_date, rows.
    """
    return conn.execute(f"""
        SELECT entity_code, {SOURCE_SQL} AS source, max(observed_at) AS latest_observed_at,
               max(park_date) AS latest_park_date, count(*) AS rows
        FROM fct_wait_times GROUP BY ALL ORDER BY entity_code, source
    """).df()


def source_summary(per_entity: pd.DataFrame) -> pd.DataFrame:
    """Grain: one row per source: entities, rows, latest_observed_at (from source_freshness)."""
    return (per_entity.groupby("source", as_index=False)
            .agg(entities=("entity_code", "nunique"), rows=("rows", "sum"),
                 latest_observed_at=("latest_observed_at", "max"))
            .sort_values("source", ignore_index=True))


def rejected_per_day(conn: duckdb.DuckDBPyConnection, days: int = 90) -> pd.DataFrame:
    """Rejected raw rows per day of rejection and reason, over the last `days` days with any.

    Grain: one row per (day, reason): day DATE, reason, rows.
    """
    return conn.execute("""
        WITH r AS (SELECT CAST(rejected_at AS DATE) AS day, reason FROM fct_rejected_rows)
        SELECT day, reason, count(*) AS rows FROM r
        WHERE day > (SELECT max(day) FROM r) - ?::INTEGER
        GROUP BY ALL ORDER BY day, reason
    """, [days]).df()


def ingest_polls(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """What the raw-source polls found, per file format. Grain: one row per format: files,
    failed (files neither processed nor held), held (a last line without a line break held
    back: lib.ingest.ingest), last_ingested_at, newest_file_modified_at, rows_added,
    rows_rejected."""
    return conn.execute("""
        SELECT format, count(*) AS files,
               count(*) FILTER (WHERE status NOT IN ('processed', 'held')) AS failed,
               count(*) FILTER (WHERE status = 'held') AS held,
               max(ingested_at) AS last_ingested_at, max(modified_at) AS newest_file_modified_at,
               sum(rows_added) AS rows_added, sum(rows_rejected) AS rows_rejected
        FROM ingest_manifest GROUP BY format ORDER BY last_ingested_at DESC NULLS LAST, format
    """).df()


def quarantined_files(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Raw files ingest quarantined after repeated failed reads (lib.ingest.quarantine).
    Grain: one row per quarantined file: source_key, format, attempts, last error, when."""
    return quarantine.quarantined_files(conn)


def fetch_status(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The live queue-times poller's last fetch per park (its table as written).
    Grain: one row per park."""
    return conn.execute("SELECT * FROM fetch_status ORDER BY park_code").df()

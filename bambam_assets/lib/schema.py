"""Warehouse tables: names, columns and DDL, written once and used everywhere.

Every table lives in `BAMBAM_HOME/warehouse.duckdb`. Each DDL comment states the table's grain.
"""

from __future__ import annotations

# Wait-time types of the fact table. CLOSED marks a moment the entity had no wait
# (TouringPlans posted -999, queue-times is_open false): its wait_time_minutes is NULL.
POSTED, ACTUAL, PRIORITY, CLOSED = "POSTED", "ACTUAL", "PRIORITY", "CLOSED"
WAIT_TIME_TYPES = (POSTED, ACTUAL, PRIORITY, CLOSED)
SOLD_OUT = 8888  # PRIORITY value meaning the return times were sold out

FACT_KEY = ("entity_code", "observed_at", "wait_time_type", "wait_time_minutes")
FACT_COLUMNS = (
    "entity_code", "park_code", "park_date", "observed_at",
    "wait_time_type", "wait_time_minutes", "source_file",
)
REJECTED_COLUMNS = ("source_file", "line", "reason", "raw")

DDL: dict[str, str] = {
    # One row per observation: (entity, instant, type, minutes) is unique.
    "fct_wait_times": """
        CREATE TABLE IF NOT EXISTS fct_wait_times (
            entity_code VARCHAR NOT NULL,
            park_code VARCHAR NOT NULL,
            park_date DATE NOT NULL,
            observed_at TIMESTAMPTZ NOT NULL,
            wait_time_type VARCHAR NOT NULL,
            wait_time_minutes INTEGER,
            source_file VARCHAR
        )""",
    # One row per raw row that could not be used, with the reason.
    "fct_rejected_rows": """
        CREATE TABLE IF NOT EXISTS fct_rejected_rows (
            source_file VARCHAR NOT NULL,
            line BIGINT,
            reason VARCHAR NOT NULL,
            raw VARCHAR,
            rejected_at TIMESTAMPTZ DEFAULT now()
        )""",
    # One row per raw file seen: what was read, when, and whether it failed.
    "ingest_manifest": """
        CREATE TABLE IF NOT EXISTS ingest_manifest (
            source_key VARCHAR PRIMARY KEY,
            size BIGINT,
            etag VARCHAR,
            modified_at TIMESTAMPTZ,
            format VARCHAR,
            status VARCHAR NOT NULL,          -- processed | failed | unknown_format
            error VARCHAR,
            attempts INTEGER DEFAULT 0,
            rows_read BIGINT,
            rows_added BIGINT,
            rows_rejected BIGINT,
            ingested_at TIMESTAMPTZ
        )""",
    # One row per entity: what the fact table holds for it, and when it was last modeled.
    "entity_index": """
        CREATE TABLE IF NOT EXISTS entity_index (
            entity_code VARCHAR PRIMARY KEY,
            park_code VARCHAR NOT NULL,
            first_observed_at TIMESTAMPTZ,
            latest_observed_at TIMESTAMPTZ,
            first_park_date DATE,
            latest_park_date DATE,
            row_count BIGINT,
            posted_count BIGINT,
            actual_count BIGINT,
            priority_count BIGINT,
            closed_count BIGINT,
            last_modeled_at TIMESTAMPTZ,
            target_count_at_last_model BIGINT,
            updated_at TIMESTAMPTZ
        )""",
}


def ensure_tables(conn, names: tuple[str, ...] | None = None) -> None:
    """Create the named warehouse tables (all when None) if they do not exist."""
    for name, ddl in DDL.items():
        if names is None or name in names:
            conn.execute(ddl)

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
    # One row per raw file seen: what was read, when, and whether it failed. content_sha256 and
    # content_lines describe the version read (processed wait-time files only): the next run
    # recognises a grown file whose old bytes are unchanged and reads only its new lines.
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
            ingested_at TIMESTAMPTZ,
            content_sha256 VARCHAR,           -- sha256 (hex) of the whole file as read
            content_lines BIGINT              -- its number of lines
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


# Columns added after a table was first released: a warehouse built before gets them on its
# next ensure_tables (NULL in existing rows), so no rebuild is ever needed.
MIGRATIONS: dict[str, tuple[str, ...]] = {
    "ingest_manifest": (
        "ALTER TABLE ingest_manifest ADD COLUMN IF NOT EXISTS content_sha256 VARCHAR",
        "ALTER TABLE ingest_manifest ADD COLUMN IF NOT EXISTS content_lines BIGINT",
    ),
}


def ensure_tables(conn, names: tuple[str, ...] | None = None) -> None:
    """Create the named warehouse tables (all when None) if they do not exist, and add the
    columns of MIGRATIONS that an older warehouse lacks."""
    for name, ddl in DDL.items():
        if names is None or name in names:
            conn.execute(ddl)
            for statement in MIGRATIONS.get(name, ()):
                conn.execute(statement)


# Dimensions are rebuilt whole on every materialization: created from this DDL, then filled
# with INSERT ... BY NAME, so an empty dimension (missing export) still has the right types.
DIM_DDL: dict[str, str] = {
    # One row per entity.
    "dim_entity": """
        CREATE OR REPLACE TABLE dim_entity (
            entity_code VARCHAR PRIMARY KEY, entity_name VARCHAR, short_name VARCHAR,
            park_code VARCHAR NOT NULL, land VARCHAR,
            fastpass_booth BOOLEAN, single_rider BOOLEAN, open_emh_morning BOOLEAN,
            open_emh_evening BOOLEAN, open_very_merry BOOLEAN, open_not_so_scary BOOLEAN,
            seasonal BOOLEAN, has_posted BOOLEAN, intense BOOLEAN,
            height_restriction DOUBLE, duration DOUBLE, opened_on DATE, extinct_on DATE,
            queue_type VARCHAR NOT NULL, in_export BOOLEAN
        )""",
    # One row per date.
    "dim_calendar": """
        CREATE OR REPLACE TABLE dim_calendar (
            park_date DATE PRIMARY KEY, year INTEGER, month INTEGER, day INTEGER,
            day_of_week INTEGER, quarter INTEGER, week_of_year INTEGER, day_of_year INTEGER,
            month_name VARCHAR, month_mmm VARCHAR, day_of_week_name VARCHAR,
            day_of_week_ddd VARCHAR, holiday_code VARCHAR, holiday_name VARCHAR,
            date_group_id VARCHAR NOT NULL
        )""",
    # One row per date.
    "dim_season": """
        CREATE OR REPLACE TABLE dim_season (
            park_date DATE PRIMARY KEY, season VARCHAR NOT NULL, season_year VARCHAR NOT NULL
        )""",
    # One row per (park, date, version of the hours).
    "dim_park_hours_versions": """
        CREATE TABLE IF NOT EXISTS dim_park_hours_versions (
            park_code VARCHAR NOT NULL, park_date DATE NOT NULL,
            opening_time TIMESTAMPTZ, closing_time TIMESTAMPTZ,
            opening_time_with_emh TIMESTAMPTZ, closing_time_with_emh TIMESTAMPTZ,
            emh_morning BOOLEAN, emh_evening BOOLEAN, source VARCHAR,
            valid_from TIMESTAMPTZ NOT NULL, valid_until TIMESTAMPTZ, source_file VARCHAR
        )""",
    # One row per (park, date) as of the run's date: official, metatable or donor hours.
    "dim_park_hours": """
        CREATE OR REPLACE TABLE dim_park_hours (
            park_code VARCHAR NOT NULL, park_date DATE NOT NULL,
            opening_time TIMESTAMPTZ, closing_time TIMESTAMPTZ,
            opening_time_with_emh TIMESTAMPTZ, closing_time_with_emh TIMESTAMPTZ,
            emh_morning BOOLEAN, emh_evening BOOLEAN, source VARCHAR NOT NULL,
            confidence DOUBLE, donor_date DATE,
            PRIMARY KEY (park_code, park_date)
        )""",
    # One row per (date, park, event).
    "dim_event_days": """
        CREATE OR REPLACE TABLE dim_event_days (
            park_date DATE, park_code VARCHAR, event_abbreviation VARCHAR,
            event_opening_time VARCHAR, event_closing_time VARCHAR
        )""",
    # One row per event code.
    "dim_events": """
        CREATE OR REPLACE TABLE dim_events (
            property_code VARCHAR, event_abbreviation VARCHAR, event_code VARCHAR,
            event_name VARCHAR, event_hard_ticket BOOLEAN
        )""",
}


def replace_dimension(conn, name: str, frame) -> int:
    """Rebuild a dimension table from a DataFrame (columns matched by name); returns its rows."""
    conn.execute(DIM_DDL[name])
    if len(frame):
        conn.register("dim_frame", frame)
        try:
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM dim_frame")  # name: a constant key
        finally:
            conn.unregister("dim_frame")
    return conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]

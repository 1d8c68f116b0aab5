"""Warehouse tables: names, columns, DDL and migrations, written once and used everywhere.

Every table lives in `BAMBAM_HOME/warehouse.duckdb`. Each DDL comment states the table's grain.

`ensure_tables(conn)` creates every table of DDL that is missing and adds the MIGRATIONS columns
an older warehouse lacks. `warehouse.writer()` runs it on every connection it opens (and each lib
function that writes one of these tables runs it too, for bare connections), so: once the
warehouse file exists, every table of DDL exists; a home written by an older release is migrated
by its first writer; readers never check whether a table exists (a missing warehouse FILE is the
one "nothing yet" case they handle).

Dimensions (DIM_DDL) are rebuilt whole by their assets (`replace_dimension`). ensure_tables
creates them empty together with `dim_build_log`, i.e. in a warehouse whose dimensions were never
built, so readers can join them from the start. Once the log exists, a missing dimension table
was dropped: it is left missing, so its asset sees it and rebuilds it
(lib.dimensions.inputs.is_current).

Not here: tables an asset rebuilds whole from a query, whose columns are that query's:
dim_metatable (the metatable export's own columns, defs.dimensions), posted_aggregates
(lib.forecasts.posted_aggregates), park_wti and park_wti_daily (lib.forecasts.wti). They exist
once their asset has run.
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
            status VARCHAR NOT NULL,          -- processed | failed | quarantined | unknown_format
            error VARCHAR,
            attempts INTEGER DEFAULT 0,       -- reads of this version (size, etag, mtime)
            rows_read BIGINT,
            rows_added BIGINT,
            rows_rejected BIGINT,
            ingested_at TIMESTAMPTZ,
            content_sha256 VARCHAR,           -- sha256 (hex) of the whole file as read
            content_lines BIGINT,             -- its number of lines
            quarantined_at TIMESTAMPTZ,       -- set when a version failed max_attempts times
            released_at TIMESTAMPTZ           -- last `bambam ingest release` of the file
        )""",
    # One row per (fact, raw file) where the file holds a fact of fct_wait_times whose kept
    # source_file is another file: when that file's corrected version drops the fact, the fact
    # stays and moves to one of these holders (lib.ingest.ingest).
    "fct_wait_time_sources": """
        CREATE TABLE IF NOT EXISTS fct_wait_time_sources (
            entity_code VARCHAR NOT NULL,
            observed_at TIMESTAMPTZ NOT NULL,
            wait_time_type VARCHAR NOT NULL,
            wait_time_minutes INTEGER,
            source_file VARCHAR NOT NULL
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
    # One row per dimension asset (or multi-asset) name: the fingerprint of the inputs of its
    # last successful build, and when that build happened (lib.dimensions.inputs).
    "dim_build_log": """
        CREATE TABLE IF NOT EXISTS dim_build_log (
            dimension VARCHAR PRIMARY KEY,
            fingerprint VARCHAR NOT NULL,
            built_at TIMESTAMPTZ NOT NULL
        )""",
    # One row per (park, park date) the WTI covers: the fingerprint of the curve files' inputs
    # it was computed from (lib.forecasts.wti), so a later run recomputes only changed days.
    "wti_inputs": """
        CREATE TABLE IF NOT EXISTS wti_inputs (
            park_code VARCHAR NOT NULL,
            park_date DATE NOT NULL,
            fingerprint UBIGINT NOT NULL,
            PRIMARY KEY (park_code, park_date)
        )""",
    # One row per (entity, version) ever saved: the warehouse mirror of the model files
    # (lib.models.registry_table; the files under models/ are the truth).
    "model_registry": """
        CREATE TABLE IF NOT EXISTS model_registry (
            entity_code VARCHAR NOT NULL, version INTEGER NOT NULL, kind VARCHAR,
            queue_type VARCHAR, trained_at TIMESTAMPTZ, promoted BOOLEAN, is_current BOOLEAN,
            holdout_mae DOUBLE, mae DOUBLE, rmse DOUBLE, mape DOUBLE, r2 DOUBLE,
            naive_mae DOUBLE, best_iteration INTEGER, "rows" BIGINT, seconds DOUBLE,
            target_count BIGINT, code_version VARCHAR, params_hash VARCHAR, path VARCHAR,
            decision VARCHAR, error VARCHAR,
            PRIMARY KEY (entity_code, version)
        )""",
    # One row per failed training attempt (lib.models.registry_table).
    "model_failures": """
        CREATE TABLE IF NOT EXISTS model_failures (
            entity_code VARCHAR NOT NULL, failed_at TIMESTAMPTZ NOT NULL, error VARCHAR,
            run_id VARCHAR
        )""",
    # One row per entity: its latest retraining evaluation (lib.models.staleness).
    "retrain_evaluations": """
        CREATE TABLE IF NOT EXISTS retrain_evaluations (
            entity_code VARCHAR PRIMARY KEY, park_code VARCHAR, tier VARCHAR,
            queue_type VARCHAR, stale BOOLEAN, reasons VARCHAR[], summary VARCHAR,
            target_count BIGINT, target_count_at_last_model BIGINT, new_targets BIGINT,
            current_version INTEGER, latest_version INTEGER, trained_at TIMESTAMPTZ,
            age_hours DOUBLE, max_age_hours DOUBLE, code_version VARCHAR, params_hash VARCHAR,
            expected_code_version VARCHAR, expected_params_hash VARCHAR, as_of DATE,
            evaluated_at TIMESTAMPTZ, action VARCHAR, source VARCHAR
        )""",
    # One row per polled park: the live queue-times poller's last fetch (lib.live.fetch_status).
    "fetch_status": """
        CREATE TABLE IF NOT EXISTS fetch_status (
            park_code VARCHAR PRIMARY KEY, queue_times_id INTEGER,
            last_attempt TIMESTAMPTZ, last_success TIMESTAMPTZ,
            rides_seen INTEGER, rows_written INTEGER, stale_rows INTEGER, unmapped_rides INTEGER,
            error VARCHAR, error_kind VARCHAR, attempts INTEGER, consecutive_failures INTEGER,
            last_snapshot_key VARCHAR, updated_at TIMESTAMPTZ
        )""",
    # One row per (park, queue-times ride the mapping does not know) (lib.live.fetch_status).
    "queue_times_unmapped": """
        CREATE TABLE IF NOT EXISTS queue_times_unmapped (
            park_code VARCHAR NOT NULL, queue_times_id BIGINT NOT NULL, queue_times_name VARCHAR,
            first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
            PRIMARY KEY (park_code, queue_times_id)
        )""",
    # One row per (forecast vintage's as-of day, entity, target park day): errors of that
    # vintage's forecast against the ACTUAL waits observed that day (lib.forecasts.scorecard).
    "forecast_scorecard": """
        CREATE TABLE IF NOT EXISTS forecast_scorecard (
            vintage_as_of DATE NOT NULL, entity_code VARCHAR NOT NULL,
            park_code VARCHAR NOT NULL, park_date DATE NOT NULL, horizon_days INTEGER NOT NULL,
            n_obs BIGINT NOT NULL, abs_err_sum DOUBLE NOT NULL, err_sum DOUBLE NOT NULL,
            in_band BIGINT NOT NULL,
            PRIMARY KEY (vintage_as_of, entity_code, park_date)
        )""",
}
BUILD_LOG = "dim_build_log"


# Columns added after a table was first released, as (column, type): a warehouse built before
# gets them on its next ensure_tables (NULL in existing rows), so no rebuild is ever needed. A new
# column goes both into the table's DDL above and here.
MIGRATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest_manifest": (("content_sha256", "VARCHAR"), ("content_lines", "BIGINT"),
                        ("quarantined_at", "TIMESTAMPTZ"), ("released_at", "TIMESTAMPTZ")),
}


def _columns(conn) -> dict[str, set[str]]:
    """{table: its column names} of the connection's own database and schema (one query)."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = current_schema()"
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def ensure_tables(conn, names: tuple[str, ...] | None = None) -> None:
    """Create the tables of DDL (all when `names` is None) that do not exist, and add the
    MIGRATIONS columns that an older warehouse lacks (needs a writer connection).

    Idempotent and cheap: one catalog query, then statements only for what is missing. Creating
    `dim_build_log` also creates the missing dimension tables (empty): see the module docstring.
    """
    present = _columns(conn)
    for name, ddl in DDL.items():
        if names is not None and name not in names:
            continue
        if name not in present:
            conn.execute(ddl)  # the DDL has every column, migrated ones included
            if name == BUILD_LOG:
                for dim, dim_ddl in DIM_DDL.items():
                    if dim not in present:
                        conn.execute(_if_not_exists(dim_ddl))
            continue
        for column, sql_type in MIGRATIONS.get(name, ()):
            if column not in present[name]:  # constant names and types, never data
                conn.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


# Dimensions are rebuilt whole on every materialization: created from this DDL, then filled
# with INSERT ... BY NAME, so an empty dimension (missing export) still has the right types.
# dim_park_hours_versions is the exception: its rows are the history of the hours, merged and
# rewritten by the park-hours asset, never replaced by CREATE OR REPLACE.
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


def _if_not_exists(ddl: str) -> str:
    """A DIM_DDL statement as a CREATE TABLE IF NOT EXISTS (the same columns)."""
    return ddl.replace("CREATE OR REPLACE TABLE", "CREATE TABLE IF NOT EXISTS", 1)


def replace_dimension(conn, name: str, frame) -> int:
    """Rebuild a dimension table from a DataFrame (columns matched by name); returns its rows."""
    conn.execute(DIM_DDL[name])
    if len(frame):
        conn.register("dim_frame", frame)
        try:
            # name: a constant key
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM dim_frame")
        finally:
            conn.unregister("dim_frame")
    return conn.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]

"""One owner for every table: ensure_tables creates and migrates them all, cheaply, and a home
written by an older release still opens (its tables migrate, its rows stay)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from bambam_assets.dashboard import data
from bambam_assets.dashboard import data_curves as dc
from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.models import registry_table, staleness

AS_OF = date(2024, 6, 1)
NOW = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)

# ---- the old schema: every CREATE statement as released at 31505a3 (copied, never imported) ----

OLD_DDL: dict[str, str] = {
    # lib/core/schema.py DDL
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
    "fct_rejected_rows": """
        CREATE TABLE IF NOT EXISTS fct_rejected_rows (
            source_file VARCHAR NOT NULL,
            line BIGINT,
            reason VARCHAR NOT NULL,
            raw VARCHAR,
            rejected_at TIMESTAMPTZ DEFAULT now()
        )""",
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
    # lib/core/schema.py DIM_DDL
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
    "dim_calendar": """
        CREATE OR REPLACE TABLE dim_calendar (
            park_date DATE PRIMARY KEY, year INTEGER, month INTEGER, day INTEGER,
            day_of_week INTEGER, quarter INTEGER, week_of_year INTEGER, day_of_year INTEGER,
            month_name VARCHAR, month_mmm VARCHAR, day_of_week_name VARCHAR,
            day_of_week_ddd VARCHAR, holiday_code VARCHAR, holiday_name VARCHAR,
            date_group_id VARCHAR NOT NULL
        )""",
    "dim_season": """
        CREATE OR REPLACE TABLE dim_season (
            park_date DATE PRIMARY KEY, season VARCHAR NOT NULL, season_year VARCHAR NOT NULL
        )""",
    "dim_park_hours_versions": """
        CREATE TABLE IF NOT EXISTS dim_park_hours_versions (
            park_code VARCHAR NOT NULL, park_date DATE NOT NULL,
            opening_time TIMESTAMPTZ, closing_time TIMESTAMPTZ,
            opening_time_with_emh TIMESTAMPTZ, closing_time_with_emh TIMESTAMPTZ,
            emh_morning BOOLEAN, emh_evening BOOLEAN, source VARCHAR,
            valid_from TIMESTAMPTZ NOT NULL, valid_until TIMESTAMPTZ, source_file VARCHAR
        )""",
    "dim_park_hours": """
        CREATE OR REPLACE TABLE dim_park_hours (
            park_code VARCHAR NOT NULL, park_date DATE NOT NULL,
            opening_time TIMESTAMPTZ, closing_time TIMESTAMPTZ,
            opening_time_with_emh TIMESTAMPTZ, closing_time_with_emh TIMESTAMPTZ,
            emh_morning BOOLEAN, emh_evening BOOLEAN, source VARCHAR NOT NULL,
            confidence DOUBLE, donor_date DATE,
            PRIMARY KEY (park_code, park_date)
        )""",
    "dim_event_days": """
        CREATE OR REPLACE TABLE dim_event_days (
            park_date DATE, park_code VARCHAR, event_abbreviation VARCHAR,
            event_opening_time VARCHAR, event_closing_time VARCHAR
        )""",
    "dim_events": """
        CREATE OR REPLACE TABLE dim_events (
            property_code VARCHAR, event_abbreviation VARCHAR, event_code VARCHAR,
            event_name VARCHAR, event_hard_ticket BOOLEAN
        )""",
    # lib/dimensions/inputs.py BUILD_LOG_DDL
    "dim_build_log": """
        CREATE TABLE IF NOT EXISTS dim_build_log (
            dimension VARCHAR PRIMARY KEY,
            fingerprint VARCHAR NOT NULL,
            built_at TIMESTAMPTZ NOT NULL
        )""",
    # lib/models/registry_table.py REGISTRY_DDL, FAILURES_DDL
    "model_registry": """
        CREATE TABLE IF NOT EXISTS model_registry (   -- one row per (entity, version) ever saved
            entity_code VARCHAR NOT NULL, version INTEGER NOT NULL, kind VARCHAR,
            queue_type VARCHAR, trained_at TIMESTAMPTZ, promoted BOOLEAN, is_current BOOLEAN,
            holdout_mae DOUBLE, mae DOUBLE, rmse DOUBLE, mape DOUBLE, r2 DOUBLE,
            naive_mae DOUBLE, best_iteration INTEGER, "rows" BIGINT, seconds DOUBLE,
            target_count BIGINT, code_version VARCHAR, params_hash VARCHAR, path VARCHAR,
            decision VARCHAR, error VARCHAR,
            PRIMARY KEY (entity_code, version)
        )""",
    "model_failures": """
        CREATE TABLE IF NOT EXISTS model_failures (   -- one row per failed training attempt
            entity_code VARCHAR NOT NULL, failed_at TIMESTAMPTZ NOT NULL, error VARCHAR,
            run_id VARCHAR
        )""",
    # lib/models/staleness.py EVALUATIONS_DDL
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
    # lib/live/fetch_status.py FETCH_STATUS_DDL, UNMAPPED_DDL
    "fetch_status": """
        CREATE TABLE IF NOT EXISTS fetch_status (     -- one row per polled park
            park_code VARCHAR PRIMARY KEY, queue_times_id INTEGER,
            last_attempt TIMESTAMPTZ, last_success TIMESTAMPTZ,
            rides_seen INTEGER, rows_written INTEGER, stale_rows INTEGER, unmapped_rides INTEGER,
            error VARCHAR, error_kind VARCHAR, attempts INTEGER, consecutive_failures INTEGER,
            last_snapshot_key VARCHAR, updated_at TIMESTAMPTZ
        )""",
    "queue_times_unmapped": """
        CREATE TABLE IF NOT EXISTS queue_times_unmapped (   -- one row per (park, unmapped ride)
            park_code VARCHAR NOT NULL, queue_times_id BIGINT NOT NULL,
            queue_times_name VARCHAR, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
            PRIMARY KEY (park_code, queue_times_id)
        )""",
}
# The manifest of the release before the append-aware ingest (no content_sha256/content_lines).
PRE_APPEND_MANIFEST_DDL = """
    CREATE TABLE IF NOT EXISTS ingest_manifest (
        source_key VARCHAR PRIMARY KEY, size BIGINT, etag VARCHAR, modified_at TIMESTAMPTZ,
        format VARCHAR, status VARCHAR NOT NULL, error VARCHAR, attempts INTEGER DEFAULT 0,
        rows_read BIGINT, rows_added BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMPTZ
    )"""

# A few rows per table (columns named: they hold in both manifest versions).
OLD_ROWS: dict[str, str] = {
    "fct_wait_times": """INSERT INTO fct_wait_times VALUES
        ('MK1', 'MK', DATE '2024-05-20', TIMESTAMPTZ '2024-05-20 14:00:00+00', 'ACTUAL', 20, 'a'),
        ('MK1', 'MK', DATE '2024-05-20', TIMESTAMPTZ '2024-05-20 14:05:00+00', 'POSTED', 30, 'a'),
        ('EP1', 'EP', DATE '2024-05-21', TIMESTAMPTZ '2024-05-21 15:00:00+00', 'ACTUAL', 10,
         'b')""",
    "fct_rejected_rows": """INSERT INTO fct_rejected_rows (source_file, line, reason, raw)
        VALUES ('a', 7, 'bad_entity_code', 'x')""",
    "ingest_manifest": """INSERT INTO ingest_manifest (source_key, size, format, status,
        rows_added, ingested_at) VALUES
        ('export/a.csv', 10, 'standby', 'processed', 2, TIMESTAMPTZ '2024-05-22 10:00:00+00'),
        ('public/b.csv', 5, 'public_attraction', 'processed', 1,
         TIMESTAMPTZ '2024-05-22 10:00:00+00')""",
    "entity_index": """INSERT INTO entity_index (entity_code, park_code, latest_park_date,
        row_count, target_count_at_last_model) VALUES
        ('MK1', 'MK', DATE '2024-05-20', 2, 1), ('EP1', 'EP', DATE '2024-05-21', 1, NULL)""",
    "dim_entity": """INSERT INTO dim_entity (entity_code, entity_name, park_code, queue_type)
        VALUES ('MK1', 'Space Mountain', 'MK', 'STANDBY')""",
    "dim_build_log": """INSERT INTO dim_build_log VALUES
        ('dim_entity', 'fp', TIMESTAMPTZ '2024-05-22 10:00:00+00')""",
    "model_registry": """INSERT INTO model_registry (entity_code, version, kind, trained_at,
        promoted, is_current, mae, naive_mae, target_count, code_version, params_hash) VALUES
        ('MK1', 1, 'xgboost', TIMESTAMPTZ '2024-05-22 00:00:00+00', true, false, 5.0, 8.0, 1,
         'c', 'p'),
        ('MK1', 2, 'xgboost', TIMESTAMPTZ '2024-06-02 00:00:00+00', true, true, 4.0, 8.0, 1,
         'c', 'p')""",
    "model_failures": """INSERT INTO model_failures VALUES
        ('EP1', TIMESTAMPTZ '2024-05-22 00:00:00+00', 'ValueError: no rows', 'run-1')""",
    "retrain_evaluations": """INSERT INTO retrain_evaluations (entity_code, stale, reasons,
        evaluated_at) VALUES ('MK1', true, ['no current model'],
        TIMESTAMPTZ '2024-05-22 00:00:00+00')""",
    "fetch_status": """INSERT INTO fetch_status (park_code, queue_times_id, rides_seen)
        VALUES ('MK', 6, 40)""",
    "queue_times_unmapped": """INSERT INTO queue_times_unmapped (park_code, queue_times_id,
        queue_times_name) VALUES ('MK', 999, 'New Ride')""",
}
INGEST = ("fct_wait_times", "fct_rejected_rows", "ingest_manifest", "entity_index")
DIMS = ("dim_entity", "dim_calendar", "dim_season", "dim_park_hours_versions", "dim_park_hours",
        "dim_event_days", "dim_events", "dim_build_log")
MODELS = ("model_registry", "model_failures")
LIVE = ("fetch_status", "queue_times_unmapped")

# What an older home may hold: which tables exist (the others were never written).
OLD_HOMES = {
    "ingested_and_polled": (INGEST + LIVE, OLD_DDL["ingest_manifest"]),
    "trained_never_evaluated": (INGEST + DIMS + MODELS, OLD_DDL["ingest_manifest"]),
    "everything": (tuple(OLD_DDL), OLD_DDL["ingest_manifest"]),
    "manifest_before_append": (INGEST + DIMS + MODELS, PRE_APPEND_MANIFEST_DDL),
}


def make_old_home(home: Path, tables: tuple[str, ...], manifest_ddl: str) -> dict[str, list]:
    """Write the old tables and rows with a bare connection (no ensure_tables); returns the rows
    of each table as written."""
    home.mkdir(parents=True)
    conn = duckdb.connect(str(wh.warehouse_path(home)))
    try:
        for name in tables:
            conn.execute(manifest_ddl if name == "ingest_manifest" else OLD_DDL[name])
            if name in OLD_ROWS:
                conn.execute(OLD_ROWS[name])
        return {name: _rows(conn, name) for name in tables}
    finally:
        conn.close()


def _rows(conn, table: str, columns: list[str] | None = None) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"  # names from the catalog
    return conn.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()


def _catalog(conn) -> set[tuple[str, str, str]]:
    """(table, column, type) of every table schema.py owns."""
    owned = set(schema.DDL) | set(schema.DIM_DDL)
    return {row for row in conn.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database()").fetchall() if row[0] in owned}


def _columns_of(conn, table: str) -> list[str]:
    return [c for (c,) in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [table]).fetchall()]


@pytest.mark.parametrize("kind", list(OLD_HOMES))
def test_an_old_home_opens_its_tables_migrate_and_its_rows_stay(tmp_path: Path, kind) -> None:
    tables, manifest_ddl = OLD_HOMES[kind]
    home = tmp_path / "old"
    before = make_old_home(home, tables, manifest_ddl)
    new_home = tmp_path / "new"
    with wh.writer(new_home) as conn:
        expected = _catalog(conn)

    with wh.writer(home) as conn:  # the current code path: every writer runs ensure_tables
        assert _catalog(conn) == expected  # every table and column a new home has, same types
        for name, rows in before.items():  # old rows kept, as written (new columns come last)
            old_columns = _columns_of(conn, name)[:len(rows[0])] if rows else None
            assert _rows(conn, name, old_columns) == rows, name
        manifest = conn.execute("SELECT content_sha256, content_lines FROM ingest_manifest "
                                "ORDER BY source_key").fetchall()
        assert manifest == [(None, None), (None, None)]  # read in full once, then appended

    # The readers, read-only, without any guard.
    with wh.reader(home) as conn:
        ev = staleness.evaluate_warehouse(conn, now=NOW, as_of=AS_OF, code_version="c",
                                          params_hash="p")
        recorded = staleness.read_evaluations(conn)
        quality = data.model_quality(conn)
        history = data.mae_history(conn, "MK1")
        failures = data.model_failures(conn)
        status = data.fetch_status(conn)
        fresh = data.entity_freshness(conn, AS_OF, 2)
        polls = data.ingest_polls(conn)
        choices = dc.entity_choices(conn)
    present = set(tables)
    assert sorted(ev["entity_code"]) == ["EP1", "MK1"]
    current = ev.set_index("entity_code")["current_version"]
    if "model_registry" in present:
        assert current["MK1"] == 2 and pd.isna(current["EP1"])
        assert quality["entity_code"].tolist() == ["MK1"]
        assert history["version"].tolist() == [1, 2]
    else:
        assert current.isna().all() and quality.empty and history.empty
        assert set(ev["summary"]) == {"no current model"}
    assert len(recorded) == (1 if "retrain_evaluations" in present else 0)
    assert len(failures) == (1 if "model_failures" in present else 0)
    assert len(status) == (1 if "fetch_status" in present else 0)
    assert sorted(fresh["entity_code"]) == ["EP1", "MK1"] and len(polls) == 2
    assert choices.set_index("entity_code").loc["MK1", "entity_name"] == (
        "Space Mountain" if "dim_entity" in present else "MK1")

    # And the writers write into the migrated tables.
    with wh.writer(home) as conn:
        assert staleness.write_evaluations(conn, ev) == 2
        registry_table.write_registry(conn, registry_table.registry_rows(home, []),
                                      registry_table.failure_rows({"EP1": "timeout"}, "run-2"))
        assert conn.execute("SELECT count(*) FROM model_failures").fetchone()[0] == \
            (2 if "model_failures" in present else 1)


class _Recorder:
    """A connection that records the statements run through it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn, self.statements = conn, []

    def execute(self, sql: str, *args):
        self.statements.append(" ".join(sql.split()))
        return self.conn.execute(sql, *args)


def test_ensure_tables_is_idempotent_and_one_query_when_up_to_date() -> None:
    conn = duckdb.connect()
    first = _Recorder(conn)
    schema.ensure_tables(first)
    assert len(first.statements) == 1 + len(schema.DDL) + len(schema.DIM_DDL)
    again = _Recorder(conn)
    schema.ensure_tables(again)
    assert len(again.statements) == 1 and again.statements[0].startswith("SELECT")
    # a column a later release added, missing here: only its ALTER runs
    conn.execute("ALTER TABLE ingest_manifest DROP COLUMN content_lines")
    third = _Recorder(conn)
    schema.ensure_tables(third)
    assert third.statements[1:] == [
        "ALTER TABLE ingest_manifest ADD COLUMN IF NOT EXISTS content_lines BIGINT"]


def test_dimensions_are_created_with_the_build_log_and_never_recreated_after() -> None:
    conn = duckdb.connect()
    schema.ensure_tables(conn, ("fct_wait_times",))
    assert _columns_of(conn, "dim_entity") == []  # not asked for: the log was not created
    schema.ensure_tables(conn)
    assert _columns_of(conn, "dim_entity")[:2] == ["entity_code", "entity_name"]
    # Once the log exists, a missing dimension was dropped: its asset must see it missing
    # (lib.dimensions.inputs.is_current) and rebuild it, so it is not recreated empty.
    conn.execute("DROP TABLE dim_events")
    schema.ensure_tables(conn)
    assert _columns_of(conn, "dim_events") == []

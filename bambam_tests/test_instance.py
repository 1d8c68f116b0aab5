"""The Dagster instance of a home: SQLite by default, PostgreSQL with BAMBAM_DAGSTER_PG_URL.

The PostgreSQL test runs `bambam run` in a child process against a real server (a database of
its own, bambam_tests/pg_server.py) and reads the run and its events back from PostgreSQL's own
tables, not through Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bambam_assets.instance import DAGSTER_YAML, LEGACY_YAML, prepare_dagster_home
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.demo import generate as demo_data
from bambam_tests.pg_server import libpq_url

BAMBAM = Path(sys.executable).with_name("bambam")


def test_sqlite_by_default_postgres_by_reference_and_hand_edits_kept(
        bambam_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = HomePaths(bambam_home).dagster_yaml
    prepare_dagster_home(bambam_home)
    assert yaml_path.read_text() == DAGSTER_YAML and "storage" not in DAGSTER_YAML

    url = "postgresql+psycopg2://ops:s3cret@db.internal:5432/dagster"
    monkeypatch.setenv(settings.DAGSTER_PG_URL, url)
    prepare_dagster_home(bambam_home)
    text = yaml_path.read_text()
    # the storage names the variable: the password never lands on disk
    assert "postgres_url:\n      env: BAMBAM_DAGSTER_PG_URL" in text and "s3cret" not in text
    assert "max_concurrent_runs: 2" in text

    monkeypatch.delenv(settings.DAGSTER_PG_URL)
    prepare_dagster_home(bambam_home)  # back to SQLite: the setting decides
    assert yaml_path.read_text() == DAGSTER_YAML

    yaml_path.write_text(LEGACY_YAML)  # a home made before the marker: still ours
    prepare_dagster_home(bambam_home)
    assert yaml_path.read_text() == DAGSTER_YAML

    by_hand = "run_coordinator:\n  module: dagster.core.run_coordinator\n"
    yaml_path.write_text(by_hand)
    monkeypatch.setenv(settings.DAGSTER_PG_URL, url)
    prepare_dagster_home(bambam_home)
    assert yaml_path.read_text() == by_hand


def test_bad_pg_url_names_the_variable_without_the_password() -> None:
    with pytest.raises(settings.SettingError, match="BAMBAM_DAGSTER_PG_URL") as err:
        settings.dagster_pg_url({"BAMBAM_DAGSTER_PG_URL": "mysql://u:pw@host/db"})
    assert "pw" not in str(err.value)
    # a bare postgresql:// would get psycopg 3 from SQLAlchemy 2.1: refused with the fix named
    with pytest.raises(settings.SettingError, match=r"postgresql\+psycopg2://"):
        settings.dagster_pg_url({"BAMBAM_DAGSTER_PG_URL": "postgresql://u@host/db"})


@pytest.mark.integration
def test_runs_and_events_land_in_postgres(bambam_home: Path, pg_database: str) -> None:
    import psycopg2

    demo_data.generate(bambam_home / "raw", ["MK"], 1, date(2024, 3, 1), date(2024, 3, 31),
                       seed=3, qt_days=0)
    env = {**os.environ, settings.DAGSTER_PG_URL: pg_database, "BAMBAM_AS_OF": "2024-03-31"}
    done = subprocess.run([str(BAMBAM), "run", "--select", "fct_wait_times"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    with psycopg2.connect(libpq_url(pg_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs")
        runs = cur.fetchall()
        assert len(runs) == 1 and runs[0][1] == "SUCCESS"
        cur.execute("SELECT event_logs.asset_key FROM event_logs WHERE run_id = %s AND "
                    "dagster_event_type = 'ASSET_MATERIALIZATION'", (runs[0][0],))
        materialized = {key for (key,) in cur.fetchall()}
        # the blocking check on the fact table ran in the same run, its result stored too
        cur.execute("SELECT check_name, execution_status FROM asset_check_executions "
                    "WHERE run_id = %s", (runs[0][0],))
        checks = dict(cur.fetchall())
    assert materialized == {'["fct_wait_times"]', '["fct_rejected_rows"]', '["entity_index"]'}
    assert checks and set(checks.values()) == {"SUCCEEDED"}
    # nothing went to SQLite under the home
    assert not list(HomePaths(bambam_home).dagster.rglob("*.db"))


@pytest.mark.integration
def test_a_throwaway_server_when_none_answers() -> None:
    """The fallback of machines without a server: initdb + pg_ctl in a temporary folder (as the
    postgres system user when run as root), answering on its own port, gone after stop()."""
    from bambam_tests.pg_server import _connect, _start_throwaway

    url, stop = _start_throwaway("test of the fallback")
    try:
        conn = _connect(url)
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            (folder,) = cur.fetchone()
        conn.close()
    finally:
        stop()
    assert not Path(folder).exists()

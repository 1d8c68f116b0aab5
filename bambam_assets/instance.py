"""The Dagster instance of a home: BAMBAM_HOME/dagster/dagster.yaml.

Storage is SQLite under that folder by default (one person, one machine). With
BAMBAM_DAGSTER_PG_URL set, run, event-log and schedule storage go to PostgreSQL
(dagster-postgres): the daemon, the webserver and concurrent runs then share a server built for
concurrent writers, which Dagster's deployment guide asks for. The file names the variable, not
its value (`postgres_url: {env: BAMBAM_DAGSTER_PG_URL}`), so no password is written to disk and
every process of the instance (webserver, daemon, run workers) must have it set.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from filelock import FileLock

from bambam_assets.lib.core import settings
from bambam_assets.lib.core.paths import HomePaths

# Run coordinator: at most 2 runs at once (two cores; each run sizes its own worker pool); the
# queue is looked at every 2 s, not Dagster's 5 (a queued run waited 6-10 s to start, measured
# under the daemon; one look is a query on the run storage). Pools: warehouse writers one at a
# time (DuckDB has a single writer); telemetry off (no network).
_COMMON_YAML = """\
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
run_queue:
  dequeue_interval_seconds: 2
telemetry:
  enabled: false
sensors:
  use_threads: true
  num_workers: 2
"""
_POSTGRES_YAML = f"""\
storage:
  postgres:
    postgres_url:
      env: {settings.DAGSTER_PG_URL}
"""
# The first line of every file written here: a file without it was written by hand and is left
# as it is.
MARKER = "# Written by bambam (bambam_assets/instance.py); delete this line to edit by hand.\n"
# What homes made before the marker hold: still ours, rewritten when the storage changes.
LEGACY_YAML = """\
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
telemetry:
  enabled: false
sensors:
  use_threads: true
  num_workers: 2
"""
DAGSTER_YAML = MARKER + _COMMON_YAML


def dagster_yaml(postgres: bool) -> str:
    """The dagster.yaml of a home: SQLite storage, or PostgreSQL through BAMBAM_DAGSTER_PG_URL."""
    return DAGSTER_YAML + (_POSTGRES_YAML if postgres else "")


def prepare_dagster_home(home: Path | None = None, postgres: bool | None = None) -> Path:
    """Create BAMBAM_HOME/dagster (or `home`/dagster) with its dagster.yaml; returns the folder.

    `postgres` (default: BAMBAM_DAGSTER_PG_URL is set) picks the storage. A dagster.yaml this
    module wrote is rewritten when the storage changes; one written by hand is never touched.
    """
    layout = HomePaths(home or settings.home())
    layout.dagster.mkdir(parents=True, exist_ok=True)
    if postgres is None:
        postgres = settings.dagster_pg_url() is not None
    wanted = dagster_yaml(postgres)
    path = layout.dagster_yaml
    current = path.read_text() if path.exists() else None
    if current != wanted and (current is None or current.startswith(MARKER)
                              or current == LEGACY_YAML):
        path.write_text(wanted)
    return layout.dagster


def ensure_dagster_home(home: Path | None = None) -> Path:
    """prepare_dagster_home, and export DAGSTER_HOME for child processes (dagster dev, the
    daemon) and DagsterInstance.get()."""
    dagster_home = prepare_dagster_home(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def local_instance(home: Path | None = None) -> dg.DagsterInstance:
    dagster_home = ensure_dagster_home(home)
    # Two processes opening a new SQLite instance at once both create and stamp its schema:
    # measured, two concurrent `bambam run`s on a fresh home failed with "UNIQUE constraint
    # failed: alembic_version". One process at a time opens (and so migrates) the storages.
    with FileLock(str(dagster_home / ".instance.lock"), timeout=120):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.event_log_storage.get_maximum_record_id()
        instance.schedule_storage  # noqa: B018 - built (and migrated) under the lock
    return instance


def instance_at(home: Path) -> dg.DagsterInstance:
    """The instance of another home (the backtest's scratch home), leaving DAGSTER_HOME as it is.

    Always SQLite under that home: a scratch home's runs and entity partitions must not land in
    the production instance's PostgreSQL storage."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(home, postgres=False)))

"""The local Dagster instance under BAMBAM_HOME/dagster (persistent sqlite run history)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from bambam_assets.lib.core import settings
from bambam_assets.lib.core.paths import HomePaths

# Pools: warehouse writers one at a time (DuckDB has a single writer); telemetry off (no network).
DAGSTER_YAML = """\
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


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Create BAMBAM_HOME/dagster (or `home`/dagster) with its dagster.yaml; returns the folder."""
    layout = HomePaths(home or settings.home())
    layout.dagster.mkdir(parents=True, exist_ok=True)
    if not layout.dagster_yaml.exists():
        layout.dagster_yaml.write_text(DAGSTER_YAML)
    return layout.dagster


def ensure_dagster_home(home: Path | None = None) -> Path:
    """prepare_dagster_home, and export DAGSTER_HOME for child processes (dagster dev, the
    daemon) and DagsterInstance.get()."""
    dagster_home = prepare_dagster_home(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def local_instance(home: Path | None = None) -> dg.DagsterInstance:
    ensure_dagster_home(home)
    return dg.DagsterInstance.get()


def instance_at(home: Path) -> dg.DagsterInstance:
    """The instance of another home (the backtest's scratch home), leaving DAGSTER_HOME as it is."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(home)))

"""The local Dagster instance under BAMBAM_HOME/dagster (persistent sqlite run history)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from bambam_assets.lib.core import settings

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


def ensure_dagster_home(home: Path | None = None) -> Path:
    """Create BAMBAM_HOME/dagster with its dagster.yaml; export DAGSTER_HOME for child processes."""
    dagster_home = (home or settings.home()) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def local_instance(home: Path | None = None) -> dg.DagsterInstance:
    ensure_dagster_home(home)
    return dg.DagsterInstance.get()

"""`bambam daemon`: the headless automation, `dagster-daemon run` on the home's instance."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click


@click.command("daemon")
def daemon() -> None:
    """Run `dagster-daemon run` (sensors, schedules, automation; no UI) on $BAMBAM_HOME/dagster.

    Writes the home's dagster.yaml and creates its storages first: a bare `dagster-daemon run` on
    a fresh home has no dagster.yaml (Dagster's defaults: no run queue, no pools), and the daemon
    and its code server creating one new SQLite schema at once failed with "table
    alembic_version already exists" (measured)."""
    from bambam_assets.instance import local_instance

    # dagster.yaml, DAGSTER_HOME, storages created under the home's lock; an unreachable
    # PostgreSQL storage is answered in one line by the command group (cli/errors.py)
    local_instance()
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    exe = shutil.which("dagster-daemon") or str(Path(sys.executable).parent / "dagster-daemon")
    argv = [exe, "run"] + (["-w", str(workspace)] if workspace.exists()
                           else ["-m", "bambam_assets.definitions"])
    sys.stdout.flush()
    # exec: the service manager's signals (SIGTERM) reach the daemon itself, no wrapper between
    os.execv(exe, argv)

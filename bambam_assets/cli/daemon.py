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

    try:
        local_instance()  # dagster.yaml, DAGSTER_HOME, storages created under the home's lock
    except Exception as exc:
        if "postgres" in type(exc).__module__ or "OperationalError" in type(exc).__name__:
            raise click.ClickException(
                f"cannot open the Dagster instance's storage: {' '.join(str(exc).split())[:300]}"
                " (check BAMBAM_DAGSTER_PG_URL and that the server is up)") from None
        raise
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    exe = shutil.which("dagster-daemon") or str(Path(sys.executable).parent / "dagster-daemon")
    argv = [exe, "run"] + (["-w", str(workspace)] if workspace.exists()
                           else ["-m", "bambam_assets.definitions"])
    sys.stdout.flush()
    # exec: the service manager's signals (SIGTERM) reach the daemon itself, no wrapper between
    os.execv(exe, argv)

"""`bambam ui`: `dagster dev` (webserver and daemon) beside the dashboard."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click


@click.command("ui")
@click.option("--port", default=3000, show_default=True, type=int, help="Dagster UI port.")
@click.option("--dash-port", default=8050, show_default=True, type=int, help="Dashboard port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="A loopback address: the Dagster webserver has no authentication.")
def ui(port: int, dash_port: int, host: str) -> None:
    """Start `dagster dev` (webserver + daemon: sensors, schedules, automation) and the
    dashboard."""
    from bambam_assets import web_auth
    from bambam_assets.dashboard import start_in_thread
    from bambam_assets.instance import local_instance
    from bambam_assets.lib.core import settings

    if not web_auth.is_loopback(host):
        # Anyone who reaches the Dagster webserver can launch runs and wipe assets; it has no
        # login of its own, so it only ever listens on loopback.
        raise click.UsageError(
            f"refusing to serve the Dagster UI on {host}: the Dagster webserver has no "
            "authentication. Bind a loopback address and expose it through a TLS-terminating "
            "reverse proxy with authentication (README: \"Exposing the UI, dashboard and API\").")
    # storages created before dagster dev's webserver, daemon and code server race to (cli/daemon)
    local_instance()
    try:
        dash_server = start_in_thread(settings.home(), host, dash_port)
    except ValueError as exc:  # non-loopback host without Basic Auth credentials
        raise click.UsageError(str(exc)) from exc
    click.echo(f"dashboard: {dash_server.url}   Dagster UI: http://{host}:{port}")
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    cmd = [dagster, "dev", "-h", host, "-p", str(port)]
    if workspace.exists():
        cmd += ["-w", str(workspace)]
    else:
        cmd += ["-m", "bambam_assets.definitions"]
    # Own process group: dagster dev leaves children behind on SIGINT, so we kill the group.
    proc = subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())

    def _stop(_signum, _frame):  # a SIGTERM (service manager, kill) stops the group like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        dash_server.stop()

"""The `bambam` command line: demo data, one pipeline run, the UI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import click

# Dagster flags single_run backfill policies as beta on every import; the CLI user needs not see it.
warnings.filterwarnings("ignore", message=".*is currently in beta.*")


def _date(_ctx, _param, value):
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


@click.group()
def main() -> None:
    """Bambam: theme-park wait-time forecasting on Dagster and DuckDB.

    Settings come from the environment: BAMBAM_HOME (default ./.bambam), BAMBAM_RAW (local folder
    or s3://bucket/prefix, default $BAMBAM_HOME/raw), BAMBAM_AS_OF (default today).
    """


@main.command("demo-data")
@click.option("--parks", default="MK,EP,HS,AK", show_default=True, help="Comma-separated park codes.")
@click.option("--entities-per-park", default=4, show_default=True, type=int)
@click.option("--start", default="2024-01-01", show_default=True, callback=_date)
@click.option("--end", default="2025-12-31", show_default=True, callback=_date)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: BAMBAM_RAW when local).")
def demo_data(parks: str, entities_per_park: int, start: date, end: date, seed: int,
              out: Path | None) -> None:
    """Write raw files in the real formats (TouringPlans export and public files, queue-times)."""
    from tqdm import tqdm

    from bambam_assets import settings
    from bambam_assets.lib.core.parks import PARKS
    from bambam_assets.lib.demo import generate as gen

    park_list = [p.strip().upper() for p in parks.split(",") if p.strip()]
    unknown = [p for p in park_list if p not in PARKS]
    if unknown:
        raise click.BadParameter(f"unknown parks {unknown}; known: {', '.join(PARKS)}")
    if out is None:
        uri = settings.raw_uri()
        if uri.startswith("s3://"):
            raise click.UsageError("BAMBAM_RAW is S3: pass --out DIR and upload the folder")
        out = Path(uri)
    with tqdm(total=0, unit="entity", desc="demo data") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = gen.generate(out, park_list, entities_per_park, start, end, seed=seed,
                               progress=progress)
    click.echo(f"wrote demo data to {out}")
    for key, value in summary.items():
        click.echo(f"  {key}: {value}")


@main.command("run")
@click.option("--select", "select", multiple=True,
              help="Asset key to materialize (repeatable); default: all.")
@click.option("--retrain-all", is_flag=True,
              help="Retrain every entity, not only those the staleness rule finds due.")
def run(select: tuple[str, ...], retrain_all: bool) -> None:
    """Materialize the selected (or all) assets once, in-process, on the local instance.

    Entity models are retrained only where due (no model, 100+ new targets, older than the
    tier's maximum age, or new training code); forecasts and the WTI are rebuilt.
    """
    from bambam_assets import settings
    from bambam_assets.cli.progress import ProgressBars
    from bambam_assets.instance import local_instance
    from bambam_assets.runner import run_pipeline
    from bambam_assets.summary import print_summary

    instance = local_instance()
    config = {"ops": {"entity_model": {"config": {"mode": "full"}}}} if retrain_all else None
    with ProgressBars(settings.home()):
        summary = run_pipeline(instance, list(select) or None, log=click.echo,
                               entity_run_config=config)
    print_summary(summary, echo=click.echo)
    if not summary.success:
        sys.exit(1)


@main.command("ui")
@click.option("--port", default=3000, show_default=True, type=int, help="Dagster UI port.")
@click.option("--dash-port", default=8050, show_default=True, type=int, help="Dashboard port.")
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, dash_port: int, host: str) -> None:
    """Start `dagster dev` (webserver + daemon: sensors, schedules, automation) and the dashboard."""
    from bambam_assets import settings
    from bambam_assets.dashboard import start_in_thread
    from bambam_assets.instance import ensure_dagster_home

    ensure_dagster_home()
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


@main.group("models")
def models() -> None:
    """Model versions: list, roll back."""


@models.command("list")
@click.argument("entity")
def models_list(entity: str) -> None:
    """List the kept versions of ENTITY's model (newest first; * marks the current one)."""
    from bambam_assets import settings
    from bambam_assets.lib.models import registry

    versions = registry.list_versions(settings.home() / "models", entity.upper())
    if not versions:
        raise click.ClickException(f"no model versions for {entity.upper()}")
    click.echo(f"{'':1} {'version':>7}  {'trained_at':25} {'kind':15} {'holdout_mae':>11}  decision")
    for v in sorted(versions, key=lambda v: v["version"], reverse=True):
        mae = v.get("holdout_mae")
        click.echo(
            f"{'*' if v.get('current') else ' '} {v['version']:>7}  {str(v.get('trained_at')):25} "
            f"{str(v.get('kind')):15} {mae if mae is None else f'{mae:.2f}':>11}  {v.get('decision')}"
        )


@models.command("rollback")
@click.argument("entity")
@click.option("--version", type=int, default=None, help="Kept version to make current "
              "(default: the one before the current).")
def models_rollback(entity: str, version: int | None) -> None:
    """Make an earlier kept version of ENTITY's model current."""
    from bambam_assets import settings
    from bambam_assets.lib.core import warehouse as wh
    from bambam_assets.lib.models import registry

    home = settings.home()
    try:
        new = registry.rollback(home / "models", entity.upper(), version)
    except registry.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if wh.warehouse_path(home).exists():
        with wh.writer(home) as conn:
            registry.sync_current_flags(conn, home / "models", [entity.upper()])
    click.echo(f"{entity.upper()}: version {new} is now current")


def _register_commands() -> None:
    # Commands that live beside their feature; imported lazily by click at call time.
    from bambam_assets.cli.backtest import backtest
    from bambam_assets.cli.dashboard import dashboard
    from bambam_assets.cli.live import live
    from bambam_assets.cli.models import status

    main.add_command(backtest)
    main.add_command(dashboard)
    models.add_command(status)
    main.add_command(live)


_register_commands()

if __name__ == "__main__":
    main()

"""`bambam live`: poll queue-times once, serve the live API."""

from __future__ import annotations

import click


@click.group("live")
def live() -> None:
    """Live layer: queue-times polling and the POSTED→ACTUAL API."""


@live.command("poll-once")
@click.option("--parks", default=None,
              help="Comma-separated park codes (default: BAMBAM_QUEUE_TIMES_PARKS, else every "
                   "park with a queue-times id).")
@click.option("--base-url", default=None,
              help="API base URL (default: BAMBAM_QUEUE_TIMES_URL, else https://queue-times.com).")
@click.option("--timeout", default=10.0, show_default=True, type=float,
              help="Seconds per HTTP attempt.")
def poll_once(parks: str | None, base_url: str | None, timeout: float) -> None:
    """Fetch every park in its window now; write snapshots and the fetch status."""
    from bambam_assets.lib.core import settings
    from bambam_assets.lib.core.parks import QUEUE_TIMES_PARK_ID
    from bambam_assets.lib.ingest.raw_source import open_raw_source
    from bambam_assets.lib.live.fetch_status import run_tick
    from bambam_assets.lib.live.queue_times_client import QueueTimesClient

    park_list = [p.strip().upper() for p in parks.split(",") if p.strip()] if parks \
        else settings.queue_times_parks()
    unknown = [p for p in park_list if p not in QUEUE_TIMES_PARK_ID]
    if unknown:
        raise click.BadParameter(f"no queue-times id for {', '.join(unknown)}; parks with one: "
                                 f"{', '.join(sorted(QUEUE_TIMES_PARK_ID))}", param_hint="--parks")
    with QueueTimesClient(base_url=base_url or settings.queue_times_url(),
                          timeout_s=timeout) as client:
        tick = run_tick(settings.home(), open_raw_source(settings.raw_uri()), client, park_list)
    for w in tick.windows.itertuples():  # one line per park
        click.echo(f"{w.park_code:4} {w.park_date}  {w.reason}")
    for r in tick.results:
        if r.ok:
            click.echo(f"{r.park_code:4} ok: {r.rides_seen} rides, {r.rows_written} mapped, "
                       f"{r.stale_rows} older than 24 h, {len(r.unmapped)} unmapped -> "
                       f"{r.snapshot_key}")
        else:
            click.echo(f"{r.park_code:4} FAILED ({r.error_kind}, {r.attempts} attempts): {r.error}")
    click.echo(f"hours: {tick.hours_source}; status: {tick.fold_message}")


@live.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8060, show_default=True, type=int)
@click.option("--live-ttl", default=30.0, show_default=True, type=float,
              help="Seconds a park's facts are reused before re-reading the warehouse.")
def serve(host: str, port: int, live_ttl: float) -> None:
    """Serve GET /live/{park} and POST /predict (FastAPI on uvicorn)."""
    import uvicorn

    from bambam_assets import web_auth
    from bambam_assets.api.live import create_app

    try:
        web_auth.check_bind(host, web_auth.credentials(), "the live API")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    uvicorn.run(create_app(live_ttl_s=live_ttl), host=host, port=port, log_level="warning")

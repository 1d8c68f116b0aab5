"""`bambam dashboard`: serve the operator's dashboard (Dash) on localhost."""

from __future__ import annotations

import click


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs BAMBAM_DASH_USER and "
              "BAMBAM_DASH_PASSWORD (Basic Auth).")
@click.option("--port", default=8050, show_default=True, type=int)
def dashboard(host: str, port: int) -> None:
    """Serve pipeline status, model quality, wait-time curves and data freshness."""
    from bambam_assets import web_auth
    from bambam_assets.dashboard.app import serve
    from bambam_assets.lib.core import settings

    try:
        web_auth.check_bind(host, web_auth.credentials(), "the dashboard")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    home = settings.home()
    click.echo(f"dashboard of {home} on http://{host}:{port}/ "
               f"({'Basic Auth on' if web_auth.credentials() else 'no auth'}); Ctrl-C stops")
    serve(home, host, port)


if __name__ == "__main__":
    dashboard()

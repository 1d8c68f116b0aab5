"""The Dash app: header with navigation, one page per path, Basic Auth when configured.

`create_app(home)` builds it (Flask server at `app.server`); `serve` runs it in the foreground
and `start_in_thread` beside other work (what `bambam ui` uses next to `dagster dev`).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs

import dash
from dash import Input, Output, dcc, html
from werkzeug.serving import BaseWSGIServer, make_server

from bambam_assets import web_auth
from bambam_assets.dashboard import auth, theme
from bambam_assets.dashboard.context import Context, make_context
from bambam_assets.dashboard.pages import (
    best_times,
    calendar,
    curves,
    freshness,
    quality,
    scorecard,
    status,
)

PAGES = (status, quality, curves, calendar, best_times, freshness, scorecard)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8050

INDEX = """<!DOCTYPE html>
<html><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}<style>""" + theme.CSS + """</style>
</head><body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""


# plotly.js's "basic" bundle (scatter, bar, pie: every trace the pages draw), a script of the
# page: dcc.Graph uses window.Plotly when it is there and never loads the full bundle (4.8 MB,
# about 350 ms of the browser's main thread to evaluate on a cold /quality load, profiled; the
# basic one is 1.2 MB). Same plotly.js version as the Python plotly's (test_dashboard_assets);
# `make vendor-plotly` refreshes it.
ASSETS = Path(__file__).resolve().parent / "assets"

# The chunks the pages load only once the route callback has answered (a graph, a dropdown, a
# table, the date picker), asked for at once by the page's head instead (issue 13: on an empty
# browser cache they were fetched after the callback, in series with it). Same URLs as the
# chunk loader's, so the preload is what it then uses.
PRELOAD = ("dash/dcc/async-graph.js",
           "dash/dcc/async-dropdown.js", "dash/dcc/async-datepicker.js",
           "dash/dash_table/async-table.js", "dash/dash_table/async-highlight.js")


def _index(prefix: str) -> str:
    links = "".join(f'<link rel="preload" as="script" href="{prefix}_dash-component-suites/{p}">'
                    for p in PRELOAD)
    return INDEX.replace("</head>", links + "</head>", 1)


def _header(home: Path) -> html.Div:
    return html.Div([
        html.H1("Bambam"),
        *[dcc.Link(p.TITLE, href=p.PATH, id=f"nav-{p.__name__.rsplit('.', 1)[-1]}")
          for p in PAGES],
        html.Span(str(home), className="bb-home"),
    ], className="bb-header")


def _page(ctx: Context, pathname: str | None, search: str | None) -> html.Div:
    query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
    path = (pathname or "/").rstrip("/") or "/"
    page = next((p for p in PAGES if p.PATH == path), None)
    if page is None:
        return theme.card("Not found", theme.empty(f"no page at {pathname}"))
    return page.layout(ctx, query)


def create_app(home: Path, *, credentials: tuple[str, str] | None = None,
               use_env_credentials: bool = True, stale_days: int | None = None,
               as_of: date | None = None) -> dash.Dash:
    """The dashboard over `home` (BAMBAM_HOME). Basic Auth with `credentials`, else with
    BAMBAM_DASH_USER / BAMBAM_DASH_PASSWORD when both are set (and `use_env_credentials`)."""
    ctx = make_context(Path(home), stale_days=stale_days, as_of=as_of)
    app = dash.Dash(__name__, title="Bambam", update_title=None, assets_folder=str(ASSETS),
                    suppress_callback_exceptions=True, index_string=INDEX)
    app.index_string = _index(app.config.requests_pathname_prefix)
    creds = credentials or (web_auth.credentials() if use_env_credentials else None)
    if creds:
        auth.protect(app.server, creds)
    app.layout = html.Div([dcc.Location(id="url"), _header(ctx.home),
                           html.Div(id="page", className="bb-page")])

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def _route(pathname, search):
        return _page(ctx, pathname, search)

    for page in PAGES:
        page.register(app, ctx)
    app.bambam_context = ctx  # for tests and the CLI
    return app


def warm_up(app: dash.Dash) -> None:
    """Build every page once, as a visit would, before the first visit.

    A fresh process pays once for what pages load lazily: Dagster's import and the instance (the
    status page, ~1.5 s), plotly's trace validators, the first warehouse connection, the live
    status reader. Errors are logged, never raised: the pages show them on a visit.
    """
    ctx = app.bambam_context
    ctx.groups()
    for page in PAGES:  # six pages
        try:
            page.layout(ctx, {})
        except Exception:  # a page that fails here fails visibly when visited
            logging.getLogger(__name__).warning("warm-up of %s failed", page.PATH, exc_info=True)


def _server(home: Path, host: str, port: int) -> tuple[dash.Dash, BaseWSGIServer]:
    web_auth.check_bind(host, web_auth.credentials(), "the dashboard")
    app = create_app(home)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per polled callback
    return app, make_server(host, port, app.server, threaded=True)


def _warm_then_serve(app: dash.Dash, server: BaseWSGIServer) -> None:
    # the socket listens already: a visit during the warm-up waits for it, then is served warm
    warm_up(app)
    server.serve_forever()


def _stop_on_sigterm() -> None:
    # A server must stop on SIGTERM even when its parent left SIGTERM ignored (an ignored
    # disposition survives exec: a test's dashboard under a background CI job outlived
    # terminate() with SIGTERM in its SigIgn mask). Like Ctrl-C, it ends serve_forever.
    def _interrupt(_signo, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def serve(home: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the dashboard until interrupted or terminated (blocking), every page built once
    first."""
    _stop_on_sigterm()
    _warm_then_serve(*_server(home, host, port))


@dataclass
class DashboardServer:
    """A dashboard served by a daemon thread; `stop()` shuts it down."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def start_in_thread(home: Path, host: str = DEFAULT_HOST,
                    port: int = DEFAULT_PORT) -> DashboardServer:
    """Start serving in a daemon thread and return at once (port 0: any free port); the thread
    builds every page once before it answers."""
    app, server = _server(home, host, port)
    thread = threading.Thread(target=_warm_then_serve, args=(app, server),
                              name="bambam-dashboard", daemon=True)
    thread.start()
    return DashboardServer(server, thread)

"""Page 4, data freshness: latest observation per entity and per source, stale operating
entities, rejected rows per day by reason, quarantined raw files, and the last raw-source polls
and live fetches."""

from __future__ import annotations

from dash import dcc, html

from bambam_assets.dashboard import data, paging, theme
from bambam_assets.dashboard.context import Context

PATH = "/freshness"
TITLE = "Data freshness"
FRESH_COLUMNS = ["entity_code", "entity_name", "park_code", "latest_observed_at",
                 "latest_park_date", "days_since", "row_count", "operating", "stale"]
AGE_BARS = 40  # bars in the age chart


def _rejected_figure(rej):
    if rej is None or rej.empty:
        return theme.empty_figure("no rejected rows" if rej is not None else theme.NO_DATA)
    fig = theme.figure("Rejected raw rows per day, by reason")
    for i, (reason, part) in enumerate(rej.groupby("reason", sort=True)):  # a few reasons
        fig.add_bar(x=part["day"], y=part["rows"], name=reason,
                    marker_color=theme.COLORWAY[i % len(theme.COLORWAY)])
    fig.update_layout(barmode="stack", yaxis={"title": "rows"},
                      xaxis={"type": "date", "tickformat": "%Y-%m-%d"})
    return fig


def _age_figure(fresh, stale_days: int):
    """The AGE_BARS oldest entities (`fresh` is ordered stale first, then oldest): at the real
    estate's 1,694 entities one labelled bar each took the browser over a second to draw and
    could not be read; the table below lists every entity."""
    if fresh is None or fresh.empty:
        return theme.empty_figure()
    title = f"Days since the latest observation (stale beyond {stale_days})"
    if len(fresh) > AGE_BARS:
        title = f"Days since the latest observation: the {AGE_BARS} oldest of {len(fresh)} " \
                f"(stale beyond {stale_days})"
        fresh = fresh.head(AGE_BARS)
    fig = theme.figure(title)
    colors = fresh["stale"].map({True: theme.PINK[3], False: theme.BLUE[1]}).fillna(theme.BLUE[3])
    fig.add_bar(x=fresh["entity_code"], y=fresh["days_since"], marker_color=colors,
                name="days since", hovertext=fresh["entity_name"], text=fresh["days_since"],
                textposition="outside", cliponaxis=False)
    fig.update_layout(showlegend=False, yaxis={"title": "days",
                      "range": [0, max(float(fresh["days_since"].max() or 0), stale_days) + 1]})
    fig.add_hline(y=stale_days, line={"color": theme.PINK[2], "dash": "dash"})
    return fig


def _live_status(ctx: Context, from_warehouse):
    """The poller's per-park status files (the truth, readable while the warehouse is busy),
    else the warehouse's fetch_status table."""
    try:
        from bambam_assets.lib.live.fetch_status import read_status
    except ImportError:
        return from_warehouse
    files = read_status(ctx.home)[0]
    return files if not files.empty else from_warehouse


def _quarantine_view(quarantined):
    if quarantined is None:
        return theme.empty()
    if quarantined.empty:
        return theme.empty("none: every failing raw file is still being retried")
    return theme.table("quarantine-table", quarantined)


def _read(ctx: Context):
    as_of, stale_days = ctx.as_of(), ctx.stale_days

    def q(conn):
        return {"fresh": data.entity_freshness(conn, as_of, stale_days),
                "rejected": data.rejected_per_day(conn),
                "polls": data.ingest_polls(conn), "fetch": data.fetch_status(conn),
                "quarantined": data.quarantined_files(conn)}
    return ctx.store.read(("freshness", as_of, stale_days), q)


def _per_source(ctx: Context):
    # one scan of the facts: kept a minute (it is the page's only heavy query)
    return ctx.store.read("source_freshness", data.source_freshness, ttl_s=60)


def layout(ctx: Context, _query: dict) -> html.Div:
    as_of, stale_days = ctx.as_of(), ctx.stale_days
    res, src = _read(ctx), _per_source(ctx)
    d = res.value or {}
    live = _live_status(ctx, d.get("fetch"))
    fresh, per_source = d.get("fresh"), src.value
    stale = fresh[fresh["stale"]] if fresh is not None else None
    n_stale = "—" if stale is None else str(len(stale))
    return html.Div([
        theme.card("Summary", html.Div([
            html.Span([html.B(str(as_of)), "as of"], className="bb-kpi"),
            html.Span([html.B(n_stale, id="stale-count",
                              className="bb-bad" if stale is not None and len(stale) else ""),
                       f"stale operating entities (> {stale_days} days)"], className="bb-kpi"),
            html.Span([html.B("—" if fresh is None else str(len(fresh))), "entities observed"],
                      className="bb-kpi"),
        ]), note=res.note),
        html.Div([
            theme.card("Latest observation per entity",
                       dcc.Graph(id="fresh-age", figure=_age_figure(fresh, stale_days),
                                 config={"displayModeBar": False})),
            theme.card("Rejected rows", dcc.Graph(id="fresh-rejected",
                                                  figure=_rejected_figure(d.get("rejected")),
                                                  config={"displayModeBar": False})),
        ], className="bb-row"),
        theme.card("Stale operating entities",
                   theme.empty() if stale is None else
                   theme.empty(f"none: every operating entity observed within {stale_days} days")
                   if stale.empty else paging.table("stale-table", stale, FRESH_COLUMNS)),
        theme.card("Entities", paging.table("fresh-table", fresh, FRESH_COLUMNS, filterable=True)
                   if fresh is not None else theme.empty()),
        html.Div([
            theme.card("Per source", theme.table("source-table", data.source_summary(per_source))
                       if per_source is not None else theme.empty(), note=src.note),
            theme.card("Per entity and source",
                       paging.table("entity-source-table", per_source, filterable=True)
                       if per_source is not None else theme.empty()),
        ], className="bb-row"),
        theme.card("Quarantined raw files (release: bambam ingest release KEY | --all)",
                   _quarantine_view(d.get("quarantined"))),
        html.Div([
            theme.card("Raw-source polls (ingest manifest)",
                       theme.table("polls-table", d["polls"]) if d.get("polls") is not None
                       else theme.empty()),
            theme.card("Live queue-times fetches",
                       theme.table("fetch-table", live) if live is not None
                       else theme.empty(), id_="fetch-card"),
        ], className="bb-row"),
    ])


def register(app, ctx: Context) -> None:
    """The entity tables (one row per entity: 1,694 on the real estate) are paged on the
    server."""
    def fresh():
        return (_read(ctx).value or {}).get("fresh")

    def stale():
        df = fresh()
        return None if df is None else df[df["stale"]]

    paging.register(app, "fresh-table", fresh, FRESH_COLUMNS)
    paging.register(app, "stale-table", stale, FRESH_COLUMNS)
    paging.register(app, "entity-source-table", lambda: _per_source(ctx).value)

"""Best time to ride: for one park day of the forecast, each entity's predicted lowest-wait
windows and its rope drop / midday / evening mean waits (lib/forecasts/best_times.py), as a
table and a chart. Read from the published files only."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from dash import dcc, html

from bambam_assets.dashboard import theme
from bambam_assets.dashboard.context import Context
from bambam_assets.dashboard.data_forecast import download_url, published_parks, reader_of
from bambam_assets.lib.forecasts import best_times as bt
from bambam_assets.lib.forecasts.api_reads import NotFound

PATH = "/best-times"
TITLE = "Best times"
PERIOD_NAMES = {"rope_drop": "rope drop", "midday": "midday", "evening": "evening"}
COLUMNS = ["entity_code", "entity_name", "best_windows", "lowest_wait", "rope_drop", "midday",
           "evening", "best_period"]


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _windows_text(windows: list[dict]) -> str:
    return "; ".join(f"{w['start']}-{w['end']} (~{w['mean_wait']:.0f} min)" for w in windows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["best_windows"] = frame["windows"].map(_windows_text)
    frame["best_period"] = frame["best_period"].map(PERIOD_NAMES).fillna("")
    return frame.loc[:, COLUMNS]


def _figure(frame: pd.DataFrame, park: str, day: date):
    if frame.empty:
        return theme.empty_figure("no forecast curves that day")
    fig = theme.figure(f"{park} {day}: mean predicted wait by part of the day", height=360)
    for i, (key, name) in enumerate(PERIOD_NAMES.items()):
        fig.add_bar(x=frame["entity_code"], y=frame[key], name=name,
                    marker_color=[theme.BLUE[1], theme.PINK[2], theme.BLUE[3]][i],
                    hovertext=frame["entity_name"])
    fig.update_layout(barmode="group", yaxis={"title": "minutes"})
    return fig


def _link(text: str, park: str, day: date, id_: str) -> dcc.Link:
    return dcc.Link(text, href=f"{PATH}?park={park}&date={day}", id=id_)


def layout(ctx: Context, query: dict) -> html.Div:
    parks = published_parks(ctx.home)
    if not parks:
        return theme.card(TITLE, theme.empty("no published forecast yet: run the pipeline"))
    park = (query.get("park") or parks[0]).upper()
    park = park if park in parks else parks[0]
    reader = reader_of(ctx.home)
    try:
        first, last = reader.horizon(park)
    except NotFound as exc:
        return theme.card(TITLE, theme.empty(str(exc)))
    as_of = ctx.as_of()
    day = _day(query.get("date")) or (as_of if first <= as_of <= last else first)
    try:
        rows = reader.best_times_frame(park, day)
        note = ""
    except NotFound as exc:
        rows, note = [], str(exc)
    frame = _frame(rows)
    row = reader.days(park).loc[day] if day in reader.days(park).index else None
    level = "" if row is None or not row["crowd_text"] else f", crowd level {row['crowd_text']}"
    return html.Div([
        theme.card(f"{TITLE}: {park}, {day:%a %d %b %Y}{level}", html.Div([
            html.Div([dcc.Link(p, href=f"{PATH}?park={p}&date={day}", id=f"best-park-{p}")
                      for p in parks], className="cal-links"),
            html.Div([_link("◀ previous day", park, day - timedelta(days=1), "best-prev"),
                      _link("next day ▶", park, day + timedelta(days=1), "best-next")],
                     className="cal-links"),
            html.Div([html.A(f"forecast {fmt.upper()}", href=download_url(
                park, "forecast", fmt, day, day), id=f"best-dl-{fmt}") for fmt in
                ("csv", "parquet")], className="cal-links"),
        ], className="bb-controls"), note=note),
        theme.card("Lowest-wait windows", html.P(
            f"Windows: slots within {bt.WINDOW_MARGIN:.0f} minutes of the ride's lowest "
            f"predicted wait that day, longest first. Rope drop: its first "
            f"{bt.ROPE_DROP_MINUTES} minutes; midday {bt.MIDDAY[0]}-{bt.MIDDAY[1]}; evening: "
            f"its last {bt.EVENING_MINUTES} minutes.", className="bb-empty"),
            theme.table("best-table", frame, page_size=20) if len(frame) else theme.empty(
                note or "no forecast curves that day")),
        theme.card("Rope drop, midday, evening", dcc.Graph(
            id="best-periods", figure=_figure(frame, park, day),
            config={"displaylogo": False})),
    ])


def register(app, ctx: Context) -> None:
    """No callbacks: the page is driven by its links (park, day)."""

"""Crowd calendar: a month of one park, each day's crowd level 1-10 with its range (the
forecast's band, lib/forecasts/crowd.py), the daily WTI with its band, and downloads of the
month's forecast and calendar (CSV, Parquet). Read from the published files only."""

from __future__ import annotations

import calendar as cal
from datetime import date, timedelta

import pandas as pd
from dash import dcc, html

from bambam_assets.dashboard import theme
from bambam_assets.dashboard.context import Context
from bambam_assets.dashboard.data_forecast import (
    add_download_routes,
    download_url,
    published_parks,
    reader_of,
)
from bambam_assets.lib.forecasts import crowd, published
from bambam_assets.lib.forecasts.api_reads import NotFound

PATH = "/calendar"
TITLE = "Crowd calendar"
PROVISIONAL = " (provisional: under a year of history)"
DOW = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# level 1 (quiet) .. 10 (busy): light blue to dark pink
LEVEL_COLORS = [theme.BLUE[5], theme.BLUE[4], theme.BLUE[3], theme.BLUE[2], theme.BLUE[1],
                theme.PINK[0], theme.PINK[1], "#F17CA1", theme.PINK[2], theme.PINK[3]]


def _month(text: str | None) -> date | None:
    try:
        return date.fromisoformat(f"{text}-01") if text else None
    except ValueError:
        return None


def _shift(month: date, n: int) -> date:
    y, m = divmod(month.month - 1 + n, 12)
    return date(month.year + y, m + 1, 1)


def _cell(day: date, row) -> html.Td:
    if row is None or pd.isna(row["crowd_level"]):
        return html.Td([html.Div(str(day.day), className="cal-day")], id=f"cal-{day}")
    level = int(row["crowd_level"])
    style = {"background": LEVEL_COLORS[level - 1],
             "color": "white" if level in (5, 10) else theme.NAVY}
    tip = (f"{day}: level {row['crowd_text']} ({row['kind']}), daily WTI "
           f"{row['wti']:.1f} min ({row['wti_low']:.1f}-{row['wti_high']:.1f})")
    return html.Td([html.Div(str(day.day), className="cal-day"),
                    html.Div(str(level), className="cal-level"),
                    html.Div(row["crowd_text"] if row["kind"] == "forecast" else "observed",
                             className="cal-range")],
                   id=f"cal-{day}", title=tip, style=style, className=f"cal-{row['kind']}")


def _grid(month: date, days) -> html.Table:
    weeks = cal.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    rows = []
    for week in weeks:
        cells = []
        for d in week:
            if d.month != month.month:
                cells.append(html.Td(""))
                continue
            cells.append(_cell(d, days.loc[d] if d in days.index else None))
        rows.append(html.Tr(cells))
    return html.Table([html.Thead(html.Tr([html.Th(d) for d in DOW])), html.Tbody(rows)],
                      className="cal-grid", id="cal-grid")


def _figure(frame, park: str, month: date):
    if frame.empty or frame["wti"].isna().all():
        return theme.empty_figure("no daily WTI this month")
    fig = theme.figure(f"{park} daily WTI, {month:%B %Y} (forecast band: the park's spread)")
    fc = frame[frame["kind"] == "forecast"]
    hist = frame[frame["kind"] == "history"]
    if len(hist):
        fig.add_bar(x=hist["park_date"], y=hist["wti"], name="observed / backfilled",
                    marker_color=theme.BLUE[3])
    if len(fc):
        fig.add_bar(x=fc["park_date"], y=fc["wti"], name="forecast", marker_color=theme.BLUE[1],
                    error_y={"type": "data", "symmetric": False,
                             "array": (fc["wti_high"] - fc["wti"]).tolist(),
                             "arrayminus": (fc["wti"] - fc["wti_low"]).tolist(),
                             "color": theme.PINK[2]},
                    hovertext=[f"level {t}" for t in fc["crowd_text"]])
    fig.update_layout(yaxis={"title": "minutes"}, xaxis={"type": "date",
                                                          "tickformat": "%d %b"})
    return fig


def _link(text: str, park: str, month: date, id_: str) -> dcc.Link:
    return dcc.Link(text, href=f"{PATH}?park={park}&month={month:%Y-%m}", id=id_)


def layout(ctx: Context, query: dict) -> html.Div:
    parks = published_parks(ctx.home)
    if not parks:
        return theme.card(TITLE, theme.empty("no published forecast yet: run the pipeline"))
    park = (query.get("park") or parks[0]).upper()
    park = park if park in parks else parks[0]
    reader = reader_of(ctx.home)
    days = reader.days(park)
    try:
        first, last = reader.horizon(park)
    except NotFound:
        first = last = days.index.max()
    as_of = ctx.as_of()
    month = _month(query.get("month")) or (as_of if first <= as_of <= last else first).replace(
        day=1)
    end = _shift(month, 1) - timedelta(days=1)
    frame = days[(days["park_date"] >= month) & (days["park_date"] <= end)]
    scale = crowd.load_scale(published.scale_file(ctx.home, park))
    lo, hi = max(month, first), min(end, last)
    downloads = [html.Span("Download this month: ")]
    if lo <= hi:
        downloads += [html.A(f"forecast {fmt.upper()}", href=download_url(
            park, "forecast", fmt, lo, hi), id=f"cal-dl-forecast-{fmt}") for fmt in
            ("csv", "parquet")]
    downloads += [html.A(f"calendar {fmt.upper()}", href=download_url(
        park, "calendar", fmt, month, end), id=f"cal-dl-calendar-{fmt}") for fmt in
        ("csv", "parquet")]
    scale_text = ("no scale yet (fewer than 28 days of history)" if scale is None else
                  f"Scale: the deciles of {scale.history_days} days of {park}'s daily WTI "
                  f"({scale.history_first} .. {scale.history_last}), frozen "
                  f"{scale.built_at[:10]}{PROVISIONAL if scale.provisional else ''}. "
                  "A forecast day shows its level and, below it, the range of its band.")
    return html.Div([
        theme.card(f"{TITLE}: {park}, {month:%B %Y}", html.Div([
            html.Div([dcc.Link(p, href=f"{PATH}?park={p}&month={month:%Y-%m}",
                               id=f"cal-park-{p}") for p in parks], className="cal-links"),
            html.Div([_link("◀ previous month", park, _shift(month, -1), "cal-prev"),
                      _link("next month ▶", park, _shift(month, 1), "cal-next")],
                     className="cal-links"),
        ], className="bb-controls"), _grid(month, days),
            html.P(scale_text, id="cal-scale", className="bb-empty"),
            html.Div(downloads, className="cal-links", id="cal-downloads")),
        theme.card("Daily WTI", dcc.Graph(id="cal-wti", figure=_figure(frame, park, month),
                                          config={"displaylogo": False})),
    ])


def register(app, ctx: Context) -> None:
    add_download_routes(app.server, ctx.home)

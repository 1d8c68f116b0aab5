"""Page 3, wait-time curves: one entity on one park day (past or future): observed POSTED /
ACTUAL / PRIORITY, backfilled ACTUAL, forecast ACTUAL with its p10-p90 band and forecast POSTED,
and on the park's today the remaining slots updated from the live POSTED readings beside the
morning's curve (lib.live.same_day; BAMBAM_SAME_DAY_UPDATE); time-of-day and day-of-week
profiles; the park's WTI that day and over the weeks around it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from bambam_assets.dashboard import data_curves as dc
from bambam_assets.dashboard import theme
from bambam_assets.dashboard.context import Context
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import PARK_DAY_START_HOUR

PATH = "/curves"
TITLE = "Wait-time curves"
FUTURE_DAYS = 60  # the picker reaches this far past the as-of date even without forecasts
DOW = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
OBS_STYLE = {"POSTED": (theme.BLUE[2], "circle"), "ACTUAL": (theme.BLUE[0], "diamond"),
             "PRIORITY": (theme.BLUE[1], "square")}
FIGURES = ["curve-main", "curve-tod", "curve-dow", "curve-wti-day", "curve-wti-weeks"]


def _parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _choices(ctx: Context) -> pd.DataFrame | None:
    return ctx.store.read("entity_choices", dc.entity_choices, ttl_s=30).value


def _default_day(ctx: Context, row: pd.Series) -> date:
    as_of, first = ctx.as_of(), row["first_park_date"]
    latest = row["latest_park_date"]
    if pd.notna(first) and first.date() <= as_of:
        return as_of if pd.isna(latest) or latest.date() >= as_of else latest.date()
    return as_of


def _is_today(tz: str, day: date, now: datetime) -> bool:
    """Whether `day` is the park day holding `now` (the 6 AM rule, on the park's clock `tz`)."""
    return (now.astimezone(ZoneInfo(tz)) - timedelta(hours=PARK_DAY_START_HOUR)).date() == day


def _day_data(ctx: Context, entity: str, park: str, day: date, tz: str,
              now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    today = settings.same_day_update() and _is_today(tz, day, now)

    def q(conn):
        return {"obs": dc.observations(conn, entity, day, tz),
                "hours": dc.park_hours(conn, park, day, tz),
                "wti": dc.wti_day(conn, park, day),
                "wti_weeks": dc.wti_window(conn, park, day),
                "readings": dc.posted_readings(conn, entity, day) if today else None}
    res = ctx.store.read(("curve_day", entity, day, today), q)
    out = dict(res.value or {})
    out["note"] = res.note
    out["forecast"] = dc.forecast_day(ctx.home, entity, day, tz)
    out["backfill"] = dc.backfill_day(ctx.home, entity, day, tz)
    # today: the morning's curve from now on, updated from the POSTED readings so far
    out["updated"] = dc.same_day_curve(ctx.home, entity, day, tz, out.get("readings"), now) \
        if today else None
    return out


def _main_figure(d: dict, entity: str, day: date):
    obs, fc, bf = d.get("obs"), d.get("forecast"), d.get("backfill")
    if all(x is None or x.empty for x in (obs, fc, bf)):
        return theme.empty_figure(f"no observations or forecast for {entity} on {day}", 380)
    fig = theme.figure(f"{entity} on {day:%a %Y-%m-%d}", height=380)
    if fc is not None and not fc.empty:
        fig.add_scatter(x=fc["local_time"], y=fc["actual_p10"], mode="lines", line_width=0,
                        showlegend=False, hoverinfo="skip", name="p10")
        fig.add_scatter(x=fc["local_time"], y=fc["actual_p90"], mode="lines", line_width=0,
                        fill="tonexty", fillcolor="rgba(255,177,201,0.45)",
                        name="forecast p10–p90")
        fig.add_scatter(x=fc["local_time"], y=fc["actual_predicted"], mode="lines",
                        name="forecast ACTUAL", line={"color": theme.PINK[2], "width": 2.5})
        fig.add_scatter(x=fc["local_time"], y=fc["posted_predicted"], mode="lines",
                        name="forecast POSTED", line={"color": theme.PINK[3], "dash": "dot"})
    upd = d.get("updated")
    if upd is not None and not upd[0].empty and upd[1].ratio is not None:
        rest, dev = upd
        fig.add_scatter(x=rest["local_time"], y=rest["actual_updated"], mode="lines",
                        name=f"updated ACTUAL (live POSTED ×{dev.ratio:.2f})",
                        line={"color": theme.NAVY, "width": 2.5, "dash": "dash"})
    if bf is not None and not bf.empty:
        fig.add_scatter(x=bf["local_time"], y=bf["actual"], mode="lines", name="backfilled ACTUAL",
                        line={"color": theme.BLUE[3], "dash": "dash", "width": 2})
    if obs is not None:
        for kind, part in obs.groupby("wait_time_type", sort=False):  # at most three types
            color, symbol = OBS_STYLE.get(kind, (theme.BLUE[4], "circle"))
            fig.add_scatter(x=part["local_time"], y=part["wait_time_minutes"], mode="markers",
                            name=f"observed {kind}", marker={"color": color, "symbol": symbol,
                                                             "size": 7})
    hours = d.get("hours")
    if hours is not None and not hours.empty and pd.notna(hours.loc[0, "opening"]):
        fig.add_vrect(x0=hours.loc[0, "opening"], x1=hours.loc[0, "closing"], layer="below",
                      fillcolor=theme.BLUE[5], line_width=0)
    fig.update_layout(yaxis={"title": "minutes"})
    return fig


def _profile_figures(ctx: Context, entity: str, tz: str):
    def q(conn):
        return dc.time_of_day_profile(conn, entity, tz), dc.day_of_week_profile(conn, entity)
    res = ctx.store.read(("profiles", entity), q, ttl_s=60)
    tod, dow = res.value or (None, None)
    figs = []
    for prof, col, title, labels in ((tod, "hour", "By hour of day", None),
                                     (dow, "dow", "By day of week", DOW)):
        if prof is None or prof.empty:
            figs.append(theme.empty_figure(height=280))
            continue
        fig = theme.figure(f"{title} (mean observed minutes)", height=280)
        for kind, part in prof.groupby("wait_time_type", sort=False):  # at most three types
            x = part[col] if labels is None else np.array(labels)[part[col].astype(int) - 1]
            fig.add_scatter(x=x, y=part["mean_minutes"], mode="lines+markers", name=kind,
                            line_color=OBS_STYLE.get(kind, (theme.BLUE[4],))[0])
        figs.append(fig)
    return figs


def _wti_figures(d: dict, park: str, day: date):
    wti, weeks = d.get("wti"), d.get("wti_weeks")
    if wti is None or wti.empty:
        day_fig = theme.empty_figure(f"no WTI for {park} on {day}", 280)
    else:
        day_fig = theme.figure(f"{park} WTI on {day}", 280)
        day_fig.add_scatter(x=wti["slot"], y=wti["wti"], mode="lines", name="WTI",
                            line_color=theme.BLUE[1])
        day_fig.update_layout(xaxis={"nticks": 12})
    if weeks is None or weeks.empty:
        return day_fig, theme.empty_figure(f"no daily WTI for {park} around {day}", 280)
    fig = theme.figure(f"{park} daily WTI, {day - timedelta(weeks=3)} … "
                       f"{day + timedelta(weeks=3)}", 280)
    fig.add_scatter(x=weeks["park_date"], y=weeks["p10"], mode="lines", line_width=0,
                    showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=weeks["park_date"], y=weeks["p90"], mode="lines", line_width=0,
                    fill="tonexty", fillcolor="rgba(155,196,242,0.5)", name="p10–p90")
    fig.add_scatter(x=weeks["park_date"], y=weeks["wti"], mode="lines+markers", name="WTI",
                    line_color=theme.BLUE[0])
    chosen = weeks[weeks["park_date"] == pd.Timestamp(day)]
    fig.add_scatter(x=chosen["park_date"], y=chosen["wti"], mode="markers", name="chosen day",
                    marker={"color": theme.PINK[2], "size": 13})
    return day_fig, fig


def figures(ctx: Context, entity: str, day: date, now: datetime | None = None) -> tuple:
    """The five figures of the page and the status note, for one entity and day (`now`: the
    current instant, which makes a park's today show the same-day update; default the clock)."""
    entity = dc.checked_entity(entity)
    choices = _choices(ctx)
    row = choices[choices["entity_code"] == entity] if choices is not None else pd.DataFrame()
    park = row["park_code"].iloc[0] if not row.empty else None
    tz = dc.park_tz(park, entity)
    park = park or "?"
    d = _day_data(ctx, entity, park, day, tz, now)
    tod, dow = _profile_figures(ctx, entity, tz)
    wti_day, wti_weeks = _wti_figures(d, park, day)
    return _main_figure(d, entity, day), tod, dow, wti_day, wti_weeks, d["note"]


def graph(id_: str, fig) -> dcc.Graph:
    return dcc.Graph(id=id_, figure=fig, config={"displayModeBar": False})


def layout(ctx: Context, query: dict) -> html.Div:
    choices = _choices(ctx)
    if choices is None or choices.empty:
        return theme.card(TITLE, theme.empty("no entities yet: run the pipeline"))
    try:
        entity = dc.checked_entity(query.get("entity") or choices["entity_code"].iloc[0])
    except ValueError:
        entity = choices["entity_code"].iloc[0]
    if not (choices["entity_code"] == entity).any():
        entity = choices["entity_code"].iloc[0]
    row = choices[choices["entity_code"] == entity].iloc[0]
    day = _parse_day(query.get("date")) or _default_day(ctx, row)
    span = dc.forecast_dates(ctx.home, entity)
    max_day = max(ctx.as_of() + timedelta(days=FUTURE_DAYS), span[1] if span else date.min)
    parks = sorted(choices["park_code"].dropna().unique())
    in_park = choices[choices["park_code"] == row["park_code"]]
    main, tod, dow, wti_day, wti_weeks, note = figures(ctx, entity, day)
    return html.Div([
        theme.card("Choose", html.Div([
            dcc.Dropdown(id="curve-park", options=parks, value=row["park_code"], clearable=False),
            dcc.Dropdown(id="curve-entity", value=entity, clearable=False, options=[
                {"label": f"{c} {n}", "value": c}
                for c, n in zip(in_park["entity_code"], in_park["entity_name"], strict=True)]),
            html.Button("◀ day", id="curve-prev"),
            dcc.DatePickerSingle(id="curve-date", date=day.isoformat(),
                                 min_date_allowed=row["first_park_date"].date()
                                 if pd.notna(row["first_park_date"]) else None,
                                 max_date_allowed=max_day, display_format="YYYY-MM-DD"),
            html.Button("day ▶", id="curve-next"),
        ], className="bb-controls"), html.Span(note, id="curve-note", className="bb-note")),
        theme.card("Wait times over the park day (park local time)", graph("curve-main", main)),
        html.Div([theme.card("Time-of-day profile", graph("curve-tod", tod)),
                  theme.card("Day-of-week profile", graph("curve-dow", dow))], className="bb-row"),
        html.Div([theme.card("Park WTI that day", graph("curve-wti-day", wti_day)),
                  theme.card("Park WTI, surrounding weeks", graph("curve-wti-weeks", wti_weeks))],
                 className="bb-row"),
    ])


def register(app, ctx: Context) -> None:
    @app.callback(Output("curve-entity", "options"), Output("curve-entity", "value"),
                  Input("curve-park", "value"), State("curve-entity", "value"),
                  prevent_initial_call=True)
    def _park(park, current):
        choices = _choices(ctx)
        if choices is None:
            raise PreventUpdate
        in_park = choices[choices["park_code"] == park]
        options = [{"label": f"{c} {n}", "value": c}
                   for c, n in zip(in_park["entity_code"], in_park["entity_name"], strict=True)]
        keep = current if current in set(in_park["entity_code"]) else (
            in_park["entity_code"].iloc[0] if len(in_park) else None)
        return options, keep

    @app.callback(Output("curve-date", "date"), Input("curve-prev", "n_clicks"),
                  Input("curve-next", "n_clicks"), State("curve-date", "date"),
                  prevent_initial_call=True)
    def _step(_prev, _next, current):
        from dash import ctx as trigger

        day = _parse_day(current)
        if day is None:
            raise PreventUpdate
        step = -1 if trigger.triggered_id == "curve-prev" else 1
        return (day + timedelta(days=step)).isoformat()

    @app.callback(*[Output(f, "figure") for f in FIGURES], Output("curve-note", "children"),
                  Input("curve-entity", "value"), Input("curve-date", "date"),
                  prevent_initial_call=True)
    def _update(entity, day_text):
        day = _parse_day(day_text)
        if not entity or day is None:
            raise PreventUpdate
        try:
            return figures(ctx, entity, day)
        except ValueError as exc:  # an entity code that is not one: nothing is queried
            return (*[theme.empty_figure(str(exc))] * len(FIGURES), "")

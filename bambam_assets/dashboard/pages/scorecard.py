"""Page "How we did": past forecast vintages against the ACTUAL waits that arrived since
(forecast_scorecard, lib.forecasts.scorecard): MAE, bias and p10-p90 band coverage by park and
horizon, and the entities whose recent error drifted above their usual level."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from dash import dcc, html

from bambam_assets.dashboard import theme
from bambam_assets.dashboard.context import Context
from bambam_assets.lib.forecasts import scorecard

PATH = "/scorecard"
TITLE = "How we did"
WINDOW_DAYS = 30  # target days shown: the last month of scored days
HORIZON_NAMES = {1: "1 day", 7: "1 week", 30: "1 month", 60: "2 months"}


def _horizon_figure(df: pd.DataFrame | None):
    if df is None or df.empty:
        return theme.empty_figure("no scored forecast yet: vintages are scored once their days "
                                  "have passed")
    fig = theme.figure(f"MAE by horizon, last {WINDOW_DAYS} scored days (minutes)")
    for i, (park, part) in enumerate(df.groupby("park_code")):
        fig.add_bar(x=[HORIZON_NAMES.get(h, f"{h} d") for h in part["horizon_days"]],
                    y=part["mae"], name=park, marker_color=theme.BLUE[i % len(theme.BLUE)])
    fig.update_layout(barmode="group", yaxis={"title": "MAE (minutes)"})
    return fig


def layout(ctx: Context, query: dict) -> html.Div:
    since = ctx.as_of() - timedelta(days=WINDOW_DAYS)
    res = ctx.store.read(("scorecard", since), lambda c: scorecard.summary(c, since=since))
    drift = ctx.store.read("scorecard_drift", scorecard.drift)
    df = res.value
    shown = None
    if df is not None and not df.empty:
        shown = df.assign(horizon=df["horizon_days"].map(HORIZON_NAMES),
                          mae=df["mae"].round(2), bias=df["bias"].round(2),
                          band_coverage=(df["band_coverage"] * 100).round(1))
    return html.Div([
        theme.card("Forecast error by park and horizon",
                   dcc.Graph(id="score-horizon", figure=_horizon_figure(df)),
                   theme.table("score-table", shown,
                               ["park_code", "horizon", "n_obs", "mae", "bias",
                                "band_coverage"]) if shown is not None else theme.empty(),
                   note=res.note or "each day's forecast is kept at +1, +7, +30 and +60 days "
                   "and scored against the ACTUAL waits of those days; bias = forecast - "
                   "observed; band coverage = % of observed waits inside p10-p90"),
        theme.card("Entities whose recent error drifted",
                   theme.table("drift-table", drift.value.round(2))
                   if drift.value is not None and not drift.value.empty
                   else theme.empty("no entity's last 14 scored days are above 1.5x its usual "
                                    "error"), note=drift.note),
    ])


def register(app, ctx: Context) -> None:
    """No callbacks: the page is built whole on each visit."""

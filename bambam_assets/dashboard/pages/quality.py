"""Page 2, model quality: MAE / RMSE / naive MAE of each entity's current model (sortable,
filterable by park and tier), one entity's MAE over its versions, and models that got worse."""

from __future__ import annotations

import pandas as pd
from dash import Input, Output, dcc, html

from bambam_assets.dashboard import data, paging, theme
from bambam_assets.dashboard.context import Context
from bambam_assets.lib.core.parks import TIER_RANK

PATH = "/quality"
TITLE = "Model quality"
TABLE_COLUMNS = ["entity_code", "entity_name", "park_code", "tier", "version", "kind", "mae",
                 "rmse", "naive_mae", "skill", "holdout_mae", "trained_at", "decision"]


def _filtered(df: pd.DataFrame, parks: list[str] | None, tiers: list[str] | None) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    if parks:
        keep &= df["park_code"].isin(parks)
    if tiers:
        keep &= df["tier"].isin(tiers)
    return df[keep]


def _mae_figure(df: pd.DataFrame):
    """One point per entity, model MAE against the naive baseline's: below the diagonal the
    model beats it. A labelled bar per entity took the browser over a second to lay out at the
    real estate's 1,694 entities; points cost the same at any count and show the same thing."""
    if df is None or df.empty:
        return theme.empty_figure()
    shown = df.dropna(subset=["mae", "naive_mae"])
    if shown.empty:
        return theme.empty_figure()
    beats = int((shown["mae"] < shown["naive_mae"]).sum())
    fig = theme.figure(f"Model MAE vs the naive baseline's (minutes): {beats} of {len(shown)} "
                       "entities beat it")
    top = float(max(shown["mae"].max(), shown["naive_mae"].max()))
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", name="model = naive",
                    line={"color": theme.PINK[1], "dash": "dot"}, hoverinfo="skip")
    fig.add_scatter(x=shown["naive_mae"], y=shown["mae"], mode="markers", name="entity",
                    text=shown["entity_code"], marker={"color": theme.BLUE[1], "size": 6},
                    hovertemplate="%{text}: model %{y:.1f}, naive %{x:.1f}<extra></extra>")
    fig.update_layout(xaxis={"title": "naive MAE"}, yaxis={"title": "model MAE"})
    return fig


def _versions_figure(hist: pd.DataFrame | None, entity: str | None):
    if hist is None or hist.empty:
        return theme.empty_figure("choose an entity" if not entity else theme.NO_DATA)
    fig = theme.figure(f"{entity}: MAE over model versions")
    fig.add_scatter(x=hist["version"], y=hist["holdout_mae"], mode="lines+markers",
                    name="holdout MAE", line_color=theme.BLUE[1])
    fig.add_scatter(x=hist["version"], y=hist["naive_mae"], mode="lines", name="naive MAE",
                    line={"color": theme.PINK[1], "dash": "dot"})
    rejected = hist[~hist["promoted"].fillna(False).astype(bool)]
    fig.add_scatter(x=rejected["version"], y=rejected["holdout_mae"], mode="markers",
                    name="rejected", marker={"color": theme.PINK[3], "symbol": "x", "size": 11})
    fig.update_layout(xaxis={"title": "version", "dtick": 1}, yaxis={"title": "minutes"})
    return fig


def _worse_table(worse: pd.DataFrame | None):
    if worse is None:
        return theme.empty()
    if worse.empty:
        return theme.empty("no entity's newest model is worse than its previous one")
    return paging.table("worse-table", _worse_shown(worse))


def _worse_shown(worse: pd.DataFrame) -> pd.DataFrame:
    shown = worse.assign(pct=(worse["pct"] * 100).round(1))
    return shown.rename(columns={"pct": "worse_by_pct", "delta": "worse_by_min"})


def _versions(ctx: Context, entity: str | None):
    if not entity:
        return _versions_figure(None, None)
    res = ctx.store.read(("mae_history", entity), lambda c: data.mae_history(c, entity))
    return _versions_figure(res.value, entity)


def layout(ctx: Context, query: dict) -> html.Div:
    res = ctx.store.read("model_quality", data.model_quality)
    worse = ctx.store.read("worse_models", data.worse_models)
    evals = ctx.store.read("retrain_evaluations", data.retrain_evaluations)
    df = res.value
    if df is None:
        return theme.card(TITLE, theme.empty("no models yet: run the pipeline"), note=res.note)
    parks = sorted(df["park_code"].dropna().unique())
    tiers = sorted(df["tier"].unique(), key=lambda t: TIER_RANK.get(t, 99))
    entity = query.get("entity") or (df["entity_code"].iloc[0] if len(df) else None)
    return html.Div([
        theme.card("Current models", html.Div([
            dcc.Dropdown(id="quality-park", options=parks, multi=True, placeholder="all parks"),
            dcc.Dropdown(id="quality-tier", options=tiers, multi=True, placeholder="all tiers"),
        ], className="bb-controls"),
            paging.table("quality-table", df, TABLE_COLUMNS, filterable=True,
                        style_data_conditional=[{
                            "if": {"filter_query": "{skill} < 0", "column_id": "skill"},
                            "color": theme.PINK[3], "fontWeight": "600"}]),
            note=res.note),
        html.Div([
            theme.card("MAE per entity vs naive",
                       dcc.Graph(id="quality-mae", figure=_mae_figure(df))),
            theme.card("MAE over versions",
                       dcc.Dropdown(id="quality-entity", options=list(df["entity_code"]),
                                    value=entity, clearable=False),
                       dcc.Graph(id="quality-versions", figure=_versions(ctx, entity))),
        ], className="bb-row"),
        theme.card("Newest model worse than the previous one", _worse_table(worse.value),
                   note=worse.note),
        theme.card("Retraining evaluations",
                   paging.table("retrain-table", evals.value) if evals.value is not None
                   and not evals.value.empty else theme.empty(), note=evals.note),
    ])


def register(app, ctx: Context) -> None:
    def current(parks=None, tiers=None) -> pd.DataFrame | None:
        df = ctx.store.read("model_quality", data.model_quality).value
        return None if df is None else _filtered(df, parks, tiers)

    def worse() -> pd.DataFrame | None:
        df = ctx.store.read("worse_models", data.worse_models).value
        return None if df is None else _worse_shown(df)

    paging.register(app, "quality-table", current, TABLE_COLUMNS,
                    extra_inputs=[Input("quality-park", "value"), Input("quality-tier", "value")])
    paging.register(app, "worse-table", worse)
    paging.register(app, "retrain-table",
                    lambda: ctx.store.read("retrain_evaluations", data.retrain_evaluations).value)

    @app.callback(Output("quality-mae", "figure"),
                  Input("quality-park", "value"), Input("quality-tier", "value"),
                  prevent_initial_call=True)
    def _filter(parks, tiers):
        shown = current(parks, tiers)
        return theme.empty_figure() if shown is None else _mae_figure(shown)

    @app.callback(Output("quality-versions", "figure"), Input("quality-entity", "value"),
                  prevent_initial_call=True)
    def _entity(entity):
        return _versions(ctx, entity)

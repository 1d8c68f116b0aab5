"""Page 1, pipeline status: the current (or last) run, its step and progress, ETA, alerts (failed
runs, freshness failures: lib/core/alerts.py), the last run of each asset group, and failures.
Polls every few seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from dash import Input, Output, State, dcc, html, no_update

from bambam_assets.dashboard import data, runs, theme
from bambam_assets.dashboard.context import Context
from bambam_assets.lib.core import alerts
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.progress import read_progress

PATH = "/"
TITLE = "Pipeline status"
POLL_MS = 2000
STATUS_COLOR = {"SUCCESS": theme.BLUE[1], "FAILURE": theme.PINK[3], "CANCELED": theme.PINK[1]}


def _kpi(label: str, value: str, id_: str | None = None) -> html.Span:
    kwargs = {"id": id_} if id_ else {}
    return html.Span([html.B(value, **kwargs), label], className="bb-kpi")


def _current_card(ctx: Context, all_runs: pd.DataFrame, now: datetime) -> html.Div:
    run = runs.current_run(all_runs)
    doc = read_progress(ctx.home)
    steps = runs.progress_steps(doc, now)
    if run is None and steps.empty:
        return theme.card("Current run", theme.empty("no run yet: start one with `bambam run`"))
    kpis = []
    if run is not None:
        history = runs.past_durations(all_runs, run["selection"], run["run_id"])
        running = run["status"] in runs.RUNNING
        eta = runs.eta_from_history(history, run["duration_s"] or 0) if running else None
        kpis += [_kpi("run", run["run_id"][:8]), _kpi("status", run["status"], "run-status"),
                 _kpi("started", run["started_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
                      if pd.notna(run["started_at"]) else "not started"),
                 _kpi("elapsed" if running else "took", runs.fmt_duration(run["duration_s"])),
                 _kpi("ETA (past runs)", runs.fmt_duration(eta) if running else "—")]
    children = [html.Div(kpis)]
    if not steps.empty:
        same_run = run is None or doc.get("run_id") == run["run_id"]
        step = steps[steps["step"] == doc.get("current_step")].iloc[-1] \
            if (steps["step"] == doc.get("current_step")).any() else steps.iloc[-1]
        children.append(html.Div([
            _kpi("current step", str(step["step"]), "current-step"),
            _kpi(f"{step['state']}{'' if same_run else ' (earlier run)'}", step["label"],
                 "step-progress"),
            _kpi("last entity", str(step["entity"] or "—")),
            _kpi("step ETA", runs.fmt_duration(step["eta_s"])),
        ]))
        children.append(dcc.Graph(id="status-progress", figure=_progress_figure(steps),
                                  config={"displayModeBar": False}))
    return theme.card("Current run", *children)


def _progress_figure(steps: pd.DataFrame):
    fig = theme.figure(height=60 + 40 * len(steps))
    total = steps["total"].where(steps["total"] > 0, 1)
    fig.add_bar(y=steps["step"], x=steps["done"] / total * 100, orientation="h",
                marker_color=theme.BLUE[1], text=steps["label"], textposition="inside",
                name="done %")
    fig.update_layout(xaxis={"range": [0, 100], "title": "% done"}, showlegend=False)
    return fig


ALERTS_SHOWN = 20


def _alerts_card(ctx: Context) -> html.Div:
    """The newest alerts of status/alerts.jsonl (written by the alert sensors), newest first."""
    rows = alerts.read_alerts(ctx.home, limit=ALERTS_SHOWN)
    if not rows:
        return theme.card("Alerts", theme.empty("no alert: no failed run, no freshness failure"),
                          id_="alerts-card")
    frame = pd.DataFrame(rows).reindex(columns=alerts.COLUMNS)
    return theme.card("Alerts", theme.table("alerts", frame, alerts.COLUMNS),
                      note=f"{len(rows)} newest", id_="alerts-card")


def _alerts_signature(ctx: Context) -> tuple[int, int] | None:
    path = HomePaths(ctx.home).alerts
    if not path.exists():
        return None
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _runs_figure(all_runs: pd.DataFrame):
    recent = all_runs.head(30).iloc[::-1]
    if recent.empty:
        return theme.empty_figure("no runs yet")
    fig = theme.figure("Recent runs (duration, s)", height=280)
    for status, part in recent.groupby("status", sort=False):  # a few outcomes
        fig.add_bar(x=part["started_at"].dt.tz_convert(None), y=part["duration_s"],
                    name=status, marker_color=STATUS_COLOR.get(status, theme.BLUE[3]),
                    hovertext=part["selection"])
    return fig


def content(ctx: Context) -> html.Div:
    now = datetime.now(UTC)
    all_runs = ctx.recent_runs()
    groups = runs.last_run_per_group(all_runs, ctx.groups())
    groups["took"] = groups["duration_s"].map(runs.fmt_duration)
    failed_ids = all_runs.loc[all_runs["status"] == "FAILURE", "run_id"].tolist()
    instance = ctx.instance()
    step_errors = (runs.run_step_errors(instance, failed_ids, limit=3) if failed_ids
                   else pd.DataFrame(columns=["run_id", "step", "error"]))
    failures = ctx.store.read("model_failures", data.model_failures)
    return html.Div([
        _current_card(ctx, all_runs, now),
        _alerts_card(ctx),
        html.Div([
            theme.card("Last run per asset group",
                       theme.table("group-runs", groups, ["group", "status", "started_at",
                                                          "took", "run_id"])
                       if not groups.empty else theme.empty()),
            theme.card("Run history", dcc.Graph(id="status-runs", figure=_runs_figure(all_runs),
                                                config={"displayModeBar": False})),
        ], className="bb-row"),
        theme.card("Failed steps (latest failed runs)",
                   theme.table("step-errors", step_errors) if not step_errors.empty
                   else theme.empty("no failed runs")),
        theme.card("Entity training failures",
                   theme.table("model-failures", failures.value)
                   if failures.value is not None and not failures.value.empty
                   else theme.empty("no failures" if failures.value is not None else theme.NO_DATA),
                   note=failures.note),
        html.Div(f"updated {now.astimezone().strftime('%H:%M:%S')}", className="bb-empty"),
    ])


def signature(ctx: Context) -> tuple[str, bool]:
    """What the page shows changes only when this does (runs, progress, failures): polls that
    find it unchanged leave the page alone (no redraw, tables keep their sort)."""
    all_runs = ctx.recent_runs()
    head = all_runs.head(1)[["run_id", "status"]].to_numpy().tolist()
    doc = read_progress(ctx.home) or {}
    failures = ctx.store.read("model_failures", data.model_failures)
    n_fail = None if failures.value is None else len(failures.value)
    running = bool(head) and head[0][1] in runs.RUNNING
    return repr((head, len(all_runs), doc.get("updated_at"), n_fail, failures.stale,
                 _alerts_signature(ctx))), running


def layout(ctx: Context, _query: dict) -> html.Div:
    return html.Div([dcc.Interval(id="status-poll", interval=POLL_MS),
                     dcc.Store(id="status-signature", data=signature(ctx)[0]),
                     html.Div(content(ctx), id="status-content")])


def register(app, ctx: Context) -> None:
    @app.callback(Output("status-content", "children"), Output("status-signature", "data"),
                  Input("status-poll", "n_intervals"), State("status-signature", "data"),
                  prevent_initial_call=True)
    def _poll(_n, previous):
        current, running = signature(ctx)
        # a running run's elapsed time and ETA move every poll: redraw while one runs
        if current == previous and not running:
            return no_update, no_update
        return content(ctx), current

"""Look and shared building blocks of the pages: the "Benedictus" palette (the legacy
mission-control page's), empty-state figures, status notes and tables."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from dash import dash_table, html

from bambam_assets.dashboard.store import Result

# Benedictus: darkest blue = good, darkest pink = urgent, white = neutral; navy background.
BLUE = ["#0A2F8F", "#305FD1", "#5A96EA", "#9BC4F2", "#C1DDFC", "#E9F4FF"]
PINK = ["#FFE0E9", "#FFB1C9", "#EB427B", "#A60038"]
NAVY = "#040C1F"
COLORWAY = [BLUE[1], PINK[2], BLUE[3], PINK[3], BLUE[0], PINK[1], BLUE[2]]
NO_DATA = "no data yet"

CSS = f"""
body {{ margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
       background: {BLUE[5]}; color: {NAVY}; }}
.bb-header {{ background: {NAVY}; color: white; padding: 10px 20px; display: flex;
             align-items: baseline; gap: 24px; flex-wrap: wrap; }}
.bb-header h1 {{ font-size: 20px; margin: 0; }}
.bb-header a {{ color: {BLUE[3]}; text-decoration: none; font-weight: 600; }}
.bb-header a:hover {{ color: white; }}
.bb-home {{ color: {BLUE[4]}; font-size: 12px; margin-left: auto; }}
.bb-page {{ padding: 12px 20px; }}
.bb-card {{ background: white; border-radius: 8px; padding: 12px 16px; margin-bottom: 14px;
           box-shadow: 0 1px 3px rgba(4,12,31,.15); }}
.bb-card h3 {{ margin: 0 0 8px 0; font-size: 16px; color: {BLUE[0]}; }}
.bb-row {{ display: flex; gap: 14px; flex-wrap: wrap; }}
.bb-row > .bb-card {{ flex: 1 1 420px; min-width: 0; }}
.bb-note {{ color: {PINK[3]}; font-size: 12px; }}
.bb-empty {{ color: #6b7280; font-style: italic; }}
.bb-kpi {{ display: inline-block; margin-right: 28px; }}
.bb-kpi b {{ display: block; font-size: 22px; color: {BLUE[0]}; }}
.bb-controls {{ display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }}
.bb-controls > div {{ min-width: 180px; }}
.bb-bad {{ color: {PINK[3]}; font-weight: 600; }}
.bb-good {{ color: {BLUE[0]}; font-weight: 600; }}
.cal-grid {{ border-collapse: separate; border-spacing: 4px; width: 100%; table-layout: fixed; }}
.cal-grid th {{ color: {BLUE[1]}; font-size: 13px; }}
.cal-grid td {{ height: 64px; border-radius: 6px; vertical-align: top; padding: 4px 6px;
               border: 1px solid #E5EAF2; }}
.cal-day {{ font-size: 12px; }}
.cal-level {{ font-size: 22px; font-weight: 700; text-align: center; }}
.cal-range {{ font-size: 11px; text-align: center; }}
.cal-links a {{ margin-right: 12px; }}
"""


def card(title: str, *children, note: str = "", id_: str | None = None) -> html.Div:
    """A titled panel; `note` (e.g. "as of 12:01:02 (warehouse busy)") shown beside the title."""
    head = [html.H3([title, " ", html.Span(note, className="bb-note stale-note") if note else ""])]
    kwargs = {"id": id_} if id_ else {}
    return html.Div(head + list(children), className="bb-card", **kwargs)


def empty(text: str = NO_DATA) -> html.Div:
    return html.Div(text, className="bb-empty no-data")


def note_of(*results: Result) -> str:
    """The first non-empty note of the results (busy / missing / error)."""
    return next((r.note for r in results if r.note), "")


def figure(title: str = "", height: int = 320) -> go.Figure:
    # no named template: copying "plotly_white" costs ~45 ms a figure; these few settings suffice
    fig = go.Figure(layout={"template": None})
    axis = {"gridcolor": "#E5EAF2", "linecolor": "#C9D3E3", "zerolinecolor": "#C9D3E3",
            "automargin": True}
    fig.update_layout(
        paper_bgcolor="white", plot_bgcolor="white", xaxis=axis, yaxis=axis,
        hovermode="closest", colorway=COLORWAY, height=height, title=title or None,
        margin={"l": 50, "r": 20, "t": 40 if title else 20, "b": 40},
        legend={"orientation": "h", "y": -0.18}, font={"size": 12}, showlegend=True,
    )
    return fig


def empty_figure(text: str = NO_DATA, height: int = 320) -> go.Figure:
    """A figure with no traces and a centred message (the page's "no data yet" state)."""
    fig = figure(height=height)
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, annotations=[{
        "text": text, "showarrow": False, "font": {"size": 15, "color": "#6b7280"},
        "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])
    return fig


def shown_times(s: pd.Series) -> pd.Series:
    """A datetime column as the tables show it: whole days as dates, aware times in UTC."""
    aware = getattr(s.dt, "tz", None) is not None
    s = s.dt.tz_convert("UTC") if aware else s
    whole_days = not aware and bool((s.dropna() == s.dropna().dt.normalize()).all())
    return s.dt.strftime("%Y-%m-%d" if whole_days else
                         "%Y-%m-%d %H:%M UTC" if aware else "%Y-%m-%d %H:%M")


def records(df: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-safe dicts for a DataTable (times as text, floats rounded,
    missing values as None); column by column, vectorized."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[col] = shown_times(s)
        elif pd.api.types.is_float_dtype(s):
            out[col] = s.round(3)
    return out.astype(object).where(out.notna(), None).to_dict("records")


def table(id_: str, df: pd.DataFrame, columns: Sequence[str] | None = None, page_size: int = 15,
          sortable: bool = True, filterable: bool = False, **kwargs) -> dash_table.DataTable:
    cols = list(columns or df.columns)
    numeric = set(df.select_dtypes("number").columns)
    options = {
        "sort_action": "native" if sortable else "none",
        "filter_action": "native" if filterable else "none",
        "style_table": {"overflowX": "auto"},
        "style_header": {"backgroundColor": BLUE[0], "color": "white", "fontWeight": "600"},
        "style_cell": {"fontFamily": "inherit", "fontSize": 13, "padding": "4px 8px",
                       "textAlign": "left", "maxWidth": 420, "overflow": "hidden",
                       "textOverflow": "ellipsis"},
    }
    return dash_table.DataTable(
        id=id_, data=records(df[cols]), page_size=page_size,
        columns=[{"name": c, "id": c, "type": "numeric" if c in numeric else "text"} for c in cols],
        **(options | kwargs),  # the caller's paging/sorting/filtering actions win
    )

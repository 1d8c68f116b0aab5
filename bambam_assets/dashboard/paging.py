"""Server-side paging, sorting and filtering of a DataTable: the browser gets one page.

A table with every row in the browser ("native" paging) costs its whole JSON and the table's
own sort and filter index on every load: at the real estate's 1,694 entities, /quality sent
700 KB of table rows to show 15 of them. A paged table sends one page; the callback registered
by `register` answers the table's page, sort and filter changes from the frame on the server
(the page's query through the store: its cached answer while fresh, the warehouse after).

The filter language is the one the table's filter row writes (`filter_query`): clauses
`{column} operator value` joined by ` && `, operators `=`, `!=`, `<`, `<=`, `>`, `>=` (also as
`eq`, `ne`, `lt`, `le`, `gt`, `ge`), `contains`, `datestartswith`, each with an optional `i`
(case-insensitive) or `s` (case-sensitive) prefix, and `is blank`. A clause on an unknown column
or with an operator outside that list raises `FilterError`; the table shows its message below
it (every paged table has that line: `error_id`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from dash import Input, Output, html

from bambam_assets.dashboard import theme

_CLAUSE = re.compile(r"^\{(?P<col>[^}]+)\}\s+(?:(?P<blank>is blank)|(?P<case>[is]?)"
                     r"(?P<op>contains|datestartswith|[<>]=?|!=|=|eq|ne|lt|le|gt|ge)"
                     r"(?:\s+|(?<=[<>=]))(?P<value>.*))$", re.S)
_SYMBOL = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class FilterError(ValueError):
    """A filter query this module does not understand."""


@dataclass(frozen=True)
class Clause:
    column: str
    op: str  # "=", "!=", "<", "<=", ">", ">=", "contains", "datestartswith", "is blank"
    text: str | None  # the value as written (quotes removed)
    case_sensitive: bool = True

    @property
    def number(self) -> float | None:
        try:
            return float(self.text)
        except (TypeError, ValueError):
            return None


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1].replace("\\" + text[0], text[0])
    return text


def parse_filter(query: str | None, columns: Sequence[str]) -> list[Clause]:
    """The clauses of a table's `filter_query` (empty: no filter)."""
    clauses = []
    for part in (query or "").split(" && "):
        part = part.strip()
        if not part:
            continue
        m = _CLAUSE.match(part)
        if m is None:
            raise FilterError(f"cannot filter by {part!r}")
        col = m["col"]
        if col not in columns:
            raise FilterError(f"no column {col!r} to filter by")
        if m["blank"]:
            clauses.append(Clause(col, "is blank", None))
            continue
        op = _SYMBOL.get(m["op"], m["op"])
        clauses.append(Clause(col, op, _unquote(m["value"]), case_sensitive=m["case"] != "i"))
    return clauses


def _mask(s: pd.Series, c: Clause) -> pd.Series:
    if c.op == "is blank":
        return s.isna() | (s.astype(str).str.strip() == "")
    if c.op in ("contains", "datestartswith"):
        text, needle = s.astype("string"), c.text
        if not c.case_sensitive:
            text, needle = text.str.lower(), needle.lower()
        hit = text.str.contains(needle, regex=False) if c.op == "contains" \
            else text.str.startswith(needle)
        return hit.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        if c.number is None:
            raise FilterError(f"{c.column} is a number: cannot compare it with {c.text!r}")
        left, value = s, c.number
    else:
        left, value = s.astype("string"), c.text
        if not c.case_sensitive:
            left, value = left.str.lower(), value.lower()
    hit = {"=": left == value, "!=": left != value, "<": left < value, "<=": left <= value,
           ">": left > value, ">=": left >= value}[c.op]
    return pd.Series(hit, index=s.index).fillna(c.op == "!=").astype(bool)


def page_of(df: pd.DataFrame, page_current: int | None, page_size: int,
            sort_by: list[dict] | None, filter_query: str | None,
            ) -> tuple[pd.DataFrame, int, int]:
    """One page of `df` filtered by `filter_query` and sorted by `sort_by` (the table's
    `[{"column_id": c, "direction": "asc"|"desc"}]`, first key first; missing values last),
    the page count and the page's number. A page past the end (the filter shrank the table) is
    the last page."""
    for clause in parse_filter(filter_query, list(df.columns)):
        col = df[clause.column]  # times are filtered as shown (whole days vs minutes, UTC)
        df = df[_mask(theme.shown_times(col) if pd.api.types.is_datetime64_any_dtype(col)
                      else col, clause)]
    keys = [s for s in (sort_by or []) if s.get("column_id") in df.columns]
    if keys:
        df = df.sort_values([s["column_id"] for s in keys],
                            ascending=[s.get("direction") != "desc" for s in keys],
                            na_position="last", kind="stable")
    pages = max(1, math.ceil(len(df) / page_size))
    current = min(max(int(page_current or 0), 0), pages - 1)
    return df.iloc[current * page_size:(current + 1) * page_size], pages, current


def error_id(id_: str) -> str:
    """The element under a paged table that explains a filter it cannot read."""
    return f"{id_}-error"


def table(id_: str, df: pd.DataFrame, columns: Sequence[str] | None = None, page_size: int = 15,
          filterable: bool = False, **kwargs) -> html.Div:
    """`theme.table` paged, sorted and filtered on the server (it holds the first page; the
    callback `register(app, id_, ...)` answers the rest), above its filter-error line."""
    cols = list(columns or df.columns)
    first, pages, _ = page_of(df[cols], 0, page_size, None, None)
    return html.Div([
        theme.table(id_, first, cols, page_size=page_size, page_action="custom",
                    page_current=0, page_count=pages, sort_action="custom",
                    sort_mode="single", sort_by=[],
                    filter_action="custom" if filterable else "none", filter_query="",
                    **kwargs),
        html.Div(id=error_id(id_)),
    ])


def register(app, id_: str, frame: Callable[..., pd.DataFrame | None],
             columns: Sequence[str] | None = None, extra_inputs: Sequence[Input] = ()) -> None:
    """Answer `id_`'s page, sort and filter changes with a page of `frame(*extra values)`
    (the extra inputs, e.g. a park dropdown, filter the frame first); a filter the module
    cannot read is explained under the table, with an empty page."""
    @app.callback(Output(id_, "data"), Output(id_, "page_count"), Output(id_, "page_current"),
                  Output(error_id(id_), "children"),
                  Input(id_, "page_current"), Input(id_, "page_size"),
                  Input(id_, "sort_by"), Input(id_, "filter_query"), *extra_inputs,
                  prevent_initial_call=True)
    def _page(page_current, page_size, sort_by, filter_query, *extra):
        df = frame(*extra)
        rows, pages, current, message = [], 1, 0, ""
        if df is not None and not df.empty:
            df = df[list(columns or df.columns)]
            try:
                shown, pages, current = page_of(df, page_current, page_size or 15, sort_by,
                                                filter_query)
                rows = theme.records(shown)
            except FilterError as exc:
                message = str(exc)
        return rows, pages, current, html.Span(message, className="bb-bad") if message else ""

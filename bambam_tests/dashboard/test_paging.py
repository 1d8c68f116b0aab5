"""Server-side paging of the dashboard's big tables (dashboard/paging.py), against a row-by-row
reference on small frames."""

from __future__ import annotations

import math
import operator

import numpy as np
import pandas as pd
import pytest

from bambam_assets.dashboard import paging

OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 57
    mae = rng.uniform(0, 30, n).round(2)
    mae[[3, 11, 40]] = np.nan
    return pd.DataFrame({
        "entity_code": [f"{p}{i:02d}" for i, p in enumerate(rng.choice(["MK", "ep", "AK"], n))],
        "tier": rng.choice(["critical", "high", "low"], n),
        "mae": mae,
        "trained_at": pd.to_datetime("2025-12-30 04:00", utc=True)
        + pd.to_timedelta(rng.integers(0, 72, n), unit="h"),
    })


def _reference(df: pd.DataFrame, clauses: list[tuple]) -> pd.DataFrame:
    """Row by row: keep a row when every clause holds, as the table's own filter row reads."""
    keep = []
    for _, row in df.iterrows():
        ok = True
        for col, op, value, case in clauses:
            v = row[col]
            if isinstance(v, pd.Timestamp):
                v = v.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
            if op == "is blank":
                ok &= v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == ""
            elif isinstance(v, float) and math.isnan(v):
                ok &= op == "!="
            elif op in ("contains", "datestartswith"):
                a, b = (str(v), str(value)) if case else (str(v).lower(), str(value).lower())
                ok &= (b in a) if op == "contains" else a.startswith(b)
            elif isinstance(v, float):
                ok &= OPS[op](v, float(value))
            else:
                a, b = (str(v), str(value)) if case else (str(v).lower(), str(value).lower())
                ok &= OPS[op](a, b)
        keep.append(ok)
    return df[keep]


@pytest.mark.parametrize("query, clauses", [
    ("{mae} > 12.5", [("mae", ">", 12.5, True)]),
    ("{mae} le 12.5 && {tier} = critical", [("mae", "<=", 12.5, True),
                                           ("tier", "=", "critical", True)]),
    ('{entity_code} icontains "mk"', [("entity_code", "contains", "mk", False)]),
    ("{entity_code} contains MK", [("entity_code", "contains", "MK", True)]),
    ("{entity_code} scontains ep", [("entity_code", "contains", "ep", True)]),
    ("{tier} != low", [("tier", "!=", "low", True)]),
    ("{mae} is blank", [("mae", "is blank", None, True)]),
    ("{trained_at} datestartswith 2025-12-31", [("trained_at", "datestartswith", "2025-12-31",
                                                 True)]),
    ("{trained_at} >= '2026-01-01 10:00 UTC'", [("trained_at", ">=", "2026-01-01 10:00 UTC",
                                                 True)]),
    ("{tier} i= HIGH", [("tier", "=", "HIGH", False)]),
])
def test_filter_matches_a_row_by_row_reference(frame, query, clauses) -> None:
    got, pages, current = paging.page_of(frame, 0, len(frame), None, query)
    want = _reference(frame, clauses)
    assert 0 < len(want) < len(frame), "a clause that keeps all or nothing tests little"
    assert got.index.tolist() == want.index.tolist()
    assert (pages, current) == (1, 0)


def test_pages_follow_the_sort_with_missing_values_last(frame) -> None:
    for direction in ("asc", "desc"):
        rows = []
        for n in range(4):
            page, pages, current = paging.page_of(
                frame, n, 15, [{"column_id": "mae", "direction": direction}], None)
            assert (pages, current) == (4, n)
            rows += page["mae"].tolist()
        known = frame["mae"].dropna().tolist()
        assert rows[:len(known)] == sorted(known, reverse=direction == "desc")
        assert all(math.isnan(v) for v in rows[len(known):]) and len(rows) == len(frame)


def test_a_page_past_the_filtered_end_is_the_last_page(frame) -> None:
    page, pages, current = paging.page_of(frame, 3, 15, None, "{tier} = critical")
    critical = frame[frame["tier"] == "critical"]
    assert pages == math.ceil(len(critical) / 15) and current == pages - 1
    assert page.index.tolist() == critical.index[current * 15:].tolist()
    empty, pages, current = paging.page_of(frame, 2, 15, None, "{tier} = none")
    assert empty.empty and (pages, current) == (1, 0)


@pytest.mark.parametrize("query, message", [
    ("{nope} > 1", "no column 'nope'"),
    ("{mae} > many", "mae is a number"),
    ("mae > 1", "cannot filter by"),
])
def test_a_filter_it_cannot_read_is_an_error_naming_it(frame, query, message) -> None:
    with pytest.raises(paging.FilterError, match=message):
        paging.page_of(frame, 0, 15, None, query)


def test_the_table_holds_only_its_first_page(frame) -> None:
    block = paging.table("t", frame, ["entity_code", "mae"], page_size=10, filterable=True)
    table, error_line = block.children
    assert error_line.id == paging.error_id("t")
    assert len(table.data) == 10 and table.page_count == 6
    assert table.page_action == table.sort_action == table.filter_action == "custom"
    assert [r["entity_code"] for r in table.data] == frame["entity_code"][:10].tolist()

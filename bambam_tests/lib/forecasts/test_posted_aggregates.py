"""Posted aggregates: weighted statistics by local hour, and every level of the fallback chain."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.forecasts import posted_aggregates as pa

NY = ZoneInfo("America/New_York")
AS_OF = date(2024, 6, 30)
YEAR_AGO = AS_OF - timedelta(days=365)


def _fact(code: str, day: date, hh: int, mm: int, kind: str, minutes: int | None) -> dict:
    local = datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)
    return {"entity_code": code, "park_code": "MK", "park_date": day,
            "observed_at": pd.Timestamp(local).tz_convert("UTC"), "wait_time_type": kind,
            "wait_time_minutes": minutes, "source_file": "t"}


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    schema.ensure_tables(c, ("fct_wait_times",))
    rows = [
        # MK1, group A (AS_OF and YEAR_AGO), local hour 10: w = 1, 0.5, 0.5
        _fact("MK1", AS_OF, 10, 15, "POSTED", 10),
        _fact("MK1", YEAR_AGO, 10, 20, "POSTED", 30),
        _fact("MK1", YEAR_AGO, 10, 40, "POSTED", 50),
        # MK1, group A, hour 14
        _fact("MK1", AS_OF, 14, 0, "POSTED", 70),
        # not POSTED, or after as_of: never counted
        _fact("MK1", AS_OF, 10, 30, "CLOSED", None),
        _fact("MK1", AS_OF, 10, 35, "ACTUAL", 500),
        _fact("MK1", AS_OF + timedelta(days=1), 10, 0, "POSTED", 900),
        # MK2 (another entity of the park), group B, hour 10 and hour 20
        _fact("MK2", date(2024, 6, 29), 10, 5, "POSTED", 22),
        _fact("MK2", date(2024, 6, 29), 20, 5, "POSTED", 43),
    ]
    frame = pd.DataFrame(rows)
    frame["wait_time_minutes"] = frame["wait_time_minutes"].astype("Int64")
    c.register("f", frame)
    c.execute("INSERT INTO fct_wait_times BY NAME SELECT * FROM f")
    cal = pd.DataFrame({"park_date": pd.to_datetime([AS_OF, YEAR_AGO, date(2024, 6, 29),
                                                     AS_OF + timedelta(days=1)]),
                        "date_group_id": ["A", "A", "B", "A"]})
    schema.replace_dimension(c, "dim_calendar", cal)
    return c


def _agg(conn, level: str) -> pd.DataFrame:
    return conn.execute("SELECT * FROM posted_aggregates WHERE level = ? "
                        "ORDER BY entity_code, date_group_id, hour", [level]).df()


def test_weighted_statistics_by_local_hour(conn) -> None:
    counts = pa.build_posted_aggregates(conn, AS_OF)
    assert counts == {"entity_dgid_hour": 4, "entity_dgid": 2, "entity_hour": 4, "entity": 2,
                      "park_hour": 3}
    top = _agg(conn, "entity_dgid_hour")
    mk1 = top[(top["entity_code"] == "MK1") & (top["hour"] == 10)].iloc[0]
    # sorted 10 (w 1), 30 (w .5), 50 (w .5): cumulative weight reaches half (1) at 10
    assert mk1["posted_median"] == 10
    assert mk1["posted_mean"] == pytest.approx((10 * 1 + 30 * 0.5 + 50 * 0.5) / 2)
    assert mk1["posted_median_unweighted"] == 30
    assert mk1["posted_mean_unweighted"] == 30
    assert mk1["posted_count"] == 3
    assert mk1["avg_recency_weight"] == pytest.approx(2 / 3)
    assert (mk1["min_park_date"].date(), mk1["max_park_date"].date()) == (YEAR_AGO, AS_OF)
    assert sorted(top["hour"].tolist()) == [10, 10, 14, 20]  # local hours, not UTC (14, 18, ...)
    park = _agg(conn, "park_hour").set_index("hour")
    assert park.loc[10, "posted_count"] == 4  # MK1 x3 + MK2: CLOSED/ACTUAL/after as_of excluded


def test_fallback_chain_answers_each_level_in_order(conn) -> None:
    pa.build_posted_aggregates(conn, AS_OF)
    keys = pd.DataFrame({
        "entity_code": ["MK1", "MK1", "MK1", "MK1", "MK9", "MK9", "MK8"],
        "park_code": ["MK", "MK", "MK", "MK", "MK", "MK", "MK"],
        "date_group_id": ["A", "A", "B", "B", "B", "B", "B"],
        "hour": [10, 15, 10, 16, 10, 3, 20],
    })
    out = pa.lookup_posted(conn, keys, no_park_level=["MK8"])
    assert out["posted_level"].tolist() == [
        "entity_dgid_hour", "entity_dgid", "entity_hour", "entity", "park_hour", None, None]
    # MK1/A (all hours): values 10 (w1), 30, 50 (w .5), 70 (w1) -> cum 1, 1.5 >= 1.5 at 30
    assert out["posted_value"].tolist()[:4] == [10, 30, 10, 30]
    # MK9 has no POSTED: the park's hour-10 weighted median; rounded to the nearest 5
    assert out["posted_value"].iloc[4] == 22
    assert out["posted_predicted"].tolist()[:5] == [10, 30, 10, 30, 20]
    assert out["posted_predicted"].iloc[5:].isna().all()
    assert out["entity_code"].tolist() == keys["entity_code"].tolist()  # order kept

"""Feature values on hand-made warehouse rows (in-memory DuckDB, tables as in docs/warehouse.md)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from bambam_assets.lib.core.schema import ensure_tables
from bambam_assets.lib.models.features import (
    FEATURES_WITH_POSTED,
    FEATURES_WITHOUT_POSTED,
    build_training_frame,
    target_counts,
)

AS_OF = date(2024, 7, 10)

DIM_DDL = [
    """CREATE TABLE dim_entity (entity_code VARCHAR, entity_name VARCHAR, park_code VARCHAR,
        fastpass_booth BOOLEAN, queue_type VARCHAR)""",
    """CREATE TABLE dim_calendar (park_date DATE, year INTEGER, month INTEGER, day INTEGER,
        day_of_week INTEGER, date_group_id VARCHAR)""",
    "CREATE TABLE dim_season (park_date DATE, season VARCHAR, season_year VARCHAR)",
    """CREATE TABLE dim_park_hours (park_code VARCHAR, park_date DATE,
        opening_time TIMESTAMPTZ, closing_time TIMESTAMPTZ,
        opening_time_with_emh TIMESTAMPTZ, closing_time_with_emh TIMESTAMPTZ,
        emh_morning BOOLEAN, emh_evening BOOLEAN, source VARCHAR, confidence DOUBLE,
        donor_date DATE)""",
]

# (entity, park, park_date, observed_at with offset, type, minutes)
FACTS = [
    # Tokyo: 00:30 local belongs to the previous park day; 10:15 local on an official day
    ("TDL01", "TDL", "2024-06-30", "2024-07-01 00:30:00+09:00", "ACTUAL", 15),
    ("TDL01", "TDL", "2024-07-01", "2024-07-01 10:15:00+09:00", "ACTUAL", 25),
    # Los Angeles, 2024-07-04 open 08:00, close 01:00 the next morning
    ("DL01", "DL", "2024-07-04", "2024-07-04 07:30:00-07:00", "ACTUAL", 5),
    ("DL01", "DL", "2024-07-04", "2024-07-04 12:00:00-07:00", "ACTUAL", 20),
    ("DL01", "DL", "2024-07-04", "2024-07-04 14:00:00-07:00", "ACTUAL", 35),
    ("DL01", "DL", "2024-07-04", "2024-07-04 16:00:00-07:00", "ACTUAL", 50),
    ("DL01", "DL", "2024-07-04", "2024-07-05 00:30:00-07:00", "ACTUAL", 10),
    ("DL01", "DL", "2024-07-03", "2024-07-03 12:00:00-07:00", "ACTUAL", 30),  # no hours that day
    ("DL01", "DL", "2024-07-04", "2024-07-04 11:05:00-07:00", "POSTED", 10),
    ("DL01", "DL", "2024-07-04", "2024-07-04 11:51:00-07:00", "POSTED", 30),  # 9 min before
    ("DL01", "DL", "2024-07-04", "2024-07-04 13:49:00-07:00", "POSTED", 44),  # 11 min before
    ("DL01", "DL", "2024-07-04", "2024-07-04 14:11:00-07:00", "POSTED", 55),  # 11 min after
    ("DL01", "DL", "2024-07-04", "2024-07-04 15:20:00-07:00", "POSTED", 20),
    ("DL01", "DL", "2024-07-04", "2024-07-04 15:52:00-07:00", "POSTED", 60),  # 8 min before
    ("DL01", "DL", "2024-07-04", "2024-07-04 16:03:00-07:00", "POSTED", 70),  # 3 min after
    ("DL01", "DL", "2024-07-04", "2024-07-04 17:00:00-07:00", "CLOSED", None),
    # PRIORITY entity: PRIORITY is the target, 8888 excluded, its ACTUAL ignored
    ("DL02", "DL", "2024-07-04", "2024-07-04 10:00:00-07:00", "PRIORITY", 45),
    ("DL02", "DL", "2024-07-04", "2024-07-04 10:05:00-07:00", "PRIORITY", 8888),
    ("DL02", "DL", "2024-07-04", "2024-07-04 10:10:00-07:00", "ACTUAL", 12),
    # Missing from dim_entity: STANDBY; the row after as_of is cut
    ("MK99", "MK", "2024-07-10", "2024-07-10 10:00:00-04:00", "ACTUAL", 7),
    ("MK99", "MK", "2024-07-11", "2024-07-11 10:00:00-04:00", "ACTUAL", 9),
    # a park the lookup does not know: the row stays, its time features are NULL
    ("XX5", "XX", "2024-07-04", "2024-07-04 10:00:00+00:00", "ACTUAL", 3),
]


@pytest.fixture()
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    ensure_tables(c, ("fct_wait_times",))
    for ddl in DIM_DDL:
        c.execute(ddl)
    c.executemany(
        "INSERT INTO fct_wait_times VALUES (?, ?, ?::DATE, ?::TIMESTAMPTZ, ?, ?, 'test')", FACTS
    )
    c.executemany(
        "INSERT INTO dim_entity VALUES (?, ?, ?, ?, ?)",
        [("TDL01", "a", "TDL", False, "STANDBY"), ("DL01", "b", "DL", False, "STANDBY"),
         ("DL02", "c", "DL", True, "PRIORITY")],
    )
    c.execute("INSERT INTO dim_calendar VALUES ('2024-07-04', 2024, 7, 4, 4, 'INDEPENDENCE_DAY')")
    c.execute("INSERT INTO dim_season VALUES ('2024-07-04', 'SUMMER', 'SUMMER_2024')")
    c.executemany(
        "INSERT INTO dim_park_hours VALUES (?, ?::DATE, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ,"
        " NULL, NULL, ?, ?, 'official', 1.0, NULL)",
        [("TDL", "2024-07-01", "2024-07-01 09:00:00+09:00", "2024-07-01 21:00:00+09:00",
          False, False),
         ("DL", "2024-07-04", "2024-07-04 08:00:00-07:00", "2024-07-05 01:00:00-07:00",
          True, False)],
    )
    yield c
    c.close()


def _frame(conn, codes=("TDL01", "DL01", "DL02", "MK99")) -> pd.DataFrame:
    return build_training_frame(conn, list(codes), AS_OF)


def _row(frame: pd.DataFrame, entity: str, local: str, tz: str) -> pd.Series:
    at = pd.Timestamp(local, tz=tz)
    hit = frame[(frame.entity_code == entity) & (frame.observed_at == at)]
    assert len(hit) == 1, (entity, local, len(hit))
    return hit.iloc[0]


def test_columns_and_grain(conn):
    frame = _frame(conn)
    for col in ["entity_code", "park_code", "park_date", "observed_at", "y", "weight",
                *FEATURES_WITH_POSTED]:
        assert col in frame.columns
    assert FEATURES_WITH_POSTED[: len(FEATURES_WITHOUT_POSTED)] == FEATURES_WITHOUT_POSTED
    # 2 Tokyo + 6 DL01 ACTUAL + 1 DL02 PRIORITY + 1 MK99 (as_of cuts the other)
    assert frame.groupby("entity_code").size().to_dict() == {
        "DL01": 6, "DL02": 1, "MK99": 1, "TDL01": 2
    }
    assert list(_frame(conn, ["DL02"]).entity_code) == ["DL02"]


def test_local_time_in_park_time_zone(conn):
    frame = _frame(conn)
    r = _row(frame, "TDL01", "2024-07-01 00:30", "Asia/Tokyo")
    assert (r.mins_since_6am, r.local_hour) == (1110, 0)
    assert r.park_date == pd.Timestamp("2024-06-30")
    r = _row(frame, "TDL01", "2024-07-01 10:15", "Asia/Tokyo")
    assert (r.mins_since_6am, r.local_hour, r.day_of_week, r.month) == (255, 10, 1, 7)
    assert (r.mins_since_park_open, r.park_open_hour, r.park_close_hour) == (75.0, 9, 21)
    assert r.park_hours_open == 12.0
    r = _row(frame, "DL01", "2024-07-05 00:30", "America/Los_Angeles")
    assert (r.mins_since_6am, r.local_hour) == (1110, 0)


def test_park_hours_after_midnight_close_and_missing_day(conn):
    frame = _frame(conn)
    r = _row(frame, "DL01", "2024-07-04 07:30", "America/Los_Angeles")
    assert r.mins_since_park_open == -30.0
    assert (r.park_open_hour, r.park_close_hour, r.park_hours_open) == (8, 1, 17.0)
    assert (r.emh_morning, r.emh_evening) == (1, 0)
    assert r.date_group_id == "INDEPENDENCE_DAY"
    assert (r.season, r.park_year) == ("SUMMER", 2024)
    r = _row(frame, "DL01", "2024-07-05 00:30", "America/Los_Angeles")
    assert r.mins_since_park_open == 16.5 * 60
    r = _row(frame, "DL01", "2024-07-03 12:00", "America/Los_Angeles")
    for col in ["mins_since_park_open", "park_open_hour", "park_close_hour", "park_hours_open",
                "emh_morning", "emh_evening", "date_group_id", "season"]:
        assert pd.isna(r[col]), col


def test_posted_match_within_ten_minutes_nearest_wins(conn):
    frame = _frame(conn)
    tz = "America/Los_Angeles"
    assert _row(frame, "DL01", "2024-07-04 12:00", tz).posted_matched == 30  # 9 min before
    assert pd.isna(_row(frame, "DL01", "2024-07-04 14:00", tz).posted_matched)  # 11 min both
    assert _row(frame, "DL01", "2024-07-04 16:00", tz).posted_matched == 70  # 3 after > 8 before
    assert pd.isna(_row(frame, "DL01", "2024-07-04 07:30", tz).posted_matched)


def test_posted_means_30_and_60_minutes_before(conn):
    frame = _frame(conn)
    tz = "America/Los_Angeles"
    r = _row(frame, "DL01", "2024-07-04 16:00", tz)
    assert (r.posted_mean_30, r.posted_mean_60) == (60.0, 40.0)  # 15:52 | 15:20 and 15:52
    r = _row(frame, "DL01", "2024-07-04 12:00", tz)
    assert (r.posted_mean_30, r.posted_mean_60) == (30.0, 20.0)  # 11:51 | 11:05 and 11:51
    r = _row(frame, "DL01", "2024-07-04 14:00", tz)
    assert (r.posted_mean_30, r.posted_mean_60) == (44.0, 44.0)  # 14:11 is after: not counted
    assert pd.isna(_row(frame, "DL01", "2024-07-04 07:30", tz).posted_mean_60)


def test_priority_target_excludes_sold_out_and_weights(conn):
    frame = _frame(conn)
    pri = frame[frame.entity_code == "DL02"]
    assert list(pri.y) == [45.0] and list(pri.queue_type) == ["PRIORITY"]
    mk = frame[frame.entity_code == "MK99"]
    assert list(mk.y) == [7.0] and list(mk.queue_type) == ["STANDBY"]
    assert mk.weight.iloc[0] == 1.0
    r = _row(frame, "DL01", "2024-07-04 12:00", "America/Los_Angeles")
    assert r.weight == pytest.approx(0.5 ** (6 / 365))


def test_unknown_park_keeps_row_with_null_time_features(conn):
    frame = _frame(conn, ["XX5"])
    assert list(frame.y) == [3.0]
    assert pd.isna(frame.mins_since_6am.iloc[0]) and frame.day_of_week.iloc[0] == 4


def test_target_counts(conn):
    counts = target_counts(conn, AS_OF)
    assert counts.set_index("entity_code")[["queue_type", "target_count"]].to_dict("index") == {
        "DL01": {"queue_type": "STANDBY", "target_count": 6},
        "DL02": {"queue_type": "PRIORITY", "target_count": 1},
        "MK99": {"queue_type": "STANDBY", "target_count": 1},
        "TDL01": {"queue_type": "STANDBY", "target_count": 2},
        "XX5": {"queue_type": "STANDBY", "target_count": 1},
    }
    later = target_counts(conn, date(2024, 7, 11))
    assert later.set_index("entity_code").target_count["MK99"] == 2


def test_party_evening_marks_hard_ticket_nights_only(conn):
    """A party night (the park open past the official close on a day without an EMH evening)
    is 1 on every row of its day; an EMH evening, a plain day and a day without hours are not."""
    conn.executemany(
        "INSERT INTO dim_park_hours VALUES (?, ?::DATE, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, NULL,"
        " ?::TIMESTAMPTZ, false, ?, 'official', 1.0, NULL)",
        # Magic Kingdom: day guests until 18:00, the party until midnight
        [("MK", "2024-07-10", "2024-07-10 09:00:00-04:00", "2024-07-10 18:00:00-04:00",
          "2024-07-11 00:00:00-04:00", False),
         # an EMH evening: open two hours past the close for resort guests, not a party
         ("MK", "2024-07-09", "2024-07-09 09:00:00-04:00", "2024-07-09 21:00:00-04:00",
          "2024-07-09 23:00:00-04:00", True)])
    conn.executemany(
        "INSERT INTO fct_wait_times VALUES (?, 'MK', ?::DATE, ?::TIMESTAMPTZ, 'ACTUAL', ?, 'test')",
        [("MK99", "2024-07-10", "2024-07-10 20:00:00-04:00", 3),
         ("MK99", "2024-07-09", "2024-07-09 10:00:00-04:00", 12)])
    frame = _frame(conn)
    tz = "America/New_York"
    party = [_row(frame, "MK99", t, tz) for t in ("2024-07-10 10:00", "2024-07-10 20:00")]
    assert [r.party_evening for r in party] == [1, 1]
    assert party[1].mins_since_park_open > party[1].park_hours_open * 60  # after the close
    emh = _row(frame, "MK99", "2024-07-09 10:00", tz)
    assert (emh.party_evening, emh.emh_evening) == (0, 1)
    assert _row(frame, "DL01", "2024-07-04 12:00", "America/Los_Angeles").party_evening == 0
    assert pd.isna(_row(frame, "DL01", "2024-07-03 12:00", "America/Los_Angeles").party_evening)

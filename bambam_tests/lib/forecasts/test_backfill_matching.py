"""The backfill's slot matching (binary searches on the workers) against a slow, obviously
correct reference: the SQL it replaced, six ASOF joins and two RANGE windows over every
(entity, slot) row, on random facts with ties, shared instants, CLOSED facts, a PRIORITY
entity with sold-out rows and facts just before a park day's first slot."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED, PRIORITY, SOLD_OUT
from bambam_assets.lib.dimensions import entities
from bambam_assets.lib.forecasts import backfill
from bambam_assets.lib.forecasts.slots import slots_cte_sql
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    feature_ctes_sql,
    park_params,
    posted_means_cte_sql,
)
from bambam_tests.builders import FORECAST_AS_OF, build_forecast_home, insert_facts, local_fact

CODES = ["MK1", "MK2", "MK3", "MK4"]  # MK4: a PRIORITY entity
QUEUES = ["STANDBY", "STANDBY", "STANDBY", "PRIORITY"]
DAYS = [FORECAST_AS_OF - timedelta(days=k) for k in (0, 1, 2, 9)]

_REFERENCE_SQL = f"""
WITH ents AS (
    SELECT unnest($codes::VARCHAR[]) AS entity_code, unnest($queues::VARCHAR[]) AS queue_type
),
obs AS (
    SELECT f.entity_code, f.park_code, f.park_date, f.observed_at, f.wait_time_type AS t,
           f.wait_time_minutes AS v, e.queue_type
    FROM fct_wait_times f JOIN ents e USING (entity_code)
    WHERE f.park_date <= $as_of AND f.park_date >= $first_day - 1
),
only_days AS (
    SELECT unnest($only_codes::VARCHAR[]) AS entity_code, unnest($only_days::DATE[]) AS park_date
),
days AS (
    SELECT DISTINCT o.entity_code, o.park_code, o.park_date FROM obs o
    WHERE o.park_date >= $first_day AND ($only_all OR EXISTS (
        SELECT 1 FROM only_days q
        WHERE q.entity_code = o.entity_code AND q.park_date = o.park_date))
),
hours AS (
    SELECT * FROM dim_park_hours h
    WHERE EXISTS (SELECT 1 FROM days d WHERE d.park_code = h.park_code
                  AND d.park_date = h.park_date)
),
{slots_cte_sql("hours")},
eslots AS (
    SELECT d.entity_code, s.park_code, s.park_date, s.slot, s.slot_start,
           s.slot_start + INTERVAL 600 SECOND AS window_end
    FROM slots s JOIN days d USING (park_code, park_date)
),
targets AS (
    SELECT entity_code, observed_at, avg(v) AS y FROM obs
    WHERE v IS NOT NULL AND CASE WHEN queue_type = 'PRIORITY'
        THEN t = $priority AND v <> $sold_out ELSE t = $actual END
    GROUP BY entity_code, observed_at
),
posted AS (
    SELECT entity_code, observed_at, avg(v) AS posted FROM obs
    WHERE t = $posted AND v IS NOT NULL GROUP BY entity_code, observed_at
),
closed AS (SELECT DISTINCT entity_code, observed_at FROM obs WHERE t = $closed),
matched AS (
    SELECT s.*,
        epoch(s.slot_start) - epoch(tb.observed_at) AS tb_secs, tb.y AS tb_y,
        epoch(ta.observed_at) - epoch(s.slot_start) AS ta_secs, ta.y AS ta_y,
        epoch(pa.observed_at) - epoch(s.slot_start) AS pa_secs, pa.posted AS pa_v,
        epoch(s.slot_start) - epoch(pb.observed_at) AS pb_secs, pb.posted AS pb_v,
        c.observed_at AS closed_at, pl.observed_at AS last_posted_at
    FROM eslots s
    ASOF LEFT JOIN targets tb ON s.entity_code = tb.entity_code AND s.slot_start >= tb.observed_at
    ASOF LEFT JOIN targets ta ON s.entity_code = ta.entity_code AND s.slot_start <= ta.observed_at
    ASOF LEFT JOIN posted pa ON s.entity_code = pa.entity_code AND s.slot_start <= pa.observed_at
    ASOF LEFT JOIN posted pb ON s.entity_code = pb.entity_code AND s.slot_start >= pb.observed_at
    ASOF LEFT JOIN closed c ON s.entity_code = c.entity_code AND s.window_end >= c.observed_at
    ASOF LEFT JOIN posted pl ON s.entity_code = pl.entity_code AND s.window_end >= pl.observed_at
),
slot_points AS (SELECT DISTINCT entity_code, slot_start AS observed_at FROM eslots),
{posted_means_cte_sql("posted", "slot_points")},
base AS (
    SELECT m.entity_code, m.park_code, m.park_date, m.slot, m.slot_start,
           m.slot_start AS observed_at,
        CASE WHEN tb_secs <= 300 AND (ta_secs IS NULL OR tb_secs <= ta_secs)
             THEN tb_y WHEN ta_secs <= 300 THEN ta_y END AS observed,
        CASE WHEN pa_secs <= 600 THEN pa_v WHEN pb_secs <= 900 THEN pb_v END AS posted_matched,
        coalesce(closed_at >= m.slot_start - INTERVAL 900 SECOND
                 AND (last_posted_at IS NULL OR last_posted_at <= closed_at), false) AS is_closed
    FROM matched m
),
{feature_ctes_sql("base")}
SELECT f.entity_code, f.park_date, f.slot, f.slot_start,
       CAST(f.observed AS DOUBLE) AS observed, f.is_closed,
       {", ".join(c if c in CATEGORICAL_FEATURES else f"CAST(f.{c} AS DOUBLE) AS {c}"
                  for c in FEATURES_WITHOUT_POSTED)},
       CAST(f.posted_matched AS DOUBLE) AS posted_matched, r.posted_mean_30, r.posted_mean_60
FROM featured f
LEFT JOIN (SELECT * FROM rolling WHERE is_point) r
    ON r.entity_code = f.entity_code AND r.observed_at = f.slot_start
ORDER BY f.entity_code, f.slot_start
"""


def reference(conn, as_of: date, only_days=None) -> pd.DataFrame:
    first_day = date(1900, 1, 1)
    if only_days is not None:
        first_day = min(date.fromisoformat(d) for _, d in only_days)
    conn.execute("SET asof_loop_join_threshold = 0")
    return conn.execute(_REFERENCE_SQL, {
        **park_params(), "codes": CODES, "queues": QUEUES, "as_of": as_of,
        "first_day": first_day, "actual": ACTUAL, "priority": PRIORITY, "sold_out": SOLD_OUT,
        "posted": POSTED, "closed": CLOSED, "only_all": only_days is None,
        "only_codes": [c for c, _ in only_days or ()],
        "only_days": [date.fromisoformat(d) for _, d in only_days or ()]}).df()


def _random_facts(rng: np.random.Generator) -> pd.DataFrame:
    """Facts on a few days at minute granularity (so instants collide and ties at exactly 5, 10
    and 15 minutes occur), every kind, a few before 09:00 and after closing."""
    rows = []
    kinds = [ACTUAL, POSTED, POSTED, CLOSED, PRIORITY]
    for code in CODES:
        for day in DAYS:
            for _ in range(int(rng.integers(20, 60))):
                kind = str(rng.choice(kinds))
                hh, mm = int(rng.integers(8, 23)), int(rng.choice(np.arange(0, 60, 5)) +
                                                       rng.choice([0, 0, 1, 4]))
                value = None if kind == CLOSED else float(rng.choice([5, 10, 25, 40, SOLD_OUT]))
                rows.append(local_fact(code, day, hh, min(mm, 59), kind, value))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("matching") / "home")
    with wh.writer(home) as conn:  # MK4 sells Lightning Lane: a PRIORITY entity
        raw = pd.DataFrame({"code": CODES, "name": list("abcd"),
                            "fastpass_booth": ["false", "false", "false", "true"]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))
    insert_facts(home, _random_facts(np.random.default_rng(11)))
    return home


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) > 0
    got = got.sort_values(["entity_code", "slot_start"]).reset_index(drop=True)
    want = want.sort_values(["entity_code", "slot_start"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=0, atol=1e-9)


def test_every_day_matches_the_reference(home: Path) -> None:
    with wh.reader(home) as conn:
        want = reference(conn, FORECAST_AS_OF)
        got = backfill.backfill_slots(conn, CODES, QUEUES, FORECAST_AS_OF)
    _assert_same(got, want)
    # the random facts reach every rule, so the comparison covers them all
    assert want["observed"].notna().any() and want["is_closed"].any()
    assert want["posted_matched"].notna().any() and want["posted_mean_60"].notna().any()
    mk4 = want[want["entity_code"] == "MK4"]
    assert mk4["observed"].notna().any() and (mk4["observed"] != SOLD_OUT).all()


def test_some_days_match_the_reference(home: Path) -> None:
    only = [("MK1", DAYS[0].isoformat()), ("MK4", DAYS[1].isoformat()),
            ("MK2", DAYS[3].isoformat())]
    with wh.reader(home) as conn:
        want = reference(conn, FORECAST_AS_OF, only)
        got = backfill.backfill_slots(conn, CODES, QUEUES, FORECAST_AS_OF, only_days=only)
    _assert_same(got, want)
    assert set(got["entity_code"]) == {"MK1", "MK2", "MK4"}

"""Posted aggregates: weighted statistics by local hour, and every level of the fallback chain."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import posted_aggregates as pa
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_QUIET_DAY,
    build_forecast_home,
    insert_facts,
    local_fact,
)

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
    # weekday x hour: MK1 Sunday 10h and 14h, Saturday 10h; MK2 Saturday 10h and 20h
    assert counts == {"entity_dow_hour": 5, "entity_dgid_hour": 4, "entity_dgid": 2,
                      "entity_hour": 4, "entity": 2, "park_hour": 3}
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


def test_fallback_chain_answers_each_level_in_order(conn, monkeypatch) -> None:
    pa.build_posted_aggregates(conn, AS_OF)
    monkeypatch.setattr(pa, "MIN_DOW_HOUR_COUNT", 1)  # the fixture's cells hold 1-2 readings
    # AS_OF is a Sunday (ISO 7), YEAR_AGO a Saturday (6); MK1 has hours 10 and 14
    keys = pd.DataFrame({
        "entity_code": ["MK1", "MK1", "MK1", "MK1", "MK1", "MK9", "MK9", "MK8"],
        "park_code": ["MK"] * 8,
        "day_of_week": [7, 6, 7, 3, 3, 3, 3, 3],
        "hour": [10, 10, 15, 10, 16, 10, 3, 20],
    })
    out = pa.lookup_posted(conn, keys, no_park_level=["MK8"])
    assert out["posted_level"].tolist() == [
        "entity_dow_hour", "entity_dow_hour", "entity", "entity_hour", "entity", "park_hour",
        None, None]
    # Sunday 10h: 10 (w 1); Saturday 10h: 30, 50 (w .5 each) -> cum .5 >= .5 at 30;
    # MK1 hour 10 (any weekday): 10 (w1), 30, 50 (w .5) -> 10; MK1 all: + 70 (w1) -> 30
    assert out["posted_value"].tolist()[:5] == [10, 30, 30, 10, 30]
    # MK9 has no POSTED: the park's hour-10 weighted median; rounded to the nearest 5
    assert out["posted_value"].iloc[5] == 22
    assert out["posted_predicted"].tolist()[:6] == [10, 30, 30, 10, 30, 20]
    assert out["posted_predicted"].iloc[6:].isna().all()
    # a weekday x hour cell thinner than MIN_DOW_HOUR_COUNT leaves the answer to the hour
    monkeypatch.setattr(pa, "MIN_DOW_HOUR_COUNT", 2)
    thin = pa.lookup_posted(conn, keys.iloc[:2], no_park_level=["MK8"])
    assert thin["posted_level"].tolist() == ["entity_hour", "entity_dow_hour"]
    assert thin["posted_value"].tolist() == [10, 30]
    # the date-group levels are in the table but answer no lookup
    assert set(pa.LOOKUP_LEVELS) < set(pa.LEVELS)
    assert "entity_dgid_hour" not in pa.LOOKUP_LEVELS
    assert out["entity_code"].tolist() == keys["entity_code"].tolist()  # order kept


# ---- the histogram query against a slow, obviously correct reference --------------------------

TZ_OF = {"MK": "America/New_York", "TDL": "Asia/Tokyo"}
LEVEL_KEYS = {
    "entity_dow_hour": ["entity_code", "park_code", "day_of_week", "hour"],
    "entity_dgid_hour": ["entity_code", "park_code", "date_group_id", "hour"],
    "entity_dgid": ["entity_code", "park_code", "date_group_id"],
    "entity_hour": ["entity_code", "park_code", "hour"],
    "entity": ["entity_code", "park_code"],
    "park_hour": ["park_code", "hour"],
}
ALL_KEYS = ["entity_code", "park_code", "date_group_id", "day_of_week", "hour"]


def _random_facts(seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Facts with many ties (values on a coarse grid, few dates) and small, often even groups.

    Days ago are drawn from {0, 1, 2, 365, 730, 1825, -1 (after as_of)} so that weights
    1, 365/366, 365/367, 1/2, 1/3, 1/6 repeat and exact rational ties occur (1/2 + 1/6 = 2/3).
    """
    rng = np.random.default_rng(seed)
    codes = np.array(["MK1", "MK2", "MK3", "TDL1", "TDL2"])
    entity = rng.choice(codes, n)
    days_ago = rng.choice([0, 1, 2, 365, 730, 1825, -1], n)
    local = pd.Series([datetime(d.year, d.month, d.day) for d in
                       (AS_OF - timedelta(days=int(x)) for x in days_ago)])
    minutes = rng.choice([8, 9, 10, 11], n) * 60 + rng.integers(0, 60, n)  # local hours 8-11
    kinds = rng.choice(["POSTED"] * 8 + ["ACTUAL", "CLOSED"], n)
    values = pd.array(rng.integers(0, 8, n) * 5, dtype="Int64")
    values[(kinds == "CLOSED") | (rng.random(n) < 0.03)] = pd.NA  # also POSTED without minutes
    park = np.where(np.char.startswith(entity.astype(str), "TDL"), "TDL", "MK")
    observed = [pd.Timestamp(t + timedelta(minutes=int(m)), tz=TZ_OF[p]).tz_convert("UTC")
                for t, m, p in zip(local, minutes, park, strict=True)]
    facts = pd.DataFrame({
        "entity_code": entity, "park_code": park,
        "park_date": [AS_OF - timedelta(days=int(x)) for x in days_ago],
        "observed_at": observed, "wait_time_type": kinds, "wait_time_minutes": values,
        "source_file": "t"})
    days = sorted(set(facts["park_date"]))
    # one date without a calendar row: its rows have date_group_id NULL, a group of their own
    cal = pd.DataFrame({"park_date": pd.to_datetime(days[1:]),
                        "date_group_id": [["A", "B"][i % 2] for i in range(len(days) - 1)]})
    return facts, cal


def _reference(facts: pd.DataFrame, cal: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each level's statistics straight from the raw rows (exact rational weights)."""
    rows = facts[(facts["wait_time_type"] == "POSTED") & facts["wait_time_minutes"].notna()
                 & (facts["park_date"] <= AS_OF)].copy()
    dgid = dict(zip(cal["park_date"].dt.date, cal["date_group_id"], strict=True))
    rows["date_group_id"] = rows["park_date"].map(dgid)
    rows["day_of_week"] = [d.isoweekday() for d in rows["park_date"]]
    rows["hour"] = [t.tz_convert(TZ_OF[p]).hour
                    for t, p in zip(rows["observed_at"], rows["park_code"], strict=True)]
    rows["v"] = rows["wait_time_minutes"].astype(float)
    rows["days_ago"] = [(AS_OF - d).days for d in rows["park_date"]]
    out = {}
    for level, keys in LEVEL_KEYS.items():
        records = []
        for key, g in rows.groupby(keys, dropna=False):
            g = g.sort_values("v", kind="stable")
            exact = [Fraction(365, 365 + d) for d in g["days_ago"]]  # 1 / (1 + d/365)
            half, cum, median = sum(exact) / 2, Fraction(0), None
            for v, w in zip(g["v"], exact, strict=True):
                cum += w
                if cum >= half:  # the first value whose cumulative weight reaches half
                    median = v
                    break
            w = np.array([float(x) for x in exact])
            records.append({**dict(zip(keys, key, strict=True)), "posted_median": median,
                            "posted_mean": float((w * g["v"]).sum() / w.sum()),
                            "posted_median_unweighted": float(np.median(g["v"])),
                            "posted_mean_unweighted": float(g["v"].mean()),
                            "posted_count": len(g), "avg_recency_weight": float(w.mean()),
                            "min_park_date": min(g["park_date"]),
                            "max_park_date": max(g["park_date"])})
        frame = pd.DataFrame(records)
        for col in ALL_KEYS:
            if col not in keys:
                frame[col] = None
        out[level] = frame
    return out


def _load(c: duckdb.DuckDBPyConnection, facts: pd.DataFrame, cal: pd.DataFrame) -> None:
    schema.ensure_tables(c, ("fct_wait_times",))
    c.register("f", facts)
    c.execute("INSERT INTO fct_wait_times BY NAME SELECT * FROM f")
    c.unregister("f")
    schema.replace_dimension(c, "dim_calendar", cal)


def _sort(frame: pd.DataFrame) -> pd.DataFrame:
    key = frame[ALL_KEYS].astype(str)  # NULL keys sort as "None"/"nan" consistently
    return frame.assign(_k=key.agg("|".join, axis=1).str.replace("nan", "None")) \
        .sort_values("_k").drop(columns="_k").reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_level_matches_a_row_by_row_reference(seed: int) -> None:
    facts, cal = _random_facts(seed, 3000)
    c = duckdb.connect()
    _load(c, facts, cal)
    counts = pa.build_posted_aggregates(c, AS_OF)
    expected = _reference(facts, cal)
    got_all = c.execute("SELECT * FROM posted_aggregates").df()
    assert (got_all["as_of"].dt.date == AS_OF).all()
    for level, exp in expected.items():
        got = _sort(got_all[got_all["level"] == level].drop(columns=["level", "as_of"]))
        exp = _sort(exp)
        assert counts[level] == len(exp) == len(got), level
        for col in ALL_KEYS:
            assert got[col].isna().tolist() == exp[col].isna().tolist(), (level, col)
            mask = exp[col].notna()
            assert got.loc[mask, col].astype(str).tolist() == \
                exp.loc[mask, col].astype(str).tolist(), (level, col)
        # exact: medians (values of the data or the mean of two of them), counts and dates
        for col in ("posted_median", "posted_median_unweighted", "posted_count"):
            assert got[col].tolist() == exp[col].tolist(), (level, col)
        for col in ("min_park_date", "max_park_date"):
            assert [d.date() for d in got[col]] == list(exp[col]), (level, col)
        for col in ("posted_mean", "posted_mean_unweighted", "avg_recency_weight"):
            assert got[col].to_numpy() == pytest.approx(exp[col].to_numpy(), rel=1e-12), \
                (level, col)
    # the data did exercise even counts, ties and NULL date groups
    top = expected["entity_dgid_hour"]
    assert (top["posted_count"] % 2 == 0).any()
    assert (top["posted_median_unweighted"] % 5 != 0).any()  # mean of two different middles
    assert top["date_group_id"].isna().any()


def test_a_tie_exact_in_rationals_takes_the_lower_value() -> None:
    """Weights 1/2, 1/3, 1/6 | 1: the cumulative weight at 30 is exactly half of 2, but the
    floating-point sum 0.5 + 0.333.. + 0.166.. falls just short of 1.0 without the tolerance."""
    c = duckdb.connect()
    ago = {10: 365, 20: 730, 30: 1825, 40: 0}  # weights 1/2, 1/3, 1/6, 1
    rows = [_fact("MK1", AS_OF - timedelta(days=d), 10, i, "POSTED", v)
            for i, (v, d) in enumerate(ago.items())]
    cal = pd.DataFrame({"park_date": pd.to_datetime([AS_OF - timedelta(days=d)
                                                     for d in sorted(set(ago.values()))]),
                        "date_group_id": "A"})
    facts = pd.DataFrame(rows)
    facts["wait_time_minutes"] = facts["wait_time_minutes"].astype("Int64")
    _load(c, facts, cal)
    pa.build_posted_aggregates(c, AS_OF)
    # every level but the weekday one holds all four rows (the four days are four weekdays)
    medians = c.execute("SELECT level, posted_median, posted_median_unweighted "
                        "FROM posted_aggregates WHERE level <> 'entity_dow_hour'").fetchall()
    assert len(medians) == len(pa.LEVELS) - 1
    assert {m for _, m, _ in medians} == {30.0}
    assert {u for _, _, u in medians} == {25.0}  # even count: the mean of 20 and 30


def test_inputs_digest_moves_only_with_what_the_table_is_built_from(tmp_path) -> None:
    """The digest that lets posted_aggregates skip a rebuild: a POSTED fact up to as_of changes
    it, one after as_of or of another type does not."""
    home = build_forecast_home(tmp_path / "home")

    def digest():
        with wh.reader(home) as conn:
            return pa.inputs_digest(conn, FORECAST_AS_OF)

    before = digest()
    assert digest() == before
    later = FORECAST_AS_OF + timedelta(days=2)
    insert_facts(home, local_fact("MK1", later, 12, 0, "POSTED", 35))  # after as_of
    insert_facts(home, local_fact("MK1", FORECAST_QUIET_DAY, 12, 0, "ACTUAL", 20))  # not POSTED
    assert digest() == before
    insert_facts(home, local_fact("MK1", FORECAST_QUIET_DAY, 12, 0, "POSTED", 35))
    assert digest() != before

"""Vintages and the accuracy scorecard: a vintage of pipeline-written forecast files is scored
exactly against ACTUAL waits that arrive later; the drift check flags a planted drift."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.forecasts import forecast, scorecard
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_HORIZON,
    build_forecast_home,
    insert_facts,
    local_fact,
)

D = FORECAST_AS_OF


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("scorecard") / "home")
    forecast.run_forecast(lambda: wh.reader(home), home, ["MK1", "MK2", "MK3"], D,
                          FORECAST_HORIZON)
    with wh.writer(home) as conn:
        scorecard.write_vintage(conn, HomePaths(home).curve_glob(FORECASTS_DIR), home, D)
    # ACTUAL waits that arrive after the vintage: on D+1 and D+7 (in slots), one after close
    # (no slot), and a POSTED reading (not a target)
    rng = np.random.default_rng(5)
    facts = [local_fact(code, D + timedelta(days=h), hh, mm, "ACTUAL", int(rng.integers(5, 90)))
             for code in ("MK1", "MK3") for h in (1, 7) for hh, mm in ((9, 2), (12, 31), (18, 7))]
    facts += [local_fact("MK1", D + timedelta(days=1), 23, 40, "ACTUAL", 30),
              local_fact("MK1", D + timedelta(days=1), 12, 33, "POSTED", 45)]
    insert_facts(home, pd.concat(facts, ignore_index=True))
    return home


def _expected(home: Path, upto: date) -> pd.DataFrame:
    """The slow, obvious way: every ACTUAL of a target day, floored to its 5-minute slot,
    looked up in the vintage file with pandas."""
    vintage = pd.read_parquet(scorecard.vintage_file(home, D))
    with wh.reader(home) as conn:
        facts = conn.execute("SELECT entity_code, park_date, observed_at, wait_time_minutes "
                             "FROM fct_wait_times WHERE wait_time_type = 'ACTUAL' "
                             "AND park_date > ? AND park_date <= ?", [D, upto]).df()
    facts["slot_start"] = facts["observed_at"].dt.floor("5min")
    vintage["park_date"] = pd.to_datetime(vintage["park_date"]).dt.date
    facts["park_date"] = pd.to_datetime(facts["park_date"]).dt.date
    m = facts.merge(vintage, on=["entity_code", "park_date", "slot_start"])
    m["err"] = m["actual_predicted"] - m["wait_time_minutes"]
    m["band"] = m["wait_time_minutes"].between(m["actual_p10"], m["actual_p90"])
    return (m.groupby(["entity_code", "park_date"])
            .agg(n_obs=("err", "size"), abs_err_sum=("err", lambda e: e.abs().sum()),
                 err_sum=("err", "sum"), in_band=("band", "sum")).reset_index())


def test_a_vintage_holds_the_horizon_days_of_the_forecast(home: Path) -> None:
    vintage = pd.read_parquet(scorecard.vintage_file(home, D))
    days = sorted(pd.to_datetime(vintage["park_date"]).dt.date.unique())
    # the builder forecasts 14 days ahead: of the horizons 1, 7, 30, 60 only D+1 and D+7 exist
    assert days == [D + timedelta(days=1), D + timedelta(days=7)]
    assert set(vintage["entity_code"]) == {"MK1", "MK3"}  # MK2 has no model: no ACTUAL forecast
    full = pd.read_parquet(HomePaths(home).curve_file(FORECASTS_DIR, "MK1"))
    day1 = full[pd.to_datetime(full["park_date"]).dt.date == D + timedelta(days=1)]
    got = vintage[(vintage["entity_code"] == "MK1")
                  & (pd.to_datetime(vintage["park_date"]).dt.date == D + timedelta(days=1))]
    assert len(got) == day1["actual_predicted"].notna().sum()
    np.testing.assert_allclose(got["actual_predicted"].to_numpy(),
                               day1.dropna(subset=["actual_predicted"])["actual_predicted"],
                               atol=0.051)  # stored to a tenth of a minute


@pytest.mark.parametrize("upto_days", [3, 8])
def test_the_scorecard_scores_a_vintage_exactly(home: Path, upto_days: int) -> None:
    upto = D + timedelta(days=upto_days)
    with wh.reader(home) as conn:
        got = scorecard.score(conn, home, upto)
    want = _expected(home, upto)
    assert len(want) == (2 if upto_days == 3 else 4)  # D+7 only once it has arrived
    got["park_date"] = pd.to_datetime(got["park_date"]).dt.date
    merged = want.merge(got, on=["entity_code", "park_date"], suffixes=("", "_got"),
                        validate="one_to_one")
    assert len(merged) == len(got) == len(want)
    assert (merged["n_obs"] == merged["n_obs_got"]).all()
    assert (merged["n_obs"] == 3).all()  # the after-close wait and the POSTED reading are out
    np.testing.assert_allclose(merged["abs_err_sum_got"], merged["abs_err_sum"], rtol=1e-5)
    np.testing.assert_allclose(merged["err_sum_got"], merged["err_sum"], rtol=1e-5)
    assert (merged["in_band"] == merged["in_band_got"]).all()
    horizon = (pd.to_datetime(got["park_date"]) - pd.Timestamp(D)).dt.days
    assert (got["horizon_days"] == horizon).all()
    assert (got["park_code"] == "MK").all()


def test_written_scorecard_pools_by_park_and_horizon_and_prunes(home: Path,
                                                                tmp_path: Path) -> None:
    upto = D + timedelta(days=8)
    with wh.writer(home) as conn:
        rows = scorecard.score(conn, home, upto)
        scorecard.write_scorecard(conn, rows, keep_from=upto - timedelta(days=90))
        pooled = scorecard.summary(conn)
    want = _expected(home, upto)
    want["horizon_days"] = [(d - D).days for d in want["park_date"]]
    for h, part in want.groupby("horizon_days"):
        row = pooled[pooled["horizon_days"] == h].iloc[0]
        assert row["n_obs"] == part["n_obs"].sum()
        assert row["mae"] == pytest.approx(part["abs_err_sum"].sum() / part["n_obs"].sum(),
                                           rel=1e-5)
    # an old vintage is pruned, the recent one stays
    old = D - timedelta(days=120)
    with wh.writer(home) as conn:
        scorecard.write_vintage(conn, HomePaths(home).curve_glob(FORECASTS_DIR), home, old)
    assert scorecard.kept_vintages(home) == [old, D]
    assert scorecard.prune_vintages(home, upto) == [old]
    assert scorecard.kept_vintages(home) == [D]


def test_the_drift_check_fires_on_a_planted_drift(tmp_path: Path) -> None:
    # 60 target days of horizon-1 scores: MK1 steady at MAE 5; MK2 jumps to MAE 15 over its
    # last 14 days; MK3 drifts too but has too few observations to say so
    days = [D + timedelta(days=i) for i in range(60)]
    rows = []
    for code, late_mae, n in (("MK1", 5.0, 10), ("MK2", 15.0, 10), ("MK3", 15.0, 1)):
        for i, day in enumerate(days):
            mae = late_mae if i >= 46 else 5.0
            rows.append({"vintage_as_of": day - timedelta(days=1), "entity_code": code,
                         "park_code": "MK", "park_date": day, "horizon_days": 1, "n_obs": n,
                         "abs_err_sum": mae * n, "err_sum": 0.0, "in_band": n})
    with wh.writer(tmp_path) as conn:
        scorecard.write_scorecard(conn, pd.DataFrame(rows), keep_from=D - timedelta(days=1))
        flagged = scorecard.drift(conn)
    assert flagged["entity_code"].tolist() == ["MK2"]
    assert flagged["recent_mae"].iloc[0] == pytest.approx(15.0)
    assert flagged["usual_mae"].iloc[0] == pytest.approx(5.0)

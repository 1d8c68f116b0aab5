"""bench.held_out_backfill is the backfill's own matching and imputation (on the forecast home of
bambam_tests.builders): the values it computes for past days are the ones run_backfill writes,
and the observed slots it scores carry the imputation the backfill would have made."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import backfill, backtest, forecast
from bambam_tests.builders import FORECAST_AS_OF, build_forecast_home
from bench import held_out_backfill as hob


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return build_forecast_home(tmp_path_factory.mktemp("held_out") / "home")


def test_held_out_values_are_what_the_backfill_writes(home: Path) -> None:
    first, last = FORECAST_AS_OF - timedelta(days=6), FORECAST_AS_OF
    with wh.reader(home) as conn:
        held = hob.held_out_values(conn, home, first, last)
    results = backfill.run_backfill(lambda: wh.reader(home), home, ["MK1", "MK3"], last,
                                    window_days=7)
    written = pd.concat([pd.read_parquet(r.path) for r in results], ignore_index=True)
    both = held.merge(written, on=["entity_code", "slot_start"], suffixes=("", "_bf"))
    assert len(both) == len(written) > 0 and set(both["entity_code"]) == {"MK1", "MK3"}
    # observed, else imputed (the backfill rounds to 0.1), closed and missing empty
    np.testing.assert_allclose(both["value"], both["actual"], atol=0.05)
    obs = both[both["source"] == backfill.OBSERVED]
    assert len(obs) and (obs["value"] == obs["observed"]).all()
    # where an ACTUAL was observed the imputation is there too: the held-out score's input
    assert obs["imputed"].notna().mean() > 0.9
    assert both.loc[both["source"] == backfill.IMPUTED, "observed"].isna().all()


def test_scored_rows_match_each_observation_once(home: Path) -> None:
    first, last = FORECAST_AS_OF - timedelta(days=13), FORECAST_AS_OF
    as_of = first - timedelta(days=1)
    forecast.run_forecast(lambda: wh.reader(home), home, ["MK1", "MK3"], as_of, 14)
    with wh.reader(home) as conn:
        held = hob.held_out_values(conn, home, first, last)
        scored = backtest.scored_observations(conn, home, as_of, 14)
        rows = hob.scored_rows(conn, held, home, scored)
    actual = scored[scored["kind"] == "ACTUAL"]
    assert len(rows) and not rows.duplicated(["entity_code", "observed_at"]).any()
    assert len(rows) <= len(actual)
    # each scored row is its observation (same value) at its nearest slot: within 2.5 minutes
    # but at a day's edge (one slot within 5 minutes)
    gap = (rows["slot_start"] - rows["observed_at"]).abs()
    assert (gap <= pd.Timedelta(minutes=5)).all()
    assert (gap <= pd.Timedelta(minutes=2, seconds=30)).mean() > 0.95
    merged = rows.merge(actual, on=["entity_code", "observed_at"], suffixes=("", "_s"))
    assert len(merged) == len(rows) and (merged["y"] == merged["y_s"]).all()
    assert rows["naive"].notna().all() and rows["pred"].notna().mean() > 0.9

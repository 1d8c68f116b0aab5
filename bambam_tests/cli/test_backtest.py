"""Backtest: nothing after the as-of date changes a forecast; a demo backtest beats naive."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from bambam_assets.cli.backtest import backtest as backtest_command
from bambam_assets.cli.backtest import run_backtest
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.forecasts import backfill, forecast
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_HORIZON,
    build_forecast_home,
    insert_facts,
    local_fact,
    train_and_aggregate,
)


def _curves(home: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    codes = ["MK1", "MK2", "MK3"]
    fc = forecast.run_forecast(lambda: wh.reader(home), home, codes, FORECAST_AS_OF,
                               FORECAST_HORIZON)
    bf = backfill.run_backfill(lambda: wh.reader(home), home, codes, FORECAST_AS_OF, window_days=10)
    with wh.reader(home) as conn:
        agg = conn.execute("SELECT * EXCLUDE (as_of) FROM posted_aggregates "
                           "ORDER BY ALL").df()
    return (pd.concat([pd.read_parquet(r.path) for r in fc], ignore_index=True),
            pd.concat([pd.read_parquet(r.path) for r in bf], ignore_index=True), agg)


def test_rows_dated_after_the_as_of_date_change_no_forecast(tmp_path: Path) -> None:
    home = build_forecast_home(tmp_path / "home")
    before = _curves(home)
    later = FORECAST_AS_OF + timedelta(days=1)
    insert_facts(home, pd.concat([
        local_fact(code, day, hh, 0, kind, value)
        for code in ("MK1", "MK2", "MK3")
        for day in (later, FORECAST_AS_OF + timedelta(days=5))
        for hh, kind, value in ((10, "ACTUAL", 500), (11, "POSTED", 300), (12, "CLOSED", None),
                                (13, "POSTED", 250))
    ]))
    train_and_aggregate(home)  # retrain and re-aggregate with the later rows in the warehouse
    after = _curves(home)
    for a, b in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(a, b)
    with wh.reader(home) as conn:  # the rows are really there
        assert conn.execute("SELECT count(*) FROM fct_wait_times WHERE park_date > ?",
                            [FORECAST_AS_OF]).fetchall()[0][0] == 24


def test_demo_backtest_beats_naive_and_leaves_the_live_home_alone(
    bambam_home: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    demo_data.generate(raw, ["MK"], 3, date(2024, 1, 1), date(2024, 6, 30), seed=42)
    as_of, days = date(2024, 5, 31), 30
    result = run_backtest(as_of, days, tmp_path / "bt", raw=str(raw), log=lambda _m: None)
    scores = {s.metric: s for s in result.scores}
    actual = scores["ACTUAL MAE"]
    assert actual.n > 50
    assert actual.model < actual.naive  # the forecast beats the naive baseline
    assert actual.improvement_pct > 5
    report = result.report.read_text()
    assert "ACTUAL MAE" in report and "better" in report and "backtest.png" in report
    assert result.plot.stat().st_size > 10_000
    # scratch home only: nothing in the live home, the environment never changed
    assert not (bambam_home / "warehouse.duckdb").exists()
    assert os.environ["BAMBAM_HOME"] == str(bambam_home)
    assert os.environ["BAMBAM_AS_OF"] == "2024-03-31"
    conn = duckdb.connect()
    span = conn.execute(
        "SELECT min(park_date), max(park_date), count(DISTINCT entity_code) FROM read_parquet(?, "
        "hive_partitioning = true)", [str(result.scratch / "forecasts" / "*" / "*.parquet")]
    ).fetchall()[0]
    # the forecast week's window covers as_of .. as_of + horizon (lib.forecasts.forecast)
    assert span == (*forecast.forecast_window(as_of, days), 3)
    assert span[0] <= as_of + timedelta(days=1) and span[1] >= as_of + timedelta(days=days)
    with wh.reader(result.scratch) as c:
        n_wti = c.execute("SELECT count(*) FROM park_wti_daily WHERE park_date > ?",
                          [as_of]).fetchall()[0][0]
    assert n_wti == (span[1] - as_of).days  # one daily WTI per forecast day after as_of


def test_backtest_command_options() -> None:
    from click.testing import CliRunner

    out = CliRunner().invoke(backtest_command, ["--help"])
    assert out.exit_code == 0 and "--as-of" in out.output and "--horizon" in out.output
    bad = CliRunner().invoke(backtest_command, ["--as-of", "yesterday"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output

"""Incremental WTI: only the park days whose curves' inputs changed are recomputed, and the
stored tables equal a recomputation of every park day (the slow, obviously correct reference)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import backfill, forecast, wti
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_HORIZON,
    FORECAST_QUIET_DAY,
    build_forecast_home,
    insert_facts,
    local_fact,
)

CODES = ["MK1", "MK2", "MK3"]


def _curves(home: Path, as_of) -> None:
    backfill.run_backfill(lambda: wh.reader(home), home, CODES, as_of)
    forecast.run_forecast(lambda: wh.reader(home), home, CODES, as_of, FORECAST_HORIZON)


def _incremental(home: Path) -> pd.DataFrame:
    """What the park_wti_tables asset does; returns the park days it recomputed."""
    current = wti.input_fingerprints(home)
    with wh.reader(home) as conn:
        days = wti.dirty_days(conn, current)
    slots, daily = wti.compute_wti(home, (), days)
    with wh.writer(home) as conn:
        wti.write_wti(conn, slots, daily, days, current)
    return days


def _stored(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with wh.reader(home) as conn:
        slots = conn.execute("SELECT * FROM park_wti ORDER BY park_code, slot_start").df()
        daily = conn.execute("SELECT * FROM park_wti_daily ORDER BY park_code, park_date").df()
    return slots, daily


def _assert_equals_full_recompute(home: Path) -> None:
    slots, daily = _stored(home)
    ref_slots, ref_daily = wti.compute_wti(home)
    pd.testing.assert_frame_equal(slots.reset_index(drop=True),
                                  ref_slots.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(daily.reset_index(drop=True),
                                  ref_daily.reset_index(drop=True), check_dtype=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("wti") / "home")
    _curves(home, FORECAST_AS_OF)
    _incremental(home)
    return home


def test_first_run_computes_every_day_and_a_rerun_none(base: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(base, home)
    _assert_equals_full_recompute(home)
    assert len(_incremental(home)) == 0  # nothing changed: nothing recomputed
    _assert_equals_full_recompute(home)


def test_new_facts_recompute_only_their_days(base: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(base, home)
    new_day = FORECAST_AS_OF + timedelta(days=1)  # a Monday: a new forecast week too
    insert_facts(home, pd.concat([
        local_fact("MK1", FORECAST_QUIET_DAY, 12, 0, "ACTUAL", 17),  # a correction, old day
    ]))
    backfill.run_backfill(lambda: wh.reader(home), home, CODES, FORECAST_AS_OF)
    days = _incremental(home)
    assert days["park_date"].dt.date.tolist() == [FORECAST_QUIET_DAY]
    _assert_equals_full_recompute(home)
    # the next week's forecasts: every day of the old windows (now replaced) and of the new
    # ones (which end where the park's known hours end)
    old_first, _ = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    forecast.run_forecast(lambda: wh.reader(home), home, CODES, new_day, FORECAST_HORIZON)
    new_last = max(pd.read_parquet(p)["park_date"].max()
                   for p in (home / "forecasts").glob("*/forecast.parquet"))
    days = _incremental(home)
    assert set(days["park_date"].dt.date) == {old_first + timedelta(days=i)
                                               for i in range((new_last - old_first).days + 1)}
    _assert_equals_full_recompute(home)


def test_a_new_model_recomputes_its_park_forecast_window_only(base: Path,
                                                               tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(base, home)
    forecast.run_forecast(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                          FORECAST_HORIZON, recompute_all=True)  # same inputs: same fingerprint
    assert len(_incremental(home)) == 0
    first, last = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    path = home / "forecasts" / "entity_code=MK1" / "forecast.parquet"
    frame = pd.read_parquet(path)
    frame["actual_predicted"] += 1.0  # a different forecast, written with other inputs
    from bambam_assets.lib.forecasts import curves
    curves.write_entity_file(frame, path, curves.FORECAST_SCHEMA,
                             metadata={forecast.FINGERPRINT_KEY: "another model"})
    days = _incremental(home)
    assert set(days["park_date"].dt.date) == {first + timedelta(days=i)
                                               for i in range((last - first).days + 1)}
    _assert_equals_full_recompute(home)

"""Cold start (issue 14): the global model and the blend of a young entity's forecast toward it,
on the hand-made forecast home of bambam_tests.builders plus a ride that opened a week ago."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.forecast_week import inputs_as_of
from bambam_assets.lib.dimensions import entities
from bambam_assets.lib.forecasts import cold_start, forecast
from bambam_assets.lib.models import global_model, registry, training
from bambam_assets.lib.models.features import build_training_frame
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_HORIZON,
    NY,
    _finish,
    build_forecast_home,
    insert_facts,
)

HYPE = 3.0  # the new ride's opening-week ACTUAL: 3x what its POSTED implies


def _opening_week(rng: np.random.Generator) -> pd.DataFrame:
    """MK4 opened 6 days before as-of: POSTED like MK1's, 120 ACTUAL at HYPE x that level."""
    days = pd.date_range(FORECAST_AS_OF - timedelta(days=6), FORECAST_AS_OF, freq="D")
    n = 400
    minute = rng.integers(9 * 60, 22 * 60, size=n)
    local = pd.to_datetime(rng.choice(days, size=n)) + pd.to_timedelta(minute, unit="m")
    base = 15 + 30 * np.sin((minute - 540) / 780 * np.pi) + 15 * (local.dayofweek >= 5)
    observed = local.tz_localize(NY).tz_convert("UTC")
    posted = pd.DataFrame({"entity_code": "MK4", "observed_at": observed,
                           "wait_time_type": "POSTED", "wait_time_minutes": (base + 10).round()})
    act = posted.iloc[:120].copy()
    act["wait_time_type"] = "ACTUAL"
    act["observed_at"] = act["observed_at"] + pd.Timedelta(minutes=2)
    act["wait_time_minutes"] = (HYPE * base[:120]).round()
    return _finish(pd.concat([posted, act], ignore_index=True))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("cold") / "home")
    insert_facts(home, _opening_week(np.random.default_rng(5)))
    with wh.writer(home) as conn:
        raw = pd.DataFrame({"code": ["MK1", "MK2", "MK3", "MK4"], "name": list("abcd"),
                            "fastpass_booth": ["false"] * 4})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))
        frame = build_training_frame(conn, ["MK4"], FORECAST_AS_OF)
    registry.save_version(home / "models", training.train_entity(frame, "STANDBY"),
                          code_version="t", params_hash="t", target_count=len(frame))
    return home


def _global(home: Path, force: bool = False) -> dict:
    with wh.reader(home) as conn:
        read = global_model.read_if_due(conn, home, FORECAST_AS_OF, force=force)
    return global_model.train_and_save(read, home, nthread=1)


def _actual(home: Path, code: str) -> pd.Series:
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, [code], FORECAST_AS_OF,
                                  FORECAST_HORIZON, recompute_all=True)
    return pd.read_parquet(res.path)["actual_predicted"].dropna()


def test_blend_weight_is_one_for_mature_and_grows_with_history() -> None:
    assert cold_start.blend_weight(cold_start.MATURE_DAYS, cold_start.MATURE_ROWS) == 1.0
    assert cold_start.blend_weight(1000, 10**6) == 1.0
    ws = [cold_start.blend_weight(d, 10**6) for d in (0, 7, 30, 90, 179)]
    assert ws == sorted(ws) and ws[0] == 0.0 and ws[-1] < 1.0
    assert cold_start.blend_weight(400, 50) < 1.0  # old but few targets: still young


def test_global_model_is_versioned_and_follows_its_retraining_rule(home: Path) -> None:
    first = _global(home)
    assert first["trained"] and first["version"] == 1 and first["promoted"]
    root = global_model.global_root(home)
    assert registry.current_version(root, global_model.GLOBAL_KEY) == 1
    meta = registry.read_meta(root, global_model.GLOBAL_KEY, 1)
    assert meta["metrics"]["as_of"] == FORECAST_AS_OF.isoformat() and meta["target_count"] > 0
    again = _global(home)  # same data, same day: not due
    assert not again["trained"] and "not due" in again["reason"]
    forced = _global(home, force=True)
    assert forced["trained"] and forced["version"] == 2
    assert registry.kept_versions(root, global_model.GLOBAL_KEY) == [1, 2]


def test_cold_start_entity_stays_near_similar_rides_not_its_opening_week(home: Path,
                                                                         monkeypatch) -> None:
    if registry.current_version(global_model.global_root(home), global_model.GLOBAL_KEY) is None:
        _global(home)
    # MK1 and MK3 (59 days of history) count as mature here; MK4 (7 days) is young
    monkeypatch.setattr(cold_start, "MATURE_DAYS", 30)
    monkeypatch.setattr(cold_start, "MATURE_ROWS", 100)
    with wh.reader(home) as conn:
        plan = cold_start.plan(conn, home, ["MK1", "MK3", "MK4"], FORECAST_AS_OF)
        opening = conn.execute("SELECT avg(wait_time_minutes) FROM fct_wait_times "
                               "WHERE entity_code = 'MK4' AND wait_time_type = 'ACTUAL'"
                               ).fetchone()[0]
    assert plan is not None and set(plan.weights) == {"MK4"} and plan.weights["MK4"] < 0.3
    new, similar = _actual(home, "MK4").mean(), _actual(home, "MK1").mean()
    assert new < 0.6 * opening  # the opening-week hype is not its two-year level
    assert 0.5 * similar < new < 2.0 * similar


def test_mature_entity_forecast_is_unchanged_by_the_blend(home: Path, monkeypatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setattr(cold_start, "MATURE_DAYS", 30)
    monkeypatch.setattr(cold_start, "MATURE_ROWS", 100)
    if registry.current_version(global_model.global_root(home), global_model.GLOBAL_KEY) is None:
        _global(home)
    with_global = _actual(home, "MK1").to_numpy()
    moved = tmp_path / "global_model"
    global_model.global_root(home).rename(moved)  # no global model: the per-entity forecast
    try:
        without = _actual(home, "MK1").to_numpy()
    finally:
        moved.rename(global_model.global_root(home))
    np.testing.assert_array_equal(with_global, without)


def test_global_model_asset_materializes_a_version(tmp_path: Path) -> None:
    import dagster as dg

    from bambam_assets.defs.models.global_assets import global_model_asset
    from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource

    home = build_forecast_home(tmp_path / "home")
    result = dg.materialize(
        [global_model_asset],
        resources={"warehouse": WarehouseResource(home=str(home)),
                   "run_settings": RunSettingsResource(as_of=FORECAST_AS_OF.isoformat())})
    assert result.success
    [mat] = result.asset_materializations_for_node("global_model")
    assert mat.metadata["trained"].value is True and mat.metadata["version"].value == 1
    root = global_model.global_root(home)
    assert registry.current_version(root, global_model.GLOBAL_KEY) == 1


def test_prepared_global_rows_predict_what_predict_global_does(home: Path) -> None:
    # the forecast chunk's shortcut (booster parsed and rows encoded once, attributes per
    # entity) gives predict_global's values, bit for bit, for a known and an unseen park
    if registry.current_version(global_model.global_root(home), global_model.GLOBAL_KEY) is None:
        _global(home)
    loaded = registry.load_model(global_model.global_root(home), global_model.GLOBAL_KEY)
    with wh.reader(home) as conn:
        sf = forecast.slot_features(conn, "MK", FORECAST_AS_OF,
                                    FORECAST_AS_OF + timedelta(days=20))
    prepared = global_model.GlobalRows(loaded, sf.distinct, nthread=1)
    base = {c: 1.0 for c in global_model.ATTRIBUTE_NUMERIC} | {"posted_level": 37.5,
                                                                "queue_type": "STANDBY"}
    for attrs in (base | {"park_code": "MK"}, base | {"park_code": "ZZ", "duration": None}):
        expected = global_model.predict_global(loaded, sf.distinct.assign(**attrs), nthread=1)
        np.testing.assert_array_equal(prepared.predict(attrs), expected)


def test_a_young_entitys_forecast_moves_with_the_week_not_the_day(home: Path) -> None:
    """The blend weight is taken at the forecast week's inputs day, like the POSTED statistics:
    on the next day of the same week a young entity's file is left as it was (before, its
    weight moved daily, and with it its two-year file, its park's WTI and published files);
    the next week it moves."""
    if registry.current_version(global_model.global_root(home), global_model.GLOBAL_KEY) is None:
        _global(home)
    tue, thu, next_mon = (FORECAST_AS_OF + timedelta(days=d) for d in (2, 4, 8))

    def run(day) -> forecast.EntityResult:
        [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], day,
                                      FORECAST_HORIZON)
        return res

    first = run(tue)
    assert first.mode == forecast.MODEL and any("cold start" in n for n in first.notes)
    assert run(thu).mode == forecast.UNCHANGED
    assert run(next_mon).mode == forecast.MODEL
    with wh.reader(home) as conn:
        w = {d: cold_start.plan(conn, home, ["MK4"], d, inputs_as_of(d)).weights["MK4"]
             for d in (tue, thu, next_mon)}
    assert 0 < w[tue] == w[thu] < w[next_mon] < 1

"""The POSTED model (issue 14): trained on sampled POSTED rows, it drives posted_predicted; a
version without it (trained before it existed) falls back to the posted aggregates."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import forecast, posted_aggregates
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import (
    POSTED_SAMPLE_MIN,
    build_posted_frame,
    build_training_frame,
)
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_FIRST_DAY,
    FORECAST_HORIZON,
    NY,
    _finish,
    build_forecast_home,
    insert_facts,
)

PEAK_HOURS = (12, 13, 14, 15, 16, 17)  # weekend afternoons: POSTED 70 instead of 20


def _planted_facts() -> pd.DataFrame:
    """MK4: a POSTED every 10 minutes 09:00-22:00 of every day, 20 minutes except weekend
    afternoons 12:00-17:59 (70 minutes), 10 more in June (a level the weekday/half-hour naive cannot
    follow, so the model beats it on its newest days); 600 ACTUAL rows (an XGBoost model)."""
    days = pd.date_range(FORECAST_FIRST_DAY, FORECAST_AS_OF, freq="D")
    minutes = np.arange(9 * 60, 22 * 60, 10)
    local = (pd.DatetimeIndex(np.repeat(days.values, len(minutes)))
             + pd.to_timedelta(np.tile(minutes, len(days)), unit="m"))
    peak = (local.dayofweek >= 5) & np.isin(local.hour, PEAK_HOURS)
    observed = local.tz_localize(NY).tz_convert("UTC")
    rng = np.random.default_rng(5)
    # +-2 minutes of noise: exact ties would make the median (L1) leaves degenerate
    posted = pd.DataFrame({"entity_code": "MK4", "observed_at": observed,
                           "wait_time_type": "POSTED",
                           "wait_time_minutes": np.where(peak, 70, 20) + 10 * (local.month == 6)
                           + rng.integers(-2, 3, len(local))})
    act = posted.sample(600, random_state=5).copy()
    act["wait_time_type"] = "ACTUAL"
    act["observed_at"] = act["observed_at"] + pd.Timedelta(minutes=2)
    act["wait_time_minutes"] = (act["wait_time_minutes"] * 0.8
                                + rng.normal(0, 2, len(act))).round()
    return _finish(pd.concat([posted, act], ignore_index=True))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    # MK1 and MK3 are trained by the builder without POSTED rows: versions like the old ones
    home = build_forecast_home(tmp_path_factory.mktemp("posted_model") / "home")
    insert_facts(home, _planted_facts())
    with wh.writer(home) as conn:
        posted_aggregates.build_posted_aggregates(conn, FORECAST_AS_OF)
        frame = build_training_frame(conn, ["MK4"], FORECAST_AS_OF)
        posted = build_posted_frame(conn, ["MK4"], FORECAST_AS_OF)
    trained = training.train_entity(frame, "STANDBY", nthread=1, posted=posted)
    registry.save_version(home / "models", trained, code_version="t", params_hash="t",
                          target_count=len(frame))
    return home


def test_posted_sample_is_bounded_and_reweighted(home: Path) -> None:
    with wh.reader(home) as conn:
        posted = build_posted_frame(conn, ["MK4", "MK2"], FORECAST_AS_OF)
        n_posted, total_weight = conn.execute(
            "SELECT count(*), sum(power(0.5, date_diff('day', park_date, ?::DATE) / 365)) "
            "FROM fct_wait_times WHERE entity_code = 'MK4' AND wait_time_type = 'POSTED'",
            [FORECAST_AS_OF]).fetchone()
    # MK2 has no target row: no model, no POSTED rows read for it
    assert set(posted["entity_code"]) == {"MK4"}
    # 600 targets: cap max(3 x 600, 2000) = 2000 of 4,800 POSTED rows (the hash draw is near it)
    assert n_posted > 2 * POSTED_SAMPLE_MIN
    assert 0.9 * POSTED_SAMPLE_MIN < len(posted) < 1.1 * POSTED_SAMPLE_MIN
    # Horvitz-Thompson: the sample's weights sum to about the recency weights of every row
    assert posted["weight"].sum() == pytest.approx(total_weight, rel=0.1)
    assert posted["y"].between(18, 82).all()


def test_posted_model_follows_planted_weekday_hour_pattern(home: Path) -> None:
    model = registry.load_model(home / "models", "MK4")
    assert training.POSTED_MODEL in model.models, model.metrics.get("posted_skipped")
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], FORECAST_AS_OF,
                                  FORECAST_HORIZON)
    out = pd.read_parquet(res.path)
    dow = pd.to_datetime(out["park_date"]).dt.dayofweek
    hour = out["slot"].str[:2].astype(int)
    peak = (dow >= 5) & hour.isin(PEAK_HOURS)
    assert out["posted_predicted"].notna().all() and (out["posted_predicted"] % 5 == 0).all()
    assert out.loc[peak, "posted_predicted"].mean() > 60
    assert out.loc[~peak, "posted_predicted"].mean() < 40
    # the fallback lookup (weekday x hour level of the aggregates) sees the weekend peak too
    first, last = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    with wh.reader(home) as conn:
        sf = forecast.slot_features(conn, "MK", first, last)
        agg = forecast.posted_values(conn, "MK", ["MK4"], sf.keys, [])["MK4"][sf.key_inverse]
    sf_peak = ((pd.to_datetime(sf.frame["park_date"]).dt.dayofweek >= 5)
               & sf.frame["local_hour"].isin(PEAK_HOURS)).to_numpy()
    assert np.nanmin(agg[sf_peak]) > 60
    assert np.nanmax(agg[~sf_peak]) < 40


def test_version_without_posted_model_falls_back_to_aggregates(home: Path) -> None:
    model = registry.load_model(home / "models", "MK1")  # trained without POSTED rows
    assert training.POSTED_MODEL not in model.models
    assert training.predict_posted(model, pd.DataFrame()) is None
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                  FORECAST_HORIZON, recompute_all=True)
    assert res.mode == forecast.MODEL
    out = pd.read_parquet(res.path)
    first, last = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    with wh.reader(home) as conn:
        sf = forecast.slot_features(conn, "MK", first, last)
        agg = forecast.posted_values(conn, "MK", ["MK1"], sf.keys, [])["MK1"][sf.key_inverse]
    assert out["actual_predicted"].notna().all()
    np.testing.assert_array_equal(out["posted_predicted"].to_numpy(float), agg)


def test_posted_model_losing_to_its_naive_is_not_kept(monkeypatch) -> None:
    # the trainer's own held-out figures decide: MAE above naive * 1.05 -> no POSTED model
    monkeypatch.setattr(training, "_train_xgb",
                        lambda *a, **k: (b"raw", {"mae": 12.0, "naive_mae": 10.0}, None))
    posted = pd.DataFrame({"park_date": pd.date_range("2024-01-01", periods=600, freq="h").date})
    models, metrics, features = {}, {}, {}
    training._train_posted(posted, {}, 1, models, metrics, features)
    assert models == {} and "12.00 > naive 10.00" in metrics["posted_skipped"]
    monkeypatch.setattr(training, "_train_xgb",
                        lambda *a, **k: (b"raw", {"mae": 10.4, "naive_mae": 10.0}, None))
    training._train_posted(posted, {}, 1, models, metrics, features)
    assert models == {training.POSTED_MODEL: b"raw"}


def test_unchanged_posted_model_column_is_kept_not_predicted(home: Path, monkeypatch) -> None:
    # an incremental update carries the POSTED model over (lib.models.incremental): the next
    # forecast copies the column from the entity's file, the same values a prediction gives
    [first] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], FORECAST_AS_OF,
                                    FORECAST_HORIZON, recompute_all=True)
    key = forecast.curve_files.read_footer(Path(first.path))[0][forecast.POSTED_KEY]
    loaded = registry.load_model(home / "models", "MK4")
    again = SimpleNamespace(  # a new version with the same boosters: a new fingerprint
        entity_code="MK4", queue_type=loaded.queue_type, kind=loaded.kind,
        models=dict(loaded.models), encodings=loaded.encodings, fallback=loaded.fallback,
        metrics=loaded.metrics, holdout_mae=loaded.meta["holdout_mae"])
    outcome = registry.save_version(home / "models", again, code_version="t", params_hash="t",
                                    target_count=600)
    assert outcome.promoted
    predicted = pd.read_parquet(first.path)

    def no_prediction(*_a, **_k):
        raise AssertionError("the POSTED model predicted again")

    monkeypatch.setattr(training, "predict_posted", no_prediction)
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], FORECAST_AS_OF,
                                  FORECAST_HORIZON)
    assert res.mode == forecast.MODEL and res.model_version == outcome.version
    assert any("posted_predicted kept" in n for n in res.notes)
    kept = pd.read_parquet(res.path)
    pd.testing.assert_frame_equal(kept, predicted)  # the ACTUAL side is the same model too
    assert forecast.curve_files.read_footer(Path(res.path))[0][forecast.POSTED_KEY] == key
    monkeypatch.undo()

    # another POSTED model (or another window, inputs, encodings): predicted, not copied
    other = SimpleNamespace(**{**vars(again), "models": {
        **again.models, training.POSTED_MODEL: again.models[training.WITHOUT_POSTED]}})
    assert registry.save_version(home / "models", other, code_version="t", params_hash="t",
                                 target_count=600).promoted
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], FORECAST_AS_OF,
                                  FORECAST_HORIZON)
    assert not any("posted_predicted kept" in n for n in res.notes)
    out = pd.read_parquet(res.path)
    assert not np.array_equal(out["posted_predicted"], predicted["posted_predicted"])
    # and recompute_all predicts whatever the file holds
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK4"], FORECAST_AS_OF,
                                  FORECAST_HORIZON, recompute_all=True)
    assert not any("posted_predicted kept" in n for n in res.notes)


def _depth(booster) -> int:
    """The deepest leaf of any tree of the booster (a lone leaf is depth 0)."""
    def depth(node: dict) -> int:
        return 0 if "children" not in node else 1 + max(depth(c) for c in node["children"])
    return max(depth(json.loads(tree)) for tree in booster.get_dump(dump_format="json"))


def test_posted_model_grows_shallower_trees_than_the_actual_model(home: Path) -> None:
    # the sign's sample is fitted by trees of POSTED_XGB_PARAMS (at most 4 levels), the ACTUAL
    # model by XGB_PARAMS; on the same days the ACTUAL model does use its deeper trees. The
    # fixture's version (a test above saves later ones with other boosters)
    model = registry.load_model(home / "models", "MK4",
                                registry.kept_versions(home / "models", "MK4")[0])
    posted_depth = _depth(model.boosters[training.POSTED_MODEL])
    assert posted_depth <= training.POSTED_XGB_PARAMS["max_depth"] < training.XGB_PARAMS[
        "max_depth"]
    assert _depth(model.boosters[training.WITHOUT_POSTED]) > training.POSTED_XGB_PARAMS[
        "max_depth"]

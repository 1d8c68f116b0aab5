"""Per-entity training on synthetic frames shaped like features.build_training_frame."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from bambam_assets.lib.models import training
from bambam_assets.lib.models.features import FEATURES_WITH_POSTED, FEATURES_WITHOUT_POSTED
from bambam_assets.lib.models.metrics import TEST, TRAIN, VAL, chronological_split
from bambam_assets.lib.models.training import (
    MAX_ROUNDS,
    MIN_TARGETS_FOR_XGB,
    UNKNOWN,
    TrainedEntity,
    encode,
    fit_encodings,
    predict,
    train_entity,
)

METRIC_KEYS = {"mae", "rmse", "mape", "r2", "naive_mae", "best_iteration",
               "n_train", "n_val", "n_test"}


def synthetic_frame(n_days: int, per_day: int, seed: int = 0, posted_share: float = 1.0,
                    entity: str = "MK101") -> pd.DataFrame:
    """A learnable entity: mid-day peak, busier weekends and PEAK days, POSTED ≈ 1.2 × ACTUAL."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-02", periods=n_days, freq="D")
    day = np.repeat(np.arange(n_days), per_day)
    mins = rng.integers(180, 900, size=n_days * per_day)  # 09:00..21:00 on the park-day clock
    park_date = days[day]
    dow = park_date.dayofweek.to_numpy() + 1
    # a fifth of the days are "PEAK" days (+20): date_group_id knows, the naive baseline cannot
    peak = np.isin(day, rng.choice(n_days, size=n_days // 5, replace=False))
    signal = 10 + 40 * np.sin(np.pi * (mins - 180) / 720) + 15 * (dow >= 6) + 20 * peak
    y = np.maximum(0, np.round(signal + rng.normal(0, 4, size=len(mins))))
    month = park_date.month.to_numpy()
    posted = np.round(signal * 1.2 / 5) * 5
    posted = np.where(rng.random(len(mins)) < posted_share, posted, np.nan)
    frame = pd.DataFrame({
        "entity_code": entity, "park_code": "MK", "park_date": park_date,
        "observed_at": park_date.tz_localize("UTC") + pd.to_timedelta(mins + 600, unit="min"),
        "queue_type": "STANDBY", "y": y.astype(float),
        "mins_since_6am": mins.astype(float), "local_hour": (6 + mins // 60).astype(float),
        "day_of_week": dow.astype(float), "month": month.astype(float),
        "date_group_id": np.where(peak, "PEAK", np.where(dow >= 6, "WEEKEND", "WEEKDAY")),
        "season": np.where(month <= 2, "WINTER", "SPRING"),
        "park_year": park_date.year.to_numpy().astype(float),
        "mins_since_park_open": (mins - 180).astype(float),
        "park_open_hour": 9.0, "park_close_hour": 21.0, "park_hours_open": 12.0,
        "emh_morning": 0.0, "emh_evening": 0.0, "party_evening": 0.0,
        "posted_matched": posted, "posted_mean_30": posted, "posted_mean_60": posted,
        "weight": 0.5 ** ((n_days - day) / 365),
    })
    return frame.sort_values("observed_at").reset_index(drop=True)


@pytest.fixture(scope="module")
def standby() -> tuple[pd.DataFrame, TrainedEntity]:
    frame = synthetic_frame(60, 40, posted_share=0.8)
    return frame, train_entity(frame, "STANDBY", nthread=2)


def test_chronological_split_by_target_days():
    frame = synthetic_frame(20, 3)
    split = chronological_split(frame)
    days = frame.assign(s=split).groupby("park_date").s.agg(["min", "max"])
    assert (days["min"] == days["max"]).all()  # a day never straddles two parts
    assert list(days["min"].value_counts().sort_index()) == [14, 3, 3]
    assert frame.park_date[split == VAL].min() > frame.park_date[split == TRAIN].max()
    assert frame.park_date[split == TEST].min() > frame.park_date[split == VAL].max()


def test_fallback_under_500_is_mean_per_local_hour():
    frame = synthetic_frame(10, 40)
    frame.loc[frame.local_hour == 12, "local_hour"] = 13  # leave hour 12 without data
    assert len(frame) < MIN_TARGETS_FOR_XGB
    trained = train_entity(frame, "STANDBY")
    assert trained.kind == "hourly_fallback" and trained.models == {}
    expected = frame.groupby("local_hour").y.mean()
    assert trained.fallback["hour_means"] == {int(h): v for h, v in expected.items()}
    assert trained.fallback["overall_mean"] == frame.y.mean()
    probe = frame.head(3).copy()
    probe["local_hour"] = [9.0, 12.0, np.nan]
    pred = predict(trained, probe, with_posted=False)
    assert list(pred) == [expected[9.0], frame.y.mean(), frame.y.mean()]
    # with a POSTED reading: the stored ratio x the reading; rows without one: the hour's mean
    probe["posted_matched"] = [40.0, np.nan, 10.0]
    ratio = trained.fallback["posted_ratio"]
    pred = predict(trained, probe, with_posted=True)
    assert list(pred) == pytest.approx([ratio * 40.0, frame.y.mean(), ratio * 10.0])
    assert METRIC_KEYS <= set(trained.metrics["without_posted"])
    assert trained.metrics["without_posted"]["n_test"] > 0
    assert trained.holdout_mae == trained.metrics["without_posted"]["mae"]


def test_early_stopping_and_refit_rounds(standby):
    frame, trained = standby
    assert trained.kind == "xgboost"
    assert set(trained.models) == {"without_posted", "with_posted"}
    for name in trained.models:
        m = trained.metrics[name]
        assert m["best_iteration"] < MAX_ROUNDS // 4  # stopped well before 2000
        booster = xgb.Booster()
        booster.load_model(bytearray(trained.models[name]))
        assert booster.num_boosted_rounds() == m["best_iteration"] + 1 == m["rounds"]
    wp = trained.metrics["with_posted"]
    assert wp["n_train"] + wp["n_val"] + wp["n_test"] == frame.posted_matched.notna().sum()


def test_metrics_keys_and_skill(standby):
    frame, trained = standby
    for name in ("without_posted", "with_posted"):
        m = trained.metrics[name]
        assert METRIC_KEYS <= set(m)
        assert m["mae"] < m["naive_mae"]
        assert 0 < m["mae"] < 6 and m["rmse"] >= m["mae"] and m["r2"] > 0.8
    m = trained.metrics["without_posted"]
    assert m["n_train"] + m["n_val"] + m["n_test"] == len(frame) == trained.metrics["rows"]
    assert trained.holdout_mae == m["mae"]
    assert trained.metrics["split"]["test_end"] == "2023-03-02"
    assert trained.metrics["seconds"] > 0
    # the shipped models predict close to the signal on their own rows
    pred = predict(trained, frame, with_posted=False)
    assert np.abs(pred - frame.y).mean() < 5 and (pred >= 0).all()


def test_priority_trains_only_without_posted():
    frame = synthetic_frame(30, 20, posted_share=1.0).assign(queue_type="PRIORITY")
    trained = train_entity(frame, "PRIORITY")
    assert trained.kind == "xgboost" and set(trained.models) == {"without_posted"}
    assert "with_posted" not in trained.metrics
    # with_posted asked for: the version has none, the without-POSTED model answers
    np.testing.assert_array_equal(predict(trained, frame, True), predict(trained, frame, False))


def test_with_posted_skipped_under_50_matched_rows():
    frame = synthetic_frame(30, 20, posted_share=0.0)
    frame.loc[:39, "posted_matched"] = 30.0
    trained = train_entity(frame, "STANDBY")
    assert set(trained.models) == {"without_posted"}
    assert trained.metrics["with_posted_skipped"] == "40 rows with POSTED"


def test_encodings_and_unseen_category(standby):
    frame, trained = standby
    enc = fit_encodings(frame)
    assert enc["date_group_id"] == {"PEAK": 0, "WEEKDAY": 1, "WEEKEND": 2, UNKNOWN: 3}
    probe = frame.head(4).copy()
    probe["date_group_id"] = ["WEEKEND", "SOMETHING_NEW", None, "WEEKDAY"]
    probe["season"] = "SUMMER"  # no training row has it
    probe["park_year"] = 2099.0  # a number: a year past the last seen one is not "unseen"
    coded = encode(probe, enc)
    assert list(coded.columns) == FEATURES_WITH_POSTED
    assert coded.date_group_id.tolist()[:2] == [2.0, 3.0] and np.isnan(coded.date_group_id[2])
    assert (coded.season == enc["season"][UNKNOWN]).all() and (coded.park_year == 2099).all()
    for with_posted in (False, True):
        pred = predict(trained, probe, with_posted)
        assert pred.shape == (4,) and np.isfinite(pred).all() and (pred >= 0).all()
    # a frame without the POSTED columns (the forecast) works for the without-POSTED model
    assert predict(trained, probe[FEATURES_WITHOUT_POSTED], False).shape == (4,)


def test_deterministic_with_seed():
    frame = synthetic_frame(25, 24, seed=3)
    a = train_entity(frame, "STANDBY")
    b = train_entity(frame, "STANDBY")
    assert a.models == b.models
    assert a.metrics["without_posted"] == b.metrics["without_posted"]


def _two_year_frame(days: pd.DatetimeIndex, per_day: int = 12, seed: int = 5) -> pd.DataFrame:
    """Rows of a ride whose LOW half-year waits 20 and HIGH half-year 60 minutes, both 15 more
    in 2024 than in 2023 (the season's level moves from year to year)."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(len(days)), per_day)
    park_date = days[day]
    mins = rng.integers(180, 900, size=len(day))
    high = park_date.month.to_numpy() >= 7
    y = 20 + 40 * high + 15 * (park_date.year.to_numpy() == 2024) + rng.normal(0, 2, len(day))
    return pd.DataFrame({
        "entity_code": "MK7", "park_code": "MK", "park_date": park_date,
        "observed_at": park_date.tz_localize("UTC") + pd.to_timedelta(mins + 600, unit="min"),
        "queue_type": "STANDBY", "y": y.round(), "mins_since_6am": mins.astype(float),
        "local_hour": (6 + mins // 60).astype(float),
        "day_of_week": (park_date.dayofweek.to_numpy() + 1).astype(float),
        "month": park_date.month.to_numpy().astype(float), "date_group_id": "WEEKDAY",
        "season": np.where(high, "HIGH", "LOW"),
        "park_year": park_date.year.to_numpy().astype(float),
        "mins_since_park_open": (mins - 180).astype(float), "park_open_hour": 9.0,
        "park_close_hour": 21.0, "park_hours_open": 12.0, "emh_morning": 0.0,
        "emh_evening": 0.0, "party_evening": 0.0, "posted_matched": np.nan,
        "posted_mean_30": np.nan, "posted_mean_60": np.nan, "weight": 1.0,
    })


def test_a_year_past_the_training_years_takes_each_season_at_its_latest_level() -> None:
    # The forecast's days beyond the data are in years no row has. The model must read them as
    # the latest year (each season at its 2024 level), not as an unseen category: coded UNKNOWN
    # (the season_year category before), they went down whichever branch the largest code took.
    trained = train_entity(_two_year_frame(pd.date_range("2023-01-01", "2024-12-31")),
                           "STANDBY", nthread=2)
    assert trained.kind == "xgboost"
    ahead = _two_year_frame(pd.date_range("2025-01-01", "2025-12-31"), per_day=4)
    pred = predict(trained, ahead[FEATURES_WITHOUT_POSTED], with_posted=False)
    low = ahead["season"].to_numpy() == "LOW"
    assert abs(np.median(pred[low]) - 35) < 4  # LOW 2024; the two years' mix would be ~27
    assert abs(np.median(pred[~low]) - 75) < 4  # HIGH 2024


def test_posted_model_is_the_same_whatever_its_sample_weight_scale() -> None:
    # a POSTED row weighs its entity's 1 / sampling rate (features.build_posted_frame): an
    # entity sampled at an eighth has weights 8x another's. The POSTED model's leaf minimum
    # (POSTED_XGB_PARAMS min_child_weight) must mean the same number of rows for both.
    posted = synthetic_frame(60, 40, seed=4)
    probe = synthetic_frame(14, 20, seed=5)
    preds = []
    for factor in (1.0, 8.0):
        models, metrics, features = {}, {}, {}
        training._train_posted(posted.assign(weight=posted["weight"] * factor),
                               fit_encodings(posted), 1, models, metrics, features)
        assert training.POSTED_MODEL in models, metrics.get("posted_skipped")
        preds.append(training.predict_posted({"models": models,
                                              "encodings": fit_encodings(posted)}, probe))
    np.testing.assert_allclose(preds[0], preds[1], atol=1e-3)


def test_a_reopening_after_a_closure_weighs_less_for_half_a_year() -> None:
    frame = synthetic_frame(400, 4)
    dates = pd.to_datetime(frame["park_date"])
    assert training.reopening_date(frame) is None  # every day has rows
    # a closure: 60 days without a row, then the reopening (and a shorter break later: dates
    # 29 days apart are not a closure)
    closed = frame[~((dates >= "2023-04-11") & (dates < "2023-06-10"))
                   & ~((dates >= "2023-09-01") & (dates < "2023-09-29"))]
    assert training.reopening_date(closed) == date(2023, 6, 10)
    # a sign read through those weeks: the guests stopped timing it, the ride was not closed
    assert training.reopening_date(closed, posted=frame[["park_date"]]) is None
    out = training.downweight_reopening(closed.assign(weight=1.0), date(2023, 6, 10))
    d = pd.to_datetime(out["park_date"])
    inside = (d >= "2023-06-10") & (d < "2023-12-07")  # REOPEN_DAYS = 180
    assert (out.loc[inside, "weight"] == training.REOPEN_WEIGHT).all() and inside.any()
    assert (out.loc[~inside, "weight"] == 1.0).all()
    assert training.downweight_reopening(closed, None) is closed


def test_train_entity_down_weights_the_reopening_and_records_it(monkeypatch) -> None:
    frame = synthetic_frame(300, 8)
    dates = pd.to_datetime(frame["park_date"])
    closed = frame[(dates < "2023-04-01") | (dates >= "2023-06-01")].reset_index(drop=True)
    # after the reopening the waits ran 25 minutes lower for half a year, then came back
    reopened = pd.to_datetime(closed["park_date"]) >= "2023-06-01"
    low = reopened & (pd.to_datetime(closed["park_date"]) < "2023-08-15")
    shifted = closed.assign(y=np.where(low, np.maximum(0, closed["y"] - 25), closed["y"]))
    trained = train_entity(shifted, "STANDBY")
    assert trained.metrics["reopened"] == "2023-06-01"
    # the same rows with the reopening at its full weight: another model
    monkeypatch.setattr(training, "REOPEN_WEIGHT", 1.0)
    flat = train_entity(shifted, "STANDBY")
    assert flat.metrics["reopened"] == "2023-06-01"
    assert trained.models != flat.models


def test_chain_ratio_is_actual_over_matched_posted_in_the_last_year() -> None:
    n = training.MIN_POSTED_ROWS
    days = pd.to_datetime(["2023-01-10"] * 20 + ["2024-05-01"] * n + ["2024-06-01"] * 5)
    frame = pd.DataFrame({
        "park_date": days,
        "y": [100.0] * 20 + [30.0] * n + [12.0] * 5,
        # the year-old rows are out of the window; the newest five have no matched POSTED
        "posted_matched": [50.0] * 20 + [40.0] * n + [np.nan] * 5,
    })
    assert training.chain_ratio(frame) == pytest.approx(0.75)
    assert training.chain_ratio(frame.iloc[:20 + n - 1]) is None  # fewer matched rows than needed
    assert training.chain_ratio(frame.drop(columns="posted_matched")) is None

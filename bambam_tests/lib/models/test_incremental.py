"""Incremental updates: mode choice, continued boosting on a synthetic continuation, the guard."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.forecasts import band
from bambam_assets.lib.models import batch as train_batch
from bambam_assets.lib.models import incremental, registry, training
from bambam_tests.builders import INCR_NOW as NOW
from bambam_tests.builders import INCR_START as START


def test_continue_boosting_improves_on_the_continuation_and_passes_the_guard(
        base_version, tmp_path: Path) -> None:
    root, frame = base_version
    loaded = registry.load_model(root, "MK1")
    base = incremental.base_from_loaded(loaded)
    assert len(incremental.new_rows(frame, base)) == 300  # days 70..79, 30 a day
    # a window of the new rows only and big steps: the shift is learned within this update
    policy = incremental.IncrementalPolicy(rounds=30, eta=0.1, min_window_rows=300)
    upd = incremental.continue_training(frame, base, "STANDBY", policy=policy)
    assert upd is not None and upd.metrics["training_mode"] == "incremental"
    assert upd.metrics["last_full_retrain_at"] == NOW.isoformat()
    assert upd.metrics["base_version"] == 1
    # the update learned the +12 minutes the incumbent never saw, on the same held-out days
    assert upd.holdout_mae < 0.7 * upd.metrics["incumbent_mae"]
    rounds_before = loaded.boosters["without_posted"].num_boosted_rounds()
    assert upd.metrics["without_posted"]["rounds"] == rounds_before + 30
    assert set(upd.models) == {"without_posted", "with_posted"}
    # the update stores its band as a full retrain does (the forecast reads no training rows
    # for it): fit_band's offsets on the rows it read, to the stored rounding
    stored, fitted = band.stored_band(upd), band.fit_band(upd, frame)
    assert band.has_stored_band({"metrics": upd.metrics}) and stored.rows == fitted.rows
    np.testing.assert_allclose(stored.low, fitted.low, atol=1e-3 * fitted.scale)
    np.testing.assert_allclose(stored.high, fitted.high, atol=1e-3 * fitted.scale)
    assert abs(stored.scale - fitted.scale) < 1e-3
    # through the registry guard, judged against the incumbent's MAE on the same days
    work = tmp_path / "m"
    shutil.copytree(root, work)
    out = registry.save_version(work, upd, code_version=train_batch.TRAINING_CODE_VERSION,
                                params_hash=train_batch.params_hash(), target_count=len(frame),
                                incumbent_mae=upd.metrics["incumbent_mae"])
    assert out.promoted and out.version == 2
    assert f"<= {upd.metrics['incumbent_mae']:.3f}" in out.decision
    reloaded = registry.load_model(work, "MK1")
    pred = training.predict(reloaded, frame.tail(50), with_posted=False)
    assert len(pred) == 50 and (pred >= 0).all()


def test_a_sparse_new_day_is_fitted_within_a_window_reaching_back(base_version) -> None:
    root, frame = base_version
    base = incremental.base_from_loaded(registry.load_model(root, "MK1"))
    # the first two hours of the next day: a handful of new targets, as a sparse ACTUAL ride
    # brings in a day
    first_new = incremental.new_rows(frame, base)["observed_at"].min()
    few = frame[frame["observed_at"] <= first_new + pd.Timedelta(hours=2)]
    n_new = len(incremental.new_rows(few, base))
    assert 0 < n_new < 20
    policy = incremental.IncrementalPolicy(min_window_rows=240)
    window, counted = incremental.update_window(few, base, policy)
    assert counted == n_new and len(window) == 240
    assert window["observed_at"].is_monotonic_increasing
    assert window["observed_at"].max() == few["observed_at"].max()  # the new rows are in it
    upd = incremental.continue_training(few, base, "STANDBY", policy=policy)
    assert upd is not None
    assert upd.metrics["rows"] == 240 and upd.metrics["new_rows"] == n_new
    assert upd.metrics["incumbent_mae"] is not None  # scored on the window's newest days


def test_the_window_never_exceeds_the_entity_and_nothing_gives_none(base_version) -> None:
    root, frame = base_version
    base = incremental.base_from_loaded(registry.load_model(root, "MK1"))
    policy = incremental.IncrementalPolicy(min_window_rows=len(frame) + 100)
    window, _ = incremental.update_window(frame, base, policy)
    assert len(window) == len(frame)
    assert incremental.continue_training(frame.iloc[0:0], base, "STANDBY") is None


def test_choose_mode_rules() -> None:
    meta = {"kind": "xgboost", "code_version": "1", "params_hash": "p",
            "trained_at": (NOW - timedelta(days=2)).isoformat(), "metrics": {}}
    kw = {"code_version": "1", "params_hash": "p"}
    assert incremental.choose_mode("auto", meta, 150, NOW, **kw)[0] == "incremental"
    assert incremental.choose_mode("auto", meta, 5000, NOW, **kw)[0] == "full"
    assert incremental.choose_mode("incremental", meta, 5000, NOW, **kw)[0] == "incremental"
    assert incremental.choose_mode("full", meta, 1, NOW, **kw)[0] == "full"
    assert incremental.choose_mode("auto", None, 1, NOW, **kw) == ("full", "no current model")
    assert incremental.choose_mode("auto", meta | {"kind": "hourly_fallback"}, 1, NOW,
                                   **kw)[0] == "full"
    assert incremental.choose_mode("auto", meta, 1, NOW, code_version="2",
                                   params_hash="p")[0] == "full"
    # a chain of updates keeps the last FULL retrain time: after 7 days, full again
    upd = meta | {"metrics": {"training_mode": "incremental",
                              "last_full_retrain_at": (NOW - timedelta(days=8)).isoformat()},
                  "trained_at": NOW.isoformat()}
    mode, why = incremental.choose_mode("auto", upd, 1, NOW, **kw)
    assert mode == "full" and "older than 7 days" in why
    with pytest.raises(ValueError):
        incremental.choose_mode("sometimes", meta, 1, NOW, **kw)


def test_train_batch_auto_plans_incremental_and_records_mode(base_version, tmp_path) -> None:
    root, frame = base_version
    work = tmp_path / "m"
    shutil.copytree(root, work)
    result = train_batch.train_batch(frame, ["MK1"], {"MK1": "STANDBY"}, work, workers=1,
                                     mode="auto", now=NOW + timedelta(days=1))
    assert result.modes == {"MK1": "incremental"}
    assert not result.failures
    meta = registry.read_meta(work, "MK1", result.outcomes[0].version)
    assert meta["metrics"]["training_mode"] == "incremental"
    assert meta["trained_at"] == (NOW + timedelta(days=1)).isoformat()
    # full mode: a from-scratch version recording its own full-retrain time
    full = train_batch.train_batch(frame, ["MK1"], {"MK1": "STANDBY"}, work, workers=1,
                                   mode="full", now=NOW + timedelta(days=2))
    meta = registry.read_meta(work, "MK1", full.outcomes[0].version)
    assert full.modes == {"MK1": "full"}
    assert meta["metrics"]["training_mode"] == "full"
    assert meta["metrics"]["last_full_retrain_at"] == (NOW + timedelta(days=2)).isoformat()


def test_plan_then_tail_read_updates_with_the_true_target_count(base_version, tmp_path) -> None:
    root, frame = base_version
    work = tmp_path / "m"
    shutil.copytree(root, work)
    when = NOW + timedelta(days=1)
    planned = train_batch.plan_modes(work, {"MK1": len(frame)}, "auto", when)
    assert {code: m for code, (m, _) in planned.items()} == {"MK1": "incremental"}
    window = incremental.IncrementalPolicy().min_window_rows
    tail = frame.sort_values("observed_at").tail(window)  # what the tail read returns
    result = train_batch.train_batch(tail, ["MK1"], {"MK1": "STANDBY"}, work, workers=1,
                                     mode="auto", now=when, target_counts={"MK1": len(frame)},
                                     tail_entities=["MK1"], plan=planned)
    assert not result.failures and result.modes == {"MK1": "incremental"}
    meta = registry.read_meta(work, "MK1", result.outcomes[0].version)
    assert meta["metrics"]["training_mode"] == "incremental"
    assert meta["metrics"]["rows"] == window
    assert meta["target_count"] == len(frame)  # not the tail's length: staleness counts from it
    # a tail entity that turns out due in full is never trained on its tail: a failure instead
    full = train_batch.train_batch(tail, ["MK1"], {"MK1": "STANDBY"}, work, workers=1,
                                   mode="full", now=when, target_counts={"MK1": len(frame)},
                                   tail_entities=["MK1"])
    assert not full.outcomes and "only the newest rows were read" in str(full.failures["MK1"])


def test_an_update_keeps_the_posted_model_unchanged(base_version) -> None:
    root, frame = base_version
    base = incremental.base_from_loaded(registry.load_model(root, "MK1"))
    # a POSTED booster (here: any stored booster's bytes) rides along until the next full retrain
    raw = base.models["without_posted"]
    with_posted = incremental.BaseModel(**{**base.__dict__,
                                           "models": {**base.models, "posted": raw}})
    upd = incremental.continue_training(frame, with_posted, "STANDBY")
    assert upd is not None and upd.models["posted"] == raw
    assert upd.feature_names["posted"] == training.FEATURES_OF_MODEL["posted"]


def test_an_update_weighs_a_reopening_as_a_full_training_does(base_version, monkeypatch) -> None:
    root, frame = base_version
    base = incremental.base_from_loaded(registry.load_model(root, "MK1"))
    # no row on days 40..69: day 70, where the new rows start, is a reopening
    days = (pd.to_datetime(frame["park_date"]) - pd.Timestamp(START)).dt.days
    closed = frame[(days < 40) | (days >= 70)].reset_index(drop=True)
    assert training.reopening_date(closed) == (START + pd.Timedelta(days=70)).date()
    fitted = []
    real = incremental._continue
    monkeypatch.setattr(incremental, "_continue", lambda raw, x, rows, policy, nthread: (
        fitted.append(rows["weight"].to_numpy()) or real(raw, x, rows, policy, nthread)))
    policy = incremental.IncrementalPolicy(min_window_rows=300)
    assert incremental.continue_training(closed, base, "STANDBY", policy=policy) is not None
    new = incremental.new_rows(closed, base)
    assert np.allclose(fitted[-1], new["weight"].to_numpy() * training.REOPEN_WEIGHT)

"""Forecast and backfill on a tiny hand-made warehouse with trained models (the forecast home
of bambam_tests.builders)."""

from __future__ import annotations

import functools
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import backfill, band, forecast
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_FIRST_DAY,
    FORECAST_HORIZON,
    FORECAST_QUIET_DAY,
    FORECAST_SLOTS_PER_DAY,
    build_forecast_home,
    insert_facts,
    local_fact,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return build_forecast_home(tmp_path_factory.mktemp("forecast") / "home")


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def test_forecast_columns_rows_band_and_modes(home: Path) -> None:
    results = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1", "MK2", "MK3", "MK7"],
                                    FORECAST_AS_OF, FORECAST_HORIZON)
    modes = {r.entity_code: r.mode for r in results}
    assert modes == {"MK1": "model", "MK2": "posted_only", "MK3": "model", "MK7": "no_data"}
    mk1 = _read(results[0].path)
    assert tuple(mk1.columns) == curve_files.FORECAST_COLUMNS
    # the week's window: from the Monday of the as-of week (today included) to horizon + 6 days
    first, last = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    assert first.weekday() == 0 and first <= FORECAST_AS_OF < first + timedelta(days=7)
    days = (last - first).days + 1
    assert days == FORECAST_HORIZON + 7
    assert len(mk1) == days * FORECAST_SLOTS_PER_DAY == results[0].rows
    assert mk1["park_date"].min() == first and mk1["park_date"].max() == last
    assert mk1["actual_predicted"].notna().all()
    assert (mk1["actual_p10"] <= mk1["actual_predicted"]).all()
    assert (mk1["actual_predicted"] <= mk1["actual_p90"]).all()
    assert (mk1["actual_p90"] > mk1["actual_p10"]).mean() > 0.9
    assert (mk1["posted_predicted"] % 5 == 0).all()
    assert pq.read_schema(results[0].path).equals(curve_files.FORECAST_SCHEMA, check_metadata=False)
    # midday waits are longer than the first slot's (the synthetic curve peaks mid-day)
    first_day = mk1[mk1["park_date"] == mk1["park_date"].min()].set_index("slot")
    assert (first_day.loc["15:30", "actual_predicted"]
            > first_day.loc["09:00", "actual_predicted"] + 10)
    mk2 = _read(results[1].path)
    assert len(mk2) == days * FORECAST_SLOTS_PER_DAY
    assert mk2[["actual_predicted", "actual_p10", "actual_p90"]].isna().all().all()
    assert mk2["posted_predicted"].notna().all()
    assert "POSTED-only" in results[1].notes[0]
    assert not curve_files.entity_file(home, curve_files.FORECASTS_DIR, "MK7").exists()
    mk3 = _read(results[2].path)  # hourly fallback model: one value per local hour
    assert mk3.groupby(mk3["slot"].str[:2])["actual_predicted"].nunique().max() == 1
    # each file with a model records its version's WTI level factor; the curve stays unscaled
    for res in (results[0], results[2]):
        loaded = registry.load_model(home / "models", res.entity_code)
        assert forecast.wti_level(loaded) is not None
        assert forecast.stored_level(Path(res.path)) == forecast.wti_level(loaded)
    assert forecast.stored_level(Path(results[1].path)) is None  # POSTED-only: no model


def test_each_distinct_feature_row_is_predicted_once(home: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    calls: list[int] = []
    real = training.predict

    def counting(model, frame, with_posted, nthread=None, encoded=None):
        calls.append(len(frame))
        return real(model, frame, with_posted, nthread, encoded)

    monkeypatch.setattr(training, "predict", counting)
    first, last = forecast.forecast_window(FORECAST_AS_OF, FORECAST_HORIZON)
    with wh.reader(home) as conn:
        sf = forecast.slot_features(conn, "MK", first, last)
        train = build_training_frame(conn, ["MK1"], forecast.inputs_as_of(FORECAST_AS_OF))
    [res] = forecast.run_forecast(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                  FORECAST_HORIZON, recompute_all=True)
    # 21 days, one date group and season: days of the same weekday and month share every
    # feature (June and July here: 14 distinct days)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    distinct_days = len({(d.weekday(), d.month) for d in days})
    assert len(sf.frame) == len(days) * FORECAST_SLOTS_PER_DAY and distinct_days < len(days)
    assert len(sf.distinct) == distinct_days * FORECAST_SLOTS_PER_DAY == res.distinct_rows
    # one call, for the forecast: the band is stored with the version (no training rows read)
    assert calls == [distinct_days * FORECAST_SLOTS_PER_DAY]
    # a version trained before the band was stored: one more call, the band's fit on the
    # newest 30% of MK1's training rows up to the day before the window (on a copy of the home)
    sub = tmp_path / "home"
    shutil.copytree(home, sub)
    models_root = sub / "models"
    version = registry.current_version(models_root, "MK1")
    meta_path = registry.version_dir(models_root, "MK1", version) / registry.META_FILE
    meta = json.loads(meta_path.read_text())
    for key in ("band_low", "band_high"):
        meta["metrics"][training.WITHOUT_POSTED].pop(key)
    meta_path.write_text(json.dumps(meta))
    calls.clear()
    forecast.run_forecast(lambda: wh.reader(sub), sub, ["MK1"], FORECAST_AS_OF,
                          FORECAST_HORIZON, recompute_all=True)
    assert calls == [len(band.newest_rows(train)), distinct_days * FORECAST_SLOTS_PER_DAY]


def test_unchanged_inputs_are_not_recomputed(home: Path, tmp_path: Path) -> None:
    sub = tmp_path / "home"
    shutil.copytree(home, sub)
    run = functools.partial(forecast.run_forecast, lambda: wh.reader(sub), sub, ["MK1", "MK2"])
    first = run(FORECAST_AS_OF, FORECAST_HORIZON, recompute_all=True)
    # later days of the same week: same window, same inputs -> nothing recomputed
    later = run(FORECAST_AS_OF - timedelta(days=3), FORECAST_HORIZON)
    assert [r.mode for r in later] == [forecast.UNCHANGED] * 2
    assert [r.fingerprint for r in later] == [r.fingerprint for r in first]
    # a new model for MK1: only MK1 is recomputed
    with wh.reader(sub) as conn:
        frame = build_training_frame(conn, ["MK1"], FORECAST_AS_OF)
    registry.save_version(sub / "models", training.train_entity(frame, "STANDBY", nthread=1),
                          code_version="t", params_hash="t", target_count=len(frame),
                          tolerance=10.0)
    again = run(FORECAST_AS_OF, FORECAST_HORIZON)
    assert [r.mode for r in again] == [forecast.MODEL, forecast.UNCHANGED]
    # the next week: a new window, every entity recomputed
    next_week = run(FORECAST_AS_OF + timedelta(days=1), FORECAST_HORIZON)
    assert forecast.UNCHANGED not in [r.mode for r in next_week]


def test_backfill_source_rules(home: Path) -> None:
    extra = pd.concat([
        local_fact("MK1", FORECAST_QUIET_DAY, 10, 2, "ACTUAL", 33),  # -> 10:00 and 10:05 observed
        local_fact("MK1", FORECAST_QUIET_DAY, 11, 8, "POSTED", 40),  # -> 11:00..11:20 imputed
        local_fact("MK1", FORECAST_QUIET_DAY, 14, 0, "CLOSED", None),  # -> 13:50..14:15 closed
        local_fact("MK1", FORECAST_QUIET_DAY, 15, 55, "CLOSED", None),  # reopened at 16:00 ...
        local_fact("MK1", FORECAST_QUIET_DAY, 16, 0, "POSTED", 25),  # ... so 15:50 is imputed
    ])
    sub = home.parent / "backfill_home"
    build_forecast_home(sub)
    insert_facts(sub, extra)
    [res] = backfill.run_backfill(lambda: wh.reader(sub), sub, ["MK1"], FORECAST_AS_OF,
                                  window_days=60)
    frame = _read(res.path)
    assert tuple(frame.columns) == curve_files.BACKFILL_COLUMNS
    day = frame[frame["park_date"] == FORECAST_QUIET_DAY].set_index("slot")
    assert len(day) == FORECAST_SLOTS_PER_DAY
    src = day["source"]
    assert src[["10:00", "10:05"]].tolist() == ["observed"] * 2
    assert day.loc["10:00", "actual"] == 33 and day.loc["10:05", "actual"] == 33
    assert src[["09:55", "10:10"]].tolist() == ["missing"] * 2
    assert src[["11:00", "11:05", "11:10", "11:15", "11:20"]].tolist() == ["imputed"] * 5
    assert day.loc[["11:00", "11:20"], "actual"].notna().all()
    assert src[["10:55", "11:25"]].tolist() == ["missing"] * 2
    assert src[["13:50", "13:55", "14:00", "14:05", "14:10", "14:15"]].tolist() == ["closed"] * 6
    assert day.loc[src == "closed", "actual"].isna().all()
    assert src[["13:45", "14:20"]].tolist() == ["missing"] * 2
    assert src["15:50"] == "imputed"
    assert res.by_source["observed"] >= 2 and frame["park_date"].min() >= FORECAST_FIRST_DAY


def test_the_actual_forecast_takes_its_share_from_the_posted_forecast(home: Path,
                                                                      tmp_path: Path) -> None:
    sub = tmp_path / "home"
    shutil.copytree(home, sub)
    models_root = sub / "models"
    meta_path = registry.version_dir(models_root, "MK1", registry.current_version(
        models_root, "MK1")) / registry.META_FILE
    meta = json.loads(meta_path.read_text())
    main = meta["metrics"][training.WITHOUT_POSTED]
    assert main.get("chain_ratio") is not None  # trained with matched POSTED: stored

    def run(ratio: float | None) -> pd.DataFrame:
        main.pop("chain_ratio", None)
        if ratio is not None:
            main["chain_ratio"] = ratio
        meta_path.write_text(json.dumps(meta))
        [res] = forecast.run_forecast(lambda: wh.reader(sub), sub, ["MK1"], FORECAST_AS_OF,
                                      FORECAST_HORIZON, recompute_all=True)
        return _read(res.path)

    plain, chained = run(None), run(0.5)
    assert len(plain) == len(chained) and plain["posted_predicted"].notna().all()
    w = training.CHAIN_WEIGHT
    expected = (1 - w) * plain["actual_predicted"] + w * 0.5 * plain["posted_predicted"]
    assert (chained["actual_predicted"] - expected).abs().max() <= 0.1  # both rounded to 0.1
    assert (chained["actual_predicted"] - plain["actual_predicted"]).abs().max() > 1
    # the band moves with the value it is around (the same offsets)
    width = (chained["actual_p90"] - chained["actual_predicted"]) - (
        plain["actual_p90"] - plain["actual_predicted"])
    assert width.abs().max() <= 0.2

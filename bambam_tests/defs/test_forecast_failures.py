"""entity_forecast and entity_backfill isolate a failing entity, but fail the run when more than
BAMBAM_MAX_FAILED_SHARE of their entities failed (after the others are materialized)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.defs.forecasts import assets as fa
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.forecasts import backfill, forecast

KEYS = [f"MK{i}" for i in range(1, 11)]
TAGS = {"dagster/asset_partition_range_start": KEYS[0],
        "dagster/asset_partition_range_end": KEYS[-1]}


def _run(asset, home: Path, instance: dg.DagsterInstance):
    return dg.materialize(
        [asset], instance=instance, tags=TAGS, raise_on_error=False,
        resources={"warehouse": WarehouseResource(home=str(home)),
                   "run_settings": RunSettingsResource(as_of="2024-06-01")})


def _fake_backfill(failing: set[str]):
    def run_backfill(reader, home, keys, as_of, window, on_done, **_options):
        out = [backfill.BackfillResult(k, rows=1, path=f"/x/{k}",
                                       error=f"ValueError: bad {k}" if k in failing else None)
               for k in keys]
        for r in out:
            on_done(r)
        return out
    return run_backfill


def _fake_forecast(failing: set[str], no_data: set[str]):
    def run_forecast(reader, home, keys, as_of, horizon, on_done, **_options):
        out = []
        for k in keys:
            mode = (forecast.FAILED if k in failing else
                    forecast.NO_DATA if k in no_data else forecast.MODEL)
            out.append(forecast.EntityResult(k, mode, rows=1, path=f"/x/{k}",
                                             notes=[f"boom {k}"] if k in failing else []))
            on_done(out[-1])
        return out
    return run_forecast


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("entity", KEYS)
    return inst


def _error(result) -> str:
    (failure,) = result.get_step_failure_events()
    return failure.event_specific_data.error.message


def test_backfill_one_failure_among_many_succeeds(tmp_path, instance, monkeypatch) -> None:
    monkeypatch.delenv("BAMBAM_MAX_FAILED_SHARE", raising=False)
    monkeypatch.setattr(backfill, "run_backfill", _fake_backfill({"MK4"}))
    result = _run(fa.entity_backfill, tmp_path, instance)
    assert result.success
    assert instance.get_materialized_partitions(dg.AssetKey("entity_backfill")) == \
        set(KEYS) - {"MK4"}


def test_backfill_most_failing_fails_after_the_others_land(tmp_path, instance,
                                                          monkeypatch) -> None:
    monkeypatch.delenv("BAMBAM_MAX_FAILED_SHARE", raising=False)
    failing = {"MK1", "MK2", "MK3", "MK5", "MK6", "MK7"}
    monkeypatch.setattr(backfill, "run_backfill", _fake_backfill(failing))
    result = _run(fa.entity_backfill, tmp_path, instance)
    assert not result.success
    assert "6 of 10 entities failed (60%)" in _error(result)
    assert "MK1, MK2, MK3, MK5, MK6, MK7" in _error(result)
    assert instance.get_materialized_partitions(dg.AssetKey("entity_backfill")) == \
        {"MK4", "MK8", "MK9", "MK10"}


def test_forecast_counts_failures_among_entities_with_data(tmp_path, instance,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("BAMBAM_MAX_FAILED_SHARE", "0.25")
    # 6 entities without facts are skipped: 2 failures among the 4 forecast is 50% > 25%
    monkeypatch.setattr(forecast, "run_forecast", _fake_forecast(
        {"MK1", "MK2"}, {"MK5", "MK6", "MK7", "MK8", "MK9", "MK10"}))
    result = _run(fa.entity_forecast, tmp_path, instance)
    assert not result.success
    assert "2 of 4 entities failed (50%), more than BAMBAM_MAX_FAILED_SHARE=0.25 allows " \
        "(1 of 4): MK1, MK2" in _error(result)
    assert instance.get_materialized_partitions(dg.AssetKey("entity_forecast")) == {"MK3", "MK4"}
    # one failure among them: isolated, the run succeeds
    monkeypatch.setattr(forecast, "run_forecast", _fake_forecast({"MK1"}, set()))
    assert _run(fa.entity_forecast, tmp_path, instance).success

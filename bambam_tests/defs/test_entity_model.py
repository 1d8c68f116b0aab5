"""entity_model through Dagster: range runs, per-partition metadata, isolated failures, registry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.models import registry, training
from bambam_tests.builders import TRAINING_AS_OF, build_training_home

AS_OF = TRAINING_AS_OF
RANGE_TAGS = {"dagster/asset_partition_range_start": "MK1",
              "dagster/asset_partition_range_end": "MK4"}


@pytest.fixture
def warehouse_home(tmp_path: Path) -> Path:
    return build_training_home(tmp_path / "home")


def _materialize(home: Path, instance: dg.DagsterInstance, workers: int = 1,
                 raise_on_error: bool = True):
    return dg.materialize(
        [entity_model],
        instance=instance,
        resources={"warehouse": WarehouseResource(home=str(home)),
                   "run_settings": RunSettingsResource(as_of=AS_OF.isoformat())},
        run_config={"ops": {"entity_model": {"config": {"workers": workers}}}},
        tags=RANGE_TAGS,
        raise_on_error=raise_on_error,
    )


def test_range_run_trains_each_entity_with_its_own_metadata(warehouse_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", ["MK1", "MK2", "MK3", "MK4"])
    result = _materialize(warehouse_home, instance, workers=2)
    assert result.success
    mats = {m.partition: m.metadata for m in (
        e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    assert set(mats) == {"MK1", "MK2", "MK3"}  # MK4 has no target rows: skipped, not failed
    assert mats["MK1"]["kind"].value == "xgboost"
    assert mats["MK2"]["kind"].value == "hourly_fallback"
    assert mats["MK3"]["queue_type"].value == "PRIORITY"
    assert 0 < mats["MK1"]["best_iteration"].value < training.MAX_ROUNDS
    assert mats["MK1"]["mae"].value < mats["MK1"]["naive_mae"].value
    assert (instance.get_materialized_partitions(dg.AssetKey("entity_model"))
            == {"MK1", "MK2", "MK3"})
    models = warehouse_home / "models"
    assert registry.current_version(models, "MK1") == 1
    assert set(registry.load_model(models, "MK1").boosters) == {"without_posted", "with_posted",
                                                                "posted"}
    # PRIORITY: no with-POSTED model, but its own POSTED rows give it a POSTED model
    assert set(registry.load_model(models, "MK3").boosters) == {"without_posted", "posted"}
    with wh.reader(warehouse_home) as conn:
        rows = conn.execute("SELECT entity_code, version, is_current FROM model_registry "
                            "ORDER BY 1").fetchall()
        index = conn.execute("SELECT entity_code, target_count_at_last_model FROM entity_index "
                             "WHERE last_modeled_at IS NOT NULL ORDER BY 1").fetchall()
    assert rows == [("MK1", 1, True), ("MK2", 1, True), ("MK3", 1, True)]
    assert index == [("MK1", 900), ("MK2", 120), ("MK3", 700)]


def test_one_failing_entity_does_not_stop_the_others(warehouse_home: Path, monkeypatch) -> None:
    real = training.train_entity

    def flaky(frame, queue_type, nthread=1, posted=None, **kw):
        if frame["entity_code"].iloc[0] == "MK2":
            raise RuntimeError("boom in MK2")
        return real(frame, queue_type, nthread=nthread, posted=posted, **kw)

    monkeypatch.setattr(training, "train_entity", flaky)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", ["MK1", "MK2", "MK3", "MK4"])
    result = _materialize(warehouse_home, instance, workers=1)  # in-process: the patch applies
    assert result.success
    assert instance.get_materialized_partitions(dg.AssetKey("entity_model")) == {"MK1", "MK3"}
    observations = [e.event_specific_data.asset_observation
                    for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    errors = {o.partition: o.metadata.get("error") for o in observations}
    assert "boom in MK2" in errors["MK2"].value
    with wh.reader(warehouse_home) as conn:
        failures = conn.execute("SELECT entity_code, error FROM model_failures").fetchall()
    assert failures == [("MK2", "RuntimeError: boom in MK2")]
    assert registry.current_version(warehouse_home / "models", "MK2") is None


def _failing(monkeypatch, codes: set[str]) -> None:
    real = training.train_entity

    def flaky(frame, queue_type, nthread=1, posted=None, **kw):
        code = frame["entity_code"].iloc[0]
        if code in codes:
            raise RuntimeError(f"boom in {code}")
        return real(frame, queue_type, nthread=nthread, posted=posted, **kw)

    monkeypatch.setattr(training, "train_entity", flaky)


def _step_error(result) -> str:
    """The step's error message and those of its causes (a raised exception is wrapped)."""
    (failure,) = result.get_step_failure_events()
    error, messages = failure.event_specific_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_most_entities_failing_fails_the_run_after_the_others_land(
        warehouse_home: Path, monkeypatch) -> None:
    monkeypatch.delenv("BAMBAM_MAX_FAILED_SHARE", raising=False)
    _failing(monkeypatch, {"MK1", "MK2"})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", ["MK1", "MK2", "MK3", "MK4"])
    result = _materialize(warehouse_home, instance, workers=1, raise_on_error=False)
    assert not result.success
    error = _step_error(result)
    # MK4 (no targets) is skipped, not attempted: 2 of the 3 trained entities failed
    assert "2 of 3 entities failed (67%)" in error
    assert "BAMBAM_MAX_FAILED_SHARE=0.2 allows (1 of 3): MK1, MK2" in error
    # the successful partition is still materialized, the failures are still recorded
    assert instance.get_materialized_partitions(dg.AssetKey("entity_model")) == {"MK3"}
    assert registry.current_version(warehouse_home / "models", "MK3") == 1
    with wh.reader(warehouse_home) as conn:
        failures = conn.execute("SELECT entity_code FROM model_failures ORDER BY 1").fetchall()
    assert failures == [("MK1",), ("MK2",)]


def test_max_failed_share_setting(warehouse_home: Path, monkeypatch) -> None:
    _failing(monkeypatch, {"MK1", "MK2"})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("entity", ["MK1", "MK2", "MK3", "MK4"])
    monkeypatch.setenv("BAMBAM_MAX_FAILED_SHARE", "2")  # a bad setting: a clear error, no training
    bad = _materialize(warehouse_home, instance, workers=1, raise_on_error=False)
    assert not bad.success
    assert "BAMBAM_MAX_FAILED_SHARE must be a number from 0 to 1" in _step_error(bad)
    assert instance.get_materialized_partitions(dg.AssetKey("entity_model")) == set()
    monkeypatch.setenv("BAMBAM_MAX_FAILED_SHARE", "0.7")  # 2 of 3 is within 70% (3 * 0.7 -> 3)
    assert _materialize(warehouse_home, instance, workers=1).success
    assert instance.get_materialized_partitions(dg.AssetKey("entity_model")) == {"MK3"}

"""Every asset has an owner in automation, and the declarative owners follow data versions.

The second part evaluates the real definitions' automation conditions
(`dg.evaluate_automation_conditions`) over materializations recorded with the data versions the
assets write: an upstream that re-materializes with the same data version requests nothing
downstream; a changed one requests exactly the partitions it maps to.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg

# Dagster internals the backfill test needs: the automation sensor's request builder and the
# backfill daemon's first step (no public API runs either without a daemon)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.execution.asset_backfill import AssetBackfillData
from dagster._serdes import deserialize_value, serialize_value

from bambam_assets.definitions import defs
from bambam_assets.defs.automation import sensors
from bambam_assets.defs.conditions import DATA_VERSION_TAG

ENTITIES = ["DL1", "DL2", "MK1"]


def _owners() -> dict[str, list[str]]:
    """asset -> what launches it: its automation condition, sensors and schedules."""
    graph = defs.resolve_asset_graph()
    owners: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.automation_condition is not None:
            owners.setdefault(key.to_user_string(), []).append(
                f"condition {node.automation_condition.get_label()}")
    repo = defs.get_repository_def()
    for obj in [*repo.sensor_defs, *repo.schedule_defs]:
        if isinstance(obj, dg.AutomationConditionSensorDefinition):
            continue
        names = ([obj.job_name] if isinstance(obj, dg.ScheduleDefinition)
                 else [t.job_name for t in obj.targets])
        for job_name in names:
            job = defs.resolve_job_def(job_name)
            for key in job.asset_layer.executable_asset_keys:
                owners.setdefault(key.to_user_string(), []).append(obj.name)
    return owners


def test_every_executable_asset_has_an_owner() -> None:
    graph = defs.resolve_asset_graph()
    executable = {k.to_user_string() for k in graph.get_all_asset_keys()
                  if graph.get(k).is_executable}
    owners = _owners()
    assert executable - set(owners) == set()
    # the owners the README's table names
    assert "raw_files_sensor" in owners["fct_wait_times"]
    assert {"retrain_sensor", "weekly_full_retrain_schedule"} <= set(owners["entity_model"])
    assert "model_forecast_sensor" in owners["entity_forecast"]  # after new models
    assert any(o.startswith("condition") for o in owners["posted_aggregates"])
    assert any(o.startswith("condition") for o in owners["park_wti"])


def _check(instance: dg.DagsterInstance, passed: bool) -> None:
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("fct_wait_times"),
        check_name="fct_wait_times_keys_unique_not_future", passed=passed))


def _materialize(instance: dg.DagsterInstance, key: str, version: str,
                 partition: str | None = None, check_passed: bool = True) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(
        key, partition=partition, tags={DATA_VERSION_TAG: version}))
    if key == "fct_wait_times":  # its blocking check ran with the ingest
        _check(instance, check_passed)


def _settled(instance: dg.DagsterInstance) -> None:
    """A home where everything was built once: the shared inputs, and each entity's model,
    forecast and backfill."""
    instance.add_dynamic_partitions("entity", ENTITIES)
    for key in ("fct_wait_times", "dim_calendar", "dim_season", "dim_park_hours",
                "posted_aggregates", "dim_entity"):
        _materialize(instance, key, "v1")
    for code in ENTITIES:
        _materialize(instance, "entity_model", "v0001", code)
        _materialize(instance, "entity_forecast", "f1", code)
        _materialize(instance, "entity_backfill", "b1", code)


def _requested(result, key: str) -> set[str | None]:
    return set(result.get_requested_partitions(dg.AssetKey(key)))


def test_forecasts_follow_data_versions_not_materializations() -> None:
    with dg.instance_for_test() as instance:
        # MK2 has a model but no forecast yet (its first comes with the retrain run)
        instance.add_dynamic_partitions("entity", [*ENTITIES, "MK2"])
        shared = ["fct_wait_times", "dim_calendar", "dim_season", "dim_park_hours",
                  "posted_aggregates"]
        for key in shared:
            _materialize(instance, key, "v1")
        for code in ENTITIES:
            _materialize(instance, "entity_model", "v0001", code)
            _materialize(instance, "entity_forecast", "f1", code)
            _materialize(instance, "entity_backfill", "b1", code)
        _materialize(instance, "entity_model", "v0001", "MK2")
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert _requested(first, "entity_forecast") == set()

        # the daily dimensions run rebuilt nothing: same data versions, nothing requested
        for key in ("dim_calendar", "dim_season", "dim_park_hours", "posted_aggregates"):
            _materialize(instance, key, "v1")
        same = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert _requested(same, "entity_forecast") == set()
        assert _requested(same, "entity_backfill") == set()

        # new models: not the condition's (model_forecast_sensor follows them, one range run)
        _materialize(instance, "entity_model", "v0002", "MK1")
        model = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=same.cursor)
        assert _requested(model, "entity_forecast") == set()
        assert _requested(model, "entity_backfill") == set()  # a new model keeps history
        _materialize(instance, "entity_forecast", "f2", "MK1")
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=model.cursor)
        assert _requested(after, "entity_forecast") == set()
        assert _requested(after, "park_wti") == {None}  # the WTI follows the curve file

        # new POSTED statistics (a new week): every entity's forecast that exists, one range
        _materialize(instance, "posted_aggregates", "v2")
        week = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor)
        assert _requested(week, "entity_forecast") == set(ENTITIES)
        # new facts: the backfill of every entity with a model (each recomputes only its changed
        # days; MK2's first backfill too)
        _materialize(instance, "fct_wait_times", "v2")
        facts = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=week.cursor)
        assert _requested(facts, "entity_backfill") == {*ENTITIES, "MK2"}
        # the dimensions that read the facts follow them (each a no-op when its inputs'
        # fingerprint did not change)
        assert _requested(facts, "dim_entity") == {None}
        assert _requested(facts, "dim_calendar") == set()


def test_model_forecast_sensor_requests_one_range_run_of_the_promoted_entities() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("entity", ["DL1", "DL2", "DL3", "MK1"])
        sensor = sensors.build_model_forecast_sensor()

        def tick(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

        assert tick(None).skip_message == "no new entity_model materialization"
        for code, promoted in (("DL1", True), ("DL2", False), ("MK1", True)):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                "entity_model", partition=code, metadata={"promoted": promoted}))
        data = tick(None)
        (request,) = data.run_requests
        assert request.asset_selection == [dg.AssetKey("entity_forecast")]
        assert request.run_config["ops"]["entity_forecast"]["config"]["only"] == ["DL1", "MK1"]
        # the whole key range: one run, not one per contiguous range
        assert (request.tags["dagster/asset_partition_range_start"],
                request.tags["dagster/asset_partition_range_end"]) == ("DL1", "MK1")
        # handled: nothing more until the next model; a rejected challenger requests nothing
        assert tick(data.cursor).run_requests == []
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "entity_model", partition="DL3", metadata={"promoted": False}))
        rejected = tick(data.cursor)
        assert rejected.run_requests == [] and "none promoted" in rejected.skip_message


def test_entities_added_after_their_facts_get_their_first_backfill() -> None:
    """A fresh home under the daemon's production intervals (bench/automation_cost.py found it):
    the ingest's facts and the dimensions land before the raw-files sensor's next tick adds the
    entity partitions, so the facts' data version changed while there was no partition to
    request. The new partitions, missing, are requested once, by the first tick after their
    inputs (their first model, from the retrain run) are no longer missing."""
    with dg.instance_for_test() as instance:
        for key in ("fct_wait_times", "dim_calendar", "dim_season", "dim_park_hours",
                    "posted_aggregates"):
            _materialize(instance, key, "v1")
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert _requested(before, "entity_backfill") == set()  # no entity partition yet
        instance.add_dynamic_partitions("entity", ENTITIES)
        blocked = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                    cursor=before.cursor)
        assert _requested(blocked, "entity_backfill") == set()  # no model yet
        for code in ENTITIES:  # the retrain run (its forecasts come with it)
            _materialize(instance, "entity_model", "v0001", code)
            _materialize(instance, "entity_forecast", "f1", code)
        added = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=blocked.cursor)
        assert _requested(added, "entity_backfill") == set(ENTITIES)
        # requested once: an entity whose backfill wrote nothing (no facts) is not asked again
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=added.cursor)
        assert _requested(again, "entity_backfill") == set()


def test_a_curve_file_written_while_the_wti_ran_requests_the_wti_again() -> None:
    """Found by the daemon test on PostgreSQL: a WTI run started before the new day's backfill,
    the backfill's files landed after the WTI had read the curves, and both materializations
    reached the same automation tick. The WTI must follow that backfill; it must not be asked
    again for curves that did not change after it was requested."""
    with dg.instance_for_test() as instance:
        _settled(instance)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        _materialize(instance, "entity_forecast", "f2", "MK1")  # a new forecast file
        start = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=first.cursor)
        assert _requested(start, "park_wti") == {None}
        # the requested WTI run: its materialization, then a backfill file written after it
        # had read the curves, both before the next tick
        _materialize(instance, "park_wti", "w1")
        _materialize(instance, "park_wti_daily", "w1")
        time.sleep(0.01)
        _materialize(instance, "entity_backfill", "b2", "DL1")
        raced = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=start.cursor)
        assert _requested(raced, "park_wti") == {None}
        # that run, once materialized, with no curve written since: nothing more
        _materialize(instance, "park_wti", "w2")
        _materialize(instance, "park_wti_daily", "w2")
        done = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                 cursor=raced.cursor)
        assert _requested(done, "park_wti") == set()
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=done.cursor)
        assert _requested(quiet, "park_wti") == set()


def _backfill_roots_error(instance: dg.DagsterInstance, result) -> str | None:
    """The asset backfill the automation sensor would make of this tick's requests, put through
    the backfill daemon's first step (its root partitions); its error, or None."""
    with partition_loading_context(datetime.now(UTC), instance):
        requests = build_run_requests([r.true_subset for r in result.results],
                                      defs.resolve_asset_graph(), {}, emit_backfills=True)
        (backfill,) = [r for r in requests if r.asset_graph_subset is not None]
        data = AssetBackfillData.from_asset_graph_subset(
            backfill.asset_graph_subset, backfill_start_timestamp=time.time(),
            dynamic_partitions_store=instance)
        try:
            data.get_target_root_asset_graph_subset(AssetGraphView.for_test(defs, instance))
        except dg.DagsterInvariantViolationError as e:
            return str(e)
    return None


def test_a_latched_entity_request_and_its_input_go_in_separate_asset_backfills() -> None:
    """Found by the daemon test: new facts while their blocking check had not passed (or an
    input's run was in progress) latch both the dimensions and every entity's backfill; the tick
    that releases them requests both. Evaluated by one automation sensor they formed ONE asset
    backfill, which Dagster's backfill daemon failed at once ("Unable to determine root
    partitions"): the entity subset came out of the stored cursor as key ranges. The entity
    curves have their own sensor (defs/automation/sensors.py ENTITY_CURVES), so each sensor's
    backfill passes that step."""
    sensors_by_name = {s.name: s for s in defs.get_repository_def().sensor_defs
                       if isinstance(s, dg.AutomationConditionSensorDefinition)}
    split = [sensors_by_name["bambam_automation_sensor"].asset_selection,
             sensors_by_name["bambam_entity_automation_sensor"].asset_selection]
    for selections in (split, [dg.AssetSelection.all()]):
        with dg.instance_for_test() as instance:
            _settled(instance)

            def tick(selection, cursor):
                # the daemon stores each sensor's cursor between ticks: round-trip it as it does
                return dg.evaluate_automation_conditions(
                    defs=defs, instance=instance, asset_selection=selection,
                    cursor=None if cursor is None else deserialize_value(
                        serialize_value(cursor), AssetDaemonCursor))

            results = [tick(selection, None) for selection in selections]
            # new facts whose blocking check failed: every layer below waits, latched
            _materialize(instance, "fct_wait_times", "v2", check_passed=False)
            results = [tick(sel, r.cursor) for sel, r in zip(selections, results, strict=True)]
            assert not any(_requested(r, "entity_backfill") or _requested(r, "dim_park_hours")
                           for r in results)
            # the check passes (a re-run of it): the latched requests are released together
            _check(instance, passed=True)
            results = [tick(sel, r.cursor) for sel, r in zip(selections, results, strict=True)]
            released = {key: set().union(*(_requested(r, key) for r in results))
                        for key in ("entity_backfill", "dim_park_hours")}
            assert released == {"entity_backfill": set(ENTITIES), "dim_park_hours": {None}}
            errors = [_backfill_roots_error(instance, r) for r in results
                      if _requested(r, "entity_backfill")]
            if selections is split:
                assert errors == [None]
            else:  # the control: Dagster 1.13's failure, while it lasts, on the single sensor
                assert errors[0] and "Unable to determine root partitions" in errors[0]

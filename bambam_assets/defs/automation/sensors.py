"""The retrain sensor: one staleness query per tick, ONE range run of entity_model for the due list.

Why a sensor and not a custom AutomationCondition: the condition computes the same partitions,
but the daemon then launches one run per contiguous key range (measured), about one run per
entity; the sensor requests a single run over the whole `entity` key range with
`TrainConfig.only` = the due entities (tier, then target count order), so 1,700 entities cost one
run and one worker pool.

The sensor only reads the warehouse (read-only connection; a tick is skipped while a writer holds
it). The evaluation is recorded by the run it requests: entity_model re-evaluates at the sensor's
clock (`TrainConfig.evaluated_at`) and writes `retrain_evaluations` in the write connection it
opens anyway, so no extra run per tick and the sensor never writes. The reasons are visible in
the tick (log lines, skip reason) and in the run (tags, config `reasons`).

The due list, run config and tags come from the builder `bambam run` uses as well
(lib/models/retrain.py, defs/models/retrain.py): a change to the rule changes both paths.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import duckdb
from filelock import FileLock, Timeout

from bambam_assets.defs.forecasts.assets import entity_forecast
from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.models.retrain import due_run
from bambam_assets.defs.resources import RunKnobs, RunSettingsResource, WarehouseResource
from bambam_assets.lib.core import settings
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.models import retrain, training_lock
from bambam_assets.lib.models.retrain import (  # noqa: F401 - re-exported for callers and tests
    RetrainPlan,
    plan_retrain,
    range_tags,
    window_start,
)

TRIGGER_TAG = retrain.TRIGGER_TAG
RANGE_START, RANGE_END = retrain.RANGE_START_TAG, retrain.RANGE_END_TAG
SENSOR_TRIGGER = "retrain_sensor"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def retrain_run_request(plan: RetrainPlan, keys: list[str], now: datetime,
                        mode: str = "full", knob_tags: dict[str, str] | None = None,
                        ) -> dg.RunRequest:
    """ONE run of entity_model over the full key range, training only the due entities;
    `knob_tags`: the run knobs (RunKnobs.tags)."""
    return due_run(plan, keys, now, mode, SENSOR_TRIGGER, knob_tags).request(plan.run_key)


# Training reads these, and the forecasts that follow read posted_aggregates too. On a fresh
# home the automation builds them after the first ingest; until then the sensor waits.
NEEDED_BEFORE_TRAINING = sorted({*(k.to_user_string() for k in entity_model.dependency_keys),
                                 "posted_aggregates"})


def missing_upstream(instance: dg.DagsterInstance) -> list[str]:
    """The assets the retrain run reads that were never materialized on this instance."""
    return [name for name in NEEDED_BEFORE_TRAINING
            if instance.get_latest_materialization_event(dg.AssetKey(name)) is None]


def _summary(reasons: dict[str, str], limit: int = 25) -> str:
    items = [f"{code}: {why}" for code, why in list(reasons.items())[:limit]]
    more = len(reasons) - limit
    return "; ".join(items) + (f"; ... and {more} more" if more > 0 else "")


def _writer_active(home) -> bool:
    # the same lock file warehouse.writer() holds for the whole write
    lock = FileLock(str(HomePaths(home).warehouse_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


# A STARTED run reaches entity_model's training lock within seconds (a one-asset run): one that
# still does not hold it after this long while nobody holds it is a run whose process died
# (kill -9 of a `bambam run`: an in-process run is never marked failed), not a training.
STARTED_GRACE_S = 600.0


def _trains(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether `run` executes entity_model: by its asset selection, else (a run of a job whose
    selection is implicit, like `materialize`'s) by the steps of its execution plan."""
    if run.asset_selection:
        return entity_model.key in run.asset_selection
    if not run.execution_plan_snapshot_id:
        return False
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return entity_model.op.name in set(plan.step_keys_to_execute or
                                       (step.key for step in plan.steps))


def training_in_progress(instance: dg.DagsterInstance, home, now: datetime) -> str | None:
    """What trains entity_model right now, or None: an in-progress run whose selection holds
    entity_model, whoever launched it (this sensor, the weekly schedule, a UI backfill, a CLI run
    on this instance; tags do not matter), or the holder of the home's training lock (a
    `bambam run` on another instance). Launching beside it would train the same entities twice.
    """
    holder = training_lock.current_holder(home)
    runs = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=IN_PROGRESS),
                                           limit=200):
        run = record.dagster_run
        if not _trains(instance, run):
            continue
        started = record.start_time or record.create_timestamp.timestamp()
        if (run.status == dg.DagsterRunStatus.STARTED and holder is None
                and now.timestamp() - started > STARTED_GRACE_S):
            continue  # its process is gone (see STARTED_GRACE_S)
        runs.append(f"training run {run.run_id} "
                    f"({run.tags.get(TRIGGER_TAG, 'no bambam trigger tag')}, "
                    f"{run.status.value}) in progress")
    if holder is not None:
        runs.append(f"training lock held by {holder.describe()}")
    return "; ".join(runs) or None


def build_retrain_sensor(
    name: str = "retrain_sensor", *, clock: Callable[[], datetime] | None = None,
    minimum_interval_seconds: int = 300, window_hours: int = 6, mode: str | None = None,
) -> dg.SensorDefinition:
    """The retrain sensor. `clock` gives the evaluation instant (tests drive time with it).

    `mode` is TrainConfig.mode of the requested run; None (default) reads BAMBAM_TRAIN_MODE at
    each tick ("auto" unless set: continue boosting where lib/models/incremental.py allows it,
    with a full retrain at least weekly; the weekly full-retrain schedule always asks for "full").
    """

    @dg.sensor(
        name=name, target=[entity_model],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the staleness rule (lib/models/staleness.py) and requests ONE range "
        "run of entity_model training only the stale entities, in tier order.",
    )
    def _retrain_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                        run_settings: RunSettingsResource):
        now = (clock or (lambda: datetime.now(UTC)))()
        home = warehouse.home_path()
        if not wh.warehouse_path(home).exists():
            return dg.SkipReason("no warehouse yet: run the pipeline first")
        busy = training_in_progress(context.instance, home, now)
        if busy:
            return dg.SkipReason(f"{busy}: evaluating after it")
        waiting = missing_upstream(context.instance)
        if waiting:
            return dg.SkipReason(f"waiting for {', '.join(waiting)} (built by the automation "
                                 "sensor after the first ingest)")
        if _writer_active(home):
            return dg.SkipReason("warehouse locked by a writer: evaluating next tick")
        as_of = run_settings.as_of_date()
        try:
            with wh.reader(home, timeout_s=5) as conn:
                evaluation = retrain.evaluate(conn, now, as_of)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            return dg.SkipReason(f"warehouse locked by a writer ({exc}): evaluating next tick")
        keys = context.instance.get_dynamic_partitions(entity_partitions.name)
        plan = plan_retrain(evaluation, keys, now, as_of, window_hours)
        for code, why in plan.reasons.items():
            context.log.info(f"due {code}: {why}")
        for code, why in plan.fresh.items():
            context.log.info(f"not due {code}: {why}")
        add = ([entity_partitions.build_add_request(plan.missing_partitions)]
               if plan.missing_partitions else [])
        if not plan.due:
            msg = (f"nothing due among {len(evaluation)} entities (as of {as_of}): "
                   f"{_summary(plan.fresh)}")
            if not add:
                return dg.SkipReason(msg)
            context.log.info(msg)
            return dg.SensorResult(dynamic_partitions_requests=add)
        run_mode = mode or settings.train_mode()
        knobs = RunKnobs.from_settings(as_of=as_of, train_mode=run_mode)
        return dg.SensorResult(
            run_requests=[retrain_run_request(plan, keys, now, run_mode, knobs.tags())],
            dynamic_partitions_requests=add)

    return _retrain_sensor


RETRAIN_INTERVAL_S, AUTOMATION_INTERVAL_S = 300, 30  # defaults; BAMBAM_SENSOR_INTERVAL_S
FORECAST_TRIGGER = "model_forecast_sensor"
retrain_sensor = build_retrain_sensor(minimum_interval_seconds=RETRAIN_INTERVAL_S)

# Declarative automation (eager forecasts, on_cron WTI, attached by their own modules) runs only
# under a sensor that is RUNNING on a fresh instance: the auto-created default one starts STOPPED.
# Forecasts after new models. Why a sensor and not entity_forecast's condition: the promoted
# entities are scattered over the key range, and the daemon runs a declarative request as one
# run per contiguous key range (measured: about 6 s each, one run per entity at worst). Nor can
# the retrain run carry the forecasts: entity_model's range step yields per-partition
# materializations, not an output, so a downstream step in the same run is skipped (measured
# under the daemon; runner.py runs them apart for the same reason). This sensor requests ONE
# range run of entity_forecast for exactly the entities whose CURRENT model changed.
def promoted_partitions(records) -> list[str]:
    """Entities of these entity_model materializations whose current version changed (a
    challenger that was not promoted left the forecast's model as it was)."""
    out = set()
    for record in records:
        mat = record.event_log_entry.asset_materialization
        promoted = mat.metadata.get("promoted")
        if mat.partition and (promoted is None or promoted.value):
            out.add(mat.partition)
    return sorted(out)


def build_model_forecast_sensor(minimum_interval_seconds: int = AUTOMATION_INTERVAL_S,
                                ) -> dg.SensorDefinition:
    """One entity_forecast range run for the entities whose model changed since the cursor
    (the storage id of the last entity_model materialization handled)."""

    @dg.sensor(
        name=FORECAST_TRIGGER, target=[entity_forecast],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After entity_model materializations, requests ONE range run of "
        "entity_forecast for exactly the entities whose current model changed.",
    )
    def _tick(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else 0
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=entity_model.key, after_storage_id=after),
            limit=10_000, ascending=True).records  # Dagster's cap; the next tick takes the rest
        if not records:
            return dg.SkipReason("no new entity_model materialization")
        cursor = str(max(r.storage_id for r in records))
        changed = promoted_partitions(records)
        keys = context.instance.get_dynamic_partitions(entity_partitions.name)
        if not changed or not keys:
            return dg.SensorResult(skip_reason=f"{len(records)} new models, none promoted",
                                   cursor=cursor)
        context.log.info(f"forecast after new models: {', '.join(changed)}")
        request = dg.RunRequest(
            run_key=f"forecast-after-{cursor}", asset_selection=[entity_forecast.key],
            tags={**RunKnobs.from_settings().tags(), **retrain.range_tags(keys),
                  TRIGGER_TAG: FORECAST_TRIGGER},
            run_config={"ops": {entity_forecast.op.name: {"config": {"only": changed}}}})
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    return _tick


model_forecast_sensor = build_model_forecast_sensor()


# The per-entity curve assets. They have an automation sensor of their own so that an asset
# backfill of their partitions never also holds one of their unpartitioned inputs (a dimension
# the same tick requested). Such a backfill failed at once in Dagster 1.13's backfill daemon,
# "Unable to determine root partitions for backfill ... not targeted: []", whenever the entity
# subset had come out of the automation cursor as key ranges (a request latched while an
# input's run was in progress or its blocking check failed, released on the tick that also
# released the dimension): reached from the dimension it is a plain key set, and
# asset_backfill.py compares the two with ==, unequal by type. The condition's failure was then
# "handled" and nothing asked again until the next day's facts. Each sensor's tick makes its own
# backfill, and with the entity asset a root of its backfill the daemon compares the stored
# subset with itself (reproduced in bambam_tests/defs/test_automation_owners.py). When both
# are due on one tick, the curves now wait for the dimensions' run (~any_deps_in_progress) and
# follow its data versions; measured under the daemon, a new day took no more runs (README).
ENTITY_CURVES = dg.AssetSelection.assets("entity_forecast", "entity_backfill")


def _automation_sensor(name: str, target: dg.AssetSelection, description: str,
                       minimum_interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        name, target=target, default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_seconds, description=description)


def build_automation_sensor(minimum_interval_seconds: int = AUTOMATION_INTERVAL_S,
                            ) -> dg.AutomationConditionSensorDefinition:
    return _automation_sensor(
        "bambam_automation_sensor",
        dg.AssetSelection.all() - dg.AssetSelection.assets(entity_model) - ENTITY_CURVES,
        "Evaluates the automation conditions (defs/conditions.py) of the shared layers: "
        "dimensions, posted_aggregates and global_model when missing or their inputs changed; "
        "the WTI after the curve files; the scorecard on its cron.", minimum_interval_seconds)


def build_entity_automation_sensor(minimum_interval_seconds: int = AUTOMATION_INTERVAL_S,
                                   ) -> dg.AutomationConditionSensorDefinition:
    return _automation_sensor(
        "bambam_entity_automation_sensor", ENTITY_CURVES,
        "Evaluates the automation conditions of the per-entity curves: entity_forecast and "
        "entity_backfill for the partitions whose inputs' data versions changed (a sensor of "
        "their own: see ENTITY_CURVES in defs/automation/sensors.py).", minimum_interval_seconds)


automation_sensor = build_automation_sensor()

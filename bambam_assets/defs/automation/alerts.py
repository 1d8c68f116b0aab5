"""Alert sensors: a failed run or a freshness failure is logged, written to
$BAMBAM_HOME/status/alerts.jsonl (the dashboard's status page shows it) and POSTed to
BAMBAM_ALERT_WEBHOOK when set (lib/core/alerts.py).

- `run_failure_alert`: Dagster's run-failure sensor over every run of the instance, those
  `bambam run` executes in-process included (monitor_all_code_locations: such runs have no code
  location of their own). A failed blocking check (the fact table's) fails its run: the alert
  names the failed steps and checks.
- `freshness_alert`: the FreshnessDaemon keeps each freshness policy's state (PASS, WARN, FAIL)
  in the instance; this sensor alerts once per transition into FAIL (its cursor holds, per asset,
  the time of the last FAIL it reported).
"""

import json

import dagster as dg

# Not exported at dagster's top level in 1.13 (the state the FreshnessDaemon records).
from dagster._core.definitions.freshness import FreshnessState

from bambam_assets.defs.resources import WarehouseResource
from bambam_assets.lib.core import alerts, settings

ALERT_INTERVAL_S = 30
STEP_ERRORS = 5  # failed steps named per alert


def _failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """`step: first line of its error` of the run's failed steps."""
    out = []
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)[:STEP_ERRORS]:
        event = rec.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        text = (error.message if error else event.message) or ""
        out.append(f"{event.step_key}: {text.strip().splitlines()[0] if text.strip() else ''}")
    return out


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """`asset:check` of the checks that failed in the run."""
    out = []
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = rec.dagster_event.event_specific_data
        if not evaluation.passed:
            out.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return out


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitor_all_code_locations=True,
    minimum_interval_seconds=ALERT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every failed run: logged, written to status/alerts.jsonl (dashboard status "
    "page) and POSTed to BAMBAM_ALERT_WEBHOOK when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    steps = _failed_steps(context.instance, run.run_id)
    checks = _failed_checks(context.instance, run.run_id)
    what = ", ".join(sorted(k.to_user_string() for k in (run.asset_selection or ()))) \
        or run.job_name
    message = f"run {run.run_id[:8]} ({what}) failed"
    if checks:
        message += f"; failed checks: {', '.join(checks)}"
    elif steps:
        message += f"; {steps[0]}"
    alert = alerts.raise_alert(warehouse.home_path(), alerts.Alert(
        kind=alerts.RUN_FAILURE, subject=run.run_id, message=message,
        details={"job": run.job_name, "failed_steps": steps, "failed_checks": checks,
                 "trigger": run.tags.get("bambam/trigger") or run.tags.get("dagster/sensor_name")
                 or run.tags.get("dagster/schedule_name") or "",
                 "failure": context.failure_event.message or ""},
    ), settings.alert_webhook())
    context.log.error(f"ALERT {message} (webhook: {alert.webhook})")


def _freshness_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetKey]:
    graph = context.repository_def.asset_graph
    return sorted((node.key for node in graph.asset_nodes if node.freshness_policy is not None),
                  key=lambda k: k.to_user_string())


@dg.sensor(
    name="freshness_alert",
    minimum_interval_seconds=ALERT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="An asset whose freshness policy turned FAIL (evaluated by Dagster's freshness "
    "daemon): logged, written to status/alerts.jsonl and POSTed to BAMBAM_ALERT_WEBHOOK.",
)
def freshness_alert(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    reported = json.loads(context.cursor) if context.cursor else {}
    records = context.instance.get_freshness_state_records(_freshness_keys(context))
    raised = []
    for key, record in sorted(records.items(), key=lambda kv: kv[0].to_user_string()):
        name, since = key.to_user_string(), record.updated_at.timestamp()
        if record.freshness_state != FreshnessState.FAIL or reported.get(name, 0) >= since:
            continue
        message = (f"{name} is not fresh: its freshness policy failed at "
                   f"{record.updated_at.isoformat(timespec='seconds')}")
        alert = alerts.raise_alert(warehouse.home_path(), alerts.Alert(
            kind=alerts.FRESHNESS, subject=name, message=message,
            details={"state": record.freshness_state.value,
                     "since": record.updated_at.isoformat()},
        ), settings.alert_webhook())
        context.log.error(f"ALERT {message} (webhook: {alert.webhook})")
        reported[name] = since
        raised.append(name)
    context.update_cursor(json.dumps(reported, sort_keys=True))
    if not raised:
        return dg.SkipReason(f"no new freshness failure among {len(records)} assets with a state")
    return dg.SkipReason(f"alerted: {', '.join(raised)}")


alert_sensors = [run_failure_alert, freshness_alert]

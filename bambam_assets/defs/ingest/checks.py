"""The blocking check on the fact table: keys unique, no observation from the future.

Blocking: it runs in the ingest's own run (every run that materializes fct_wait_times), and when
it fails the run fails and no asset below the fact table is materialized in that run (Dagster
makes the downstream steps wait on a blocking check's result). The alert sensor
(defs/automation/alerts.py) then reports the failed run. The rules are lib/ingest/fact_checks.py.
"""

from datetime import UTC, datetime

import dagster as dg

from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.ingest.fact_checks import FUTURE_TOLERANCE, check_facts

FACT_TABLE = dg.AssetKey("fct_wait_times")

# The block holds inside a run; across runs it is the automation conditions' job. The fact table
# is materialized before its check runs, so a plain eager() below it requests a run after an
# ingest whose check failed (measured, bambam_tests/defs/test_fact_check.py). Every automation
# condition of an asset that depends on the fact table must include this term.
BLOCKING_CHECKS_PASSED = dg.AutomationCondition.all_deps_blocking_checks_passed()


def _latest_ingest_start(instance: dg.DagsterInstance) -> datetime | None:
    """Start of the run of the fact table's latest materialization (this run, when the check
    runs with the ingest): the files read since then are the ones that ingest read."""
    event = instance.get_latest_materialization_event(FACT_TABLE)
    record = instance.get_run_record_by_id(event.run_id) if event else None
    if record is None or record.start_time is None:
        return None
    return datetime.fromtimestamp(record.start_time, UTC)


@dg.asset_check(
    asset=FACT_TABLE, blocking=True,
    description="Fact keys (entity_code, observed_at, wait_time_type, wait_time_minutes) unique "
    "among the facts of the latest ingest, and no observation after the as-of date that is "
    f"also later than the real clock + {FUTURE_TOLERANCE}. Blocking: a failure stops the "
    "layers below the fact table.",
)
def fct_wait_times_keys_unique_not_future(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
) -> dg.AssetCheckResult:
    as_of, now = run_settings.as_of_date(), datetime.now(UTC)
    since = _latest_ingest_start(context.instance)
    with warehouse.reader(heavy=True) as conn:  # a GROUP BY over every fact on a first ingest
        report = check_facts(conn, as_of, now, since)
    if not report.passed:
        context.log.error(f"fct_wait_times: {report.summary()}")
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.summary(),
        metadata={
            "duplicate_keys": report.duplicate_keys,
            "duplicate_examples": dg.MetadataValue.json(report.duplicate_examples),
            "future_rows": report.future_rows,
            "future_examples": dg.MetadataValue.json(report.future_examples),
            "files_checked": report.files_checked if report.files_checked is not None
            else "all facts",
            "as_of": as_of.isoformat(),
            "clock_utc": now.isoformat(timespec="seconds"),
        },
    )


fact_checks = [fct_wait_times_keys_unique_not_future]

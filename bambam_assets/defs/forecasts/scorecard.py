"""The accuracy scorecard ("how we did"): the day's forecast vintage, past vintages scored
against the ACTUAL waits that arrived (lib.forecasts.scorecard), and a drift check."""

import time

import dagster as dg

from bambam_assets.defs.groups import group_of
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.forecasts import curves, scorecard

# after the morning's forecasts (the WTI's clock is 07:00): the vintage is that day's forecast
SCORECARD_CRON, SCORECARD_TZ = "30 7 * * *", "America/New_York"


@dg.asset(
    group_name=group_of("forecast_scorecard"), pool="warehouse",
    deps=["entity_forecast", "fct_wait_times"],
    automation_condition=dg.AutomationCondition.on_cron(SCORECARD_CRON, SCORECARD_TZ),
    description="One row per (forecast vintage's as-of day, entity, target park day): the "
    "vintage's errors against the ACTUAL waits observed that day (n, |error| and error sums, "
    "inside the p10-p90 band). Vintages: the forecast's days +1, +7, +30 and +60 of each as-of "
    "day, kept 90 days under vintages/.",
)
def forecast_scorecard(warehouse: WarehouseResource,
                       run_settings: RunSettingsResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    home = warehouse.home_path()
    as_of = run_settings.as_of_date()
    written = 0
    with warehouse.writer() as conn:
        if curves.has_files(home, FORECASTS_DIR):
            written = scorecard.write_vintage(
                conn, HomePaths(home).curve_glob(FORECASTS_DIR), home, as_of)
        pruned = scorecard.prune_vintages(home, as_of)
        rows = scorecard.score(conn, home, as_of)
        scorecard.write_scorecard(conn, rows, keep_from=min(scorecard.kept_vintages(home),
                                                            default=as_of))
        by_horizon = scorecard.summary(conn, by=("horizon_days",))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows), "vintage_rows_written": written,
        "vintages_kept": len(scorecard.kept_vintages(home)), "vintages_pruned": len(pruned),
        "vintages_bytes": scorecard.disk_bytes(home),
        "mae_by_horizon": dg.MetadataValue.json(
            {int(r.horizon_days): round(float(r.mae), 3) for r in by_horizon.itertuples()}),
        "seconds": round(time.perf_counter() - started, 3)})


@dg.asset_check(asset=forecast_scorecard, name="forecast_error_drift",
                description=f"no entity's MAE over its last {scorecard.RECENT_DAYS} scored days "
                f"(shortest horizon) above {scorecard.DRIFT_RATIO}x its usual level")
def forecast_error_drift(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as conn:
        flagged = scorecard.drift(conn)
    return dg.AssetCheckResult(
        passed=flagged.empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"entities_drifting": len(flagged),
                  "worst": dg.MetadataValue.json(flagged.head(20).round(3).to_dict("records"))})


scorecard_assets = [forecast_scorecard]
scorecard_checks = [forecast_error_drift]

"""The Bambam code location: every asset, check, sensor and job of the pipeline."""

import dagster as dg

from bambam_assets.defs.automation.alerts import alert_sensors
from bambam_assets.defs.automation.schedules import (
    daily_pipeline_job,
    daily_pipeline_schedule,
    weekly_full_retrain_schedule,
)
from bambam_assets.defs.automation.sensors import automation_sensor, retrain_sensor
from bambam_assets.defs.dimensions.assets import dimension_assets
from bambam_assets.defs.dimensions.checks import dimension_checks
from bambam_assets.defs.forecasts.assets import forecast_assets, wti_assets
from bambam_assets.defs.ingest.assets import ingest_wait_times
from bambam_assets.defs.ingest.checks import fact_checks
from bambam_assets.defs.ingest.sensors import ingest_job, raw_files_sensor
from bambam_assets.defs.live.sensors import fetch_status_specs, queue_times_poll
from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.models.global_assets import global_model_asset
from bambam_assets.defs.resources import default_resources

defs = dg.Definitions(
    assets=[ingest_wait_times, *dimension_assets, global_model_asset, entity_model, *forecast_assets, *wti_assets,
            *fetch_status_specs],
    asset_checks=[*fact_checks, *dimension_checks],
    jobs=[ingest_job, daily_pipeline_job],
    sensors=[raw_files_sensor, retrain_sensor, automation_sensor, queue_times_poll,
             *alert_sensors],
    schedules=[daily_pipeline_schedule, weekly_full_retrain_schedule],
    resources=default_resources(),
    # Set once, here: steps run in parallel processes; forkserver starts them ~2x faster than spawn.
    executor=dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
)

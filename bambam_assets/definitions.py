"""The Bambam code location: every asset, check, sensor and job of the pipeline.

Built when the code location loads (the `@dg.definitions` function Dagster's loader calls), not
at import: the polling sensors' intervals (BAMBAM_SENSOR_INTERVAL_S) are part of their
definitions, and no setting is read at import. `defs` is the same object, built on first use.
"""

import functools

import dagster as dg

from bambam_assets.defs.automation.alerts import alert_sensors
from bambam_assets.defs.automation.schedules import (
    daily_pipeline_job,
    daily_pipeline_schedules,
    weekly_full_retrain_schedule,
)
from bambam_assets.defs.automation.sensors import (
    AUTOMATION_INTERVAL_S,
    RETRAIN_INTERVAL_S,
    build_automation_sensor,
    build_entity_automation_sensor,
    build_model_forecast_sensor,
    build_retrain_sensor,
)
from bambam_assets.defs.dimensions.assets import dimension_assets
from bambam_assets.defs.dimensions.checks import dimension_checks
from bambam_assets.defs.forecasts.assets import forecast_assets, wti_assets
from bambam_assets.defs.forecasts.scorecard import scorecard_assets, scorecard_checks
from bambam_assets.defs.ingest.assets import ingest_wait_times
from bambam_assets.defs.ingest.checks import fact_checks
from bambam_assets.defs.ingest.sensors import (
    RAW_FILES_INTERVAL_S,
    build_raw_files_sensor,
    ingest_job,
)
from bambam_assets.defs.live.sensors import fetch_status_specs, queue_times_poll
from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.models.global_assets import global_model_asset
from bambam_assets.defs.resources import default_resources
from bambam_assets.lib.core import settings


def build_definitions() -> dg.Definitions:
    """The code location, with the sensor intervals of the current environment."""
    interval = settings.sensor_interval_s
    return dg.Definitions(
        assets=[ingest_wait_times, *dimension_assets, global_model_asset, entity_model,
                *forecast_assets, *wti_assets, *scorecard_assets, *fetch_status_specs],
        asset_checks=[*dimension_checks, *fact_checks, *scorecard_checks],
        jobs=[ingest_job, daily_pipeline_job],
        sensors=[build_raw_files_sensor(interval(RAW_FILES_INTERVAL_S)),
                 build_retrain_sensor(minimum_interval_seconds=interval(RETRAIN_INTERVAL_S)),
                 build_automation_sensor(interval(AUTOMATION_INTERVAL_S)),
                 build_entity_automation_sensor(interval(AUTOMATION_INTERVAL_S)),
                 build_model_forecast_sensor(interval(AUTOMATION_INTERVAL_S)), queue_times_poll,
                 *alert_sensors],
        schedules=[*daily_pipeline_schedules, weekly_full_retrain_schedule],
        resources=default_resources(),
        # Steps run in the run's own process, one after the other. A fresh process per step
        # (the multiprocess executor, even with forkserver) re-imports the code location: 3.3 s
        # per step on a 2-core VM, measured under the daemon, for steps of 0.2-0.5 s (dimension
        # tables, checks, ingest of one file). It would buy no parallelism: the warehouse
        # writers are one at a time (pool `warehouse`), and the heavy steps (training,
        # forecast, backfill, WTI) already use every core through their own worker pools. The
        # CLI runs the same graph in process (runner.py).
        executor=dg.in_process_executor,
    )


@functools.cache
def _built() -> dg.Definitions:
    return build_definitions()


@dg.definitions
def bambam() -> dg.Definitions:
    """What Dagster's loader (workspace.yaml, `dagster dev -m`) calls."""
    return _built()


def __getattr__(name: str):
    if name == "defs":  # `from bambam_assets.definitions import defs`: built on first use
        return _built()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

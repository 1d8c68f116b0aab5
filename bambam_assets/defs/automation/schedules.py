"""Schedules: the daily ingest + dimensions run, and the weekly full retrain of every entity.

The daily run only refreshes the facts and dimensions; the retrain sensor then finds what is
stale and trains just that. The weekly run re-materializes every entity partition in ONE range
run (single_run backfill policy, `only` empty, mode full): a full retrain at least weekly, which
also bounds how long incremental updates can pile up.
"""

import dagster as dg

from bambam_assets.defs import groups
from bambam_assets.defs.automation.sensors import TRIGGER_TAG
from bambam_assets.defs.models.assets import entity_model
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.models.retrain import full_retrain_run
from bambam_assets.defs.resources import RunKnobs

DAILY_CRON = "0 6 * * *"  # 06:00 park time of the critical tier (WDW)
WEEKLY_CRON = "0 3 * * 0"  # Sunday 03:00, before the daily run
PARK_TZ = "America/New_York"

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline_job",
    # global_model: its own rule (weekly or +10 % target rows) makes most days a cheap no-op
    selection=dg.AssetSelection.groups(groups.INGEST, groups.DIMENSIONS)
    | dg.AssetSelection.assets("global_model"),
    description="Ingest new raw files, rebuild the dimensions and the global model when due "
    "(the retrain sensor follows).",
)


def build_daily_schedule(cron: str = DAILY_CRON, timezone: str = PARK_TZ,
                         name: str = "daily_pipeline_schedule") -> dg.ScheduleDefinition:
    """The daily ingest + dimensions run at `cron` in `timezone`."""

    @dg.schedule(name=name, cron_schedule=cron, execution_timezone=timezone,
                 job=daily_pipeline_job, default_status=dg.DefaultScheduleStatus.RUNNING)
    def _daily(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time
        return dg.RunRequest(run_key=f"daily-{day:%Y-%m-%d}",
                             tags={**RunKnobs.from_settings().tags(),
                                   TRIGGER_TAG: "daily_schedule"})

    return _daily


def build_weekly_full_retrain_schedule(
    cron: str = WEEKLY_CRON, timezone: str = PARK_TZ, name: str = "weekly_full_retrain_schedule",
) -> dg.ScheduleDefinition:
    """One full-retrain run of entity_model over every entity partition at `cron`."""

    @dg.schedule(name=name, cron_schedule=cron, execution_timezone=timezone,
                 target=[entity_model], default_status=dg.DefaultScheduleStatus.RUNNING)
    def _weekly(context: dg.ScheduleEvaluationContext):
        keys = context.instance.get_dynamic_partitions(entity_partitions.name)
        if not keys:
            return dg.SkipReason("no entity partitions yet")
        day = context.scheduled_execution_time
        knobs = RunKnobs.from_settings(train_mode="full").tags()
        # the forecasts follow (model_forecast_sensor: one range run of the promoted entities)
        return full_retrain_run(keys, "weekly_full_retrain", knobs).request(
            f"weekly-full-{day:%Y-%m-%d}")

    return _weekly


daily_pipeline_schedule = build_daily_schedule()
weekly_full_retrain_schedule = build_weekly_full_retrain_schedule()

"""Schedules: the daily ingest + dimensions run (one per time-zone group of parks, at 06:00
local), and the weekly full retrain of every entity.

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
from bambam_assets.lib.core import parks, settings

DAILY_CRON = "0 6 * * *"  # 06:00 local: a park day starts (the 6 AM rule)
TZ_GROUP_TAG = "bambam/tz_group"
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
    """The daily ingest + dimensions run at `cron` in `timezone`, as of that time zone's park
    date at the tick (06:00 local: the first minute of the new park day, so no park of the
    group has its day cut in the middle); BAMBAM_AS_OF still wins (replays).

    After the daemon was down, Dagster 1.13 evaluates only the latest missed tick of a schedule
    without a partition set (dagster/_scheduler/scheduler.py: "has no partition set, so not
    trying to catch up"), so missed days are caught up by one run, as of the latest park date.
    """

    @dg.schedule(name=name, cron_schedule=cron, execution_timezone=timezone,
                 job=daily_pipeline_job, default_status=dg.DefaultScheduleStatus.RUNNING)
    def _daily(context: dg.ScheduleEvaluationContext):
        as_of = settings.as_of(now=context.scheduled_execution_time, time_zone=timezone)
        knobs = RunKnobs.from_settings(as_of=as_of)
        return dg.RunRequest(
            run_key=f"daily-{_slug(timezone)}-{as_of:%Y-%m-%d}",
            run_config={"resources": {"run_settings": {"config": knobs.run_settings_config()}}},
            tags={**knobs.tags(), TRIGGER_TAG: "daily_schedule", TZ_GROUP_TAG: timezone})

    return _daily


def _slug(timezone: str) -> str:
    return timezone.rsplit("/", 1)[-1].lower()


def build_daily_schedules() -> list[dg.ScheduleDefinition]:
    """One daily schedule per time-zone group of parks, each at 06:00 local (New York keeps the
    name daily_pipeline_schedule)."""
    return [build_daily_schedule(timezone=tz, name="daily_pipeline_schedule" if tz == PARK_TZ
                                 else f"daily_pipeline_schedule_{_slug(tz)}")
            for tz in parks.time_zone_groups()]


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


daily_pipeline_schedules = build_daily_schedules()
daily_pipeline_schedule = daily_pipeline_schedules[0]  # New York (WDW, Universal Orlando)
weekly_full_retrain_schedule = build_weekly_full_retrain_schedule()

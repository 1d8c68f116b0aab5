"""Forecast, backfill and WTI assets: thin wrappers over lib.posted_aggregates, lib.forecast,
lib.backfill and lib.wti (they read, call, write and report)."""


import time
from datetime import timedelta

import dagster as dg
from dagster._core.storage.tags import BACKFILL_ID_TAG  # not exported by dagster

from bambam_assets.defs.conditions import (
    follow_curves,
    on_changed_inputs,
    per_entity_on_changed_inputs,
)
from bambam_assets.defs.failures import fail_if_too_many_failed
from bambam_assets.defs.groups import group_of
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.progress import StepProgress, is_milestone
from bambam_assets.lib.dimensions import inputs
from bambam_assets.lib.forecasts import backfill, forecast, published, wti
from bambam_assets.lib.forecasts import posted_aggregates as pa

WTI_CRON, WTI_CRON_TZ = "0 7 * * *", "America/New_York"
TABLE_NAME = "posted_aggregates"  # its row in dim_build_log


class ForecastConfig(dg.Config):
    """Horizon (0: the run_settings resource's, i.e. the run's or $BAMBAM_FORECAST_DAYS or 730
    days) and which entities of the range to run; `recompute_all` recomputes entities whose
    inputs did not change too."""

    horizon_days: int = 0
    only: list[str] = []
    recompute_all: bool = False


class BackfillConfig(dg.Config):
    """Past days to backfill (0: the run_settings resource's, i.e. the run's or
    $BAMBAM_BACKFILL_DAYS or every day with facts) and which entities; `recompute_all`
    re-imputes every day instead of only the days whose facts changed."""

    window_days: int = 0
    only: list[str] = []
    recompute_all: bool = False


def _keys(context: dg.AssetExecutionContext, only: list[str]) -> list[str]:
    keys = list(context.partition_keys)
    return [k for k in keys if k in set(only)] if only else keys


def _report_unchanged(context: dg.AssetExecutionContext) -> bool:
    """Whether a partition whose file was left as it was is reported as materialized.

    Only in a run of an asset backfill (the daemon makes one of every automated request of
    several partitions): once its runs are over, it marks each requested partition without a
    materialization failed, and everything downstream of it in the backfill (the WTI) with it
    (dagster-io/dagster#34219), so the backfill ends "Failed" and the WTI waits for another
    trigger. Elsewhere (`bambam run`, the sensors' range runs) an unchanged file writes no
    event: at full scale that is up to 1,694 events per step saved."""
    return BACKFILL_ID_TAG in context.run.tags


def _unchanged_materialization(context: dg.AssetExecutionContext, code: str, path: str | None,
                               rows: int, as_of) -> dg.AssetMaterialization:
    """The file of `code`, confirmed current and left as it was (metadata `unchanged`)."""
    return dg.AssetMaterialization(
        asset_key=context.asset_key, partition=code,
        metadata={"unchanged": True, "dagster/row_count": rows, "rows": rows,
                  "as_of": str(as_of), "path": path or ""})


@dg.asset(
    group_name=group_of("posted_aggregates"), pool="warehouse",
    deps=["fct_wait_times", "dim_calendar"],
    # follows the ingest and the calendar; its data version (the inputs' fingerprint) moves
    # once a week, and only then requests every forecast
    automation_condition=on_changed_inputs(),
    description="Recency-weighted POSTED statistics per (entity, date_group_id, local hour) "
    "and per (entity, weekday, local hour), plus the coarser levels (entity+dgid, entity+hour, "
    "entity, park+hour); lookups try weekday+hour, hour, entity, park+hour.",
)
def posted_aggregates(
    warehouse: WarehouseResource, run_settings: RunSettingsResource
) -> dg.MaterializeResult:
    # as of the day before the forecast week's Monday: the statistics, and so every forecast
    # built from them, stay the same all week (lib.core.forecast_week)
    as_of = forecast.inputs_as_of(run_settings.as_of_date())
    started = time.perf_counter()
    with warehouse.writer() as conn:
        # rebuilt only when its inputs changed (dim_build_log, like the dimensions): within a
        # week new facts are dated after as_of, so the daily run reuses the table
        fp = inputs.fingerprint(TABLE_NAME, pa.inputs_digest(conn, as_of))
        built_at = inputs.is_current(conn, TABLE_NAME, fp, [pa.TABLE])
        if built_at is None:
            counts = pa.build_posted_aggregates(conn, as_of)
            inputs.record_build(conn, TABLE_NAME, fp)
        else:
            counts = pa.level_counts(conn)
    return dg.MaterializeResult(data_version=dg.DataVersion(fp), metadata={
        "dagster/row_count": sum(counts.values()),
        "rows_by_level": dg.MetadataValue.json(counts),
        "as_of": str(as_of), "seconds": round(time.perf_counter() - started, 3),
        "rebuilt": built_at is None, "built_at": built_at or "now",
    })


@dg.asset(
    partitions_def=entity_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    group_name=group_of("entity_forecast"),
    deps=["entity_model", posted_aggregates, "dim_park_hours", "dim_calendar", "dim_season"],
    # Owners: model_forecast_sensor forecasts the entities whose current model changed (one
    # range run for a scattered set, defs/automation/sensors.py); this condition follows the
    # shared inputs (POSTED statistics, hours, calendar, season: a change requests the whole
    # key range, one run), by data version only.
    automation_condition=per_entity_on_changed_inputs(ignore=("entity_model",),
                                                      existing_only=True),
    description="Per entity: every 5-minute slot of park hours from the Monday of the as-of "
    "week to 730 + 6 days later (recomputed only when its inputs changed), "
    "actual_predicted with a p10-p90 band and posted_predicted, in "
    "BAMBAM_HOME/forecasts/entity_code={CODE}/forecast.parquet.",
)
def entity_forecast(
    context: dg.AssetExecutionContext, config: ForecastConfig, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
):
    keys = _keys(context, config.only)
    as_of = run_settings.as_of_date()
    max_failed_share = settings.max_failed_share()
    horizon = config.horizon_days or run_settings.forecast_horizon_days()
    home = warehouse.home_path()
    progress = StepProgress(home, context.run_id, "entity_forecast", len(keys))

    def on_done(res: forecast.EntityResult) -> None:
        progress.advance(res.entity_code, failed=res.mode == forecast.FAILED)
        if res.mode == forecast.FAILED:
            context.log.error(f"forecast {progress.done} of {len(keys)}: {res.entity_code} "
                              f"failed: {'; '.join(res.notes)}")
        elif is_milestone(progress.done, len(keys)):  # every entity is in progress.json
            context.log.info(f"forecast {progress.done} of {len(keys)}: {res.entity_code} "
                             f"{res.mode} {res.rows:,} rows in {res.seconds:.2f}s")

    t0 = time.perf_counter()
    results = forecast.run_forecast(warehouse.reader, home, keys, as_of, horizon, on_done,
                                    recompute_all=config.recompute_all)
    seconds = time.perf_counter() - t0
    computed = [r for r in results if r.mode != forecast.UNCHANGED]
    rows = sum(r.rows for r in computed)
    context.log.info(f"forecast: {len(computed)} of {len(keys)} entities recomputed (the others' "
                     f"inputs unchanged), {rows:,} rows in {seconds:.1f}s "
                     f"({rows / max(seconds, 1e-9):,.0f} rows/s), horizon {horizon} days")
    report_unchanged = _report_unchanged(context)
    for r in results:
        if r.mode == forecast.UNCHANGED:  # its file is as it was
            if report_unchanged:
                yield _unchanged_materialization(context, r.entity_code, r.path, r.rows, as_of)
            continue
        if r.mode in (forecast.NO_DATA, forecast.FAILED):
            key = "skipped" if r.mode == forecast.NO_DATA else "error"
            yield dg.AssetObservation(asset_key=context.asset_key, partition=r.entity_code,
                                      metadata={key: "; ".join(r.notes)})
            continue
        md = {"dagster/row_count": r.rows, "rows": r.rows, "seconds": r.seconds,
              "mode": r.mode, "inputs_fingerprint": r.fingerprint or "", "slots": r.slots,
              "distinct_feature_rows": r.distinct_rows,
              "as_of": str(as_of), "horizon_days": horizon, "path": r.path}
        md.update({k: v for k, v in (("model_version", r.model_version),
                                     ("model_kind", r.model_kind),
                                     ("band_scale", r.band_scale)) if v is not None})
        if r.notes:
            md["notes"] = "; ".join(r.notes)
        yield dg.AssetMaterialization(asset_key=context.asset_key, partition=r.entity_code,
                                      metadata=md)
    fail_if_too_many_failed([r.entity_code for r in results if r.mode == forecast.FAILED],
                            sum(r.mode != forecast.NO_DATA for r in results), max_failed_share)


@dg.asset(
    partitions_def=entity_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    group_name=group_of("entity_backfill"),
    deps=["entity_model", "fct_wait_times", "dim_park_hours"],
    # Follows the facts' and hours' data versions: the whole key range in one run, in which
    # each file recomputes only its park days whose facts or hours changed (lib/forecasts/
    # backfill.py) and an entity with none is not materialized. A new model does not rewrite
    # history, so entity_model's changes are not followed.
    automation_condition=per_entity_on_changed_inputs(ignore=("entity_model",),
                                                      first_when_added=True),
    description="Per entity: 5-minute ACTUAL curves of past park days (observed, else imputed "
    "from POSTED with the with-POSTED model; closed slots null) in "
    "BAMBAM_HOME/backfill/entity_code={CODE}/backfill.parquet.",
)
def entity_backfill(
    context: dg.AssetExecutionContext, config: BackfillConfig, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
):
    keys = _keys(context, config.only)
    as_of = run_settings.as_of_date()
    max_failed_share = settings.max_failed_share()
    window = config.window_days or run_settings.backfill_window_days()
    home = warehouse.home_path()
    progress = StepProgress(home, context.run_id, "entity_backfill", len(keys))

    def on_done(res: backfill.BackfillResult) -> None:
        progress.advance(res.entity_code, failed=bool(res.error))

    results = backfill.run_backfill(warehouse.reader, home, keys, as_of, window, on_done,
                                    recompute_all=config.recompute_all)
    unchanged = sum(r.unchanged for r in results)
    days = sum(r.days_computed for r in results)
    context.log.info(f"backfill: {days:,} park days recomputed, {unchanged} of {len(keys)} "
                     "entities unchanged")
    report_unchanged = _report_unchanged(context)
    for r in results:
        if r.error:
            yield dg.AssetObservation(asset_key=context.asset_key, partition=r.entity_code,
                                      metadata={"error": r.error})
            continue
        if r.unchanged:  # its file is as it was
            if report_unchanged:
                yield _unchanged_materialization(context, r.entity_code, r.path, r.rows, as_of)
            continue
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=r.entity_code,
            metadata={"dagster/row_count": r.rows, "rows": r.rows, "seconds": r.seconds,
                      "by_source": dg.MetadataValue.json(r.by_source or {}),
                      "days_computed": r.days_computed, "days_kept": r.days_kept,
                      "model_version": r.model_version if r.model_version is not None else -1,
                      "as_of": str(as_of), "window_days": window or 0, "path": r.path},
        )
    fail_if_too_many_failed([r.entity_code for r in results if r.error], len(results),
                            max_failed_share)


_WTI_DEPS = ["entity_forecast", "entity_backfill", "dim_entity"]
# Follows the curve files (once no forecast or backfill is in progress), with the daily cron as
# a backstop.
WTI_AUTOMATION = follow_curves(WTI_CRON, WTI_CRON_TZ)
# The park-level WTI is recomputed at least daily (on_cron): 24 h without a park_wti
# materialization warns, 26 h fails (an asset-level 1.13 FreshnessPolicy).
WTI_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=24))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("park_wti", group_name=group_of("park_wti"), deps=_WTI_DEPS,
                     automation_condition=WTI_AUTOMATION,
                     freshness_policy=WTI_FRESHNESS,
                     description="One row per (park, slot) of the official hours (EMH and "
                     "party-only slots left out): mean ACTUAL over the park's open "
                     "STANDBY entities (backfill, else forecast), n_entities, min, max."),
        dg.AssetSpec("park_wti_daily", group_name=group_of("park_wti_daily"), deps=_WTI_DEPS,
                     automation_condition=WTI_AUTOMATION,
                     description="One row per (park, park_date): mean of the slot WTIs, "
                     "p10/p90 over the day's slots, entities with a value."),
    ],
    pool="warehouse",
)
def park_wti_tables(warehouse: WarehouseResource):
    started = time.perf_counter()
    home = warehouse.home_path()
    with warehouse.reader() as conn:
        priority = [c for (c,) in conn.execute(
            "SELECT entity_code FROM dim_entity WHERE queue_type = 'PRIORITY'").fetchall()]
    # only the park days whose curves' inputs changed since the stored WTI was computed
    current = wti.input_fingerprints(home, priority)
    with warehouse.reader() as conn:
        days = wti.dirty_days(conn, current)
        hours = wti.official_hours(conn)  # EMH and party-only slots stay out of the park WTI
    slots, daily = wti.compute_wti(home, priority, days, hours)
    with warehouse.writer() as conn:
        wti.write_wti(conn, slots, daily, days, current)
        n_slots, n_days = (conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                           for t in (wti.SLOT_TABLE, wti.DAILY_TABLE))
    # the forecast API's files (park-month curves, crowd calendar): only the changed park days
    publish_started = time.perf_counter()
    pub = published.publish(home, current if not priority else None)
    publish_seconds = round(time.perf_counter() - publish_started, 3)
    seconds = round(time.perf_counter() - started, 3)
    parks = sorted(days["park_code"].unique().tolist())
    yield dg.MaterializeResult(asset_key="park_wti", metadata={
        "dagster/row_count": n_slots, "park_days_recomputed": len(days),
        "parks_recomputed": dg.MetadataValue.json(parks), "slot_rows_written": len(slots),
        "null_slots_written": int(slots["wti"].isna().sum()), "seconds": seconds})
    yield dg.MaterializeResult(asset_key="park_wti_daily", metadata={
        "dagster/row_count": n_days, "park_days_recomputed": len(days),
        "first_day_recomputed": str(days["park_date"].min()) if len(days) else "",
        "last_day_recomputed": str(days["park_date"].max()) if len(days) else "",
        "published_months_written": pub.months_written,
        "published_curve_rows": pub.curve_rows, "published_seconds": publish_seconds})


forecast_assets = [posted_aggregates, entity_forecast, entity_backfill]
wti_assets = [park_wti_tables]

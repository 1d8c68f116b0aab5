"""Dimension assets: calendar, season, entity, park hours, events, metatable."""


from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from bambam_assets.defs.conditions import on_changed_inputs
from bambam_assets.defs.groups import group_of
from bambam_assets.defs.resources import (
    RawSourceResource,
    RunSettingsResource,
    WarehouseResource,
)
from bambam_assets.lib.core import forecast_week
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import DIM_DDL, replace_dimension
from bambam_assets.lib.dimensions import (
    calendar,
    entities,
    events,
    inputs,
    park_hours,
    park_hours_donor,
    season,
)
from bambam_assets.lib.ingest.exports import read_exports
from bambam_assets.lib.ingest.formats import RawFormat

CALENDAR_START = date(2005, 1, 1)
HORIZON_DAYS = forecast_week.DEFAULT_HORIZON_DAYS
# The calendar and donor hours are built as of the forecast week's inputs day and reach the end
# of its window, so they change once a week (lib.core.forecast_week), not every day.
DIM_HORIZON_DAYS = forecast_week.dimension_horizon_days(HORIZON_DAYS)
INGEST_DEPS = ["fct_wait_times"]
# Owner in automation: built when missing, rebuilt after an upstream's data version changed (a
# no-op when the inputs' fingerprint is unchanged); the daily schedule rebuilds them as the
# as-of date moves.
AUTOMATION = on_changed_inputs()


def _unchanged(conn, fp: str, since: str, table: str, **metadata) -> dg.MaterializeResult:
    """Report an existing dimension table without rebuilding it: its inputs are unchanged.

    Still a materialization, so lineage, freshness and the asset checks see the run; the data
    version is the inputs' fingerprint, equal to the one of the build that wrote the table.
    """
    return dg.MaterializeResult(
        asset_key=table,  # every dimension table is named like its asset
        metadata={**metadata, "rebuilt": False, "unchanged_since": since,
                  "dagster/row_count": inputs.row_count(conn, table)},
        data_version=dg.DataVersion(fp),
    )


def _built(fp: str, metadata: dict, asset_key: str | None = None) -> dg.MaterializeResult:
    """Report a dimension just rebuilt from inputs with fingerprint `fp`."""
    return dg.MaterializeResult(asset_key=asset_key, metadata={**metadata, "rebuilt": True},
                                data_version=dg.DataVersion(fp))


def _missing(metadata: dict, context: dg.AssetExecutionContext, what: str) -> None:
    msg = f"no {what} export in the raw source: the dimension is empty"
    context.log.warning(msg)
    metadata["warning"] = msg


@dg.asset(group_name=group_of("dim_calendar"), pool="warehouse",
          automation_condition=AUTOMATION)
def dim_calendar(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
) -> dg.MaterializeResult:
    """One row per date, 2005-01-01 to the end of the forecast week's window (as-of + 730 days at
    least): calendar columns, holidays, date_group_id."""
    as_of = forecast_week.inputs_as_of(run_settings.as_of_date())  # moves once a week
    fp = inputs.fingerprint(as_of, DIM_HORIZON_DAYS, CALENDAR_START)
    with warehouse.writer() as conn:
        since = inputs.is_current(conn, "dim_calendar", fp, ["dim_calendar"])
        if since:
            return _unchanged(conn, fp, since, "dim_calendar", as_of=str(as_of))
        frame = calendar.build_calendar(as_of, DIM_HORIZON_DAYS, CALENDAR_START)
        n = replace_dimension(conn, "dim_calendar", frame)
        inputs.record_build(conn, "dim_calendar", fp)
    return _built(fp, {"dagster/row_count": n, "as_of": str(as_of)})


@dg.asset(group_name=group_of("dim_season"), pool="warehouse",
          automation_condition=AUTOMATION, deps=[dim_calendar])
def dim_season(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per date: season and season_year from the legacy holiday-window rules."""
    with warehouse.writer() as conn:
        # dim_season is a function of dim_calendar alone: its logged fingerprint stands for it.
        fp = inputs.fingerprint(inputs.upstream_fingerprint(conn, "dim_calendar"))
        since = inputs.is_current(conn, "dim_season", fp, ["dim_season"])
        if since:
            return _unchanged(conn, fp, since, "dim_season")
        cal = conn.execute("SELECT * FROM dim_calendar ORDER BY park_date").df()
        n = replace_dimension(conn, "dim_season", season.build_season(cal))
        counts = conn.execute(
            "SELECT season, count(*) FROM dim_season GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        inputs.record_build(conn, "dim_season", fp)
    return _built(
        fp, {"dagster/row_count": n, "days_per_season": dg.MetadataValue.json(dict(counts))}
    )


@dg.asset(group_name=group_of("dim_entity"), pool="warehouse",
          automation_condition=AUTOMATION, deps=INGEST_DEPS)
def dim_entity(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
) -> dg.MaterializeResult:
    """One row per entity: the union of the entity exports plus every entity seen in the facts."""
    metadata: dict = {}
    source = raw_source.open()
    with warehouse.writer() as conn:
        # A new entity in the facts adds a row even when the exports are unchanged.
        fact_codes = inputs.entity_codes(conn)
        fp = inputs.fingerprint(inputs.export_identities(conn, RawFormat.ENTITIES),
                                inputs.codes_digest(fact_codes))
        since = inputs.is_current(conn, "dim_entity", fp, ["dim_entity"])
        if since:
            return _unchanged(conn, fp, since, "dim_entity")
        raw, keys = read_exports(conn, source, RawFormat.ENTITIES, _cache(warehouse))
        if not keys:
            _missing(metadata, context, "entities")
        frame = entities.clean_entities(raw.drop(columns="source_file", errors="ignore"),
                                        fact_codes)
        n = replace_dimension(conn, "dim_entity", frame)
        by_type = dict(conn.execute(
            "SELECT queue_type, count(*) FROM dim_entity GROUP BY 1").fetchall())
        fact_only = conn.execute(
            "SELECT count(*) FROM dim_entity WHERE NOT in_export").fetchall()[0][0]
        inputs.record_build(conn, "dim_entity", fp)
    metadata.update({
        "dagster/row_count": n, "exports": dg.MetadataValue.json(keys),
        "by_queue_type": dg.MetadataValue.json(by_type), "fact_only_entities": fact_only,
    })
    return _built(fp, metadata)


@dg.asset(group_name=group_of("dim_metatable"), pool="warehouse",
          automation_condition=AUTOMATION, deps=INGEST_DEPS)
def dim_metatable(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
) -> dg.MaterializeResult:
    """One row per park_date: the metatable export with typed columns (a park-hours fallback)."""
    metadata: dict = {}
    with warehouse.writer() as conn:
        fp = inputs.fingerprint(inputs.export_identities(conn, RawFormat.METATABLE))
        since = inputs.is_current(conn, "dim_metatable", fp, ["dim_metatable"])
        if since:
            return _unchanged(conn, fp, since, "dim_metatable")
        raw, keys = read_exports(conn, raw_source.open(), RawFormat.METATABLE, _cache(warehouse))
        if not keys:
            _missing(metadata, context, "metatable")
            frame = pd.DataFrame({"park_date": pd.Series([], dtype="datetime64[ns]")})
        else:
            frame = events.clean_metatable(raw.drop(columns="source_file"))
        conn.register("meta_frame", frame)
        conn.execute("CREATE OR REPLACE TABLE dim_metatable AS SELECT * FROM meta_frame")
        conn.unregister("meta_frame")
        n = conn.execute("SELECT count(*) FROM dim_metatable").fetchall()[0][0]
        inputs.record_build(conn, "dim_metatable", fp)
    metadata.update({"dagster/row_count": n, "columns": len(frame.columns)})
    return _built(fp, metadata)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("dim_event_days", group_name=group_of("dim_event_days"),
                     automation_condition=AUTOMATION, deps=INGEST_DEPS,
                     description="One row per (date, park, event)."),
        dg.AssetSpec("dim_events", group_name=group_of("dim_events"),
                     automation_condition=AUTOMATION, deps=INGEST_DEPS,
                     description="One row per event code, with the hard-ticket flag."),
    ],
    pool="warehouse",
)
def dim_event_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
):
    source = raw_source.open()
    tables = (
        ("dim_event_days", RawFormat.EVENT_DAYS, events.clean_event_days),
        ("dim_events", RawFormat.EVENTS, events.clean_events),
    )
    results: list[dg.MaterializeResult] = []
    with warehouse.writer() as conn:
        # One fingerprint for both tables: they are built together and logged as one.
        fp = inputs.fingerprint(*(inputs.export_identities(conn, fmt) for _, fmt, _ in tables))
        since = inputs.is_current(conn, "dim_event_tables", fp, [name for name, _, _ in tables])
        if since:
            results = [_unchanged(conn, fp, since, name) for name, _, _ in tables]
        else:
            for name, fmt, clean in tables:
                metadata: dict = {}
                raw, keys = read_exports(conn, source, fmt, _cache(warehouse))
                if keys:
                    n = replace_dimension(conn, name, clean(raw.drop(columns="source_file")))
                else:
                    _missing(metadata, context, name.removeprefix("dim_"))
                    n = replace_dimension(conn, name, pd.DataFrame())
                results.append(_built(fp, {**metadata, "dagster/row_count": n}, name))
            inputs.record_build(conn, "dim_event_tables", fp)
    yield from results


@dg.multi_asset(
    specs=[
        dg.AssetSpec("dim_park_hours_versions", group_name=group_of("dim_park_hours_versions"),
                     automation_condition=AUTOMATION,
                     deps=INGEST_DEPS,
                     description="One row per (park, date, version): official hours with validity "
                     "intervals; a new version only when the hours changed."),
        dg.AssetSpec("dim_park_hours", group_name=group_of("dim_park_hours"),
                     automation_condition=AUTOMATION,
                     deps=["dim_park_hours_versions", "dim_calendar", "dim_metatable"],
                     description="One row per (park, date) as of the run's date: official hours, "
                     "metatable where the export lacks a day, donor hours to the end of the "
                     "forecast week's window."),
    ],
    pool="warehouse",
)
def dim_park_hours_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource,
    raw_source: RawSourceResource, run_settings: RunSettingsResource,
):
    # donors only up to the forecast week's inputs day: the hours stay the same all week
    as_of = forecast_week.inputs_as_of(run_settings.as_of_date())
    tables = ["dim_park_hours_versions", "dim_park_hours"]
    with warehouse.writer() as conn:
        # The rebuild also stamps new hours versions with datetime.now(), but with the same
        # exports no version can be new, so these inputs determine both tables.
        fp = inputs.fingerprint(
            inputs.export_identities(conn, RawFormat.PARK_HOURS),
            inputs.upstream_fingerprint(conn, "dim_metatable"),
            inputs.upstream_fingerprint(conn, "dim_calendar"),
            as_of,
        )
        since = inputs.is_current(conn, "dim_park_hours_tables", fp, tables)
        if since:
            results = [_unchanged(conn, fp, since, t, as_of=str(as_of)) for t in tables]
        else:
            results = _rebuild_park_hours(context, conn, raw_source, _cache(warehouse), as_of, fp)
            inputs.record_build(conn, "dim_park_hours_tables", fp)
    yield from results


def _rebuild_park_hours(
    context: dg.AssetExecutionContext, conn, raw_source: RawSourceResource, cache, as_of: date,
    fp: str,
) -> list[dg.MaterializeResult]:
    """Merge the park-hours export into the versions, then rebuild dim_park_hours as of `as_of`."""
    now = datetime.now(UTC)
    metadata: dict = {}
    raw, keys = read_exports(conn, raw_source.open(), RawFormat.PARK_HOURS, cache)
    conn.execute(DIM_DDL["dim_park_hours_versions"])
    versions = conn.execute("SELECT * FROM dim_park_hours_versions").df()
    if keys:
        official_now = park_hours.official_hours_from_export(raw)
        merged = park_hours.merge_versions(versions, official_now, now, ",".join(keys))
        conn.execute("DELETE FROM dim_park_hours_versions")
        conn.register("versions_frame", merged)
        conn.execute("INSERT INTO dim_park_hours_versions BY NAME SELECT * FROM versions_frame")
        conn.unregister("versions_frame")
    else:
        _missing(metadata, context, "park hours")
    versions = conn.execute("SELECT * FROM dim_park_hours_versions").df()
    n_versions = len(versions)
    official = park_hours.hours_as_of(versions, now) if n_versions else versions
    meta = conn.execute("SELECT * FROM dim_metatable").df()
    meta_hours = park_hours.hours_from_metatable(meta) if len(meta) else pd.DataFrame()
    cal = conn.execute("SELECT * FROM dim_calendar").df()
    hours = park_hours_donor.assemble_park_hours(official, meta_hours, cal, as_of,
                                                 DIM_HORIZON_DAYS)
    n = replace_dimension(conn, "dim_park_hours", hours)
    by_source = dict(
        conn.execute("SELECT source, count(*) FROM dim_park_hours GROUP BY 1").fetchall()
    )
    return [
        _built(fp, {**metadata, "dagster/row_count": n_versions,
                    "exports": dg.MetadataValue.json(keys)}, "dim_park_hours_versions"),
        _built(fp, {"dagster/row_count": n, "by_source": dg.MetadataValue.json(by_source),
                    "as_of": str(as_of)}, "dim_park_hours"),
    ]


def _cache(warehouse: WarehouseResource):
    return HomePaths(warehouse.home_path()).raw_cache


dimension_assets = [dim_calendar, dim_season, dim_entity, dim_metatable, dim_event_tables,
                    dim_park_hours_tables]

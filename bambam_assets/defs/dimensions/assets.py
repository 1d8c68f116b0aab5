"""Dimension assets: calendar, season, entity, park hours, events, metatable."""


from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from bambam_assets.defs.resources import (
    RawSourceResource,
    RunSettingsResource,
    WarehouseResource,
)
from bambam_assets.lib import calendar, entities, events, park_hours, park_hours_donor, season
from bambam_assets.lib.exports import read_exports
from bambam_assets.lib.formats import RawFormat
from bambam_assets.lib.schema import DIM_DDL, replace_dimension

DIM_GROUP = "dimensions"
CALENDAR_START = date(2005, 1, 1)
HORIZON_DAYS = 730
INGEST_DEPS = ["fct_wait_times"]


def _missing(metadata: dict, context: dg.AssetExecutionContext, what: str) -> None:
    msg = f"no {what} export in the raw source: the dimension is empty"
    context.log.warning(msg)
    metadata["warning"] = msg


@dg.asset(group_name=DIM_GROUP, pool="warehouse")
def dim_calendar(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
) -> dg.MaterializeResult:
    """One row per date, 2005-01-01 to as-of + 730 days: calendar columns, holidays, date_group_id."""
    as_of = run_settings.as_of_date()
    frame = calendar.build_calendar(as_of, HORIZON_DAYS, CALENDAR_START)
    with warehouse.writer() as conn:
        n = replace_dimension(conn, "dim_calendar", frame)
    return dg.MaterializeResult(metadata={"dagster/row_count": n, "as_of": str(as_of)})


@dg.asset(group_name=DIM_GROUP, pool="warehouse", deps=[dim_calendar])
def dim_season(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per date: season and season_year from the legacy holiday-window rules."""
    with warehouse.writer() as conn:
        cal = conn.execute("SELECT * FROM dim_calendar ORDER BY park_date").df()
        n = replace_dimension(conn, "dim_season", season.build_season(cal))
        counts = conn.execute(
            "SELECT season, count(*) FROM dim_season GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={"dagster/row_count": n, "days_per_season": dg.MetadataValue.json(dict(counts))}
    )


@dg.asset(group_name=DIM_GROUP, pool="warehouse", deps=INGEST_DEPS)
def dim_entity(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
) -> dg.MaterializeResult:
    """One row per entity: the union of the entity exports plus every entity seen in the facts."""
    metadata: dict = {}
    source = raw_source.open()
    with warehouse.writer() as conn:
        raw, keys = read_exports(conn, source, RawFormat.ENTITIES, _cache(warehouse))
        if not keys:
            _missing(metadata, context, "entities")
        fact_codes = [c for (c,) in conn.execute("SELECT entity_code FROM entity_index").fetchall()]
        frame = entities.clean_entities(raw.drop(columns="source_file", errors="ignore"), fact_codes)
        n = replace_dimension(conn, "dim_entity", frame)
        by_type = dict(conn.execute("SELECT queue_type, count(*) FROM dim_entity GROUP BY 1").fetchall())
        fact_only = conn.execute("SELECT count(*) FROM dim_entity WHERE NOT in_export").fetchall()[0][0]
    metadata.update({
        "dagster/row_count": n, "exports": dg.MetadataValue.json(keys),
        "by_queue_type": dg.MetadataValue.json(by_type), "fact_only_entities": fact_only,
    })
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name=DIM_GROUP, pool="warehouse", deps=INGEST_DEPS)
def dim_metatable(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
) -> dg.MaterializeResult:
    """One row per park_date: the metatable export with typed columns (a park-hours fallback)."""
    metadata: dict = {}
    with warehouse.writer() as conn:
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
    metadata.update({"dagster/row_count": n, "columns": len(frame.columns)})
    return dg.MaterializeResult(metadata=metadata)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("dim_event_days", group_name=DIM_GROUP, deps=INGEST_DEPS,
                     description="One row per (date, park, event)."),
        dg.AssetSpec("dim_events", group_name=DIM_GROUP, deps=INGEST_DEPS,
                     description="One row per event code, with the hard-ticket flag."),
    ],
    pool="warehouse",
)
def dim_event_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
):
    source = raw_source.open()
    with warehouse.writer() as conn:
        for name, fmt, clean in (
            ("dim_event_days", RawFormat.EVENT_DAYS, events.clean_event_days),
            ("dim_events", RawFormat.EVENTS, events.clean_events),
        ):
            metadata: dict = {}
            raw, keys = read_exports(conn, source, fmt, _cache(warehouse))
            if keys:
                n = replace_dimension(conn, name, clean(raw.drop(columns="source_file")))
            else:
                _missing(metadata, context, name.removeprefix("dim_"))
                n = replace_dimension(conn, name, pd.DataFrame())
            yield dg.MaterializeResult(asset_key=name, metadata={**metadata, "dagster/row_count": n})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("dim_park_hours_versions", group_name=DIM_GROUP, deps=INGEST_DEPS,
                     description="One row per (park, date, version): official hours with validity "
                     "intervals; a new version only when the hours changed."),
        dg.AssetSpec("dim_park_hours", group_name=DIM_GROUP,
                     deps=["dim_park_hours_versions", "dim_calendar", "dim_metatable"],
                     description="One row per (park, date) as of the run's date: official hours, "
                     "metatable where the export lacks a day, donor hours for the next 730 days."),
    ],
    pool="warehouse",
)
def dim_park_hours_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource,
    raw_source: RawSourceResource, run_settings: RunSettingsResource,
):
    as_of = run_settings.as_of_date()
    now = datetime.now(UTC)
    metadata: dict = {}
    with warehouse.writer() as conn:
        raw, keys = read_exports(conn, raw_source.open(), RawFormat.PARK_HOURS, _cache(warehouse))
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
        hours = park_hours_donor.assemble_park_hours(official, meta_hours, cal, as_of, HORIZON_DAYS)
        n = replace_dimension(conn, "dim_park_hours", hours)
        by_source = dict(
            conn.execute("SELECT source, count(*) FROM dim_park_hours GROUP BY 1").fetchall()
        )
    yield dg.MaterializeResult(
        asset_key="dim_park_hours_versions",
        metadata={**metadata, "dagster/row_count": n_versions, "exports": dg.MetadataValue.json(keys)},
    )
    yield dg.MaterializeResult(
        asset_key="dim_park_hours",
        metadata={"dagster/row_count": n, "by_source": dg.MetadataValue.json(by_source),
                  "as_of": str(as_of)},
    )


def _cache(warehouse: WarehouseResource):
    return warehouse.home_path() / "cache" / "raw"


dimension_assets = [dim_calendar, dim_season, dim_entity, dim_metatable, dim_event_tables,
                    dim_park_hours_tables]

"""Ingest assets: raw files -> fact table, rejected rows and the entity index."""


import dagster as dg

from bambam_assets.defs.conditions import DATA_VERSION_TAG
from bambam_assets.defs.groups import group_of
from bambam_assets.defs.resources import RawSourceResource, WarehouseResource
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.ingest.ingest import ingest


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "fct_wait_times", group_name=group_of("fct_wait_times"),
            description="One row per wait-time observation (entity, instant, type, minutes), "
            "unique on the four legacy key columns; CLOSED rows mark downtime.",
        ),
        dg.AssetSpec(
            "fct_rejected_rows", group_name=group_of("fct_rejected_rows"),
            description="One row per raw row that could not be used, with file, line and reason.",
        ),
        dg.AssetSpec(
            "entity_index", group_name=group_of("entity_index"),
            description="One row per entity: first/latest observation, counts per type, "
            "last model.",
        ),
    ],
    pool="warehouse",
)
def ingest_wait_times(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_source: RawSourceResource
):
    """Read every new or changed raw file (manifest-driven) into the warehouse."""
    source = raw_source.open()
    cache = HomePaths(warehouse.home_path()).raw_cache
    last_logged = [0]

    def progress(done: int, total: int) -> None:
        if done == total or done - last_logged[0] >= max(1, total // 10):
            last_logged[0] = done
            context.log.info(f"ingest: {done} of {total} wait-time files parsed")

    with warehouse.writer() as conn:
        report = ingest(conn, source, cache, progress=progress)
        totals = conn.execute(
            "SELECT (SELECT count(*) FROM fct_wait_times),"
            " (SELECT count(*) FROM fct_rejected_rows),"
            " (SELECT count(*) FROM entity_index)"
        ).fetchall()[0]
    if report.failed_files:
        context.log.warning(f"{len(report.failed_files)} files failed: "
                            f"{list(report.failed_files)[:5]}")
    if report.quarantined_files:
        context.log.warning(f"{len(report.quarantined_files)} files quarantined (skipped until "
                            f"they change or `bambam ingest release`): "
                            f"{report.quarantined_files[:5]}")
    common = {
        "raw_source": source.uri,
        "files_listed": report.files_listed,
        "files_read": report.files_read,
        "files_appended": report.files_appended,  # grown files: only their new lines parsed
        "files_failed": report.files_failed,
        "files_unknown_format": report.files_unknown,
        "files_quarantined": len(report.quarantined_files),
        "files_replaced": report.files_retracted,  # re-read in full, facts no longer held gone
        "seconds": round(report.seconds, 2),
    }
    # The facts' data version moves only when rows were added or retracted: an ingest that read
    # nothing new (or only rejected rows) requests no downstream work (defs/conditions.py).
    changed = bool(report.rows_added or report.rows_retracted)
    versions = {key: _data_version(context, key, changed)
                for key in ("fct_wait_times", "entity_index")}
    yield dg.MaterializeResult(
        asset_key="fct_wait_times", data_version=versions["fct_wait_times"],
        metadata={
            **common,
            "rows_read": report.rows_read,
            "rows_added": report.rows_added,
            "rows_already_present": report.rows_already_present,
            "rows_retracted": report.rows_retracted,
            "rows_by_type": dg.MetadataValue.json(report.rows_by_type),
            "rows_per_second": round(report.rows_per_second),
            "dagster/row_count": totals[0],
        },
    )
    yield dg.MaterializeResult(
        asset_key="fct_rejected_rows",
        metadata={
            "rows_rejected": report.rows_rejected,
            "rejected_by_reason": dg.MetadataValue.json(report.rejected_by_reason),
            "failed_files": dg.MetadataValue.json(report.failed_files),
            "quarantined_files": dg.MetadataValue.json(report.quarantined_files),
            "dagster/row_count": totals[1],
        },
    )
    yield dg.MaterializeResult(
        asset_key="entity_index", data_version=versions["entity_index"],
        metadata={"new_entities": dg.MetadataValue.json(report.new_entities),
                  "dagster/row_count": totals[2]},
    )


def _data_version(context: dg.AssetExecutionContext, key: str, changed: bool) -> dg.DataVersion:
    """The previous materialization's data version when the facts did not change, else this
    run's id (a new one)."""
    if not changed:
        record = context.instance.get_latest_data_version_record(dg.AssetKey(key))
        tags = (record.event_log_entry.tags or {}) if record else {}
        if tags.get(DATA_VERSION_TAG):
            return dg.DataVersion(tags[DATA_VERSION_TAG])
    return dg.DataVersion(context.run_id)

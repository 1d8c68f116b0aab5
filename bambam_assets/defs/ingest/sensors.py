"""The raw-source sensor: new or changed files -> one ingest run; new entities -> partitions."""


import hashlib

import dagster as dg
import duckdb

from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.resources import RawSourceResource, RunKnobs, WarehouseResource
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.ingest.ingest import attempt_marks, pending_files
from bambam_assets.lib.ingest.raw_source import RawFile

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("fct_wait_times", "fct_rejected_rows", "entity_index"),
    description="Ingest every new or changed raw file.",
)


def run_key_for(files: list[RawFile], marks: dict[str, str] | None = None) -> str:
    """Run key from the identities of the files to read and their attempt marks: the same set
    is never requested twice, but a file that failed (or was released) is requested again."""
    marks = marks or {}
    ids = sorted(f"{f.identity}|{marks.get(f.key, '')}" for f in files)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    return f"ingest-{digest[:24]}"


def new_entity_partitions(conn: duckdb.DuckDBPyConnection, existing: set[str]) -> list[str]:
    """Entity codes in the entity index that are not partitions yet."""
    codes = [c for (c,) in conn.execute(
        "SELECT entity_code FROM entity_index ORDER BY 1").fetchall()]
    return [c for c in codes if c not in existing]


RAW_FILES_INTERVAL_S = 60  # default; BAMBAM_SENSOR_INTERVAL_S (definitions.py)


def _raw_files_tick(
    context: dg.SensorEvaluationContext,
    raw_source: RawSourceResource,
    warehouse: WarehouseResource,
):
    source = raw_source.open()
    try:
        files = source.list_files()
    except FileNotFoundError as exc:  # no raw folder yet: nothing to ingest, say so each tick
        return dg.SkipReason(str(exc))
    db = HomePaths(warehouse.home_path()).warehouse
    if not db.exists():
        todo, to_add, marks = files, [], {}
    else:
        try:
            with warehouse.reader() as conn:
                todo = pending_files(conn, files)
                marks = attempt_marks(conn, [f.key for f in todo])
                existing = set(context.instance.get_dynamic_partitions(entity_partitions.name))
                to_add = new_entity_partitions(conn, existing)
        except duckdb.IOException as exc:  # a writer holds the file: try again next tick
            return dg.SkipReason(f"warehouse busy: {exc}")
    requests = []
    if todo:
        requests.append(
            dg.RunRequest(
                run_key=run_key_for(todo, marks),
                tags={**RunKnobs.from_settings().tags(), "bambam/files": str(len(todo))},
            )
        )
    if not requests and not to_add:
        return dg.SkipReason(f"no new or changed files among {len(files)}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[entity_partitions.build_add_request(to_add)] if to_add else [],
    )


def build_raw_files_sensor(minimum_interval_seconds: int = RAW_FILES_INTERVAL_S,
                           ) -> dg.SensorDefinition:
    """The raw-files sensor ticking at most every `minimum_interval_seconds`."""
    return dg.sensor(
        name="raw_files_sensor",
        job=ingest_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the raw source; requests an ingest run for new or changed files and "
        "adds new entity codes as `entity` partitions.",
    )(_raw_files_tick)


raw_files_sensor = build_raw_files_sensor()

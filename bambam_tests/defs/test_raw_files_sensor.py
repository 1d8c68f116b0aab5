"""The raw-files sensor: run requests keyed by file identity, entity partitions added."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from bambam_assets.defs.ingest.sensors import raw_files_sensor
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.resources import RawSourceResource, WarehouseResource
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.ingest.ingest import ingest
from bambam_assets.lib.ingest.quarantine import release
from bambam_assets.lib.ingest.raw_source import LocalRawSource
from bambam_tests.builders import write

PUBLIC = "date,datetime,SPOSTMIN,SACTMIN\n03/02/2024,2024-03-02 10:00:00,45,\n"


def evaluate(instance: dg.DagsterInstance, home: Path):
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "raw_source": RawSourceResource(uri=str(home / "raw")),
            "warehouse": WarehouseResource(home=str(home)),
        },
    )
    return raw_files_sensor(context)


def test_sensor_requests_ingest_then_adds_partitions(bambam_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    write(bambam_home / "raw", "public/MK1.csv", PUBLIC)
    write(bambam_home / "raw", "public/EP2.csv", PUBLIC)

    first = evaluate(instance, bambam_home)
    assert len(first.run_requests) == 1
    key = first.run_requests[0].run_key
    assert evaluate(instance, bambam_home).run_requests[0].run_key == key  # same files, same key

    with warehouse.writer(bambam_home) as conn:  # what the requested run does
        ingest(conn, LocalRawSource(bambam_home / "raw"), bambam_home / "cache")
    after = evaluate(instance, bambam_home)
    assert not after.run_requests
    (request,) = after.dynamic_partitions_requests
    assert request.partitions_def_name == entity_partitions.name
    assert sorted(request.partition_keys) == ["EP2", "MK1"]
    instance.add_dynamic_partitions("entity", ["EP2", "MK1"])
    assert isinstance(evaluate(instance, bambam_home), dg.SkipReason)

    write(bambam_home / "raw", "public/HS3.csv", PUBLIC)
    new = evaluate(instance, bambam_home)
    assert len(new.run_requests) == 1 and new.run_requests[0].run_key != key
    assert new.run_requests[0].tags["bambam/files"] == "1"
    assert new.run_requests[0].tags["bambam/as_of"] == "2024-03-31"  # the run knobs, as tags


def test_sensor_retries_a_failed_file_until_quarantined_then_after_release(
        bambam_home: Path) -> None:
    """No other file changes: the failed file alone gets a new run key after each failed
    attempt, none once it is quarantined, and a new one when an operator releases it."""
    instance = dg.DagsterInstance.ephemeral()
    bad = "queue_times/AK/2024-03-02/AK_20240302T150000Z.json"
    write(bambam_home / "raw", bad, '{"lands": [ {"rides": [')
    keys = []
    for _attempt in range(3):
        request = evaluate(instance, bambam_home).run_requests
        assert len(request) == 1, "the failed file must be requested again"
        keys.append(request[0].run_key)
        with warehouse.writer(bambam_home) as conn:  # what the requested run does: fail
            report = ingest(conn, LocalRawSource(bambam_home / "raw"), bambam_home / "cache",
                            max_attempts=3)
        assert list(report.failed_files) == [bad]
    assert len(set(keys)) == 3  # each retry is a new run, not deduplicated by its key
    assert isinstance(evaluate(instance, bambam_home), dg.SkipReason)  # quarantined
    with warehouse.writer(bambam_home) as conn:
        assert release(conn, [bad]) == [bad]
    again = evaluate(instance, bambam_home).run_requests
    assert len(again) == 1 and again[0].run_key not in keys

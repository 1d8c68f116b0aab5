"""Ingest end to end on generated raw files: facts, rejects, manifest, index, idempotence, S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from bambam_assets.lib.ingest.ingest import ingest
from bambam_assets.lib.ingest.raw_source import LocalRawSource, S3RawSource
from bambam_tests.builders import write
from bambam_tests.s3_server import s3_client

STANDBY = (
    "entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id\n"
    "mk101,2024-03-02 09:00:00,30,,1\n"          # POSTED 30
    "MK101,2024-03-02 09:05:00,,22,2\n"          # ACTUAL 22
    "MK101,2024-03-02 09:10:00,-999,,3\n"        # CLOSED
    "MK101,2024-03-02 09:10:00,-999,,3\n"        # exact duplicate: deduped, not rejected
    "MK101,not a time,25,,4\n"                   # unparseable_time (line 6)
    "MK101,2024-03-02 09:20:00,-5,,5\n"          # value_out_of_range (line 7)
    "ZZ12,2024-03-02 09:25:00,10,,6\n"           # unknown_park (line 8)
    "MK101,2024-03-02 09:30:00,,,7\n"            # missing_value (line 9)
)
PUBLIC = (
    "date,datetime,SPOSTMIN,SACTMIN\n"
    "03/02/2024,2024-03-02 10:00:00,45,\n"
    "03/02/2024,2024-03-02 10:02:00,,38\n"
    "03/02/2024,2024-03-02 10:10:00,5000,\n"     # value_out_of_range (line 4)
)
MAPPING = "entity_code,park_code,queue_times_id,queue_times_name\nAK7,AK,131,Everest\n"


def snapshot(rides: list[dict]) -> str:
    return json.dumps({"lands": [{"id": 1, "name": "Asia", "rides": rides}], "rides": []})


def make_raw(root: Path) -> None:
    write(root, "export/wait_times/wdw/wdw_wait_times_2024_03.csv", STANDBY)
    write(root, "public/EP9.csv", PUBLIC)
    write(root, "queue_times/entity_mapping.csv", MAPPING)
    write(root, "queue_times/AK/2024-03-02/AK_20240302T150000Z.json", snapshot([
        {"id": 131, "name": "Everest", "is_open": True, "wait_time": 35,
         "last_updated": "2024-03-02T14:58:00.000Z"},
        {"id": 132, "name": "Dinosaur", "is_open": False, "wait_time": 0,
         "last_updated": "2024-03-02T14:58:00.000Z"},
    ]))
    write(root, "notes/readme.txt", "not a data file\n")


def counts(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def test_ingest_parses_rejects_and_indexes(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw(raw)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = ingest(conn, LocalRawSource(raw), tmp_path / "cache")

    facts = counts(conn, "SELECT entity_code, wait_time_type, wait_time_minutes "
                         "FROM fct_wait_times ORDER BY observed_at, wait_time_type")
    assert facts == [
        ("MK101", "POSTED", 30), ("MK101", "ACTUAL", 22), ("MK101", "CLOSED", None),
        ("AK7", "POSTED", 35), ("EP9", "POSTED", 45), ("EP9", "ACTUAL", 38),
    ]
    rejected = counts(conn, "SELECT source_file, line, reason FROM fct_rejected_rows ORDER BY 1, 2")
    assert rejected == [
        ("export/wait_times/wdw/wdw_wait_times_2024_03.csv", 6, "unparseable_time"),
        ("export/wait_times/wdw/wdw_wait_times_2024_03.csv", 7, "value_out_of_range"),
        ("export/wait_times/wdw/wdw_wait_times_2024_03.csv", 8, "unknown_park"),
        ("export/wait_times/wdw/wdw_wait_times_2024_03.csv", 9, "missing_value"),
        ("public/EP9.csv", 4, "value_out_of_range"),
        ("queue_times/AK/2024-03-02/AK_20240302T150000Z.json", 2, "unmapped_ride"),
    ]
    assert report.rows_added == 6 and report.rows_rejected == 6
    assert report.rows_already_present == 0  # the repeated raw line is deduped, not rejected
    assert report.files_unknown == 1
    manifest = dict(counts(conn, "SELECT source_key, status FROM ingest_manifest"))
    assert manifest["notes/readme.txt"] == "unknown_format"
    assert manifest["queue_times/entity_mapping.csv"] == "processed"
    index = counts(conn, "SELECT entity_code, park_code, row_count, posted_count, actual_count, "
                         "closed_count, latest_park_date::VARCHAR FROM entity_index ORDER BY 1")
    assert index == [
        ("AK7", "AK", 1, 1, 0, 0, "2024-03-02"),
        ("EP9", "EP", 2, 1, 1, 0, "2024-03-02"),
        ("MK101", "MK", 3, 1, 1, 1, "2024-03-02"),
    ]
    assert sorted(report.new_entities) == ["AK7", "EP9", "MK101"]


def test_reingest_adds_nothing_and_picks_up_one_new_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw(raw)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    source = LocalRawSource(raw)
    ingest(conn, source, tmp_path / "cache")
    again = ingest(conn, source, tmp_path / "cache")
    assert (again.files_read, again.rows_added, again.rows_rejected) == (0, 0, 0)
    assert counts(conn, "SELECT count(*) FROM fct_rejected_rows") == [(6,)]

    write(raw, "public/HS5.csv",
          "date,datetime,SPOSTMIN,SACTMIN\n03/03/2024,2024-03-03 11:00:00,20,\n")
    third = ingest(conn, source, tmp_path / "cache")
    assert third.files_read == 1 and third.rows_added == 1 and third.new_entities == ["HS5"]
    assert counts(conn, "SELECT count(*) FROM fct_wait_times") == [(7,)]


def test_changed_file_adds_only_new_rows_and_does_not_double_rejects(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw(raw)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    source = LocalRawSource(raw)
    ingest(conn, source, tmp_path / "cache")
    write(raw, "public/EP9.csv", PUBLIC + "03/02/2024,2024-03-02 10:20:00,50,\n")
    report = ingest(conn, source, tmp_path / "cache")
    assert report.files_read == 1 and report.rows_added == 1
    # the file only grew: its old rows are not parsed again (lib/ingest/append.py)
    assert report.rows_already_present == 0 and report.files_appended == 1
    assert counts(conn, "SELECT count(*) FROM fct_rejected_rows "
                        "WHERE source_file = 'public/EP9.csv'") == [(1,)]


def test_unreadable_file_is_recorded_and_retried(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw(raw)
    write(raw, "queue_times/AK/2024-03-02/AK_20240302T153000Z.json", '{"lands": [ {"rides": [')
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    source = LocalRawSource(raw)
    first = ingest(conn, source, tmp_path / "cache")
    key = "queue_times/AK/2024-03-02/AK_20240302T153000Z.json"
    assert key in first.failed_files and first.rows_added == 6
    assert conn.execute("SELECT status, attempts FROM ingest_manifest WHERE source_key = ?",
                        [key]).fetchone() == ("failed", 1)
    second = ingest(conn, source, tmp_path / "cache")  # retried, still failing
    assert key in second.failed_files
    assert conn.execute("SELECT attempts FROM ingest_manifest WHERE source_key = ?",
                        [key]).fetchone() == (2,)
    # fixed upstream: the next run reads it
    write(raw, key, snapshot([{"id": 131, "name": "Everest", "is_open": True, "wait_time": 40,
                               "last_updated": "2024-03-02T15:28:00Z"}]))
    third = ingest(conn, source, tmp_path / "cache")
    assert third.files_read == 1 and third.rows_added == 1 and not third.failed_files
    assert conn.execute("SELECT status FROM ingest_manifest WHERE source_key = ?",
                        [key]).fetchone() == ("processed",)


@pytest.mark.integration
def test_s3_source_end_to_end(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    client = s3_client(s3_endpoint)
    bucket = s3_bucket
    local = tmp_path / "staging"
    make_raw(local)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.put_object(Bucket=bucket, Key=f"tp/{path.relative_to(local).as_posix()}",
                          Body=path.read_bytes())
    source = S3RawSource(bucket, "tp", endpoint_url=s3_endpoint)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = ingest(conn, source, tmp_path / "cache")
    assert report.rows_added == 6 and report.rows_rejected == 6 and report.files_unknown == 1
    assert counts(conn, "SELECT DISTINCT source_file FROM fct_wait_times ORDER BY 1")[0] == \
        ("export/wait_times/wdw/wdw_wait_times_2024_03.csv",)
    assert ingest(conn, source, tmp_path / "cache").rows_added == 0
    client.put_object(Bucket=bucket, Key="tp/public/HS5.csv",
                      Body=b"date,datetime,SPOSTMIN,SACTMIN\n03/03/2024,2024-03-03 11:00:00,20,\n")
    assert ingest(conn, source, tmp_path / "cache").rows_added == 1


def test_observed_at_instants_and_park_dates(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_raw(raw)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest(conn, LocalRawSource(raw), tmp_path / "cache")
    rows = conn.execute(
        "SELECT entity_code, observed_at, park_date FROM fct_wait_times "
        "WHERE wait_time_type='POSTED' ORDER BY observed_at"
    ).fetchall()
    as_utc = [(e, t.astimezone(UTC).replace(tzinfo=None), str(d)) for e, t, d in rows]
    assert as_utc == [
        ("MK101", datetime(2024, 3, 2, 14, 0), "2024-03-02"),   # 09:00 EST = 14:00 UTC
        ("AK7", datetime(2024, 3, 2, 14, 58), "2024-03-02"),
        ("EP9", datetime(2024, 3, 2, 15, 0), "2024-03-02"),
    ]


def _tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        "facts": counts(conn, "SELECT * FROM fct_wait_times ORDER BY ALL"),
        "rejected": counts(conn, "SELECT source_file, line, reason, raw FROM fct_rejected_rows "
                                 "ORDER BY ALL"),
        "manifest": counts(conn, "SELECT source_key, status, rows_read, rows_rejected "
                                 "FROM ingest_manifest ORDER BY ALL"),
    }


def test_batches_parsed_on_workers_land_as_one_in_process_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small batches parsed on two worker processes commit the same warehouse as one
    batch parsed in-process: every fact once, a fact held by two files keeps the source_file
    of the file listed first, rejected rows and manifest rows alike."""
    from bambam_assets.lib.ingest import ingest as ingest_module

    raw = tmp_path / "raw"
    make_raw(raw)
    # the same observation in a second property's file, listed after the first: batch order,
    # not worker timing, decides whose source_file the fact keeps
    write(raw, "export/wait_times/wdw/wdw_wait_times_2024_04.csv",
          STANDBY.split("\n", 1)[0] + "\nMK101,2024-03-02 09:05:00,,22,9\n"
          "MK101,2024-04-01 10:00:00,15,,9\n")
    for i in range(6):
        write(raw, f"public/EP{20 + i}.csv", PUBLIC.replace("45", str(40 + i)))
    one = duckdb.connect(str(tmp_path / "one.duckdb"))
    ingest(one, LocalRawSource(raw), tmp_path / "c1")

    monkeypatch.setattr(ingest_module, "BATCH_ROWS_TARGET_BYTES", 1)  # one file per batch
    monkeypatch.setattr(ingest_module, "parse_workers", lambda n: 2)
    many = duckdb.connect(str(tmp_path / "many.duckdb"))
    report = ingest(many, LocalRawSource(raw), tmp_path / "c2")

    assert report.files_read == 10
    assert _tables(many) == _tables(one)
    kept = counts(many, "SELECT source_file FROM fct_wait_times "
                        "WHERE observed_at = TIMESTAMPTZ '2024-03-02 14:05:00+00'")
    assert kept == [("export/wait_times/wdw/wdw_wait_times_2024_03.csv",)]

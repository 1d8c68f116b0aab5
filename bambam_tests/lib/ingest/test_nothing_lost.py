"""Issue 16, nothing lost: bad bytes reject lines (not files), corrected re-exports replace
superseded facts, failing files are counted and quarantined (lib.ingest.ingest, .quarantine)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from click.testing import CliRunner

from bambam_assets.cli.main import main
from bambam_assets.lib.core import schema
from bambam_assets.lib.core.warehouse import warehouse_path
from bambam_assets.lib.ingest.formats import RawFormat, detect_format
from bambam_assets.lib.ingest.ingest import ingest, pending_files
from bambam_assets.lib.ingest.quarantine import quarantined_files, release
from bambam_assets.lib.ingest.raw_source import LocalRawSource

HEADER = b"entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id\n"
KEY = "export/wait_times/wdw/wdw_wait_times_2024_03.csv"


def row(i: int, posted: int | str = "", actual: int | str = "") -> bytes:
    at = f"2024-03-02 {9 + i // 12:02d}:{i % 12 * 5:02d}:00"
    return f"MK101,{at},{posted},{actual},{i}\n".encode()


def put(raw: Path, key: str, data: bytes) -> Path:
    path = raw / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run(tmp_path: Path, **kw):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        return ingest(conn, LocalRawSource(tmp_path / "raw"), tmp_path / "cache", **kw), conn
    except BaseException:
        conn.close()
        raise


def facts(conn) -> list[tuple]:
    return conn.execute("SELECT strftime(observed_at AT TIME ZONE 'UTC', '%H:%M'), "
                        "wait_time_type, wait_time_minutes, source_file FROM fct_wait_times "
                        "ORDER BY ALL").fetchall()


def rejected(conn) -> list[tuple]:
    return conn.execute("SELECT source_file, line, reason FROM fct_rejected_rows "
                        "ORDER BY ALL").fetchall()


def test_nul_in_first_4kb_rejects_only_its_line(tmp_path: Path) -> None:
    lines = [row(i, posted=10 + i) for i in range(40)]
    lines[1] = b"MK101,2024-03-02 09:05\x00:00,11,,1\n"          # line 3
    lines[30] = b"\x00\x00\x00\x00\x00\x00\x00\x00\n"            # line 32: a NUL-filled block
    data = HEADER + b"".join(lines)
    assert detect_format(KEY, data[:4096]) == RawFormat.STANDBY
    put(tmp_path / "raw", KEY, data)
    report, conn = run(tmp_path)
    assert report.files_read == 1 and not report.failed_files and report.files_unknown == 0
    assert report.rows_added == 38
    assert rejected(conn) == [(KEY, 3, "nul_bytes"), (KEY, 32, "nul_bytes")]
    raw = conn.execute("SELECT raw FROM fct_rejected_rows WHERE line = 3").fetchone()[0]
    assert "\\x00" in raw  # the bad bytes stay visible
    assert conn.execute("SELECT status, rows_rejected FROM ingest_manifest").fetchall() == [
        ("processed", 2)]


def test_nul_after_4kb_and_invalid_utf8(tmp_path: Path) -> None:
    lines = [row(i, posted=10 + i) for i in range(150)]  # ~5.5 KB
    lines[140] = b"MK101,2024-03-02 20:40:00,3\x000,,140\n"   # line 142, past the first 4 KB
    lines[5] = b"MK101,2024-03-02 09:25:00,\xff\xfe15,,5\n"    # line 7, not UTF-8
    data = HEADER + b"".join(lines)
    assert data.index(b"\x00") > 4096
    put(tmp_path / "raw", KEY, data)
    report, conn = run(tmp_path)
    assert report.files_read == 1 and report.rows_added == 148
    assert rejected(conn) == [(KEY, 7, "invalid_utf8"), (KEY, 142, "nul_bytes")]
    conn.close()
    again, conn = run(tmp_path)  # processed: not read again, nothing doubled
    assert again.files_read == 0 and len(rejected(conn)) == 2


def test_unrecognised_file_under_a_wait_time_path_fails_and_is_quarantined(
        tmp_path: Path) -> None:
    """Where the legacy layout names a wait-time export (export/wait_times/{prop}/*.csv,
    export/fastpass_times/{prop}/*.csv), content without a wait-time header is a failed read:
    counted, quarantined after N, its reason shown. Elsewhere it stays "unknown format"."""
    raw = tmp_path / "raw"
    put(raw, KEY, b"\x00\x01PK\x03\x04" + HEADER + row(0, 10))  # binary: a zip, say
    fast = "export/fastpass_times/wdw/wdw_fastpass_times_2024_06.csv"
    put(raw, fast, b"<html><body>503 Service Unavailable</body></html>\n")
    put(raw, "notes/readme.txt", b"\x00\x01 not ours")
    for attempt in (1, 2, 3):
        report, conn = run(tmp_path, max_attempts=3)
        assert set(report.failed_files) == {KEY, fast}
        assert report.files_unknown == (attempt == 1)  # an unknown file is recorded once
        assert "wait-time export" in report.failed_files[KEY]
        assert report.rows_added == 0
        rows = conn.execute("SELECT source_key, status, attempts FROM ingest_manifest "
                            "ORDER BY 1").fetchall()
        status = "failed" if attempt < 3 else "quarantined"
        assert rows == [(fast, status, attempt), (KEY, status, attempt),
                        ("notes/readme.txt", "unknown_format", 1)]
        conn.close()
    # the real export replaces the garbage: read at once, whatever the quarantine
    put(raw, KEY, HEADER + row(0, posted=10))
    report, conn = run(tmp_path, max_attempts=3)
    assert report.rows_added == 1 and KEY not in report.failed_files
    assert quarantined_files(conn)["source_key"].tolist() == [fast]


def test_a_last_line_without_a_line_break_is_held_back_until_the_file_grows_or_settles(
        tmp_path: Path) -> None:
    """A partial upload cut inside the last field of its last line (`...,13` cut to `...,1`)
    parses as a wrong value: a last line without its line break is held back (neither landed
    nor rejected) while the file may still be written; the grown file lands it whole, and a
    file that stays as it is for `settle_s` lands it as it is."""
    raw = tmp_path / "raw"
    whole = HEADER + row(0, posted=10) + row(1, posted=13)
    put(raw, KEY, whole[:-2])  # the upload cut inside "13\n": "...,1"
    first, conn = run(tmp_path, settle_s=3600)
    assert first.rows_added == 1 and first.lines_held_back == 1 and not first.failed_files
    assert facts(conn) == [("14:00", "POSTED", 10, KEY)] and rejected(conn) == []
    assert conn.execute("SELECT status FROM ingest_manifest").fetchone() == ("held",)
    conn.close()
    again, conn = run(tmp_path, settle_s=3600)  # unchanged and not settled: not read again
    assert again.files_read == 0 and again.rows_added == 0
    conn.close()
    put(raw, KEY, whole)  # the rest of the upload
    grown, conn = run(tmp_path, settle_s=3600)
    assert grown.rows_added == 1 and grown.lines_held_back == 0
    assert facts(conn) == [("14:00", "POSTED", 10, KEY), ("14:05", "POSTED", 13, KEY)]
    assert conn.execute("SELECT status FROM ingest_manifest").fetchone() == ("processed",)
    conn.close()
    # an export that simply ends without a line break: landed once it has settled
    other = "export/wait_times/wdw/wdw_wait_times_2024_04.csv"
    put(raw, other, HEADER + row(2, posted=20).rstrip(b"\n"))
    held, conn = run(tmp_path, settle_s=3600)
    assert held.lines_held_back == 1 and held.rows_added == 0
    # what the raw-files sensor asks (pending_files): nothing before it settles, then the file
    listed = LocalRawSource(raw).list_files()
    assert pending_files(conn, listed, settle_s=3600) == []
    assert [f.key for f in pending_files(conn, listed, settle_s=0)] == [other]
    conn.close()
    settled, conn = run(tmp_path, settle_s=0)
    assert settled.files_read == 1 and settled.rows_added == 1 and settled.lines_held_back == 0
    assert conn.execute("SELECT status FROM ingest_manifest WHERE source_key = ?",
                        [other]).fetchone() == ("processed",)


def test_corrected_reexport_replaces_superseded_fact(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    other = "export/wait_times/wdw/zz_other.csv"  # read after KEY: KEY keeps the shared fact
    put(raw, KEY, HEADER + row(0, actual=38) + row(1, actual=20) + row(2, posted=15))
    put(raw, other, HEADER + row(1, actual=20))  # also holds the 09:05 ACTUAL 20
    first, conn = run(tmp_path)
    assert first.rows_added == 3
    # the 09:05 fact is kept with KEY as its source_file (read first), other.csv is a holder
    assert facts(conn) == [("14:00", "ACTUAL", 38, KEY), ("14:05", "ACTUAL", 20, KEY),
                           ("14:10", "POSTED", 15, KEY)]
    conn.close()
    # the corrected re-export: 38 was 83, the 09:05 row is gone from it
    put(raw, KEY, HEADER + row(0, actual=83) + row(2, posted=15))
    second, conn = run(tmp_path)
    assert second.files_read == 1 and second.files_appended == 0
    assert second.rows_added == 1 and second.rows_retracted == 1
    assert facts(conn) == [("14:00", "ACTUAL", 83, KEY), ("14:05", "ACTUAL", 20, other),
                           ("14:10", "POSTED", 15, KEY)]
    assert conn.execute("SELECT count(*) FROM fct_wait_time_sources").fetchone() == (0,)
    assert conn.execute("SELECT actual_count FROM entity_index").fetchone() == (2,)


def test_an_entity_whose_every_fact_is_retracted_leaves_the_entity_index(
        tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    put(raw, KEY, HEADER + row(0, actual=38) + b"MK102,2024-03-02 10:00:00,25,,7\n")
    run(tmp_path)[1].close()
    # the corrected export no longer holds MK102 at all (a mis-coded ride, say)
    put(raw, KEY, HEADER + row(0, actual=38))
    report, conn = run(tmp_path)
    assert report.rows_retracted == 1
    assert conn.execute("SELECT count(*) FROM fct_wait_times WHERE entity_code = 'MK102'"
                        ).fetchone() == (0,)
    assert conn.execute("SELECT entity_code FROM entity_index ORDER BY 1").fetchall() == \
        [("MK101",)]


def test_grown_file_still_only_appends(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    put(raw, KEY, HEADER + row(0, actual=38))
    run(tmp_path)[1].close()
    put(raw, KEY, HEADER + row(0, actual=38) + row(1, actual=40))
    report, conn = run(tmp_path)
    assert report.files_appended == 1 and report.rows_retracted == 0
    assert [f[2] for f in facts(conn)] == [38, 40]


def test_failing_file_is_quarantined_listed_released_and_retried_on_change(
        tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    put(raw, KEY, HEADER + row(0, posted=10))
    bad = "queue_times/AK/2024-03-02/AK_20240302T150000Z.json"
    put(raw, bad, b'{"lands": [ {"rides": [')
    for attempt in (1, 2, 3):
        report, conn = run(tmp_path, max_attempts=3)
        assert bad in report.failed_files
        status = conn.execute("SELECT status, attempts, error IS NOT NULL FROM ingest_manifest "
                              "WHERE source_key = ?", [bad]).fetchone()
        assert status == ("failed" if attempt < 3 else "quarantined", attempt, True)
        assert report.quarantined_files == ([] if attempt < 3 else [bad])
        conn.close()
    skipped, conn = run(tmp_path, max_attempts=3)  # quarantined: not read again
    assert not skipped.failed_files and skipped.files_read == 0
    assert quarantined_files(conn)["source_key"].tolist() == [bad]
    conn.close()
    # the CLI lists and releases it
    monkeypatch.setenv("BAMBAM_HOME", str(tmp_path))
    (tmp_path / "w.duckdb").rename(warehouse_path(tmp_path))
    listed = CliRunner().invoke(main, ["ingest", "quarantine"])
    assert listed.exit_code == 0 and bad in listed.output and "3 attempts" in listed.output
    released = CliRunner().invoke(main, ["ingest", "release", "--all"])
    assert released.exit_code == 0 and f"released {bad}" in released.output
    warehouse_path(tmp_path).rename(tmp_path / "w.duckdb")
    retried, conn = run(tmp_path, max_attempts=3)  # released: read again, fails, attempts 1
    assert bad in retried.failed_files and not retried.quarantined_files
    assert conn.execute("SELECT status, attempts FROM ingest_manifest WHERE source_key = ?",
                        [bad]).fetchone() == ("failed", 1)
    conn.close()
    for _ in range(2):
        run(tmp_path, max_attempts=3)[1].close()
    # quarantined again; a changed version is read automatically, with a fresh count
    put(raw, bad, b'{"lands": [], "rides": []}')
    fixed, conn = run(tmp_path, max_attempts=3)
    assert not fixed.failed_files and fixed.files_read == 1
    assert conn.execute("SELECT status, attempts FROM ingest_manifest WHERE source_key = ?",
                        [bad]).fetchone() == ("processed", 1)
    assert quarantined_files(conn).empty


def test_release_single_key_and_unknown_key(tmp_path: Path) -> None:
    put(tmp_path / "raw", "queue_times/x.json", b'{"lands": [')
    report, conn = run(tmp_path, max_attempts=1)
    assert report.quarantined_files == ["queue_times/x.json"]
    assert release(conn, ["nope.csv"]) == []
    assert release(conn, ["queue_times/x.json"]) == ["queue_times/x.json"]
    assert conn.execute("SELECT status, attempts, released_at IS NOT NULL FROM ingest_manifest"
                        ).fetchone() == ("failed", 0, True)


def test_manifest_migration_from_old_schema(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("""CREATE TABLE ingest_manifest (
        source_key VARCHAR PRIMARY KEY, size BIGINT, etag VARCHAR, modified_at TIMESTAMPTZ,
        format VARCHAR, status VARCHAR NOT NULL, error VARCHAR, attempts INTEGER DEFAULT 0,
        rows_read BIGINT, rows_added BIGINT, rows_rejected BIGINT, ingested_at TIMESTAMPTZ,
        content_sha256 VARCHAR, content_lines BIGINT)""")
    conn.execute("INSERT INTO ingest_manifest (source_key, size, status, error, attempts) "
                 "VALUES ('queue_times/x.json', 11, 'failed', 'boom', 2)")
    assert quarantined_files(conn).empty  # a reader of an unmigrated warehouse copes
    schema.ensure_tables(conn)
    cols = {r[0] for r in conn.execute("DESCRIBE ingest_manifest").fetchall()}
    assert {"quarantined_at", "released_at"} <= cols
    conn.close()
    # the listed file is another version than the old row (its mtime): counted from 1 again
    put(tmp_path / "raw", "queue_times/x.json", b'{"lands": [')
    report, conn = run(tmp_path, max_attempts=3)
    assert report.failed_files and conn.execute(
        "SELECT status, attempts FROM ingest_manifest").fetchone() == ("failed", 1)

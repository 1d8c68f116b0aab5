"""Append-aware ingest: a grown raw file is read from its first new line only, and the warehouse
ends up exactly as a fresh ingest of the final files would leave it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from bambam_assets.lib.ingest import ingest as ingest_module
from bambam_assets.lib.ingest.ingest import ingest
from bambam_assets.lib.ingest.raw_source import LocalRawSource, S3RawSource
from bambam_tests.builders import write
from bambam_tests.s3_server import s3_client

STANDBY_KEY = "export/wait_times/wdw/wdw_wait_times_2024_03.csv"
PUBLIC_KEY = "public/EP9.csv"
OTHER_KEY = "export/wait_times/dlr/dlr_wait_times_2024_03.csv"  # never changes
FP_NEW_KEY = "export/fastpass_times/wdw/wdw_fastpass_times_2024_03.csv"
FP_OLD_KEY = "export/fastpass_times/wdw/wdw_fastpass_times_2018_05.csv"
STANDBY_HEADER = "entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id\n"
PUBLIC_HEADER = "date,datetime,SPOSTMIN,SACTMIN\n"
FP_NEW_HEADER = "FATTID,FDAY,FMONTH,FYEAR,FHOUR,FMIN,FWINHR,FWINMIN\n"

# Old DDL of ingest_manifest (before content_sha256 / content_lines), as released.
OLD_MANIFEST_DDL = """
    CREATE TABLE IF NOT EXISTS ingest_manifest (
        source_key VARCHAR PRIMARY KEY,
        size BIGINT,
        etag VARCHAR,
        modified_at TIMESTAMPTZ,
        format VARCHAR,
        status VARCHAR NOT NULL,          -- processed | failed | unknown_format
        error VARCHAR,
        attempts INTEGER DEFAULT 0,
        rows_read BIGINT,
        rows_added BIGINT,
        rows_rejected BIGINT,
        ingested_at TIMESTAMPTZ
    )"""
OLD_MANIFEST_COLUMNS = ("source_key, size, etag, modified_at, format, status, error, attempts, "
                        "rows_read, rows_added, rows_rejected, ingested_at")


# ----------------------------------------------------------------------------- raw lines

def standby_lines(day: int, entities: tuple[str, ...] = ("MK101", "MK102"), n: int = 12) -> str:
    """n observations per entity on 2024-03-<day>, 09:00 local on, 5 minutes apart."""
    return "".join(
        f"{e},2024-03-{day:02d} {9 + i * 5 // 60:02d}:{i * 5 % 60:02d}:00,{10 + i},"
        f"{'' if i % 3 else 8 + i},{i}\n"
        for e in entities for i in range(n)
    )


def public_lines(day: int, n: int = 10) -> str:
    return "".join(
        f"03/{day:02d}/2024,2024-03-{day:02d} {10 + i * 7 // 60:02d}:{i * 7 % 60:02d}:00,"
        f"{20 + i},{'' if i % 2 else 15 + i}\n"
        for i in range(n)
    )


def fastpass_new_lines(day: int, n: int = 8) -> str:
    return "".join(f"MK101,{day},3,2024,{9 + i},{i * 3},{10 + i},{i * 5}\n" for i in range(n))


def fastpass_old_lines(day: int, n: int = 8) -> str:
    extra = ",".join(["z"] * 17)
    return "".join(f"MK103,{day},5,2018,{9 + i},{i * 3},{10 + i},{i * 5},{extra}\n"
                   for i in range(n))


def make_history(raw: Path) -> None:
    """Day 1 of March 2024 (with some bad rows) in an export, a public and an untouched file."""
    write(raw, STANDBY_KEY, STANDBY_HEADER + standby_lines(1)
          + "MK101,not a time,25,,4\n"              # unparseable_time, line 26
          + "\n"                                     # a blank line still counts in the numbering
          + standby_lines(1, ("MK103",), 4))
    write(raw, PUBLIC_KEY, PUBLIC_HEADER + public_lines(1)
          + "03/01/2024,2024-03-01 18:00:00,5000,\n")  # value_out_of_range, line 12
    write(raw, OTHER_KEY, STANDBY_HEADER + standby_lines(1, ("DL01",), 6))


def append(raw: Path, key: str, text: str) -> None:
    with open(raw / key, "a") as fh:
        fh.write(text)


def rewrite(raw: Path, key: str, text: str) -> None:
    """Replace a file's content and move its mtime, as an export rewriting it would."""
    path = raw / key
    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


# ----------------------------------------------------------------------------- warehouse state

def state(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Everything the ingest writes that must not depend on how a file was read, sorted."""
    return {
        "facts": conn.execute("SELECT * FROM fct_wait_times ORDER BY ALL").fetchall(),
        "rejected": conn.execute(
            "SELECT source_file, line, reason, raw FROM fct_rejected_rows ORDER BY ALL").fetchall(),
        "manifest": conn.execute(
            "SELECT source_key, format, status, rows_read, rows_rejected, content_sha256, "
            "content_lines FROM ingest_manifest ORDER BY ALL").fetchall(),
        "index": conn.execute(
            "SELECT * EXCLUDE (updated_at) FROM entity_index ORDER BY ALL").fetchall(),
    }


def fresh_state(raw: Path, tmp_path: Path) -> dict[str, list[tuple]]:
    """The state a new warehouse gets from one ingest of a copy of `raw` as it is now."""
    n = len(list(tmp_path.glob("fresh*")))
    copy = tmp_path / f"fresh{n}" / "raw"
    shutil.copytree(raw, copy)
    conn = duckdb.connect(str(copy.parent / "w.duckdb"))
    try:
        ingest(conn, LocalRawSource(copy), copy.parent / "cache")
        return state(conn)
    finally:
        conn.close()


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    make_history(root)
    return root


@pytest.fixture
def conn(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def run(conn: duckdb.DuckDBPyConnection, raw: Path, tmp_path: Path):
    return ingest(conn, LocalRawSource(raw), tmp_path / "cache")


# ----------------------------------------------------------------------------- tests

def test_appended_lines_are_the_only_rows_parsed(raw: Path, conn, tmp_path: Path) -> None:
    first = run(conn, raw, tmp_path)
    assert first.files_appended == 0 and first.files_read == 3
    append(raw, STANDBY_KEY, standby_lines(2))           # 24 lines
    append(raw, PUBLIC_KEY, public_lines(2, n=7))        # 7 lines

    report = run(conn, raw, tmp_path)

    assert (report.files_read, report.files_appended) == (2, 2)
    assert report.rows_read == 24 + 7
    # facts: 24 posted + 8 actual (standby), 7 posted + 4 actual (public)
    assert report.rows_added == 32 + 11 and report.rows_already_present == 0
    assert state(conn) == fresh_state(raw, tmp_path)
    counts = conn.execute(
        "SELECT entity_code, row_count, posted_count, actual_count, latest_park_date::VARCHAR "
        "FROM entity_index ORDER BY 1").fetchall()
    facts = conn.execute(
        "SELECT entity_code, count(*), count(*) FILTER (wait_time_type = 'POSTED'), "
        "count(*) FILTER (wait_time_type = 'ACTUAL'), max(park_date)::VARCHAR "
        "FROM fct_wait_times GROUP BY 1 ORDER BY 1").fetchall()
    assert counts == facts
    assert dict((e, n) for e, n, *_ in counts)["EP9"] == 10 + 5 + 7 + 4
    assert dict((e, d) for e, *_, d in counts)["MK102"] == "2024-03-02"
    # Nothing changed since: nothing is read.
    again = run(conn, raw, tmp_path)
    assert (again.files_read, again.rows_read) == (0, 0)


def test_rejected_rows_of_an_append_keep_whole_file_line_numbers(
        raw: Path, conn, tmp_path: Path) -> None:
    run(conn, raw, tmp_path)
    before = conn.execute("SELECT source_file, line, reason FROM fct_rejected_rows ORDER BY 1, 2"
                          ).fetchall()
    assert before == [(STANDBY_KEY, 26, "unparseable_time"), (PUBLIC_KEY, 12, "value_out_of_range")]
    # the history file has 1 header + 24 + 1 bad + 1 blank + 4 = 31 lines
    append(raw, STANDBY_KEY, standby_lines(2, ("MK101",), 3)   # lines 32-34
           + "\n"                                                 # line 35
           + "ZZ12,2024-03-02 11:00:00,10,,9\n"                   # line 36: unknown_park
           + standby_lines(2, ("MK102",), 2))                     # lines 37-38
    append(raw, PUBLIC_KEY, public_lines(2, n=2) + "03/02/2024,2024-03-02 19:00:00,-5,\n")  # 15

    report = run(conn, raw, tmp_path)

    assert report.files_appended == 2 and report.rows_read == 3 + 1 + 2 + 3
    rejected = conn.execute("SELECT source_file, line, reason FROM fct_rejected_rows ORDER BY 1, 2"
                            ).fetchall()
    assert rejected == [
        (STANDBY_KEY, 26, "unparseable_time"), (STANDBY_KEY, 36, "unknown_park"),
        (PUBLIC_KEY, 12, "value_out_of_range"), (PUBLIC_KEY, 15, "value_out_of_range"),
    ]
    assert conn.execute("SELECT rows_read, rows_rejected, content_lines FROM ingest_manifest "
                        "WHERE source_key = ?", [STANDBY_KEY]).fetchall() == [(29 + 6, 2, 38)]
    assert state(conn) == fresh_state(raw, tmp_path)


def test_a_failed_run_after_the_commit_does_not_double_rejected_rows(
        raw: Path, conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(conn, raw, tmp_path)
    append(raw, STANDBY_KEY, "MK101,bad,1,,1\n" + standby_lines(2, n=2))

    def boom(*_args) -> None:
        raise RuntimeError("the run dies before its manifest is written")

    with monkeypatch.context() as m:
        m.setattr(ingest_module, "_write_manifest", boom)
        with pytest.raises(RuntimeError):
            run(conn, raw, tmp_path)
    retry = run(conn, raw, tmp_path)  # the manifest still describes the old version
    assert retry.files_appended == 1
    assert state(conn) == fresh_state(raw, tmp_path)


@pytest.mark.parametrize("new_header", [
    STANDBY_HEADER.upper(),                                             # same size
    '"entity_code","observed_at",submitted_posted_time,submitted_actual_time,user_id\n',  # larger
])
def test_a_rewritten_first_line_is_read_in_full(raw: Path, conn, tmp_path: Path,
                                                new_header: str) -> None:
    run(conn, raw, tmp_path)
    body = (raw / STANDBY_KEY).read_text().split("\n", 1)[1]
    grown = new_header != STANDBY_HEADER.upper()
    rewrite(raw, STANDBY_KEY, new_header + body + (standby_lines(2, n=3) if grown else ""))

    report = run(conn, raw, tmp_path)

    assert (report.files_read, report.files_appended) == (1, 0)
    assert report.rows_read == 29 + (6 if grown else 0)
    assert state(conn) == fresh_state(raw, tmp_path)


def test_a_shrunk_file_is_read_in_full_then_appends_again(raw: Path, conn, tmp_path: Path) -> None:
    run(conn, raw, tmp_path)
    rewrite(raw, PUBLIC_KEY, PUBLIC_HEADER + public_lines(1, n=6))   # the bad line 12 is gone

    shrunk = run(conn, raw, tmp_path)

    assert (shrunk.files_read, shrunk.files_appended, shrunk.rows_read) == (1, 0, 6)
    assert shrunk.rows_added == 0  # facts are never deleted: the dropped lines' facts stay
    assert conn.execute("SELECT count(*) FROM fct_rejected_rows WHERE source_file = ?",
                        [PUBLIC_KEY]).fetchall() == [(0,)]  # a full re-read replaces them
    append(raw, PUBLIC_KEY, public_lines(3, n=4))
    grown = run(conn, raw, tmp_path)
    assert (grown.files_appended, grown.rows_read, grown.rows_added) == (1, 4, 4 + 2)
    assert conn.execute("SELECT rows_read, content_lines FROM ingest_manifest "
                        "WHERE source_key = ?", [PUBLIC_KEY]).fetchall() == [(10, 11)]


def test_a_file_without_a_final_line_break_is_read_in_full(raw: Path, conn,
                                                            tmp_path: Path) -> None:
    rewrite(raw, PUBLIC_KEY, PUBLIC_HEADER + public_lines(1).rstrip("\n"))
    run(conn, raw, tmp_path)
    # The old last line may be completed by the new bytes: only a full read is safe.
    append(raw, PUBLIC_KEY, "5\n" + public_lines(2, n=3))

    report = run(conn, raw, tmp_path)

    assert (report.files_appended, report.rows_read) == (0, 13)
    assert state(conn) == fresh_state(raw, tmp_path)


@pytest.mark.parametrize(("key", "first", "lines"), [
    (FP_NEW_KEY, FP_NEW_HEADER, fastpass_new_lines),
    (FP_OLD_KEY, "this first line is skipped,anything\n", fastpass_old_lines),
])
def test_fastpass_exports_append(raw: Path, conn, tmp_path: Path, key, first, lines) -> None:
    write(raw, key, first + lines(1))
    run(conn, raw, tmp_path)
    append(raw, key, lines(2) + "MK101,2,3\n")  # a short row: bad_row, line 18

    report = run(conn, raw, tmp_path)

    assert (report.files_appended, report.rows_read) == (1, 9)
    assert conn.execute("SELECT line, reason FROM fct_rejected_rows WHERE source_file = ?",
                        [key]).fetchall() == [(18, "bad_row")]
    assert state(conn) == fresh_state(raw, tmp_path)


def test_an_old_warehouse_migrates_reads_in_full_once_then_appends(
        raw: Path, conn, tmp_path: Path) -> None:
    run(conn, raw, tmp_path)
    # Turn the warehouse into one the previous release wrote: its manifest has no digests.
    conn.execute(f"CREATE TABLE old_manifest AS SELECT {OLD_MANIFEST_COLUMNS} FROM ingest_manifest")
    conn.execute("DROP TABLE ingest_manifest")
    conn.execute(OLD_MANIFEST_DDL)
    conn.execute("INSERT INTO ingest_manifest SELECT * FROM old_manifest")
    conn.execute("DROP TABLE old_manifest")
    append(raw, STANDBY_KEY, standby_lines(2))
    append(raw, PUBLIC_KEY, public_lines(2, n=5))

    migrated = run(conn, raw, tmp_path)

    columns = [c for (c,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'ingest_manifest'"
    ).fetchall()]
    assert {"content_sha256", "content_lines"} <= set(columns)
    assert (migrated.files_read, migrated.files_appended, migrated.rows_read) == (2, 0, 53 + 16)
    assert migrated.rows_added == 32 + 8  # the new lines' facts (posted + actual)
    # Untouched files keep no digest until they change (they are not read again).
    assert conn.execute("SELECT source_key FROM ingest_manifest WHERE content_sha256 IS NULL"
                        ).fetchall() == [(OTHER_KEY,)]
    append(raw, STANDBY_KEY, standby_lines(3))
    append(raw, PUBLIC_KEY, public_lines(3, n=5))
    then = run(conn, raw, tmp_path)
    assert (then.files_appended, then.rows_read) == (2, 24 + 5)
    mine, fresh = state(conn), fresh_state(raw, tmp_path)
    for table in ("facts", "rejected", "index"):
        assert mine[table] == fresh[table]


@pytest.mark.integration
def test_s3_append(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    client = s3_client(s3_endpoint)
    local = tmp_path / "raw"
    make_history(local)

    def upload(keys: list[str]) -> None:
        for key in keys:
            client.put_object(Bucket=s3_bucket, Key=f"tp/{key}", Body=(local / key).read_bytes())

    upload([p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()])
    source = S3RawSource(s3_bucket, "tp", endpoint_url=s3_endpoint)
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        ingest(conn, source, tmp_path / "cache")
        append(local, STANDBY_KEY, standby_lines(2) + "ZZ12,2024-03-02 11:00:00,10,,9\n")
        append(local, PUBLIC_KEY, public_lines(2, n=3))
        upload([STANDBY_KEY, PUBLIC_KEY])  # a re-put of an unchanged object would be re-read
        report = ingest(conn, source, tmp_path / "cache")
        assert (report.files_read, report.files_appended, report.rows_read) == (2, 2, 25 + 3)
        assert state(conn) == fresh_state(local, tmp_path)
        assert not list((tmp_path / "cache").glob(".append-*"))  # scratch slices removed
    finally:
        conn.close()

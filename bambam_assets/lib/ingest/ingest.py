"""Incremental ingest: raw files -> fct_wait_times, fct_rejected_rows, manifest, entity_index.

The manifest decides what to read (a file is read when it is new, changed, or failed last time);
a changed file that only grew by whole lines (a daily export appending a day) is read from its
first new line on (lib.ingest_append), any other change is a full re-read. Parsing is one
vectorized pass per batch of files (lib.parsing); the fact insert is an anti-join on the
four-column key, so re-reading a file adds nothing.

Nothing lost, nothing stale:
- A changed file re-read in full replaces its earlier facts in the batch's transaction: a fact
  whose source_file is that file and that its new version no longer holds (a corrected
  re-export: ACTUAL 38 became 83) is deleted, unless another file holds it too
  (fct_wait_time_sources records the other holders of every fact), in which case it stays and
  takes that file as its source_file. A grown file (append) only adds.
- A file that fails is retried on the next run; after `max_attempts` failed reads of the same
  version (BAMBAM_INGEST_MAX_ATTEMPTS, default 3) it is quarantined with its last error: skipped
  until it changes (size, etag or mtime) or is released (`release_quarantined`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from bambam_assets.lib.core import schema, settings
from bambam_assets.lib.core.process_pool import run_pool, worker_count
from bambam_assets.lib.core.warehouse import writer_memory_bytes
from bambam_assets.lib.ingest.append import (
    APPENDABLE_FORMATS,
    FileVersion,
    Previous,
    inspect_version,
    previous_versions,
)
from bambam_assets.lib.ingest.formats import (
    WAIT_TIME_FORMATS,
    RawFormat,
    detect_format,
    is_wait_time_export_key,
)
from bambam_assets.lib.ingest.holders import record_holders, retract_replaced
from bambam_assets.lib.ingest.parsing.wait_files import parse_wait_files, read_qt_mapping
from bambam_assets.lib.ingest.raw_source import RawFile, RawSource

# Files parsed together (by size on disk): bounds the parse peak (~2 GB for 96 MB of CSV,
# measured at full scale) while keeping each pass vectorized over millions of rows.
BATCH_ROWS_TARGET_BYTES = 96 * 2**20
# RAM one parse worker may take: the ~2 GB parse peak of a full batch plus the interpreter.
PARSE_PEAK_BYTES = int(2.5 * 2**30)


@dataclass
class IngestReport:
    """What one ingest run did (becomes the materialization metadata).

    files_read counts the files parsed without error, files_appended those of them read from
    their first appended line only; rows_read counts the rows parsed in this run.
    """

    files_listed: int = 0
    files_read: int = 0
    files_appended: int = 0
    files_failed: int = 0
    files_unknown: int = 0
    files_retracted: int = 0
    rows_read: int = 0
    rows_added: int = 0
    rows_already_present: int = 0
    rows_rejected: int = 0
    rows_retracted: int = 0
    lines_held_back: int = 0  # last lines without a line break, left for a later run
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rows_by_type: dict[str, int] = field(default_factory=dict)
    new_entities: list[str] = field(default_factory=list)
    failed_files: dict[str, str] = field(default_factory=dict)
    quarantined_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


def pending_files(conn: duckdb.DuckDBPyConnection, files: Sequence[RawFile],
                  settle_s: int | None = None) -> list[RawFile]:
    """Files not yet processed in this exact version (new, changed, or failed before); a
    quarantined file only once it changed; a file whose last line was held back (status
    'held') once it has been unchanged for `settle_s` (default settings.ingest_settle_seconds).

    Needs the ingest_manifest table (read-only connections are fine).
    """
    settle_s = settings.ingest_settle_seconds() if settle_s is None else settle_s
    if not files:
        return []
    # The listing goes in as bound lists, not a registered DataFrame: the raw-files sensor calls
    # this in a thread of the code server, where DuckDB's pandas scan once failed with
    # "Table Function with name pandas_scan does not exist" (a failed sensor tick, seen in the
    # daemon test).
    keys = conn.execute(
        """
        WITH listed_files AS (
            SELECT unnest($keys::VARCHAR[]) AS source_key, unnest($sizes::BIGINT[]) AS size,
                   unnest($etags::VARCHAR[]) AS etag,
                   unnest($modified::TIMESTAMPTZ[]) AS modified_at
        )
        SELECT l.source_key FROM listed_files l
        LEFT JOIN ingest_manifest m USING (source_key)
        WHERE m.source_key IS NULL
           OR m.status = 'failed'
           OR m.size IS DISTINCT FROM l.size
           OR coalesce(m.etag, '') <> l.etag
           OR m.modified_at IS DISTINCT FROM l.modified_at
           OR (m.status = 'held' AND m.ingested_at <= now() - to_seconds($settle))
        """, {"keys": [f.key for f in files], "sizes": [f.size for f in files],
              "etags": [f.etag or "" for f in files],
              "modified": [f.modified_at for f in files], "settle": settle_s},
    ).fetchall()
    wanted = {k for (k,) in keys}
    return [f for f in files if f.key in wanted]


def attempt_marks(conn: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> dict[str, str]:
    """Per known file, a mark that changes with every failed read and every release
    (attempts, released_at): a retry of the same file versions gets a new run key."""
    if not keys:
        return {}
    try:
        rows = conn.execute(
            "SELECT source_key, attempts, released_at FROM ingest_manifest "
            "WHERE source_key IN (SELECT unnest(?))", [list(keys)]).fetchall()
    except duckdb.BinderException:  # a warehouse no writer of this release has migrated yet
        rows = conn.execute(
            "SELECT source_key, attempts, NULL FROM ingest_manifest "
            "WHERE source_key IN (SELECT unnest(?))", [list(keys)]).fetchall()
    return {k: f"{a}@{r}" for k, a, r in rows}


@dataclass(frozen=True)
class _WaitFile:
    """One version of a wait-time file to parse: whole, or its appended lines only."""

    f: RawFile
    path: Path  # the fetched file
    fmt: RawFormat
    version: FileVersion
    reread: bool  # the manifest knew the file: a full read replaces its earlier facts
    held_path: Path | None = None  # what to parse when the last line is held back

    @property
    def parse_path(self) -> Path:
        if self.held_path is not None:
            return self.held_path
        return self.version.append.parse_path if self.version.append else self.path

    @property
    def parse_bytes(self) -> int:
        return self.version.append.appended_bytes if self.version.append else self.f.size


def _batches(files: Sequence[_WaitFile]):
    batch, size = [], 0
    for item in files:
        batch.append(item)
        size += item.parse_bytes
        if size >= BATCH_ROWS_TARGET_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def ingest(
    conn: duckdb.DuckDBPyConnection,
    source: RawSource,
    cache_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    max_attempts: int | None = None,
    settle_s: int | None = None,
) -> IngestReport:
    """Read every new or changed raw file into the warehouse; return what happened.

    `max_attempts` (default: settings.ingest_max_attempts()) failed reads of one version
    quarantine a file.

    A line-oriented wait-time file whose last line has no line break may be an upload still
    being written (a cut inside the last field still parses, as a wrong value): that line is
    held back, neither landed nor rejected, and the file recorded 'held'. The grown file lands
    it whole; a file unchanged for `settle_s` (default settings.ingest_settle_seconds()) is
    read again and lands it as it is.

    A wait-time file that only grew by whole lines since it was processed is read from its
    first new line (lib.ingest_append): its earlier rejected rows stay, its manifest counts
    add up. Grain of what it writes: fct_wait_times one row per observation (unique on the
    fact key), fct_rejected_rows one row per unusable raw row (line = line of the whole file),
    ingest_manifest one row per raw file, entity_index one row per entity.
    """
    started = time.perf_counter()
    max_attempts = settings.ingest_max_attempts() if max_attempts is None else max_attempts
    settle_s = settings.ingest_settle_seconds() if settle_s is None else settle_s
    report = IngestReport()
    schema.ensure_tables(conn)
    listed = source.list_files()
    report.files_listed = len(listed)
    todo = pending_files(conn, listed, settle_s)
    previous = previous_versions(conn, [f.key for f in todo])
    # Append slices live only for this run, in a hidden folder of the cache made on first use
    # (a run without appends on a local source never needs the cache).
    scratch = Path(cache_dir) / f".append-{uuid.uuid4().hex}"
    try:
        classified, manifest_rows = _classify(source, todo, previous, cache_dir, scratch, report,
                                              settle_s)
        touched, known_before = _read_wait_files(conn, source, listed, todo, cache_dir,
                                                 classified, manifest_rows, report, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.files_failed = len(report.failed_files)
    _write_manifest(conn, manifest_rows, max_attempts)
    report.quarantined_files = _quarantined_now(conn, list(report.failed_files))
    if touched:
        refresh_entity_index(conn, sorted(touched))
    report.new_entities = sorted(touched - known_before)
    report.seconds = time.perf_counter() - started
    return report


def _classify(source, todo, previous, cache_dir, scratch, report, settle_s):
    """Fetch and recognise each pending file: wait-time files to parse (with their digest,
    append slice, held-back last line), manifest rows for the others."""
    classified: list[_WaitFile] = []
    manifest_rows: list[dict] = []
    for f in todo:
        try:
            path = source.fetch(f, cache_dir)
            with open(path, "rb") as fh:
                head = fh.read(4096)
            fmt = detect_format(f.key, head)
            version = (inspect_version(path, fmt, previous.get(f.key), scratch)
                       if fmt in WAIT_TIME_FORMATS else None)
        except Exception as exc:  # unreadable: record, retry next run
            manifest_rows.append(_manifest_row(f, None, "failed", f"{type(exc).__name__}: {exc}"))
            report.failed_files[f.key] = str(exc)
            continue
        if fmt == RawFormat.UNKNOWN and is_wait_time_export_key(f.key):
            # its path says wait-time export, its content does not (a zip, an error page, a
            # partial write): a failed read, counted and quarantined after max_attempts
            first = head[:60].split(b"\n", 1)[0]  # the head detect_format read
            error = f"not a wait-time export: its first line is {first!r}"
            manifest_rows.append(_manifest_row(f, fmt, "failed", error))
            report.failed_files[f.key] = error
        elif fmt == RawFormat.UNKNOWN:
            manifest_rows.append(_manifest_row(f, fmt, "unknown_format", "format not recognised"))
            report.files_unknown += 1
        elif version is not None:
            wait = _WaitFile(f, path, fmt, version, f.key in previous)
            if fmt in APPENDABLE_FORMATS and not _settled(previous.get(f.key), version,
                                                          settle_s):
                wait = _hold_unterminated_line(wait, scratch)
            report.lines_held_back += wait.held_path is not None
            classified.append(wait)
        else:  # dimension exports and mapping files: catalogued here, read by their assets
            manifest_rows.append(_manifest_row(f, fmt, "processed", None))
    return classified, manifest_rows


def _settled(prev: Previous | None, version: FileVersion, settle_s: int) -> bool:
    """Whether this version's held-back last line is to be landed as it is: the same version
    was held back at least `settle_s` ago."""
    return (prev is not None and prev.status == "held" and prev.ingested_at is not None
            and prev.content_sha256 == version.content_sha256
            and (datetime.now(UTC) - prev.ingested_at).total_seconds() >= settle_s)


def _hold_unterminated_line(w: _WaitFile, scratch: Path) -> _WaitFile:
    """`w` with its last line held back when the bytes to parse do not end on a line break:
    a scratch copy up to the last line break (the header alone if that is all) is parsed."""
    src = w.parse_path
    size = src.stat().st_size
    with open(src, "rb") as fh:
        if size == 0 or (fh.seek(size - 1), fh.read(1))[1] == b"\n":
            return w
        keep = _last_line_break(fh, size)
        if keep == 0:  # a single line without a break: the header itself may be cut
            return w
    scratch.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".csv")
    os.close(fd)
    shutil.copyfile(src, name)
    os.truncate(name, keep)  # the copy up to its last line break
    return replace(w, held_path=Path(name))


def _last_line_break(fh, size: int, block: int = 1 << 16) -> int:
    """Offset just after the file's last line break (0: none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        at = fh.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _read_wait_files(conn, source, listed, todo, cache_dir, classified, manifest_rows, report,
                     progress) -> tuple[set[str], set[str]]:
    """Parse the wait-time files batch by batch; each batch's facts and rejected rows commit
    together. Returns (entities touched, entities known before)."""
    mapping = _queue_times_mapping(conn, source, listed, todo, cache_dir, classified)
    known_before = {c for (c,) in conn.execute("SELECT entity_code FROM entity_index").fetchall()}
    touched: set[str] = set()
    done = 0
    batches = list(_batches(classified))
    tasks = [(i, [(w.f.key, w.parse_path, w.fmt) for w in b], mapping)
             for i, b in enumerate(batches)]
    parsed: dict[int, ParsedBatch] = {}
    next_batch = 0

    def on_parsed(task, result: ParsedBatch | None, exc: BaseException | None) -> None:
        # Batches commit in list order whatever order the workers finish in, so which file's
        # source_file a fact held by two files keeps never depends on timing.
        nonlocal next_batch, done
        if exc is not None:
            raise exc
        parsed[task[0]] = result
        while next_batch in parsed:
            done += _commit_batch(conn, batches[next_batch], parsed.pop(next_batch), report,
                                  manifest_rows, touched)
            next_batch += 1
            if progress:
                progress(done, len(classified))

    run_pool(parse_batch, tasks, parse_workers(len(batches)), on_parsed)
    return touched, known_before


def parse_workers(n_batches: int) -> int:
    """Processes parsing batches while the parent inserts: one per CPU as RAM allows (each
    parse peaks near PARSE_PEAK_BYTES), in-process for a single batch (a daily run) since a
    worker costs about a second to start."""
    if n_batches < 2:
        return 1
    cpus = psutil.cpu_count(logical=True) or 1
    available = max(0, psutil.virtual_memory().available - writer_memory_bytes())
    return worker_count(min(cpus, n_batches), available, PARSE_PEAK_BYTES)


@dataclass
class ParsedBatch:
    """One batch's parse as it travels from a worker: the facts as an Arrow table (its buffers
    pickle in bulk, where a frame's Python strings would pickle one by one), the small tables
    as frames."""

    facts: pa.Table
    rejected: pd.DataFrame
    files: pd.DataFrame
    also: pa.Table


def parse_batch(task: tuple[int, list[tuple[str, Path, RawFormat]], pd.DataFrame | None]
                ) -> ParsedBatch:
    """Worker entry point: parse one batch of files (no warehouse access)."""
    _, files, mapping = task
    result = parse_wait_files(files, qt_mapping=mapping)
    facts = pa.Table.from_pandas(result.facts[list(schema.FACT_COLUMNS)], preserve_index=False)
    also = pa.Table.from_pandas(result.also[list(schema.FACT_COLUMNS)], preserve_index=False)
    return ParsedBatch(facts, result.rejected, result.files, also)


def _commit_batch(conn, batch: Sequence[_WaitFile], result: ParsedBatch, report: IngestReport,
                  manifest_rows: list[dict], touched: set[str]) -> int:
    """Insert one parsed batch's facts and rejected rows in one transaction; count them in the
    report and queue its files' manifest rows. Returns the batch's file count."""
    stats = result.files.set_index("source_file")
    ok_files = [w for w in batch if pd.isna(stats.at[w.f.key, "error"])]
    rejected = _whole_file_lines(result.rejected, batch)
    replaced = [w.f.key for w in ok_files if w.reread and w.version.append is None]
    conn.execute("BEGIN TRANSACTION")
    try:
        retracted = retract_replaced(conn, replaced, result.facts, result.also)
        added = _insert_facts(conn, result.facts)
        record_holders(conn, result.facts, result.also)
        _replace_rejected(conn, ok_files, rejected)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    facts = result.facts
    report.rows_added += added
    report.rows_retracted += int(retracted["moved_to"].isna().sum())
    report.files_retracted += retracted["source_file"].nunique()
    touched.update(retracted["entity_code"])
    report.rows_read += int(stats["rows_read"].sum())
    report.rows_already_present += facts.num_rows - added
    report.rows_rejected += len(rejected)
    _count_into(report.rejected_by_reason, rejected["reason"])
    _count_into(report.rows_by_type, facts.column("wait_time_type").to_pandas())
    touched.update(pc.unique(facts.column("entity_code")).to_pylist())
    for w in batch:
        err = stats.at[w.f.key, "error"]
        if pd.isna(err):
            manifest_rows.append(_processed_row(w, stats))
            report.files_read += 1
            report.files_appended += w.version.append is not None
        else:
            manifest_rows.append(_manifest_row(w.f, w.fmt, "failed", str(err)))
            report.failed_files[w.f.key] = str(err)
    return len(batch)


def _processed_row(w: _WaitFile, stats: pd.DataFrame) -> dict:
    """The manifest row of a file read without error: counts and digest of the whole file."""
    rows_read = int(stats.at[w.f.key, "rows_read"])
    rows_rejected = int(stats.at[w.f.key, "rows_rejected"])
    if w.version.append:  # the old lines were counted when they were read
        rows_read += w.version.append.old_rows_read
        rows_rejected += w.version.append.old_rows_rejected
    row = _manifest_row(w.f, w.fmt, "held" if w.held_path else "processed",
                        "last line (no line break) held back until the file grows or settles"
                        if w.held_path else None)
    row.update(rows_read=rows_read, rows_rejected=rows_rejected)
    # The next run hashes the first `size` bytes of the file against this digest, so it must
    # describe exactly the listed size: a local file rewritten between listing and reading
    # keeps no digest (its next version is read in full).
    if w.version.size == w.f.size:
        row.update(content_sha256=w.version.content_sha256, content_lines=w.version.content_lines)
    return row


def _whole_file_lines(rejected: pd.DataFrame, batch: Sequence[_WaitFile]) -> pd.DataFrame:
    """Rejected rows with line numbers of the whole file (an append slice starts at line 1)."""
    offsets = {w.f.key: w.version.append.line_offset for w in batch if w.version.append}
    if not offsets or rejected.empty:
        return rejected
    shift = rejected["source_file"].map(offsets).fillna(0).astype(np.int64)
    return rejected.assign(line=rejected["line"] + shift)


def _queue_times_mapping(conn, source, listed, todo, cache_dir, classified) -> pd.DataFrame | None:
    """The queue-times entity mapping from every mapping file in the source (new or not)."""
    if not any(w.fmt == RawFormat.QUEUE_TIMES_SNAPSHOT for w in classified):
        return None
    known = {
        k for (k,) in conn.execute(
            "SELECT source_key FROM ingest_manifest WHERE format = ?",
            [RawFormat.QUEUE_TIMES_MAPPING.value],
        ).fetchall()
    }
    todo_keys = {f.key for f in todo}
    paths = []
    for f in listed:
        if f.key in known or (f.key.endswith(".csv") and f.key in todo_keys):
            path = source.fetch(f, cache_dir)
            with open(path, "rb") as fh:
                if detect_format(f.key, fh.read(4096)) == RawFormat.QUEUE_TIMES_MAPPING:
                    paths.append(path)
    return read_qt_mapping(paths) if paths else None


def _count_into(counter: dict[str, int], values: pd.Series) -> None:
    for k, v in Counter(values.tolist()).items():
        counter[k] = counter.get(k, 0) + int(v)


def _manifest_row(f: RawFile, fmt: RawFormat | None, status: str, error: str | None) -> dict:
    return {
        "source_key": f.key, "size": f.size, "etag": f.etag, "modified_at": f.modified_at,
        "format": fmt.value if fmt else None, "status": status, "error": error,
        "rows_read": None, "rows_rejected": None, "content_sha256": None, "content_lines": None,
    }


def _insert_facts(conn: duckdb.DuckDBPyConnection, facts: pa.Table) -> int:
    """Insert rows whose fact key is not in the table yet; returns the number inserted."""
    if facts.num_rows == 0:
        return 0
    before = conn.execute("SELECT count(*) FROM fct_wait_times").fetchall()[0][0]
    conn.register("new_facts", facts.select(list(schema.FACT_COLUMNS)))
    try:
        # Restricting the existing side to the batch's entities and dates lets DuckDB skip row
        # groups by their min/max, so the anti-join stays cheap as the table grows.
        conn.execute(
            """
            INSERT INTO fct_wait_times
            SELECT entity_code, park_code, CAST(park_date AS DATE), observed_at,
                   wait_time_type, CAST(wait_time_minutes AS INTEGER), source_file
            FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY entity_code, observed_at, wait_time_type, wait_time_minutes
                    ORDER BY source_file) AS rn
                FROM new_facts
            ) n
            WHERE rn = 1 AND NOT EXISTS (
                SELECT 1 FROM fct_wait_times f
                WHERE f.entity_code = n.entity_code
                  AND f.observed_at = n.observed_at
                  AND f.wait_time_type = n.wait_time_type
                  AND f.wait_time_minutes IS NOT DISTINCT FROM n.wait_time_minutes
                  AND f.park_date BETWEEN (SELECT min(park_date) FROM new_facts)
                                      AND (SELECT max(park_date) FROM new_facts)
            )
            """
        )
    finally:
        conn.unregister("new_facts")
    return conn.execute("SELECT count(*) FROM fct_wait_times").fetchall()[0][0] - before


def _replace_rejected(conn, ok_files: Sequence[_WaitFile], rejected: pd.DataFrame) -> None:
    """A file read in full replaces its earlier rejected rows, so retries never double them; an
    appended file keeps those of its old lines and replaces only those past them."""
    full = [w.f.key for w in ok_files if w.version.append is None]
    if full:
        conn.execute(
            "DELETE FROM fct_rejected_rows WHERE source_file IN (SELECT unnest(?))", [full]
        )
    appended = [w for w in ok_files if w.version.append is not None]
    if appended:
        # Rows past the old lines can only come from an earlier attempt at this same append
        # whose manifest row was never written (the run failed after this batch committed):
        # dropping them keeps the retry from doubling them.
        conn.execute(
            """
            DELETE FROM fct_rejected_rows r
            USING (SELECT unnest(?) AS source_file, unnest(?) AS old_lines) a
            WHERE r.source_file = a.source_file AND r.line > a.old_lines
            """,
            [[w.f.key for w in appended], [w.version.append.old_lines for w in appended]],
        )
    if rejected.empty:
        return
    conn.register("new_rejected", rejected[list(schema.REJECTED_COLUMNS)])
    try:
        conn.execute(
            "INSERT INTO fct_rejected_rows (source_file, line, reason, raw) "
            "SELECT source_file, line, reason, raw FROM new_rejected"
        )
    finally:
        conn.unregister("new_rejected")


# The listed version of a manifest row is the one it describes (pending_files' rule).
_SAME_VERSION = ("m.size IS NOT DISTINCT FROM excluded.size "
                 "AND coalesce(m.etag, '') = coalesce(excluded.etag, '') "
                 "AND m.modified_at IS NOT DISTINCT FROM excluded.modified_at")
_ATTEMPTS = f"CASE WHEN {_SAME_VERSION} THEN coalesce(m.attempts, 0) + 1 ELSE 1 END"


def _write_manifest(conn, rows: list[dict], max_attempts: int) -> None:
    """Upsert the run's manifest rows. attempts counts the reads of the listed version (a new
    version starts again at 1); a failed read that reaches max_attempts quarantines the file."""
    if not rows:
        return
    # Nullable integers: a column mixing None and counts must not become float64.
    df = pd.DataFrame(rows).astype(
        {"rows_read": "Int64", "rows_rejected": "Int64", "content_lines": "Int64"})
    conn.register("manifest_rows", df)
    try:
        conn.execute(
            f"""
            INSERT INTO ingest_manifest AS m (source_key, size, etag, modified_at, format, status,
                                              error, attempts, rows_read, rows_added,
                                              rows_rejected, ingested_at, content_sha256,
                                              content_lines, quarantined_at)
            SELECT source_key, size, etag, modified_at, format,
                   CASE WHEN status = 'failed' AND $1 <= 1 THEN 'quarantined' ELSE status END,
                   error, 1, rows_read, NULL, rows_rejected, now(), content_sha256,
                   content_lines,
                   CASE WHEN status = 'failed' AND $1 <= 1 THEN now() END
            FROM manifest_rows
            ON CONFLICT (source_key) DO UPDATE SET
                size = excluded.size, etag = excluded.etag, modified_at = excluded.modified_at,
                format = excluded.format,
                status = CASE WHEN excluded.status = 'failed' AND {_ATTEMPTS} >= $1
                              THEN 'quarantined' ELSE excluded.status END,
                quarantined_at = CASE WHEN excluded.status = 'failed' AND {_ATTEMPTS} >= $1
                                      THEN now() END,
                error = excluded.error, attempts = {_ATTEMPTS},
                rows_read = excluded.rows_read,
                rows_rejected = excluded.rows_rejected, ingested_at = excluded.ingested_at,
                content_sha256 = excluded.content_sha256, content_lines = excluded.content_lines
            """,
            [max_attempts],
        )
    finally:
        conn.unregister("manifest_rows")


def _quarantined_now(conn, keys: list[str]) -> list[str]:
    """Which of these files the manifest now holds as quarantined."""
    if not keys:
        return []
    rows = conn.execute(
        "SELECT source_key FROM ingest_manifest WHERE status = 'quarantined' "
        "AND source_key IN (SELECT unnest(?)) ORDER BY 1", [keys]).fetchall()
    return [k for (k,) in rows]


def refresh_entity_index(conn: duckdb.DuckDBPyConnection, entity_codes: Sequence[str]) -> None:
    """Recompute the index rows of these entities from the fact table (exact counts, any dates).

    Keeps last_modeled_at and target_count_at_last_model, which training maintains. An entity
    with no fact left (a corrected export retracted all of them) loses its row.
    """
    conn.execute(
        "DELETE FROM entity_index WHERE entity_code IN (SELECT unnest($codes)) "
        "AND entity_code NOT IN (SELECT DISTINCT entity_code FROM fct_wait_times "
        "WHERE entity_code IN (SELECT unnest($codes)))", {"codes": list(entity_codes)})
    conn.execute(
        """
        INSERT OR REPLACE INTO entity_index
        SELECT f.entity_code, any_value(f.park_code),
               min(f.observed_at), max(f.observed_at), min(f.park_date), max(f.park_date),
               count(*),
               count(*) FILTER (WHERE wait_time_type = 'POSTED'),
               count(*) FILTER (WHERE wait_time_type = 'ACTUAL'),
               count(*) FILTER (WHERE wait_time_type = 'PRIORITY'),
               count(*) FILTER (WHERE wait_time_type = 'CLOSED'),
               any_value(e.last_modeled_at), any_value(e.target_count_at_last_model), now()
        FROM fct_wait_times f
        LEFT JOIN entity_index e USING (entity_code)
        WHERE f.entity_code IN (SELECT unnest(?))
        GROUP BY f.entity_code
        """,
        [list(entity_codes)],
    )

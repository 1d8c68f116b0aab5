"""Connections to the DuckDB warehouse.

DuckDB lets one process hold the file while it writes, and then no other process can open it at
all, not even read-only. So: writers take a cross-process file lock first (one writer at a time,
whatever launched them: the daemon, the CLI or a test), keep their connection short, and readers
retry briefly instead of failing.

Every writer connection first creates and migrates the warehouse tables (schema.ensure_tables):
once the file exists, a reader finds every table the pipeline keeps.

Every connection the pipeline opens (writer, reader, in-memory) is configured with explicit
limits (`limits`): a memory limit (writers, heavy readers and in-memory work: a quarter of the
machine's RAM, leaving the rest to the training workers; readers: a quarter of that), the
threads, a temp directory under the home (BAMBAM_HOME/duckdb_tmp, shared: DuckDB 2 prefixes its
spill files with the process id and database number) and a cap on what each database may spill
there (4 GB). BAMBAM_DUCKDB_MEMORY_LIMIT, BAMBAM_DUCKDB_TEMP_LIMIT and BAMBAM_DUCKDB_THREADS
override them. A statement run inside `step(conn, name)` that exceeds them raises
`WarehouseLimitError` naming the step and the limits, instead of filling the memory or the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil
from filelock import FileLock

from bambam_assets.lib.core import schema, settings
from bambam_assets.lib.core.paths import HomePaths

TEMP_DIR = "duckdb_tmp"
MEMORY_SHARE = 0.25  # of total RAM, for a writer (the training workers get what is left)
READER_SHARE = 0.25  # of the writer's limit, for a read-only connection
MIN_READER_BYTES = 256 * 1024**2  # (never above the writer's limit)
DEFAULT_TEMP_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class Limits:
    """What one DuckDB database may use: memory, threads, spill folder and spill size."""

    memory_bytes: int
    threads: int
    temp_directory: Path
    temp_bytes: int

    def config(self) -> dict[str, str]:
        """The `duckdb.connect(config=...)` settings."""
        return {"memory_limit": f"{self.memory_bytes}B", "threads": str(self.threads),
                "temp_directory": str(self.temp_directory),
                "max_temp_directory_size": f"{self.temp_bytes}B"}


def writer_memory_bytes() -> int:
    """A writer's memory limit: BAMBAM_DUCKDB_MEMORY_LIMIT, else MEMORY_SHARE of total RAM."""
    return settings.duckdb_memory_limit() or int(MEMORY_SHARE * psutil.virtual_memory().total)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return psutil.cpu_count(logical=True) or 1


def limits(home: Path | None = None, read_only: bool = False, heavy: bool = False) -> Limits:
    """The limits of a connection under `home` (None: BAMBAM_HOME), read from the environment
    now. Readers get READER_SHARE of the writer's memory (at least MIN_READER_BYTES) unless
    `heavy` (a read as large as a write gets the writer's memory limit)."""
    memory = writer_memory_bytes()
    if read_only and not heavy:
        memory = min(memory, max(MIN_READER_BYTES, int(READER_SHARE * memory)))
    return Limits(
        memory_bytes=memory,
        threads=settings.duckdb_threads() or _cpus(),
        temp_directory=Path(home if home is not None else settings.home()) / TEMP_DIR,
        temp_bytes=settings.duckdb_temp_limit() or DEFAULT_TEMP_BYTES,
    )


def connect(path: Path | str, read_only: bool = False, home: Path | None = None,
            heavy: bool = False) -> duckdb.DuckDBPyConnection:
    """duckdb.connect with the limits of `home` (default: the database's folder; for
    ":memory:", BAMBAM_HOME). In-memory databases get a writer's limits unless `read_only`.

    DuckDB shares one database per file within a process and refuses a second connection with
    other settings while the first is open: never hold a heavy and a plain reader at once.
    """
    in_memory = str(path) == ":memory:"
    if home is None and not in_memory:
        home = Path(path).parent
    lim = limits(home, read_only, heavy)
    lim.temp_directory.mkdir(parents=True, exist_ok=True)
    if in_memory:
        return duckdb.connect(":memory:", config=lim.config())
    return duckdb.connect(str(path), read_only=read_only, config=lim.config())


def memory_connection(home: Path | None = None, small: bool = False, threads: int | None = None,
                      share: int = 1) -> duckdb.DuckDBPyConnection:
    """A configured in-memory DuckDB (spills under `home`); `small`: a reader's memory limit.
    `threads` and `share` are for connections used side by side in one step: `share` of them
    split the memory limit, so together they stay within one connection's bound."""
    conn = connect(":memory:", read_only=small, home=home)
    if threads is not None:
        conn.execute(f"SET threads = {max(1, int(threads))}")
    if share > 1:
        conn.execute(f"SET memory_limit = '{limits(home, small).memory_bytes // share}B'")
    return conn


def cpu_count() -> int:
    """The CPUs this process may run on (what DuckDB's threads and the pools are sized by)."""
    return _cpus()


class WarehouseLimitError(RuntimeError):
    """A step needed more than DuckDB's memory limit and temp-directory limit allow."""


def _setting_text(conn: duckdb.DuckDBPyConnection) -> tuple[str, str, str]:
    return conn.execute(
        "SELECT current_setting('memory_limit'), current_setting('max_temp_directory_size'), "
        "current_setting('temp_directory')").fetchall()[0]


def _is_limit_error(exc: duckdb.Error) -> bool:
    text = str(exc)
    return (isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in text
            or "max_temp_directory_size" in text or "No space left on device" in text)


@contextmanager
def step(conn: duckdb.DuckDBPyConnection, name: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block (its execute and fetch calls) as pipeline step `name`.

    DuckDB running out of its memory limit, of its temp-directory limit or of disk raises
    WarehouseLimitError naming the step, both limits and the settings that raise them.
    """
    memory, temp, folder = _setting_text(conn)  # read before: a failed statement aborts
    try:
        yield conn
    except duckdb.Error as exc:
        if not _is_limit_error(exc):
            raise
        text = str(exc)
        if "max_temp_directory_size" in text:
            hit = f"DuckDB's temp limit {temp} (memory limit {memory})"
        elif "No space left on device" in text:
            hit = f"the free disk space for DuckDB's temp directory (temp limit {temp})"
        else:
            hit = f"DuckDB's memory limit {memory} (temp limit {temp})"
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise WarehouseLimitError(
            f"step {name} exceeded {hit}, spilling to {folder}: raise "
            f"{settings.DUCKDB_MEMORY_LIMIT} (now {memory}) or {settings.DUCKDB_TEMP_LIMIT} "
            f"(now {temp}), or free disk space. DuckDB said: {first_line}"
        ) from exc


def warehouse_path(home: Path) -> Path:
    return HomePaths(home).warehouse


def _connect_with_retry(path: Path, read_only: bool, timeout_s: float, heavy: bool = False
                        ) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return connect(path, read_only=read_only, heavy=heavy)
        except duckdb.IOException as exc:  # another process holds the file lock
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def writer(home: Path, timeout_s: float = 600.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection, held by one process at a time (file lock beside the database).

    Its tables are created and migrated before it is handed out (schema.ensure_tables).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(HomePaths(home).warehouse_lock), timeout=timeout_s):
        conn = _connect_with_retry(warehouse_path(home), read_only=False, timeout_s=timeout_s)
        try:
            schema.ensure_tables(conn)
            yield conn
        finally:
            conn.close()


@contextmanager
def reader(home: Path, timeout_s: float = 60.0, heavy: bool = False
           ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection that waits (with backoff) while a writer holds the file.

    A reader's memory limit is a quarter of a writer's; `heavy` gives it a writer's, for a read
    as large as a write (entity_model's training read of a whole batch, done before its worker
    pool starts: at 1,694 entities x 1 year it spilled 3.4 GB in 87 s under a reader's 1.5 GiB,
    1.2 GB in 54-58 s under a writer's 5.9 GiB).
    """
    path = warehouse_path(home)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run the pipeline first")
    conn = _connect_with_retry(path, read_only=True, timeout_s=timeout_s, heavy=heavy)
    try:
        yield conn
    finally:
        conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether table `name` exists. Those of schema.DDL always do once the warehouse file does:
    this is for the tables an asset creates when it first runs (park_wti...) and for telling a
    dropped dimension table (lib.dimensions.inputs.is_current)."""
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchall()[0][0]
    )


@contextmanager
def staged(conn: duckdb.DuckDBPyConnection, **frames) -> Iterator[duckdb.DuckDBPyConnection]:
    """Register DataFrames as views by name and run the block as one transaction.

    Commits when the block ends, rolls back on any error, unregisters the views in all cases:
    the one shape of every "replace these rows from a DataFrame" write in the warehouse.
    """
    for name, frame in frames.items():
        conn.register(name, frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        for name in frames:
            conn.unregister(name)

"""Connections to the DuckDB warehouse.

DuckDB lets one process hold the file while it writes, and then no other process can open it at
all, not even read-only. So: writers take a cross-process file lock first (one writer at a time,
whatever launched them: the daemon, the CLI or a test), keep their connection short, and readers
retry briefly instead of failing.

Every writer connection first creates and migrates the warehouse tables (schema.ensure_tables):
once the file exists, a reader finds every table the pipeline keeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from filelock import FileLock

from bambam_assets.lib.core import schema
from bambam_assets.lib.core.paths import HomePaths


def warehouse_path(home: Path) -> Path:
    return HomePaths(home).warehouse


def _connect_with_retry(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
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
def reader(home: Path, timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection that waits (with backoff) while a writer holds the file."""
    path = warehouse_path(home)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run the pipeline first")
    conn = _connect_with_retry(path, read_only=True, timeout_s=timeout_s)
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

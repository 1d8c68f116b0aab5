"""What each dimension is built from, fingerprinted, so an unchanged dimension is not rebuilt.

A dimension asset computes a cheap fingerprint of its inputs (export file identities, the run's
date, the fingerprints of the dimensions it reads) before doing any work. When the fingerprint
equals the one logged at its last build and its tables still exist, the tables already hold what
a rebuild would write, so the asset reports the existing tables instead of rebuilding them.

The log is table `dim_build_log` (DDL and grain in lib.core.schema). Pure DuckDB + stdlib: no
Dagster here, so the logic is testable on a bare connection.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime

import duckdb

from bambam_assets.lib.core.schema import ensure_tables
from bambam_assets.lib.core.warehouse import table_exists
from bambam_assets.lib.ingest.exports import export_files
from bambam_assets.lib.ingest.formats import RawFormat

# Part of every fingerprint. The inputs alone cannot tell that the code turning them into a
# dimension changed, so bump this whenever any dimension's build code (or a library it calls,
# e.g. lib/dimensions/calendar.py, lib/dimensions/park_hours.py) changes what it writes: every
# dimension then rebuilds once on the next run.
DIMENSION_CODE_VERSION = "1"

def export_identities(conn: duckdb.DuckDBPyConnection, fmt: RawFormat) -> list[str]:
    """Identities (key|size|etag-or-mtime) of the processed export files of one format.

    Read from the ingest manifest, not the raw source: a dimension reads exactly the files the
    manifest lists as processed, and the manifest needs no listing of the (maybe remote) source.
    """
    return [f.identity for f in export_files(conn, fmt)]


def entity_codes(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every entity code of `entity_index`, sorted (the fact-side input of dim_entity)."""
    return [c for (c,) in conn.execute(
        "SELECT entity_code FROM entity_index ORDER BY entity_code").fetchall()]


def codes_digest(codes: Iterable[str]) -> str:
    """sha256 of a set of codes, order-free: keeps fingerprints short with thousands of codes."""
    return hashlib.sha256("\n".join(sorted(codes)).encode()).hexdigest()


def _json_default(value: object) -> str:
    # Dates are the only non-JSON input today; anything else must be made explicit by the caller
    # rather than silently str()-ed into a form that might not be stable across versions.
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot fingerprint a {type(value).__name__}: {value!r}")


def fingerprint(*parts: object) -> str:
    """sha256 (hex) of the parts and DIMENSION_CODE_VERSION, as canonical JSON.

    Parts are JSON values (lists, dicts, strings, numbers, None) or dates; dict keys are sorted
    and the separators fixed, so equal inputs always give the same fingerprint.
    """
    payload = json.dumps(
        {"code_version": DIMENSION_CODE_VERSION, "parts": list(parts)},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def stored_fingerprint(conn: duckdb.DuckDBPyConnection, dimension: str) -> str | None:
    """The fingerprint logged at the last build of `dimension`; None when it was never logged."""
    ensure_tables(conn)
    rows = conn.execute(
        "SELECT fingerprint FROM dim_build_log WHERE dimension = ?", [dimension]
    ).fetchall()
    return rows[0][0] if rows else None


def upstream_fingerprint(conn: duckdb.DuckDBPyConnection, dimension: str) -> str:
    """The logged fingerprint of a dimension this one reads, as a part of its own fingerprint.

    When the upstream was never logged (built before the log existed, or never), what it holds is
    unknown: a one-off token is returned instead, so the reader's fingerprint matches nothing and
    it always rebuilds, and its data version never claims to equal an earlier one.
    """
    return stored_fingerprint(conn, dimension) or f"unlogged:{uuid.uuid4().hex}"


def is_current(
    conn: duckdb.DuckDBPyConnection, dimension: str, fp: str, tables: list[str]
) -> str | None:
    """The ISO-8601 (UTC) time of the last build when it can be reused, else None.

    Reusable means: the logged fingerprint equals `fp` and every table in `tables` exists (a
    dropped table must be rebuilt; schema.ensure_tables never recreates a dimension table once
    the log exists, so this check sees it missing). When it is not reusable the log row is
    deleted: the caller rebuilds next, and a rebuild that dies half-way must not leave a row that
    a later run with the OLD inputs would take for its tables.
    """
    ensure_tables(conn)
    rows = conn.execute(
        "SELECT fingerprint, built_at FROM dim_build_log WHERE dimension = ?", [dimension]
    ).fetchall()
    if rows and rows[0][0] == fp and all(table_exists(conn, t) for t in tables):
        return rows[0][1].astimezone(UTC).isoformat()
    conn.execute("DELETE FROM dim_build_log WHERE dimension = ?", [dimension])
    return None


def record_build(conn: duckdb.DuckDBPyConnection, dimension: str, fp: str) -> None:
    """Log that `dimension` was just built from inputs with fingerprint `fp` (upsert)."""
    ensure_tables(conn)
    conn.execute(
        """
        INSERT INTO dim_build_log (dimension, fingerprint, built_at) VALUES (?, ?, ?)
        ON CONFLICT (dimension) DO UPDATE
            SET fingerprint = excluded.fingerprint, built_at = excluded.built_at
        """,
        [dimension, fp, datetime.now(UTC)],
    )


def row_count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    """count(*) of a warehouse table; `table` must be a constant name, never user data."""
    return conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]

"""Quarantined raw files: list them, release them.

Ingest quarantines a file after BAMBAM_INGEST_MAX_ATTEMPTS failed reads of one version
(lib.ingest.ingest). A quarantined file is skipped until it changes (size, etag or mtime: the
next run reads it) or is released here: releasing marks it failed with no attempts, so the next
ingest run reads it again with a fresh count of attempts.

Grain of `quarantined_files`: one row per quarantined raw file.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from bambam_assets.lib.core import schema

COLUMNS = ("source_key", "format", "attempts", "error", "quarantined_at", "size", "modified_at")


def quarantined_files(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The quarantined files, newest quarantine first, with their last error (read-only
    connections are fine)."""
    try:
        return conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM ingest_manifest WHERE status = 'quarantined' "
            "ORDER BY quarantined_at DESC NULLS LAST, source_key"
        ).df()
    except duckdb.BinderException:  # not migrated yet: no writer of this release, none quarantined
        return pd.DataFrame({c: [] for c in COLUMNS})


def release(conn: duckdb.DuckDBPyConnection, keys: Sequence[str] | None) -> list[str]:
    """Release these quarantined files (None: all of them) for the next ingest run; returns the
    keys released (a key that is not quarantined is left alone and not returned)."""
    schema.ensure_tables(conn, ("ingest_manifest",))
    rows = conn.execute(
        """
        UPDATE ingest_manifest SET status = 'failed', attempts = 0, quarantined_at = NULL,
                                   released_at = now()
        WHERE status = 'quarantined' AND ($1 IS NULL OR source_key IN (SELECT unnest($1)))
        RETURNING source_key
        """,
        [None if keys is None else list(keys)],
    ).fetchall()
    return sorted(k for (k,) in rows)

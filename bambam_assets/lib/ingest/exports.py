"""Dimension exports in the raw source, found through the ingest manifest."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from bambam_assets.lib.ingest.formats import RawFormat
from bambam_assets.lib.ingest.raw_source import RawFile, RawSource


def export_files(conn: duckdb.DuckDBPyConnection, fmt: RawFormat) -> list[RawFile]:
    """The processed raw files of one format, as catalogued by the last ingest (sorted by key)."""
    rows = conn.execute(
        "SELECT source_key, size, etag, modified_at FROM ingest_manifest "
        "WHERE format = ? AND status = 'processed' ORDER BY source_key",
        [fmt.value],
    ).fetchall()
    return [RawFile(key=k, size=s, modified_at=m, etag=e) for k, s, e, m in rows]


def read_exports(
    conn: duckdb.DuckDBPyConnection, source: RawSource, fmt: RawFormat, cache_dir: Path
) -> tuple[pd.DataFrame, list[str]]:
    """Outer union (by column name) of every export of a format, all values as strings.

    Returns the frame (with a `source_file` column) and the keys read; an empty frame when the
    raw source has no export of that format.
    """
    files = export_files(conn, fmt)
    frames = []
    for f in files:
        frame = pd.read_csv(source.fetch(f, cache_dir), dtype=str, keep_default_na=False)
        frame.columns = [c.strip() for c in frame.columns]
        frames.append(frame.assign(source_file=f.key))
    if not frames:
        return pd.DataFrame(), []
    return pd.concat(frames, ignore_index=True).fillna(""), [f.key for f in files]

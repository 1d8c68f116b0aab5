"""Append-aware reading of growing raw files: tell a grown file's new lines from its old ones.

A daily export appends the new day's lines to the month's standby/fastpass file and to every
attraction's public file, which holds the attraction's whole history. Re-parsing such a file in
full to add one day costs ~100x the new rows. So the manifest keeps, for every processed
wait-time file, the sha256 and the line count of the version read (content_sha256,
content_lines), and a new version of the file is an APPEND when all of these hold:

- the previous version was processed (not failed) in the same format, with a stored hash;
- the new version is larger, the old one ended on a line break (so no line was cut in two);
- the first old-size bytes of the new version hash to the stored digest.

Only the header line and the appended bytes are then parsed, from a scratch file holding exactly
those; a rejected row's line number in that file plus `AppendSlice.line_offset` is its line in
the whole file. Anything else (first sight, shrunk, a rewritten prefix, no stored hash, a format
change, a failed previous read) is a full re-read. Queue-times snapshots are whole JSON
documents, never appended to: they are hashed (for the record) but always read in full.

Grain: one `FileVersion` per fetched version of a wait-time file; one `Previous` per source key
of the manifest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

from bambam_assets.lib.ingest.formats import RawFormat

# Formats that are line-oriented CSV with a header (or a skipped first line): appendable.
APPENDABLE_FORMATS: frozenset[RawFormat] = frozenset({
    RawFormat.STANDBY, RawFormat.FASTPASS_NEW, RawFormat.FASTPASS_OLD,
    RawFormat.PUBLIC_ATTRACTION,
})
_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Previous:
    """What the manifest holds about the last version of one file (one per source key)."""

    size: int | None
    format: str | None
    status: str
    content_sha256: str | None
    content_lines: int | None
    rows_read: int | None
    rows_rejected: int | None
    ingested_at: datetime | None = None


@dataclass(frozen=True)
class AppendSlice:
    """The part of a grown file to parse: its header line + the lines after the old version."""

    parse_path: Path  # scratch file: the header line, then the appended bytes
    line_offset: int  # scratch line n is line n + line_offset of the whole file
    old_lines: int  # lines of the previous version (its rejected rows stay as they are)
    old_rows_read: int
    old_rows_rejected: int
    appended_bytes: int


@dataclass(frozen=True)
class FileVersion:
    """One fetched version of a wait-time file: its digest, line count, and append slice if any."""

    size: int  # bytes hashed
    content_sha256: str
    content_lines: int
    append: AppendSlice | None = None


def previous_versions(conn: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> dict[str, Previous]:
    """The manifest rows of these source keys (keys never seen are absent)."""
    if not keys:
        return {}
    rows = conn.execute(
        """
        SELECT source_key, size, format, status, content_sha256, content_lines,
               rows_read, rows_rejected, ingested_at
        FROM ingest_manifest WHERE source_key IN (SELECT unnest(?))
        """,
        [list(keys)],
    ).fetchall()
    return {r[0]: Previous(*r[1:]) for r in rows}


def _appendable(fmt: RawFormat, prev: Previous | None) -> bool:
    return (
        prev is not None
        and fmt in APPENDABLE_FORMATS
        and prev.status == "processed"
        and prev.format == fmt.value
        and prev.content_sha256 is not None
        and prev.content_lines is not None
        and prev.rows_read is not None
        and prev.rows_rejected is not None
        and (prev.size or 0) > 0
    )


def _feed(fh: BinaryIO, digest, limit: int | None, out: BinaryIO | None = None
          ) -> tuple[int, int, bytes]:
    """Hash (and copy to `out`) up to `limit` bytes (None: to the end); returns
    (bytes read, line breaks among them, last byte)."""
    n = newlines = 0
    last = b""
    while limit is None or n < limit:
        chunk = fh.read(_CHUNK if limit is None else min(_CHUNK, limit - n))
        if not chunk:
            break
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
        n += len(chunk)
        newlines += chunk.count(b"\n")
        last = chunk[-1:]
    return n, newlines, last


def _header_line(path: Path, within: int) -> bytes | None:
    """The first non-blank line of the file with its line break, if it ends within `within`
    bytes (the header of a CSV format; the skipped first line of the old fastpass format)."""
    with open(path, "rb") as fh:
        first = True
        while fh.tell() < within:  # a loop over the leading blank lines only
            line = fh.readline()
            if not line or fh.tell() > within:
                return None
            # Blank as parsing_text sees it: whitespace only once decoded (BOM dropped).
            text = (line[len(_BOM):] if first and line.startswith(_BOM) else line).decode(
                "utf-8", errors="replace")
            first = False
            if text.strip():
                return line if line.endswith(b"\n") else None
    return None


def _lines(size: int, newlines: int, last: bytes) -> int:
    """Lines of a file: its line breaks, plus one for a last line without a break."""
    return newlines + (1 if size and last != b"\n" else 0)


def inspect_version(path: Path, fmt: RawFormat, prev: Previous | None, scratch_dir: Path
                    ) -> FileVersion:
    """Hash the fetched file (one read) and, when it only appended lines to the version the
    manifest describes, write its append slice into `scratch_dir` (the caller removes it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if _appendable(fmt, prev) and size > prev.size:
            n, old_newlines, last = _feed(fh, digest, prev.size)
            if (n == prev.size and last == b"\n"
                    and digest.hexdigest() == prev.content_sha256):
                header = _header_line(path, prev.size)
                if header is not None:
                    scratch_dir.mkdir(parents=True, exist_ok=True)
                    fd, name = tempfile.mkstemp(dir=scratch_dir, suffix=".csv")
                    slice_path = Path(name)
                    with os.fdopen(fd, "wb") as out:
                        out.write(header)
                        added, newlines, last = _feed(fh, digest, None, out)
                    return FileVersion(
                        n + added, digest.hexdigest(),
                        _lines(n + added, old_newlines + newlines, last),
                        AppendSlice(
                            parse_path=slice_path,
                            # scratch line 1 is the header; its line 2 is the whole file's
                            # line old_lines + 1
                            line_offset=old_newlines - 1,
                            old_lines=old_newlines,
                            old_rows_read=int(prev.rows_read),
                            old_rows_rejected=int(prev.rows_rejected),
                            appended_bytes=added,
                        ),
                    )
            # Not an append: the bytes hashed so far stay in the digest of the whole file.
            rest, newlines, tail = _feed(fh, digest, None)
            return FileVersion(n + rest, digest.hexdigest(),
                               _lines(n + rest, old_newlines + newlines, tail or last))
        n, newlines, last = _feed(fh, digest, None)
        return FileVersion(n, digest.hexdigest(), _lines(n, newlines, last))

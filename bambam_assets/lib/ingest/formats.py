"""Recognise a raw file's format from its key and its first bytes (docs/raw_formats.md).

CSV files are recognised by their header (case-insensitive, BOM, quotes and whitespace
tolerated, extra columns allowed; NUL or invalid bytes after the header line do not matter
here), JSON files by their shape. The path decides only where a
format has no usable header: the old fastpass files. Anything not recognised is UNKNOWN; the
caller records it and never guesses (under a wait-time export's path it is a failed read:
is_wait_time_export_key).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum


class RawFormat(StrEnum):
    STANDBY = "standby"
    FASTPASS_NEW = "fastpass_new"
    FASTPASS_OLD = "fastpass_old"
    PUBLIC_ATTRACTION = "public_attraction"
    QUEUE_TIMES_SNAPSHOT = "queue_times_snapshot"
    QUEUE_TIMES_MAPPING = "queue_times_mapping"
    ENTITIES = "entities"
    PARK_HOURS = "park_hours"
    EVENT_DAYS = "event_days"
    EVENTS = "events"
    METATABLE = "metatable"
    UNKNOWN = "unknown"


# The formats whose rows become fact rows
# (bambam_assets.lib.ingest.parsing.wait_files.parse_wait_files).
WAIT_TIME_FORMATS: frozenset[RawFormat] = frozenset({
    RawFormat.STANDBY, RawFormat.FASTPASS_NEW, RawFormat.FASTPASS_OLD,
    RawFormat.PUBLIC_ATTRACTION, RawFormat.QUEUE_TIMES_SNAPSHOT,
})

# Header columns that identify each CSV format (a subset test; order matters only in that the
# more specific sets are tried first).
REQUIRED_COLUMNS: dict[RawFormat, frozenset[str]] = {
    RawFormat.STANDBY: frozenset(
        {"entity_code", "observed_at", "submitted_posted_time", "submitted_actual_time"}),
    RawFormat.FASTPASS_NEW: frozenset({"fattid", "fday", "fmonth", "fyear", "fhour", "fwinhr"}),
    RawFormat.PUBLIC_ATTRACTION: frozenset({"date", "datetime", "spostmin", "sactmin"}),
    RawFormat.QUEUE_TIMES_MAPPING: frozenset(
        {"entity_code", "park_code", "queue_times_id", "queue_times_name"}),
    RawFormat.ENTITIES: frozenset({"code", "name", "short_name", "land", "fastpass_booth"}),
    RawFormat.PARK_HOURS: frozenset({"date", "park", "opening_time", "closing_time"}),
    RawFormat.EVENT_DAYS: frozenset({"date", "park_abbreviation", "event_abbreviation"}),
    RawFormat.EVENTS: frozenset(
        {"property_abbrev", "event_abbreviation", "event_code", "event_name"}),
}

# Markers of the old (headerless, positional) fastpass export, matched on the lower-cased key
# like the legacy classifier: a fastpass key holding one of them is old format, any other new.
OLD_FASTPASS_MARKERS: tuple[str, ...] = (
    *(f"_{y}" for y in range(2012, 2019)), "_2019_01", "_2019_02", "_201901", "_201902",
)

# A metatable column: park letters then OPEN/CLOSE/EMHMORN/EMHEVE (e.g. MKOPEN, TDSCLOSE).
_METATABLE_COLUMN = re.compile(r"^[a-z]+(open|close|emhmorn|emheve)$")
# Queue-times shape when the 4 KB head cuts the JSON short: a top-level-looking lands/rides list.
_QT_SHAPE = re.compile(r'"(lands|rides)"\s*:\s*\[')


def is_old_fastpass_key(key: str) -> bool:
    """True when the key names an old-format fastpass export (legacy path rule)."""
    low = key.lower()
    return "fastpass_times" in low and any(m in low for m in OLD_FASTPASS_MARKERS)


# Where the legacy layout keeps its wait-time exports (spec §1: export/wait_times/{prop}/*.csv,
# export/fastpass_times/{prop}/*.csv): a file there that is not one is a failed read, not an
# unknown file to ignore.
_WAIT_TIME_EXPORT_KEY = re.compile(r"(^|/)export/(wait_times|fastpass_times)/[^/]+/[^/]+\.csv$")


def is_wait_time_export_key(key: str) -> bool:
    """True when the key's path names a wait-time export of the legacy layout."""
    return bool(_WAIT_TIME_EXPORT_KEY.search(key.lower()))


def header_columns(line: str) -> list[str]:
    """Lower-cased, trimmed column names of a CSV header line (BOM and quotes removed)."""
    return [c.strip().strip('"').strip().lower() for c in line.lstrip("\ufeff").split(",")]


def _head_text(head: bytes) -> str | None:
    """The head as text, or None when its first non-blank line (the header, or a JSON
    document's start) holds a NUL byte: binary content. Bad bytes after that line are a
    matter for the lines that hold them (parsing.text rejects them one by one)."""
    first = next((line for line in head.split(b"\n") if line.strip()), b"")
    if b"\x00" in first:
        return None
    text = head.decode("utf-8-sig", errors="replace").replace("\x00", "\ufffd")
    return text.lstrip("\ufeff").strip()


def _detect_json(text: str) -> RawFormat:
    try:
        obj = json.loads(text)
    except ValueError:
        # The head may cut a large snapshot short: fall back to the opening shape.
        cut_short_snapshot = _QT_SHAPE.search(text[:4096])
        return RawFormat.QUEUE_TIMES_SNAPSHOT if cut_short_snapshot else RawFormat.UNKNOWN
    if isinstance(obj, dict) and any(isinstance(obj.get(k), list) for k in ("lands", "rides")):
        return RawFormat.QUEUE_TIMES_SNAPSHOT
    return RawFormat.UNKNOWN


def detect_format(key: str, head: bytes) -> RawFormat:
    """Format of the raw file `key` (posix path under the raw root) whose first bytes are `head`."""
    if is_old_fastpass_key(key):  # no usable header: the path decides (legacy rule)
        return RawFormat.FASTPASS_OLD
    text = _head_text(head)
    if not text:
        return RawFormat.UNKNOWN
    if text.startswith("{"):
        return _detect_json(text)
    cols = header_columns(text.splitlines()[0])
    colset = set(cols)
    for fmt, required in REQUIRED_COLUMNS.items():
        if required <= colset:
            return fmt
    if cols[0] == "date" and any(_METATABLE_COLUMN.match(c) for c in cols[1:]):
        return RawFormat.METATABLE
    return RawFormat.UNKNOWN

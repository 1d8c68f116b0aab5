"""Parser of queue-times.com snapshots (`/parks/{id}/queue_times.json`; docs/raw_formats.md,
section 3).

Quirks of the legacy loader fixed: a closed ride is a CLOSED row (never dropped, never a 0
wait); an unmapped ride is rejected as `unmapped_ride` (never given an invented `{PREFIX}{id}`
code); the ride id alone maps to the entity (queue-times ride ids are global, no float/park-case
key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa

from bambam_assets.lib.core.schema import CLOSED, POSTED
from bambam_assets.lib.ingest.parsing.common import (
    BAD_ROW,
    BAD_TIME,
    MISSING,
    OUT_OF_RANGE,
    UNMAPPED,
    Parsed,
    entity_parks,
    first_reason,
    round_in_range,
)
from bambam_assets.lib.ingest.parsing.text import UnreadableFile

RIDE_FIELDS = ("id", "name", "is_open", "wait_time", "last_updated")
WAIT_RANGE = (0.0, 1000.0)
# `queue_times/{PARK}/{date}/{PARK}_{YYYYmmddTHHMMSSZ}.json`: the fetch instant, when named.
_FETCH_STAMP = re.compile(r"(\d{8}T\d{6}Z)")
_CLOSED_TOKENS = ("false", "0")


def fetch_time_of(key: str) -> np.datetime64:
    """Fetch instant (UTC) encoded in a snapshot's file name, NaT when it carries none."""
    m = _FETCH_STAMP.search(PurePosixPath(key).name)
    if not m:
        return np.datetime64("NaT", "ns")
    stamp = pd.to_datetime(m.group(1), format="%Y%m%dT%H%M%SZ", errors="coerce")
    return np.datetime64("NaT", "ns") if pd.isna(stamp) else np.datetime64(stamp, "ns")


def _rides_of(path: Path) -> list:
    """The ride list of one snapshot: lands[].rides[] in order, then top-level rides[]."""
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableFile("empty file")
    if b"\x00" in data:
        raise UnreadableFile("binary content (NUL bytes)")
    try:
        obj = json.loads(data.decode("utf-8-sig", errors="replace"))
    except ValueError as exc:
        raise UnreadableFile(f"malformed JSON: {exc}") from exc
    lands, top = (obj.get("lands"), obj.get("rides")) if isinstance(obj, dict) else (None, None)
    if not isinstance(lands, list | None) or not isinstance(top, list | None) or (
            lands is None and top is None):
        raise UnreadableFile("not a queue-times snapshot (no lands/rides lists)")
    rides: list = []
    for land in lands or []:  # a loop over lands (a handful per park), not over rows
        land_rides = land.get("rides") if isinstance(land, dict) else None
        if not isinstance(land_rides, list | None):
            raise UnreadableFile("not a queue-times snapshot (land rides is not a list)")
        rides.extend(land_rides or [])
    rides.extend(top or [])
    return rides


def _lookup(mapping: pd.DataFrame | None) -> pd.Series:
    """queue_times_id -> entity_code, one code per id (the last row wins), no NaN ids."""
    if mapping is None or not len(mapping):
        return pd.Series(dtype=object)
    ids = pd.to_numeric(mapping["queue_times_id"], errors="coerce").to_numpy(dtype=float)
    lookup = pd.Series(mapping["entity_code"].to_numpy(dtype=object), index=ids)
    return lookup[~np.isnan(ids) & ~lookup.index.duplicated(keep="last")]


def parse_snapshots(files: Sequence[tuple[int, Path, str]], mapping: pd.DataFrame | None) -> Parsed:
    """Snapshot files -> one candidate (POSTED or CLOSED) per ride; line = 1-based ride position."""
    rides: list = []
    file_idx, line, fetched, errors = [], [], [], {}
    for idx, path, key in files:
        try:
            these = _rides_of(Path(path))
        except Exception as exc:  # one bad file never stops the others
            errors[idx] = (str(exc) if isinstance(exc, UnreadableFile)
                           else f"{type(exc).__name__}: {exc}")
            continue
        rides.extend(these)
        file_idx.append(np.full(len(these), idx, dtype=np.int64))
        line.append(np.arange(1, len(these) + 1, dtype=np.int64))
        fetched.append(np.full(len(these), fetch_time_of(key), dtype="datetime64[ns]"))
    n = len(rides)
    # JSON decoding hands back Python objects; the type check is the one unavoidable pass.
    is_ride = np.fromiter((isinstance(r, dict) for r in rides), dtype=bool, count=n)
    records = rides if is_ride.all() else [r if ok else {}
                                           for r, ok in zip(rides, is_ride, strict=True)]
    df = pd.DataFrame.from_records(records, columns=list(RIDE_FIELDS)) if n else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in RIDE_FIELDS})

    ride_id = pd.to_numeric(df["id"], errors="coerce")
    mapped = ride_id.map(_lookup(mapping))
    unmapped = mapped.isna().to_numpy()
    # from_pandas: the NaN of an unmapped ride becomes a null code.
    codes = pa.array(mapped.to_numpy(dtype=object), pa.large_string(), from_pandas=True)
    code, park_idx, ent_reason = entity_parks(codes)

    closed = df["is_open"].astype(str).str.lower().isin(_CLOSED_TOKENS).to_numpy()
    wait_null = df["wait_time"].isna().to_numpy()
    wait = pd.to_numeric(df["wait_time"], errors="coerce").to_numpy(dtype=float)
    wait_bad = ~wait_null & np.isnan(wait)
    minutes, oor = round_in_range(wait, *WAIT_RANGE)
    when_null = df["last_updated"].isna().to_numpy()
    when = pd.to_datetime(df["last_updated"].astype("string"), format="ISO8601", utc=True,
                          errors="coerce")  # naive strings are read as UTC, per the API
    observed = when.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")

    reason = first_reason(
        n, (~is_ride, BAD_ROW), (unmapped, UNMAPPED), (ent_reason > 0, ent_reason),
        (when_null | (~closed & wait_null), MISSING), (np.isnat(observed), BAD_TIME),
        (~closed & wait_bad, BAD_ROW), (~closed & oor, OUT_OF_RANGE))
    cand = (np.arange(n), np.where(closed, CLOSED, POSTED).astype(object),
            np.where(closed, np.nan, minutes), reason)

    def raw(rows: np.ndarray) -> np.ndarray:  # only rejected rides are serialised
        return np.array([json.dumps(rides[i], ensure_ascii=False) for i in rows], dtype=object)

    cat = np.concatenate
    return Parsed(
        file_idx=cat(file_idx) if file_idx else np.zeros(0, np.int64),
        line=cat(line) if line else np.zeros(0, np.int64),
        raw=raw, entity=code, park_idx=park_idx, observed_at=observed,
        cand_row=cand[0], cand_type=cand[1], cand_minutes=cand[2], cand_reason=cand[3],
        errors=errors,
        fetched_at=cat(fetched) if fetched else np.zeros(0, "datetime64[ns]"),
    )

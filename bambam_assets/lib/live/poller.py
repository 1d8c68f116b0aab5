"""The queue-times poller: which parks are in their window, fetch them, write snapshot files.

Window (the legacy hours filter, quirks fixed): a park is polled from min(open, open with EMH)
− 90 min to max(close, close with EMH) + 90 min of its park day, from `dim_park_hours`, in the
park's own time zone. The park day of an instant follows the 6 AM rule, and the windows of the
day before and after are checked too (a close after midnight or a 04:30 window start still
count; the legacy HH:MM parser failed open on every ISO time). A park day without hours fails
open (polled), as in the legacy: a missed fetch loses data, an extra one costs one request.

Each fetched response is written unchanged to the raw source under
`queue_times/{PARK}/{park_date}/{PARK}_{YYYYmmddTHHMMSSZ}.json` (docs/raw_formats.md, section 3),
where the ingest sensor picks it up. Nothing here opens DuckDB for writing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pandas as pd

from bambam_assets.lib.core.parks import (
    PARK_DAY_START_HOUR,
    PROPERTY_OF_PARK,
    QUEUE_TIMES_PARK_ID,
    tz_of_park,
)
from bambam_assets.lib.ingest.parsing.wait_files import read_qt_mapping
from bambam_assets.lib.ingest.raw_source import RawSource
from bambam_assets.lib.live.queue_times_client import QueueTimesClient, QueueTimesError, Snapshot

WINDOW_BEFORE_MIN = 90
WINDOW_AFTER_MIN = 90
STALE_AFTER = timedelta(hours=24)
MAPPING_KEY = "queue_times/entity_mapping.csv"
SNAPSHOT_PREFIX = "queue_times"
_MAPPING_MAX_BYTES = 64 * 2**20
HOURS_COLUMNS = ("park_code", "park_date", "opening_time", "closing_time",
                 "opening_time_with_emh", "closing_time_with_emh")


@dataclass
class FetchResult:
    """What one park's fetch did (one per polled park and tick)."""

    park_code: str
    queue_times_id: int | None
    attempted_at: datetime
    ok: bool
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    snapshot_key: str | None = None
    rides_seen: int = 0
    rows_written: int = 0  # mapped rides in the written snapshot: the rows the ingest will add
    stale_rows: int = 0  # rides whose last_updated is > 24 h before the fetch (kept, flagged)
    unmapped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"queue_times_id": pd.Series(dtype="int64"), "queue_times_name": pd.Series(dtype=object)}))
    window_reason: str = ""


def park_day(instant: datetime, park_code: str) -> date:
    """The park day of an instant: local date in the park's zone, minus one before 06:00.

    A code that is no park (a typo in the settings) uses UTC, so its fetch error can be recorded.
    """
    zone = ZoneInfo(tz_of_park(park_code)) if park_code in PROPERTY_OF_PARK else UTC
    local = instant.astimezone(zone)
    return (local - timedelta(hours=PARK_DAY_START_HOUR)).date()


def read_park_hours(conn: duckdb.DuckDBPyConnection, parks: Sequence[str], first: date,
                    last: date) -> pd.DataFrame:
    """Hours of `parks` for park days first..last. Grain: one row per (park_code, park_date)."""
    return conn.execute(
        f"SELECT {', '.join(HOURS_COLUMNS)} FROM dim_park_hours "  # constant column names
        "WHERE park_code IN (SELECT unnest(?::VARCHAR[])) AND park_date BETWEEN ? AND ?",
        [list(parks), first, last]).df()


def empty_hours() -> pd.DataFrame:
    """Hours of no park (the columns of read_park_hours)."""
    frame = {c: pd.Series(dtype="datetime64[ns, UTC]") for c in HOURS_COLUMNS[2:]}
    return pd.DataFrame({"park_code": pd.Series(dtype=object),
                         "park_date": pd.Series(dtype="datetime64[ns]"), **frame})


def window_status(hours: pd.DataFrame, now: datetime, parks: Sequence[str],
                  before_min: int = WINDOW_BEFORE_MIN,
                  after_min: int = WINDOW_AFTER_MIN) -> pd.DataFrame:
    """Is each park in its polling window at `now`?

    Grain: one row per park of `parks`: park_code, park_date (the matched window's day, else the
    6 AM-rule day of now), in_window, window_start, window_end (UTC, NaT without hours), reason
    (`in_window` | `outside_window` | `no_hours`).
    """
    now = now.astimezone(UTC)
    days = pd.DataFrame([(p, park_day(now, p) + timedelta(days=k), k)  # 3 rows per park
                         for p in parks for k in (-1, 0, 1)],
                        columns=["park_code", "park_date", "offset"])
    days["park_date"] = pd.to_datetime(days["park_date"])
    h = hours.assign(park_date=pd.to_datetime(hours["park_date"]))
    m = days.merge(h, on=["park_code", "park_date"], how="left")
    utc = {c: pd.to_datetime(m[c], utc=True) for c in HOURS_COLUMNS[2:]}
    start = pd.concat([utc["opening_time"], utc["opening_time_with_emh"]], axis=1).min(axis=1)
    end = pd.concat([utc["closing_time"], utc["closing_time_with_emh"]], axis=1).max(axis=1)
    m["window_start"] = start - pd.Timedelta(minutes=before_min)
    m["window_end"] = end + pd.Timedelta(minutes=after_min)
    stamp = pd.Timestamp(now)
    m["hit"] = (m["window_start"] <= stamp) & (stamp <= m["window_end"])
    m["has_hours"] = start.notna() & end.notna()
    # per park: the matching window if any, else the 6 AM-rule day (offset 0)
    m["rank"] = (~m["hit"]).astype(int) * 10 + m["offset"].abs()
    best = m.sort_values(["park_code", "rank"]).groupby("park_code", sort=False).head(1)
    today_has = m[m["offset"] == 0].set_index("park_code")["has_hours"]
    best = best.set_index("park_code").reindex(list(parks))
    no_hours = ~best["hit"] & ~today_has.reindex(best.index).fillna(False).astype(bool)
    best["in_window"] = best["hit"] | no_hours
    best["reason"] = "outside_window"
    best.loc[best["hit"], "reason"] = "in_window"
    best.loc[no_hours, "reason"] = "no_hours"
    best["park_date"] = best["park_date"].dt.date
    out = best.reset_index()[["park_code", "park_date", "in_window", "window_start",
                              "window_end", "reason"]]
    return out.astype({"in_window": bool})


def read_mapping(source: RawSource, key: str = MAPPING_KEY) -> pd.DataFrame:
    """The entity mapping file of the raw source (empty when it does not exist).

    Grain: one row per queue_times_id (see parsing.read_qt_mapping).
    """
    try:
        data = source.read_head(key, _MAPPING_MAX_BYTES)
    except FileNotFoundError:
        return read_qt_mapping([])
    return read_qt_mapping([io.BytesIO(data)])  # type: ignore[list-item]  # pandas reads buffers


def rides_frame(data: dict) -> pd.DataFrame:
    """The rides of a snapshot: lands[].rides[] then rides[]. Grain: one row per ride entry."""
    rides: list = []
    for land in data.get("lands") or []:  # a handful of lands per park
        if isinstance(land, dict) and isinstance(land.get("rides"), list):
            rides.extend(land["rides"])
    rides.extend(data.get("rides") or [])
    rides = [r for r in rides if isinstance(r, dict)]
    return pd.DataFrame.from_records(rides, columns=["id", "name", "is_open", "wait_time",
                                                     "last_updated"])


def snapshot_key(park_code: str, fetched_at: datetime) -> str:
    """`queue_times/{PARK}/{park_date}/{PARK}_{YYYYmmddTHHMMSSZ}.json` (docs/raw_formats.md,
    section 3)."""
    stamp = fetched_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = park_day(fetched_at, park_code).isoformat()
    return f"{SNAPSHOT_PREFIX}/{park_code}/{day}/{park_code}_{stamp}.json"


def summarize(result: FetchResult, snap: Snapshot, mapping: pd.DataFrame) -> None:
    """Fill rides_seen, rows_written, stale_rows and the unmapped rides from a snapshot."""
    rides = rides_frame(snap.data)
    ids = pd.to_numeric(rides["id"], errors="coerce")
    mapped = ids.isin(mapping["queue_times_id"])
    updated = pd.to_datetime(rides["last_updated"].astype("string"), format="ISO8601", utc=True,
                             errors="coerce")
    result.rides_seen = len(rides)
    result.rows_written = int(mapped.sum())
    result.stale_rows = int((updated < pd.Timestamp(result.attempted_at) - STALE_AFTER).sum())
    un = rides[~mapped & ids.notna()]
    result.unmapped = pd.DataFrame({
        "queue_times_id": ids[un.index].astype("int64"),
        "queue_times_name": un["name"].astype("string").fillna("").astype(object),
    }).drop_duplicates("queue_times_id", keep="last").reset_index(drop=True)


def fetch_park(client: QueueTimesClient, source: RawSource, park_code: str,
               mapping: pd.DataFrame, now: datetime | None = None) -> FetchResult:
    """Fetch one park and write its snapshot; a failed fetch (network, HTTP, body) or a failed
    write to the raw source is returned in the result, never raised. Anything else is a bug and
    raises."""
    attempted = (now or datetime.now(UTC)).astimezone(UTC)
    qt_id = QUEUE_TIMES_PARK_ID.get(park_code)
    result = FetchResult(park_code, qt_id, attempted, ok=False)
    if qt_id is None:
        result.error_kind, result.error = "unknown_park", \
            f"park {park_code!r} has no queue-times id (known: {sorted(QUEUE_TIMES_PARK_ID)})"
        return result
    try:
        snap = client.fetch(qt_id)
    except QueueTimesError as exc:
        result.error_kind, result.error, result.attempts = exc.kind, str(exc), exc.attempts
        return result
    except httpx.HTTPError as exc:  # what the client does not classify (e.g. a bad encoding)
        result.error_kind, result.error = "http_error", f"{type(exc).__name__}: {exc}"
        return result
    result.attempts = snap.attempts
    key = snapshot_key(park_code, attempted)
    try:
        source.write_bytes(key, snap.body)  # the response as received: the ingest parses it
    except OSError as exc:  # the raw source refused or is out of reach (RawSource raises OSErrors)
        result.error_kind, result.error = "write_failed", f"{type(exc).__name__}: {exc}"
        return result
    result.snapshot_key = key
    summarize(result, snap, mapping)
    result.ok = True
    return result


def poll(client: QueueTimesClient, source: RawSource, parks: Sequence[str],
         hours: pd.DataFrame, now: datetime | None = None, mapping: pd.DataFrame | None = None,
         workers: int = 12) -> tuple[list[FetchResult], pd.DataFrame]:
    """Fetch every park of `parks` that is in its window at `now`.

    Returns (one FetchResult per fetched park, `window_status` of all parks). Parks without a
    queue-times id are "fetched" too, so that their error is recorded.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    windows = window_status(hours, now, parks)
    due = windows.loc[windows["in_window"], "park_code"].tolist()
    if not due:
        return [], windows
    if mapping is None:
        mapping = read_mapping(source)
    reasons = windows.set_index("park_code")["reason"]
    # parks in parallel (each waits on the network; the client is thread-safe), so a tick of
    # 12 parks takes one park's worst case (3 attempts x 10 s + backoff) inside a sensor tick
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(due)))) as pool:
        results = list(pool.map(lambda p: fetch_park(client, source, p, mapping, now), due))
    for r in results:
        r.window_reason = str(reasons[r.park_code])
    return results, windows

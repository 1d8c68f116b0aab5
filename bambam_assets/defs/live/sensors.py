"""The queue-times poll: a sensor that fetches in-window parks and writes snapshot files.

Why a sensor ticking every minute rather than a 5-minute schedule: a schedule would launch a run
per tick (288 runs a day, seconds of overhead each) although a poll is a few HTTP requests; the
sensor polls in its own evaluation and launches nothing. It polls when BAMBAM_QUEUE_TIMES_INTERVAL_S
(default 300, read at each tick) have passed since the last poll, kept in the cursor.

Where `fetch_status` gets written: the snapshots go to the raw source (the ingest sensor picks
them up and the ingest run writes the facts); the status goes to one JSON file per park under
BAMBAM_HOME/status/fetch/ (never lost, whatever holds the warehouse), then the sensor folds the
files into the `fetch_status` and `queue_times_unmapped` tables with a writer connection it waits
at most 2 s for. The warehouse writer lock is the same file lock every writer takes, so the sensor
never writes while an ingest run holds the warehouse: it skips the fold and the next tick folds.
A fold is reported as a materialization of the two (external) assets below.

What is a skip and what is an error: the expected conditions of a poll skip the tick with the
reason (no park inside its polling window; no park fetched because queue-times.com, or the S3 raw
source, is out of reach or answers an HTTP error; the status folder locked by another poller).
Anything else, a programming error or a bad setting (BAMBAM_RAW, BAMBAM_QUEUE_TIMES_URL, the
interval, parks none of which queue-times knows), raises: a sensor error in the UI, not a skip.

Default status STOPPED: turning it on polls the real queue-times.com (or BAMBAM_QUEUE_TIMES_URL),
which a demo replaying past dates must not do on its own.
"""


import time
from datetime import UTC, datetime

import dagster as dg
import httpx
import pandas as pd
from filelock import Timeout

from bambam_assets.defs.groups import group_of
from bambam_assets.defs.resources import RawSourceResource, WarehouseResource
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import QUEUE_TIMES_PARK_ID
from bambam_assets.lib.ingest.raw_source import RawSourceError
from bambam_assets.lib.live.fetch_status import TickReport, run_tick
from bambam_assets.lib.live.queue_times_client import QueueTimesClient

TICK_SECONDS = 60
# What a tick may meet that is no bug: the network (a RawSource turns an unreachable S3 into
# ConnectionError, a failing one into RawSourceError), an HTTP error, the status folder's lock
# held by another poller. These skip the tick; anything else raises (a sensor error).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, RawSourceError, httpx.HTTPError, Timeout)

fetch_status_specs = [
    dg.AssetSpec(
        "fetch_status", group_name=group_of("fetch_status"),
        description="One row per polled park: last attempt, last success, rides seen, rows "
        "written, rows older than 24 h, error (written by the queue_times_poll sensor).",
    ),
    dg.AssetSpec(
        "queue_times_unmapped", group_name=group_of("queue_times_unmapped"),
        description="One row per (park, queue-times ride) missing from the entity mapping, "
        "with first and last seen; such rides never get invented codes.",
    ),
]


def poll_interval_s() -> int:
    """BAMBAM_QUEUE_TIMES_INTERVAL_S, read when called (default 300 s), at least one tick."""
    return max(TICK_SECONDS, settings.queue_times_interval_s())


def check_settings(client: QueueTimesClient, parks: list[str]) -> None:
    """Raise ValueError for settings no tick can work with (a sensor error, not a skip)."""
    url = httpx.URL(client.base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{settings.QUEUE_TIMES_URL} must be an http(s) URL, "
                         f"got {client.base_url!r}")
    if not any(p in QUEUE_TIMES_PARK_ID for p in parks):
        raise ValueError(f"{settings.QUEUE_TIMES_PARKS} names no park queue-times knows: {parks} "
                         f"(known: {sorted(QUEUE_TIMES_PARK_ID)})")


def _windows_text(windows: pd.DataFrame) -> str:
    """`MK: outside_window (window 12:30-02:30 UTC)` per park."""
    def one(row) -> str:
        if pd.isna(row.window_start) or pd.isna(row.window_end):
            return f"{row.park_code}: {row.reason}"
        return (f"{row.park_code}: {row.reason} (window {row.window_start:%Y-%m-%d %H:%M}"
                f"-{row.window_end:%H:%M} UTC)")
    return "; ".join(one(r) for r in windows.itertuples())


def skip_reason(tick: TickReport) -> str | None:
    """Why a tick that ran fetched nothing, or None when some park was fetched."""
    if not tick.results:
        return f"no park inside its polling window (hours ± 90 min): {_windows_text(tick.windows)}"
    if any(r.ok for r in tick.results):
        return None
    failed = "; ".join(f"{r.park_code}: {r.error_kind}: {r.error}" for r in tick.results)
    return f"no park fetched (recorded in fetch_status, retried next poll): {failed}"


@dg.sensor(
    name="queue_times_poll",
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Polls queue-times.com for parks within their hours ±90 min every "
    "BAMBAM_QUEUE_TIMES_INTERVAL_S (300 s) and writes snapshot files to the raw source; "
    "per-park fetch status goes to BAMBAM_HOME/status/fetch and the fetch_status table.",
)
def queue_times_poll(
    context: dg.SensorEvaluationContext,
    raw_source: RawSourceResource,
    warehouse: WarehouseResource,
):
    now = datetime.now(UTC)
    last = float(context.cursor) if context.cursor else 0.0
    interval = poll_interval_s()
    if now.timestamp() - last < interval - 5:  # 5 s slack: ticks drift
        return dg.SkipReason(f"next poll in {interval - (now.timestamp() - last):.0f} s")
    started = time.monotonic()
    source = raw_source.open()  # a bad setting raises here (a sensor error, not a skip)
    parks = settings.queue_times_parks()
    with QueueTimesClient(base_url=settings.queue_times_url()) as client:
        check_settings(client, parks)
        try:
            tick = run_tick(warehouse.home_path(), source, client, parks, now=now)
        except EXPECTED_ERRORS as exc:  # the network or a busy status folder: retry next tick
            context.log.warning(f"queue-times poll failed, retried next tick: {exc}")
            return dg.SkipReason(f"poll failed: {type(exc).__name__}: {exc}")
    summary = tick.summary()
    summary["seconds"] = round(time.monotonic() - started, 2)
    for r in tick.results:
        if not r.ok:
            context.log.warning(f"{r.park_code}: {r.error_kind}: {r.error}")
    events = []
    if tick.folded:
        meta = {k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                for k, v in summary.items()}
        events = [dg.AssetMaterialization(spec.key, metadata=meta) for spec in fetch_status_specs]
    context.log.info(f"queue-times poll: {summary}")
    # Nothing fetched is a skip with its reason; the cursor still moves (the poll happened) and
    # the folded status is still reported.
    return dg.SensorResult(cursor=str(now.timestamp()), asset_events=events,
                           skip_reason=skip_reason(tick))

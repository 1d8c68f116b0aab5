"""Fetch status of the queue-times poller: per-park JSON files, folded into two warehouse tables.

Why files first: the poll runs in a sensor, and while an ingest run writes the warehouse no other
process can even open it (docs: DuckDB single writer). So each poll writes one small JSON file
per park under `BAMBAM_HOME/status/fetch/` (atomic replace, never lost), and `fold_status` copies
them into `fetch_status` and `queue_times_unmapped` whenever a short writer connection can be had
(the sensor tries with a timeout of seconds and skips when the warehouse is busy; the files stay
the truth and the next tick folds them). The dashboard may read either.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from bambam_assets.lib.core import schema, warehouse
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.ingest.raw_source import RawSource
from bambam_assets.lib.live.poller import (
    FetchResult,
    empty_hours,
    poll,
    read_mapping,
    read_park_hours,
)
from bambam_assets.lib.live.queue_times_client import QueueTimesClient

# Columns of `fetch_status` and `queue_times_unmapped` (DDL and grain in lib.core.schema).
STATUS_COLUMNS = (
    "park_code", "queue_times_id", "last_attempt", "last_success", "rides_seen", "rows_written",
    "stale_rows", "unmapped_rides", "error", "error_kind", "attempts", "consecutive_failures",
    "last_snapshot_key",
)
UNMAPPED_COLUMNS = ("park_code", "queue_times_id", "queue_times_name", "first_seen", "last_seen")


def status_dir(home: Path) -> Path:
    return HomePaths(home).fetch_status


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat() if ts else None


def _write_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1)
        os.replace(tmp, path)  # readers see the old or the new file, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_park_status(home: Path, park_code: str) -> dict | None:
    path = status_dir(home) / f"{park_code}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def record_results(home: Path, results: Sequence[FetchResult],
                   mapped_ids: Sequence[int] = ()) -> list[dict]:
    """Merge this tick's results into the per-park status files; returns the new states.

    A failure keeps the last success's counts (earlier data is never lost) and sets `error`;
    a success clears it. Unmapped rides keep their first_seen; rides now in the mapping leave
    the report.
    """
    d = status_dir(home)
    d.mkdir(parents=True, exist_ok=True)
    mapped = {int(i) for i in mapped_ids}
    states = []
    # the CLI and the sensor may poll together
    with FileLock(str(HomePaths(home).fetch_lock), timeout=30):
        for r in results:  # one file per park
            old = read_park_status(home, r.park_code) or {}
            state = {k: old.get(k) for k in STATUS_COLUMNS}
            state.update(park_code=r.park_code, queue_times_id=r.queue_times_id,
                         last_attempt=_iso(r.attempted_at), attempts=r.attempts)
            unmapped = {int(k): v for k, v in (old.get("unmapped") or {}).items()
                        if int(k) not in mapped}
            if r.ok:
                state.update(last_success=_iso(r.attempted_at), rides_seen=r.rides_seen,
                             rows_written=r.rows_written, stale_rows=r.stale_rows, error=None,
                             error_kind=None, consecutive_failures=0,
                             last_snapshot_key=r.snapshot_key)
                seen = _iso(r.attempted_at)
                for rid, name in zip(r.unmapped["queue_times_id"].tolist(),
                                     r.unmapped["queue_times_name"].tolist(),
                                     strict=True):  # a few rides
                    first = (unmapped.get(int(rid)) or {}).get("first_seen") or seen
                    unmapped[int(rid)] = {"name": name, "first_seen": first, "last_seen": seen}
            else:
                state.update(error=r.error, error_kind=r.error_kind,
                             consecutive_failures=int(old.get("consecutive_failures") or 0) + 1)
            state["unmapped_rides"] = len(unmapped)
            state["unmapped"] = {str(k): v for k, v in sorted(unmapped.items())}
            _write_json(d / f"{r.park_code}.json", state)
            states.append(state)
    return states


def read_status(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fetch status, unmapped rides) from the status files, without DuckDB.

    Grains: one row per park with a status file; one row per (park, unmapped ride).
    """
    d = status_dir(home)
    states = []
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:  # one file per park
        try:
            states.append(json.loads(path.read_text()))
        except ValueError:
            continue
    status = pd.DataFrame.from_records([{k: s.get(k) for k in STATUS_COLUMNS} for s in states],
                                       columns=list(STATUS_COLUMNS))
    for col in ("last_attempt", "last_success"):
        status[col] = pd.to_datetime(status[col], utc=True, format="ISO8601")
    for col in ("queue_times_id", "rides_seen", "rows_written", "stale_rows", "unmapped_rides",
                "attempts", "consecutive_failures"):
        status[col] = status[col].astype("Int64")
    unmapped = pd.DataFrame.from_records(
        [(s["park_code"], int(k), v.get("name"), v.get("first_seen"), v.get("last_seen"))
         for s in states for k, v in (s.get("unmapped") or {}).items()],
        columns=list(UNMAPPED_COLUMNS))
    for col in ("first_seen", "last_seen"):
        unmapped[col] = pd.to_datetime(unmapped[col], utc=True, format="ISO8601")
    unmapped["queue_times_id"] = unmapped["queue_times_id"].astype("int64")
    return status, unmapped


def fold_status(conn: duckdb.DuckDBPyConnection, home: Path) -> tuple[int, int]:
    """Replace the rows of every park with a status file in both tables; returns their counts.

    Parks without a file keep their rows (a deleted status folder never empties the tables).
    """
    status, unmapped = read_status(home)
    schema.ensure_tables(conn)
    if status.empty:
        return 0, 0
    cols = ", ".join(STATUS_COLUMNS)  # constant names
    ucols = ", ".join(UNMAPPED_COLUMNS)
    with warehouse.staged(conn, _fs_status=status, _fs_unmapped=unmapped):
        conn.execute("DELETE FROM fetch_status WHERE park_code IN "
                     "(SELECT park_code FROM _fs_status)")
        conn.execute(f"INSERT INTO fetch_status ({cols}, updated_at) "
                     f"SELECT {cols}, now() FROM _fs_status")
        conn.execute("DELETE FROM queue_times_unmapped WHERE park_code IN "
                     "(SELECT park_code FROM _fs_status)")
        conn.execute(f"INSERT INTO queue_times_unmapped ({ucols}) SELECT {ucols} FROM _fs_unmapped")
    return len(status), len(unmapped)


# ---- one poll tick: hours, fetch, status files, fold ---------------------------------------------



def hours_for_poll(home: Path, parks: Sequence[str], now: datetime,
                   timeout_s: float = 2.0) -> tuple[pd.DataFrame, str]:
    """Park hours around `now` from the warehouse (short read-only connection), else the copy
    cached by the last successful read; returns (hours, where they came from)."""
    cache = HomePaths(home).park_hours_cache
    day = now.astimezone(UTC).date()
    try:
        with warehouse.reader(home, timeout_s=timeout_s) as conn:
            # ±3 days covers the park day of every time zone plus the day before and after
            hours = read_park_hours(conn, parks, day - timedelta(days=3), day + timedelta(days=3))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        hours.to_parquet(tmp, index=False)
        os.replace(tmp, cache)
        return hours, "warehouse"
    except (FileNotFoundError, duckdb.Error) as exc:  # no warehouse yet, or a writer holds it
        try:
            return pd.read_parquet(cache), f"cache ({type(exc).__name__})"
        except (FileNotFoundError, OSError, ValueError):
            return empty_hours(), f"none ({type(exc).__name__}): parks fail open"


def try_fold(home: Path, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Fold the status files into the warehouse if a writer connection comes within timeout_s.

    Returns (folded?, message). Never waits longer: a busy warehouse means "next tick".
    """
    try:
        with warehouse.writer(home, timeout_s=timeout_s) as conn:
            n, u = fold_status(conn, home)
        return True, f"folded {n} park status rows, {u} unmapped rides"
    except (Timeout, duckdb.IOException) as exc:
        return False, f"warehouse busy, status kept in files: {type(exc).__name__}"


@dataclass
class TickReport:
    """One poll tick: per-park fetch results, window of every park, where things went."""

    results: list[FetchResult]
    windows: pd.DataFrame
    hours_source: str
    folded: bool
    fold_message: str

    def summary(self) -> dict:
        return {
            "parks_in_window": int(self.windows["in_window"].sum()),
            "fetched_ok": [r.park_code for r in self.results if r.ok],
            "failed": {r.park_code: r.error for r in self.results if not r.ok},
            "rows_written": sum(r.rows_written for r in self.results),
            "stale_rows": sum(r.stale_rows for r in self.results),
            "hours_source": self.hours_source, "fold": self.fold_message,
        }


def run_tick(home: Path, source: RawSource, client: QueueTimesClient, parks: Sequence[str],
             now: datetime | None = None, fold_timeout_s: float = 2.0) -> TickReport:
    """Poll the parks in their window, write snapshots and status files, fold if possible.

    Never raises for a park's failure (it is in the results and the status file).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    hours, where = hours_for_poll(home, parks, now)
    mapping = read_mapping(source)
    results, windows = poll(client, source, parks, hours, now=now, mapping=mapping)
    record_results(home, results, mapped_ids=mapping["queue_times_id"].tolist())
    folded, message = try_fold(home, fold_timeout_s) if results else (False, "nothing polled")
    return TickReport(results, windows, where, folded, message)

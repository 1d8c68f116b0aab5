"""Warehouse reads for the dashboard that never block the pipeline and survive its writes.

DuckDB lets no other process open the file while a pipeline process writes it. So each read opens
a short read-only connection with a small retry budget; the result of every successful query is
kept in memory with its time, and when the warehouse is busy the last result is served again,
marked stale ("as of HH:MM:SS, warehouse busy").
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from bambam_assets.lib.core import warehouse as wh

# (home, timeout_s) -> context manager of a read-only connection (wh.reader's signature)
Opener = Callable[[Path, float], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass(frozen=True)
class Result:
    """One query's answer as the page shows it.

    `value` is what the query function returned (None: no data yet); `stale` means the warehouse
    was busy and `value` is the cached answer from `as_of`; `missing` means there is no warehouse.
    """

    value: Any
    as_of: datetime | None
    stale: bool = False
    missing: bool = False
    error: str | None = None

    @property
    def note(self) -> str:
        """Short status text for the page ("" when the answer is fresh)."""
        if self.missing:
            return "no warehouse yet: run the pipeline first"
        if self.stale and self.as_of is not None:
            return f"as of {self.as_of.astimezone().strftime('%H:%M:%S')} (warehouse busy)"
        if self.stale:
            return "warehouse busy: no cached data yet, retrying"
        return f"error: {self.error}" if self.error else ""


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class WarehouseStore:
    """Cached, retrying, serialized read access to `home`'s warehouse.

    `timeout_s` is the retry budget when nothing is cached; with a cached answer one short try
    (`busy_timeout_s`) is made, so a page never waits seconds for a writer. Once a writer was
    found, reads during the next `busy_hold_s` do not try again (the other panels of the page
    get their cached answers at once). Answers younger than `ttl_s` are reused without opening
    the file (several panels of a page share one read).
    """

    def __init__(self, home: Path, timeout_s: float = 2.0, busy_timeout_s: float = 0.2,
                 ttl_s: float = 3.0, busy_hold_s: float = 1.0, max_entries: int = 256,
                 opener: Opener = wh.reader) -> None:
        self.home = Path(home)
        self.timeout_s, self.busy_timeout_s, self.ttl_s = timeout_s, busy_timeout_s, ttl_s
        self.busy_hold_s = busy_hold_s
        self._busy_at: float | None = None  # monotonic time a writer was last found
        self.max_entries = max_entries
        self._opener = opener
        self._cache: OrderedDict[Hashable, tuple[float, datetime, Any]] = OrderedDict()
        # One connection at a time in this process: short reads, and a writer waits for at most one.
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return wh.warehouse_path(self.home)

    def read(self, key: Hashable, fn: Callable[[duckdb.DuckDBPyConnection], Any],
             ttl_s: float | None = None) -> Result:
        """Run `fn(conn)` on a read-only connection, or serve the cached answer for `key`.

        `key` must identify the query and its parameters (e.g. ("curve", entity, day)).
        """
        ttl = self.ttl_s if ttl_s is None else ttl_s
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < ttl:
                return Result(cached[2], cached[1])
            if not self.path.exists():
                return Result(None, None, missing=True)
            if self._busy_at is not None and time.monotonic() - self._busy_at < self.busy_hold_s:
                return self._stale(cached)
            budget = self.busy_timeout_s if cached is not None else self.timeout_s
            try:
                with self._opener(self.home, budget) as conn:
                    value = fn(conn)
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    return Result(None, None, error=str(exc).splitlines()[0])
                self._busy_at = time.monotonic()
                return self._stale(cached)
            self._busy_at = None
            now = datetime.now(UTC)
            self._cache[key] = (time.monotonic(), now, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            return Result(value, now)

    @staticmethod
    def _stale(cached: tuple[float, datetime, Any] | None) -> Result:
        if cached is None:
            return Result(None, None, stale=True)
        return Result(cached[2], cached[1], stale=True)

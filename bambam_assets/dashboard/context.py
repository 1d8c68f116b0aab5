"""What every page needs: the home folder, the cached warehouse store, settings and the Dagster
instance (opened once, read under a lock, answers cached for a second)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from bambam_assets.dashboard import runs
from bambam_assets.dashboard.store import WarehouseStore
from bambam_assets.lib.core import settings

DEFAULT_STALE_DAYS = settings.DEFAULT_STALE_DAYS
# BAMBAM_STALE_DAYS: days without observations before an operating entity is stale (read on call)
stale_days_setting = settings.stale_days


@dataclass
class Context:
    home: Path
    store: WarehouseStore
    stale_days: int = DEFAULT_STALE_DAYS
    as_of_override: date | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _instance: object | None = None
    _groups: dict[str, str] | None = None
    _runs: tuple[float, pd.DataFrame] | None = None

    def as_of(self) -> date:
        """The date the dashboard treats as today (BAMBAM_AS_OF, read on each call)."""
        return self.as_of_override or settings.as_of()

    def instance(self):
        """The local Dagster instance, or None before the first run created it."""
        with self._lock:
            if self._instance is None:
                self._instance = runs.open_instance(self.home)
            return self._instance

    def groups(self) -> dict[str, str]:
        with self._lock:
            if self._groups is None:
                self._groups = runs.asset_groups()
            return self._groups

    def recent_runs(self, ttl_s: float = 1.0) -> pd.DataFrame:
        """recent_runs of the instance, reused for `ttl_s` (the status page polls)."""
        instance = self.instance()
        if instance is None:
            return pd.DataFrame(columns=runs.RUN_COLUMNS)
        with self._lock:
            if self._runs is not None and time.monotonic() - self._runs[0] < ttl_s:
                return self._runs[1]
            frame = runs.recent_runs(instance)
            self._runs = (time.monotonic(), frame)
            return frame


def make_context(home: Path, stale_days: int | None = None,
                 as_of: date | None = None) -> Context:
    home = Path(home)
    return Context(home=home, store=WarehouseStore(home),
                   stale_days=stale_days_setting() if stale_days is None else stale_days,
                   as_of_override=as_of)

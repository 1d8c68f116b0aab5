"""One entity_model training at a time per home, whoever started it (daemon run, UI backfill,
`bambam run`): a cross-process file lock held by the training step for its whole length.

Why a file lock as well as the retrain sensor's check of in-progress runs: two `bambam run`s
(or a CLI run beside the daemon) are separate processes the sensor never sees launching, and
only a lock taken by the training step itself keeps them from training one entity twice. The
second step waits, then re-evaluates staleness under the lock and skips what the first one
trained (defs/models/assets.py).

The lock is an OS lock (`filelock`, fcntl on Linux): a holder killed with -9 releases it. The
holder writes who it is (run id, pid, since) beside the lock so that a waiter, and the retrain
sensor, can name it; that note is read only while the lock is really held, so a stale note left
by a killed holder is never believed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from bambam_assets.lib.core.paths import HomePaths

HOLDER_SUFFIX = ".holder"
POLL_S = 30.0  # how often a waiter logs whom it waits for


@dataclass(frozen=True)
class Holder:
    """Who holds the training lock."""

    run_id: str
    pid: int
    since: str  # UTC ISO

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid}, since {self.since})"


def _holder_path(home: Path) -> Path:
    lock = HomePaths(home).training_lock
    return lock.with_name(lock.name + HOLDER_SUFFIX)


def _read_holder(home: Path) -> Holder | None:
    try:
        data = json.loads(_holder_path(home).read_text())
        return Holder(str(data["run_id"]), int(data["pid"]), str(data["since"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def current_holder(home: Path) -> Holder | None:
    """The holder of the training lock of `home`, or None when nobody holds it (checked by
    trying the lock, so a note left by a killed holder does not count)."""
    lock = FileLock(str(HomePaths(home).training_lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return _read_holder(home) or Holder("unknown", 0, "")
    lock.release()
    return None


@contextmanager
def training_lock(home: Path, run_id: str, timeout_s: float | None = None,
                  on_wait: Callable[[Holder | None, float], None] | None = None,
                  ) -> Iterator[float]:
    """Hold the training lock of `home` for the block; yields the seconds spent waiting.

    Waits for the current holder (None: without limit); `on_wait(holder, waited_s)` is called
    about every POLL_S seconds while waiting. Raises filelock.Timeout after `timeout_s`.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(HomePaths(home).training_lock))
    started = time.monotonic()
    wait_s = 0.0  # the first try does not wait: a waiter says whom it waits for at once
    while True:
        try:
            lock.acquire(timeout=wait_s)
            break
        except Timeout:
            waited = time.monotonic() - started
            if timeout_s is not None and waited >= timeout_s:
                raise
            if on_wait:
                on_wait(_read_holder(home), waited)
            wait_s = POLL_S if timeout_s is None else min(POLL_S, timeout_s - waited)
    waited = time.monotonic() - started
    note = _holder_path(home)
    try:
        note.write_text(json.dumps({"run_id": run_id, "pid": os.getpid(),
                                    "since": datetime.now(UTC).isoformat(timespec="seconds")}))
        yield waited
    finally:
        note.unlink(missing_ok=True)
        lock.release()

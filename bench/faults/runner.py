"""A `bambam run` process that a trigger kills with SIGKILL at a chosen point.

The pipeline runs as its own process group (pool workers included), with Dagster's INFO log on
its output. A trigger is called on every output line and every few milliseconds with no line; when
it returns a note, the whole group gets SIGKILL at once: the pipeline has no chance to clean up,
as with a power cut or the OOM killer.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAMBAM = [sys.executable, "-m", "bambam_assets.cli.main"]
AS_OF = "2024-06-30"

Trigger = Callable[[str | None], str | None]


@dataclass
class RunResult:
    rc: int | None
    output: str
    seconds: float
    killed: str | None = None  # the trigger's note when it fired
    lines: list[str] = field(default_factory=list)

    def error_lines(self) -> list[str]:
        """The lines that say why a run failed: the CLI's one-line error, Dagster's step
        failures (their first line) and the entity failures the step logs."""
        keys = ("Error:", "STEP_FAILURE", " failed: ", "Failure:", "Error occurred")
        return [ln.strip() for ln in self.lines if any(k in ln for k in keys)]


def pipeline_env(home: Path, raw: str | None = None, extra: dict | None = None) -> dict:
    env = {**os.environ}
    env.update({
        "BAMBAM_HOME": str(home), "BAMBAM_RAW": raw or str(home / "raw"),
        "BAMBAM_AS_OF": AS_OF, "DAGSTER_HOME": str(home / "dagster"),
        "BAMBAM_LOG_LEVEL": "INFO", "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def run_bambam(home: Path, args: list[str] | None = None, trigger: Trigger | None = None,
               raw: str | None = None, env: dict | None = None, timeout_s: float = 600.0,
               poll_s: float = 0.005, preexec: Callable[[], None] | None = None,
               argv: list[str] | None = None, pid_box: list[int] | None = None) -> RunResult:
    """Run `bambam run ARGS` (or `argv`) on `home`; SIGKILL its process group when `trigger`
    returns a note."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    cmd = argv or [*BAMBAM, "run", *(args or [])]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=pipeline_env(home, raw, env), cwd=str(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=preexec)
    if pid_box is not None:
        pid_box.append(proc.pid)
    lines: list[str] = []
    killed: list[str] = []
    lock = threading.Lock()

    def fire(note: str) -> None:
        with lock:
            if killed:
                return
            killed.append(note)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                killed[-1] += " (the run had already ended)"

    def reader() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if trigger and not killed:
                note = trigger(line)
                if note:
                    fire(note)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if trigger and not killed:
            note = trigger(None)
            if note:
                fire(note)
        if time.monotonic() > deadline:
            fire("timeout")
        time.sleep(poll_s)
    t.join(timeout=10)
    if killed:  # pool workers of the group may still be dying: wait until none is left
        for _ in range(200):
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    return RunResult(proc.returncode, "\n".join(lines), time.perf_counter() - started,
                     killed[0] if killed else None, lines)


# --- triggers ----------------------------------------------------------------------------------

def on_line(pattern: str, note: str, then: Trigger | None = None) -> Trigger:
    """Fire when an output line matches `pattern` (or, with `then`, hand over to `then` from
    that line on)."""
    rx = re.compile(pattern)
    seen = [False]

    def trigger(line: str | None) -> str | None:
        if not seen[0]:
            if line is not None and rx.search(line):
                seen[0] = True
                return None if then else f"{note}: {line.strip()[-90:]}"
            return None
        return then(line) if then else None

    return trigger


def on_path(home: Path, pattern: str, note: str, after: float | None = None) -> Trigger:
    """Fire when a path matching `pattern` (a glob under home) appears, newer than `after`."""
    after = time.time() if after is None else after

    def trigger(line: str | None) -> str | None:
        if line is not None:
            return None
        for p in home.glob(pattern):
            try:
                if p.stat().st_mtime >= after:
                    return f"{note}: {p.relative_to(home)}"
            except FileNotFoundError:  # renamed away between glob and stat
                continue
        return None

    return trigger


def reading_raw(home: Path, pid_box: list[int], note: str) -> Trigger:
    """Fire while a process of the run has a raw file open (the ingest parsing it)."""
    import psutil

    raw = str(home / "raw") + os.sep

    def trigger(line: str | None) -> str | None:
        if line is not None or not pid_box:
            return None
        try:
            root = psutil.Process(pid_box[0])
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        for p in procs:
            try:
                for f in p.open_files():
                    if f.path.startswith(raw) and "wait_times" in f.path:
                        return f"{note}: {f.path[len(raw):]}"
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return None

    return trigger


def writer_lock_held(home: Path) -> bool:
    """Whether some process holds the warehouse writer's file lock now."""
    path = home / "warehouse.write.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def when_writing(home: Path, note: str) -> Trigger:
    def trigger(line: str | None) -> str | None:
        return note if line is None and writer_lock_held(home) else None
    return trigger


# --- what a reader would be served -------------------------------------------------------------

def unservable_files(home: Path) -> list[str]:
    """Curve files a reader would pick up that do not open, and current models that do not
    load: each one a half-written file served."""
    import pyarrow.parquet as pq

    from bambam_assets.lib.models import registry

    bad = []
    for kind in ("forecasts", "backfill"):
        for f in (home / kind).glob("entity_code=*/*.parquet"):
            try:
                pq.read_table(f)
            except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
                bad.append(f"{f.relative_to(home)}: {exc}")
    models = home / "models"
    for current in models.glob("*/CURRENT"):
        entity = current.parent.name
        try:
            version = registry.current_version(models, entity)
            if version is None:
                bad.append(f"models/{entity}: CURRENT names no complete version")
                continue
            registry.load_model(models, entity, version)
        except Exception as exc:  # noqa: BLE001
            bad.append(f"models/{entity}: {exc}")
    return bad


def leftovers(home: Path) -> list[str]:
    """Temp files and folders a killed writer left (hidden; never served, removed later)."""
    found = []
    for pattern in ("forecasts/*/.*.tmp", "backfill/*/.*.tmp", "models/*/.tmp-*",
                    "models/*/CURRENT.tmp"):
        found += [str(p.relative_to(home)) for p in home.glob(pattern)]
    return sorted(found)


def copy_raw(template: Path, home: Path) -> None:
    shutil.copytree(template, home / "raw", dirs_exist_ok=True)

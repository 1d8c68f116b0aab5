"""progress.json: concurrent writers lose nothing; a writer killed mid-step reads "interrupted"."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

from bambam_assets.lib.core import progress as progress_module
from bambam_assets.lib.core.progress import (
    StepProgress,
    is_milestone,
    read_progress,
    write_progress,
)


class _SlowJson:
    """json whose dump takes 2 ms: widens the window between a writer's read and its replace,
    so that writers without the lock would overwrite each other's step on every run."""

    loads = staticmethod(json.loads)
    JSONDecodeError = json.JSONDecodeError

    @staticmethod
    def dump(obj, fh) -> None:
        time.sleep(0.002)
        json.dump(obj, fh)


def _write_many(home: str, step: str, n: int) -> None:
    progress_module.json = _SlowJson
    for i in range(1, n + 1):
        write_progress(Path(home), run_id=f"run-{step}", step=step, done=i, total=n,
                       state="done" if i == n else "running")


def _start_and_hang(home: str, ready) -> None:
    StepProgress(Path(home), "run-1", "forecast", total=10).advance("MK1")
    ready.set()
    time.sleep(60)


def test_concurrent_writers_keep_every_step(tmp_path: Path) -> None:
    # two runs' steps updating at once: without the lock one read-modify-write drops the other's
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), step, 100))
             for step in ("entity_model", "entity_forecast")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    doc = read_progress(tmp_path)
    assert {s: (d["done"], d["state"]) for s, d in doc["steps"].items()} == {
        "entity_model": (100, "done"), "entity_forecast": (100, "done")}


def test_a_step_whose_writer_was_killed_reads_interrupted(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_start_and_hang, args=(str(tmp_path), ready))
    p.start()
    assert ready.wait(30)
    assert read_progress(tmp_path)["steps"]["forecast"]["state"] == "running"
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    step = read_progress(tmp_path)["steps"]["forecast"]
    assert step["state"] == "interrupted" and step["done"] == 1
    # this process's own running step stays running
    StepProgress(tmp_path, "run-2", "backfill", total=3)
    assert read_progress(tmp_path)["steps"]["backfill"]["state"] == "running"


def test_milestones_are_the_first_each_tenth_and_the_last() -> None:
    marks = [k for k in range(1, 1695) if is_milestone(k, 1694)]
    assert marks[0] == 1 and marks[-1] == 1694
    assert len(marks) == 12  # 1, 169, 338, ..., 1690, 1694
    assert all(is_milestone(k, 3) for k in (1, 2, 3))  # a few items: every one

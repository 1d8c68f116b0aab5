"""Two steps of the full-scale daily run alone, each side by side with its old way (issue 13).

    python -m bench.daily_steps_probe backfill HOME FIRST [--rounds N]
    python -m bench.daily_steps_probe training HOME FIRST [--rounds N]

HOME is the home a daily phase kept (`bench.full_bench --phases daily --from-first FIRST_DIR
--keep-home`, as of D = its workload's last day); FIRST is the saved first run's home
(FIRST_DIR/home), as of D-1. Variants alternate within each round; every run starts from the
same state.

- `backfill`: HOME's backfill files are replaced by FIRST's (as of D-1), then
  `backfill.run_backfill` as of D over every entity: each entity's new day, all read in one
  chunk, run as ONE worker task (the old way) or split into tasks of `TASK_ENTITIES` (now).
  HOME's backfill files are left as of D again.
- `training`: the entities the daily run trained (a newer version in HOME than in FIRST),
  FIRST's models copied to a scratch folder and made 25 hours old (as the bench does), the
  rows read once from HOME's warehouse as `entity_model` reads them; `train_batch` in-process
  (`workers=1`: what the old rule chose for this batch, counting only full retrains' target
  rows) or as the rule now plans it (`workers=None`). HOME is not changed.

Prints wall time, the CPU seconds of the pool workers (descendants; 0 in-process) and the
machine's busy share per run (bench.full_bench.Monitor).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.forecasts import backfill
from bambam_assets.lib.models import batch as tb
from bambam_assets.lib.models import incremental
from bambam_assets.lib.models.features import (
    build_posted_frame,
    build_training_frame,
    target_counts,
)
from bench.daily_bench import backdate_model_files
from bench.full_bench import Monitor


def _as_of(home: Path) -> date:
    with wh.reader(home) as conn:
        return conn.execute("SELECT max(park_date) FROM fct_wait_times").fetchone()[0]


def _order(r: int, variants: list) -> list:
    return variants if r % 2 == 0 else variants[::-1]


def probe_backfill(home: Path, first: Path, rounds: int) -> None:
    day = _as_of(home)
    dst, src = HomePaths(home).curves("backfill"), HomePaths(first).curves("backfill")
    with wh.reader(home) as conn:
        codes = [r[0] for r in conn.execute(
            "SELECT DISTINCT entity_code FROM fct_wait_times ORDER BY 1").fetchall()]
    print(f"backfill as of {day}, {len(codes)} entities", flush=True)
    for r in range(rounds):
        for label, size in _order(r, [("one task", 10**9),
                                      (f"{backfill.TASK_ENTITIES} a task",
                                       backfill.TASK_ENTITIES)]):
            shutil.rmtree(dst)
            shutil.copytree(src, dst)
            saved, backfill.TASK_ENTITIES = backfill.TASK_ENTITIES, size
            try:
                with Monitor(home) as mon:
                    started = time.perf_counter()
                    res = backfill.run_backfill(lambda: wh.reader(home), home, codes, day)
                    wall = time.perf_counter() - started
            finally:
                backfill.TASK_ENTITIES = saved
            print(f"round {r} {label}: {wall:.1f} s wall, "
                  f"{mon.tree_cpu_seconds:.0f} CPU s of workers, "
                  f"machine {mon.machine_busy_pct:.0f} % busy, "
                  f"{sum(x.days_computed for x in res)} days computed, "
                  f"{sum(bool(x.error) for x in res)} errors", flush=True)


def _restore_models(src: Path, dst: Path, hours: float = 25.0) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    backdate_model_files(dst, hours)


def _versions(root: Path) -> dict[str, int]:
    return {p.name: max(int(v.name[1:]) for v in p.glob("v*"))
            for p in root.iterdir() if p.is_dir() and any(p.glob("v*"))}


def probe_training(home: Path, first: Path, rounds: int) -> None:
    day = _as_of(home)
    src = HomePaths(first).models
    before, after = _versions(src), _versions(HomePaths(home).models)
    trained = {c for c, v in after.items() if v != before.get(c)}
    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        scratch = Path(tmp) / "models"
        _restore_models(src, scratch)
        with wh.reader(home) as conn:  # as entity_model reads them
            tc = target_counts(conn, day)
            counts = {c: int(n) for c, n in zip(tc["entity_code"], tc["target_count"],
                                                strict=True) if c in trained}
            keys = sorted(counts)
            planned = tb.plan_modes(scratch, counts, "auto", datetime.now(UTC))
            tails = [c for c, (m, _) in planned.items() if m == incremental.INCREMENTAL]
            frame = build_training_frame(
                conn, keys, day, tail_entities=tails,
                tail_rows=incremental.IncrementalPolicy().min_window_rows)
            posted = build_posted_frame(conn, [k for k in keys if k not in set(tails)], day)
            queue_types = dict(conn.execute(
                "SELECT entity_code, queue_type FROM dim_entity").fetchall())
        print(f"training as of {day}: {len(keys)} entities, {len(tails)} incremental, "
              f"{len(frame):,} target rows, {len(posted):,} POSTED rows", flush=True)
        for r in range(rounds):
            for label, workers in _order(r, [("in-process", 1), ("planned", None)]):
                _restore_models(src, scratch)
                with Monitor(scratch) as mon:
                    started = time.perf_counter()
                    res = tb.train_batch(frame, keys, queue_types, scratch, workers=workers,
                                         mode="auto", target_counts=counts,
                                         tail_entities=tails, plan=planned,
                                         posted_frame=posted)
                    wall = time.perf_counter() - started
                print(f"round {r} {label}: {wall:.1f} s wall, "
                      f"{mon.tree_cpu_seconds:.0f} CPU s of workers, "
                      f"machine {mon.machine_busy_pct:.0f} % busy, {res.workers} workers x "
                      f"{res.nthread} threads, {len(res.outcomes)} saved, "
                      f"{len(res.failures)} failed", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["backfill", "training"])
    ap.add_argument("home", type=Path)
    ap.add_argument("first", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    probe = probe_backfill if args.step == "backfill" else probe_training
    probe(args.home, args.first, args.rounds)


if __name__ == "__main__":  # the pools' forkserver children import this module: no work here
    main()

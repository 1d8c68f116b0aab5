"""Does the training pool keep every core busy? Train one home's entities in full, from frames
read once (as the entity_model step does), and sample the machine's CPU use while it runs.

    python -m bench.train_pool_probe HOME AS_OF [--repeat N] [--ahead 0,2]

HOME is a Bambam home with a warehouse (any `bambam run` left it); nothing in it is changed:
the models go to a scratch folder. Prints, per run: wall time, workers x threads, and the
machine's busy share over the pool's run (bench.full_bench.Monitor: user + system, all cores,
sampled every second). `--ahead` runs the pool with that many tasks queued beyond the workers
(lib.core.process_pool.run_pool's `ahead`; the step uses 0), alternating the order between
repetitions.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from bambam_assets.lib.core import process_pool
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.models import batch, incremental, worker_pool
from bambam_assets.lib.models.features import build_posted_frame, build_training_frame
from bench.full_bench import Monitor


def train_once(frames, models_root: Path, ahead: int) -> dict:
    frame, keys, queue_types, posted = frames

    def run_pool(fn, items, workers, on_result, ahead_=0):  # batch calls it without `ahead`
        return process_pool.run_pool(fn, items, workers, on_result, ahead=ahead)

    original = worker_pool.run_pool
    worker_pool.run_pool = run_pool
    shutil.rmtree(models_root, ignore_errors=True)
    try:
        with Monitor(models_root.parent) as mon:
            started = time.perf_counter()
            result = batch.train_batch(frame, keys, queue_types, models_root,
                                       mode=incremental.FULL, posted_frame=posted,
                                       now=datetime.now(UTC))
            wall = time.perf_counter() - started
    finally:
        worker_pool.run_pool = original
    return {"ahead": ahead, "wall": wall, "workers": result.workers, "nthread": result.nthread,
            "busy": mon.machine_busy_pct,
            "failures": len(result.failures)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("as_of", type=date.fromisoformat)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--ahead", default="0", help="comma-separated values of run_pool's ahead")
    args = ap.parse_args()
    aheads = [int(a) for a in args.ahead.split(",")]
    conn = duckdb.connect(str(HomePaths(args.home).warehouse), read_only=True)
    try:
        keys = [k for (k,) in conn.execute(
            "SELECT entity_code FROM entity_index ORDER BY 1").fetchall()]
        frames = (build_training_frame(conn, keys, args.as_of), keys,
                  dict(conn.execute("SELECT entity_code, queue_type FROM dim_entity").fetchall()),
                  build_posted_frame(conn, keys, args.as_of))
    finally:
        conn.close()
    print(f"{len(keys)} entities, {len(frames[0]):,} target rows", flush=True)
    with tempfile.TemporaryDirectory(prefix="train_pool_probe_") as scratch:
        for rep in range(args.repeat):
            for ahead in (aheads if rep % 2 == 0 else aheads[::-1]):
                r = train_once(frames, Path(scratch) / "models", ahead)
                print(f"ahead={r['ahead']}: wall {r['wall']:.1f} s, {r['workers']} workers x "
                      f"{r['nthread']} threads, machine busy {r['busy']:.0f} %, "
                      f"failures {r['failures']}", flush=True)


if __name__ == "__main__":
    main()

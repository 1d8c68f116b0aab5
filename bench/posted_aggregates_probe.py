"""Time the `posted_aggregates` build of two code trees on one home, alternating.

    .venv/bin/python -m bench.posted_aggregates_probe OLD_TREE HOME AS_OF [--rounds N]

OLD_TREE is a checkout of another commit (`git worktree add /tmp/old COMMIT`); the new side is
this repository's `bambam_assets/lib/forecasts/posted_aggregates.py`. Each round copies HOME's
warehouse to a scratch folder beside it (the source is only read), then builds the table there
with the old module and with the new one, in that order or the reverse on odd rounds, through
`warehouse.writer` (the pipeline's DuckDB memory limit and temp directory). Per build: wall
seconds, the peak RSS of this process and the peak size of the DuckDB temp directory (sampled by
`full_bench.Monitor`), and the table's rows. Only the module file is loaded from OLD_TREE (it
imports the rest from this repository), so the two differ by exactly that file.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import time
from datetime import date
from pathlib import Path

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.paths import HomePaths
from bench.full_bench import Monitor

MODULE = Path("bambam_assets/lib/forecasts/posted_aggregates.py")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_once(module, home: Path, as_of: date) -> dict:
    with Monitor(home / warehouse.TEMP_DIR, rss_every=0.1, disk_every=0.1,
                 with_self=True) as mon:
        started = time.perf_counter()
        with warehouse.writer(home) as conn:
            counts = module.build_posted_aggregates(conn, as_of)
        wall = time.perf_counter() - started
    return {"wall": round(wall, 2), "peak_rss_gb": round(mon.peak_rss / 2**30, 2),
            "peak_temp_gb": round(mon.peak_disk / 2**30, 3), "rows": sum(counts.values())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_tree", type=Path)
    ap.add_argument("home", type=Path)
    ap.add_argument("as_of", type=date.fromisoformat)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    sides = {"old": _load(args.old_tree / MODULE, "posted_aggregates_old"),
             "new": _load(Path(__file__).resolve().parents[1] / MODULE, "posted_aggregates_new")}
    source = HomePaths(args.home).warehouse
    scratch = args.home.parent / f"{args.home.name}_pa_probe"
    results: dict[str, list[dict]] = {"old": [], "new": []}
    for i in range(args.rounds):
        for side in (("old", "new") if i % 2 == 0 else ("new", "old")):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            shutil.copy2(source, HomePaths(scratch).warehouse)
            res = build_once(sides[side], scratch, args.as_of)
            results[side].append(res)
            print(f"round {i + 1} {side}: {res}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    for side, runs in results.items():
        print(f"{side}: median wall {statistics.median(r['wall'] for r in runs):.2f} s, "
              f"peak RSS {max(r['peak_rss_gb'] for r in runs):.2f} GB, peak temp "
              f"{max(r['peak_temp_gb'] for r in runs):.3f} GB, rows {runs[0]['rows']:,}")
    return results


if __name__ == "__main__":
    main()

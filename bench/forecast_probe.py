"""The daily run's forecast step alone, several code trees side by side (issue 13).

    .venv/bin/python -m bench.forecast_probe HOME FIRST TREE [TREE ...] [--rounds N]

HOME is the home a daily phase kept (`bench.full_bench --phases daily --from-first DIR
--keep-home`, as of D = the workload's last day); FIRST is the saved first run's home
(DIR/home, as of D-1). The entities that matter are those the daily run retrained (a newer
CURRENT version in HOME than in FIRST: the critical tier, mostly incremental updates).

Set-up, once: those entities' FIRST versions are made current again (`registry.rollback`),
their forecast files are written as of D by the LAST tree (`recompute_all`: what the week's
earlier forecast left, by the code under test), then the daily run's versions are made current
again and the forecast folder is copied aside. Each run restores the retrained entities' files
from that copy and runs `forecast.run_forecast` over every entity as of D (the others are
UNCHANGED, as in the daily run) in a fresh process with one tree on PYTHONPATH, sampled by
`full_bench.Monitor` (the process and its pool workers). Trees alternate within each round, in
reverse order on odd rounds. Prints per run: wall seconds, CPU seconds of the process tree,
peak RSS, the files written and how many kept their POSTED column.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.models import registry
from bench.full_bench import Monitor

CHILD = """
import json, sys
from datetime import date
from pathlib import Path
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.forecasts import forecast
home, as_of, recompute = Path(sys.argv[1]), date.fromisoformat(sys.argv[2]), sys.argv[3] == "1"
with warehouse.reader(home) as conn:
    codes = [c for (c,) in conn.execute(
        "SELECT DISTINCT entity_code FROM fct_wait_times ORDER BY 1").fetchall()]
if len(sys.argv) > 4:  # the set-up: only these entities
    codes = [c for c in codes if c in set(sys.argv[4].split(","))]
out = forecast.run_forecast(lambda: warehouse.reader(home), home, codes, as_of,
                            recompute_all=recompute)
written = [r for r in out if r.mode in (forecast.MODEL, forecast.POSTED_ONLY)]
print(json.dumps({"written": len(written), "failed": sum(r.mode == forecast.FAILED for r in out),
                  "posted_kept": sum(any("posted_predicted kept" in n for n in r.notes)
                                     for r in written)}))
"""


def retrained(home: Path, first: Path) -> dict[str, tuple[int, int]]:
    """entity -> (FIRST's current version, HOME's) for every entity HOME has a newer one of."""
    out = {}
    for d in sorted(HomePaths(home).models.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        new = registry.current_version(HomePaths(home).models, d.name)
        old = registry.current_version(HomePaths(first).models, d.name)
        if new is not None and old is not None and new > old:
            out[d.name] = (old, new)
    return out


def run_tree(tree: Path, home: Path, as_of: date, recompute: bool,
             only: list[str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with Monitor(home / "probe_monitor") as mon:  # an empty folder: no walk of the home
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(home), str(as_of),
                               "1" if recompute else "0", *([",".join(only)] if only else [])],
                              cwd=tree, env=env,
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": round(wall, 1), "cpu": round(mon.tree_cpu_seconds, 1),
            "peak_rss_gb": round(mon.peak_rss / 2**30, 2), **res}


def restore(snapshot: Path, forecasts: Path, codes: list[str]) -> None:
    for code in codes:
        name = f"entity_code={code}"
        shutil.rmtree(forecasts / name, ignore_errors=True)
        shutil.copytree(snapshot / name, forecasts / name)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home", type=Path)
    ap.add_argument("first", type=Path)
    ap.add_argument("trees", type=Path, nargs="+")
    ap.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 12, 31))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    home, models = args.home, HomePaths(args.home).models
    (home / "probe_monitor").mkdir(exist_ok=True)
    versions = retrained(home, args.first)
    codes = sorted(versions)
    print(f"{len(codes)} entities retrained by the daily run", flush=True)
    for code, (old, _new) in versions.items():
        registry.rollback(models, code, old)
    print("set-up forecast:", run_tree(args.trees[-1], home, args.as_of, True, codes),
          flush=True)
    for code, (_old, new) in versions.items():
        registry.rollback(models, code, new)
    forecasts = HomePaths(home).curves(FORECASTS_DIR)
    snapshot = home.parent / f"{home.name}_forecast_probe"
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(forecasts, snapshot)
    results: dict[str, list[dict]] = {str(t): [] for t in args.trees}
    for i in range(args.rounds):
        for tree in (args.trees if i % 2 == 0 else list(reversed(args.trees))):
            restore(snapshot, forecasts, codes)
            res = run_tree(tree, home, args.as_of, False)
            results[str(tree)].append(res)
            print(f"round {i + 1} {tree}: {res}", flush=True)
    restore(snapshot, forecasts, codes)
    shutil.rmtree(snapshot, ignore_errors=True)
    for tree, runs in results.items():
        print(f"{tree}: median wall {statistics.median(r['wall'] for r in runs):.1f} s, "
              f"median CPU {statistics.median(r['cpu'] for r in runs):.1f} s, peak RSS "
              f"{max(r['peak_rss_gb'] for r in runs):.2f} GB")
    return results


if __name__ == "__main__":
    main()

"""Prime a copy of a saved first-run state (`bench.full_bench --save-first DIR`) with one
`bambam run` as of the first run's day D-1, with the code on PYTHONPATH, and save the result.

Two code trees are compared on one saved first run (`--from-first`). When the newer tree
changes what a run writes (a new forecast fingerprint, say), its first daily run would also
redo what the first run wrote the old way, once: not what a day costs in steady state. Settling
each tree's copy with its own code first (the old tree's run is a no-op) makes both daily runs
start from their own steady state:

    PYTHONPATH=OLD python -m bench.settle_first W/first W/first_old --work W
    PYTHONPATH=NEW python -m bench.settle_first W/first W/first_new --work W
    PYTHONPATH=OLD python -m bench.full_bench --phases daily --from-first W/first_old --work W
    PYTHONPATH=NEW python -m bench.full_bench --phases daily --from-first W/first_new --work W
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

from bench.bambam_side import run_bambam
from bench.full_bench import Size, restore_first, save_first


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", type=Path, help="the saved first run (--save-first DIR)")
    ap.add_argument("out", type=Path, help="where the settled copy is saved")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bambam_full_bench"))
    ap.add_argument("--years", type=int, default=1)
    ap.add_argument("--entities-per-park", type=int, default=121)
    args = ap.parse_args(argv)
    size = Size(args.years, args.entities_per_park)
    home, raw = args.work / f"home_{size.name}", args.work / f"raw_history_{size.name}"
    restore_first(args.first, home, raw)
    started = time.perf_counter()
    res = run_bambam(raw, home, size.end - timedelta(days=1), selection="all", fresh=False,
                     name="settle")
    steps = {k: round(v, 1) for k, v in res.child.get("steps", {}).items() if v >= 1}
    print(f"settle run: {time.perf_counter() - started:.1f} s; steps {steps}")
    save_first(args.out, home, raw)


if __name__ == "__main__":
    main()

"""The fault table: every fault of bench/faults/scenarios.py, N times each, as markdown.

    .venv/bin/python -m bench.fault_table                      # every fault once
    .venv/bin/python -m bench.fault_table --repeat 3 --out bench/results/fault_table.md
    .venv/bin/python -m bench.fault_table --only kill_ingest,s3_slow

Demo raw files (one park, 3 entities, 2024-01..06, as of 2024-06-30) are generated once; a clean
run over them is the reference; each fault runs on a fresh home from the same files, then the home
is run again without the fault and compared with the reference (fact rows lost and duplicated,
and every table's and curve file's row count and content hash). The S3 faults use a real moto
server behind a fault-injecting proxy. A fault passes when nothing was lost, duplicated or
changed, no half-written file was servable, and the rerun succeeded. The bad input scenarios
(bench/faults/bad_input.py) also account for what the damage should cost: the damaged lines
rejected with their line numbers, their facts (and only theirs) absent, before the good file
arrives and the home must equal the reference.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.faults import bad_input  # noqa: E402
from bench.faults import scenarios as sc  # noqa: E402

# Every scenario: the faults, then the bad input files (bench/faults/bad_input.py).
SCENARIOS = {**sc.SCENARIOS, **bad_input.SCENARIOS}


def make_raw(folder: Path, entities: int = 3) -> Path:
    from bambam_assets.lib.demo import generate

    raw = folder / "raw"
    generate.generate(raw, ["MK"], entities, date(2024, 1, 1), date(2024, 6, 30), seed=7)
    return raw


def context(work: Path, s3: bool) -> sc.Context:
    from bench.faults.s3_proxy import start_moto

    ctx = sc.Context(work=work, raw=make_raw(work), clean=work / "clean",
                     s3_endpoint=start_moto() if s3 else None)
    sc.build_clean(ctx)
    return ctx


def row(fault: str, outcomes: list[sc.Outcome]) -> str:
    n = len(outcomes)
    passed = sum(o.ok for o in outcomes)
    lost = sum(o.lost for o in outcomes)
    extra = sum(o.extra for o in outcomes)
    diffs = sorted({d for o in outcomes for d in o.differences})
    bad = sorted({b for o in outcomes for b in o.served_bad})
    last = outcomes[-1]
    notes = sorted({f"check failed: {x}" for o in outcomes for x in o.failed_checks})
    notes += sorted({x for o in outcomes for x in o.notes})
    accounted = sorted({o.accounted for o in outcomes})
    cell = lambda xs: "; ".join(xs).replace("|", "/").replace("\n", " ") or "none"  # noqa: E731
    return (f"| {fault} | {n} | {cell([last.injected])} | {cell([last.fault_run])} | {lost} | "
            f"{extra} | {cell(accounted)} | {cell(diffs)} | {cell(bad)} | "
            f"{sum(o.rerun_ok for o in outcomes)} of {n} | {passed} of {n} | {cell(notes)} |")


HEADER = ("| fault | times | injected | the faulted run | fact rows lost | duplicates | "
          "bad input rejected or held back as expected | "
          "tables or files differing from the clean run | half-written or unloadable files "
          "served | rerun succeeded | passed | notes |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bambam-faults-"))
    started = time.perf_counter()
    ctx = context(work, s3=any(n in sc.S3_SCENARIOS for n in names))
    lines = [HEADER]
    failed = 0
    for name in names:
        outcomes = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            o = SCENARIOS[name](ctx)
            outcomes.append(o)
            print(f"{name} #{i + 1}: {'pass' if o.ok else 'FAIL'} "
                  f"({time.perf_counter() - t0:.0f} s) {o.fault_run[:100]}",
                  file=sys.stderr, flush=True)
        failed += sum(not o.ok for o in outcomes)
        lines.append(row(outcomes[0].fault, outcomes))
    clean_rows = ctx.clean_digest["table fct_wait_times"].rows
    lines.append("")
    lines.append(f"Reference: one clean run over the same raw files ({clean_rows:,} facts, "
                 f"{len(ctx.clean_digest)} tables and curve files hashed); "
                 f"{time.perf_counter() - started:.0f} s in all.")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

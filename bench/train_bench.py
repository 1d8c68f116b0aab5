"""Training benchmark of issue 4: the legacy way against Bambam, same workload, same machine.

    python -m bench.train_bench                      # --preset default (4-10 min on two cores)
    python -m bench.train_bench --parks MK,EP --entities-per-park 4 --start 2024-01-01 \\
        --end 2024-12-31 --repeat 3
    python -m bench.train_bench --preset legacy-full --legacy-sample 20   # hours: see README
    python -m bench.train_bench --mode daily          # the daily-run benchmark (bench.daily_bench)

One run: generate the workload (bench.workloads), then (b) Bambam, a fresh BAMBAM_HOME and
`run_pipeline` (bench.bambam_side), and (a) the legacy way: its clean fact tables written from
that home (bench.legacy_base, not timed), then one fresh `python -m bench.legacy_train` process
per entity the legacy batch selects (>= 500 targets, bench.legacy_index), sequentially
(bench.legacy_side). Prints wall times, their
ratio, mean test MAE of both over the same entities, and Dagster's overhead; writes
bench/out/train_bench_{ts}.json. The pieces (generate_workload, run_legacy, run_bambam, compare)
live in those modules so that other modes (bench.daily_bench) reuse them without importing this
one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import date, datetime
from pathlib import Path

from bench.bambam_side import run_bambam
from bench.legacy_side import prepare_legacy, run_legacy
from bench.report import OUT_DIR, compare, print_report, summarize
from bench.workloads import (
    DAILY_PRESETS,
    PRESETS,
    Workload,
    generate_workload,
    sample_entities,
    workload_entities,
)


def one_repetition(raw: Path, work: Path, w: Workload, legacy_sample: int | None,
                   skip_legacy: bool, profile: bool, rep: int, log=print) -> dict:
    home = work / f"bambam_home_{rep}"
    prof = OUT_DIR / f"bambam_profile_{rep}.prof" if profile else None
    bambam = run_bambam(raw, home, w.end, profile=prof, log=log)
    log(f"bambam: {bambam.wall:.1f}s wall (entity_model step "
        f"{bambam.child['steps'].get('entity_model', float('nan')):.1f}s)")
    legacy = None
    if not skip_legacy:
        # the legacy's clean fact tables and index from the home Bambam just built (not timed);
        # its batch trains only the entities with >= 500 targets (the index query)
        setup = prepare_legacy(home, work / f"legacy_base_{rep}", w.end, log=log)
        chosen = sample_entities(setup.selected, legacy_sample)
        legacy = run_legacy(setup.base, chosen, w.end, entities_total=len(setup.selected),
                            log=log)
    return compare(legacy, bambam)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.train_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("train", "daily"), default="train",
                    help="train: full training, legacy vs Bambam (issue 4); daily: one new day, "
                    "the legacy daily run vs Bambam's smart daily run (issue 5)")
    ap.add_argument("--preset", choices=sorted(set(PRESETS) | set(DAILY_PRESETS)),
                    default="default", help="train mode: default, legacy-full; daily mode: "
                    "default (mixed tiers), critical, legacy-full")
    ap.add_argument("--selection", choices=("training", "all"), default="training",
                    help="daily mode: Bambam's assets: training = ingest, dimensions and "
                    "entity_model (the daily schedule + retrain sensor); all = also forecasts, "
                    "backfill and WTI")
    ap.add_argument("--backdate-hours", type=float, default=None,
                    help="daily mode: how far back the setup run's models are moved (the setup "
                    "run 'happened yesterday'; see README)")
    ap.add_argument("--parks", help="comma-separated park codes (overrides the preset)")
    ap.add_argument("--entities-per-park", type=int)
    ap.add_argument("--start", type=date.fromisoformat)
    ap.add_argument("--end", type=date.fromisoformat, help="also the as-of date of both sides "
                    "(daily mode: the new day D; the history ends on D-1)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--repeat", type=int, default=1, help="repetitions (medians reported)")
    ap.add_argument("--legacy-sample", type=int, default=-1,
                    help="run the legacy on N entities spread over the workload and extrapolate "
                    "its wall time (default: the preset's; 0 = every entity)")
    ap.add_argument("--skip-legacy", action="store_true", help="Bambam side only")
    ap.add_argument("--full-day", action="store_true",
                    help="daily mode: also time Bambam's weekly full-retrain day "
                    "(BAMBAM_TRAIN_MODE=full) next to the typical day")
    ap.add_argument("--raw", type=Path, help="reuse an existing workload folder (no generation; "
                    "daily mode: a workload generated over [start, D], cut here into history + "
                    "day D)")
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--profile-bambam", action="store_true",
                    help="run Bambam under cProfile (bench/out/bambam_profile_N.prof); slower")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = _parse_args(argv)
    if args.mode == "daily":
        return _main_daily(args)
    if args.preset not in PRESETS:
        raise SystemExit(f"preset {args.preset!r} is a daily-mode preset (add --mode daily)")
    w, preset_sample = PRESETS[args.preset]
    overrides = {k: v for k, v in {
        "parks": tuple(p.strip().upper() for p in args.parks.split(",")) if args.parks else None,
        "entities_per_park": args.entities_per_park, "start": args.start, "end": args.end,
        "seed": args.seed}.items() if v is not None}
    w = replace(w, **overrides)
    legacy_sample = preset_sample if args.legacy_sample < 0 else (args.legacy_sample or None)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bambam_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    report: dict = {"started_at": stamp, "preset": args.preset,
                    "workload": asdict(w) | {"start": w.start.isoformat(),
                                             "end": w.end.isoformat()},
                    "legacy_sample": legacy_sample, "repeat": args.repeat, "workdir": str(work),
                    "python": sys.version.split()[0]}
    try:
        raw = args.raw
        if raw is None:
            raw = work / "raw"
            report["generated"] = generate_workload(raw, w)
        entities = workload_entities(raw)
        print(f"{len(entities)} entities; as-of {w.end}")
        reps = []
        for rep in range(1, args.repeat + 1):
            print(f"--- repetition {rep} of {args.repeat}")
            reps.append(one_repetition(raw, work, w, legacy_sample, args.skip_legacy,
                                       args.profile_bambam, rep))
        report["repetitions"] = reps
        report["summary"] = summarize(reps)
        out = OUT_DIR / f"train_bench_{stamp}.json"
        out.write_text(json.dumps(report, indent=1, default=str))
        print_report(report["summary"], len(reps))
        print(f"written {out}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _overrides(args: argparse.Namespace) -> dict:
    return {k: v for k, v in {
        "parks": tuple(p.strip().upper() for p in args.parks.split(",")) if args.parks else None,
        "entities_per_park": args.entities_per_park, "start": args.start, "end": args.end,
        "seed": args.seed}.items() if v is not None}


def _main_daily(args: argparse.Namespace) -> dict:
    """--mode daily: bench.daily_bench.run_daily with the preset and overrides."""
    from bench.daily_bench import BACKDATE_HOURS, run_daily

    if args.preset not in DAILY_PRESETS:
        raise SystemExit(f"preset {args.preset!r} is not a daily-mode preset")
    w, preset_sample = DAILY_PRESETS[args.preset]
    w = replace(w, **_overrides(args))
    legacy_sample = preset_sample if args.legacy_sample < 0 else (args.legacy_sample or None)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bambam_daily_"))
    work.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    try:
        return run_daily(w, args.preset, work, legacy_sample, args.repeat, args.skip_legacy,
                         args.selection, stamp, full=args.raw,
                         backdate_hours=BACKDATE_HOURS if args.backdate_hours is None
                         else args.backdate_hours, full_day=args.full_day)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

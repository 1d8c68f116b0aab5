"""Training benchmark of issue 4: the legacy way against Bambam, same workload, same machine.

    python -m bench.train_bench                      # --preset default (4-10 min on two cores)
    python -m bench.train_bench --parks MK,EP --entities-per-park 4 --start 2024-01-01 \\
        --end 2024-12-31 --repeat 3
    python -m bench.train_bench --preset legacy-full --legacy-sample 20   # hours: see README
    python -m bench.train_bench --mode daily          # the daily-run benchmark (bench.daily_bench)

One run: generate the workload (demo_data.generate), then (a) the legacy way, one fresh
`python -m bench.legacy_train` process per entity, sequentially, and (b) Bambam, a fresh
BAMBAM_HOME and `run_pipeline` (bench.bambam_side). Prints wall times, their ratio, mean test MAE
of both over the same entities, and Dagster's overhead; writes bench/out/train_bench_{ts}.json.
The pieces (generate_workload, run_legacy, run_bambam, compare) are separate functions so that
other modes (e.g. a daily incremental run) can reuse them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from bench.bambam_side import REPO, run_bambam
from bench.report import compare, print_report, summarize

OUT_DIR = REPO / "bench" / "out"
LEGACY_TIMEOUT = 3600  # seconds per entity, as the legacy batch


@dataclass(frozen=True)
class Workload:
    parks: tuple[str, ...]
    entities_per_park: int
    start: date
    end: date
    seed: int = 42


ALL_PARKS = ("MK", "EP", "HS", "AK", "BB", "TL", "DL", "CA", "UF", "IA", "EU", "USH", "TDL", "TDS")
PRESETS: dict[str, tuple[Workload, int | None]] = {
    # (workload, legacy sample size; None = every entity)
    # 48 entities over two years (4 WDW parks, so each legacy process rescans the whole wdw
    # property). Bambam's fixed cost (imports, fresh instance, dimensions: ~10-15 s) is amortized
    # only with enough entities: with 16 entities the speedup was 9.3x (see README).
    "default": (Workload(("MK", "EP", "HS", "AK"), 12, date(2024, 1, 1), date(2025, 12, 31)), None),
    # 14 parks x 121 = 1,694 entities over 14 years: the legacy's scale. Never run in full.
    "legacy-full": (Workload(ALL_PARKS, 121, date(2012, 1, 1), date(2025, 12, 31)), 20),
}


@dataclass
class LegacyResult:
    wall: float  # seconds for the entities actually run
    records: dict[str, dict] = field(default_factory=dict)  # entity -> legacy_train JSON + wall
    failures: dict[str, str] = field(default_factory=dict)
    entities_total: int = 0  # entities of the workload (the sample may be smaller)

    @property
    def wall_estimated(self) -> float:
        """Wall time for every entity of the workload (extrapolated when a sample ran)."""
        n = len(self.records) + len(self.failures)
        return self.wall * self.entities_total / n if n else 0.0


def generate_workload(raw: Path, w: Workload, log=print) -> dict:
    """Write the workload's raw files under `raw`; returns the generator's summary + seconds."""
    from bambam_assets.lib.demo import generate as demo_data

    log(f"generating {len(w.parks)} parks x {w.entities_per_park} entities, {w.start}..{w.end} "
        f"into {raw}")
    t0 = time.perf_counter()
    # qt_days=0: no queue-times snapshots, so both sides read exactly the same TouringPlans files
    summary = demo_data.generate(raw, list(w.parks), w.entities_per_park, w.start, w.end,
                                 seed=w.seed, qt_days=0)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def workload_entities(raw: Path) -> list[str]:
    """Entity codes of the entities exports, in file order (park, then ordinal)."""
    import pandas as pd

    codes: list[str] = []
    for path in sorted((raw / "export" / "entities").glob("current_*_entities.csv")):
        codes += pd.read_csv(path, dtype=str)["code"].str.strip().str.upper().tolist()
    return codes


def sample_entities(entities: list[str], n: int | None) -> list[str]:
    """`n` entities spread evenly over the list (every entity when n is None or too large)."""
    if n is None or n >= len(entities):
        return list(entities)
    step = len(entities) / n
    return [entities[int(i * step)] for i in range(n)]


def run_legacy(raw: Path, entities: list[str], as_of: date, entities_total: int | None = None,
               log=print) -> LegacyResult:
    """The legacy batch: one fresh process per entity, one after the other."""
    result = LegacyResult(wall=0.0, entities_total=entities_total or len(entities))
    started = time.perf_counter()
    for k, code in enumerate(entities, 1):
        cmd = [sys.executable, "-m", "bench.legacy_train", "--raw", str(raw), "--entity", code,
               "--as-of", as_of.isoformat()]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  timeout=LEGACY_TIMEOUT)
        except subprocess.TimeoutExpired:
            result.failures[code] = f"timeout after {LEGACY_TIMEOUT}s"
            continue
        wall = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            result.failures[code] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"legacy {k}/{len(entities)} {code}: FAILED {result.failures[code]}")
            continue
        rec = json.loads(lines[-1]) | {"wall": round(wall, 3)}
        result.records[code] = rec
        log(f"legacy {k}/{len(entities)} {code}: {rec['kind']} {rec['targets']} targets, "
            f"{wall:.1f}s (load {rec['seconds_load']}s, train {rec['seconds_train']}s)")
    result.wall = time.perf_counter() - started
    return result


def one_repetition(raw: Path, work: Path, w: Workload, entities: list[str], legacy_sample: int | None,
                   skip_legacy: bool, profile: bool, rep: int, log=print) -> dict:
    home = work / f"bambam_home_{rep}"
    prof = OUT_DIR / f"bambam_profile_{rep}.prof" if profile else None
    bambam = run_bambam(raw, home, w.end, profile=prof, log=log)
    log(f"bambam: {bambam.wall:.1f}s wall (entity_model step "
        f"{bambam.child['steps'].get('entity_model', float('nan')):.1f}s)")
    legacy = None
    if not skip_legacy:
        chosen = sample_entities(entities, legacy_sample)
        legacy = run_legacy(raw, chosen, w.end, entities_total=len(entities), log=log)
    return compare(legacy, bambam)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.daily_bench import DAILY_PRESETS

    ap = argparse.ArgumentParser(prog="python -m bench.train_bench", description=__doc__.split("\n")[0])
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
                    "daily mode: a workload generated over [start, D], cut here into history + day D)")
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
                    "workload": asdict(w) | {"start": w.start.isoformat(), "end": w.end.isoformat()},
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
            reps.append(one_repetition(raw, work, w, entities, legacy_sample, args.skip_legacy,
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
    from bench.daily_bench import BACKDATE_HOURS, DAILY_PRESETS, run_daily

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

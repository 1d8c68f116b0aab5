"""The whole graph at the real entity count: 14 parks x 121 entities = 1,694, N years of history.

    python -m bench.full_bench --years 1                # first run, no-op, daily, full retrain
    python -m bench.full_bench --years 3 --phases first
    python -m bench.full_bench --years 1 --entities-per-park 20 --months 3   # a quick smoke size
    python -m bench.full_bench --years 1 --legacy-sample 20     # and the legacy's daily run and
                                                                # full retrain (sampled)
    python -m bench.full_bench --years 1 --work W --legacy-sample 20 \
        --bambam-report bench/out/full_14x121_1y_STAMP.json    # the legacy side alone, on the
                                                                # home a --keep-home run left in W

Phases, each one `bambam run` in a fresh process (bench.bambam_side) with every asset selected,
all on one home so that each starts from the state the one before left:

1. `first`: a new home, the raw source as it stood at the end of day D-1 (history), the defaults
   (730-day forecast horizon, the whole history backfilled);
2. `noop`: the same again: nothing new, nothing due (the models are minutes old);
3. `daily`: the models are first aged by 25 h (as if the first run had been yesterday's, so the
   critical tier is due by age as on a real day), then day D's raw files land (bench.new_day),
   the run as of D: ingest, due retrains, forecasts, backfill, WTI;
4. `full`: the weekly full retrain as of D: every entity retrained from scratch
   (`bambam run --retrain-all`), then everything downstream.

For each phase: wall time, CPU seconds of the process tree (the run and its pool workers),
peak memory of the process tree (RSS summed over the run and all its descendants, sampled every
0.25 s), peak size of the home on disk (warehouse, DuckDB temp files, models, curves, Dagster
instance; sampled every second), and each Dagster step's duration from the run's event log.

With `--legacy-sample N` (default 0: skipped), after the phases: the legacy's daily run as of D
(training of the entities with new rows and >= 500 targets, forecast of every entity of its
index) and its counterpart of the weekly full retrain (training of every entity with >= 500
targets), each timed on N entities and extrapolated (bench.legacy_full), on the clean fact
tables written from the home's warehouse (bench.legacy_base, not timed); the ratios legacy /
Bambam against the `daily` and `full` phases go to report["legacy"] and the table.

`--save-first DIR` copies the home and the raw history after the first phase into DIR;
`--from-first DIR` runs the later phases from that state instead of a first run of their own,
each phase from a fresh copy of it (so `daily` and `full` both start from the first run's home,
and two code trees can be compared on one first run: the same command with each tree on
PYTHONPATH):

    python -m bench.full_bench --years 1 --phases first --save-first W/first
    python -m bench.full_bench --years 1 --phases daily,full --from-first W/first

Results go to bench/out/full_{size}_{stamp}.json and a table on stdout. The workload is
generated once per size under --work and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psutil

from bench.bambam_side import run_bambam
from bench.daily_bench import backdate_models
from bench.new_day import land, new_rows, split_history
from bench.report import OUT_DIR
from bench.workloads import ALL_PARKS

PHASES = ("first", "noop", "daily", "full")


def _disk_usage(root: Path) -> int:
    """Bytes allocated on disk under `root` (st_blocks, so sparse and hard-linked files count
    what they take)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except FileNotFoundError:  # a temp file gone between list and stat
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


class Monitor:
    """Samples the peak RSS of this process's descendants and the peak disk use of a folder, the
    CPU seconds of every descendant (its last sampled user + system time, so the pool workers,
    which are the forkserver's children and never reach this process's getrusage, count too;
    up to one sampling interval of each process's end is missed) and the machine's busy share.
    `with_self`: count this process too (a step run in-process, e.g. a probe's query).

    The folder walk (12,000+ files at 1,694 entities, 0.11 s alone) is spaced so that it takes
    at most DISK_SHARE of one core: every `disk_every` seconds or 1/DISK_SHARE times its last
    duration, whichever is longer. Walked every second it took 93 of the 593 CPU seconds of a
    profiled daily run (py-spy), CPU that the measured run on two cores did not have."""

    DISK_SHARE = 0.05

    def __init__(self, home: Path, rss_every: float = 0.25, disk_every: float = 1.0,
                 with_self: bool = False) -> None:
        self.home = home
        self.with_self = with_self
        self.rss_every, self.disk_every = rss_every, disk_every
        self.peak_rss = 0
        self.peak_disk = 0
        self.peak_procs = 0
        # (epoch s, tree RSS bytes) at every sample: which step held the peak (`peak_by_step`)
        self.timeline: list[tuple[float, int]] = []
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, create_time) -> CPU s seen
        self._busy: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def tree_cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    @property
    def machine_busy_pct(self) -> float:
        return sum(self._busy) / len(self._busy) if self._busy else float("nan")

    def _loop(self) -> None:
        me = psutil.Process()
        next_disk = 0.0
        psutil.cpu_times_percent(None)
        while not self._stop.is_set():
            rss, n = 0, 0
            for child in ([me] if self.with_self else []) + me.children(recursive=True):
                try:
                    with child.oneshot():
                        rss += child.memory_info().rss
                        t = child.cpu_times()
                        self._cpu[(child.pid, child.create_time())] = t.user + t.system
                    n += 1
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            self.timeline.append((time.time(), rss))
            self.peak_procs = max(self.peak_procs, n)
            now = time.monotonic()
            if now >= next_disk:
                self.peak_disk = max(self.peak_disk, _disk_usage(self.home))
                busy = psutil.cpu_times_percent(None)
                self._busy.append(busy.user + busy.system)
                walked = time.monotonic() - now
                next_disk = now + max(self.disk_every, walked / self.DISK_SHARE)
            self._stop.wait(self.rss_every)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_disk = max(self.peak_disk, _disk_usage(self.home))


def peak_by_step(timeline: list[tuple[float, int]],
                 spans: list[tuple[str, float, float]]) -> dict[str, float]:
    """Per step: the tree's peak RSS (GB) among the samples taken while it ran (steps that
    overlap share their samples); "outside steps": the samples no step covers (imports, the
    run's start and end, the bench child's read-out)."""
    out: dict[str, float] = {}
    covered = [False] * len(timeline)
    for step, t0, t1 in spans:
        for i, (t, rss) in enumerate(timeline):
            if t0 <= t <= t1:
                covered[i] = True
                out[step] = max(out.get(step, 0.0), rss / 2**30)
    rest = [rss for (_t, rss), c in zip(timeline, covered, strict=True) if not c]
    if rest:
        out["outside steps"] = max(rest) / 2**30
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


@dataclass
class Size:
    years: int
    entities_per_park: int
    months: int | None = None  # a shorter history for smoke runs

    @property
    def end(self) -> date:  # day D: the last day of the workload
        return date(2025, 12, 31)

    @property
    def start(self) -> date:
        if self.months:
            return self.end - timedelta(days=round(30.4 * self.months))
        return date(self.end.year - self.years + 1, 1, 1)

    @property
    def name(self) -> str:
        span = f"{self.months}m" if self.months else f"{self.years}y"
        return f"{len(ALL_PARKS)}x{self.entities_per_park}_{span}"


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_phase(name: str, raw: Path, home: Path, as_of: date, fresh: bool, log=print,
              env: dict[str, str] | None = None, selection: str = "all") -> dict:
    cpu0 = _cpu_children()
    with Monitor(home if home.exists() else home.parent) as mon:
        res = run_bambam(raw, home, as_of, selection=selection, fresh=fresh, name=name, log=log,
                         env=env)
    child = res.child
    out = {
        "phase": name, "as_of": as_of.isoformat(), "wall": round(res.wall, 1),
        "wall_to_exit": round(res.wall_to_exit, 1),
        "cpu_seconds": round(_cpu_children() - cpu0, 1),  # reaped children only: a lower bound
        "tree_cpu_seconds": round(mon.tree_cpu_seconds, 1),  # every descendant, sampled
        "machine_busy_pct": round(mon.machine_busy_pct, 1),
        "peak_rss_gb": round(mon.peak_rss / 2**30, 2),
        "peak_home_gb": round(mon.peak_disk / 2**30, 2),
        "peak_processes": mon.peak_procs,
        "peak_rss_gb_by_step": peak_by_step(mon.timeline, child.get("step_spans", [])),
        "steps": {k: round(v, 1) for k, v in sorted(child.get("steps", {}).items())},
        "entity_model_phases": {k: round(v, 1) for k, v in
                                child.get("entity_model_phases", {}).items()},
        "retrained": sum(1 for e in child.get("evaluations", {}).values()
                         if e.get("action") not in (None, "skip")),
        "success": child.get("success"),
    }
    log(f"{name}: {out['wall']:.1f}s wall, {out['tree_cpu_seconds']:.0f} CPU s of the tree "
        f"(machine {out['machine_busy_pct']:.0f} % busy), peak RSS "
        f"{out['peak_rss_gb']:.2f} GB, peak home {out['peak_home_gb']:.2f} GB; peak RSS by "
        f"step {out['peak_rss_gb_by_step']}")
    return out


def prepare(size: Size, work: Path, log=print) -> tuple[Path, Path, date]:
    """(full raw source up to D, raw source as of D-1, D); generated once per size."""
    from bambam_assets.lib.demo import generate as demo

    full = work / f"raw_full_{size.name}"
    if not (full / ".complete").exists():
        shutil.rmtree(full, ignore_errors=True)
        log(f"generating {len(ALL_PARKS)} parks x {size.entities_per_park} entities, "
            f"{size.start}..{size.end} into {full}")
        t0 = time.perf_counter()
        summary = demo.generate(full, list(ALL_PARKS), size.entities_per_park, size.start,
                                size.end, seed=42, qt_days=0)
        log(f"generated in {time.perf_counter() - t0:.0f}s: {summary.get('rows')}")
        (full / ".complete").write_text(json.dumps(summary, default=str))
    raw = work / f"raw_history_{size.name}"
    shutil.rmtree(raw, ignore_errors=True)
    new_day = split_history(full, raw, size.end)
    (work / f"changed_{size.name}.json").write_text(json.dumps(new_day.changed))
    (work / f"new_rows_{size.name}.json").write_text(json.dumps(new_day.new_rows))
    return full, raw, size.end


def _new_rows(size: Size, work: Path, day: date) -> dict[str, int]:
    """Entity -> raw lines dated D or later (saved by `prepare`; recomputed from the changed
    files for a work folder prepared before it saved them)."""
    saved = work / f"new_rows_{size.name}.json"
    if saved.exists():
        return json.loads(saved.read_text())
    changed = json.loads((work / f"changed_{size.name}.json").read_text())
    return new_rows(work / f"raw_full_{size.name}", changed, day)


def run_legacy_side(report: dict, size: Size, work: Path, home: Path, day: date, sample: int,
                    max_slots: int | None) -> None:
    """`--legacy-sample N`: the legacy's daily run and full retrain as of D on the home's
    observations (bench.legacy_full), into report["legacy"]."""
    from bench.legacy_forecast import MAX_SLOTS
    from bench.legacy_full import legacy_comparison

    walls = {p["phase"]: p for p in report["phases"] if p["phase"] in ("daily", "full")}
    if not walls:
        raise SystemExit("--legacy-sample needs the daily or full phase (the home as of D)")
    t0 = time.perf_counter()
    report["legacy"] = legacy_comparison(home, work / f"legacy_{size.name}", day,
                                         _new_rows(size, work, day), sample, walls,
                                         max_slots=max_slots or MAX_SLOTS)
    report["legacy"]["seconds"] = round(time.perf_counter() - t0, 1)


def save_first(folder: Path, home: Path, raw: Path) -> None:
    """Copy the home and the raw history (mtimes kept: the ingest sees no change) to `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(home, folder / "home", symlinks=True)
    shutil.copytree(raw, folder / "raw", symlinks=True)


def restore_first(folder: Path, home: Path, raw: Path) -> None:
    """Replace the home and raw history with the copies `save_first` made."""
    for src, dst in ((folder / "home", home), (folder / "raw", raw)):
        if not src.is_dir():
            raise SystemExit(f"{folder} holds no {src.name}/: make it with --save-first")
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--years", type=int, default=1)
    ap.add_argument("--months", type=int, default=None, help="a shorter history (smoke runs)")
    ap.add_argument("--entities-per-park", type=int, default=121)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bambam_full_bench"))
    ap.add_argument("--keep-home", action="store_true")
    ap.add_argument("--legacy-sample", type=int, default=0,
                    help="after the phases, time the legacy's daily run and full retrain on N "
                    "entities a step and extrapolate (bench.legacy_full); 0 = skip")
    ap.add_argument("--legacy-slots", type=int, default=None,
                    help="slots run per entity by the legacy forecast (default: "
                    "bench.legacy_forecast.MAX_SLOTS)")
    ap.add_argument("--save-first", type=Path, default=None,
                    help="after the first phase, copy the home and raw history into this folder")
    ap.add_argument("--from-first", type=Path, default=None,
                    help="run the later phases each from a copy of a --save-first folder")
    ap.add_argument("--bambam-report", type=Path, default=None,
                    help="with --legacy-sample: run no phase, take Bambam's figures from this "
                    "earlier report and the legacy's observations from the kept home in --work")
    args = ap.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        ap.error(f"unknown phases {unknown}; known: {', '.join(PHASES)}")
    size = Size(args.years, args.entities_per_park, args.months)
    home = args.work / f"home_{size.name}"
    if args.bambam_report is not None:
        if args.legacy_sample <= 0:
            ap.error("--bambam-report needs --legacy-sample N")
        return legacy_only(args, size, home)
    if args.from_first is not None and "first" in phases:
        ap.error("--from-first replaces the first phase: leave it out of --phases")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.from_first is not None:
        full = args.work / f"raw_full_{size.name}"
        raw, day = args.work / f"raw_history_{size.name}", size.end
    else:
        full, raw, day = prepare(size, args.work)
    shutil.rmtree(home, ignore_errors=True)
    report: dict = {"size": size.name, "entities": len(ALL_PARKS) * size.entities_per_park,
                    "start": size.start.isoformat(), "day": day.isoformat(),
                    "raw_gb": round(_disk_usage(full) / 2**30, 2), "phases": []}
    fresh = True
    for phase in PHASES:
        if phase not in phases:
            continue
        if args.from_first is not None:  # each phase from the first run's state
            restore_first(args.from_first, home, raw)
            fresh = False
        if phase == "daily":
            backdate_models(home, 25.0)  # yesterday's models: the critical tier is due by age
            land(full, raw, json.loads((args.work / f"changed_{size.name}.json").read_text()))
        as_of = day - timedelta(days=1) if phase in ("first", "noop") else day
        selection = "retrain-all" if phase == "full" else "all"
        report["phases"].append(run_phase(phase, raw, home, as_of, fresh, selection=selection))
        fresh = False
        if phase == "first" and args.save_first is not None:
            save_first(args.save_first, home, raw)
    if args.legacy_sample > 0:
        run_legacy_side(report, size, args.work, home, day, args.legacy_sample,
                        args.legacy_slots)
    _write(report, size)
    if not args.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return report


def legacy_only(args: argparse.Namespace, size: Size, home: Path) -> dict:
    """--bambam-report: the legacy side alone on a kept home (`--keep-home` run), against the
    Bambam figures of that run's report."""
    if not home.is_dir():
        raise SystemExit(f"no kept home at {home} (run full_bench with --keep-home first)")
    report = json.loads(args.bambam_report.read_text())
    if report.get("size") != size.name:
        raise SystemExit(f"{args.bambam_report} is size {report.get('size')}, not {size.name}")
    report["bambam_report"] = str(args.bambam_report)
    run_legacy_side(report, size, args.work, home, date.fromisoformat(report["day"]),
                    args.legacy_sample, args.legacy_slots)
    _write(report, size)
    return report


def _write(report: dict, size: Size) -> None:
    OUT_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    out = OUT_DIR / f"full_{size.name}_{stamp}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    print_report(report)
    print(f"written {out}")


def print_report(report: dict, echo=print) -> None:
    echo(f"\n{report['entities']} entities, {report['start']}..{report['day']} "
         f"(raw {report['raw_gb']} GB)")
    echo(f"{'phase':8} {'wall s':>8} {'CPU s':>8} {'busy %':>7} {'peak RSS GB':>12} "
         f"{'peak home GB':>13}  steps")
    for p in report["phases"]:
        steps = ", ".join(f"{k} {v:.0f}s" for k, v in p["steps"].items() if v >= 1)
        # reports written before the tree's CPU was sampled have only the lower bound
        cpu = p.get("tree_cpu_seconds", p["cpu_seconds"])
        busy = p.get("machine_busy_pct", float("nan"))
        echo(f"{p['phase']:8} {p['wall']:8.1f} {cpu:8.0f} {busy:7.0f} {p['peak_rss_gb']:12.2f} "
             f"{p['peak_home_gb']:13.2f}  {steps}")
    if report.get("legacy"):
        from bench.legacy_full import print_legacy

        print_legacy(report["legacy"], {p["phase"]: p for p in report["phases"]}, echo=echo)


if __name__ == "__main__":
    main()

"""The cost of automated operation (issue 15): `dagster-daemon run` alone on a small home, the
bootstrap and then one new day, for a given code tree (this one, or an older commit's).

    python -m bench.automation_cost                                   # this tree ("after")
    python -m bench.automation_cost --code-root /tmp/before --label before

1. Workload (bench.workloads, bench.new_day): MK and DL x 3 entities, 2024-03-01..D = 2024-05-30,
   generated once and cut into the raw source as of the end of D-1 plus day D's changed files.
2. Bootstrap: a fresh home (BAMBAM_HOME, BAMBAM_RAW = its own copy of the history,
   BAMBAM_AS_OF = D-1). The code tree's own `ensure_dagster_home` writes dagster.yaml and creates
   the instance's storage (SQLite under the home), then `dagster-daemon run -w
   <code root>/workspace.yaml` starts with cwd and PYTHONPATH = the code root (PYTHONPATH wins
   over the venv's editable install, so the daemon, its code server and every run process import
   that tree's bambam_assets: checked before the start). No CLI run. The phase ends when the
   daemon is settled (`settled`: no run or backfill in progress and no run created or finished
   for QUIET_S, longer than the slowest sensor's interval) or after --max-phase-s.
3. Between the phases the daemon is stopped and every model version is moved 25 h into the past
   (bench.daily_bench.backdate_models: the bootstrap "happened yesterday", as in the daily bench;
   the staleness rule ages models by the wall clock).
4. One new day: day D's files land (bench.new_day.land), the daemon restarts with
   BAMBAM_AS_OF = D (a daemon reads the as-of date when its code location loads: moving the
   date means a restart; that start-up is counted in the new day's figures) and runs until
   settled again.

Measured per phase:
- runs: every run the instance created in the phase, by job, asset selection and trigger
  (sensor, schedule or bambam/trigger tag) and status;
- CPU seconds, two ways. (a) Exact: this process makes itself a child subreaper
  (prctl PR_SET_CHILD_SUBREAPER), so every descendant that outlives its parent (run workers,
  forkservers, step processes, the code server) is re-parented here; at the phase's end the
  daemon gets SIGINT, every remaining descendant SIGTERM then SIGKILL, and all are reaped; CPU =
  the growth of getrusage(RUSAGE_CHILDREN) (user + sys) over the phase, which holds each reaped
  process's own time plus that of the descendants it reaped. (b) Split: psutil samples the
  process tree every POLL_S; each process's user + sys at its last sample, attributed to "runs"
  (a run worker and everything below it) or "daemon" (the daemon, its code server and other
  helpers). (b) misses processes shorter than a sample and each one's last interval, so it is a
  lower bound of (a); it is reported for the split only;
- wall: daemon start to the end of the phase's last run ("to last run"), and to settled;
- materializations per asset (events and distinct partitions) in the phase.

Writes bench/out/automation_cost_{label}_{timestamp}.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"
PARKS, ENTITIES_PER_PARK = ("MK", "DL"), 3
START, DAY = date(2024, 3, 1), date(2024, 5, 30)
# The slowest sensor ticks every 300 s (retrain_sensor, production default in both trees): a
# daemon is "settled" only after every sensor had a chance to see the final state.
QUIET_S = 330.0
POLL_S = 5.0
BACKDATE_HOURS = 25.0  # as bench.daily_bench: a run exactly 24 h old is not yet due
PR_SET_CHILD_SUBREAPER = 36
# A run worker: the daemon's run launcher asks the code server to start the run, which spawns
# it with multiprocessing's "spawn" context (dagster/_grpc/server.py); the steps below it come
# from a forkserver, so `spawn_main` marks only run workers.
RUN_WORKER_MARKERS = ("spawn_main", "api execute_run")


# ---- pure logic (no dagster): settle rule and summaries -----------------------------------------

@dataclass(frozen=True)
class RunRow:
    """One run of the instance (grain: one row per run): when it was created and ended (UNIX
    seconds, None while in progress), its status, job, asset selection and trigger."""
    run_id: str
    created: float
    ended: float | None
    status: str
    job: str
    selection: tuple[str, ...]
    trigger: str


def settled(runs: Iterable[RunRow], backfill_in_progress: bool, phase_start: float, now: float,
            quiet_s: float = QUIET_S) -> tuple[bool, float]:
    """(settled, last activity). Last activity = the latest of the phase start, any run's
    creation and any run's end; settled = nothing in progress and `quiet_s` since then."""
    last = phase_start
    busy = backfill_in_progress
    for r in runs:  # a loop over the phase's runs (tens)
        last = max(last, r.created, r.ended or 0.0)
        busy = busy or r.ended is None
    return (not busy and now - last >= quiet_s), last


def run_counts(runs: Iterable[RunRow]) -> list[dict]:
    """Runs grouped by (job, asset selection, trigger, status); grain: one row per group, with
    its count, most frequent first."""
    counts = Counter((r.job, r.selection, r.trigger, r.status) for r in runs)
    return [{"job": j, "selection": list(s), "trigger": t, "status": st, "runs": n}
            for (j, s, t, st), n in counts.most_common()]


def materialization_counts(events: Iterable[tuple[str, str | None]]) -> dict[str, dict]:
    """(asset key, partition or None) per materialization event -> per asset (grain: one entry
    per asset): events and distinct partitions (0 for an unpartitioned asset)."""
    out: dict[str, dict] = {}
    parts: dict[str, set] = {}
    for key, partition in events:  # a loop over events (hundreds)
        out.setdefault(key, {"events": 0, "partitions": 0})["events"] += 1
        if partition is not None:
            parts.setdefault(key, set()).add(partition)
    for key, p in parts.items():
        out[key]["partitions"] = len(p)
    return dict(sorted(out.items()))


def cpu_split(samples: Mapping[tuple[int, float], dict]) -> dict[str, float]:
    """CPU seconds of sampled processes by role. `samples`: (pid, create time) -> {"ppid",
    "cpu" (user + sys at the last sample), "run_worker" (bool)}; grain: one entry per process
    seen. A process belongs to "runs" when it or an ancestor among the sampled ones is a run
    worker, else to "daemon"."""
    by_pid = {pid: s for (pid, _), s in samples.items()}
    out = {"runs": 0.0, "daemon": 0.0}
    for s in samples.values():  # a loop over processes (tens to hundreds)
        role, cur, seen = "daemon", s, set()
        while cur is not None and id(cur) not in seen:  # up the ancestry (ppid at first sight)
            if cur["run_worker"]:
                role = "runs"
                break
            seen.add(id(cur))
            cur = by_pid.get(cur["ppid"])
        out[role] += s["cpu"]
    return {k: round(v, 1) for k, v in out.items()}


def markdown_table(rows: list[dict]) -> str:
    """One row per (phase, code): runs, CPU, wall and materializations per asset."""
    lines = ["| phase | code | runs launched | CPU s (all) | of which runs / daemon (psutil) "
             "| wall s to last run | wall s to settled | materializations (events/partitions) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mats = ", ".join(f"{k} {v['events']}" + (f"/{v['partitions']}" if v["partitions"] else "")
                         for k, v in r["materializations"].items()) or "none"
        failed = sum(g["runs"] for g in r["runs_by_group"] if g["status"] != "SUCCESS")
        runs = f"{r['runs']}" + (f" ({failed} not SUCCESS)" if failed else "")
        split = r["cpu_psutil"]
        if r.get("fixed_s"):
            settled_s = f"n/a (ran {r['wall_s']:.0f})"
        elif r["settled"]:
            settled_s = f"{r['wall_to_settled_s']:.0f}"
        else:
            settled_s = f"not settled (stopped at {r['wall_s']:.0f})"
        lines.append(f"| {r['phase']} | {r['code']} | {runs} | {r['cpu_s']:.0f} | "
                     f"{split['runs']:.0f} / {split['daemon']:.0f} | "
                     f"{r['wall_to_last_run_s']:.0f} | {settled_s} | {mats} |")
    return "\n".join(lines)


# ---- the daemon and its process tree ------------------------------------------------------------

def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (not init), so they can be reaped and
    their CPU time lands in RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _reap_all(block: bool = True) -> None:
    """Wait for every child (the daemon's orphans included) until none is left (`block`), or
    reap only those already exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class TreeSampler:
    """psutil samples of this process's descendants (grain: one entry per process seen)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.samples: dict[tuple[int, float], dict] = {}

    def sample(self) -> None:
        ps = self._psutil
        for p in ps.Process().children(recursive=True):  # a loop over processes (tens)
            try:
                with p.oneshot():
                    key = (p.pid, p.create_time())
                    t = p.cpu_times()
                    entry = self.samples.get(key)
                    if entry is None:
                        cmd = " ".join(p.cmdline())
                        entry = self.samples[key] = {
                            "ppid": p.ppid(), "created": key[1], "cmd": cmd[:200],
                            "run_worker": any(m in cmd for m in RUN_WORKER_MARKERS)}
                    entry["cpu"] = t.user + t.system
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                continue


def _alive(p) -> bool:
    import psutil

    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_tree(proc: subprocess.Popen, sampler: TreeSampler, log=print) -> None:
    """SIGINT to the daemon (its own shutdown), then SIGTERM / SIGKILL to whatever is left below
    this process, and reap everything."""
    import psutil

    sampler.sample()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log("daemon did not stop on SIGINT in 60 s: SIGKILL")
            proc.kill()
            proc.wait()
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        left = psutil.Process().children(recursive=True)
        alive = [p for p in left if _alive(p)]
        if not alive:
            break
        log(f"{len(alive)} processes left after the daemon: {sig.name}")
        for p in left:  # a loop over leftover processes
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=grace)
    _reap_all()


# ---- the instance (dagster) ---------------------------------------------------------------------

def _instance(dagster_home: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home))


def _trigger(tags: Mapping[str, str]) -> str:
    for key in ("bambam/trigger", "dagster/sensor_name", "dagster/schedule_name"):
        if key in tags:
            return f"{key.split('/')[-1]}={tags[key]}"
    return "backfill" if "dagster/backfill" in tags else "other"


def _runs_since(instance, since: float) -> list[RunRow]:
    import dagster as dg

    records = instance.get_run_records(
        filters=dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC)))
    rows = []
    for rec in records:  # a loop over the phase's runs
        run = rec.dagster_run
        ended = rec.end_time if run.is_finished else None
        if run.is_finished and ended is None:
            ended = rec.update_timestamp.timestamp()
        rows.append(RunRow(
            run_id=run.run_id, created=rec.create_timestamp.timestamp(), ended=ended,
            status=run.status.value, job=run.job_name,
            selection=tuple(sorted(k.to_user_string() for k in (run.asset_selection or ()))),
            trigger=_trigger(run.tags)))
    return sorted(rows, key=lambda r: r.created)


def _backfill_in_progress(instance) -> bool:
    from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

    return bool(instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1))


def _materializations_after(instance, cursor: int) -> list[tuple[str, str | None]]:
    import dagster as dg

    events = []
    for key in instance.get_asset_keys():  # a loop over assets (tens)
        page = None
        while True:  # pages of at most 10,000 records (Dagster's limit)
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor), limit=10_000,
                cursor=page, ascending=True)
            events += [(key.to_user_string(), r.event_log_entry.asset_materialization.partition)
                       for r in result.records]
            if not result.has_more:
                break
            page = result.cursor
    return events


# ---- one phase ----------------------------------------------------------------------------------

@dataclass
class Code:
    label: str
    root: Path
    commit: str = ""
    env: dict = field(default_factory=dict)


def _code_env(code: Code, home: Path, raw: Path, as_of: date) -> dict:
    env = {**os.environ, "BAMBAM_HOME": str(home), "BAMBAM_RAW": str(raw),
           "BAMBAM_AS_OF": as_of.isoformat(), "PYTHONPATH": str(code.root),
           "DAGSTER_HOME": str(home / "dagster"), **code.env}
    if "BAMBAM_SENSOR_INTERVAL_S" not in code.env:
        # production intervals: the older tree has no such setting, both tick at their defaults
        env.pop("BAMBAM_SENSOR_INTERVAL_S", None)
    return env


def prepare_instance(code: Code, env: dict) -> None:
    """The code tree's own dagster.yaml and instance storage, created before the daemon (two
    processes migrating one new SQLite store at once raced, see the daemon test); also checks
    that the tree's bambam_assets is the one imported."""
    script = ("import dagster as dg, bambam_assets\n"
              "from bambam_assets.instance import ensure_dagster_home\n"
              "ensure_dagster_home()\n"
              "dg.DagsterInstance.get().get_runs(limit=1)\n"
              "print(bambam_assets.__file__)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=code.root, env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    if not Path(out).resolve().is_relative_to(code.root.resolve()):
        raise RuntimeError(f"{code.label}: bambam_assets imported from {out}, not {code.root}")


def run_phase(code: Code, phase: str, home: Path, raw: Path, as_of: date, max_phase_s: float,
              log=print, fixed_s: float | None = None) -> dict:
    """Start the daemon, wait until settled (or max_phase_s), stop it; the phase's figures.
    `fixed_s`: run the daemon exactly that long instead (the idle phase)."""
    env = _code_env(code, home, raw, as_of)
    prepare_instance(code, env)
    instance = _instance(home / "dagster")
    cursor = instance.event_log_storage.get_maximum_record_id() or 0
    _reap_all(block=False)  # nothing of the set-up may count
    cpu0 = _children_cpu()
    daemon = Path(sys.executable).parent / "dagster-daemon"
    log_path = home / f"daemon_{phase}.log"
    sampler = TreeSampler()
    t0 = time.time()
    with open(log_path, "w") as out:
        proc = subprocess.Popen([str(daemon), "run", "-w", str(code.root / "workspace.yaml")],
                                cwd=code.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    log(f"[{code.label} {phase}] daemon {proc.pid} started, as of {as_of}")
    done, last, runs, reported = False, t0, [], 0
    try:
        while time.time() - t0 < (fixed_s or max_phase_s):
            time.sleep(POLL_S)
            sampler.sample()
            if proc.poll() is not None:
                log(f"[{code.label} {phase}] the daemon exited: {log_path.read_text()[-2000:]}")
                break
            runs = _runs_since(instance, t0 - 1)
            done, last = settled(runs, _backfill_in_progress(instance), t0, time.time())
            for n, r in enumerate(runs[reported:], start=reported + 1):  # the new runs
                log(f"[{code.label} {phase}] {r.created - t0:5.0f}s run {n}: {r.job} "
                    f"{list(r.selection)[:6]} {r.trigger}")
            reported = len(runs)
            if done and fixed_s is None:
                break
        t_end = time.time()
    finally:
        stop_tree(proc, sampler, log=log)
    cpu = _children_cpu() - cpu0
    log(f"[{code.label} {phase}] CPU {cpu:.1f} s (rusage), psutil {cpu_split(sampler.samples)}")
    runs = _runs_since(instance, t0 - 1)
    ends = [r.ended for r in runs if r.ended]
    result = {
        "phase": phase, "code": code.label, "commit": code.commit, "as_of": as_of.isoformat(),
        "settled": done, "runs": len(runs), "runs_by_group": run_counts(runs),
        "runs_detail": [r.__dict__ | {"selection": list(r.selection)} for r in runs],
        "cpu_s": round(cpu, 1), "cpu_psutil": cpu_split(sampler.samples),
        "processes_seen": len(sampler.samples),
        "wall_s": round(t_end - t0, 1),
        "wall_to_last_run_s": round((max(ends) if ends else t0) - t0, 1),
        "wall_to_settled_s": round(last - t0 + QUIET_S, 1) if done and not fixed_s else None,
        "fixed_s": fixed_s,
        "materializations": materialization_counts(_materializations_after(instance, cursor)),
        "daemon_log": str(log_path),
    }
    log(f"[{code.label} {phase}] {result['runs']} runs, {result['cpu_s']} CPU s, "
        f"settled={done} after {result['wall_s']} s")
    instance.dispose()
    return result


# ---- the whole bench ----------------------------------------------------------------------------

def prepare_raw(work: Path, log=print) -> tuple[Path, list[str], dict]:
    """The workload generated once over [START, DAY] (work/full); returns (full, day D's changed
    files, generator summary)."""
    from bench import new_day
    from bench.workloads import Workload, generate_workload

    full = work / "full"
    summary = generate_workload(full, Workload(PARKS, ENTITIES_PER_PARK, START, DAY), log=log)
    probe = new_day.split_history(full, work / "raw_probe", DAY)
    shutil.rmtree(work / "raw_probe")
    return full, probe.changed, summary | {"new_rows": probe.new_rows}


def bench_code(code: Code, work: Path, full: Path, changed: list[str], max_phase_s: float,
               idle_s: float = 0.0, log=print) -> list[dict]:
    """Bootstrap and one new day for one code tree, on its own home and raw copy."""
    from bench import new_day
    from bench.daily_bench import backdate_models

    home, raw = work / f"home_{code.label}", work / f"raw_{code.label}"
    home.mkdir(parents=True)
    new_day.split_history(full, raw, DAY)
    boot = run_phase(code, "bootstrap", home, raw, DAY - timedelta(days=1), max_phase_s, log)
    moved = backdate_models(home, BACKDATE_HOURS) if (home / "warehouse.duckdb").exists() else 0
    log(f"[{code.label}] {moved} model versions moved {BACKDATE_HOURS:g} h back; day {DAY} lands")
    new_day.land(full, raw, changed)
    day = run_phase(code, "one new day", home, raw, DAY, max_phase_s, log)
    day["model_versions_backdated"] = moved
    return [boot, day] + ([idle_phase(code, home, raw, idle_s, log)] if idle_s else [])


def idle_phase(code: Code, home: Path, raw: Path, idle_s: float, log=print) -> dict:
    """The daemon on a settled home with nothing new, for exactly `idle_s`: its cost per hour of
    doing nothing (sensor ticks, and the code server Dagster's daemon restarts every 60 s to
    reload the workspace)."""
    return run_phase(code, "idle", home, raw, DAY, idle_s, log, fixed_s=idle_s)


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code-root", action="append", type=Path, default=None,
                    help="code tree the daemon runs (repeatable; default this tree)")
    ap.add_argument("--label", action="append", default=None,
                    help="label of each --code-root (default: its commit)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default /tmp/...)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--max-phase-s", type=float, default=2400.0)
    ap.add_argument("--idle-s", type=float, default=600.0,
                    help="then run the daemon this long on the settled home (0: skip)")
    ap.add_argument("--idle-home", type=Path, default=None,
                    help="only the idle phase, on this kept home (raw: its sibling raw_LABEL)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", nargs="+", type=Path, default=None, metavar="JSON",
                    help="only print the table of earlier reports (e.g. a before and an after)")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table([p for f in args.table for p in json.loads(f.read_text())["phases"]]))
        return 0
    roots = [r.resolve() for r in (args.code_root or [REPO])]
    labels = args.label or [_commit(r) or r.name for r in roots]
    if len(labels) != len(roots):
        ap.error("one --label per --code-root")
    _become_subreaper()
    if args.idle_home:
        home = args.idle_home.resolve()
        code = Code(labels[0], roots[0], _commit(roots[0]))
        phase = idle_phase(code, home, home.parent / f"raw_{labels[0]}", args.idle_s)
        out = args.out or OUT_DIR / f"automation_cost_idle_{labels[0]}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"phases": [phase], "load_after": os.getloadavg()}, indent=1,
                                  default=str))
        print(markdown_table([phase]))
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work = args.work or Path(f"/tmp/bambam_automation_cost_{stamp}")
    work.mkdir(parents=True, exist_ok=False)
    report: dict = {"started_at": stamp, "workload": {
        "parks": PARKS, "entities_per_park": ENTITIES_PER_PARK, "start": START.isoformat(),
        "day": DAY.isoformat()}, "quiet_s": QUIET_S, "poll_s": POLL_S,
        "backdate_hours": BACKDATE_HOURS, "load_before": os.getloadavg(),
        "niceness": os.nice(0), "phases": []}
    try:
        full, changed, summary = prepare_raw(work)
        report["workload"] |= {"generated": summary, "changed_files": changed}
        for root, label in zip(roots, labels, strict=True):  # a loop over code trees (1-2)
            code = Code(label, root, _commit(root))
            report["phases"] += bench_code(code, work, full, changed, args.max_phase_s,
                                           args.idle_s)
            report["load_after_" + label] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = args.out or OUT_DIR / f"automation_cost_{stamp}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    print(markdown_table(report["phases"]))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

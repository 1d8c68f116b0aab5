"""The faults, each a function that injects one into a real pipeline and reports what it left.

Every scenario starts from the same raw files and as-of date as the clean reference home, runs
`bambam run` with the fault, checks that no half-written file would be served, runs again
without the fault (the operator's retry), and compares the home with the clean one: fact rows
lost or duplicated, and every table and curve file's row count and content hash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.faults import digest
from bench.faults.runner import (
    AS_OF,
    RunResult,
    leftovers,
    on_line,
    on_path,
    pipeline_env,
    run_bambam,
    unservable_files,
    when_writing,
)
from bench.faults.s3_proxy import S3_ENV, FaultProxy, Faults, s3_client

# A rerun that takes longer is reported as hung (a clean run of the bench data takes 20-60 s).
RERUN_TIMEOUT_S = 420.0


@dataclass
class Context:
    work: Path               # scratch folder for the scenarios' homes
    raw: Path                # the raw files every home starts from
    clean: Path              # the clean reference home (one uninterrupted run)
    s3_endpoint: str | None = None  # a real S3 server, for the S3 scenarios
    clean_digest: dict = field(default_factory=dict)

    def home(self, name: str) -> Path:
        home = self.work / name
        if home.exists():
            shutil.rmtree(home)
        (home / "dagster").mkdir(parents=True)
        shutil.copytree(self.raw, home / "raw")
        return home


@dataclass
class Outcome:
    fault: str
    injected: str            # what was done, and when it hit
    fault_run: str           # how the faulted run ended, with its message
    served_bad: list[str]    # half-written or unloadable files a reader would be served
    rerun_ok: bool
    lost: int                # fact rows of the clean run missing after the rerun
    extra: int               # fact rows beyond the clean run's (duplicates)
    differences: list[str]   # tables and files whose count or content hash differ
    notes: list[str] = field(default_factory=list)
    # Bad input only (bench/faults/bad_input.py): what the damaged lines or files cost, as
    # expected, and the expectations that did not hold (a quarantine that did not happen, ...).
    accounted: str = "n/a"
    failed_checks: list[str] = field(default_factory=list)

    @property
    def hit(self) -> bool:
        """Whether the fault happened (a kill that came after the run ended did not)."""
        return not self.fault_run.startswith("exit") or not self.injected.startswith("SIGKILL")

    @property
    def ok(self) -> bool:
        return (self.hit and not self.served_bad and self.rerun_ok and self.lost == 0
                and self.extra == 0 and not self.differences and not self.failed_checks)


def build_clean(ctx: Context) -> None:
    """The reference: one uninterrupted run over the raw files."""
    home = ctx.home("clean")
    result = run_bambam(home)
    if result.rc != 0:
        raise RuntimeError(f"the clean run failed:\n{result.output[-3000:]}")
    ctx.clean = home
    ctx.clean_digest = digest.home_digest(home)


def _ended(result: RunResult) -> str:
    if result.killed:
        return f"SIGKILL ({result.killed})"
    errors = result.error_lines()
    first = errors[0] if errors else ""
    return f"exit {result.rc}" + (f": {first[:160]}" if first else "")


def _finish(ctx: Context, fault: str, home: Path, injected: str, faulted: RunResult,
            notes: list[str] | None = None, raw: str | None = None, env: dict | None = None,
            before_rerun: Callable[[], None] | None = None, check_before: bool = True
            ) -> Outcome:
    served_bad = unservable_files(home) if check_before else []
    notes = list(notes or [])
    left = leftovers(home)
    if left:
        notes.append(f"temp files left by the kill (hidden, never read): {len(left)}")
    if before_rerun:
        before_rerun()
    rerun = run_bambam(home, raw=raw, env=env, timeout_s=RERUN_TIMEOUT_S)
    if rerun.rc != 0:
        notes.append(f"rerun: {_ended(rerun)}")
    lost, extra = digest.lost_and_extra(ctx.clean, home)
    diffs = digest.differences(ctx.clean_digest, digest.home_digest(home))
    served_bad += [f"after the rerun: {b}" for b in unservable_files(home)]
    if leftovers(home):
        notes.append(f"temp files still there after the rerun: {len(leftovers(home))}")
    return Outcome(fault, injected, _ended(faulted), served_bad, rerun.rc == 0, lost, extra,
                   diffs, notes)


# --- kill -9 -----------------------------------------------------------------------------------

def kill_during_ingest(ctx: Context) -> Outcome:
    """Killed when the ingest logs its batch parsed and committed: the rest of the step (the
    entity index, the other tables of the step, the run's bookkeeping) never happens."""
    home = ctx.home("kill_ingest")
    r = run_bambam(home, trigger=on_line(r"ingest: \d+ of \d+ wait-time files parsed",
                                         "the ingest's batch committed"))
    return _finish(ctx, "kill -9 during ingest", home, "SIGKILL to the run's process group "
                   "the moment the ingest logs its batch of wait-time files committed", r)


def kill_between_entities(ctx: Context) -> Outcome:
    """Issue 15's promise: after the rerun the registry matches the models on disk, and the
    models saved before the kill are not trained again. The rerun's retrain_evaluations then
    differ from the clean run's by design (that table records the last run's decision per
    entity: "has a current model, not due" where the clean run said "no model yet"), so they
    are left out of the comparison once both checks hold."""
    home = ctx.home("kill_between")
    r = run_bambam(home, trigger=on_path(home, "models/*/CURRENT", "first model saved"))
    saved = {p.parent.name: p.read_text().strip() for p in home.glob("models/*/CURRENT")}
    notes = [f"entities with a saved model at the kill: {len(saved)}"]
    notes += _registry_check(home, "after the kill")
    out = _finish(ctx, "kill -9 during training, between two entities", home,
                  "SIGKILL when the first entity's CURRENT appears", r, notes)
    after = _registry_check(home, "after the rerun")
    retrained = sorted(c for c, v in saved.items()
                       if (home / "models" / c / "CURRENT").read_text().strip() != v)
    out.notes += after or ["after the rerun: every saved model has its model_registry row"]
    out.notes.append(f"saved before the kill and trained again by the rerun: {len(retrained)}"
                     + (f" ({', '.join(retrained)})" if retrained else ""))
    if not after and not retrained:
        out.differences = [d for d in out.differences
                           if not d.startswith("table retrain_evaluations:")]
    return out


def kill_inside_entity(ctx: Context) -> Outcome:
    home = ctx.home("kill_inside")
    started: list[float] = []

    def after_start(line: str | None) -> str | None:
        if not started:
            started.append(time.monotonic())
        if time.monotonic() - started[0] >= 0.2:
            n = len(list(home.glob("models/*/CURRENT")))
            return f"0.2 s into the worker pool, {n} entities saved"
        return None

    r = run_bambam(home, trigger=on_line(r"training \d+ entities from", "", then=after_start))
    return _finish(ctx, "kill -9 during training, inside one entity", home,
                   "SIGKILL 0.2 s after entity_model starts its worker pool", r,
                   _registry_check(home, "after the kill"))


def kill_during_forecast_write(ctx: Context) -> Outcome:
    home = ctx.home("kill_forecast")
    r = run_bambam(home, trigger=on_path(home, "forecasts/*/.*.tmp", "a forecast temp file exists",
                                         after=0))
    return _finish(ctx, "kill -9 during a forecast write", home,
                   "SIGKILL while a forecast Parquet temp file is being written", r)


def kill_during_wti_write(ctx: Context) -> Outcome:
    home = ctx.home("kill_wti")
    trig = on_line(r"materializing .*park_wti", "", then=when_writing(home, "park_wti holds the "
                                                                            "warehouse writer"))
    r = run_bambam(home, trigger=trig)
    return _finish(ctx, "kill -9 during the WTI write", home,
                   "SIGKILL while the park_wti step holds the warehouse writer", r)


def _registry_check(home: Path, when: str) -> list[str]:
    """Models saved on disk without their model_registry row (issue 15's registry work)."""
    import duckdb

    path = home / "warehouse.duckdb"
    on_disk = {p.parent.name for p in home.glob("models/*/CURRENT")}
    if not on_disk:
        return []
    if not path.exists():
        return [f"{when}: {len(on_disk)} models on disk, no warehouse yet"]
    conn = duckdb.connect(str(path), read_only=True)
    try:
        rows = {c for (c,) in conn.execute(
            "SELECT DISTINCT entity_code FROM model_registry").fetchall()}
    finally:
        conn.close()
    missing = sorted(on_disk - rows)
    return [f"{when}: {len(missing)} of {len(on_disk)} saved models have no model_registry "
            f"row ({', '.join(missing)})"] if missing else []


# --- S3 ----------------------------------------------------------------------------------------

SOURCE_IDENTITY_TABLES = {"table ingest_manifest", "table dim_build_log"}


def _s3_home(ctx: Context, name: str) -> tuple[Path, str]:
    """A home whose raw source is a fresh bucket holding the raw files."""
    home = ctx.home(name)
    shutil.rmtree(home / "raw")
    client = s3_client(ctx.s3_endpoint)
    bucket = f"faults-{name.replace('_', '-')}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    client.create_bucket(Bucket=bucket)
    for f in sorted(ctx.raw.rglob("*")):
        if f.is_file():
            client.put_object(Bucket=bucket, Key=f"raw/{f.relative_to(ctx.raw).as_posix()}",
                              Body=f.read_bytes())
    return home, f"s3://{bucket}/raw"


def _s3(ctx: Context, name: str, fault: str, faults: Faults, injected: str,
        heal: Callable[[FaultProxy], None] | None = None) -> Outcome:
    home, raw = _s3_home(ctx, name)
    with FaultProxy(ctx.s3_endpoint, faults, s3_client(ctx.s3_endpoint)) as proxy:
        env = {**S3_ENV, "AWS_ENDPOINT_URL": proxy.url}
        r = run_bambam(home, raw=raw, env=env)
        counts = dict(faults.counts)
        if heal:
            heal(proxy)
        out = _finish(ctx, fault, home, injected, r, raw=raw, env=env)
    out.injected += f" (injected: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
    # These two record the source's file identities (S3 ETags where the local reference has
    # mtimes): compared by row count only.
    same_rows = [d for d in out.differences if d.split(":")[0] in SOURCE_IDENTITY_TABLES
                 and d.endswith("other content")]
    out.differences = [d for d in out.differences if d not in same_rows]
    if same_rows:
        out.notes.append("ingest_manifest and dim_build_log hold S3 ETags (the reference: "
                         "local mtimes): same row counts")
    return out


def s3_http_500_retried(ctx: Context) -> Outcome:
    return _s3(ctx, "s3_500", "S3 HTTP 500 (first 2 reads of every object)",
               Faults(errors_per_key=2), "every object read answers 500 twice, then serves")


def s3_http_500_persistent(ctx: Context) -> Outcome:
    key = _one_key(ctx)
    faults = Faults(error_keys={f"raw/{key}"})

    def heal(_proxy: FaultProxy) -> None:
        faults.error_keys.clear()

    return _s3(ctx, "s3_500_always", "S3 HTTP 500 on one object, every read", faults,
               f"{key} answers 500 until the rerun", heal)


def s3_slow(ctx: Context) -> Outcome:
    return _s3(ctx, "s3_slow", "S3 slow responses", Faults(delay_s=0.25),
               "every object read waits 0.25 s")


def s3_connection_reset(ctx: Context) -> Outcome:
    return _s3(ctx, "s3_reset", "S3 connection reset mid-body", Faults(resets_per_key=1),
               "first read of every object cut off by a TCP RST after half its bytes")


def s3_deleted_between_list_and_get(ctx: Context) -> Outcome:
    key = _one_key(ctx)
    return _s3(ctx, "s3_deleted", "S3 object deleted between list and get",
               Faults(delete_after_list=f"raw/{key}"),
               f"{key} deleted right after the first listing, put back before the rerun",
               heal=lambda proxy: proxy.restore_deleted())


def _one_key(ctx: Context) -> str:
    files = sorted(p for p in ctx.raw.rglob("*.csv") if "wait_times" in p.as_posix())
    return files[len(files) // 2].relative_to(ctx.raw).as_posix()


# --- the warehouse, model files, the disk -----------------------------------------------------

HOLD = ("import sys, time; from pathlib import Path; "
        "from bambam_assets.lib.core import warehouse as wh\n"
        "with wh.writer(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")


def warehouse_held(ctx: Context, hold_s: float = 8.0) -> Outcome:
    home = ctx.home("held")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home), str(hold_s)],
                              env=pipeline_env(home), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    r = run_bambam(home)
    holder.wait(timeout=60)
    waited = f"run ended {time.monotonic() - t0:.1f} s after the holder took the lock " \
             f"({hold_s:.0f} s hold)"
    out = _finish(ctx, "warehouse held by another writer", home,
                  f"another process holds the writer (file lock + DuckDB) for {hold_s:.0f} s "
                  "while `bambam run` starts", r, [waited])
    return out


def _model_file(home: Path) -> Path:
    files = sorted(home.glob("models/*/v*/*.ubj")) + sorted(home.glob("models/*/v*/*.json"))
    return [f for f in files if f.name != "meta.json"][0]


def _damaged_model(ctx: Context, name: str, fault: str, damage: Callable[[Path], str]) -> Outcome:
    home = ctx.work / name
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(ctx.clean, home, symlinks=True)
    target = _model_file(home)
    what = damage(target)
    served = _live_predict_check(home, target)
    # the retrain that reads the damaged file: the promotion guard scores the incumbent
    r = run_bambam(home, args=["--retrain-all"])
    notes = [f"live API on the damaged model: {served}"]
    out = _finish(ctx, fault, home, f"{what} ({target.relative_to(home)}), then "
                  "`bambam run --retrain-all`", r, notes, check_before=False)
    out.differences = [d for d in out.differences if not d.startswith("model ")]
    return out


def corrupt_model(ctx: Context) -> Outcome:
    def damage(path: Path) -> str:
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        data[mid: mid + 64] = os.urandom(64)
        path.write_bytes(bytes(data))
        return "64 random bytes written into the middle of a current model file"
    return _damaged_model(ctx, "corrupt_model", "corrupt model file", damage)


def truncated_model(ctx: Context) -> Outcome:
    def damage(path: Path) -> str:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "a current model file truncated to half its size"
    return _damaged_model(ctx, "truncated_model", "truncated model file", damage)


def _live_predict_check(home: Path, target: Path) -> str:
    """Load the damaged entity's current model the way the live API does; the answer."""
    code = target.parents[1].name
    script = ("import sys; from pathlib import Path\n"
              "from bambam_assets.lib.models import registry\n"
              "try:\n"
              "    registry.load_model(Path(sys.argv[1]) / 'models', sys.argv[2])\n"
              "    print('loaded')\n"
              "except Exception as exc:\n"
              "    print(f'refused: {type(exc).__name__}: {exc}'[:200])\n")
    r = subprocess.run([sys.executable, "-c", script, str(home), code], env=pipeline_env(home),
                       capture_output=True, text=True, timeout=120)
    return (r.stdout.strip() or r.stderr.strip().splitlines()[-1])[:200]


DISK_FULL = r"""
set -e
models="$1/models"; stage="$2"; free_kb="$3"; shift 3
mkdir -p "$models" "$stage"
cp -a "$models/." "$stage/"
mount -t tmpfs -o size=8m tmpfs "$models"
cp -a "$stage/." "$models/"
# fill the small disk, leaving free_kb
avail=$(df -k --output=avail "$models" | tail -1)
dd if=/dev/zero of="$models/.filler" bs=1k count=$((avail - free_kb)) status=none || true
set +e
"$@"; rc=$?
rm -f "$models/.filler"
rm -rf "$stage"; mkdir -p "$stage"; cp -a "$models/." "$stage/"
umount "$models"
rm -rf "$models"; mkdir -p "$models"; cp -a "$stage/." "$models/"; rm -rf "$stage"
exit $rc
"""


def disk_full_model(ctx: Context) -> Outcome:
    """The models folder on an 8 MB tmpfs with 16 KB free, in a private mount namespace
    (`unshare -rm`: no root needed, nothing mounted outside the run)."""
    home = ctx.home("disk_full")
    if shutil.which("unshare") is None:
        raise RuntimeError("needs util-linux unshare")
    argv = ["unshare", "-rm", "sh", "-c", DISK_FULL, "disk_full", str(home),
            str(ctx.work / "disk_full_stage"), "16", sys.executable, "-m",
            "bambam_assets.cli.main", "run"]
    r = run_bambam(home, argv=argv)
    out = _finish(ctx, "disk full while writing a model", home,
                  "models/ on an 8 MB tmpfs filled to 16 KB free (private mount namespace), "
                  "then freed for the rerun", r, _registry_check(home, "after the full disk"))
    return out


SCENARIOS: dict[str, Callable[[Context], Outcome]] = {
    "kill_ingest": kill_during_ingest,
    "kill_between_entities": kill_between_entities,
    "kill_inside_entity": kill_inside_entity,
    "kill_forecast_write": kill_during_forecast_write,
    "kill_wti_write": kill_during_wti_write,
    "s3_http_500": s3_http_500_retried,
    "s3_http_500_persistent": s3_http_500_persistent,
    "s3_slow": s3_slow,
    "s3_connection_reset": s3_connection_reset,
    "s3_deleted_between_list_and_get": s3_deleted_between_list_and_get,
    "warehouse_held": warehouse_held,
    "corrupt_model": corrupt_model,
    "truncated_model": truncated_model,
    "disk_full_model": disk_full_model,
}
S3_SCENARIOS = {k for k in SCENARIOS if k.startswith("s3_")}
_ = AS_OF

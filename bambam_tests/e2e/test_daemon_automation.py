"""Headless operation, end to end: `dagster-daemon run` alone (no CLI run, no webserver) takes a
fresh home with demo data to forecasts and park_wti; then the raw files of one more day land and
the daemon runs ingest, the due retrain, the forecasts of exactly the entities whose model
changed, a backfill of only the new park day and a new WTI.

Runs on both instance storages: SQLite under the home, and PostgreSQL run/event/schedule storage
on the local server (BAMBAM_DAGSTER_PG_URL, bambam_assets/instance.py).

Everything is read back from what the pipeline records: the instance's runs and
materializations (partition, metadata) and the run configs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

from bambam_assets.defs.automation.sensors import FORECAST_TRIGGER, SENSOR_TRIGGER, TRIGGER_TAG
from bambam_assets.instance import prepare_dagster_home
from bambam_assets.lib.demo import generate as demo_data
from bambam_tests.builders import write

ROOT = Path(__file__).resolve().parents[2]
LAST_DAY, NEW_DAY, AS_OF = date(2024, 5, 29), date(2024, 5, 30), date(2024, 5, 31)
ENTITIES = ("DL1", "DL2", "DL3")
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
# Dagster's backfill daemon loops every 30 s (DEFAULT_DAEMON_INTERVAL_SECONDS, not a setting of
# dagster.yaml), and every automated request of several partitions is an asset backfill: each
# such hop waited ~20 s for the loop to launch its run and ~20 s more for it to be marked done.
# The test's daemon loops every 5 s, like the sensors; nothing else of the daemon changes.
DAEMON = ("import sys; import dagster._daemon.controller as c; "
          "c.DEFAULT_DAEMON_INTERVAL_SECONDS = 5; from dagster._daemon.cli import main; "
          "sys.argv[0] = 'dagster-daemon'; sys.exit(main())")


@dataclass
class Home:
    """One home of the scenario, its own daemon and its instance."""

    storage: str
    path: Path
    instance: dg.DagsterInstance
    proc: subprocess.Popen
    log: Path
    n_runs_first: int = 0
    cursor: int = 0

    @property
    def raw(self) -> Path:
        return self.path / "raw"


def _new_day(n: int) -> str:
    """n rows of a public per-attraction file on NEW_DAY, POSTED and ACTUAL, every 5 minutes."""
    times = pd.Timestamp(f"{NEW_DAY} 11:00") + pd.to_timedelta(range(0, 5 * n, 5), unit="m")
    lines = [f"{t:%m/%d/%Y},{t:%Y-%m-%d %H:%M:%S},{30 + i % 20},{20 + i % 15}"
             for i, t in enumerate(times)]
    return "date,datetime,SPOSTMIN,SACTMIN\n" + "\n".join(lines) + "\n"


def _materializations(instance: dg.DagsterInstance, key: str, after: int) -> list:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), after_storage_id=after),
        limit=10_000).records
    return [r.event_log_entry for r in records]


def _written(events: list) -> list:
    """The materializations that wrote a file (an asset backfill's run also reports the
    partitions it left as they were, metadata `unchanged`: defs/forecasts/assets.py)."""
    return [e for e in events if "unchanged" not in e.asset_materialization.metadata]


def _partitions(instance: dg.DagsterInstance, key: str, after: int) -> set[str]:
    return {e.asset_materialization.partition for e in _materializations(instance, key, after)}


def _selection(run: dg.DagsterRun) -> list[str]:
    return sorted(k.to_user_string() for k in (run.asset_selection or ()))


def _busy(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
    backfills = instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1)
    return bool(runs or backfills)


def _start(home: Path, storage: str, pg_url: str) -> Home:
    """Demo data in a fresh home, its instance's storage created, then its daemon started."""
    raw = home / "raw"
    raw.mkdir(parents=True)
    demo_data.generate(raw, ["DL"], len(ENTITIES), date(2024, 3, 1), LAST_DAY, qt_days=0)
    dagster_home = prepare_dagster_home(home, postgres=storage == "postgres")
    # create the storage before the daemon and its code server both try to (two processes
    # migrating one new SQLite store at once left two alembic heads, measured)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    instance.get_runs(limit=1)
    env = {**os.environ, "BAMBAM_HOME": str(home), "BAMBAM_RAW": str(raw),
           "DAGSTER_HOME": str(dagster_home)}
    env.pop("BAMBAM_DAGSTER_PG_URL", None)
    if storage == "postgres":
        env["BAMBAM_DAGSTER_PG_URL"] = pg_url
    log = home / "daemon.log"
    with open(log, "w") as out:
        # own session: the daemon's run workers are its children; the whole group is killed
        proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Home(storage, home, instance, proc, log)


def _backfills(instance: dg.DagsterInstance, limit: int = 10) -> list[str]:
    """The asset backfills, newest first: status, target (each asset's partition subset with
    its class: the form it was stored in matters to Dagster's backfill daemon) and the error
    of a failed one."""
    out = []
    for b in instance.get_backfills(limit=limit):
        target = b.asset_backfill_data.target_subset if b.asset_backfill_data else None
        parts = ({k.to_user_string(): f"{type(v).__name__} {v!r}"[:160]
                  for k, v in target.partitions_subsets_by_asset_key.items()} if target else {})
        whole = sorted(k.to_user_string() for k in target.non_partitioned_asset_keys) \
            if target else []
        error = b.error.message.strip()[:300] if b.error else ""
        out.append(f"{b.backfill_id} {b.status.value} {parts} {whole} {error}")
    return out


def _report(h: Home, what: str, timeout_s: float) -> str:
    runs = [(r.job_name, r.status.value, _selection(r)) for r in h.instance.get_runs(limit=20)]
    backfills = _backfills(h.instance)
    # the automation's requests, from the daemon's log (the whole log is too long to show)
    requests = [line for line in h.log.read_text().splitlines()
                if "evaluation result:" in line and "0 requested" not in line
                or "Marking them as failed" in line]
    return (f"{h.storage}: {what}: not reached in {timeout_s:.0f} s; runs {runs}; asset "
            f"backfills {backfills}; requests {requests[-30:]}; daemon log "
            f"{h.log.read_text()[-3000:]}")


def _wait_quiet(h: Home, done: Callable[[Home], bool], what: str, timeout_s: float,
                quiet_s: float = 10.0) -> None:
    """Wait until `done(h)` holds and no run or backfill has been in progress for `quiet_s`
    (two ticks of every sensor and of the backfill loop: nothing more is coming)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        assert h.proc.poll() is None, f"the daemon exited: {h.log.read_text()[-3000:]}"
        if done(h) and not _busy(h.instance):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_s:
                return
        else:
            quiet_since = None
        time.sleep(2)
    raise AssertionError(_report(h, what, timeout_s))


def _first_done(h: Home) -> bool:
    return (h.instance.get_latest_materialization_event(dg.AssetKey("park_wti")) is not None
            and _partitions(h.instance, "entity_forecast", 0) == set(ENTITIES)
            and _partitions(h.instance, "entity_backfill", 0) == set(ENTITIES))


def _second_done(h: Home) -> bool:
    # the backfill of the two entities with new facts, then a WTI after it: the end state,
    # whatever order the sensors and conditions reach it in
    backfills = _written(_materializations(h.instance, "entity_backfill", h.cursor))
    wti = _materializations(h.instance, "park_wti", h.cursor)
    return bool(_materializations(h.instance, "entity_model", h.cursor)
                and {e.asset_materialization.partition for e in backfills} == {"DL1", "DL2"}
                and wti and max(e.timestamp for e in wti)
                > max(e.timestamp for e in backfills))


def _check_first(h: Home) -> None:
    runs = h.instance.get_runs()
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), \
        (h.storage, [(r.run_id, r.job_name, r.status.value) for r in runs])
    # every run was launched by a sensor or by the automation (no CLI, no schedule tick)
    assert all("dagster/sensor_name" in r.tags for r in runs), \
        (h.storage, [dict(r.tags) for r in runs])
    h.n_runs_first = len(runs)
    h.cursor = h.instance.event_log_storage.get_maximum_record_id()


def _check_second(h: Home) -> str:
    instance, cursor = h.instance, h.cursor
    all_runs = instance.get_runs()  # newest first
    new_runs = all_runs[: len(all_runs) - h.n_runs_first]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in new_runs), \
        (h.storage, [(r.run_id, r.job_name, r.status.value) for r in new_runs])
    ingest = [r for r in new_runs if r.tags.get("dagster/sensor_name") == "raw_files_sensor"]
    assert len(ingest) == 1, h.storage

    # the due retrain: one run, DL1 only
    (retrain,) = [r for r in new_runs if r.tags.get(TRIGGER_TAG) == SENSOR_TRIGGER]
    assert retrain.run_config["ops"]["entity_model"]["config"]["only"] == ["DL1"], h.storage
    models = _materializations(instance, "entity_model", cursor)
    assert {e.asset_materialization.partition for e in models} == {"DL1"}, h.storage
    promoted = {e.asset_materialization.partition for e in models
                if e.asset_materialization.metadata["promoted"].value}

    # new forecasts for exactly the entities whose current model changed, in one range run
    assert _partitions(instance, "entity_forecast", cursor) == promoted, h.storage
    forecast_runs = [r for r in new_runs if r.tags.get(TRIGGER_TAG) == FORECAST_TRIGGER]
    assert [r.run_config["ops"]["entity_forecast"]["config"]["only"]
            for r in forecast_runs] == ([sorted(promoted)] if promoted else []), h.storage
    # no other run forecast anything (hours, calendar, statistics unchanged)
    assert not [r for r in new_runs if r not in forecast_runs
                and "entity_forecast" in _selection(r)], h.storage

    # the backfill: only the entities with new facts, and in each only the new park day
    # (the history the first backfill wrote is kept as it was, day for day)
    days_before = {}
    for record in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("entity_backfill"),
                                  before_storage_id=cursor + 1), limit=10_000,
            ascending=True).records:
        mat = record.event_log_entry.asset_materialization
        if "unchanged" not in mat.metadata:
            days_before[mat.partition] = (mat.metadata["days_computed"].value
                                          + mat.metadata["days_kept"].value)
    every = _materializations(instance, "entity_backfill", cursor)
    backfills = _written(every)
    assert {e.asset_materialization.partition for e in backfills} == {"DL1", "DL2"}, h.storage
    # DL3, without new facts, kept its file: at most reported as left unchanged
    kept = ({e.asset_materialization.partition for e in every}
            - {e.asset_materialization.partition for e in backfills})
    assert kept <= {"DL3"}, (h.storage, kept)
    for e in backfills:
        md, code = e.asset_materialization.metadata, e.asset_materialization.partition
        assert md["days_computed"].value == 1, (h.storage, code, md)
        assert md["days_kept"].value == days_before[code] > 0, (h.storage, code, md,
                                                                days_before)

    # a new WTI after the curves changed, recomputed for the changed park days only: the new
    # day (backfilled), plus DL1's forecast window when its new model was promoted
    recomputed = sum(e.asset_materialization.metadata["park_days_recomputed"].value
                     for e in _materializations(instance, "park_wti", cursor))
    assert recomputed == 1 if not promoted else recomputed > 700, (h.storage, recomputed)
    # every asset backfill the automation made (a request of several partitions) ended
    # as a success in the UI's Backfills tab, none "Failed" over a partition left as it was
    statuses = [b.status for b in instance.get_backfills()]
    assert statuses and set(statuses) == {BulkActionStatus.COMPLETED_SUCCESS}, \
        (h.storage, _backfills(instance, limit=100))
    return (f"{h.storage}: {h.n_runs_first} runs to the first WTI, {len(new_runs)} for the new "
            f"day (promoted: {sorted(promoted)}): {[_selection(r) for r in new_runs]}")


@pytest.fixture(params=["postgres", "sqlite"])
def storage(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_daemon_alone_forecasts_and_follows_a_new_day(bambam_home: Path, storage: str,
                                                      request: pytest.FixtureRequest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The as-of date stays put (the daemon's environment is fixed); the new day is before it and
    # after the forecast week's inputs day (the Sunday before the as-of week's Monday), so the
    # POSTED statistics, calendar and hours do not change: only the facts and the models do.
    monkeypatch.setenv("BAMBAM_AS_OF", AS_OF.isoformat())
    monkeypatch.setenv("BAMBAM_SENSOR_INTERVAL_S", "5")
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "full")
    pg_url = ""
    if storage == "postgres":  # a fresh database; its dagster.yaml names the variable
        pg_url = request.getfixturevalue("pg_database")
        monkeypatch.setenv("BAMBAM_DAGSTER_PG_URL", pg_url)
    h = _start(bambam_home.parent / f"home_{storage}", storage, pg_url)
    try:
        # 1. a fresh home: the daemon alone reaches forecasts and the WTI
        _wait_quiet(h, _first_done, "forecasts and park_wti on a fresh home", timeout_s=1200)
        _check_first(h)
        # 2. one more day lands for DL1 (150 targets: due) and DL2 (40: not due); DL3 nothing
        write(h.raw, "public_new_day/DL1.csv", _new_day(150))
        write(h.raw, "public_new_day/DL2.csv", _new_day(40))
        _wait_quiet(h, _second_done, "ingest, retrain, forecasts and WTI after the new day",
                    timeout_s=900)
        print("\n" + _check_second(h))
    finally:
        os.killpg(h.proc.pid, signal.SIGKILL)
        h.proc.wait(timeout=30)

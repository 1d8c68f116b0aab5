"""Headless operation, end to end: `dagster-daemon run` alone (no CLI run, no webserver) takes a
fresh home with demo data to forecasts and park_wti; then the raw files of one more day land and
the daemon runs ingest, the due retrain, the forecasts of exactly the entities whose model
changed, a backfill of only the new park day and a new WTI.

Everything is read back from what the pipeline records: the instance's runs and
materializations (partition, metadata) and the run configs. Runs against the SQLite instance
under the home and, when bambam_assets/instance.py supports BAMBAM_DAGSTER_PG_URL, against
PostgreSQL run/event/schedule storage on the local server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

from bambam_assets.defs.automation.sensors import FORECAST_TRIGGER, SENSOR_TRIGGER, TRIGGER_TAG
from bambam_assets.instance import ensure_dagster_home
from bambam_assets.lib.demo import generate as demo_data
from bambam_tests.builders import write

ROOT = Path(__file__).resolve().parents[2]
LAST_DAY, NEW_DAY, AS_OF = date(2024, 5, 29), date(2024, 5, 30), date(2024, 5, 31)
ENTITIES = ("DL1", "DL2", "DL3")
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


# Both storages; the SQLite variant is marked `storage_sqlite` and left out of the default run
# (pyproject's addopts): a second storage cost ~5 of the suite's 20 minutes (measured in CI).
# Run it with `pytest -m storage_sqlite bambam_tests/e2e/test_daemon_automation.py`.
@pytest.fixture(params=["postgres", pytest.param("sqlite", marks=pytest.mark.storage_sqlite)])
def storage(request: pytest.FixtureRequest, bambam_home: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Dagster instance's storage: SQLite under the home, or a fresh PostgreSQL database
    (bambam_tests/pg_server.py: the machine's server, else a throwaway one)."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    monkeypatch.setenv("BAMBAM_DAGSTER_PG_URL", request.getfixturevalue("pg_database"))
    yield "postgres"


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


def _wait_quiet(instance: dg.DagsterInstance, proc: subprocess.Popen, log: Path, done,
                what: str, timeout_s: float, quiet_s: float = 20.0) -> None:
    """Wait until `done()` holds and no run or backfill has been in progress for `quiet_s`
    (several sensor ticks: nothing more is coming)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited: {log.read_text()[-3000:]}"
        if done() and not _busy(instance):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_s:
                return
        else:
            quiet_since = None
        time.sleep(2)
    runs = [(r.job_name, r.status.value, _selection(r)) for r in instance.get_runs(limit=20)]
    backfills = [(b.backfill_id, b.status.value) for b in instance.get_backfills(limit=10)]
    # the automation's requests, from the daemon's log (the whole log is too long to show)
    requests = [line for line in log.read_text().splitlines()
                if "evaluation result:" in line and "0 requested" not in line
                or "Marking them as failed" in line]
    raise AssertionError(f"{what}: not reached in {timeout_s:.0f} s; runs {runs}; asset "
                         f"backfills {backfills}; requests {requests[-30:]}; daemon log "
                         f"{log.read_text()[-3000:]}")


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_daemon_alone_forecasts_and_follows_a_new_day(bambam_home: Path, storage: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bambam_home / "raw"
    demo_data.generate(raw, ["DL"], len(ENTITIES), date(2024, 3, 1), LAST_DAY, qt_days=0)
    # The as-of date stays put (the daemon's environment is fixed); the new day is before it and
    # after the forecast week's inputs day (the Sunday before the as-of week's Monday), so the
    # POSTED statistics, calendar and hours do not change: only the facts and the models do.
    monkeypatch.setenv("BAMBAM_AS_OF", AS_OF.isoformat())
    monkeypatch.setenv("BAMBAM_SENSOR_INTERVAL_S", "5")
    monkeypatch.setenv("BAMBAM_TRAIN_MODE", "full")
    dagster_home = ensure_dagster_home(bambam_home)
    # create the instance's storage before the daemon and its code server both try to (two
    # processes migrating one new SQLite store at once left two alembic heads, measured)
    instance = dg.DagsterInstance.get()
    daemon = Path(sys.executable).parent / "dagster-daemon"
    log = bambam_home / "daemon.log"
    with open(log, "w") as out:
        # own session: the daemon's run workers are its children; the whole group is killed
        proc = subprocess.Popen(
            [str(daemon), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # 1. a fresh home: the daemon alone reaches forecasts and the WTI
        def first_done() -> bool:
            return (instance.get_latest_materialization_event(dg.AssetKey("park_wti")) is not None
                    and _partitions(instance, "entity_forecast", 0) == set(ENTITIES)
                    and _partitions(instance, "entity_backfill", 0) == set(ENTITIES))

        _wait_quiet(instance, proc, log, first_done, "forecasts and park_wti on a fresh home",
                    timeout_s=1200)
        runs = instance.get_runs()
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), \
            [(r.run_id, r.job_name, r.status.value) for r in runs]
        # every run was launched by a sensor or by the automation (no CLI, no schedule tick)
        assert all("dagster/sensor_name" in r.tags for r in runs), [dict(r.tags) for r in runs]
        n_runs_first = len(runs)
        cursor = instance.event_log_storage.get_maximum_record_id()
        # 2. one more day lands for DL1 (150 targets: due) and DL2 (40: not due); DL3 nothing
        write(raw, "public_new_day/DL1.csv", _new_day(150))
        write(raw, "public_new_day/DL2.csv", _new_day(40))

        def second_done() -> bool:
            # the backfill of the two entities with new facts, then a WTI after it: the end
            # state, whatever order the sensors and conditions reach it in
            backfills = _written(_materializations(instance, "entity_backfill", cursor))
            wti = _materializations(instance, "park_wti", cursor)
            return bool(_materializations(instance, "entity_model", cursor)
                        and {e.asset_materialization.partition for e in backfills}
                        == {"DL1", "DL2"}
                        and wti and max(e.timestamp for e in wti)
                        > max(e.timestamp for e in backfills))

        _wait_quiet(instance, proc, log, second_done, "ingest, retrain, forecasts and WTI "
                    "after the new day", timeout_s=900)
        all_runs = instance.get_runs()  # newest first
        new_runs = all_runs[: len(all_runs) - n_runs_first]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in new_runs), \
            [(r.run_id, r.job_name, r.status.value) for r in new_runs]
        ingest = [r for r in new_runs if r.tags.get("dagster/sensor_name") == "raw_files_sensor"]
        assert len(ingest) == 1

        # the due retrain: one run, DL1 only
        (retrain,) = [r for r in new_runs if r.tags.get(TRIGGER_TAG) == SENSOR_TRIGGER]
        assert retrain.run_config["ops"]["entity_model"]["config"]["only"] == ["DL1"]
        models = _materializations(instance, "entity_model", cursor)
        assert {e.asset_materialization.partition for e in models} == {"DL1"}
        promoted = {e.asset_materialization.partition for e in models
                    if e.asset_materialization.metadata["promoted"].value}

        # new forecasts for exactly the entities whose current model changed, in one range run
        assert _partitions(instance, "entity_forecast", cursor) == promoted
        forecast_runs = [r for r in new_runs if r.tags.get(TRIGGER_TAG) == FORECAST_TRIGGER]
        assert [r.run_config["ops"]["entity_forecast"]["config"]["only"]
                for r in forecast_runs] == ([sorted(promoted)] if promoted else [])
        # no other run forecast anything (hours, calendar, statistics unchanged)
        assert not [r for r in new_runs if r not in forecast_runs
                    and "entity_forecast" in _selection(r)]

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
        assert {e.asset_materialization.partition for e in backfills} == {"DL1", "DL2"}
        # DL3, without new facts, kept its file: at most reported as left unchanged
        kept = ({e.asset_materialization.partition for e in every}
                - {e.asset_materialization.partition for e in backfills})
        assert kept <= {"DL3"}, kept
        for e in backfills:
            md, code = e.asset_materialization.metadata, e.asset_materialization.partition
            assert md["days_computed"].value == 1, (code, md)
            assert md["days_kept"].value == days_before[code] > 0, (code, md, days_before)

        # a new WTI after the curves changed, recomputed for the changed park days only: the new
        # day (backfilled), plus DL1's forecast window when its new model was promoted
        recomputed = sum(e.asset_materialization.metadata["park_days_recomputed"].value
                         for e in _materializations(instance, "park_wti", cursor))
        assert recomputed == 1 if not promoted else recomputed > 700, recomputed
        # every asset backfill the automation made (a request of several partitions) ended
        # as a success in the UI's Backfills tab, none "Failed" over a partition left as it was
        statuses = [b.status for b in instance.get_backfills()]
        assert statuses and set(statuses) == {BulkActionStatus.COMPLETED_SUCCESS}, statuses
        print(f"\nruns: {n_runs_first} to the first WTI, {len(new_runs)} for the new day "
              f"(promoted: {sorted(promoted)}): {[_selection(r) for r in new_runs]}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

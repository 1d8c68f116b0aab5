"""The automation runs headless: `bambam daemon` (`dagster-daemon run` on the home's instance;
no webserver, no `dagster dev`) on a fresh home picks up a new raw file through
`raw_files_sensor`, launches the ingest run and lands the rows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from bambam_assets.instance import local_instance
from bambam_assets.lib.core import warehouse as wh
from bambam_tests.builders import write

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "date,datetime,SPOSTMIN,SACTMIN\n"


@pytest.mark.integration
def test_dagster_daemon_alone_ingests_a_new_file(bambam_home: Path) -> None:
    rows = [f"03/{d:02d}/2024,2024-03-{d:02d} {h:02d}:{m:02d}:00,{20 + m},"
            for d in (1, 2) for h in range(9, 20) for m in (0, 30)]
    write(bambam_home / "raw", "public/MK1.csv", PUBLIC + "\n".join(rows) + "\n")
    bambam = Path(sys.executable).parent / "bambam"
    log = bambam_home / "daemon.log"
    with open(log, "w") as out:
        # Own session: the daemon's run workers are its children; the whole group is killed.
        proc = subprocess.Popen(
            [str(bambam), "daemon"], cwd=ROOT, env={**os.environ, "BAMBAM_HOME": str(bambam_home)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        # the test's instance and the daemon's both create the home's storages under its lock:
        # two processes creating one new SQLite schema at once failed in CI ("table
        # alembic_version already exists")
        instance = local_instance(bambam_home)
        deadline = time.monotonic() + 180
        run = None
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_job"), limit=1)
            if runs and runs[0].is_finished:
                run = runs[0]
                break
            assert proc.poll() is None, f"the daemon exited: {log.read_text()[-3000:]}"
            time.sleep(2)
        assert run is not None, f"no finished ingest run in 180 s: {log.read_text()[-3000:]}"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        # launched by the sensor tick, through the queued run coordinator of the daemon
        assert run.tags.get("dagster/sensor_name") == "raw_files_sensor"
        # the sensors go on launching runs that write the warehouse: read as every reader does
        # (wait out a writer's lock), not with a bare connect that fails while one holds it
        with wh.reader(bambam_home) as conn:
            got = conn.execute("SELECT count(*) FROM fct_wait_times WHERE entity_code = 'MK1' "
                               "AND wait_time_type = 'POSTED'").fetchall()
        assert got == [(len(rows),)]
    finally:
        with contextlib.suppress(ProcessLookupError):  # a daemon that exited left no group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

"""Scale guard: every park at once (14 parks x 20 entities, three months) under low DuckDB limits,
as `bambam run` in its own process, then again with nothing new.

A query whose memory or spill grows faster than its input fails here with WarehouseLimitError
(the limits are a small fraction of what the data would need if any step held it all), and the
process tree's peak memory and the home's peak size are bounded; the second run must recompute
no forecast, no backfill day and no WTI day (work proportional to what changed). The full-size
figures come from bench/full_bench.py; this keeps a super-linear step from landing unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import dagster as dg
import psutil
import pytest

from bambam_assets.instance import instance_at
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.demo import generate as demo_data

PARKS = ["MK", "EP", "HS", "AK", "BB", "TL", "DL", "CA", "UF", "IA", "EU", "USH", "TDL", "TDS"]
AS_OF = date(2025, 3, 31)
LIMITS = {"BAMBAM_DUCKDB_MEMORY_LIMIT": "300MB", "BAMBAM_DUCKDB_TEMP_LIMIT": "300MB"}
PEAK_RSS_BYTES = 3 * 1024**3  # the run and its pool workers together
PEAK_HOME_BYTES = 600 * 1024**2  # warehouse, spill files, models, curves, Dagster instance


def _disk_usage(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:  # a spill file gone between listing and stat
                continue
    return total


def _run_measured(home: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    """`bambam run` in a child process; peak RSS of its process tree and peak size of the home."""
    peaks = {"rss": 0, "home": 0}
    done = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "bambam_assets.cli.main", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peaks["rss"] = max(peaks["rss"], sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            peaks["home"] = max(peaks["home"], _disk_usage(home))
            done.wait(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=900)
    done.set()
    thread.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), peaks


def _materialized_partitions(instance: dg.DagsterInstance, key: str, run_id: str) -> int:
    records = instance.get_records_for_run(run_id).records
    return sum(1 for r in records if r.event_log_entry.dagster_event is not None
               and r.event_log_entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
               and r.event_log_entry.dagster_event.asset_key == dg.AssetKey(key))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("scale") / "home"
    demo_data.generate(home / "raw", PARKS, 20, date(2025, 1, 1), AS_OF, seed=11, qt_days=0)
    return home


def test_every_park_under_low_duckdb_limits_then_a_noop_run(home: Path) -> None:
    env = {**os.environ, "BAMBAM_HOME": str(home), "BAMBAM_AS_OF": AS_OF.isoformat(),
           "BAMBAM_FORECAST_DAYS": "60", **LIMITS}
    env.pop("BAMBAM_RAW", None)
    first, peaks = _run_measured(home, env)
    assert first.returncode == 0, first.stdout[-4000:]
    assert "WarehouseLimitError" not in first.stdout
    assert peaks["rss"] < PEAK_RSS_BYTES, f"peak RSS {peaks['rss'] / 2**30:.2f} GB"
    assert peaks["home"] < PEAK_HOME_BYTES, f"peak home {peaks['home'] / 2**20:.0f} MB"
    with wh.reader(home) as conn:
        entities = conn.execute("SELECT count(*) FROM entity_index").fetchall()[0][0]
        wti_days = conn.execute("SELECT count(*) FROM park_wti_daily").fetchall()[0][0]
    assert entities == len(PARKS) * 20 and wti_days > len(PARKS) * 60

    second, _ = _run_measured(home, env)
    assert second.returncode == 0, second.stdout[-4000:]
    instance = instance_at(home)
    runs = instance.get_run_records(limit=20)
    latest = {}
    for rec in runs:  # newest first: the second invocation's runs
        for key in ("posted_aggregates", "entity_forecast", "entity_backfill", "park_wti"):
            if key in {k.to_user_string() for k in (rec.dagster_run.asset_selection or ())}:
                latest.setdefault(key, rec.dagster_run.run_id)
    assert _materialized_partitions(instance, "entity_forecast", latest["entity_forecast"]) == 0
    assert _materialized_partitions(instance, "entity_backfill", latest["entity_backfill"]) == 0
    recomputed = _metadata(instance, latest["park_wti"], "park_days_recomputed")
    assert recomputed and set(recomputed) == {0}, json.dumps(recomputed)
    rebuilt = _metadata(instance, latest["posted_aggregates"], "rebuilt", "posted_aggregates")
    assert rebuilt == [False]


def _metadata(instance: dg.DagsterInstance, run_id: str, name: str,
              asset: str | None = None) -> list:
    """Metadata entry `name` of every materialization of a run (of `asset`) that has it."""
    out = []
    for r in instance.get_records_for_run(run_id).records:
        event = r.event_log_entry.dagster_event
        if event is None or event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        if asset is not None and event.asset_key != dg.AssetKey(asset):
            continue
        metadata = event.event_specific_data.materialization.metadata
        if name in metadata:
            out.append(metadata[name].value)
    return out

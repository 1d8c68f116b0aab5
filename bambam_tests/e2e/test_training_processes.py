"""Training across real `bambam run` processes: two concurrent runs never train one entity twice,
and after a kill -9 between two entities the registry matches the models on disk and only what
was not trained is trained on restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.models import registry, training_lock

REPO = Path(__file__).resolve().parents[2]
WAITING = "waiting for the training lock"


@pytest.fixture
def demo_home(tmp_path: Path) -> tuple[Path, dict]:
    """A home over demo raw data of MK (3 entities, three months) and the environment of a
    `bambam run` on it (short horizons: the training is what is tested)."""
    home, raw = tmp_path / "home", tmp_path / "raw"
    demo_data.generate(raw, ["MK"], 3, date(2024, 3, 1), date(2024, 5, 31), seed=7, qt_days=0)
    env = {**os.environ, "BAMBAM_HOME": str(home), "BAMBAM_RAW": str(raw),
           "BAMBAM_AS_OF": "2024-05-31", "BAMBAM_FORECAST_DAYS": "2", "BAMBAM_BACKFILL_DAYS": "2",
           "BAMBAM_TRAIN_MODE": "full", "DAGSTER_HOME": str(home / "dagster"),
           "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("BAMBAM_TEST_KILL_AFTER_MODELS", None)
    return home, env


def _start(env: dict, log: Path, **extra: str) -> subprocess.Popen:
    """`bambam run` as a child process (PYTHONPATH inherited: the code under test)."""
    return subprocess.Popen([sys.executable, "-m", "bambam_assets.cli.main", "run"], cwd=REPO,
                            env={**env, **extra}, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _registry(home: Path) -> dict[str, list[tuple[int, bool]]]:
    with duckdb.connect(str(HomePaths(home).warehouse), read_only=True) as conn:
        rows = conn.execute("SELECT entity_code, version, is_current FROM model_registry "
                            "ORDER BY 1, 2").fetchall()
    out: dict[str, list[tuple[int, bool]]] = {}
    for code, version, current in rows:
        out.setdefault(code, []).append((version, current))
    return out


def _on_disk(home: Path) -> dict[str, list[tuple[int, bool]]]:
    models = HomePaths(home).models
    return {e.name: [(v, v == registry.current_version(models, e.name))
                     for v in registry.kept_versions(models, e.name)]
            for e in sorted(models.iterdir()) if e.is_dir()}


def _trained_at(home: Path) -> dict[tuple[str, int], str]:
    models = HomePaths(home).models
    return {(code, v): registry.read_meta(models, code, v)["trained_at"]
            for code, versions in _on_disk(home).items() for v, _ in versions}


@pytest.mark.integration
def test_two_concurrent_bambam_runs_do_not_train_one_entity_twice(demo_home, tmp_path) -> None:
    home, env = demo_home
    logs = [tmp_path / "run1.log", tmp_path / "run2.log"]
    # A third training holds the lock until both runs have drawn their due list (every entity:
    # no model yet) and wait at the training step, so the two really overlap.
    with training_lock.training_lock(home, "test-holder"):
        procs = [_start(env, log) for log in logs]
        deadline = time.monotonic() + 300
        while not all(WAITING in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            assert all(p.poll() is None for p in procs), [log.read_text()[-2000:] for log in logs]
            time.sleep(0.5)
    codes = [p.wait(timeout=600) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], [t[-3000:] for t in texts]
    assert all("held by run test-holder" in t for t in texts)
    on_disk = _on_disk(home)
    assert len(on_disk) >= 2
    # one version per entity: trained by one run only; the registry says the same
    assert all(versions == [(1, True)] for versions in on_disk.values()), on_disk
    assert _registry(home) == on_disk
    # the run that got the lock second re-checked its due list and trained nothing
    with duckdb.connect(str(HomePaths(home).warehouse), read_only=True) as conn:
        actions = dict(conn.execute(
            "SELECT entity_code, action FROM retrain_evaluations").fetchall())
    assert all(actions[code].startswith("skipped: no longer due") for code in on_disk), actions


@pytest.mark.integration
def test_kill_9_between_two_entities_then_restart(demo_home, tmp_path) -> None:
    home, env = demo_home
    crashed = _start(env, tmp_path / "crash.log", BAMBAM_TEST_KILL_AFTER_MODELS="1")
    assert crashed.wait(timeout=600) == -signal.SIGKILL, (tmp_path / "crash.log").read_text()
    (first,) = _on_disk(home).items()  # one model landed (CURRENT switched) before the kill
    assert first[1] == [(1, True)]
    assert first[0] not in _registry(home)  # ... and the registry never heard of it
    before = _trained_at(home)

    restart = _start(env, tmp_path / "restart.log")
    assert restart.wait(timeout=600) == 0, (tmp_path / "restart.log").read_text()[-3000:]
    on_disk = _on_disk(home)
    assert len(on_disk) >= 2
    assert _registry(home) == on_disk  # every version on disk known, CURRENT flags agree
    # the entity trained before the kill was not trained again; the others were trained once
    assert on_disk[first[0]] == [(1, True)]
    assert _trained_at(home)[(first[0], 1)] == before[(first[0], 1)]
    assert all(versions == [(1, True)] for versions in on_disk.values()), on_disk
    with duckdb.connect(str(HomePaths(home).warehouse), read_only=True) as conn:
        (count,) = conn.execute("SELECT target_count_at_last_model FROM entity_index "
                                "WHERE entity_code = ?", [first[0]]).fetchone()
    assert count == registry.read_meta(HomePaths(home).models, first[0], 1)["target_count"]

"""Incremental backfill: after new and corrected facts, only the changed park days are
recomputed, and the file equals a recomputation of every day (the slow, obviously correct
reference)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.forecasts import backfill
from bambam_tests.builders import (
    FORECAST_AS_OF,
    FORECAST_FIRST_DAY,
    FORECAST_QUIET_DAY,
    build_forecast_home,
    insert_facts,
    local_fact,
)

CODES = ["MK1", "MK2", "MK3"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    home = build_forecast_home(tmp_path_factory.mktemp("incremental") / "home")
    backfill.run_backfill(lambda: wh.reader(home), home, CODES, FORECAST_AS_OF)
    return home


def _copy(base: Path, tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    shutil.copytree(base, home)
    return home


def _frame(res: backfill.BackfillResult) -> pd.DataFrame:
    return pd.read_parquet(res.path).reset_index(drop=True)


def test_nothing_new_recomputes_nothing(base: Path, tmp_path: Path) -> None:
    home = _copy(base, tmp_path, "same")
    results = backfill.run_backfill(lambda: wh.reader(home), home, CODES, FORECAST_AS_OF)
    assert all(r.unchanged and r.days_computed == 0 for r in results)
    assert all(r.days_kept > 0 for r in results)


def test_new_day_and_corrected_day_match_a_full_recompute(base: Path, tmp_path: Path) -> None:
    new_day = FORECAST_AS_OF + timedelta(days=1)
    home = _copy(base, tmp_path, "incremental")
    extra = pd.concat([
        local_fact("MK1", new_day, 10, 0, "ACTUAL", 41),  # a new day
        local_fact("MK1", new_day, 11, 0, "POSTED", 50),
        local_fact("MK1", FORECAST_QUIET_DAY, 12, 0, "ACTUAL", 17),  # a correction of an old day
    ])
    insert_facts(home, extra)
    incremental = backfill.run_backfill(lambda: wh.reader(home), home, CODES, new_day)
    by_code = {r.entity_code: r for r in incremental}
    assert by_code["MK1"].days_computed == 2 and not by_code["MK1"].unchanged
    assert by_code["MK2"].unchanged and by_code["MK3"].unchanged

    reference_home = _copy(home, tmp_path, "reference")
    reference = backfill.run_backfill(lambda: wh.reader(reference_home), reference_home, CODES,
                                      new_day, recompute_all=True)
    for inc, ref in zip(incremental, reference, strict=True):
        pd.testing.assert_frame_equal(_frame(inc), _frame(ref))
    mk1 = _frame(by_code["MK1"]).set_index(["park_date", "slot"])
    assert mk1.loc[(new_day, "10:00"), "actual"] == 41
    assert mk1.loc[(FORECAST_QUIET_DAY, "12:00"), "actual"] == 17


def test_days_leaving_the_window_are_dropped(base: Path, tmp_path: Path) -> None:
    home = _copy(base, tmp_path, "window")
    window = 30
    [res] = backfill.run_backfill(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                  window_days=window)
    assert res.days_computed == 0 and not res.unchanged  # only dropped days: rewritten
    frame = _frame(res)
    assert frame["park_date"].min() >= FORECAST_AS_OF - timedelta(days=window - 1)
    assert frame["park_date"].min() > FORECAST_FIRST_DAY


def test_a_model_arriving_reimputes_the_days_built_without_one(base: Path,
                                                               tmp_path: Path) -> None:
    home = _copy(base, tmp_path, "nomodel")
    models = home / "models"
    shutil.move(models / "MK1", tmp_path / "MK1_models")
    [without] = backfill.run_backfill(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF,
                                      recompute_all=True)
    assert "imputed" not in without.by_source
    shutil.move(tmp_path / "MK1_models", models / "MK1")
    [again] = backfill.run_backfill(lambda: wh.reader(home), home, ["MK1"], FORECAST_AS_OF)
    assert again.days_computed == without.days_computed and again.by_source["imputed"] > 0


def test_a_chunk_split_into_tasks_gives_the_same_files(base: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    """A daily run reads every entity's new day as one chunk; split into tasks of one entity
    (so both workers share it), every file equals the one written by a single task."""
    new_day = FORECAST_AS_OF + timedelta(days=1)
    extra = pd.concat([local_fact(c, new_day, 10 + i, 0, kind, 20 + 5 * i)
                       for i, c in enumerate(CODES) for kind in ("ACTUAL", "POSTED")])
    homes = {}
    for name in ("one_task", "split"):
        homes[name] = _copy(base, tmp_path, name)
        insert_facts(homes[name], extra)
    tasks: list[list[str]] = []
    original = backfill.backfill_task

    def spy(task):
        tasks.append([w.code for w in task.entities])
        return original(task)

    monkeypatch.setattr(backfill.worker_pool, "run_pool",
                        lambda fn, items, workers, on_result, ahead=0: [
                            on_result(item, spy(item), None) for item in items])
    whole = backfill.run_backfill(lambda: wh.reader(homes["one_task"]), homes["one_task"],
                                  CODES, new_day)
    assert tasks == [CODES]
    tasks.clear()
    monkeypatch.setattr(backfill, "TASK_ENTITIES", 1)
    split = backfill.run_backfill(lambda: wh.reader(homes["split"]), homes["split"], CODES,
                                  new_day)
    assert tasks == [[c] for c in CODES]
    for a, b in zip(whole, split, strict=True):
        assert a.days_computed == b.days_computed == 1
        pd.testing.assert_frame_equal(_frame(a), _frame(b))

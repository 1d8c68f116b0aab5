"""Worker-pool sizing, entity ordering and the crash-tolerant pool runner."""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import pytest

from bambam_assets.lib.models import batch, incremental, training
from bambam_assets.lib.models import worker_pool as wp

GB = 1024**3


# ---- top-level worker functions (the pool pickles them by reference) -------------------------

def square(x: int) -> int:
    return x * x


def square_or_raise(x: int) -> int:
    if x == 3:
        raise ValueError("bad entity 3")
    return x * x


def square_or_die(x: int) -> int:
    if x == 3:
        os._exit(7)  # a hard crash: no exception, the worker process just vanishes
    return x * x


def run_interval(x: int) -> tuple[float, float]:
    t = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes of the machine
    time.sleep(0.03)
    return t, time.monotonic()


def _collect(fn, items, workers):
    seen: list[tuple] = []
    wp.run_pool(fn, items, workers, lambda item, res, exc: seen.append((item, res, exc)))
    return seen


# ---- sizing --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("cpus", "available", "per_worker", "expected"),
    [
        (8, 10 * GB, 2 * GB, 4),     # RAM-bound: floor(0.8*10/2) = 4 < 8 CPUs
        (2, 64 * GB, 1 * GB, 2),     # CPU-bound
        (64, 512 * GB, 1 * GB, 16),  # capped at 16
        (8, 1 * GB, 4 * GB, 1),      # not even one fits: still one worker
        (8, 5 * GB, 2 * GB, 2),      # floor(0.8*5/2) = floor(2.0) = 2
        (8, 5 * GB - 1, 2 * GB, 1),  # one byte less: floor(1.99..) = 1
    ],
)
def test_worker_count(cpus: int, available: int, per_worker: int, expected: int) -> None:
    assert wp.worker_count(cpus, available, per_worker) == expected


def test_worker_count_custom_cap() -> None:
    assert wp.worker_count(32, 512 * GB, GB, cap=3) == 3


def test_estimate_bytes_per_worker() -> None:
    base = 300 * 1024**2
    assert wp.estimate_bytes_per_worker(0) == base
    assert wp.estimate_bytes_per_worker(450_000) == base + 64 * 450_000 * 20
    assert wp.estimate_bytes_per_worker(1000, n_features=13) == base + 64 * 1000 * 13


@pytest.mark.parametrize(("cpus", "workers", "expected"), [(16, 4, 4), (2, 2, 1), (7, 2, 3),
                                                          (2, 16, 1), (8, 0, 8)])
def test_nthread_per_worker(cpus: int, workers: int, expected: int) -> None:
    assert wp.nthread_per_worker(cpus, workers) == expected


def test_plan_workers_uses_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mem:
        available = 10 * GB
        total = 16 * GB

    monkeypatch.delenv("BAMBAM_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(wp.psutil, "cpu_count", lambda logical=True: 12)
    monkeypatch.setattr(wp.psutil, "virtual_memory", lambda: Mem())
    per = wp.estimate_bytes_per_worker(1_000_000)  # 300 MB + 1.28 GB
    assert int(0.8 * 10 * GB // per) == 5
    assert wp.plan_workers(1_000_000, reserved_bytes=0) == (5, 2)
    # by default DuckDB's writer memory limit (a quarter of 16 GB) counts as taken
    assert int(0.8 * (10 - 4) * GB // per) == 3
    assert wp.plan_workers(1_000_000) == (3, 4)
    monkeypatch.setenv("BAMBAM_DUCKDB_MEMORY_LIMIT", "8GiB")
    assert int(0.8 * (10 - 8) * GB // per) == 1
    assert wp.plan_workers(1_000_000) == (1, 12)


# ---- ordering ------------------------------------------------------------------------------------

def test_order_entities_tier_then_count_then_code() -> None:
    df = pd.DataFrame({
        "entity_code": ["TDL1", "DL5", "MK2", "XX9", "EP7", "MK1", "UF3", "AK4", "CA8"],
        "park_code": ["TDL", "DL", "MK", "XX", "EP", "MK", "UF", "AK", "CA"],
        "target_count": [99_999, 10, 500, 1_000_000, 800, 500, 7, 20_000, 300],
        "extra": range(9),
    })
    out = wp.order_entities(df)
    assert out["entity_code"].tolist() == [
        "AK4", "EP7", "MK1", "MK2",  # critical: count desc, tie (500) broken by code
        "CA8", "DL5",                # high
        "UF3",                       # medium
        "TDL1",                      # low
        "XX9",                       # unknown park: last, whatever its count
    ]
    assert out["extra"].tolist() == [7, 4, 5, 2, 8, 1, 6, 0, 3]  # whole rows move
    assert list(out.index) == list(range(9))


# ---- run_pool ------------------------------------------------------------------------------------

def test_run_pool_in_process_reports_errors_and_goes_on() -> None:
    seen = _collect(square_or_raise, [1, 2, 3, 4], workers=1)
    assert [(i, r) for i, r, _ in seen] == [(1, 1), (2, 4), (3, None), (4, 16)]
    assert isinstance(seen[2][2], ValueError) and str(seen[2][2]) == "bad entity 3"


def test_run_pool_one_item_raises_others_return() -> None:
    seen = _collect(square_or_raise, list(range(1, 7)), workers=2)
    by_item = {i: (r, e) for i, r, e in seen}
    assert len(seen) == 6 and set(by_item) == {1, 2, 3, 4, 5, 6}
    assert {i: r for i, (r, e) in by_item.items() if e is None} == {1: 1, 2: 4, 4: 16, 5: 25,
                                                                    6: 36}
    assert isinstance(by_item[3][1], ValueError) and by_item[3][0] is None


def test_run_pool_worker_hard_crash_only_culprit_fails() -> None:
    seen = _collect(square_or_die, list(range(1, 8)), workers=2)
    items = [i for i, _, _ in seen]
    assert sorted(items) == list(range(1, 8))  # each item reported exactly once
    by_item = {i: (r, e) for i, r, e in seen}
    assert isinstance(by_item[3][1], BrokenProcessPool) and by_item[3][0] is None
    assert {i: r for i, (r, e) in by_item.items() if i != 3} == {1: 1, 2: 4, 4: 16, 5: 25,
                                                                6: 36, 7: 49}
    assert all(e is None for i, (_, e) in by_item.items() if i != 3)


def test_run_pool_keeps_at_most_workers_items_in_flight() -> None:
    seen = _collect(run_interval, list(range(8)), workers=2)
    spans = {i: r for i, r, _ in seen}
    assert sorted(spans) == list(range(8))
    # Items are submitted in order and one more only when one finished, so no instant sees
    # more than two running. (Start order itself is not asserted: a fresh worker's first
    # unpickling can make it start item 1 after the other worker already took item 2.)
    for i, (start, _end) in spans.items():
        running = sum(1 for s, e in spans.values() if s <= start < e)
        assert running <= 2, (i, spans)
    # submitted in order: item i+2 can only start once item i or i+1 has finished
    for i in range(6):
        assert spans[i + 2][0] >= min(spans[i][1], spans[i + 1][1]) - 1e-3


def test_pool_rows_count_every_fit_of_the_batch() -> None:
    """Whether a training batch gets worker processes depends on the rows its fits will see:
    a full retrain of an hourly-fallback entity still fits its POSTED model (thousands of
    rows), and an update fits its window."""
    def rows(n: int) -> pd.DataFrame:
        return pd.DataFrame({"y": range(n)})

    small = training.MIN_TARGETS_FOR_XGB - 1
    result = batch.BatchResult(modes={"FB": incremental.FULL, "XG": incremental.FULL,
                                      "UP": incremental.INCREMENTAL})
    groups = {"FB": rows(small), "XG": rows(600), "UP": rows(250)}
    posted = {"FB": rows(3_000), "XG": rows(2_000), "UP": rows(9_999)}  # UP: not refitted

    def prepared(groups, posted):  # what _prepare_chunk hands the pool, per entity
        return {c: (g, posted.get(c), None, None, False) for c, g in groups.items()}

    assert batch.pool_rows(result, prepared(groups, posted)) == 3_000 + 600 + 2_000 + 250
    assert batch.pool_rows(result, prepared(groups, {})) == 600 + 250
    # a daily run's 300 fallback-size full retrains no longer count as nothing
    many = batch.BatchResult(modes={f"E{i}": incremental.FULL for i in range(300)})
    fallbacks = prepared({f"E{i}": rows(small) for i in range(300)},
                         {f"E{i}": rows(2_000) for i in range(300)})
    assert batch.pool_rows(many, fallbacks) >= batch.POOL_MIN_FULL_ROWS

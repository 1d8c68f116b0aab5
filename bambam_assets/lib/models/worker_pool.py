"""Worker-pool sizing, entity ordering and a crash-tolerant process pool for per-entity training.

Workers never open DuckDB: the parent reads a batch's rows once, hands each worker its entity's
data, and collects the results.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import pandas as pd
import psutil

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.parks import TIER_RANK, tier_of_park

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
RAM_SHARE = 0.8  # leave a fifth of the free RAM to the parent, the OS and DuckDB
# Fixed cost of one worker: the interpreter with numpy, pandas and xgboost imported measured
# ~150 MB RSS; 300 MB covers that plus xgboost's per-thread buffers and the boosters it holds.
BASE_WORKER_BYTES = 300 * 1024**2
# Bytes per (row x feature) cell. Measured peak ~37-46 B/cell (450k and 100k rows x 20 features,
# hist): the float64 frame, its float32 copy, the train/val DMatrix, the refit DMatrix on all
# rows and the quantized hist index. 64 B leaves headroom for extra frame copies in features code.
BYTES_PER_CELL = 64


def worker_count(
    n_cpus: int, available_bytes: int, est_bytes_per_worker: int, cap: int = MAX_WORKERS
) -> int:
    """max(1, min(cpus, floor(0.8 * available / per-worker estimate), cap))."""
    by_ram = int(RAM_SHARE * available_bytes // max(1, est_bytes_per_worker))
    return max(1, min(n_cpus, by_ram, cap))


def estimate_bytes_per_worker(max_rows: int, n_features: int = 20) -> int:
    """RAM one worker needs to train the largest entity: a fixed base plus 64 B per cell."""
    return BASE_WORKER_BYTES + BYTES_PER_CELL * max(0, max_rows) * max(1, n_features)


def nthread_per_worker(n_cpus: int, workers: int) -> int:
    """XGBoost threads per worker, so that workers x nthread does not oversubscribe the CPUs."""
    return max(1, n_cpus // max(1, workers))


def plan_workers(max_rows: int, n_features: int = 20,
                 reserved_bytes: int | None = None) -> tuple[int, int]:
    """(workers, nthread per worker) for this machine now (CPU count and available RAM).

    The available RAM counts `reserved_bytes` as taken, by default DuckDB's writer memory limit
    (warehouse.writer_memory_bytes): the parent closes its read before the pool starts, but a
    warehouse writer step (posted_aggregates, an ingest) may run beside the training step in
    another process and grow up to that limit while the pool runs.
    """
    cpus = psutil.cpu_count(logical=True) or 1
    reserved = warehouse.writer_memory_bytes() if reserved_bytes is None else reserved_bytes
    available = max(0, psutil.virtual_memory().available - reserved)
    workers = worker_count(cpus, available, estimate_bytes_per_worker(max_rows, n_features))
    return workers, nthread_per_worker(cpus, workers)


def order_entities(df: pd.DataFrame) -> pd.DataFrame:
    """Training order: tier rank (critical first), then target_count descending, then code.

    Takes and returns one row per entity (columns entity_code, park_code, target_count, ...),
    index reset; the biggest critical entities start first so the pool's tail is small ones.
    """
    rank_of = {p: TIER_RANK[tier_of_park(p)] for p in df["park_code"].dropna().unique()}
    rank = df["park_code"].map(rank_of).fillna(TIER_RANK["other"]).astype(int)
    key = pd.DataFrame({"rank": rank, "neg_count": -df["target_count"].fillna(0),
                        "code": df["entity_code"]}, index=df.index)
    order = key.sort_values(["rank", "neg_count", "code"], kind="stable").index
    return df.loc[order].reset_index(drop=True)


def _context() -> mp.context.BaseContext:
    # forkserver: fast starts without fork's inherited threads/locks; spawn where it is missing
    try:
        return mp.get_context("forkserver")
    except ValueError:
        return mp.get_context("spawn")


OnResult = Callable[[T, R | None, BaseException | None], None]


def run_pool(
    fn: Callable[[T], R], items: Iterable[T], workers: int, on_result: OnResult,
    ahead: int = 0,
) -> None:
    """Run `fn(item)` for every item on `workers` processes; report each via `on_result`.

    `fn` must be a top-level function of an importable module (it is pickled by reference) and
    items must be picklable. Items are drawn from `items` lazily, one when a worker has room, so
    a generator that reads each item's data (the curve steps' DuckDB reads in the parent)
    overlaps its reads with the workers' computing; `ahead` more items are submitted than there
    are workers, so a worker that finishes finds its next item ready instead of waiting for the
    parent's next read (and at most workers + ahead + 1 items are held). Items start in the
    given order; `on_result(item, result, None)` or `on_result(item, None, exc)` is called in the
    parent as each finishes, so the caller can emit per-entity events. An exception of one item
    never stops the others. A worker that dies hard (os._exit, OOM kill) breaks the pool: the
    items in flight at that moment are rerun one at a time in fresh pools, so only the culprit is
    reported (with BrokenProcessPool); the rest go on.
    workers <= 1 runs in-process (no pool; Exception subclasses are reported, KeyboardInterrupt
    propagates).
    """
    if workers <= 1:
        for item in items:
            try:
                result = fn(item)
            except Exception as exc:  # reported per item, the batch goes on
                on_result(item, None, exc)
            else:
                on_result(item, result, None)
        return
    source: Iterator[T] = iter(items)
    pending: deque[T] = deque()  # items drawn from `source` but not started (a pool broke)
    while True:
        suspects = _run_until_broken(fn, pending, source, workers, on_result, ahead)
        if not suspects and not pending:
            nxt = next(source, _END)
            if nxt is _END:
                return
            pending.append(nxt)  # type: ignore[arg-type]
        if not suspects and pending:  # broke before anything was in flight: one at a time
            suspects = [pending.popleft()]
        for item in suspects:  # alone, so a crash can only be this item's own
            _run_until_broken(fn, deque([item]), iter(()), 1, on_result, isolate=True)


_END = object()


def _run_until_broken(
    fn: Callable[[T], R], pending: deque[T], source: Iterator[T], workers: int,
    on_result: OnResult, ahead: int = 0, isolate: bool = False,
) -> list[T]:
    """Drain `pending`, then `source`, through one pool; on a broken pool return the items that
    were in flight.

    At most `workers` + `ahead` items are in flight, which bounds the suspects of a crash to that
    set.
    With `isolate` (one item alone) a crash is that item's own and is reported for it.
    """
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        in_flight: dict[Future, T] = {}

        def fill() -> bool:
            while len(in_flight) < workers + ahead:
                if pending:
                    item = pending.popleft()
                else:
                    nxt = next(source, _END)
                    if nxt is _END:
                        return True
                    item = nxt  # type: ignore[assignment]
                try:
                    in_flight[pool.submit(fn, item)] = item
                except BrokenProcessPool:  # died since the last wait: item was never started
                    pending.appendleft(item)
                    return False
            return True

        alive = fill()
        while in_flight and alive:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            finished = []
            for fut in done:
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool) and not isolate:
                    alive = False
                    continue
                finished.append((in_flight.pop(fut), fut, exc))
            # refill before reporting: the caller's on_result (storing a model) overlaps training
            alive = alive and fill()
            for item, fut, exc in finished:
                on_result(item, None if exc else fut.result(), exc)
        return list(in_flight.values())  # empty unless the pool broke: the suspects


# The curve steps (backfill, forecast) hand each worker a chunk of entities whose inputs the
# parent has read. Below this many entities to compute they run in-process: a worker costs about
# a second to start (imports), more than a second core gains on a few entities.
CURVE_POOL_MIN_ENTITIES = 40
# Peak RSS of one curve worker, measured on a chunk of 25 forecast entities (730-day horizon) and
# of 5 backfill entity-years: ~400 MB; 1 GB leaves room for larger parks and longer histories.
CURVE_WORKER_BYTES = 1024**3


def plan_curve_workers(n_entities: int,
                       reserved_bytes: int | None = None) -> tuple[int, int | None]:
    """(workers, XGBoost threads per worker or None for its default) for a curve step over
    `n_entities` entities: in-process under CURVE_POOL_MIN_ENTITIES, else one worker per CPU as
    the available RAM allows (the parent's DuckDB reads count as `reserved_bytes`, by default a
    writer's memory limit)."""
    if n_entities < CURVE_POOL_MIN_ENTITIES:
        return 1, None
    cpus = psutil.cpu_count(logical=True) or 1
    reserved = warehouse.writer_memory_bytes() if reserved_bytes is None else reserved_bytes
    available = max(0, psutil.virtual_memory().available - reserved)
    workers = worker_count(cpus, available, CURVE_WORKER_BYTES)
    return workers, (nthread_per_worker(cpus, workers) if workers > 1 else None)

"""A crash-tolerant process pool that draws its items lazily, and its worker count.

Generic: the per-entity steps (training, forecast, backfill) and the ingest's parse workers use
it. Workers never open DuckDB: the parent reads each item's data and writes the results.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
RAM_SHARE = 0.8  # leave a fifth of the free RAM to the parent, the OS and DuckDB

def worker_count(
    n_cpus: int, available_bytes: int, est_bytes_per_worker: int, cap: int = MAX_WORKERS
) -> int:
    """max(1, min(cpus, floor(0.8 * available / per-worker estimate), cap))."""
    by_ram = int(RAM_SHARE * available_bytes // max(1, est_bytes_per_worker))
    return max(1, min(n_cpus, by_ram, cap))


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

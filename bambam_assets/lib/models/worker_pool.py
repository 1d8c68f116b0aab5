"""Worker-pool sizing and entity ordering for the per-entity steps (the pool itself:
lib/core/process_pool.py).

Workers never open DuckDB: the parent reads a batch's rows once, hands each worker its entity's
data, and collects the results.
"""

from __future__ import annotations

import pandas as pd
import psutil

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.parks import TIER_RANK, tier_of_park
from bambam_assets.lib.core.process_pool import (  # noqa: F401  (re-exported for the steps)
    MAX_WORKERS,
    RAM_SHARE,
    run_pool,
    worker_count,
)

# Fixed cost of one worker: the interpreter with numpy, pandas and xgboost imported measured
# ~150 MB RSS; 300 MB covers that plus xgboost's per-thread buffers and the boosters it holds.
BASE_WORKER_BYTES = 300 * 1024**2
# Bytes per (row x feature) cell. Measured peak ~37-46 B/cell (450k and 100k rows x 20 features,
# hist): the float64 frame, its float32 copy, the train/val DMatrix, the refit DMatrix on all
# rows and the quantized hist index. 64 B leaves headroom for extra frame copies in features code.
BYTES_PER_CELL = 64


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

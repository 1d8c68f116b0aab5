"""Train a batch of entities on a worker pool and store each result as a registry version.

The parent reads the batch's rows once (DuckDB), hands each worker one entity's frame (workers
never open the warehouse), stores every result through the registry (atomic files), and returns
the rows the caller writes to the warehouse in one short connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import park_of_entity
from bambam_assets.lib.models import guard, incremental, registry, training, worker_pool

# Bump when the training code changes in a way that should retrain every entity.
# 2: POSTED model and conformal band scale (issue 14); 3: park_year replaces season_year;
# 4: chain_ratio (the forecast's ACTUAL chained from its POSTED forecast); 5: party_evening
TRAINING_CODE_VERSION = "5"
# Below this many rows to fit, a batch runs in-process: each worker costs about a second to
# start (imports), more than small work gains from a second core. Measured on the daily
# benchmark's 24 critical entities: 24 incremental updates took 1.7 s in-process vs 2.5 s on
# two workers; 24 full retrains (≈ 60,000 target rows) 4.7 s in-process vs 3.1 s. The rows
# counted are every fit's (pool_rows): a full retrain's POSTED sample is at least 2,000 rows
# where the entity has them, even for an hourly-fallback entity, and a full-scale daily run's
# hundreds of such retrains and updates ran in-process on one core before (README, issue 13).
POOL_MIN_FULL_ROWS = 20_000
# With a `read_chunk`, the batch's rows are read and trained in chunks of at most this many target
# rows (entities in training order), the next chunk read while the pool trains this one: the
# parent holds at most two chunks' rows however long the history. Read at once, three years of
# 1,694 entities held 10.5 GB in the parent during training (12.8 M target rows, their POSTED
# sample, and groupby's copy of both; measured).
CHUNK_TARGET_ROWS = 1_500_000

# codes -> (training rows, POSTED rows) of those entities (features.build_training_frame and
# build_posted_frame of one read)
ChunkReader = Callable[[list[str]], tuple[pd.DataFrame, "pd.DataFrame | None"]]


def params_hash() -> str:
    """Hash of the model parameters: a change retrains every entity."""
    blob = json.dumps(
        {"xgb": training.XGB_PARAMS, "posted_xgb": training.POSTED_XGB_PARAMS,
         "rounds": training.MAX_ROUNDS, "early": training.EARLY_STOPPING,
         "min": training.MIN_TARGETS_FOR_XGB,
         "reopen": [training.REOPEN_GAP_DAYS, training.REOPEN_DAYS, training.REOPEN_WEIGHT]},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TrainTask:
    entity_code: str
    queue_type: str
    frame: pd.DataFrame
    nthread: int
    started_at: str = ""  # the batch's start (ISO): a full retrain's last_full_retrain_at
    base: incremental.BaseModel | None = None  # set: try an incremental update from it
    policy: incremental.IncrementalPolicy | None = None
    from_tail: bool = False  # frame holds only the newest rows: an update or nothing
    posted: pd.DataFrame | None = None  # the POSTED model's rows (features.build_posted_frame)
    incumbent: guard.Incumbent | None = None  # the current version: judged on the same rows
    ratio_prior: float = training.POSTED_RATIO_PRIOR  # a sparse entity's POSTED-ratio prior


def train_task(task: TrainTask) -> training.TrainedEntity:
    """Worker entry point (top-level so the pool can pickle it by reference).

    With a base model, continue boosting it on its update window (lib/models/incremental.py); when
    there is no row for that, or without a base, train in full (never from a tail read: then it
    fails). The mode is recorded in the version's metrics.
    """
    trained = None
    if task.base is not None:
        trained = incremental.continue_training(task.frame, task.base, task.queue_type,
                                                nthread=task.nthread, policy=task.policy)
    if trained is None and task.from_tail:
        raise RuntimeError("no rows to update the model from, and only the newest rows were "
                           "read: retrain it in full (BAMBAM_TRAIN_MODE=full)")
    if trained is None:
        trained = training.train_entity(task.frame, task.queue_type, nthread=task.nthread,
                                        posted=task.posted, ratio_prior=task.ratio_prior)
        trained.metrics.update(
            training_mode=incremental.FULL, last_full_retrain_at=task.started_at or None,
            data_end=(pd.Timestamp(task.frame["observed_at"].max()).isoformat()
                      if len(task.frame) else None),
        )
    trained.entity_code = task.entity_code
    if task.incumbent is not None and trained.test_rows is not None:
        now = datetime.fromisoformat(task.started_at) if task.started_at else datetime.now(UTC)
        trained.metrics["guard"] = guard.evidence(
            trained.test_rows, trained.test_pred, task.incumbent, challenger_kind=trained.kind,
            mode=trained.metrics.get("training_mode", incremental.FULL), now=now,
            code_version=TRAINING_CODE_VERSION, params_hash=params_hash())
    trained.test_rows = trained.test_pred = None  # not shipped back to the parent
    return trained


@dataclass
class BatchResult:
    outcomes: list[registry.SaveOutcome] = field(default_factory=list)
    trained: dict[str, training.TrainedEntity] = field(default_factory=dict)
    failures: dict[str, BaseException | str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # entity -> why no model was trained
    modes: dict[str, str] = field(default_factory=dict)  # entity -> planned full | incremental
    mode_reasons: dict[str, str] = field(default_factory=dict)
    target_counts: dict[str, int] = field(default_factory=dict)
    workers: int = 1
    nthread: int = 1
    seconds: float = 0.0
    chunks: int = 1  # reads of the batch's rows (read_chunk), one per chunk


def train_batch(
    frame: pd.DataFrame | None,
    entity_codes: Sequence[str],
    queue_types: dict[str, str],
    models_root: Path,
    on_done: Callable[[int, int, str, str | None], None] | None = None,
    workers: int | None = None,
    mode: str = incremental.FULL,
    now: datetime | None = None,
    policy: incremental.IncrementalPolicy | None = None,
    target_counts: dict[str, int] | None = None,
    tail_entities: Sequence[str] = (),
    plan: dict[str, tuple[str, str]] | None = None,
    posted_frame: pd.DataFrame | None = None,
    read_chunk: ChunkReader | None = None,
    chunk_rows: int = CHUNK_TARGET_ROWS,
) -> BatchResult:
    """Train every entity in `entity_codes` from its rows of `frame` (build_training_frame), or
    with `read_chunk` (then `frame` is None and `target_counts` is required) from the rows it
    reads per chunk of at most `chunk_rows` target rows, in training order.

    `target_counts`: each entity's true target count, needed when `frame` holds only the newest
    rows of the `tail_entities` (read for an incremental update, see `plan_modes`); such an
    entity is never retrained in full from its tail: if it is not updated it is a failure.
    `plan`: the (mode, why) per entity `plan_modes` already chose before that read; used as is
    rather than decided again.
    `posted_frame`: the POSTED model's rows (features.build_posted_frame) of the entities
    retrained in full; an entity without rows there gets no POSTED model.

    Entities with no target row at all (POSTED-only rides) get no model; they are listed in
    `skipped` with the reason, never dropped silently. Order: tier, then target count
    descending. `on_done(k, n, entity, error)` reports progress.
    `mode` "full" retrains every entity; "auto"/"incremental" continue boosting the current model
    where `incremental.choose_mode` allows (planned modes in `modes`; a worker falls back to a
    full retrain when there is no row to update from, and the version's metrics say which ran).
    `now` is the instant recorded as trained_at (default: the real clock).
    """
    started = time.perf_counter()
    fixed_clock = now  # None: each version records its own save time
    now = (now or datetime.now(UTC)).astimezone(UTC)
    result = BatchResult()
    if read_chunk is None:  # the caller's frames, one chunk
        first = (frame, posted_frame)
        in_memory = _entity_slices(frame)
        counts_of = {c: (target_counts or {}).get(c, in_memory.get(c, (0, 0))[1]
                          - in_memory.get(c, (0, 0))[0]) for c in entity_codes}
    else:
        counts_of = {c: int((target_counts or {}).get(c, 0)) for c in entity_codes}
    del frame, posted_frame  # held by `first` (or read per chunk): freed as chunks are used
    counts = pd.DataFrame({
        "entity_code": list(entity_codes),
        "park_code": [park_of_entity(c) or "" for c in entity_codes],
        "target_count": [counts_of[c] for c in entity_codes],
    })
    ordered = list(worker_pool.order_entities(counts).entity_code)
    result.target_counts = dict(zip(counts.entity_code, counts.target_count, strict=True))
    max_rows = int(counts.target_count.max()) if len(counts) else 0
    planned_workers, _ = worker_pool.plan_workers(max_rows)
    chunks = ([ordered] if read_chunk is None else
              _chunk_codes(ordered, result.target_counts, chunk_rows))
    if read_chunk is not None:
        first = read_chunk(chunks[0]) if chunks else (None, None)
    result.chunks = len(chunks)
    prepared = _prepare_chunk(result, chunks[0] if chunks else [], first, models_root, mode, now,
                              policy, plan, set(tail_entities))
    del first
    if workers is None and len(chunks) <= 1 and pool_rows(result, prepared) < POOL_MIN_FULL_ROWS:
        planned_workers = 1  # small work: starting workers would cost more than they save
    result.workers = min(workers or planned_workers, max(1, len(ordered)))
    result.nthread = worker_pool.nthread_per_worker(psutil.cpu_count(logical=True) or 1,
                                                    result.workers)
    # the POSTED-ratio prior of sparse entities, pooled over the first chunk's mature rides (the
    # whole batch when it is one chunk; the first chunk holds the most targets: `ordered`)
    prior = ratio_prior(models_root, [
        g for code, (g, _posted, _base, _inc, tail) in prepared.items()
        if not tail and len(g) >= training.MIN_TARGETS_FOR_XGB
        and queue_types.get(code, "STANDBY") != "PRIORITY"])
    # progress total: the entities that train (a later chunk's count is known once it is read)
    total = [len(prepared) + sum(1 for chunk in chunks[1:] for c in chunk
                                 if result.target_counts.get(c, 0) > 0)]

    def tasks() -> Iterator[TrainTask]:
        """The chunks' tasks in `ordered`'s order; the next chunk is read (a DuckDB read in a
        thread: it releases the GIL) while the pool trains this one, so at most two chunks'
        rows are held at once."""
        nonlocal prepared
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bambam-chunk") as ex:
            ahead = ex.submit(read_chunk, chunks[1]) if read_chunk and len(chunks) > 1 else None
            for i in range(len(chunks)):
                if i > 0:
                    data = ahead.result()
                    ahead = (ex.submit(read_chunk, chunks[i + 1]) if i + 1 < len(chunks)
                             else None)
                    prepared = _prepare_chunk(result, chunks[i], data, models_root, mode, now,
                                              policy, plan, set(tail_entities))
                    del data
                    total[0] += len(prepared) - sum(1 for c in chunks[i]
                                                    if result.target_counts.get(c, 0) > 0)
                current, prepared = prepared, {}
                for code in list(current):
                    g, posted, base, incumbent, tail = current.pop(code)
                    # a copy per task, made when the pool has room for it: the chunk's frame is
                    # not held twice (groupby's copies of every entity doubled the peak)
                    yield TrainTask(code, queue_types.get(code, "STANDBY"), g.copy(),
                                    result.nthread, now.isoformat(), base, policy,
                                    from_tail=tail,
                                    posted=None if posted is None else posted.copy(),
                                    incumbent=incumbent, ratio_prior=prior)

    done = [0]
    kill_after = settings.kill_after_models_hook()  # a crash-safety test's hook; None in production

    def on_result(task: TrainTask, trained, exc) -> None:
        done[0] += 1
        code = task.entity_code
        if exc is None:
            try:  # storing is the parent's job: one writer per entity directory
                outcome = registry.save_version(
                    models_root, trained, code_version=TRAINING_CODE_VERSION,
                    params_hash=params_hash(), target_count=result.target_counts[code],
                    now=fixed_clock,
                    guard=trained.metrics.get("guard"),  # both scored on the same rows
                )
                result.outcomes.append(outcome)
                result.trained[code] = trained
                if kill_after is not None and len(result.outcomes) >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)  # models on disk, registry not yet
            except Exception as save_exc:  # noqa: BLE001 - recorded per entity
                exc = save_exc
        if exc is not None:
            result.failures[code] = exc
        if on_done:
            error = None if exc is None else f"{type(exc).__name__}: {exc}"
            on_done(done[0], max(total[0], done[0]), code, error)

    worker_pool.run_pool(train_task, tasks(), result.workers, on_result)
    result.seconds = time.perf_counter() - started
    return result


def _entity_slices(frame: pd.DataFrame | None) -> dict[str, tuple[int, int]]:
    """Per entity: the [start, end) row positions of its rows in `frame`, which holds each
    entity's rows together (the feature reads order by entity_code)."""
    if frame is None or frame.empty:
        return {}
    codes = frame["entity_code"].to_numpy()
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(codes)]))
    out = {str(codes[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
    if len(out) != len(starts):
        raise ValueError("training rows are not grouped by entity_code")
    return out


def _chunk_codes(ordered: Sequence[str], counts: dict[str, int], rows: int) -> list[list[str]]:
    """`ordered` cut into consecutive chunks of at most `rows` target rows (an entity with more
    is a chunk of its own)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    held = 0
    for code in ordered:
        n = int(counts.get(code, 0))
        if current and held + n > rows:
            chunks.append(current)
            current, held = [], 0
        current.append(code)
        held += n
    if current:
        chunks.append(current)
    return chunks


# entity -> (its rows, its POSTED rows, the base of an update, the incumbent, only its newest rows
# were read)
Prepared = dict[str, tuple[pd.DataFrame, "pd.DataFrame | None", "incremental.BaseModel | None",
                           "guard.Incumbent | None", bool]]


def _prepare_chunk(result: BatchResult, codes: Sequence[str],
                   frames: tuple[pd.DataFrame | None, pd.DataFrame | None], models_root: Path,
                   mode: str, now: datetime, policy: incremental.IncrementalPolicy | None,
                   plan: dict[str, tuple[str, str]] | None, tails: set[str]) -> Prepared:
    """Per entity of `codes` (in order) that will train: its rows (a slice of the chunk's frame,
    not a copy), its POSTED rows, the base of an update, the incumbent, whether only its newest
    rows were read. Entities without rows are recorded as skipped; an entity planned
    in full but read as a tail as failed."""
    frame, posted_frame = frames
    rows, posted_rows = _entity_slices(frame), _entity_slices(posted_frame)
    out: Prepared = {}
    for code in codes:
        if code not in rows:
            result.skipped[code] = ("no target observations (ACTUAL or PRIORITY) up to the "
                                    "as-of date")
            continue
        incumbent = guard.read_incumbent(models_root, code)
        base = _plan_mode(result, models_root, code, mode, now, policy, (plan or {}).get(code),
                          incumbent)
        if code in tails and base is None:
            # planned in full, but only its newest rows were read: never train on them
            result.failures[code] = RuntimeError(
                f"only the newest rows were read for an update, but {result.mode_reasons[code]}")
            continue
        a, b = rows[code]
        posted = None
        if code in posted_rows:
            pa, pb = posted_rows[code]
            posted = posted_frame.iloc[pa:pb]
        out[code] = (frame.iloc[a:b], posted, base, incumbent, code in tails)
    return out


RATIO_PRIOR_FILE = ".posted_ratio_prior.json"  # under the models root (not an entity dir)
RATIO_PRIOR_MIN_ROWS = 1000  # POSTED-matched rows of mature rides needed to renew the prior


def ratio_prior(models_root: Path, mature_frames: Sequence[pd.DataFrame]) -> float:
    """The cross-ride actual/POSTED ratio sparse entities are shrunk toward: pooled over the
    mature (XGBoost-size, STANDBY) frames of this batch when they hold enough matched rows (and
    stored for later batches), else the stored one, else training.POSTED_RATIO_PRIOR."""
    path = Path(models_root) / RATIO_PRIOR_FILE
    pooled = training.pooled_posted_ratio(mature_frames)
    if pooled is not None and pooled[1] >= RATIO_PRIOR_MIN_ROWS:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"ratio": pooled[0], "rows": pooled[1]}))
        os.replace(tmp, path)  # atomic: a reader sees the old prior or the new one
        return pooled[0]
    try:
        return float(json.loads(path.read_text())["ratio"])
    except (FileNotFoundError, ValueError, KeyError):
        return training.POSTED_RATIO_PRIOR


def pool_rows(result: BatchResult, prepared: Prepared) -> int:
    """Rows the batch's XGBoost fits will see: the target rows of each full retrain of XGBoost
    size and of each incremental update (its update window, as read), and the POSTED rows of
    each full retrain (its POSTED model, fitted whatever the target count)."""
    rows = 0
    for code, (g, posted, _base, _incumbent, _tail) in prepared.items():
        n = len(g)
        mode = result.modes.get(code)
        if mode == incremental.INCREMENTAL:
            rows += n
        elif mode == incremental.FULL:
            rows += (n if n >= training.MIN_TARGETS_FOR_XGB else 0)
            rows += 0 if posted is None else len(posted)
    return rows


def _choose(models_root: Path, code: str, target_count: int, mode: str, now: datetime,
            policy: incremental.IncrementalPolicy | None) -> tuple[str, str]:
    """(FULL | INCREMENTAL, why) for one entity; reads only its CURRENT meta."""
    meta = None
    if mode != incremental.FULL:
        version = registry.current_version(models_root, code)
        meta = registry.read_meta(models_root, code, version) if version is not None else None
    new_targets = target_count - int((meta or {}).get("target_count") or 0)
    return incremental.choose_mode(mode, meta, new_targets, now,
                                   code_version=TRAINING_CODE_VERSION,
                                   params_hash=params_hash(), policy=policy)


def plan_modes(models_root: Path, target_counts: dict[str, int], mode: str, now: datetime,
               policy: incremental.IncrementalPolicy | None = None,
               ) -> dict[str, tuple[str, str]]:
    """Entity -> (FULL | INCREMENTAL, why), decided before reading any rows: the caller reads
    only the newest `policy.min_window_rows` rows of the INCREMENTAL ones (their update window)
    and passes this plan on to `train_batch`."""
    now = now.astimezone(UTC)
    return {code: _choose(models_root, code, n, mode, now, policy)
            for code, n in target_counts.items()}


def _plan_mode(result: BatchResult, models_root: Path, code: str, mode: str, now: datetime,
               policy: incremental.IncrementalPolicy | None,
               planned: tuple[str, str] | None = None,
               incumbent: guard.Incumbent | None = None) -> incremental.BaseModel | None:
    """Full vs incremental for one entity: `planned` if given, else decided from its CURRENT
    meta; the base model of an update (from `incumbent` when given, else loaded)."""
    chosen, why = planned or _choose(models_root, code, result.target_counts[code], mode, now,
                                     policy)
    result.modes[code], result.mode_reasons[code] = chosen, why
    if chosen != incremental.INCREMENTAL:
        return None
    if incumbent is not None:
        return incremental.BaseModel(
            version=incumbent.version, models=dict(incumbent.models),
            encodings=incumbent.encodings, data_end=incumbent.data_end,
            test_end=incumbent.test_end, last_full_retrain_at=incumbent.last_full_retrain_at)
    return incremental.base_from_loaded(registry.load_model(models_root, code))

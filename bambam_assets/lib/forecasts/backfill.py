"""Historical ACTUAL curves per entity (the legacy backfill never ran: hours, file names broke).

For every past park day on which the entity has facts (park_date <= as_of, optionally only the
last `window_days`), every 5-minute slot within the park's hours, EMH mornings, EMH evenings and
party nights included (slots.py), gets, in this order:

1. `observed`: the nearest target observation (ACTUAL; PRIORITY without 8888 for a PRIORITY
   entity) within +-5 minutes of the slot;
2. `closed` (actual NULL): a CLOSED fact within the slot's POSTED window [t-15 min, t+10 min] and
   no POSTED after that CLOSED fact up to t+10 min;
3. `imputed`: the slot's POSTED is the nearest at or after the slot within 10 minutes, else the
   nearest before it within 15 minutes; the entity's with-POSTED model (its without-POSTED
   model, or its hourly fallback, when it has none) predicts ACTUAL from it and the slot's
   features (the training features, via `features.feature_ctes_sql`; POSTED means of the
   preceding 30 and 60 minutes as in training);
4. `missing` (actual NULL): nothing observed and no POSTED nearby (or no model to impute with).

Slots outside park hours do not exist (no row): closed for every consumer. Everything up to the
prediction's inputs are read per entity chunk in the parent process (the slot features once
per park day, the facts as sorted series); the matching (binary searches), the prediction and
the file writes run on a worker pool (lib.models.worker_pool: one worker per core), up to
TASK_ENTITIES entities of a chunk per task, while the parent reads the next chunk.

Incremental: each entity's file records, per park day, a fingerprint of what that day's curve was
built from (the day's facts of the entity and the park's hours that day) and whether a model
imputed it. A later run recomputes only the days whose fingerprint changed (new or corrected
facts, new hours), the days imputed without a model when the entity has one now, and drops days
that left the window; every other day is kept as it was, so the daily cost follows the new
facts, not the history. Past days keep the model that imputed them (a new model does not rewrite
history; `recompute_all` does). Edge not covered: a fact before 06:00 (the previous park day)
that would match the first slot of a day changes that day's curve without changing its
fingerprint; it is picked up when the day is recomputed for another reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED, PRIORITY, SOLD_OUT
from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.forecast import Reader
from bambam_assets.lib.forecasts.slots import slots_cte_sql
from bambam_assets.lib.models import registry, training, worker_pool
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    feature_ctes_sql,
    park_params,
)

OBSERVED, IMPUTED, CLOSED_SOURCE, MISSING = "observed", "imputed", "closed", "missing"
ACTUAL_MATCH_SECS, POSTED_AFTER_SECS, POSTED_BEFORE_SECS = 5 * 60, 10 * 60, 15 * 60
# Park days of work read in one go: fifteen entities' year of history on a first run (the slot
# features are read once per park day of the chunk, the facts as series: a few MB; the per-slot
# frames exist only in the workers, one entity at a time), every entity's new day in one read
# on a daily run.
CHUNK_DAYS = 15 * 366
# Entities of one worker task at most: a read chunk with more (a daily run reads every
# entity's new day at once) is split into tasks of this size, so both workers share it; as one
# task, the 1,694 entities of a full-scale daily run were matched, imputed and written by one
# worker, one core (README, issue 13).
TASK_ENTITIES = 128

# The slots of the chunk's (park, park_date) pairs with their non-POSTED features: they depend
# on the park and the slot only, so they are built once per park day, not once per entity.
_SLOT_FEATURES_SQL = f"""
WITH wanted AS (
    SELECT DISTINCT unnest($parks::VARCHAR[]) AS park_code, unnest($days::DATE[]) AS park_date
),
hours AS (SELECT h.* FROM dim_park_hours h JOIN wanted w USING (park_code, park_date)),
{slots_cte_sql("hours")},
base AS (SELECT CAST(NULL AS VARCHAR) AS entity_code, park_code, park_date,
                slot_start AS observed_at, slot FROM slots),
{feature_ctes_sql("base")}
SELECT park_code, park_date, slot, observed_at AS slot_start,
       epoch_us(observed_at) AS slot_us,
       {", ".join(c if c in CATEGORICAL_FEATURES else f"CAST({c} AS DOUBLE) AS {c}"
                  for c in FEATURES_WITHOUT_POSTED)}
FROM featured
"""

# The chunk's facts as the three sorted series the matching needs (instants in microseconds):
# targets (ACTUAL; PRIORITY without 8888 for a PRIORITY entity) and POSTED averaged per instant,
# CLOSED instants. From the day before the first day to compute: a slot's match window reaches
# 15 minutes back, a rolling mean 60.
_SERIES_SQL = """
WITH ents AS (
    SELECT unnest($codes::VARCHAR[]) AS entity_code, unnest($queues::VARCHAR[]) AS queue_type
),
obs AS (
    SELECT f.entity_code, f.observed_at, f.wait_time_type AS t, f.wait_time_minutes AS v,
           e.queue_type
    FROM fct_wait_times f JOIN ents e USING (entity_code)
    WHERE f.park_date <= $as_of AND f.park_date >= $first_day - 1
)
SELECT entity_code, 'target' AS kind, epoch_us(observed_at) AS us, avg(v) AS v FROM obs
WHERE v IS NOT NULL AND CASE WHEN queue_type = 'PRIORITY'
    THEN t = $priority AND v <> $sold_out ELSE t = $actual END
GROUP BY entity_code, observed_at
UNION ALL
SELECT entity_code, 'posted', epoch_us(observed_at), avg(v) FROM obs
WHERE t = $posted AND v IS NOT NULL GROUP BY entity_code, observed_at
UNION ALL
SELECT DISTINCT entity_code, 'closed', epoch_us(observed_at), NULL FROM obs WHERE t = $closed
ORDER BY entity_code, kind, us
"""

# The park of each (entity, park day) to compute: the park of its facts that day.
_DAYS_SQL = """
SELECT DISTINCT f.entity_code, f.park_code, f.park_date
FROM fct_wait_times f
JOIN (SELECT unnest($codes::VARCHAR[]) AS entity_code, unnest($days::DATE[]) AS park_date) d
  USING (entity_code, park_date)
"""


# Parquet metadata: {park_date: [fingerprint, version of the model that imputed it or null]}
STATE_KEY = b"bambam.backfill_days"
# Part of every day's fingerprint: bumped when the curve of a day changes for the same facts and
# hours, so every stored day is recomputed once ("2": slots include EMH and party hours).
BACKFILL_CODE_VERSION = "2"

_DAY_STATE_SQL = """
SELECT f.entity_code, f.park_date,
       hash(count(*), bit_xor(hash(f.observed_at, f.wait_time_type, f.wait_time_minutes)),
            any_value(hash(h.opening_time, h.closing_time, h.opening_time_with_emh,
                           h.closing_time_with_emh)), $code_version) AS fingerprint
FROM fct_wait_times f
LEFT JOIN dim_park_hours h ON h.park_code = f.park_code AND h.park_date = f.park_date
WHERE f.entity_code IN (SELECT unnest($codes::VARCHAR[]))
  AND f.park_date <= $as_of AND f.park_date >= $first_day
GROUP BY f.entity_code, f.park_date
"""


def day_states(conn: duckdb.DuckDBPyConnection, entities: Sequence[str], as_of: date,
               window_days: int | None = None) -> dict[str, dict[str, int]]:
    """Per entity, per park day with facts in the window: the fingerprint of what the day's
    curve is built from (the entity's facts of that day and the park's hours). One pass over
    the facts of the entities, grouped; cost grows with the facts, read once."""
    rows = conn.execute(_DAY_STATE_SQL, {"codes": list(entities), "as_of": as_of,
                                         "code_version": BACKFILL_CODE_VERSION,
                                         "first_day": _first_day(as_of, window_days)}).fetchall()
    out: dict[str, dict[str, int]] = {}
    for code, day, fp in rows:
        out.setdefault(code, {})[day.isoformat()] = int(fp)
    return out


def read_state(path: Path) -> dict[str, tuple[int, int | None]] | None:
    """The day states an entity's file was built from ({park_date: (fingerprint, version of the
    model that imputed it, or None)}), or None when there is no file or it carries none (then
    every day is recomputed)."""
    footer = curve_files.read_footer(path)
    return None if footer is None else state_of(footer[0])


def state_of(metadata: dict[bytes, bytes]) -> dict[str, tuple[int, int | None]] | None:
    """The day states recorded in a backfill file's metadata (read_state), or None."""
    raw = metadata.get(STATE_KEY)
    if raw is None:
        return None
    return {day: (int(fp), None if v is None else int(v))
            for day, (fp, v) in json.loads(raw).items()}


def plan_days(now: dict[str, int], old: dict[str, tuple[int, int | None]] | None,
              has_model: bool) -> tuple[list[str], list[str]]:
    """(days to compute, days of the old file to keep). A day is computed when it is new, its
    fingerprint changed, or it was built without a model and the entity has one now."""
    if old is None:
        return sorted(now), []
    compute, keep = [], []
    for day, fp in now.items():
        before = old.get(day)
        if before is None or before[0] != fp or (has_model and before[1] is None):
            compute.append(day)
        else:
            keep.append(day)
    return sorted(compute), sorted(keep)


def _first_day(as_of: date, window_days: int | None) -> date:
    return as_of - timedelta(days=window_days - 1) if window_days else date(1900, 1, 1)


@dataclass
class ChunkInputs:
    """What the parent reads for a chunk of entities: the slot features of every park day to
    compute, each entity's days, and its target, POSTED and CLOSED series (plain frames)."""

    features: pd.DataFrame  # one row per (park_code, slot_start): slot, slot_us, features
    days: pd.DataFrame  # one row per (entity_code, park_date) to compute, with park_code
    series: pd.DataFrame  # entity_code, kind (target|posted|closed), us, v; sorted by us

    def subset(self, codes: Sequence[str]) -> ChunkInputs:
        """The part of the chunk a task over `codes` needs: their days and series, and the slot
        features of their park days only."""
        days = self.days[self.days["entity_code"].isin(codes)]
        wanted = days[["park_code", "park_date"]].drop_duplicates()
        return ChunkInputs(self.features.merge(wanted, on=["park_code", "park_date"]), days,
                           self.series[self.series["entity_code"].isin(codes)])

    def of(self, code: str) -> EntityInputs:
        """One entity's part (the frames a worker needs for it). The chunk's frames are grouped
        once (first call), not filtered again for every entity."""
        if not hasattr(self, "_groups"):
            self._groups = (dict(tuple(self.days.groupby("entity_code", sort=False))),
                            dict(tuple(self.series.groupby(["entity_code", "kind"],
                                                           sort=False))))
        days_of, series_of = self._groups
        days = days_of.get(code, self.days.iloc[0:0])
        feats = self.features.merge(days[["park_code", "park_date"]],
                                    on=["park_code", "park_date"])
        return EntityInputs(code, feats.sort_values("slot_us", kind="stable"),
                            *(series_of.get((code, k), self.series.iloc[0:0])
                              for k in ("target", "posted", "closed")))


@dataclass
class EntityInputs:
    code: str
    slots: pd.DataFrame  # its slots with features, sorted by time
    targets: pd.DataFrame
    posted: pd.DataFrame
    closed: pd.DataFrame


def read_chunk(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
               queue_types: Sequence[str], as_of: date, window_days: int | None = None,
               only_days: Sequence[tuple[str, str]] | None = None) -> ChunkInputs:
    """Read the inputs of `backfill_slots` for the entities (three grouped reads: the slot
    features once per park day, the days, the facts as sorted series). Cost grows with the facts
    and the park days read, not with their product."""
    first_day = _first_day(as_of, window_days)
    if only_days is None:
        pairs = conn.execute(
            "SELECT DISTINCT entity_code, park_date FROM fct_wait_times "
            "WHERE entity_code IN (SELECT unnest($codes::VARCHAR[])) "
            "AND park_date BETWEEN $first_day AND $as_of",
            {"codes": list(entities), "first_day": first_day, "as_of": as_of}).fetchall()
        only_days = [(c, d.isoformat()) for c, d in pairs]
    if only_days:
        first_day = max(first_day, min(date.fromisoformat(d) for _, d in only_days))
    codes = [c for c, _ in only_days]
    day_list = [date.fromisoformat(d) for _, d in only_days]
    with step(conn, f"backfill inputs ({len(entities)} entities)"):
        days = conn.execute(_DAYS_SQL, {"codes": codes, "days": day_list}).df()
        features = conn.execute(_SLOT_FEATURES_SQL, {
            **park_params(), "parks": days["park_code"].tolist(),
            "days": days["park_date"].tolist()}).df()
        series = conn.execute(_SERIES_SQL, {
            "codes": list(entities), "queues": list(queue_types), "as_of": as_of,
            "first_day": first_day, "actual": ACTUAL, "priority": PRIORITY,
            "sold_out": SOLD_OUT, "posted": POSTED, "closed": CLOSED}).df()
    return ChunkInputs(features, days, series)


def _last_at_or_before(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the last t <= x for each x (-1: none); t sorted."""
    return np.searchsorted(t, x, side="right") - 1


def _window_mean(t: np.ndarray, v: np.ndarray, x: np.ndarray, secs: int) -> np.ndarray:
    """Mean of v over t in [x - secs, x] (both ends included), NaN where empty; t sorted."""
    csum = np.concatenate([[0.0], np.cumsum(v)])
    lo = np.searchsorted(t, x - secs * 1_000_000, side="left")
    hi = np.searchsorted(t, x, side="right")
    n = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (csum[hi] - csum[lo]) / n, np.nan)


def match_slots(inp: EntityInputs) -> pd.DataFrame:
    """Match one entity's slots to its series (the rules of the module docstring): observed,
    is_closed, posted_matched and the 30/60-minute POSTED means. Vectorized: a binary search
    per slot and series, so the cost grows with slots + facts."""
    s = inp.slots["slot_us"].to_numpy(np.int64)
    tt, ty = inp.targets["us"].to_numpy(np.int64), inp.targets["v"].to_numpy(float)
    pt, pv = inp.posted["us"].to_numpy(np.int64), inp.posted["v"].to_numpy(float)
    ct = inp.closed["us"].to_numpy(np.int64)
    us = 1_000_000

    def nearest(t: np.ndarray, v: np.ndarray):
        before = _last_at_or_before(t, s)
        after = np.searchsorted(t, s, side="left")
        has_b, has_a = before >= 0, after < len(t)
        b_secs = np.where(has_b, s - t[np.clip(before, 0, None)] if len(t) else 0, np.inf)
        a_secs = np.where(has_a, t[np.clip(after, 0, len(t) - 1)] - s if len(t) else 0, np.inf)
        b_val = v[np.clip(before, 0, None)] if len(t) else np.full(len(s), np.nan)
        a_val = v[np.clip(after, 0, len(t) - 1)] if len(t) else np.full(len(s), np.nan)
        return b_secs, b_val, a_secs, a_val

    tb_secs, tb_y, ta_secs, ta_y = nearest(tt, ty)
    observed = np.where((tb_secs <= ACTUAL_MATCH_SECS * us) & (tb_secs <= ta_secs), tb_y,
                        np.where(ta_secs <= ACTUAL_MATCH_SECS * us, ta_y, np.nan))
    pb_secs, pb_v, pa_secs, pa_v = nearest(pt, pv)
    posted_matched = np.where(pa_secs <= POSTED_AFTER_SECS * us, pa_v,
                              np.where(pb_secs <= POSTED_BEFORE_SECS * us, pb_v, np.nan))
    window_end = s + POSTED_AFTER_SECS * us
    c = _last_at_or_before(ct, window_end)
    closed_at = np.where(c >= 0, ct[np.clip(c, 0, None)] if len(ct) else 0, np.iinfo(np.int64).min)
    p = _last_at_or_before(pt, window_end)
    last_posted = np.where(p >= 0, pt[np.clip(p, 0, None)] if len(pt) else 0,
                           np.iinfo(np.int64).min)
    is_closed = ((c >= 0) & (closed_at >= s - POSTED_BEFORE_SECS * us)
                 & ((p < 0) | (last_posted <= closed_at)))
    out = inp.slots.drop(columns=["park_code", "slot_us"]).reset_index(drop=True)
    out.insert(0, "entity_code", inp.code)
    out.insert(out.columns.get_loc("slot_start") + 1, "observed", observed)
    out.insert(out.columns.get_loc("observed") + 1, "is_closed", is_closed)
    out["posted_matched"] = posted_matched
    out["posted_mean_30"] = _window_mean(pt, pv, s, 30 * 60)
    out["posted_mean_60"] = _window_mean(pt, pv, s, 60 * 60)
    return out


def backfill_slots(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
                   queue_types: Sequence[str], as_of: date,
                   window_days: int | None = None,
                   only_days: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Matched observations and features of every slot of the entities' past park days
    (read_chunk, then match_slots per entity; the backfill itself does the matching on its
    workers).

    Grain: one row per (entity_code, slot_start) of park days with facts in the window. Columns:
    entity_code, park_date, slot, slot_start, observed (matched target or NaN), is_closed,
    FEATURES_WITHOUT_POSTED, posted_matched, posted_mean_30, posted_mean_60.
    `only_days`: (entity_code, park_date ISO) pairs to compute instead of every day in the
    window; the facts read start the day before the earliest of them.
    """
    if only_days is not None and not only_days:
        return pd.DataFrame()
    chunk = read_chunk(conn, entities, queue_types, as_of, window_days, only_days)
    parts = [match_slots(chunk.of(code)) for code in sorted(set(entities))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def backfill_frame(slots: pd.DataFrame, model, nthread: int | None = None) -> pd.DataFrame:
    """One entity's backfill from its `backfill_slots` rows and model (None: no imputation).

    Grain: one row per slot; columns curve_files.BACKFILL_COLUMNS.
    """
    observed = slots["observed"].to_numpy(float)
    closed = slots["is_closed"].to_numpy(bool)
    has_obs = ~np.isnan(observed)
    need = ~has_obs & ~closed & slots["posted_matched"].notna().to_numpy()
    if model is None:
        need[:] = False
    actual = np.where(has_obs, observed, np.nan)
    if need.any():
        pred = training.predict(model, slots[need], with_posted=True,
                                nthread=nthread).astype(np.float64)
        actual[need] = np.round(pred, 1)
    source = np.select([has_obs, closed, need], [OBSERVED, CLOSED_SOURCE, IMPUTED], MISSING)
    return pd.DataFrame({
        "entity_code": slots["entity_code"].to_numpy(), "park_date": slots["park_date"],
        "slot": slots["slot"], "slot_start": slots["slot_start"], "actual": actual,
        "source": source,
    })


@dataclass
class BackfillResult:
    entity_code: str
    rows: int = 0
    by_source: dict | None = None
    seconds: float = 0.0
    model_version: int | None = None
    path: str | None = None
    error: str | None = None
    days_computed: int = 0
    days_kept: int = 0
    unchanged: bool = False  # nothing to recompute: the file was left as it was


def run_backfill(reader: Reader, home: Path, entities: Sequence[str], as_of: date,
                 window_days: int | None = None,
                 on_done: Callable[[BackfillResult], None] | None = None,
                 recompute_all: bool = False) -> list[BackfillResult]:
    """Backfill every entity's file, recomputing only the park days that changed since its
    file was written (every day when `recompute_all` or the file carries no day states);
    one BackfillResult per entity (input order). An entity with nothing to recompute keeps its
    file (`unchanged`); one without facts in the window gets an empty file.
    """
    home = Path(home)
    results: dict[str, BackfillResult] = {}
    with reader() as conn:  # one grouped pass over the entities' facts
        states = day_states(conn, entities, as_of, window_days)
    plans: dict[str, tuple[list[str], list[str], dict | None]] = {}
    for code in entities:  # file footers only: what each entity must recompute
        path = curve_files.entity_file(home, curve_files.BACKFILL_DIR, code)
        footer = None if recompute_all else curve_files.read_footer(path)
        old = None if footer is None else state_of(footer[0])
        has_model = registry.current_version(HomePaths(home).models, code) is not None
        compute, keep = plan_days(states.get(code, {}), old, has_model)
        if old is not None and not compute and len(keep) == len(old):  # nothing changed
            results[code] = BackfillResult(
                code, rows=footer[1], path=str(path),
                days_kept=len(keep), unchanged=True)
            if on_done:
                on_done(results[code])
            continue
        plans[code] = (compute, keep, old)
    workers, nthread = worker_pool.plan_curve_workers(len(plans))

    def tasks():  # read in the parent, one chunk when a worker has room (never in a worker)
        for chunk in _chunks(plans):
            pairs = [(c, d) for c in chunk for d in plans[c][0]]
            with reader() as conn:  # short read; prediction happens after it is closed
                queues = dict(conn.execute(
                    "SELECT entity_code, any_value(queue_type) FROM dim_entity "
                    "WHERE entity_code IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [chunk]
                ).fetchall())
                inputs = (read_chunk(conn, chunk, [queues.get(c, "STANDBY") for c in chunk],
                                     as_of, window_days, only_days=pairs) if pairs else None)
            for i in range(0, len(chunk), TASK_ENTITIES):  # one read, tasks for every worker
                part = chunk[i:i + TASK_ENTITIES]
                sub = (inputs if inputs is None or len(part) == len(chunk)
                       else inputs.subset(part))
                yield BackfillTask(str(home), nthread, sub, [
                    EntityWork(code, *plans[code], states.get(code, {})) for code in part])

    def on_result(task: BackfillTask, out: list[BackfillResult] | None,
                  exc: BaseException | None) -> None:
        if out is None:  # the worker died (a crash, not an exception of one entity)
            out = [BackfillResult(w.code, error=f"{type(exc).__name__}: {exc}")
                   for w in task.entities]
        for res in out:
            results[res.entity_code] = res
            if on_done:
                on_done(res)

    worker_pool.run_pool(backfill_task, tasks(), workers, on_result, ahead=1)
    return [results[c] for c in entities]


@dataclass(frozen=True)
class EntityWork:
    """One entity's part of a BackfillTask: its plan."""

    code: str
    compute: list[str]
    keep: list[str]
    old: dict | None  # the old file's day states
    now: dict[str, int]  # the day fingerprints now


@dataclass(frozen=True)
class BackfillTask:
    """A chunk of entities for one worker (picklable: plain frames, no connection)."""

    home: str
    nthread: int | None
    inputs: ChunkInputs | None  # what the chunk's days to compute are matched from (None: none)
    entities: list[EntityWork]


def backfill_task(task: BackfillTask) -> list[BackfillResult]:
    """Worker entry point: match, impute and write each entity's file; one failing entity never
    stops the others (its error is in its result)."""
    out = []
    for w in task.entities:
        started = time.perf_counter()
        try:
            slots = (match_slots(task.inputs.of(w.code)) if task.inputs is not None
                     else pd.DataFrame())
            res = _one(Path(task.home), w.code, slots, w.compute, w.keep, w.old, w.now,
                       task.nthread)
        except Exception as exc:  # noqa: BLE001 - reported per entity
            res = BackfillResult(w.code, error=f"{type(exc).__name__}: {exc}")
        res.seconds = round(time.perf_counter() - started, 3)
        out.append(res)
    return out


def _chunks(plans: dict[str, tuple[list[str], list[str], dict | None]]) -> list[list[str]]:
    """Entities to read together: up to CHUNK_DAYS park days of work per read (at least one
    entity), in plan order."""
    chunks: list[list[str]] = []
    days = 0
    for code, (compute, _, _) in plans.items():
        if not chunks or (days + len(compute) > CHUNK_DAYS and chunks[-1]):
            chunks.append([])
            days = 0
        chunks[-1].append(code)
        days += len(compute)
    return chunks


def _one(home: Path, code: str, slots: pd.DataFrame, compute: list[str], keep: list[str],
         old: dict | None, now: dict[str, int], nthread: int | None = None) -> BackfillResult:
    try:
        model = registry.load_model(HomePaths(home).models, code)
    except registry.RegistryError:
        model = None
    path = curve_files.entity_file(home, curve_files.BACKFILL_DIR, code)
    fresh = (backfill_frame(slots, model, nthread) if len(slots)
             else pd.DataFrame(columns=list(curve_files.BACKFILL_COLUMNS)))
    version = None if model is None else model.version
    state = {d: [now[d], version] for d in compute}
    state |= {d: [old[d][0], old[d][1]] for d in keep}
    metadata = {STATE_KEY: json.dumps(state)}
    if keep:
        # The old file's kept days, then the recomputed ones, in slot order, joined as Arrow
        # tables: a daily run keeps a whole year and adds a day; the same through pandas
        # (to_pandas, concat, sort, from_pandas of three string columns) cost about 5x as much
        # on a one-year file of 24,820 rows, for the same rows and day states (README, issue
        # 13). That concat even made slot_start an object column (kept days in us, new ones
        # in ns). sort_by is stable, like the pandas sort it replaces.
        kept = pq.read_table(path, filters=[("park_date", "in",
                                              [date.fromisoformat(d) for d in keep])])
        parts = [kept.replace_schema_metadata(None)]
        if len(fresh):
            parts.append(curve_files.entity_table(fresh, curve_files.BACKFILL_SCHEMA)
                         .replace_schema_metadata(None))
        # the file's pandas metadata (dtypes for to_pandas) as before, with the new day states
        table = pa.concat_tables(parts).sort_by("slot_start").replace_schema_metadata(
            {**(kept.schema.metadata or {}), **metadata})
        curve_files.write_table_atomic(table, path)
        rows = table.num_rows
    else:
        rows = curve_files.write_entity_file(fresh, path, curve_files.BACKFILL_SCHEMA,
                                             metadata=metadata)
    counts = fresh["source"].value_counts() if len(fresh) else pd.Series(dtype=int)
    return BackfillResult(code, rows, {str(k): int(v) for k, v in counts.items()},
                          model_version=None if model is None else model.version, path=str(path),
                          days_computed=len(compute), days_kept=len(keep))

"""Two-year forecast curves per entity (as the legacy forecast, without its per-slot reloads).

The window is anchored on the week (lib.core.forecast_week): from the Monday of the as-of date's
week (so today's remaining slots are always in the file) to horizon + 6 days later (so the file
covers as_of .. as_of + horizon all week), and the inputs that are not the model (POSTED
statistics, the dimensions' horizon) are taken as of the day before that Monday. The p10-p90
band is stored with each version at training (lib.forecasts.band.stored_band); only a version
trained before that has its band fitted here, on its training rows as of that day. So within a
week an
entity's forecast changes only when its model, its POSTED statistics, its park's hours or the
calendar change: each file records the fingerprint of those inputs, and an entity whose
fingerprint is unchanged is not recomputed (mode UNCHANGED).

For each park, the slots of the window (dim_park_hours: official, metatable or donor hours, from
the EMH opening to the EMH/party closing) get their features in ONE DuckDB query through
`features.feature_ctes_sql`, so they are exactly the training features. The non-POSTED features
do not depend on the entity, so a park's slot features are built once and shared by all its
entities, and each entity's model predicts each DISTINCT feature row once (the result is spread
back to the slots by an inverse index). `posted_predicted` comes from the entity's POSTED model
(predicted once per distinct feature row too, rounded to 5 minutes like a sign); an entity whose
version has no POSTED model (too few POSTED rows, a version trained before it existed, no model
at all) takes the posted-aggregates
fallback chain, looked up in one join for all (entity, ISO weekday, local hour) keys of an
entity chunk.

The caller reads from DuckDB in the parent process only, one short read per park and entity
chunk (a read connection held open would block the warehouse writer); the chunks are predicted
and written on a worker pool (lib.models.worker_pool: one worker per core) while the parent
reads the next one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bambam_assets.lib.core.forecast_week import (
    DEFAULT_HORIZON_DAYS,
    forecast_window,
    inputs_as_of,
)
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.warehouse import step
from bambam_assets.lib.forecasts import cold_start
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts.band import (
    apply_band,
    fit_band,
    has_stored_band,
    stored_band,
    stored_metric,
)
from bambam_assets.lib.forecasts.posted_aggregates import ROUND_TO, lookup_cte_sql
from bambam_assets.lib.forecasts.slots import slots_cte_sql
from bambam_assets.lib.models import global_model, registry, training, worker_pool
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITHOUT_POSTED,
    build_training_frame,
    feature_ctes_sql,
    park_params,
)

ENTITY_CHUNK = 25  # entities whose inputs are read in one go (bounds the parent's memory)
MODEL, POSTED_ONLY, NO_DATA, FAILED = "model", "posted_only", "no_data", "failed"
UNCHANGED = "unchanged"  # the file's inputs fingerprint matches: left as it was
# Bumped when the forecast's computation changes, so every file is recomputed once
# ("4": slots include EMH and party hours, and posted_predicted comes from the POSTED model;
# "5": the band stored with the version at training, fitted on the rows it was trained on;
# "6": the posted lookup of entities without a POSTED model keys on weekday and hour;
# "7": the file records its version's WTI level factor, LEVEL_KEY;
# "8": ACTUAL takes training.CHAIN_WEIGHT of the POSTED forecast x the version's chain_ratio).
FORECAST_CODE_VERSION = "8"
FINGERPRINT_KEY = b"bambam.forecast_inputs"
# The version's level_ratio (training.level_ratio: mean observed / mean predicted on its newest
# training rows within the official hours), which the WTI multiplies this file's
# actual_predicted by (wti.py); the curve itself keeps the model's values. Absent: the version
# has none (factor 1).
LEVEL_KEY = b"bambam.wti_level"
# What a file's posted_predicted was predicted from when it came from the version's POSTED model
# (that model's bytes, the version's encodings and the entity's inputs without the version):
# an incremental update carries the POSTED model over unchanged (lib.models.incremental), so
# within a week the next forecast copies the column instead of predicting it again.
POSTED_KEY = b"bambam.posted_inputs"


_INPUTS_SQL = """
WITH ents AS (
    SELECT unnest($codes::VARCHAR[]) AS entity_code, unnest($parks::VARCHAR[]) AS park_code,
           unnest($queues::VARCHAR[]) AS queue_type
),
pa_entity AS (
    SELECT entity_code, bit_xor(hash(level, date_group_id, day_of_week, hour, posted_median)) AS h
    FROM posted_aggregates WHERE entity_code IN (SELECT entity_code FROM ents) GROUP BY 1
),
pa_park AS (
    SELECT park_code, bit_xor(hash(date_group_id, hour, posted_median)) AS h
    FROM posted_aggregates WHERE level = 'park_hour' GROUP BY 1
),
hours AS (
    SELECT park_code, bit_xor(hash(park_date, opening_time, closing_time, opening_time_with_emh,
                                   closing_time_with_emh, emh_morning, emh_evening)) AS h
    FROM dim_park_hours WHERE park_date BETWEEN $start AND $end GROUP BY 1
),
cal AS (
    SELECT bit_xor(hash(c.park_date, c.date_group_id, s.season, s.season_year)) AS h
    FROM dim_calendar c LEFT JOIN dim_season s USING (park_date)
    WHERE c.park_date BETWEEN $start AND $end
)
SELECT e.entity_code,
       hash(e.queue_type, pa_entity.h, pa_park.h, hours.h, (SELECT h FROM cal)) AS h
FROM ents e
LEFT JOIN pa_entity USING (entity_code)
LEFT JOIN pa_park USING (park_code)
LEFT JOIN hours USING (park_code)
"""


def input_hashes(conn: duckdb.DuckDBPyConnection, info: pd.DataFrame, start: date,
                 end: date) -> dict[str, int]:
    """Per entity of `info` (entity_code, park_code, queue_type): one hash of its POSTED
    statistics (its own levels and its park's), its park's hours and the calendar over the
    window. Grouped aggregates over small tables: cheap at any entity count."""
    rows = conn.execute(_INPUTS_SQL, {
        "codes": info["entity_code"].tolist(), "parks": info["park_code"].tolist(),
        "queues": info["queue_type"].tolist(), "start": start, "end": end}).fetchall()
    return {code: int(h) for code, h in rows}


def fingerprint(inputs: int, model_version: int | None, start: date, end: date) -> str:
    """What an entity's forecast file is computed from, as one string."""
    text = f"{FORECAST_CODE_VERSION}|{start}|{end}|{model_version}|{inputs}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def posted_basis(inputs: int, start: date, end: date) -> str:
    """The part of an entity's POSTED key that is not its model: the window and its inputs
    (the same hash as `fingerprint`'s, without the model version)."""
    return f"{FORECAST_CODE_VERSION}|{start}|{end}|{inputs}"


def posted_key(basis: str, model) -> str | None:
    """What the version's POSTED model predicts from, as one string (None: no POSTED model,
    its posted_predicted comes from the aggregates)."""
    raw = None if model is None or model.kind == training.FALLBACK_KIND else (
        model.models or {}).get(training.POSTED_MODEL)
    if raw is None:
        return None
    h = hashlib.sha256(basis.encode())
    h.update(hashlib.blake2b(raw, digest_size=16).digest())
    h.update(json.dumps(model.encodings, sort_keys=True).encode())
    return h.hexdigest()[:32]


def stored_posted(path: Path, key: str, sf: SlotFeatures) -> np.ndarray | None:
    """The posted_predicted column of the entity's current file, one value per slot of `sf`,
    when that file's POSTED column was predicted from `key` over exactly these slots; else
    None (then the caller predicts it)."""
    footer = curve_files.read_footer(path)
    if footer is None or footer[0].get(POSTED_KEY) != key.encode() or footer[1] != len(sf.frame):
        return None
    try:
        table = pq.read_table(path, columns=["slot_start", "posted_predicted"])
    except (OSError, pa.ArrowException):
        return None
    stored = table.column("slot_start").cast(pa.int64()).to_numpy()
    if not np.array_equal(stored, sf.slot_us):  # the same slots in the same order, or no reuse
        return None
    values = table.column("posted_predicted").to_numpy(zero_copy_only=False)
    return None if np.isnan(values).any() else values.astype(np.float64)


def stored_fingerprint(path: Path) -> str | None:
    """The fingerprint a forecast file was written with (None: no file or none recorded)."""
    footer = curve_files.read_footer(path)
    raw = None if footer is None else footer[0].get(FINGERPRINT_KEY)
    return raw.decode() if raw is not None else None


def wti_level(model) -> float | None:
    """The version's WTI level factor (its without-POSTED metrics' level_ratio), if it has one."""
    return stored_metric(model, "level_ratio")


def stored_level(path: Path) -> float | None:
    """The WTI level factor a forecast file was written with (None: no file or none)."""
    footer = curve_files.read_footer(path)
    raw = None if footer is None else footer[0].get(LEVEL_KEY)
    return float(raw.decode()) if raw is not None else None

Reader = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def _feature_columns_sql() -> str:
    # numeric features as DOUBLE (NULL -> NaN), as build_training_frame returns them
    return ", ".join(c if c in CATEGORICAL_FEATURES else f"CAST({c} AS DOUBLE) AS {c}"
                     for c in FEATURES_WITHOUT_POSTED)


@dataclass
class SlotFeatures:
    """A park's future slots with features, their distinct feature rows and lookup keys."""

    frame: pd.DataFrame  # one row per slot: park_code, park_date, slot, slot_start, features
    distinct: pd.DataFrame  # one row per distinct feature row
    inverse: np.ndarray  # slot row -> row of `distinct`
    keys: pd.DataFrame  # one row per distinct (day_of_week, hour): the posted lookup's keys
    key_inverse: np.ndarray  # slot row -> row of `keys`

    @cached_property
    def slot_us(self) -> np.ndarray:
        """slot_start as UTC microseconds (int64), once per park's slots, not per entity."""
        return (self.frame["slot_start"].dt.tz_convert("UTC").dt.tz_localize(None)
                .to_numpy().astype("datetime64[us]").astype(np.int64))


def slot_features(conn: duckdb.DuckDBPyConnection, park_code: str, start: date,
                  end: date) -> SlotFeatures:
    """Features of every slot of `park_code` for park dates start..end (one query)."""
    sql = f"""
    WITH hours AS (
        SELECT * FROM dim_park_hours
        WHERE park_code = $park AND park_date BETWEEN $start AND $end
    ),
    {slots_cte_sql("hours")},
    base AS (SELECT CAST(NULL AS VARCHAR) AS entity_code, park_code, park_date,
                    slot_start AS observed_at, slot FROM slots),
    {feature_ctes_sql("base")}
    SELECT park_code, park_date, slot, observed_at AS slot_start, {_feature_columns_sql()}
    FROM featured ORDER BY slot_start
    """
    with step(conn, f"forecast slot features ({park_code})"):
        frame = conn.execute(sql, {**park_params(), "park": park_code, "start": start,
                                   "end": end}).df()
    inverse = frame.groupby(FEATURES_WITHOUT_POSTED, dropna=False, sort=False).ngroup().to_numpy()
    distinct = frame.loc[frame.index[np.unique(inverse, return_index=True)[1]],
                         FEATURES_WITHOUT_POSTED].reset_index(drop=True)
    key_cols = ["day_of_week", "local_hour"]
    key_inverse = frame.groupby(key_cols, dropna=False, sort=False).ngroup().to_numpy()
    keys = frame.loc[frame.index[np.unique(key_inverse, return_index=True)[1]], key_cols]
    keys = keys.rename(columns={"local_hour": "hour"}).reset_index(drop=True)
    return SlotFeatures(frame, distinct, inverse.astype(np.int64), keys,
                        key_inverse.astype(np.int64))


def posted_values(conn: duckdb.DuckDBPyConnection, park_code: str, entities: Sequence[str],
                  keys: pd.DataFrame, no_park_level: Sequence[str]) -> dict[str, np.ndarray]:
    """posted_predicted per entity, aligned with `keys` rows (one join for the whole chunk)."""
    grid = pd.DataFrame({
        "entity_code": np.repeat(list(entities), len(keys)),
        "park_code": park_code,
        "day_of_week": np.tile(keys["day_of_week"].to_numpy(float), len(entities)),
        "hour": np.tile(keys["hour"].to_numpy(float), len(entities)),
        "_pos": np.tile(np.arange(len(keys)), len(entities)),
    })
    conn.register("_forecast_keys", grid)
    try:
        with step(conn, f"forecast posted lookup ({park_code})"):
            out = conn.execute(
                f"WITH {lookup_cte_sql('_forecast_keys')} "
                "SELECT entity_code, _pos, posted_predicted FROM posted_lookup",
                {"no_park_level": list(no_park_level)}).df()
    finally:
        conn.unregister("_forecast_keys")
    result: dict[str, np.ndarray] = {}
    for code, part in out.groupby("entity_code"):  # a loop over entities, not slots
        values = np.full(len(keys), np.nan)
        values[part["_pos"].to_numpy(int)] = part["posted_predicted"].to_numpy(float)
        result[str(code)] = values
    return result


def forecast_frame(entity: str, sf: SlotFeatures, model, band, posted: np.ndarray | None,
                   nthread: int | None = None,
                   cold: cold_start.ColdStart | None = None,
                   numeric: dict[str, np.ndarray] | None = None,
                   prepared: global_model.GlobalRows | None = None,
                   model_posted: np.ndarray | None = None) -> pd.DataFrame:
    """One entity's forecast. Grain: one row per slot where actual or posted is known;
    columns curve_files.FORECAST_COLUMNS. `numeric`: training.encode_numeric(sf.distinct), and
    `prepared`: cold.prepare(sf.distinct), shared by the entities of a chunk (only the
    categories depend on the version, only the attributes on the entity). `model_posted`: the
    version's POSTED model's values per slot, already computed (`stored_posted`)."""
    n = len(sf.frame)
    actual = p10 = p90 = np.full(n, np.nan)
    # the distinct rows encoded once for both of the version's models
    enc = (training.encode(sf.distinct, model.encodings, numeric)
           if model is not None and n and model.kind != training.FALLBACK_KIND else None)
    by_model = None if model is None or not n or model_posted is not None else (
        training.predict_posted(model, sf.distinct, nthread=nthread, encoded=enc))
    if model_posted is not None:
        posted_slots = model_posted
    elif by_model is not None:  # else the aggregates' values, already rounded
        posted = None
        posted_slots = np.round(by_model[sf.inverse] / ROUND_TO) * ROUND_TO
    else:
        posted_slots = posted[sf.key_inverse] if posted is not None else np.nan
    if model is not None and n:
        pred = training.predict(model, sf.distinct, with_posted=False, nthread=nthread,
                                encoded=enc)
        if cold is not None:  # a young entity borrows from the global model (cold_start.py)
            pred = cold.blend(entity, sf.distinct, pred, nthread, prepared)
        actual = pred.astype(np.float64)[sf.inverse]
        ratio = stored_metric(model, "chain_ratio")
        if ratio is not None:  # part of the ACTUAL from the POSTED forecast (training.chain_ratio)
            chained = np.broadcast_to(np.asarray(posted_slots, dtype=float), actual.shape) * ratio
            ok = np.isfinite(chained) & np.isfinite(actual)
            w = training.CHAIN_WEIGHT
            actual = np.where(ok, (1 - w) * actual + w * chained, actual)
        actual = np.round(actual, 1)
        p10, p90 = apply_band(band, actual, sf.frame["local_hour"].to_numpy(float))
        p10, p90 = np.round(p10, 1), np.round(p90, 1)
    out = pd.DataFrame({
        "entity_code": entity, "park_date": sf.frame["park_date"], "slot": sf.frame["slot"],
        "slot_start": sf.frame["slot_start"], "actual_predicted": actual, "actual_p10": p10,
        "actual_p90": p90,
        "posted_predicted": posted_slots,
    })
    keep = out["actual_predicted"].notna() | out["posted_predicted"].notna()
    return out[keep].reset_index(drop=True)


@dataclass
class EntityResult:
    entity_code: str
    mode: str  # MODEL | POSTED_ONLY | NO_DATA | FAILED
    rows: int = 0
    slots: int = 0
    distinct_rows: int = 0
    seconds: float = 0.0
    model_version: int | None = None
    model_kind: str | None = None
    band_scale: float | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    fingerprint: str | None = None


def _entity_info(conn: duckdb.DuckDBPyConnection, entities: Sequence[str],
                 as_of: date) -> pd.DataFrame:
    """One row per requested entity with facts up to as_of: entity_code, park_code, queue_type."""
    return conn.execute("""
        SELECT f.entity_code, any_value(f.park_code) AS park_code,
               coalesce(any_value(d.queue_type), 'STANDBY') AS queue_type
        FROM fct_wait_times f
        LEFT JOIN dim_entity d USING (entity_code)
        WHERE f.park_date <= $as_of AND f.entity_code IN (SELECT unnest($codes::VARCHAR[]))
        GROUP BY f.entity_code ORDER BY f.entity_code
    """, {"as_of": as_of, "codes": list(entities)}).df()


def _has_stored_band(models_root: Path, code: str, version: int) -> bool:
    try:
        return has_stored_band(registry.read_meta(models_root, code, version))
    except (registry.RegistryError, ValueError, OSError):
        return False  # the worker's load reports the damage


def _load(models_root: Path, code: str):
    try:
        return registry.load_model(models_root, code)
    except registry.RegistryError:
        return None


def run_forecast(reader: Reader, home: Path, entities: Sequence[str], as_of: date,
                 horizon_days: int = DEFAULT_HORIZON_DAYS,
                 on_done: Callable[[EntityResult], None] | None = None,
                 nthread: int | None = None, recompute_all: bool = False) -> list[EntityResult]:
    """Forecast and write every entity's file whose inputs changed; returns one EntityResult
    per entity (input order).

    An entity without facts up to as_of gets no file (NO_DATA); one whose file was computed
    from the same inputs (fingerprint) is left as it was (UNCHANGED; `recompute_all` forces
    it); one without a current model gets a POSTED-only forecast (actual columns null); an
    entity whose forecast raises is FAILED (error in `notes`) and the others go on.
    """
    home = Path(home)
    start, end = forecast_window(as_of, horizon_days)
    inputs_day = inputs_as_of(as_of)
    with reader() as conn:
        info = _entity_info(conn, entities, as_of)
        hashes = input_hashes(conn, info, start, end)
        # the blend weights move with the week, like the POSTED statistics (cold_start.py)
        cold = cold_start.plan(conn, home, list(info["entity_code"]), as_of, inputs_day)
    results: dict[str, EntityResult] = {}

    def done(res: EntityResult) -> None:
        results[res.entity_code] = res
        if on_done:
            on_done(res)

    for code in sorted(set(entities) - set(info["entity_code"])):
        done(EntityResult(code, NO_DATA, notes=[f"no facts up to {as_of}"]))
    models_root = HomePaths(home).models
    todo: dict[str, dict[str, tuple[str, int | None]]] = {}  # park -> entity -> (fp, version)
    # what each file's POSTED column is predicted from (recorded always; reused unless every
    # file is to be recomputed)
    bases = {c: posted_basis(hashes.get(c, 0), start, end) for c in info["entity_code"]}
    needs_rows: set[str] = set()  # modeled entities whose version has no stored band
    for park, group in info.groupby("park_code", sort=True):
        for code in group["entity_code"]:
            version = registry.current_version(models_root, code)
            fp = fingerprint(hashes.get(code, 0) ^ (cold.salt(code) if cold else 0), version,
                             start, end)
            path = curve_files.entity_file(home, curve_files.FORECASTS_DIR, code)
            footer = None if recompute_all else curve_files.read_footer(path)
            if footer is not None and footer[0].get(FINGERPRINT_KEY, b"").decode() == fp:
                done(EntityResult(code, UNCHANGED, rows=footer[1], model_version=version,
                                  path=str(path), fingerprint=fp))
            else:
                todo.setdefault(str(park), {})[code] = (fp, version)
                if version is not None and not _has_stored_band(models_root, code, version):
                    needs_rows.add(code)
    workers, per_worker = worker_pool.plan_curve_workers(sum(map(len, todo.values())))
    task_threads = nthread if per_worker is None else per_worker

    def tasks():  # read in the parent, one chunk when a worker has room (never in a worker)
        for park, plan in todo.items():  # one slot frame per park
            priority = info.loc[(info["park_code"] == park) & (info["queue_type"] == "PRIORITY"),
                                "entity_code"].tolist()
            codes = list(plan)
            sf = None
            for i in range(0, len(codes), ENTITY_CHUNK):
                chunk = codes[i:i + ENTITY_CHUNK]
                modeled = [c for c in chunk if c in needs_rows]  # the band's rows
                with reader() as conn:  # short: the writer cannot open the file meanwhile
                    if sf is None:
                        sf = slot_features(conn, park, start, end)
                    posted = posted_values(conn, park, chunk, sf.keys, priority)
                    train = build_training_frame(conn, modeled, inputs_day) if modeled else None
                yield ForecastTask(str(home), sf, [(c, plan[c][0]) for c in chunk], posted,
                                   train, task_threads, cold,
                                   {c: bases[c] for c in chunk}, not recompute_all)

    def on_result(task: ForecastTask, out: list[EntityResult] | None,
                  exc: BaseException | None) -> None:
        if out is None:  # the worker died (a crash, not an exception of one entity)
            out = [EntityResult(c, FAILED, notes=[f"{type(exc).__name__}: {exc}"])
                   for c, _ in task.entities]
        for res in out:
            done(res)

    worker_pool.run_pool(forecast_task, tasks(), workers, on_result, ahead=1)
    return [results[c] for c in entities]


@dataclass(frozen=True)
class ForecastTask:
    """A chunk of one park's entities for one worker (picklable: frames, no connection)."""

    home: str
    sf: SlotFeatures
    entities: list[tuple[str, str]]  # (entity_code, inputs fingerprint)
    posted: dict[str, np.ndarray]
    train: pd.DataFrame | None  # the band's training rows of the entities without a stored band
    nthread: int | None
    cold: cold_start.ColdStart | None = None  # the young entities' blend with the global model
    posted_bases: dict[str, str] = field(default_factory=dict)  # posted_basis per entity
    reuse_posted: bool = True  # copy an unchanged POSTED column from the entity's file


def forecast_task(task: ForecastTask) -> list[EntityResult]:
    """Worker entry point: load each entity's model, predict, write its file; one failing
    entity never stops the others (FAILED, error in `notes`)."""
    home = Path(task.home)
    out = []
    numeric = training.encode_numeric(task.sf.distinct)  # once per chunk, not per model
    prepared = None  # the global model for the chunk's young entities, prepared once
    if task.cold is not None and any(c in task.cold.weights for c, _ in task.entities):
        prepared = task.cold.prepare(task.sf.distinct, task.nthread)
    for code, fp in task.entities:
        try:
            out.append(_one(code, task.sf, _load(HomePaths(home).models, code), task.train,
                            task.posted.get(code), home, task.nthread, fp, task.cold,
                            numeric, prepared, task.posted_bases.get(code),
                            task.reuse_posted))
        except Exception as exc:  # noqa: BLE001 - reported per entity
            out.append(EntityResult(code, FAILED, notes=[f"{type(exc).__name__}: {exc}"]))
    return out


def _one(code: str, sf: SlotFeatures, model, train: pd.DataFrame | None,
         posted: np.ndarray | None, home: Path, nthread: int | None,
         fp: str, cold: cold_start.ColdStart | None = None,
         numeric: dict[str, np.ndarray] | None = None,
         prepared: global_model.GlobalRows | None = None,
         basis: str | None = None, reuse_posted: bool = True) -> EntityResult:
    started = time.perf_counter()
    res = EntityResult(code, MODEL if model is not None else POSTED_ONLY, slots=len(sf.frame),
                       fingerprint=fp)
    band = None
    if model is not None:
        res.model_version, res.model_kind = model.version, model.kind
        band = stored_band(model)
        if band is None and train is not None:  # versions trained before the band was stored
            band = fit_band(model, train[train["entity_code"] == code])
        res.band_scale = None if band is None else round(band.scale, 3)
        res.distinct_rows = len(sf.distinct)
        if band is None:
            res.notes.append("no training rows: no p10/p90 band")
    else:
        res.notes.append("no current model: POSTED-only forecast, actual columns null")
    path = curve_files.entity_file(home, curve_files.FORECASTS_DIR, code)
    key = None if basis is None or not len(sf.frame) else posted_key(basis, model)
    model_posted = None if key is None or not reuse_posted else stored_posted(path, key, sf)
    if model_posted is not None:
        res.notes.append("posted_predicted kept: POSTED model and inputs unchanged")
    frame = forecast_frame(code, sf, model, band, posted, nthread, cold, numeric, prepared,
                           model_posted)
    if model is not None and cold is not None and code in cold.weights:
        res.notes.append(f"cold start: own model weight {cold.weights[code]:.2f}, "
                         f"global model v{cold.version}")
    metadata = {FINGERPRINT_KEY: fp} if key is None else {FINGERPRINT_KEY: fp, POSTED_KEY: key}
    level = None if model is None else wti_level(model)
    if level is not None:
        metadata[LEVEL_KEY] = repr(level)
    res.rows = curve_files.write_entity_file(frame, path, curve_files.FORECAST_SCHEMA,
                                             metadata=metadata)
    res.path = str(path)
    res.seconds = round(time.perf_counter() - started, 3)
    return res

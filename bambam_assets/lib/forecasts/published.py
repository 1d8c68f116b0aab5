"""What the forecast API serves, laid out for it: per park and month, written by the WTI step.

A park day's curves live in ~120 entity files at full scale, each one row group of two years:
answering one park day from them decodes every file whole. So the WTI step also publishes, per
park, under `published/{PARK}/` (paths: lib/core/paths.py)::

    curves/{YYYY-MM}.parquet  one row per (park_date, entity_code, slot_start) of the entity
                              forecast files over that month, sorted so, ONE ROW GROUP PER PARK
                              DAY (a park day is one row-group read); columns park_date,
                              entity_code, slot, slot_start, actual_predicted, actual_p10,
                              actual_p90, posted_predicted, closed
    wti/{YYYY-MM}.parquet     one row per (park_date, slot_start): the park_wti rows of the month
    days.parquet              one row per park day of park_wti_daily: wti, p10/p90 over the
                              slots, n_entities, n_slots, the crowd calendar's columns
                              (lib/forecasts/crowd.py), has_curves (the day is in the forecast
                              window), fingerprint (the day's inputs: the API's ETag) and
                              published_at (when that day's files were last written)
    crowd_scale.json          the park's frozen crowd scale
    published/entities.parquet  one row per entity of dim_entity: code, name, park, queue type

`closed` is true where a slot has no predicted wait (actual_predicted null, e.g. an entity
without a model); the forecast has no slot outside the park's hours at all, and the closures
observed on past days are in the backfill, not here.

Incremental like the WTI (lib/forecasts/wti.py): each park day's fingerprint folds what its
curves were built from (every entity, PRIORITY ones included); only the months holding a day
whose fingerprint changed are rewritten, and days.parquet (a few kB) whenever one did. Every file
is written to a temp name and published by os.replace: a reader sees the old or the new file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.forecasts import crowd, wti
from bambam_assets.lib.forecasts.curves import write_table_atomic

CURVES_DIR, WTI_DIR = "curves", "wti"
DAYS_FILE, SCALE_FILE, ENTITIES_FILE = "days.parquet", "crowd_scale.json", "entities.parquet"
CURVE_COLUMNS = ("park_date", "entity_code", "slot", "slot_start", "actual_predicted",
                 "actual_p10", "actual_p90", "posted_predicted", "closed")
CURVES_SQL = """
    SELECT park_date, entity_code, slot, slot_start, actual_predicted, actual_p10, actual_p90,
           posted_predicted, actual_predicted IS NULL AS closed
    FROM read_parquet($files, hive_partitioning = false)
    WHERE strftime(park_date, '%Y-%m') IN (SELECT unnest($months::VARCHAR[]))
    ORDER BY park_date, entity_code, slot_start
"""


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def curves_file(home: Path, park: str, month: str) -> Path:
    return HomePaths(home).published_park(park) / CURVES_DIR / f"{month}.parquet"


def wti_file(home: Path, park: str, month: str) -> Path:
    return HomePaths(home).published_park(park) / WTI_DIR / f"{month}.parquet"


def days_file(home: Path, park: str) -> Path:
    return HomePaths(home).published_park(park) / DAYS_FILE


def scale_file(home: Path, park: str) -> Path:
    return HomePaths(home).published_park(park) / SCALE_FILE


def entities_file(home: Path) -> Path:
    return HomePaths(home).published / ENTITIES_FILE


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"


def _write_by_day(table: pa.Table, path: Path) -> None:
    """`table` (sorted by park_date) to `path`, one row group per park day."""
    tmp = _tmp(path)
    days = table.column("park_date").to_numpy().astype("datetime64[D]").astype(np.int64)
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(days)]
    try:
        with pq.ParquetWriter(tmp, table.schema, compression="zstd") as out:
            for a, b in zip(starts, ends, strict=True):
                out.write_table(table.slice(a, b - a), row_group_size=max(b - a, 1))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class PublishResult:
    """What one publication wrote."""

    parks: list[str] = field(default_factory=list)
    months_written: int = 0
    months_removed: int = 0
    curve_rows: int = 0
    days_changed: int = 0


def _fingerprint_text(values: Iterable) -> list[str]:
    return [f"{int(v) & 0xFFFFFFFFFFFFFFFF:016x}" for v in values]


def _stored_days(path: Path) -> pd.DataFrame | None:
    try:
        return pq.read_table(path).to_pandas()
    except (FileNotFoundError, OSError, pa.ArrowException):
        return None


def _park_forecasts(home: Path) -> dict[str, list[str]]:
    """park -> its entities' forecast files (one listing)."""
    out: dict[str, list[str]] = {}
    for code, path in wti.entity_files(home, FORECASTS_DIR, set()).items():
        out.setdefault(wti.park_of(code), []).append(str(path))
    return {park: sorted(files) for park, files in out.items()}


def _write_curve_months(conn: duckdb.DuckDBPyConnection, home: Path, park: str,
                        files: list[str], months: list[str]) -> int:
    """Rewrite the curve files of `months` from the park's forecast files; the rows written.
    One query per park (each forecast file decoded once), streamed in date order."""
    rows = 0
    reader = conn.sql(CURVES_SQL, params={"files": files, "months": months}).to_arrow_reader(
        200_000)
    pending: list[pa.RecordBatch] = []
    current: str | None = None

    def flush() -> None:
        nonlocal rows
        if current is None or not pending:
            return
        table = pa.Table.from_batches(pending).combine_chunks()
        _write_by_day(table, curves_file(home, park, current))
        rows += table.num_rows
        pending.clear()

    for batch in reader:
        if batch.num_rows == 0:
            continue
        months_of_rows = batch.column(0).to_numpy(zero_copy_only=False).astype(
            "datetime64[M]")  # integer months: no string per row
        cuts = np.flatnonzero(months_of_rows[1:] != months_of_rows[:-1]) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(months_of_rows)],
                        strict=True):
            label = str(months_of_rows[a])
            if label != current:
                flush()
                current = label
            pending.append(batch.slice(a, b - a))
    flush()
    return rows


def _days_frame(park: str, daily: pd.DataFrame, current: pd.DataFrame,
                stored: pd.DataFrame | None, scale: crowd.CrowdScale | None,
                first_forecast: date | None, last_forecast: date | None,
                now: str) -> pd.DataFrame:
    days = daily[daily["park_code"] == park].drop(columns=["park_code"]).copy()
    days["park_date"] = pd.to_datetime(days["park_date"]).dt.date
    fps = current[current["park_code"] == park][["park_date", "fingerprint"]].copy()
    fps["park_date"] = pd.to_datetime(fps["park_date"]).dt.date
    fps["fingerprint"] = _fingerprint_text(fps["fingerprint"])
    days = days.merge(fps, on="park_date", how="outer").sort_values("park_date",
                                                                   ignore_index=True)
    days["has_curves"] = False
    if first_forecast is not None:
        days["has_curves"] = (days["park_date"] >= first_forecast) & (
            days["park_date"] <= last_forecast)
    days["published_at"] = now
    if stored is not None and len(stored):
        keep = stored[["park_date", "fingerprint", "published_at"]].rename(
            columns={"fingerprint": "_fp", "published_at": "_at"})
        keep["park_date"] = pd.to_datetime(keep["park_date"]).dt.date
        days = days.merge(keep, on="park_date", how="left")
        same = days["_fp"] == days["fingerprint"]
        days.loc[same, "published_at"] = days.loc[same, "_at"]
        days = days.drop(columns=["_fp", "_at"])
    return crowd.calendar_levels(scale, days, first_forecast)


def publish(home: Path, current: pd.DataFrame | None = None) -> PublishResult:
    """Publish the park days whose inputs changed since the last publication (see the module
    docstring). `current`: wti.input_fingerprints over every entity (computed when None)."""
    home = Path(home)
    if current is None:
        current = wti.input_fingerprints(home)
    result = PublishResult()
    forecasts = _park_forecasts(home)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with warehouse.reader(home) as conn:
        tables = {t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
        if "park_wti_daily" not in tables:
            return result
        daily = conn.execute("SELECT park_code, park_date, wti, p10, p90, n_entities, n_slots "
                             "FROM park_wti_daily ORDER BY park_code, park_date").df()
        if "dim_entity" in tables:
            entities = conn.execute(
                "SELECT entity_code, entity_name, park_code, queue_type FROM dim_entity "
                "ORDER BY entity_code").df()
            write_table_atomic(pa.Table.from_pandas(entities, preserve_index=False),
                         entities_file(home))
    parks = sorted(set(daily["park_code"]) | set(forecasts))
    todo: dict[str, tuple[list[str], pd.DataFrame | None, pd.DataFrame]] = {}
    for park in parks:
        stored = _stored_days(days_file(home, park))
        cur = current[current["park_code"] == park]
        new = dict(zip(pd.to_datetime(cur["park_date"]).dt.date,
                       _fingerprint_text(cur["fingerprint"]), strict=True))
        old = {} if stored is None else dict(zip(
            pd.to_datetime(stored["park_date"]).dt.date, stored["fingerprint"], strict=True))
        changed = sorted(d for d in set(new) | set(old) if new.get(d) != old.get(d))
        if changed or stored is None:
            todo[park] = (sorted({month_of(d) for d in changed}), stored, cur)
            result.days_changed += len(changed)
    if not todo:
        return result
    wti_months: dict[str, pd.DataFrame] = {}
    with warehouse.reader(home) as conn:
        for park, (months, _, _) in todo.items():
            if months:
                wti_months[park] = conn.execute(
                    "SELECT park_date, slot, slot_start, wti, n_entities, min_actual, max_actual "
                    "FROM park_wti WHERE park_code = ? AND strftime(park_date, '%Y-%m') IN "
                    "(SELECT unnest(?::VARCHAR[])) ORDER BY slot_start", [park, months]).df()
    # One thread per CPU, one park each (its own in-memory DuckDB): the park's DuckDB read and
    # its zstd Parquet writes release the GIL, and one park at a time left a core idle for the
    # whole publication (72 of 116 s of the WTI step at 1,694 entities).
    def one(park: str) -> PublishResult:
        months, stored, _cur = todo[park]
        return _publish_park(home, park, months, stored, forecasts.get(park, []),
                             wti_months.get(park), daily, current, now, workers)

    workers = max(1, min(len(todo), warehouse.cpu_count()))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(one, list(todo)):
            result.parks += part.parks
            result.curve_rows += part.curve_rows
            result.months_written += part.months_written
            result.months_removed += part.months_removed
    return result


def _publish_park(home: Path, park: str, months: list[str], stored: pd.DataFrame | None,
                  files: list[str], frame: pd.DataFrame | None, daily: pd.DataFrame,
                  current: pd.DataFrame, now: str, side_by_side: int = 1) -> PublishResult:
    """Rewrite one park's changed months (curves and WTI), its crowd scale and days file
    (`side_by_side`: parks published at once, which share DuckDB's memory limit)."""
    result = PublishResult(parks=[park])
    spans = [s for s in (wti.forecast_span(Path(f)) for f in files) if s is not None]
    first = min(s[0] for s in spans) if spans else None
    last = max(s[1] for s in spans) if spans else None
    in_window = [m for m in months if first is not None
                 and month_of(first) <= m <= month_of(last)]
    if in_window:
        mem = warehouse.memory_connection(home, threads=1, share=side_by_side)
        try:
            result.curve_rows += _write_curve_months(mem, home, park, files, in_window)
        finally:
            mem.close()
        result.months_written += len(in_window)
    for m in sorted(set(months) - set(in_window)):  # left the window (or no forecast)
        path = curves_file(home, park, m)
        if path.exists():
            path.unlink()
            result.months_removed += 1
    by_month = {} if frame is None else dict(tuple(frame.groupby(
        pd.to_datetime(frame["park_date"]).to_numpy().astype("datetime64[M]")
        .astype(str), sort=False)))  # one pass, not one scan per month
    for m in months:
        part = by_month.get(m)
        path = wti_file(home, park, m)
        if part is None or not len(part):
            path.unlink(missing_ok=True)
            continue
        write_table_atomic(pa.Table.from_pandas(part, preserve_index=False), path)
    mine = daily[daily["park_code"] == park]
    before = pd.to_datetime(mine["park_date"]).dt.date < (first or date.max)
    history = mine.loc[before, ["park_date", "wti"]]  # backfilled days only
    scale = crowd.frozen_scale(park, history, scale_file(home, park))
    days = _days_frame(park, daily, current, stored, scale, first, last, now)
    write_table_atomic(pa.Table.from_pandas(days, preserve_index=False), days_file(home, park))
    return result

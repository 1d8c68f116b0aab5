"""The forecast API's answers, read from the published files (lib/forecasts/published.py) and the
entity forecast files: never from the warehouse (any DuckDB connection to it, even read-only,
blocks the pipeline's writer).

Each answer carries a validator: `etag` (the vintage of what it was built from: the park day's
input fingerprint, the entity file's fingerprint, or a hash of the days' fingerprints) and
`last_modified` (when those files were published). Errors are `NotFound` (unknown park or
entity, a date outside the published horizon) and `BadRequest` (a malformed date, a range
backwards or longer than allowed), each with a message naming what is known.

Park-day bodies are cached in memory by (park, day, etag): a warm repeat costs a lookup of the
park's days file (itself cached by its mtime), and a newer publication changes the etag.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bambam_assets.lib.core.parks import PARKS, park_of_entity
from bambam_assets.lib.core.paths import FORECASTS_DIR, HomePaths
from bambam_assets.lib.forecasts import best_times as bt
from bambam_assets.lib.forecasts import crowd, forecast, published

MAX_ENTITY_DAYS = 31  # days per /forecast/entity call: ~150 slots x 31 days per answer
MAX_EXPORT_DAYS = 31  # days per forecast export: ~20,000 rows per park day at full scale
MAX_CALENDAR_DAYS = 800  # a calendar call covers the whole two-year horizon at most
CALENDAR_COLUMNS = ["park_date", "kind", "wti", "wti_low", "wti_high", "crowd_level",
                    "crowd_low", "crowd_high", "crowd_text", "n_entities"]
EXPORT_COLUMNS = ["park_date", "entity_code", "slot", "slot_start", "actual_predicted",
                  "actual_p10", "actual_p90", "posted_predicted", "closed"]
FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class NotFound(LookupError):
    """An unknown park or entity, or a date with no published forecast."""


class BadRequest(ValueError):
    """A malformed date or range."""


@dataclass(frozen=True)
class Answer:
    """An encoded answer and its validators."""

    body: bytes
    etag: str
    last_modified: str  # an HTTP date
    media_type: str = "application/json"
    filename: str | None = None


def parse_day(text: str | None, name: str) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def checked_park(park: str) -> str:
    code = (park or "").strip().upper()
    if code not in PARKS:
        raise NotFound(f"unknown park {park!r}; known parks: {', '.join(PARKS)}")
    return code


def checked_range(start: date, end: date, limit: int) -> None:
    if end < start:
        raise BadRequest(f"to ({end}) is before from ({start})")
    if (end - start).days + 1 > limit:
        raise BadRequest(f"{(end - start).days + 1} days asked; at most {limit} per call")


def _http_date(iso: str | None) -> str:
    when = datetime.fromisoformat(iso) if iso else datetime(1970, 1, 1).astimezone()
    return format_datetime(when.astimezone(), usegmt=True) if when.tzinfo else format_datetime(
        when, usegmt=True)


def _digest(parts: list[str]) -> str:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def _floats(values: np.ndarray, digits: int = 2) -> list:
    out = np.round(np.asarray(values, dtype=float), digits).tolist()
    return [None if v != v else v for v in out]  # NaN -> null


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


class Reader:
    """Reads of one home's published forecast files, with small caches keyed on file mtimes."""

    def __init__(self, home: Path, cache_size: int = 256):
        self.home = Path(home)
        self._lock = threading.Lock()
        self._days: dict[str, tuple[int, pd.DataFrame]] = {}
        self._groups: dict[Path, tuple[int, dict[date, int]]] = {}
        self._bodies: OrderedDict[tuple, Answer] = OrderedDict()
        self._cache_size = cache_size

    # ---- the park's days (calendar, fingerprints, horizon) ----------------------------------

    def days(self, park: str) -> pd.DataFrame:
        """The park's published days (published.days_file), cached while its mtime holds."""
        path = published.days_file(self.home, park)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise NotFound(f"no published forecast for park {park} (has the WTI step run?)"
                           ) from None
        with self._lock:
            hit = self._days.get(park)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        frame = pq.read_table(path).to_pandas()
        frame["park_date"] = pd.to_datetime(frame["park_date"]).dt.date
        frame["crowd_text"] = [crowd.level_text(a, b, c) for a, b, c in zip(
            frame["crowd_level"], frame["crowd_low"], frame["crowd_high"], strict=True)]
        frame = frame.set_index("park_date", drop=False)
        with self._lock:
            self._days[park] = (mtime, frame)
        return frame

    def horizon(self, park: str) -> tuple[date, date]:
        days = self.days(park)
        fc = days[days["has_curves"]]
        if not len(fc):
            raise NotFound(f"park {park} has no published forecast days")
        return fc.index.min(), fc.index.max()

    def _day_row(self, park: str, day: date) -> pd.Series:
        days = self.days(park)
        first, last = self.horizon(park)
        if day not in days.index or not bool(days.at[day, "has_curves"]):
            raise NotFound(f"{park} {day}: outside the forecast horizon {first} .. {last}")
        return days.loc[day]

    # ---- a park day's curves ----------------------------------------------------------------

    def _row_groups(self, path: Path) -> dict[date, int]:
        mtime = path.stat().st_mtime_ns
        with self._lock:
            hit = self._groups.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        meta = pq.ParquetFile(path).metadata
        col = meta.schema.names.index("park_date")
        groups = {meta.row_group(i).column(col).statistics.min: i
                  for i in range(meta.num_row_groups)}
        with self._lock:
            self._groups[path] = (mtime, groups)
        return groups

    def day_curves(self, park: str, day: date) -> pa.Table:
        """One park day's curves (published.CURVE_COLUMNS): one row-group read."""
        path = published.curves_file(self.home, park, published.month_of(day))
        try:
            group = self._row_groups(path).get(day)
        except FileNotFoundError:
            group = None
        if group is None:
            return pa.table({c: pa.array([], pa.null()) for c in published.CURVE_COLUMNS})
        return pq.ParquetFile(path).read_row_group(group)

    def day_wti(self, park: str, day: date) -> pd.DataFrame:
        path = published.wti_file(self.home, park, published.month_of(day))
        if not path.is_file():
            return pd.DataFrame(columns=["slot", "wti", "n_entities"])
        return pq.read_table(path, columns=["slot", "slot_start", "wti", "n_entities"],
                             filters=[("park_date", "=", day)]).to_pandas().sort_values(
            "slot_start")

    def _cached(self, key: tuple, build) -> Answer:
        with self._lock:
            hit = self._bodies.get(key)
            if hit is not None:
                self._bodies.move_to_end(key)
                return hit
        answer = build()
        with self._lock:
            self._bodies[key] = answer
            while len(self._bodies) > self._cache_size:
                self._bodies.popitem(last=False)
        return answer

    def validators(self, park: str, day: date) -> tuple[str, str]:
        """(etag, last_modified) of a park day, without reading its curves."""
        row = self._day_row(park, day)
        return str(row["fingerprint"]), _http_date(row["published_at"])

    def park_day(self, park: str, day: date) -> Answer:
        """Every entity's curve of a park day and the park's WTI curve (JSON, columnar: one
        `slots` list, each entity's values aligned to it, null where it has none)."""
        etag, modified = self.validators(park, day)
        return self._cached(("day", park, day, etag),
                            lambda: Answer(_dumps(self._park_day_body(park, day)), etag,
                                           modified))

    def _park_day_body(self, park: str, day: date) -> dict:
        row = self._day_row(park, day)
        table = self.day_curves(park, day)
        if table.num_rows == 0:  # a day of the window without curve rows (no entity runs)
            table = pa.table({c: pa.array([], t) for c, t in zip(
                published.CURVE_COLUMNS, (pa.date32(), pa.string(), pa.string(),
                                          pa.timestamp("us", tz="UTC"), pa.float64(),
                                          pa.float64(), pa.float64(), pa.float64(),
                                          pa.bool_()), strict=True)})
        starts = table.column("slot_start").to_numpy()
        grid, inverse = np.unique(starts, return_inverse=True)
        slot_text = np.asarray(table.column("slot").to_pylist(), dtype=object)
        slots = [None] * len(grid)
        for i, s in zip(inverse.tolist(), slot_text.tolist(), strict=True):
            slots[i] = s
        codes = table.column("entity_code").to_numpy(zero_copy_only=False)
        entities, ent_idx = np.unique(codes, return_inverse=True)
        entities_out = []
        cols = {}
        for name in ("actual_predicted", "actual_p10", "actual_p90", "posted_predicted"):
            grid_values = np.full((len(entities), len(grid)), np.nan)
            grid_values[ent_idx, inverse] = table.column(name).to_numpy(zero_copy_only=False
                                                                         ).astype(float)
            cols[name] = grid_values
        closed = np.ones((len(entities), len(grid)), dtype=bool)  # no row: no slot that day
        closed[ent_idx, inverse] = table.column("closed").to_numpy(zero_copy_only=False)
        for k, code in enumerate(entities.tolist()):
            entities_out.append({"entity_code": code,
                                 **{n: _floats(v[k]) for n, v in cols.items()},
                                 "closed": closed[k].tolist()})
        wti = self.day_wti(park, day)
        return {"park_code": park, "park_date": day.isoformat(), "vintage": row["fingerprint"],
                "published_at": row["published_at"],
                "day": {"wti": _round(row["wti"]), "wti_low": _round(row["wti_low"]),
                        "wti_high": _round(row["wti_high"]), "crowd_level": _int(
                            row["crowd_level"]), "crowd_range": row["crowd_text"] or None},
                "slots": slots, "entities": entities_out,
                "wti": {"slots": wti["slot"].tolist(), "wti": _floats(wti["wti"].to_numpy()),
                        "n_entities": [int(x) for x in wti["n_entities"]]}}

    # ---- best times -------------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        path = published.entities_file(self.home)
        if not path.is_file():
            return {}
        t = pq.read_table(path, columns=["entity_code", "entity_name"]).to_pandas()
        return dict(zip(t["entity_code"], t["entity_name"].fillna(t["entity_code"]),
                        strict=True))

    def best_times_frame(self, park: str, day: date) -> list[dict]:
        self._day_row(park, day)
        curves = self.day_curves(park, day).to_pandas()
        return bt.best_times(curves, self.names()) if len(curves) else []

    def best_times(self, park: str, day: date) -> Answer:
        etag, modified = self.validators(park, day)
        return self._cached(("best", park, day, etag), lambda: Answer(_dumps({
            "park_code": park, "park_date": day.isoformat(), "vintage": etag,
            "window_margin_minutes": bt.WINDOW_MARGIN,
            "periods": {"rope_drop": f"first {bt.ROPE_DROP_MINUTES} minutes",
                        "midday": f"{bt.MIDDAY[0]}-{bt.MIDDAY[1]}",
                        "evening": f"last {bt.EVENING_MINUTES} minutes"},
            "entities": self.best_times_frame(park, day)}), etag, modified))

    # ---- calendar -----------------------------------------------------------------------------

    def calendar_frame(self, park: str, start: date | None, end: date | None) -> pd.DataFrame:
        """The park's calendar days in start..end (default: the forecast horizon)."""
        days = self.days(park)
        first, last = self.horizon(park)
        start, end = start or first, end or last
        checked_range(start, end, MAX_CALENDAR_DAYS)
        known_first, known_last = days.index.min(), days.index.max()
        if end < known_first or start > known_last:
            raise NotFound(f"{park}: no calendar day in {start} .. {end}; the calendar covers "
                           f"{known_first} .. {known_last}")
        part = days[(days["park_date"] >= start) & (days["park_date"] <= end)]
        return part.loc[:, CALENDAR_COLUMNS].reset_index(drop=True)

    def calendar(self, park: str, start: date | None, end: date | None, fmt: str = "json"
                 ) -> Answer:
        days = self.days(park)
        frame = self.calendar_frame(park, start, end)
        sub = days.loc[frame["park_date"]]
        etag = _digest([*sub["fingerprint"].astype(str), fmt, *map(str, frame["park_date"][:1])])
        modified = _http_date(sub["published_at"].max())
        name = f"{park}_calendar_{frame['park_date'].min()}_{frame['park_date'].max()}"
        if fmt == "json":
            scale = crowd.load_scale(published.scale_file(self.home, park))
            body = {"park_code": park, "scale": None if scale is None else {
                "deciles": [round(x, 2) for x in scale.deciles],
                "band_log_q10": round(scale.q10, 4), "band_log_q90": round(scale.q90, 4),
                "history": f"{scale.history_first} .. {scale.history_last}",
                "history_days": scale.history_days, "provisional": scale.provisional,
                "built_at": scale.built_at},
                "days": json.loads(_frame_json(frame))}
            return Answer(_dumps(body), etag, modified)
        return _export(frame, fmt, etag, modified, name)

    # ---- exports --------------------------------------------------------------------------------

    def forecast_frame(self, park: str, start: date, end: date) -> pd.DataFrame:
        """The park's curves over start..end (at most MAX_EXPORT_DAYS), from the month files."""
        checked_range(start, end, MAX_EXPORT_DAYS)
        first, last = self.horizon(park)
        if start < first or end > last:
            raise NotFound(f"{park} {start} .. {end}: outside the forecast horizon "
                           f"{first} .. {last}")
        months = sorted({published.month_of(start + timedelta(days=i))
                         for i in range((end - start).days + 1)})
        parts = []
        for m in months:
            path = published.curves_file(self.home, park, m)
            if path.is_file():
                parts.append(pq.read_table(path, filters=[("park_date", ">=", start),
                                                          ("park_date", "<=", end)]))
        if not parts:
            return pd.DataFrame(columns=EXPORT_COLUMNS)
        return pa.concat_tables(parts).to_pandas().loc[:, EXPORT_COLUMNS]

    def forecast_export(self, park: str, start: date, end: date, fmt: str) -> Answer:
        frame = self.forecast_frame(park, start, end)
        days = self.days(park)
        sub = days[(days["park_date"] >= start) & (days["park_date"] <= end)]
        etag = _digest([*sub["fingerprint"].astype(str), fmt, str(start)])
        return _export(frame, fmt, etag, _http_date(sub["published_at"].max()),
                       f"{park}_forecast_{start}_{end}")

    # ---- one entity --------------------------------------------------------------------------

    def entity(self, entity: str, start: date | None, end: date | None) -> Answer:
        """An entity's daily summaries and curves over start..end (default: its first 7 days)."""
        code = (entity or "").strip().upper()
        park = park_of_entity(code)
        path = HomePaths(self.home).curve_file(FORECASTS_DIR, code) if park else None
        if path is None or not path.is_file():
            raise NotFound(f"no forecast for entity {entity!r}")
        meta = pq.ParquetFile(path).metadata
        col = meta.schema.names.index("park_date")
        stats = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
        first = min(s.min for s in stats)
        last = max(s.max for s in stats)
        start = start or first
        end = end or min(start + timedelta(days=6), last)
        checked_range(start, end, MAX_ENTITY_DAYS)
        if start < first or end > last:
            raise NotFound(f"{code} {start} .. {end}: outside the forecast horizon "
                           f"{first} .. {last}")
        etag = _digest([forecast.stored_fingerprint(path) or str(path.stat().st_mtime_ns),
                        str(start), str(end)])
        modified = format_datetime(datetime.fromtimestamp(path.stat().st_mtime).astimezone(),
                                   usegmt=True)
        frame = pq.read_table(path, filters=[("park_date", ">=", start),
                                             ("park_date", "<=", end)]).to_pandas()
        frame = frame.sort_values("slot_start")
        days_out, curves_out = [], {}
        for day, part in frame.groupby("park_date", sort=True):
            waits = part["actual_predicted"].to_numpy(float)
            has = ~np.isnan(waits)
            best = int(np.nanargmin(waits)) if has.any() else None
            days_out.append({
                "park_date": str(day), "n_slots": int(len(part)),
                "mean_actual": _round(np.nanmean(waits)) if has.any() else None,
                "max_actual": _round(np.nanmax(waits)) if has.any() else None,
                "min_actual": _round(np.nanmin(waits)) if has.any() else None,
                "best_slot": None if best is None else part["slot"].iloc[best],
                "mean_posted": _round(part["posted_predicted"].mean())})
            curves_out[str(day)] = {
                "slots": part["slot"].tolist(), "actual_predicted": _floats(waits),
                "actual_p10": _floats(part["actual_p10"].to_numpy()),
                "actual_p90": _floats(part["actual_p90"].to_numpy()),
                "posted_predicted": _floats(part["posted_predicted"].to_numpy()),
                "closed": (~has).tolist()}
        names = self.names()
        return Answer(_dumps({"entity_code": code, "entity_name": names.get(code, code),
                              "park_code": park, "from": str(start), "to": str(end),
                              "horizon": [str(first), str(last)], "days": days_out,
                              "curves": curves_out}), etag, modified)


def _round(x, digits: int = 2):
    return None if x is None or pd.isna(x) else round(float(x), digits)


def _int(x):
    return None if x is None or pd.isna(x) else int(x)


def _frame_json(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for c in out.columns:
        if c == "park_date" or c == "slot_start":
            out[c] = out[c].astype(str)
    return out.to_json(orient="records", double_precision=4)


def _export(frame: pd.DataFrame, fmt: str, etag: str, modified: str, name: str) -> Answer:
    if fmt not in FORMATS:
        raise BadRequest(f"format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "csv":
        body = frame.to_csv(index=False, float_format="%.2f").encode()
    else:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf,
                       compression="zstd")
        body = buf.getvalue()
    return Answer(body, etag, modified, FORMATS[fmt], f"{name}.{fmt}")

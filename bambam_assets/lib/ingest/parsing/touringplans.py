"""Parsers of the TouringPlans wait-time formats: standby export, public per-attraction, fastpass.

Each takes the (file index, path[, key]) files of one format and returns a `Parsed` batch; all
files are read into one block and parsed in one vectorized pass (docs/raw_formats.md,
sections 1-2; the legacy parsing rules, with its quirks fixed).

Reason priority for one raw row: bad bytes (nul_bytes, invalid_utf8) > wrong field count
(bad_row) > entity code (bad_entity_code, unknown_park) > time (unparseable_time) > no value at
all (missing_value) > a value that is not a number (bad_row) > out of range (value_out_of_range);
fastpass checks numbers before the time.
Values: "", NA, N/A, NaN, NULL, None read as empty. Public files: `date` is not used (the
`datetime` column carries the date and time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa

from bambam_assets.lib.core.schema import ACTUAL, CLOSED, POSTED, PRIORITY, SOLD_OUT
from bambam_assets.lib.ingest.parsing.common import (
    BAD_ROW,
    BAD_TIME,
    MISSING,
    OUT_OF_RANGE,
    Parsed,
    entity_parks,
    first_reason,
    localise,
    parse_instants,
    parse_numbers,
    round_in_range,
    stack_candidates,
)
from bambam_assets.lib.ingest.parsing.text import (
    LineBlock,
    header_resolver,
    positional_resolver,
    read_block,
)

STANDBY_COLUMNS = ("entity_code", "observed_at", "submitted_posted_time", "submitted_actual_time")
PUBLIC_COLUMNS = ("date", "datetime", "spostmin", "sactmin")
FASTPASS_COLUMNS = ("fattid", "fday", "fmonth", "fyear", "fhour", "fmin", "fwinhr", "fwinmin")
FASTPASS_REQUIRED = ("fattid", "fday", "fmonth", "fyear", "fhour", "fwinhr")

POSTED_CLOSED = -999.0          # TouringPlans posted sentinel: the ride was down
WAIT_RANGE = (0.0, 1000.0)      # POSTED / ACTUAL minutes kept
PRIORITY_RANGE = (-100.0, 2000.0)  # PRIORITY minutes kept (plus 8888 sold out)
SOLD_OUT_FWINHR = 8000          # raw FWINHR at or above this: return times sold out
ROLL_OVER_MINUTES = 15          # a return more than this before the observation is next day


def _raw_of(block: LineBlock) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rows: block.raw.take(pa.array(rows, pa.int64())).to_numpy(zero_copy_only=False)


def _posted_actual(block: LineBlock, entity: pa.Array, times: pa.Array,
                   posted: pa.Array, actual: pa.Array) -> Parsed:
    """Standby-like rows: a POSTED (or CLOSED) and an ACTUAL candidate per raw row."""
    n = len(block)
    code, park_idx, ent_reason = entity_parks(entity)
    observed = parse_instants(times, park_idx)
    p_val, p_empty, p_bad = parse_numbers(posted)
    a_val, a_empty, a_bad = parse_numbers(actual)
    # Row-level reasons first (they reject every value of the row), then per-value ones.
    row_reason = first_reason(
        n, (block.bad_bytes > 0, block.bad_bytes), (~block.fields_ok, BAD_ROW),
        (ent_reason > 0, ent_reason), (np.isnat(observed), BAD_TIME), (p_empty & a_empty, MISSING))
    closed = p_val == POSTED_CLOSED
    p_min, p_oor = round_in_range(p_val, *WAIT_RANGE)
    a_min, a_oor = round_in_range(a_val, *WAIT_RANGE)
    p_reason = np.where(row_reason > 0, row_reason,
                        first_reason(n, (p_bad, BAD_ROW), (~closed & p_oor, OUT_OF_RANGE)))
    a_reason = np.where(row_reason > 0, row_reason,
                        first_reason(n, (a_bad, BAD_ROW), (a_oor, OUT_OF_RANGE)))
    rows = np.arange(n)
    # A posted candidate also stands for a row with no value at all, so that row is rejected once.
    p_rows = rows[~p_empty | a_empty]
    a_rows = rows[~a_empty]
    p_type = np.where(closed, CLOSED, POSTED).astype(object)
    cand = stack_candidates(
        (p_rows, p_type[p_rows], np.where(closed, np.nan, p_min)[p_rows], p_reason[p_rows]),
        (a_rows, np.full(len(a_rows), ACTUAL, dtype=object), a_min[a_rows], a_reason[a_rows]),
    )
    return Parsed(block.file_idx, block.line, _raw_of(block), code, park_idx, observed, *cand,
                  errors=block.errors)


def parse_standby(files: Sequence[tuple[int, Path]]) -> Parsed:
    """Standby export files (`entity_code,observed_at,submitted_posted_time,...`)."""
    block = read_block(files, header_resolver(STANDBY_COLUMNS), STANDBY_COLUMNS)
    f = block.fields
    return _posted_actual(block, f["entity_code"], f["observed_at"],
                          f["submitted_posted_time"], f["submitted_actual_time"])


def parse_public(files: Sequence[tuple[int, Path, str]]) -> Parsed:
    """Public per-attraction files `{ENTITY}.csv`: the entity is the file name's stem."""
    block = read_block([(i, p) for i, p, _ in files], header_resolver(PUBLIC_COLUMNS),
                       PUBLIC_COLUMNS)
    stems = {i: PurePosixPath(key).stem for i, _, key in files}
    stem_of = np.array([stems.get(i, "") for i in range(max(stems, default=0) + 1)], dtype=object)
    entity = pa.array(stem_of[block.file_idx], pa.large_string())
    f = block.fields
    return _posted_actual(block, entity, f["datetime"], f["spostmin"], f["sactmin"])


def _hour_minute(packed: np.ndarray, minute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hour clipped 0–23, minute clipped 0–59) of a packed HHMMSS / HHMM / hour-only value."""
    v = np.floor(np.nan_to_num(packed))
    m = np.floor(np.nan_to_num(minute))
    hour = np.where(v >= 10000, v // 10000, np.where(v >= 100, v // 100, v))
    mins = np.where(v >= 10000, (v // 100) % 100, np.where(v >= 100, v % 100, m))
    return np.clip(hour, 0, 23), np.clip(mins, 0, 59)


def _dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """datetime64[D] of numeric Y/M/D columns; NaT where missing or impossible (Feb 30)."""
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(year) & np.isfinite(month) & np.isfinite(day)
              & (year >= 1900) & (year <= 2200) & (month >= 1) & (month <= 12)
              & (day >= 1) & (day <= 31))
    y = np.where(ok, year, 1970).astype(np.int64)
    mo = np.where(ok, month, 1).astype(np.int64)
    d = np.where(ok, day, 1).astype(np.int64)
    months = ((y - 1970) * 12 + (mo - 1)).astype("datetime64[M]")
    dates = months.astype("datetime64[D]") + (d - 1).astype("timedelta64[D]")
    ok &= dates.astype("datetime64[M]") == months  # day 31 of a 30-day month rolls over: reject
    return np.where(ok, dates, np.datetime64("NaT"))


def _fastpass(block: LineBlock) -> Parsed:
    """Fastpass rows: one PRIORITY candidate per raw row, minutes = return time - observation
    time (a return more than ROLL_OVER_MINUTES before it is the next day), sold out 8888."""
    n = len(block)
    f = block.fields
    code, park_idx, ent_reason = entity_parks(f["fattid"])
    num = {c: parse_numbers(f[c]) for c in FASTPASS_COLUMNS[1:]}
    any_bad = np.logical_or.reduce([num[c][2] for c in num])
    date = _dates(num["fyear"][0], num["fmonth"][0], num["fday"][0])
    hour, minute = _hour_minute(num["fhour"][0], num["fmin"][0])
    ret_hour, ret_minute = _hour_minute(num["fwinhr"][0], num["fwinmin"][0])
    obs_min = hour * 60 + minute
    diff = ret_hour * 60 + ret_minute - obs_min
    diff = np.where(diff < -ROLL_OVER_MINUTES, diff + 24 * 60, diff)
    with np.errstate(invalid="ignore"):
        win = num["fwinhr"][0]
        # Sold out: FWINHR >= 8000 (legacy), except a real packed HHMMSS return time
        # (10000..235959): the legacy test ran before unpacking and so flagged every HHMMSS
        # return (e.g. 113000 = 11:30:00) as sold out.
        sold_out = (win >= SOLD_OUT_FWINHR) & ~((win >= 10000) & (win < 240000))
    minutes, oor = round_in_range(np.where(sold_out, float(SOLD_OUT), diff), *PRIORITY_RANGE)
    oor &= ~sold_out
    local = date.astype("datetime64[ns]") + obs_min.astype(np.int64).astype("timedelta64[m]")
    observed = localise(local, park_idx)
    reason = first_reason(
        n, (block.bad_bytes > 0, block.bad_bytes), (~block.fields_ok, BAD_ROW),
        (ent_reason > 0, ent_reason), (any_bad, BAD_ROW),
        (np.isnat(date) | num["fhour"][1] | np.isnat(observed), BAD_TIME),
        (num["fwinhr"][1], MISSING), (oor, OUT_OF_RANGE))
    rows = np.arange(n)
    cand = (rows, np.full(n, PRIORITY, dtype=object), minutes, reason)
    return Parsed(block.file_idx, block.line, _raw_of(block), code, park_idx, observed, *cand,
                  errors=block.errors)


def parse_fastpass_new(files: Sequence[tuple[int, Path]]) -> Parsed:
    """New fastpass export: header with FATTID..FWINHR (FMIN, FWINMIN optional, any order)."""
    resolver = header_resolver(FASTPASS_REQUIRED, ("fmin", "fwinmin"))
    return _fastpass(read_block(files, resolver, FASTPASS_COLUMNS))


def parse_fastpass_old(files: Sequence[tuple[int, Path]]) -> Parsed:
    """Old fastpass export: first line skipped, first 8 fields by position."""
    return _fastpass(read_block(files, positional_resolver(FASTPASS_COLUMNS), FASTPASS_COLUMNS))

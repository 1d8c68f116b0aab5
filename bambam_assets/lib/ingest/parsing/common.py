"""Vectorized building blocks shared by the wait-time parsers.

Entity codes -> park, numbers, time stamps -> UTC instants, the 6 AM park_date rule, rejection
reason codes, and `Parsed`, the per-format intermediate every parser returns. All functions work
on whole columns (pyarrow.compute / numpy / pandas); the only Python loops run over the at most
five time zones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bambam_assets.lib.core.parks import PARK_DAY_START_HOUR, PARKS, tz_of_park

# Rejection reasons (docs/raw_formats.md); index 0 means "no reason": the value is usable.
REASONS: tuple[str, ...] = (
    "", "bad_row", "bad_entity_code", "unknown_park", "unparseable_time",
    "missing_value", "value_out_of_range", "unmapped_ride", "nul_bytes", "invalid_utf8",
)
(OK, BAD_ROW, BAD_ENTITY, UNKNOWN_PARK, BAD_TIME, MISSING, OUT_OF_RANGE, UNMAPPED, NUL_BYTES,
 INVALID_UTF8) = range(10)

PARK_ARRAY = np.array(PARKS, dtype=object)
TIME_ZONES: tuple[str, ...] = tuple(sorted({tz_of_park(p) for p in PARKS}))
TZ_INDEX_OF_PARK = np.array([TIME_ZONES.index(tz_of_park(p)) for p in PARKS] + [-1])  # [-1]: none

_ENTITY_SHAPE = r"^[A-Z]+[0-9]+$"
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
# Tokens CSV writers use for "no value" (pandas, R, SQL exports): read as empty, not as bad.
_NULL_TOKENS = pa.array(["na", "n/a", "nan", "null", "none"], pa.large_string())
_OFFSET_TAIL = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"
_MIN_TIMESTAMP_LEN = 16  # YYYY-MM-DD HH:MM: a bare date is not an observation time


@dataclass
class Parsed:
    """A format batch: one entry per raw row, plus candidate facts sorted by (row, rank).

    A raw row yields one or more candidates (a standby row: POSTED and/or ACTUAL); a candidate
    with reason OK becomes a fact row, the first non-OK candidate of a row its rejection.
    """

    file_idx: np.ndarray                      # per raw row: index into the caller's file list
    line: np.ndarray                          # per raw row: 1-based line (or ride position)
    raw: Callable[[np.ndarray], np.ndarray]   # raw text of the given rows (object array)
    entity: pa.Array                          # per raw row: upper-cased entity code (or null)
    park_idx: np.ndarray                      # per raw row: index into PARKS, -1 when none
    observed_at: np.ndarray                   # per raw row: datetime64[ns] UTC instant or NaT
    cand_row: np.ndarray                      # per candidate: raw row index (non-decreasing)
    cand_type: np.ndarray                     # per candidate: POSTED | ACTUAL | PRIORITY | CLOSED
    cand_minutes: np.ndarray                  # per candidate: float minutes, NaN for CLOSED
    cand_reason: np.ndarray                   # per candidate: reason code (OK = usable)
    errors: dict[int, str] = field(default_factory=dict)  # file index -> unreadable because
    fetched_at: np.ndarray | None = None      # per raw row: fetch instant (NaT unknown)


def first_reason(n: int, *checks: tuple[np.ndarray, int | np.ndarray]) -> np.ndarray:
    """Reason code per row: the first (mask, code) check in priority order that holds, else OK."""
    out = np.zeros(n, dtype=np.int64)
    for mask, code in reversed(checks):
        out = np.where(mask, code, out)
    return out


def stack_candidates(
    *parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (rows, types, minutes, reasons) parts, sorted by row with part order kept."""
    rows, types, minutes, reasons = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(rows, kind="stable")
    return rows[order], types[order], minutes[order], reasons[order]


def entity_parks(codes: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Normalised codes (upper-cased, trimmed), park index (-1 none) and reason per code."""
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    # Work on the distinct codes (a few hundred) and broadcast back through the indices.
    enc = pc.dictionary_encode(codes)
    distinct = pc.utf8_upper(pc.utf8_trim_whitespace(enc.dictionary))
    valid_d = pc.fill_null(pc.match_substring_regex(distinct, _ENTITY_SHAPE), False).to_numpy(
        zero_copy_only=False)
    prefix = pc.replace_substring_regex(distinct, r"[0-9]+$", "")
    park_d = pc.fill_null(pc.index_in(prefix, value_set=pa.array(PARKS, distinct.type)), -1)
    park_d = np.append(np.where(valid_d, park_d.to_numpy(zero_copy_only=False), -1), -1)
    valid_d = np.append(valid_d, False)  # slot -1: a null code
    index = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
    code = distinct.take(enc.indices)
    valid, park_idx = valid_d[index], park_d[index]
    reason = first_reason(len(code), (~valid, BAD_ENTITY), (park_idx < 0, UNKNOWN_PARK))
    return code, park_idx, reason


def parse_numbers(s: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value float with NaN, empty mask, not-a-number mask) of trimmed strings."""
    s = pc.fill_null(s, "")
    empty = pc.or_(pc.equal(s, ""), pc.is_in(pc.utf8_lower(s), value_set=_NULL_TOKENS.cast(s.type)))
    ok = pc.match_substring_regex(s, _NUMBER)
    values = pc.cast(pc.if_else(ok, s, pa.scalar(None, s.type)), pa.float64())
    empty_np = empty.to_numpy(zero_copy_only=False)
    bad = ~empty_np & ~ok.to_numpy(zero_copy_only=False)
    return values.to_numpy(zero_copy_only=False), empty_np, bad


def localise(naive: np.ndarray, park_idx: np.ndarray) -> np.ndarray:
    """UTC instants (datetime64[ns]) of local wall-clock times in each row's park zone.

    Spring-forward gap: a non-existent time shifts forward to the first valid instant (02:30 ->
    03:00). Fall-back hour: an ambiguous time takes its FIRST occurrence, the DST side (01:30 ->
    01:30 EDT), so a day's observations never jump back an hour. Rows without a park stay NaT.
    """
    out = np.full(len(naive), np.datetime64("NaT"), dtype="datetime64[ns]")
    tz_idx = TZ_INDEX_OF_PARK[park_idx]
    for t, tz in enumerate(TIME_ZONES):
        m = (tz_idx == t) & ~np.isnat(naive)
        if m.any():
            local = pd.DatetimeIndex(naive[m]).tz_localize(
                tz, ambiguous=np.ones(int(m.sum()), dtype=bool), nonexistent="shift_forward")
            out[m] = local.tz_convert("UTC").tz_localize(None).to_numpy()
    return out


def parse_instants(s: pa.Array, park_idx: np.ndarray) -> np.ndarray:
    """UTC instants (datetime64[ns], NaT when unparseable) of ISO-8601-like time strings.

    A string with `Z` or `±HH:MM` / `±HHMM` keeps its instant; a naive one
    (`YYYY-MM-DD HH:MM[:SS[.f]]`, space or T) is local wall clock of the row's park.
    """
    s = pc.fill_null(s, "")
    aware = pc.match_substring_regex(pc.utf8_slice_codeunits(s, -6), _OFFSET_TAIL)
    long_enough = pc.greater_equal(pc.utf8_length(s), _MIN_TIMESTAMP_LEN)
    aware_np = aware.to_numpy(zero_copy_only=False)
    naive_np = ~aware_np & long_enough.to_numpy(zero_copy_only=False)
    strings = s.to_numpy(zero_copy_only=False)
    out = np.full(len(strings), np.datetime64("NaT"), dtype="datetime64[ns]")
    if naive_np.any():
        wall = pd.to_datetime(pd.Series(strings[naive_np]), format="ISO8601", errors="coerce")
        out[naive_np] = localise(wall.to_numpy(dtype="datetime64[ns]"), park_idx[naive_np])
    if aware_np.any():
        inst = pd.to_datetime(pd.Series(strings[aware_np]), format="ISO8601", utc=True,
                              errors="coerce")
        out[aware_np] = inst.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return out


def park_dates(observed_at: np.ndarray, park_idx: np.ndarray) -> np.ndarray:
    """park_date (datetime64[ns], midnight): park-zone local date, one day less before 06:00."""
    out = np.full(len(observed_at), np.datetime64("NaT"), dtype="datetime64[ns]")
    tz_idx = TZ_INDEX_OF_PARK[park_idx]
    shift = pd.Timedelta(hours=PARK_DAY_START_HOUR)
    for t, tz in enumerate(TIME_ZONES):
        m = tz_idx == t
        if m.any():
            local = pd.DatetimeIndex(observed_at[m]).tz_localize("UTC").tz_convert(tz)
            out[m] = (local.tz_localize(None) - shift).normalize().to_numpy()
    return out


def round_in_range(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(values rounded half-to-even like the legacy pandas round, out-of-[lo, hi] mask)."""
    rounded = np.rint(values)
    with np.errstate(invalid="ignore"):
        return rounded, (rounded < lo) | (rounded > hi)

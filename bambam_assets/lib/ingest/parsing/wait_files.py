"""Parse raw wait-time files of every format into fact rows, rejected rows and per-file counts.

Entry points: `parse_wait_files` (all wait-time formats of one batch) and `read_qt_mapping`.
The files of each format are parsed together in one vectorized pass (parsing_touringplans,
parsing_queue_times); this module turns each format's candidates into the three tables.

Counting contract, per file: rows_read = rows_ok + rows_rejected. A raw row is rejected (once,
with its first reason in priority order) when any of its values is unusable; a usable value of
the same row (a standby row with a good POSTED and a bad ACTUAL) is still a fact row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bambam_assets.lib.core.schema import FACT_COLUMNS, FACT_KEY, REJECTED_COLUMNS
from bambam_assets.lib.ingest.formats import WAIT_TIME_FORMATS, RawFormat
from bambam_assets.lib.ingest.parsing.common import OK, PARK_ARRAY, REASONS, Parsed, park_dates
from bambam_assets.lib.ingest.parsing.queue_times import parse_snapshots
from bambam_assets.lib.ingest.parsing.touringplans import (
    parse_fastpass_new,
    parse_fastpass_old,
    parse_public,
    parse_standby,
)

MAPPING_COLUMNS = ("entity_code", "park_code", "queue_times_id", "queue_times_name")
FILE_COLUMNS = ("source_file", "format", "rows_read", "rows_ok", "rows_rejected", "error",
                "rows_collapsed", "stale_rows")
STALE_AFTER = np.timedelta64(24, "h")  # a ride's last_updated this long before the fetch is stale
_FASTPASS = (RawFormat.FASTPASS_NEW, RawFormat.FASTPASS_OLD)


@dataclass
class ParseResult:
    """Output of one batch.

    facts: one row per usable observation (schema.FACT_COLUMNS), unique on schema.FACT_KEY.
    rejected: one row per unusable raw row (schema.REJECTED_COLUMNS), line 1-based.
    files: one row per input file (FILE_COLUMNS); `error` set when the file could not be read
      at all (it then contributes no rows); rows_collapsed = fastpass rows superseded by a later
      row of the same entity and instant in the file; stale_rows = snapshot rows observed more
      than 24 h before the fetch time in the file name.
    also: the usable rows the batch dedupe dropped because an earlier row holds the same fact
      (FACT_COLUMNS, source_file = the file of the dropped row): the other files holding a fact,
      so that a corrected re-export of the fact's kept file never loses it (lib.ingest.ingest).
    """

    facts: pd.DataFrame
    rejected: pd.DataFrame
    files: pd.DataFrame
    also: pd.DataFrame


def _empty_facts() -> pd.DataFrame:
    return pd.DataFrame({
        "entity_code": pd.Series(dtype=object), "park_code": pd.Series(dtype=object),
        "park_date": pd.Series(dtype="datetime64[ns]"),
        "observed_at": pd.Series(dtype="datetime64[ns, UTC]"),
        "wait_time_type": pd.Series(dtype=object), "wait_time_minutes": pd.Series(dtype="Int64"),
        "source_file": pd.Series(dtype=object),
    })


def _kept(file_of: np.ndarray, entity: np.ndarray, instant: np.ndarray, types: np.ndarray,
          minutes: np.ndarray, collapse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the usable candidates that become facts, superseded-row mask) after the
    fastpass collapse and the batch dedupe on the fact key."""
    keep = np.ones(len(file_of), dtype=bool)
    if collapse and len(file_of):
        # The legacy ETL kept the LAST fastpass row per (entity, instant) of a chunk. Kept here per
        # file: in one export file line order is the order of observation, so the last row is
        # the freshest reading of that booth at that minute; across files the order would
        # depend on which file a run happens to read first, breaking idempotent re-ingest.
        keep = ~pd.DataFrame({"f": file_of, "e": entity, "t": instant}).duplicated(
            keep="last").to_numpy()
    superseded = ~keep
    # Dedupe on the fact key hashed as integer codes (entity dictionary index, instant, type,
    # minutes): hashing millions of strings would cost more than the parse itself.
    sel = np.flatnonzero(keep)
    key = pd.DataFrame({
        "e": entity[sel], "t": instant[sel], "y": pd.factorize(types[sel])[0],
        "m": np.where(np.isnan(minutes[sel]), np.iinfo(np.int64).min,
                      np.nan_to_num(minutes[sel]).astype(np.int64)),
    })
    keep[sel[key.duplicated().to_numpy()]] = False
    return keep, superseded


def _finalise(p: Parsed, keys: np.ndarray, n_files: int, collapse: bool
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Candidates -> (facts, also, rejected, per-file counts) for one format batch."""
    ok = p.cand_reason == OK
    rows = p.cand_row[ok]
    # Entity strings through a dictionary: a few hundred distinct codes, millions of rows.
    enc = pc.dictionary_encode(p.entity)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    entity = pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False)[rows]  # null: no fact
    file_of, observed = p.file_idx[rows], p.observed_at[rows]
    minutes, types = p.cand_minutes[ok], p.cand_type[ok]
    stale = np.zeros(n_files, np.int64)
    if p.fetched_at is not None and len(rows):
        late = (p.fetched_at[rows] - observed) > STALE_AFTER  # NaT compares False
        stale = np.bincount(file_of[late], minlength=n_files)
    keep, superseded = _kept(file_of, entity, observed.view(np.int64), types, minutes, collapse)
    held = ~superseded  # the file holds the fact, whether or not this row is the one kept
    rows, file_of, observed, minutes, types, entity, keep = (
        x[held] for x in (rows, file_of, observed, minutes, types, entity, keep))
    park_idx = p.park_idx[rows]
    holdings = pd.DataFrame({
        "entity_code": enc.dictionary.to_numpy(zero_copy_only=False)[entity] if len(rows)
        else np.zeros(0, object),
        "park_code": PARK_ARRAY[park_idx],
        "park_date": park_dates(observed, park_idx),
        "observed_at": pd.DatetimeIndex(observed).tz_localize("UTC"),
        "wait_time_type": types,
        "wait_time_minutes": pd.arrays.IntegerArray(
            np.nan_to_num(minutes).astype(np.int64), np.isnan(minutes)),
        "source_file": keys[file_of],
    })
    facts = holdings[keep].reset_index(drop=True)
    also = holdings[~keep].reset_index(drop=True)
    # One rejection per raw row: its first unusable candidate (candidates are sorted by row).
    rej_rows, first = np.unique(p.cand_row[~ok], return_index=True)
    rejected = pd.DataFrame({
        "source_file": keys[p.file_idx[rej_rows]],
        "line": p.line[rej_rows].astype(np.int64),
        "reason": np.array(REASONS, dtype=object)[p.cand_reason[~ok][first]],
        "raw": p.raw(rej_rows) if len(rej_rows) else np.zeros(0, object),
    })
    counts = {
        "rows_read": np.bincount(p.file_idx, minlength=n_files),
        "rows_rejected": np.bincount(p.file_idx[rej_rows], minlength=n_files),
        "rows_collapsed": np.bincount(p.file_idx[p.cand_row[ok][superseded]], minlength=n_files),
        "stale_rows": stale,
    }
    return facts, also, rejected, counts


def parse_wait_files(
    files: Sequence[tuple[str, Path, RawFormat]], qt_mapping: pd.DataFrame | None = None,
) -> ParseResult:
    """Parse (source key, local path, format) files; see ParseResult for the grain of each table.

    Facts are deduplicated within the batch on schema.FACT_KEY (the first occurrence keeps its
    source_file); the caller still dedupes against the warehouse. A file whose format is not a
    wait-time format gets an error, like an unreadable file.
    """
    n = len(files)
    keys = np.array([k for k, _, _ in files], dtype=object)
    counts = {c: np.zeros(n, np.int64) for c in ("rows_read", "rows_rejected", "rows_collapsed",
                                                 "stale_rows")}
    errors: dict[int, str] = {}
    facts, rejected = [_empty_facts()], [pd.DataFrame(columns=list(REJECTED_COLUMNS))]
    also = [_empty_facts()]
    for fmt in dict.fromkeys(RawFormat(f) for _, _, f in files):  # formats in first-seen order
        members = [(i, Path(p), k) for i, (k, p, f) in enumerate(files) if RawFormat(f) == fmt]
        if fmt not in WAIT_TIME_FORMATS:
            errors.update({i: f"not a wait-time format: {fmt}" for i, _, _ in members})
            continue
        if fmt is RawFormat.QUEUE_TIMES_SNAPSHOT:
            parsed = parse_snapshots(members, qt_mapping)
        elif fmt is RawFormat.PUBLIC_ATTRACTION:
            parsed = parse_public(members)
        else:
            parser = {RawFormat.STANDBY: parse_standby, RawFormat.FASTPASS_NEW: parse_fastpass_new,
                      RawFormat.FASTPASS_OLD: parse_fastpass_old}[fmt]
            parsed = parser([(i, p) for i, p, _ in members])
        errors.update(parsed.errors)
        f, a, r, c = _finalise(parsed, keys, n, collapse=fmt in _FASTPASS)
        facts.append(f)
        also.append(a)
        rejected.append(r)
        for name, values in c.items():
            counts[name] += values
    facts = [f for f in facts if len(f)] or facts[:1]
    all_facts = pd.concat(facts, ignore_index=True) if len(facts) > 1 else facts[0]
    if len(facts) > 1:  # formats may overlap (standby export vs public file): dedupe across
        dup = all_facts.duplicated(list(FACT_KEY)).to_numpy()
        also.append(all_facts[dup])
        all_facts = all_facts[~dup].reset_index(drop=True)
    also = [a for a in also if len(a)] or also[:1]
    all_also = pd.concat(also, ignore_index=True) if len(also) > 1 else also[0]
    rejected = [r for r in rejected if len(r)] or rejected[:1]
    all_rejected = pd.concat(rejected, ignore_index=True) if len(rejected) > 1 else rejected[0]
    all_rejected = all_rejected.astype({"line": np.int64})
    files_df = pd.DataFrame({
        "source_file": keys,
        "format": [str(RawFormat(f)) for _, _, f in files],
        "rows_read": counts["rows_read"],
        "rows_ok": counts["rows_read"] - counts["rows_rejected"],
        "rows_rejected": counts["rows_rejected"],
        "error": [errors.get(i) for i in range(n)],
        "rows_collapsed": counts["rows_collapsed"],
        "stale_rows": counts["stale_rows"],
    })
    return ParseResult(all_facts[list(FACT_COLUMNS)], all_rejected[list(REJECTED_COLUMNS)],
                       files_df, all_also[list(FACT_COLUMNS)])


def read_qt_mapping(paths: Sequence[Path]) -> pd.DataFrame:
    """The queue-times ride -> entity mapping: one row per queue_times_id (a later file wins).

    Columns entity_code (upper-cased), park_code (upper-cased), queue_times_id (int64),
    queue_times_name. Rows whose id is not an integer are dropped (they can map nothing); a file
    without the four columns raises ValueError naming it.
    """
    frames = []
    for path in paths:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        df.columns = [c.strip().strip('"').lower() for c in df.columns]
        missing = [c for c in MAPPING_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: queue-times mapping lacks columns {', '.join(missing)}")
        frames.append(df[list(MAPPING_COLUMNS)])
    if not frames:
        return pd.DataFrame({"entity_code": pd.Series(dtype=object),
                             "park_code": pd.Series(dtype=object),
                             "queue_times_id": pd.Series(dtype=np.int64),
                             "queue_times_name": pd.Series(dtype=object)})
    df = pd.concat(frames, ignore_index=True)
    ids = pd.to_numeric(df["queue_times_id"].str.strip(), errors="coerce")
    df = df[ids.notna() & (ids == ids.round())].assign(
        queue_times_id=ids.dropna().astype(np.int64),
        entity_code=lambda d: d["entity_code"].str.strip().str.upper(),
        park_code=lambda d: d["park_code"].str.strip().str.upper(),
        queue_times_name=lambda d: d["queue_times_name"].str.strip(),
    )
    df = df.drop_duplicates("queue_times_id", keep="last")
    return df.reset_index(drop=True)[list(MAPPING_COLUMNS)]

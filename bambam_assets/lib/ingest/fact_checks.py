"""What the blocking check on fct_wait_times looks for: duplicate fact keys and observations
from the future. Pure SQL over the warehouse; the Dagster check is defs/ingest/checks.py.

Both are things real bad data can bring in and that every layer below would then learn from:
a duplicate key counts one observation twice in training and the WTI; an observation dated
after today (a wrong year, a clock or time-zone fault at the source) becomes a "past" fact of a
day that has not happened, and the backfill and the forecasts seam on it.

- Duplicate keys: ingest inserts only keys it does not hold (an anti-join), so a duplicate is a
  defect of the ingest itself. A duplicate can only come in with an inserted row, and an
  inserted row carries the source_file of a file read in that ingest: the check groups the facts
  of the entities and park dates those files touched (one ingest), not every fact, except on
  the first ingest, where every fact is new; in chunks of entities, so that its memory stays
  bounded.
- Future observations: a fact whose park day is after the as-of date AND whose instant is later
  than the real clock plus FUTURE_TOLERANCE. Both conditions, because a replay (a backtest's
  as-of date in the past) legitimately holds facts after its as-of date, but never facts after
  the real clock; and a run as of a date ahead of the clock (a simulation) may hold facts up to
  its as-of day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb

# Clock skew a source may have (queue-times' last_updated is the ride's own clock) before an
# observation counts as from the future.
FUTURE_TOLERANCE = timedelta(hours=1)
EXAMPLES = 10


@dataclass
class FactCheckReport:
    """What the check found. Examples: a few offending rows as short strings."""

    duplicate_keys: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    future_rows: int = 0
    future_examples: list[str] = field(default_factory=list)
    files_checked: int | None = None  # None: every fact's key was checked

    @property
    def passed(self) -> bool:
        return self.duplicate_keys == 0 and self.future_rows == 0

    def summary(self) -> str:
        if self.passed:
            return "fact keys unique, no observation from the future"
        parts = []
        if self.duplicate_keys:
            parts.append(f"{self.duplicate_keys} duplicate fact keys "
                         f"(e.g. {', '.join(self.duplicate_examples[:3])})")
        if self.future_rows:
            parts.append(f"{self.future_rows} observations from the future "
                         f"(e.g. {', '.join(self.future_examples[:3])})")
        return "; ".join(parts)


_FRESH_FILES = "SELECT source_key FROM ingest_manifest WHERE ingested_at >= $since"

# Per entity with facts from the files read since $since: the park dates of those facts (one
# entity's history for a public per-attraction file, a month for a monthly export, an instant
# for a queue-times snapshot) and its fact count (entity_index, an upper bound of the scope).
_SCOPE_SINCE = f"""
SELECT s.entity_code, s.lo, s.hi, coalesce(i.row_count, 0) AS n
FROM (SELECT entity_code, min(park_date) AS lo, max(park_date) AS hi FROM fct_wait_times
      WHERE source_file IN ({_FRESH_FILES}) GROUP BY entity_code) s
LEFT JOIN entity_index i USING (entity_code)
ORDER BY s.entity_code
"""
_SCOPE_ALL = """
SELECT entity_code, DATE '0001-01-01' AS lo, DATE '9999-12-31' AS hi, count(*) AS n
FROM fct_wait_times GROUP BY entity_code ORDER BY entity_code
"""
# The keys occurring more than once among the facts of a chunk of the scope. Chunks of at most
# CHUNK_ROWS facts keep the hash table small under a low DuckDB memory limit (one query over
# every fact of a first ingest exceeded 300 MB at 14 parks x 20 entities x 3 months). Measured
# on 10 M facts in one chunk: 0.1 s when one file of 100 is new, 8-10 s when all are.
_DUPLICATES = """
WITH scope AS (SELECT unnest($codes) AS entity_code, unnest($lo) AS lo, unnest($hi) AS hi)
SELECT f.entity_code, f.observed_at, f.wait_time_type, f.wait_time_minutes, count(*) AS n
FROM fct_wait_times f JOIN scope s
  ON f.entity_code = s.entity_code AND f.park_date BETWEEN s.lo AND s.hi
GROUP BY ALL HAVING count(*) > 1
ORDER BY 1, 2
"""
CHUNK_ROWS = 1_000_000

_FUTURE = """
SELECT entity_code, observed_at, source_file, count(*) OVER () AS n
FROM fct_wait_times
WHERE park_date > $as_of AND observed_at > $limit
ORDER BY observed_at DESC, entity_code
LIMIT $examples
"""


def _chunks(scope: list[tuple]) -> list[list[tuple]]:
    """Consecutive runs of scope rows (entity_code, lo, hi, n) of at most CHUNK_ROWS facts
    (a single larger entity is a chunk of its own)."""
    chunks: list[list[tuple]] = []
    rows = 0
    for item in scope:
        if not chunks or rows + item[3] > CHUNK_ROWS:
            chunks.append([])
            rows = 0
        chunks[-1].append(item)
        rows += item[3]
    return chunks


def check_facts(conn: duckdb.DuckDBPyConnection, as_of: date, now: datetime,
                since: datetime | None) -> FactCheckReport:
    """Duplicate fact keys among the facts of files read since `since` (None: every fact) and
    observations from the future (see the module docstring). `now` is timezone-aware."""
    report = FactCheckReport()
    if since is None:
        scope = conn.execute(_SCOPE_ALL).fetchall()
    else:
        report.files_checked = conn.execute(
            f"SELECT count(*) FROM ({_FRESH_FILES})", {"since": since}).fetchall()[0][0]
        scope = conn.execute(_SCOPE_SINCE, {"since": since}).fetchall() \
            if report.files_checked else []
    dupes = []
    for chunk in _chunks(scope):
        dupes += conn.execute(_DUPLICATES, {"codes": [c[0] for c in chunk],
                                            "lo": [c[1] for c in chunk],
                                            "hi": [c[2] for c in chunk]}).fetchall()
    report.duplicate_keys = len(dupes)
    report.duplicate_examples = [f"{e} {t.isoformat()} {k} {m} x{n}"
                                 for e, t, k, m, n in dupes[:EXAMPLES]]
    future = conn.execute(_FUTURE, {"as_of": as_of, "limit": now + FUTURE_TOLERANCE,
                                    "examples": EXAMPLES}).fetchall()
    report.future_rows = future[0][3] if future else 0
    report.future_examples = [f"{e} {t.isoformat()} ({f})" for e, t, f, _n in future]
    return report

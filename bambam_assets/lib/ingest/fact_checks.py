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
  the first ingest, where every fact is new.
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

# The keys of every fact of an entity that has facts from the files read since $since, within
# the park dates of those facts (one entity's history for a public per-attraction file, a month
# for a monthly export, an instant for a queue-times snapshot). Measured on 10 M facts: 0.04-0.1 s
# when one file of 100 is new, 8-10 s when all are (the first ingest; a plain GROUP BY: 7 s).
_DUPLICATES_SINCE = f"""
WITH fresh AS (
    SELECT entity_code, min(park_date) AS lo, max(park_date) AS hi FROM fct_wait_times
    WHERE source_file IN ({_FRESH_FILES})
    GROUP BY entity_code
)
SELECT f.entity_code, f.observed_at, f.wait_time_type, f.wait_time_minutes, count(*) AS n
FROM fct_wait_times f JOIN fresh s
  ON f.entity_code = s.entity_code AND f.park_date BETWEEN s.lo AND s.hi
GROUP BY ALL HAVING count(*) > 1
ORDER BY 1, 2
"""

_DUPLICATES_ALL = """
SELECT entity_code, observed_at, wait_time_type, wait_time_minutes, count(*) AS n
FROM fct_wait_times GROUP BY ALL HAVING count(*) > 1 ORDER BY 1, 2
"""

_FUTURE = """
SELECT entity_code, observed_at, source_file, count(*) OVER () AS n
FROM fct_wait_times
WHERE park_date > $as_of AND observed_at > $limit
ORDER BY observed_at DESC, entity_code
LIMIT $examples
"""


def check_facts(conn: duckdb.DuckDBPyConnection, as_of: date, now: datetime,
                since: datetime | None) -> FactCheckReport:
    """Duplicate fact keys among the facts of files read since `since` (None: every fact) and
    observations from the future (see the module docstring). `now` is timezone-aware."""
    report = FactCheckReport()
    if since is None:
        dupes = conn.execute(_DUPLICATES_ALL).fetchall()
    else:
        report.files_checked = conn.execute(
            f"SELECT count(*) FROM ({_FRESH_FILES})", {"since": since}).fetchall()[0][0]
        dupes = conn.execute(_DUPLICATES_SINCE, {"since": since}).fetchall() \
            if report.files_checked else []
    report.duplicate_keys = len(dupes)
    report.duplicate_examples = [f"{e} {t.isoformat()} {k} {m} x{n}"
                                 for e, t, k, m, n in dupes[:EXAMPLES]]
    future = conn.execute(_FUTURE, {"as_of": as_of, "limit": now + FUTURE_TOLERANCE,
                                    "examples": EXAMPLES}).fetchall()
    report.future_rows = future[0][3] if future else 0
    report.future_examples = [f"{e} {t.isoformat()} ({f})" for e, t, f, _n in future]
    return report

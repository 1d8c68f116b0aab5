"""Which raw files hold each fact, so that a corrected re-export replaces only what is gone.

fct_wait_times keeps one source_file per fact (the file that brought it first); every other file
holding the same fact gets a row in fct_wait_time_sources. When a changed file is read again in
full, `retract_replaced` removes the facts its new version no longer holds: a fact held by
another file too stays and moves to that file (the smallest key), any other is deleted.
`record_holders` keeps fct_wait_time_sources complete after each batch's insert. Both run
inside the caller's transaction.

Grain: fct_wait_time_sources one row per (fact key, holding file other than the kept one).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_KEY = ("entity_code", "observed_at", "wait_time_type", "wait_time_minutes")
# One schema for both sides (an empty batch frame arrives with null-typed columns).
_HELD = pa.schema([("entity_code", pa.string()), ("observed_at", pa.timestamp("ns", "UTC")),
                   ("wait_time_type", pa.string()), ("wait_time_minutes", pa.int64()),
                   ("park_date", pa.timestamp("ns")), ("source_file", pa.string())])


def _same_key(a: str, b: str) -> str:
    return (f"{a}.entity_code = {b}.entity_code AND {a}.observed_at = {b}.observed_at "
            f"AND {a}.wait_time_type = {b}.wait_time_type "
            f"AND {a}.wait_time_minutes IS NOT DISTINCT FROM {b}.wait_time_minutes")


def _held(facts: pa.Table, also: pa.Table) -> pa.Table:
    """Every (fact, file) pair the batch read: its kept facts and the duplicates it dropped."""
    return pa.concat_tables([t.select(_HELD.names).cast(_HELD) for t in (facts, also)])


def retract_replaced(conn: duckdb.DuckDBPyConnection, keys: Sequence[str], facts: pa.Table,
                     also: pa.Table) -> pd.DataFrame:
    """Remove the facts of the re-read files `keys` that their new versions no longer hold.

    Returns one row per fact removed from a file: entity_code, source_file (the re-read file)
    and moved_to (the other file that holds it and now is its source_file, or None: deleted).
    """
    empty = pd.DataFrame({"entity_code": [], "source_file": [], "moved_to": []})
    if not keys:
        return empty
    held = _held(facts, also)
    held = held.filter(pc.is_in(held.column("source_file"), value_set=pa.array(list(keys))))
    conn.register("held_rows", held)
    try:
        conn.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE retract_gone AS
            SELECT f.entity_code, f.observed_at, f.wait_time_type, f.wait_time_minutes,
                   f.source_file
            FROM fct_wait_times f
            WHERE f.source_file IN (SELECT unnest(?))
              AND NOT EXISTS (SELECT 1 FROM held_rows h
                              WHERE h.source_file = f.source_file AND {_same_key('h', 'f')})
            """,
            [list(keys)],
        )
    finally:
        conn.unregister("held_rows")
    # The re-read files' old claims as second holders go; the new ones come with record_holders.
    conn.execute("DELETE FROM fct_wait_time_sources WHERE source_file IN (SELECT unnest(?))",
                 [list(keys)])
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE retract_moved AS
        SELECT g.entity_code, g.observed_at, g.wait_time_type, g.wait_time_minutes,
               g.source_file, min(s.source_file) AS moved_to
        FROM retract_gone g JOIN fct_wait_time_sources s ON {_same_key('g', 's')}
        GROUP BY ALL
        """
    )
    conn.execute(
        f"""
        DELETE FROM fct_wait_times f USING retract_gone g
        WHERE f.source_file = g.source_file AND {_same_key('f', 'g')}
          AND NOT EXISTS (SELECT 1 FROM retract_moved m WHERE {_same_key('m', 'g')})
        """
    )
    conn.execute(
        f"""
        UPDATE fct_wait_times f SET source_file = m.moved_to FROM retract_moved m
        WHERE f.source_file = m.source_file AND {_same_key('f', 'm')}
        """
    )
    conn.execute(
        f"""
        DELETE FROM fct_wait_time_sources s USING retract_moved m
        WHERE s.source_file = m.moved_to AND {_same_key('s', 'm')}
        """
    )
    out = conn.execute(
        f"""
        SELECT g.entity_code, g.source_file, m.moved_to
        FROM retract_gone g LEFT JOIN retract_moved m ON {_same_key('g', 'm')}
        """
    ).df()
    conn.execute("DROP TABLE retract_gone")
    conn.execute("DROP TABLE retract_moved")
    return out


def record_holders(conn: duckdb.DuckDBPyConnection, facts: pa.Table, also: pa.Table) -> None:
    """Record every file of the batch that holds a fact whose source_file is another file."""
    held = _held(facts, also)
    if held.num_rows == 0:
        return
    conn.register("held_rows", held)
    try:
        # The park_date bounds let DuckDB skip fact row groups by min/max (as the insert does).
        conn.execute(
            f"""
            INSERT INTO fct_wait_time_sources ({", ".join(_KEY)}, source_file)
            SELECT DISTINCT h.entity_code, h.observed_at, h.wait_time_type,
                   CAST(h.wait_time_minutes AS INTEGER), h.source_file
            FROM held_rows h JOIN fct_wait_times f ON {_same_key('f', 'h')}
            WHERE f.source_file IS DISTINCT FROM h.source_file
              AND f.park_date BETWEEN (SELECT min(park_date) FROM held_rows)
                                  AND (SELECT max(park_date) FROM held_rows)
              AND NOT EXISTS (SELECT 1 FROM fct_wait_time_sources s
                              WHERE s.source_file = h.source_file AND {_same_key('s', 'h')}
                                -- the batch's files only: a small build side for the anti-join
                                AND s.source_file IN (SELECT unnest(?)))
            """,
            [pc.unique(held.column("source_file")).to_pylist()],
        )
    finally:
        conn.unregister("held_rows")

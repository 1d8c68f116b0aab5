"""Five-minute slots of park days, generated in DuckDB from `dim_park_hours`.

A slot is a 5-minute mark of a park day from opening to closing time, both included (157
slots for 09:00-22:00). Slots are generated on instants (TIMESTAMPTZ), so a day open across
midnight simply continues into the next calendar day, and a day spanning a DST change has the
real number of minutes (one hour fewer on spring-forward); the label `slot` is the local `HH:MM`
of the slot in the park's own time zone (legacy quirk fixed: never UTC, never a default zone).

Hours come from `dim_park_hours` whatever their source (official, metatable or donor), so future
days without official hours use their donor day's hours. A day without usable hours (missing
times, close not after open, or more than 24 hours open) has no slots: the park is closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pandas as pd

from bambam_assets.lib.models.features import park_params

SLOT_MINUTES = 5
SLOT_SECONDS = SLOT_MINUTES * 60
MAX_DAY_HOURS = 24


def slots_cte_sql(hours: str) -> str:
    """CTEs `slot_days, slots` over relation `hours` (an identifier, never data).

    `hours` needs park_code, park_date, opening_time, closing_time (TIMESTAMPTZ). Bind
    `$park_codes, $park_tzs` (features.park_params). `slots` has one row per (park_code, park_date,
    slot_start): park_code, park_date, slot_start TIMESTAMPTZ, slot VARCHAR (local HH:MM).
    """
    return f"""
    slot_days AS (
        SELECT h.park_code, h.park_date, p.tz,
            -- first 5-minute mark at or after opening (UTC offsets are whole quarter hours,
            -- so an epoch-aligned mark is a local-clock mark too)
            to_timestamp(ceil(epoch(h.opening_time) / {SLOT_SECONDS}) * {SLOT_SECONDS})
                AS first_slot,
            h.closing_time AS last_instant
        FROM {hours} h
        JOIN (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                     unnest($park_tzs::VARCHAR[]) AS tz) p USING (park_code)
        WHERE h.opening_time IS NOT NULL AND h.closing_time > h.opening_time
          AND epoch(h.closing_time) - epoch(h.opening_time) <= {MAX_DAY_HOURS * 3600}
    ),
    slots AS (
        SELECT park_code, park_date, slot_start,
               strftime(timezone(tz, slot_start), '%H:%M') AS slot
        FROM (
            SELECT park_code, park_date, tz,
                   unnest(generate_series(first_slot, last_instant,
                                          INTERVAL {SLOT_MINUTES} MINUTE)) AS slot_start
            FROM slot_days
        )
    )"""


def park_slots(
    conn: duckdb.DuckDBPyConnection, park_codes: Sequence[str], start: date, end: date
) -> pd.DataFrame:
    """Slots of the given parks for park dates start..end (inclusive), from `dim_park_hours`.

    Grain: one row per (park_code, park_date, slot_start), ordered that way. Columns park_code,
    park_date, slot (local HH:MM), slot_start (UTC instant).
    """
    sql = f"""
    WITH hours AS (
        SELECT * FROM dim_park_hours
        WHERE park_code IN (SELECT unnest($parks::VARCHAR[]))
          AND park_date BETWEEN $start AND $end
    ),
    {slots_cte_sql("hours")}
    SELECT park_code, park_date, slot, slot_start FROM slots
    ORDER BY park_code, park_date, slot_start
    """
    params = {**park_params(), "parks": list(park_codes), "start": start, "end": end}
    return conn.execute(sql, params).df()

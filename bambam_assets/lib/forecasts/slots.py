"""Five-minute slots of park days, generated in DuckDB from `dim_park_hours`.

A slot is a 5-minute mark of a park day from its earliest opening to its latest closing, both
included (157 slots for 09:00-22:00): the park runs, and rides are timed, in Extra Magic Hours
mornings and evenings and on party nights, so the span is min(opening_time,
opening_time_with_emh) .. max(closing_time, closing_time_with_emh) (the export's
`closing_time_with_emh_or_party`). Each slot says whether it lies in the official hours
(`official`); a slot outside them is an EMH/party-only slot, which the park WTI leaves out
(wti.py). A day without EMH has exactly its official slots. Slots are generated on instants
(TIMESTAMPTZ), so a day open across midnight simply continues into the next calendar day, and a
day spanning a DST change has the real number of minutes (one hour fewer on spring-forward); the
label `slot` is the local `HH:MM` of the slot in the park's own time zone (legacy quirk fixed:
never UTC, never a default zone).

Hours come from `dim_park_hours` whatever their source (official, metatable or donor), so future
days without official hours use their donor day's hours. A day without usable official hours
(missing times, close not after open, or more than 24 hours open) has no slots: the park is
closed. EMH times that would break those rules (e.g. 24 hours or more with the extension) are
ignored and the day keeps its official span.
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

    `hours` needs park_code, park_date, opening_time, closing_time, opening_time_with_emh,
    closing_time_with_emh (TIMESTAMPTZ; the EMH ones may be NULL). Bind `$park_codes, $park_tzs`
    (features.park_params). `slots` has one row per (park_code, park_date, slot_start):
    park_code, park_date, slot_start TIMESTAMPTZ, slot VARCHAR (local HH:MM), official BOOLEAN
    (slot_start within the official opening..closing, both included).
    """
    return f"""
    slot_span AS (
        SELECT h.park_code, h.park_date, h.opening_time, h.closing_time,
               least(h.opening_time, coalesce(h.opening_time_with_emh, h.opening_time)) AS open_x,
               greatest(h.closing_time, coalesce(h.closing_time_with_emh, h.closing_time))
                   AS close_x
        FROM {hours} h
        WHERE h.opening_time IS NOT NULL AND h.closing_time > h.opening_time
          AND epoch(h.closing_time) - epoch(h.opening_time) <= {MAX_DAY_HOURS * 3600}
    ),
    slot_days AS (
        SELECT s.park_code, s.park_date, p.tz, s.opening_time, s.closing_time,
            -- the extended span unless it breaks the 24-hour rule (then the official one)
            CASE WHEN epoch(s.close_x) - epoch(s.open_x) <= {MAX_DAY_HOURS * 3600}
                 THEN s.open_x ELSE s.opening_time END AS span_open,
            CASE WHEN epoch(s.close_x) - epoch(s.open_x) <= {MAX_DAY_HOURS * 3600}
                 THEN s.close_x ELSE s.closing_time END AS last_instant
        FROM slot_span s
        JOIN (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                     unnest($park_tzs::VARCHAR[]) AS tz) p USING (park_code)
    ),
    slots AS (
        SELECT park_code, park_date, slot_start,
               strftime(timezone(tz, slot_start), '%H:%M') AS slot,
               slot_start >= opening_time AND slot_start <= closing_time AS official
        FROM (
            SELECT park_code, park_date, tz, opening_time, closing_time,
                   -- first 5-minute mark at or after the span's opening (UTC offsets are whole
                   -- quarter hours, so an epoch-aligned mark is a local-clock mark too, and
                   -- the official slots are the same marks as without the extension)
                   unnest(generate_series(
                       to_timestamp(ceil(epoch(span_open) / {SLOT_SECONDS}) * {SLOT_SECONDS}),
                       last_instant, INTERVAL {SLOT_MINUTES} MINUTE)) AS slot_start
            FROM slot_days
        )
    )"""


def park_slots(
    conn: duckdb.DuckDBPyConnection, park_codes: Sequence[str], start: date, end: date
) -> pd.DataFrame:
    """Slots of the given parks for park dates start..end (inclusive), from `dim_park_hours`.

    Grain: one row per (park_code, park_date, slot_start), ordered that way. Columns park_code,
    park_date, slot (local HH:MM), slot_start (UTC instant), official (inside the official
    hours; False: an EMH or party-only slot).
    """
    sql = f"""
    WITH hours AS (
        SELECT * FROM dim_park_hours
        WHERE park_code IN (SELECT unnest($parks::VARCHAR[]))
          AND park_date BETWEEN $start AND $end
    ),
    {slots_cte_sql("hours")}
    SELECT park_code, park_date, slot, slot_start, official FROM slots
    ORDER BY park_code, park_date, slot_start
    """
    params = {**park_params(), "parks": list(park_codes), "start": start, "end": end}
    return conn.execute(sql, params).df()

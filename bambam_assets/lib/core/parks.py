"""Parks, properties, time zones and tiers: the fixed facts every layer shares."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# Entity-code prefix (the letters before the first digit) -> park code.
# Legacy quirks fixed: TDL/TDS/USH are whole prefixes (not the first two letters), and USH is
# its own park code "USH" (the legacy's lower-cased "uh" is only the queue-times key).
PARKS: tuple[str, ...] = (
    "MK", "EP", "HS", "AK", "BB", "TL", "DL", "CA", "UF", "IA", "EU", "USH", "TDL", "TDS",
)

# Park -> property (the TouringPlans export folder name).
PROPERTY_OF_PARK: dict[str, str] = {
    "MK": "wdw", "EP": "wdw", "HS": "wdw", "AK": "wdw", "BB": "wdw", "TL": "wdw",
    "DL": "dlr", "CA": "dlr",
    "UF": "uor", "IA": "uor", "EU": "uor",
    "USH": "ush",
    "TDL": "tdr", "TDS": "tdr",
}

# Property -> IANA time zone. Legacy quirk fixed: USH (Hollywood) is Los Angeles, not New York.
TZ_OF_PROPERTY: dict[str, str] = {
    "wdw": "America/New_York",
    "uor": "America/New_York",
    "dlr": "America/Los_Angeles",
    "ush": "America/Los_Angeles",
    "tdr": "Asia/Tokyo",
}

PROPERTIES: tuple[str, ...] = tuple(TZ_OF_PROPERTY)

# Park opening dates: the default `opened_on` of an entity whose export leaves it blank.
PARK_OPENED_ON: dict[str, date] = {
    "MK": date(1971, 10, 1), "EP": date(1982, 10, 1), "HS": date(1989, 5, 1),
    "AK": date(1998, 4, 22), "DL": date(1955, 7, 17), "CA": date(2001, 2, 8),
    "TDL": date(1983, 4, 15), "TDS": date(2001, 9, 4), "UF": date(1990, 6, 7),
    "IA": date(1999, 5, 28), "EU": date(2025, 6, 1), "USH": date(1964, 7, 15),
    "BB": date(1995, 4, 1), "TL": date(1989, 6, 1),
}
DEFAULT_OPENED_ON = date(1955, 7, 17)
DEFAULT_EXTINCT_ON = date(2099, 1, 1)

# queue-times.com park ids (`/parks/{id}/queue_times.json`).
QUEUE_TIMES_PARK_ID: dict[str, int] = {
    "MK": 6, "EP": 5, "HS": 7, "AK": 8, "DL": 16, "CA": 17,
    "IA": 64, "UF": 65, "EU": 334, "USH": 66, "TDL": 274, "TDS": 275,
}

# Training priority tiers; parks not listed fall into "other".
TIER_OF_PARK: dict[str, str] = {
    "MK": "critical", "EP": "critical", "HS": "critical", "AK": "critical",
    "DL": "high", "CA": "high", "USH": "high",
    "UF": "medium", "IA": "medium", "EU": "medium",
    "TDL": "low", "TDS": "low", "BB": "low", "TL": "low",
}
TIER_RANK: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3, "other": 4}

# The park day starts at 06:00 local time: an observation before 06:00 belongs to the day before.
PARK_DAY_START_HOUR = 6

_ENTITY_CODE = re.compile(r"^([A-Z]+)(\d+)$")


def park_of_entity(entity_code: str) -> str | None:
    """Park code of an entity code (`MK141` -> `MK`, `TDS36` -> `TDS`), None if unknown."""
    m = _ENTITY_CODE.match(entity_code.strip().upper())
    if not m or m.group(1) not in PROPERTY_OF_PARK:
        return None
    return m.group(1)


def tz_of_park(park_code: str) -> str:
    """IANA time zone of a park."""
    return TZ_OF_PROPERTY[PROPERTY_OF_PARK[park_code]]


def tier_of_park(park_code: str) -> str:
    return TIER_OF_PARK.get(park_code, "other")


def parks_sql_values() -> list[tuple[str, str, str, str, int]]:
    """(park_code, property, time_zone, tier, tier_rank) rows, for a DuckDB lookup table."""
    return [
        (p, PROPERTY_OF_PARK[p], tz_of_park(p), tier_of_park(p), TIER_RANK[tier_of_park(p)])
        for p in PARKS
    ]


def park_date_in(time_zone: str, instant: datetime) -> date:
    """The park date at `instant` (aware) on the clock of `time_zone`: its local date, an hour
    before 06:00 counting to the day before (the 6 AM rule)."""
    local = instant.astimezone(ZoneInfo(time_zone))
    return (local - timedelta(hours=PARK_DAY_START_HOUR)).date()


def park_date_at(park_code: str, instant: datetime) -> date:
    """The park date of a park at `instant` (aware): `MK` at 2024-06-02 03:00 New York is
    2024-06-01."""
    return park_date_in(tz_of_park(park_code), instant)


def earliest_park_date(instant: datetime) -> date:
    """The earliest park date any property is on at `instant`: the run-wide "today" when no
    time-zone group pins one. Every park's own park date is on or after it, so no park's
    running day is treated as past (its remaining slots stay in the forecast)."""
    return min(park_date_in(tz, instant) for tz in set(TZ_OF_PROPERTY.values()))


def time_zone_groups() -> dict[str, list[str]]:
    """Time zone -> its parks (in PARKS order): the groups whose park day starts at the same
    instant, each with its own daily schedule."""
    groups: dict[str, list[str]] = {}
    for park in PARKS:
        groups.setdefault(tz_of_park(park), []).append(park)
    return groups

"""'Today' for a park is its park date: local time of its property, the 6 AM rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bambam_assets.lib.core import parks, settings


def test_park_date_follows_local_time_and_the_6am_rule() -> None:
    # 2024-06-02 09:59 UTC = 05:59 in New York (EDT): still the park day of June 1st
    assert parks.park_date_at("MK", datetime(2024, 6, 2, 9, 59, tzinfo=UTC)) == date(2024, 6, 1)
    assert parks.park_date_at("MK", datetime(2024, 6, 2, 10, 0, tzinfo=UTC)) == date(2024, 6, 2)
    # the same instant is June 2nd 19:00 in Tokyo and June 2nd 03:00 (so June 1st) in Anaheim
    instant = datetime(2024, 6, 2, 10, 0, tzinfo=UTC)
    assert parks.park_date_at("TDS", instant) == date(2024, 6, 2)
    assert parks.park_date_at("DL", instant) == date(2024, 6, 1)
    assert parks.park_date_at("USH", instant) == date(2024, 6, 1)  # Los Angeles, not New York
    # winter: New York is UTC-5, so 10:59 UTC is 05:59 and still the day before
    assert parks.park_date_at("EP", datetime(2024, 1, 10, 10, 59, tzinfo=UTC)) == date(2024, 1, 9)
    assert parks.park_date_at("EP", datetime(2024, 1, 10, 11, 0, tzinfo=UTC)) == date(2024, 1, 10)
    assert parks.earliest_park_date(instant) == date(2024, 6, 1)


def test_time_zone_groups_cover_every_park_once() -> None:
    groups = parks.time_zone_groups()
    assert groups == {"America/New_York": ["MK", "EP", "HS", "AK", "BB", "TL", "UF", "IA", "EU"],
                      "America/Los_Angeles": ["DL", "CA", "USH"],
                      "Asia/Tokyo": ["TDL", "TDS"]}


def test_as_of_defaults_to_the_park_date_and_bambam_as_of_overrides_it() -> None:
    # 23:30 UTC on June 1st: June 2nd on the machine's UTC clock, and in Tokyo (08:30), but
    # June 1st in New York (19:30) and Los Angeles: no US park's running day counts as past
    late = datetime(2024, 6, 1, 23, 30, tzinfo=UTC)
    assert settings.as_of({}, now=late) == date(2024, 6, 1)
    assert settings.as_of({}, now=late, time_zone="Asia/Tokyo") == date(2024, 6, 2)
    assert settings.as_of({}, now=late, time_zone="America/New_York") == date(2024, 6, 1)
    replay = {"BAMBAM_AS_OF": "2023-12-24"}
    assert settings.as_of(replay, now=late) == date(2023, 12, 24)
    assert settings.as_of(replay, now=late, time_zone="Asia/Tokyo") == date(2023, 12, 24)

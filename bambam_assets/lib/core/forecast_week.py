"""The forecast week: what the forecast is built from moves once a week, not every day.

The forecast window runs from the Monday of the as-of date's week (so today's remaining slots are
always in it) to horizon + 6 days later (so it covers as_of .. as_of + horizon every day of the
week). Everything it reads besides the models is taken as of the day before that Monday: the
POSTED statistics, the band's training rows, and the dimensions' horizon (calendar and donor park
hours reach the window's end and take donors only up to that day). So within a week an entity's
forecast changes only when its model changes, or when facts or official hours of those inputs
are corrected; the daily run recomputes the entities with new models, not all of them.
"""

from __future__ import annotations

from datetime import date, timedelta

DEFAULT_HORIZON_DAYS = 730
WEEK_DAYS = 7


def week_start(as_of: date) -> date:
    """The Monday of `as_of`'s week."""
    return as_of - timedelta(days=as_of.weekday())


def forecast_window(as_of: date, horizon_days: int = DEFAULT_HORIZON_DAYS) -> tuple[date, date]:
    """(first, last) park date of the forecast as of `as_of`: the Monday of its week to
    horizon + 6 days later, the same all week."""
    start = week_start(as_of)
    return start, start + timedelta(days=horizon_days + WEEK_DAYS - 1)


def inputs_as_of(as_of: date) -> date:
    """The day up to which the forecast's non-model inputs are read: the day before the
    window's Monday, stable all week."""
    return week_start(as_of) - timedelta(days=1)


def dimension_horizon_days(horizon_days: int = DEFAULT_HORIZON_DAYS) -> int:
    """Days after `inputs_as_of` the calendar and park hours must reach to cover the window."""
    return horizon_days + WEEK_DAYS

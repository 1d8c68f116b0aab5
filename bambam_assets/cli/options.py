"""Option callbacks shared by the command modules."""

from __future__ import annotations

from datetime import date

import click


def parse_date(_ctx, _param, value):
    """A click callback: YYYY-MM-DD to a date, or a one-line usage error."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc

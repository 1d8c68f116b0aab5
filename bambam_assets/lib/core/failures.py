"""When isolated per-entity failures add up to a failed run (pure: no Dagster).

A per-entity step (training, forecast, backfill) records a failing entity and goes on with the
others. The run still fails, visibly, when more entities failed than the allowed share of those
it attempted (BAMBAM_MAX_FAILED_SHARE, settings.max_failed_share): something broke for the whole
layer rather than for one entity. The share is counted in whole entities, rounded up: with any
share above 0 a single failing entity stays isolated even in a small run; a share of 0 allows no
failure, 1 allows all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def allowed_failures(attempted: int, max_share: float) -> int:
    """How many of `attempted` entities may fail: max_share of them, rounded up."""
    return max(0, math.ceil(max_share * attempted - 1e-9))  # 0.7 * 10 must stay 7, not 8


def too_many_failed(failed: Sequence[str], attempted: int, max_share: float,
                    what: str = "entities", limit: int = 20) -> str | None:
    """A message naming the failed share and the failed entities when more failed than
    allowed, else None."""
    n = len(failed)
    allowed = allowed_failures(attempted, max_share)
    if n <= allowed:
        return None
    attempted = max(attempted, n)
    names = ", ".join(list(failed)[:limit]) + (f" and {n - limit} more" if n > limit else "")
    return (f"{n} of {attempted} {what} failed ({n / attempted:.0%}), more than "
            f"BAMBAM_MAX_FAILED_SHARE={max_share:g} allows ({allowed} of {attempted}): {names}")

"""Fail a per-entity step visibly when too many of its entities failed (lib/core/failures.py).

Called after the step yielded its successes, so those partitions are materialized whatever
happens; the raised dg.Failure then marks the step and the run failed with a message naming the
failed share and entities.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from bambam_assets.lib.core import failures


def fail_if_too_many_failed(failed: Sequence[str], attempted: int, max_share: float,
                            what: str = "entities") -> None:
    """Raise dg.Failure when more of `attempted` entities failed than `max_share` allows."""
    message = failures.too_many_failed(failed, attempted, max_share, what)
    if message is None:
        return
    raise dg.Failure(description=message, metadata={
        "failed": len(failed), "attempted": attempted,
        "failed_share": round(len(failed) / max(attempted, len(failed), 1), 4),
        "max_failed_share": max_share,
        "failed_entities": dg.MetadataValue.json(list(failed)),
    })

"""The short summary printed after `bambam run`."""

from __future__ import annotations

from collections.abc import Callable

from bambam_assets.lib.core import settings
from bambam_assets.lib.core import warehouse as wh

SUMMARY_QUERIES = {
    "fact rows": "SELECT count(*) FROM fct_wait_times",
    "rejected rows": "SELECT count(*) FROM fct_rejected_rows",
    "entities": "SELECT count(*) FROM entity_index",
    "calendar days": "SELECT count(*) FROM dim_calendar",
    "park-hours days": "SELECT count(*) FROM dim_park_hours",
    "current models": "SELECT count(*) FILTER (WHERE is_current) FROM model_registry",
    "WTI park-days": "SELECT count(*) FROM park_wti_daily",
}


def print_summary(summary, echo: Callable[[str], None] = print) -> None:
    echo("")
    echo(f"run ids: {', '.join(summary.run_ids)}")
    echo(f"materialized {len(set(summary.materialized))} assets "
         f"({len(summary.materialized)} materializations); success: {summary.success}")
    if summary.failed_checks:
        echo(f"failed checks: {', '.join(summary.failed_checks)}")
    home = settings.home()
    if not wh.warehouse_path(home).exists():
        return
    with wh.reader(home) as conn:
        for label, sql in SUMMARY_QUERIES.items():
            table = sql.rsplit(" ", 1)[-1]
            if wh.table_exists(conn, table):
                echo(f"  {label}: {conn.execute(sql).fetchall()[0][0]:,}")

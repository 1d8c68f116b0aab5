"""The operator's dashboard (Dash): pipeline status, model quality, wait-time curves, freshness.

Readers only: the warehouse through short cached read-only connections (dashboard.store),
Parquet directly, the Dagster instance's run storage and progress.json.
"""

from bambam_assets.dashboard.app import (
    DashboardServer,
    create_app,
    serve,
    start_in_thread,
)

__all__ = ["DashboardServer", "create_app", "serve", "start_in_thread"]

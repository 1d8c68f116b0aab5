"""The asset groups: which group each asset key belongs to, the one owner of that fact.

The asset definitions take their `group_name` from here (`group_of`), and the dashboard reads
`ASSET_GROUPS` to name the group of a run's assets without loading the code location. This module
imports nothing (no Dagster): the dashboard stays light. A key missing here fails at import of its
asset module (KeyError), and bambam_tests/defs/test_import_layers.py checks the table against the
definitions.
"""

from __future__ import annotations

INGEST, DIMENSIONS, MODELS, FORECASTS, WTI, LIVE = (
    "ingest", "dimensions", "models", "forecasts", "wti", "live")

GROUP_ASSETS: dict[str, tuple[str, ...]] = {
    INGEST: ("fct_wait_times", "fct_rejected_rows", "entity_index"),
    DIMENSIONS: ("dim_calendar", "dim_season", "dim_entity", "dim_metatable", "dim_event_days",
                 "dim_events", "dim_park_hours_versions", "dim_park_hours"),
    MODELS: ("global_model", "entity_model"),
    FORECASTS: ("posted_aggregates", "entity_forecast", "entity_backfill", "forecast_scorecard"),
    WTI: ("park_wti", "park_wti_daily"),
    LIVE: ("fetch_status", "queue_times_unmapped"),
}

# asset key (user string) -> group name
ASSET_GROUPS: dict[str, str] = {key: group for group, keys in GROUP_ASSETS.items()
                                for key in keys}


def group_of(asset_key: str) -> str:
    """The group of an asset key (user string); KeyError for a key this table does not know."""
    try:
        return ASSET_GROUPS[asset_key]
    except KeyError:
        raise KeyError(f"asset {asset_key!r} has no group in defs/groups.py") from None

"""Asset-level freshness alarms (1.13 FreshnessPolicy).

A FreshnessPolicy judges an asset by its latest materialization of ANY partition (measured), so
it cannot hold the per-entity, per-tier ages: those live in lib/staleness.py.
These policies raise the alarm when the whole layer falls behind: the daily run and the critical
tier's 1-day age keep entity_model materialized at least daily, so 24 h without any model
materialization warns and 26 h fails; the park-level WTI is recomputed at least daily as well.
"""

from datetime import timedelta

import dagster as dg

MODEL_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=24))
WTI_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=24))

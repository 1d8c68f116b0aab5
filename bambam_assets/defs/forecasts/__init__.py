"""Forecasts, backfill and the Wait Time Index: posted_aggregates, entity_forecast,
entity_backfill, park_wti, park_wti_daily."""

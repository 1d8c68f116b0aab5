"""Smart retraining in Dagster: the retrain sensor, schedules, declarative automation, freshness.

Import from the submodules (`sensors`, `schedules`, `freshness`): `freshness` is imported by the
model assets, so this package must not import them back at import time.
"""

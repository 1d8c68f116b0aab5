"""Smart retraining in Dagster: the retrain sensor, the schedules and declarative automation.

Import from the submodules (`sensors`, `schedules`). This layer depends on the asset layers (it
targets entity_model); no asset module imports it. The freshness policies sit next to their
assets (defs/models/assets.py, defs/forecasts/assets.py).
"""

"""Pure logic of Bambam: parsing, dimensions, features, training, forecasting.

Nothing in this package imports dagster, so every function here can be tested on plain
DataFrames and reused from the CLI, the benchmark and the dashboard.
"""

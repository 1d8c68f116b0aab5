"""`bambam models status` formatting on the states the pipeline leaves."""

from __future__ import annotations

import pandas as pd

from bambam_assets.cli.models import format_status


def test_status_table_shows_missing_nullable_integers_as_dash() -> None:
    # an entity never trained has no current_version, an untouched one no new targets: the
    # nullable integer columns DuckDB and the staleness rule return (Int32 / Int64 with NA)
    evaluation = pd.DataFrame({
        "entity_code": ["AK1", "AK2"],
        "tier": ["critical", "critical"],
        "stale": [True, False],
        "new_targets": pd.array([None, 40], dtype="Int64"),
        "age_hours": [None, 25.0],
        "current_version": pd.array([None, 3], dtype="Int32"),
        "summary": ["no current model", "fresh"],
        "evaluated_at": pd.to_datetime(["2025-12-31 06:00", "2025-12-31 06:00"], utc=True),
    })
    shown = format_status(evaluation).splitlines()
    assert shown[0].split()[:4] == ["entity_code", "tier", "stale", "new_targets"]
    ak1, ak2 = shown[1].split(), shown[2].split()
    assert ak1[:6] == ["AK1", "critical", "STALE", "-", "-", "-"]
    assert ak2[:6] == ["AK2", "critical", "fresh", "40", "25.0", "3"]
    assert format_status(evaluation.iloc[0:0]) == "no evaluation recorded yet"

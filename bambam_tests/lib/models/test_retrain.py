"""The retraining run as plain data: due list and run key (see also test_retrain_sensor), op
config and tags."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from bambam_assets.lib.models import retrain

NOW = datetime(2024, 6, 2, 13, 45, tzinfo=UTC)


def _evaluation(codes: list[str], stale: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"entity_code": codes, "stale": stale,
                         "summary": [f"why {c}" for c in codes],
                         "latest_version": pd.array([1] * len(codes), dtype="Int64"),
                         "target_count": [100] * len(codes)})


def test_plan_keeps_training_order_and_splits_missing_partitions() -> None:
    ev = _evaluation(["MK2", "MK1", "DL1", "NEW1"], [True, True, False, True])
    plan = retrain.plan_retrain(ev, ["DL1", "MK1", "MK2"], NOW, date(2024, 6, 1))
    assert plan.due == ["MK2", "MK1"]  # the evaluation's order, not the keys'
    assert plan.reasons == {"MK2": "why MK2", "MK1": "why MK1"}
    assert plan.fresh == {"DL1": "why DL1"}
    assert plan.missing_partitions == ["NEW1"]
    assert plan.run_key.startswith("retrain-2024-06-01-20240602T12-")
    later = retrain.plan_retrain(ev, ["DL1", "MK1", "MK2"], NOW + timedelta(hours=6),
                                 date(2024, 6, 1))
    assert later.run_key != plan.run_key


def test_config_and_tags() -> None:
    codes = [f"E{i:03d}" for i in range(60)]
    plan = retrain.RetrainPlan(due=codes, reasons={c: "old" for c in codes}, fresh={})
    cfg = retrain.retrain_config(plan, NOW, "auto")
    assert cfg == {"only": codes, "mode": "auto", "evaluated_at": "2024-06-02T13:45:00+00:00",
                   "reasons": {c: "old" for c in codes}}
    tags = retrain.retrain_tags(plan, ["A", "B", "Z"], "cli")
    assert tags[retrain.RANGE_START_TAG] == "A" and tags[retrain.RANGE_END_TAG] == "Z"
    assert tags["bambam/trigger"] == "cli" and tags["bambam/due_count"] == "60"
    assert len(tags["bambam/due"]) == 200 and tags["bambam/due"].endswith("...")
    assert retrain.full_retrain_config() == {"only": [], "mode": "full"}
    assert retrain.full_retrain_tags(["A", "Z"], "weekly") == {
        "dagster/asset_partition_range_start": "A", "dagster/asset_partition_range_end": "Z",
        "bambam/trigger": "weekly"}

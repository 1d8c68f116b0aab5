"""The issue's Done-when: a simulated week over demo data, driven by as-of dates and clocks.

Day 1 trains everything; day 2 (new rows for a few entities) retrains exactly the entities that
crossed 100 new targets plus the critical-tier (MK) entities past one day of age; a code-version
bump then retrains all. Asserted per entity from model_registry versions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from bambam_assets import runner
from bambam_assets.cli.models import status
from bambam_assets.defs.automation import sensors
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.instance import local_instance
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.models import batch as train_batch
from bambam_assets.lib.models import staleness
from bambam_tests.builders import write

DAY1, DAY2 = date(2024, 5, 31), date(2024, 6, 1)


def _public_actuals(code: str, n: int) -> str:
    """n ACTUAL (SACTMIN) rows on DAY2, every 5 minutes from 09:00 local."""
    times = pd.Timestamp("2024-06-01 09:00") + pd.to_timedelta(range(0, 5 * n, 5), unit="m")
    lines = [f"06/01/2024,{t:%Y-%m-%d %H:%M:%S},,{20 + i % 15}" for i, t in enumerate(times)]
    return "date,datetime,SPOSTMIN,SACTMIN\n" + "\n".join(lines) + "\n"


def _versions(home: Path) -> dict[str, tuple[int, str]]:
    """entity -> (latest version, its code version)."""
    with wh.reader(home) as conn:
        rows = conn.execute("SELECT entity_code, max(version), arg_max(code_version, version) "
                            "FROM model_registry GROUP BY 1").fetchall()
    return {code: (int(v), cv) for code, v, cv in rows}


def _tick(instance: dg.DagsterInstance, now: datetime):
    sensor = sensors.build_retrain_sensor(clock=lambda: now)
    ctx = dg.build_sensor_context(instance=instance, resources={
        "warehouse": WarehouseResource(), "run_settings": RunSettingsResource()})
    return sensor.evaluate_tick(ctx)


def _execute(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    result = runner._asset_job().execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("entity_model")],
        tags=request.tags, run_config=request.run_config)
    assert result.success


def test_simulated_week(bambam_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bambam_home / "raw"
    demo_data.generate(raw, ["MK", "DL"], 3, date(2024, 3, 1), DAY1, qt_days=0)
    monkeypatch.setenv("BAMBAM_AS_OF", DAY1.isoformat())
    instance = local_instance(bambam_home)

    # day 1: the pipeline trains everything
    assert runner.run_pipeline(instance, log=lambda _m: None).success
    day1 = _versions(bambam_home)
    code = train_batch.TRAINING_CODE_VERSION
    assert day1 == {c: (1, code) for c in ("DL1", "DL2", "DL3", "MK1", "MK2", "MK3")}
    with wh.reader(bambam_home) as conn:
        trained_at = conn.execute("SELECT max(trained_at) FROM model_registry").fetchall()[0][0]

    # day 2: DL1 gets 150 new targets (crosses 100), DL2 40 and MK3 30 (do not)
    write(raw, "public_day2/DL1.csv", _public_actuals("DL1", 150))
    write(raw, "public_day2/DL2.csv", _public_actuals("DL2", 40))
    write(raw, "public_day2/MK3.csv", _public_actuals("MK3", 30))
    monkeypatch.setenv("BAMBAM_AS_OF", DAY2.isoformat())
    plain = [k.to_user_string() for a in runner._all_assets() if a.partitions_def is None
             for k in a.keys]
    assert runner.run_pipeline(instance, selection=plain, log=lambda _m: None).success
    day2_clock = trained_at.astimezone(UTC) + timedelta(hours=25)
    data = _tick(instance, day2_clock)
    (request,) = data.run_requests
    config = request.run_config["ops"]["entity_model"]["config"]
    # tier order (MK critical first), then target count descending
    assert config["only"] == ["MK2", "MK3", "MK1", "DL1"]
    assert config["reasons"]["DL1"] == "150 new targets (>= 100)"
    assert config["reasons"]["MK3"].startswith("age 25.0h >= 24h (critical tier, 2h grace)")
    assert request.tags[sensors.RANGE_START] == "DL1"  # the whole key range: one run
    assert request.tags[sensors.RANGE_END] == "MK3"
    _execute(instance, request)
    assert _versions(bambam_home) == {"DL1": (2, code), "DL2": (1, code), "DL3": (1, code),
                                      "MK1": (2, code), "MK2": (2, code), "MK3": (2, code)}
    with wh.reader(bambam_home) as conn:
        recorded = staleness.read_evaluations(conn).set_index("entity_code")
    assert recorded.loc["DL2", "action"] == "not selected"
    assert recorded.loc["DL2", "new_targets"] == 40 and not recorded.loc["DL2", "stale"]
    assert recorded.loc["DL1", "action"].split(" v2:")[0] == "full retrain"
    assert recorded.loc["MK3", "stale"] and recorded.loc["MK3", "new_targets"] == 30
    shown = CliRunner().invoke(status, []).output  # `bambam models status`
    assert "150 new targets (>= 100)" in shown and "not selected" in shown
    assert shown.rstrip().endswith("4 of 6 entities stale (as recorded by the last training run)")
    # the same evaluation now: nothing left to do, and the tick says why per entity
    after = _tick(instance, datetime.now(UTC))
    assert after.run_requests == [] and after.skip_message.startswith("nothing due among 6")
    assert "DL2: fresh: 40 new targets" in after.skip_message

    # a training code bump retrains every entity, in one run
    bumped = code + "-bumped"
    monkeypatch.setattr(train_batch, "TRAINING_CODE_VERSION", bumped)
    (bump,) = _tick(instance, datetime.now(UTC)).run_requests
    assert bump.run_config["ops"]["entity_model"]["config"]["only"] == \
        ["MK2", "MK3", "MK1", "DL3", "DL1", "DL2"]
    _execute(instance, bump)
    assert _versions(bambam_home) == {"DL1": (3, bumped), "DL2": (2, bumped),
                                      "DL3": (2, bumped), "MK1": (3, bumped),
                                      "MK2": (3, bumped), "MK3": (3, bumped)}

"""The staleness rule: each reason on exact entities, tier ages, code/params bumps, the table."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.models import staleness
from bambam_tests.builders import WORLD_CODE_VERSION, WORLD_NOW, WORLD_PARAMS_HASH, build_world

AS_OF = date(2024, 6, 1)


def _evaluate(home: Path, now: datetime = WORLD_NOW, code: str = WORLD_CODE_VERSION,
              params: str = WORLD_PARAMS_HASH,
              config: staleness.StalenessConfig | None = None) -> pd.DataFrame:
    with wh.reader(home) as conn:
        return staleness.evaluate_warehouse(conn, now=now, as_of=AS_OF, code_version=code,
                                            params_hash=params, config=config)


@pytest.fixture
def world_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    build_world(home)
    return home


def test_each_reason_on_exact_entities(world_home: Path) -> None:
    ev = _evaluate(world_home).set_index("entity_code")
    assert sorted(ev.index[ev["stale"]]) == ["DL2", "EP1", "EP2", "MK1", "MK2", "MK3", "TDL1"]
    assert ev.loc["MK1", "reasons"] == ["age 30.0h >= 24h (critical tier, 2h grace)"]
    assert ev.loc["MK2", "reasons"] == ["120 new targets (>= 100)"]
    assert ev.loc["MK3", "reasons"] == ["no current model"]
    assert ev.loc["EP1", "reasons"] == ["code version 6 -> 7"]
    assert ev.loc["EP2", "reasons"] == ["params old -> abc123"]
    assert ev.loc["DL2", "reasons"] == ["age 80.0h >= 72h (high tier, 2h grace)"]
    assert ev.loc["TDL1", "reasons"] == ["age 170.0h >= 168h (low tier, 2h grace)"]
    # PRIORITY counts exclude 8888, as training does
    assert ev.loc["MK3", "target_count"] == 300
    assert (ev.loc["MK5", "target_count"], ev.loc["MK5", "new_targets"]) == (150, 50)
    assert not ev.loc["MK5", "stale"]
    # zero targets: listed, never stale
    assert not ev.loc["MK4", "stale"]
    assert ev.loc["MK4", "reasons"] == [staleness.NO_TARGETS]
    assert ev.loc["UF1", "summary"] == "fresh: 90 new targets (< 100), age 100.0h < 168h"
    assert ev.loc["DL1", "tier"] == "high" and ev.loc["DL1", "max_age_hours"] == 72.0


def test_training_order_is_tier_then_count(world_home: Path) -> None:
    ev = _evaluate(world_home)
    assert staleness.due_entities(ev) == ["MK1", "MK2", "MK3", "EP1", "EP2", "DL2", "TDL1"]


# Boundaries sit at the tier maximum less the 2 h grace (a daily run lands either side of 24 h).
@pytest.mark.parametrize(("code", "below", "above"), [
    ("MK1", 21.9, 22.1), ("DL1", 69.9, 70.1), ("UF1", 165.9, 166.1), ("TDL1", 165.9, 166.1),
])
def test_tier_max_age_boundaries(tmp_path: Path, code: str, below: float, above: float) -> None:
    home = tmp_path / "h"
    model = (0.0, 300, WORLD_CODE_VERSION, WORLD_PARAMS_HASH)  # trained just now
    build_world(home, {code: ("STANDBY", 300, 0, 0, model)})
    fresh = _evaluate(home, now=WORLD_NOW + timedelta(hours=below))
    stale = _evaluate(home, now=WORLD_NOW + timedelta(hours=above))
    assert not fresh["stale"].iloc[0]
    assert stale["stale"].iloc[0] and stale["reasons"].iloc[0][0].startswith("age ")


def test_code_version_bump_makes_every_trained_entity_stale(world_home: Path) -> None:
    ev = _evaluate(world_home, code="8").set_index("entity_code")
    with_targets = ev[ev["target_count"] > 0]
    assert with_targets["stale"].all()
    assert "code version 7 -> 8" in ev.loc["DL1", "reasons"]
    assert not ev.loc["MK4", "stale"]


def test_config_overrides(world_home: Path) -> None:
    cfg = staleness.StalenessConfig.from_env({"BAMBAM_RETRAIN_MIN_NEW_TARGETS": "50",
                                              "BAMBAM_RETRAIN_MAX_AGE_HOURS": "critical=48"})
    assert cfg.min_new_targets == 50 and cfg.max_age_of("critical") == 48.0
    assert cfg.max_age_of("high") == 72.0 and cfg.max_age_of("other") == 168.0
    ev = _evaluate(world_home, config=cfg).set_index("entity_code")
    assert ev.loc["MK1", "reasons"] == ["50 new targets (>= 50)"]  # age 30h <= 48h now
    assert not ev.loc["DL1", "stale"]
    assert ev.loc["MK5", "reasons"] == ["50 new targets (>= 50)"]
    assert ev.loc["UF1", "reasons"] == ["90 new targets (>= 50)"]
    with pytest.raises(ValueError):
        staleness.StalenessConfig.from_env({"BAMBAM_RETRAIN_MAX_AGE_HOURS": "bogus=1"})


def test_no_registry_yet_and_evaluation_table(tmp_path: Path) -> None:
    home = tmp_path / "h"
    build_world(home, {"MK1": ("STANDBY", 10, 0, 0, None)})  # model_registry exists, empty
    ev = _evaluate(home)
    assert ev["reasons"].tolist() == [["no current model"]]
    ev["action"] = "test"
    with wh.writer(home) as conn:
        assert staleness.write_evaluations(conn, ev) == 1
        assert staleness.write_evaluations(conn, ev) == 1  # upsert: still one row per entity
        back = staleness.read_evaluations(conn)
    assert back["entity_code"].tolist() == ["MK1"]
    assert list(back["reasons"].iloc[0]) == ["no current model"]
    assert back["evaluated_at"].iloc[0] == pd.Timestamp(WORLD_NOW)

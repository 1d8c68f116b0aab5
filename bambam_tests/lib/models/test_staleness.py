"""The staleness rule: each reason on exact entities, tier ages, code/params bumps, the table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.dimensions import entities
from bambam_assets.lib.models import staleness

AS_OF = date(2024, 6, 1)
NOW = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)
CODE, PARAMS = "7", "abc123"

# entity -> (queue type, targets now, 8888 rows, POSTED rows, model: (hours ago, targets at
# training, code, params) or None)
WORLD = {
    "MK1": ("STANDBY", 550, 0, 0, (30.0, 500, CODE, PARAMS)),   # age 30h > 24h (critical)
    "MK2": ("STANDBY", 520, 0, 0, (2.0, 400, CODE, PARAMS)),    # 120 new targets
    "MK3": ("PRIORITY", 300, 50, 0, None),                      # no model (8888 not counted)
    "MK4": ("STANDBY", 0, 0, 40, None),                         # POSTED only: nothing to train
    "MK5": ("PRIORITY", 150, 120, 0, (1.0, 100, CODE, PARAMS)), # 50 new (the 120 8888s excluded)
    "EP1": ("STANDBY", 200, 0, 0, (1.0, 200, "6", PARAMS)),     # code version changed
    "EP2": ("STANDBY", 200, 0, 0, (1.0, 200, CODE, "old")),     # params changed
    "DL1": ("STANDBY", 300, 0, 0, (50.0, 300, CODE, PARAMS)),   # fresh: 50h <= 72h (high)
    "DL2": ("STANDBY", 300, 0, 0, (80.0, 300, CODE, PARAMS)),   # age 80h > 72h (high)
    "UF1": ("STANDBY", 250, 0, 0, (100.0, 160, CODE, PARAMS)),  # fresh: 90 new, 100h <= 168h
    "TDL1": ("STANDBY", 250, 0, 0, (170.0, 250, CODE, PARAMS)), # age 170h > 168h (low)
}


def build_world(home: Path, world: dict = WORLD, now: datetime = NOW) -> None:
    """A warehouse with facts, entity_index, dim_entity and model_registry for `world`."""
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        for code, (qtype, n, sold_out, posted, model) in world.items():
            park = "".join(ch for ch in code if ch.isalpha())
            kind = "PRIORITY" if qtype == "PRIORITY" else "ACTUAL"
            for wtype, count, minutes in ((kind, n, 20), ("PRIORITY", sold_out, 8888),
                                          ("POSTED", posted, 30)):
                conn.execute(
                    """INSERT INTO fct_wait_times BY NAME
                       SELECT ? AS entity_code, ? AS park_code, DATE '2024-05-20' AS park_date,
                              TIMESTAMPTZ '2024-05-20 14:00:00+00' + to_minutes(i) AS observed_at,
                              ? AS wait_time_type, ? AS wait_time_minutes, 't' AS source_file
                       FROM range(?) r(i)""", [code, park, wtype, minutes, count])
            at_last = model[1] if model else None
            conn.execute("INSERT INTO entity_index (entity_code, park_code, "
                         "target_count_at_last_model) VALUES (?, ?, ?)", [code, park, at_last])
            if model:
                hours, count, code_v, params = model
                conn.execute(
                    """INSERT INTO model_registry (entity_code, version, kind, trained_at,
                       is_current, promoted, target_count, code_version, params_hash)
                       VALUES (?, 1, 'xgboost', ?, true, true, ?, ?, ?)""",
                    [code, now - timedelta(hours=hours), count, code_v, params])
        raw = pd.DataFrame({"code": list(world), "name": list(world),
                            "fastpass_booth": ["true" if v[0] == "PRIORITY" else "false"
                                               for v in world.values()]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))


def _evaluate(home: Path, now: datetime = NOW, code: str = CODE, params: str = PARAMS,
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
    build_world(home, {code: ("STANDBY", 300, 0, 0, (0.0, 300, CODE, PARAMS))})
    fresh = _evaluate(home, now=NOW + timedelta(hours=below))
    stale = _evaluate(home, now=NOW + timedelta(hours=above))
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
    assert back["evaluated_at"].iloc[0] == pd.Timestamp(NOW)

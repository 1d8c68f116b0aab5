"""entity_model retraining runs in Dagster terms: run config and RunRequests.

The one builder both `bambam run` (runner.py) and the retrain sensor / weekly schedule
(defs/automation) use: what to train, the op config and the tags come from lib/models/retrain.py
as plain data; this module only keys the config by entity_model's op and wraps a RunRequest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from bambam_assets.defs.models.assets import entity_model
from bambam_assets.lib.models import retrain


@dataclass(frozen=True)
class EntityModelRun:
    """One entity_model run over the whole key range: its run config and tags."""

    run_config: dict
    tags: dict[str, str]

    def request(self, run_key: str) -> dg.RunRequest:
        return dg.RunRequest(run_key=run_key, asset_selection=[entity_model.key],
                             tags=self.tags, run_config=self.run_config)


def run_config(op_config: dict) -> dict:
    """Run config giving entity_model the op config `op_config` (TrainConfig fields)."""
    return {"ops": {entity_model.op.name: {"config": op_config}}}


def due_run(plan: retrain.RetrainPlan, keys: Sequence[str], now: datetime, mode: str,
            trigger: str, knob_tags: dict[str, str] | None = None) -> EntityModelRun:
    """ONE run of entity_model over the full key range, training only the plan's due list;
    `knob_tags`: the run knobs shown in the UI (RunKnobs.tags)."""
    return EntityModelRun(run_config(retrain.retrain_config(plan, now, mode)),
                          {**(knob_tags or {}), **retrain.retrain_tags(plan, keys, trigger)})


def full_retrain_run(keys: Sequence[str], trigger: str,
                     knob_tags: dict[str, str] | None = None) -> EntityModelRun:
    """ONE run of entity_model retraining every entity of the key range from scratch."""
    return EntityModelRun(run_config(retrain.full_retrain_config()),
                          {**(knob_tags or {}), **retrain.full_retrain_tags(keys, trigger)})

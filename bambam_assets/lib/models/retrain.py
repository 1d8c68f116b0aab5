"""One entity_model retraining run as plain data: the due list, the run config and the tags.

Both paths that train entities build their run here: `bambam run` (runner.py) and the retrain
sensor and weekly full-retrain schedule (defs/automation). The staleness rule itself is
lib/models/staleness.py; this module applies it under the current training code and parameters
(`evaluate`), turns an evaluation into a due list and a run key (`plan_retrain`), and writes the
op config of entity_model (TrainConfig) and the run's tags as plain dicts. The Dagster wrappers
(run config keyed by the op, RunRequest) are in defs/models/retrain.py. No Dagster import here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pandas as pd

from bambam_assets.lib.models import batch as tb
from bambam_assets.lib.models import staleness

# A run carrying both range tags covers the whole key range in one run (single_run backfill
# policy); the names are Dagster's (dagster._core.storage.tags), spelled out to stay Dagster-free.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
TRIGGER_TAG = "bambam/trigger"
DUE_COUNT_TAG, DUE_TAG = "bambam/due_count", "bambam/due"
DUE_TAG_MAX = 200  # Dagster tag values stay short: the full list is in the run config


def evaluate(conn: duckdb.DuckDBPyConnection, now: datetime, as_of: date) -> pd.DataFrame:
    """The staleness of every entity at `now` against the current training code version and
    parameters hash, with the thresholds of the environment (BAMBAM_RETRAIN_*). Read-only.
    Grain: one row per entity, in training order (staleness.evaluate)."""
    return staleness.evaluate_warehouse(
        conn, now=now, as_of=as_of, code_version=tb.TRAINING_CODE_VERSION,
        params_hash=tb.params_hash(), config=staleness.StalenessConfig.from_env())


@dataclass
class RetrainPlan:
    """What one evaluation asks for."""

    due: list[str]  # stale entities that are partitions, in training order
    reasons: dict[str, str]  # due entity -> why
    fresh: dict[str, str]  # not-due entity -> why not
    missing_partitions: list[str] = field(default_factory=list)  # stale but not a partition yet
    run_key: str = ""


def window_start(now: datetime, window_hours: int) -> datetime:
    """Start of the evaluation window holding `now` (UTC): a failed run's due set is re-requested
    once per window, never twice in one."""
    now = now.astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0,
                       hour=now.hour - now.hour % max(1, min(window_hours, 24)))


def plan_retrain(evaluation: pd.DataFrame, partition_keys: Sequence[str], now: datetime,
                 as_of: date, window_hours: int = 6) -> RetrainPlan:
    """The due list (stale entities that are partitions, in training order) and a run key
    derived from (due set and its state, as-of, window)."""
    keys = set(partition_keys)
    stale = evaluation[evaluation["stale"]]
    is_key = stale["entity_code"].isin(keys)
    due = stale[is_key]
    fresh = evaluation[~evaluation["stale"]]
    # the state of each due entity: a new version or new targets make a new key at once
    state = (due["entity_code"] + "@" + due["latest_version"].astype("string").fillna("-")
             + "#" + due["target_count"].astype(str)).str.cat(sep=",")
    digest = hashlib.sha256(state.encode()).hexdigest()[:16]
    start = window_start(now, window_hours)
    return RetrainPlan(
        due=due["entity_code"].tolist(),
        reasons=dict(zip(due["entity_code"], due["summary"], strict=True)),
        fresh=dict(zip(fresh["entity_code"], fresh["summary"], strict=True)),
        missing_partitions=stale.loc[~is_key, "entity_code"].tolist(),
        run_key=f"retrain-{as_of.isoformat()}-{start:%Y%m%dT%H}-{digest}",
    )


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make one run cover the whole `entity` key range (single_run backfill policy)."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def retrain_config(plan: RetrainPlan, now: datetime, mode: str) -> dict:
    """entity_model's op config (TrainConfig) training the plan's due list, evaluated at `now`."""
    return {"only": list(plan.due), "mode": mode, "evaluated_at": now.astimezone(UTC).isoformat(),
            "reasons": dict(plan.reasons)}


def full_retrain_config() -> dict:
    """entity_model's op config retraining every entity of the run's range from scratch."""
    return {"only": [], "mode": "full"}


def retrain_tags(plan: RetrainPlan, keys: Sequence[str], trigger: str) -> dict[str, str]:
    """The tags of a run training the plan's due list over the whole key range."""
    due_text = ",".join(plan.due)
    return {**range_tags(keys), TRIGGER_TAG: trigger, DUE_COUNT_TAG: str(len(plan.due)),
            DUE_TAG: (due_text if len(due_text) <= DUE_TAG_MAX
                      else due_text[:DUE_TAG_MAX - 3] + "...")}


def full_retrain_tags(keys: Sequence[str], trigger: str) -> dict[str, str]:
    """The tags of a run retraining every entity of the key range."""
    return {**range_tags(keys), TRIGGER_TAG: trigger}

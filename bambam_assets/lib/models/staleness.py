"""The retraining rule, in one place: which entities are stale, and why (pure DuckDB + pandas).

An entity is stale, and gets retrained, when any of these holds:
- it has no current model;
- at least `min_new_targets` target observations arrived since its last training;
- its last training is older than its tier's maximum age (critical 1 day, high 3 days, medium,
  low and other 7 days);
- the training code version or the parameters hash differ from those of its last training.
Entities with no target observation at all are never stale (nothing to train) but are listed.

"Last training" is the entity's newest version in `model_registry`, promoted or not: a challenger
rejected by the promotion guard still counts as the attempt, so a rejected entity is retried when
new data or age calls for it, not on every tick. The target count is `features.target_counts`
(PRIORITY without 8888), the same count training records in
`entity_index.target_count_at_last_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import TIER_OF_PARK, TIER_RANK
from bambam_assets.lib.core.schema import ensure_tables
from bambam_assets.lib.core.warehouse import staged
from bambam_assets.lib.models.features import target_counts

DEFAULT_MAX_AGE_HOURS: dict[str, float] = {
    "critical": 24.0, "high": 72.0, "medium": 168.0, "low": 168.0, "other": 168.0,
}
NO_TARGETS = "no target observations (nothing to train)"

# Columns of `retrain_evaluations` (DDL and grain in lib.core.schema).
EVALUATION_COLUMNS: tuple[str, ...] = (
    "entity_code", "park_code", "tier", "queue_type", "stale", "reasons", "summary",
    "target_count", "target_count_at_last_model", "new_targets", "current_version",
    "latest_version", "trained_at", "age_hours", "max_age_hours", "code_version", "params_hash",
    "expected_code_version", "expected_params_hash", "as_of", "evaluated_at", "action", "source",
)


@dataclass(frozen=True)
class StalenessConfig:
    """Thresholds of the rule. Defaults are the contract; `from_env` reads overrides at run time."""

    min_new_targets: int = 100
    max_age_hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_AGE_HOURS))
    # A daily run starts a few minutes either side of 24 h after the last training finished:
    # without slack a critical model 23.9 h old would wait a whole extra day.
    age_grace_hours: float = 2.0

    def max_age_of(self, tier: str) -> float:
        return float(self.max_age_hours.get(tier, self.max_age_hours.get("other", 168.0)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StalenessConfig:
        """The defaults with the overrides BAMBAM_RETRAIN_MIN_NEW_TARGETS=100 and
        BAMBAM_RETRAIN_MAX_AGE_HOURS="critical=24,high=72", read now through lib/core/settings.py
        (from `env` instead of the environment when given)."""
        cfg = cls()
        min_new = settings.retrain_min_new_targets(env)
        if min_new is not None:
            cfg = replace(cfg, min_new_targets=min_new)
        ages = settings.retrain_max_age_hours(env)
        if ages:
            cfg = replace(cfg, max_age_hours={**cfg.max_age_hours, **ages})
        return cfg


_STATE_SQL = """
    SELECT i.entity_code, i.park_code, i.target_count_at_last_model,
           coalesce(q.queue_type, 'STANDBY') AS queue_type,
           r.current_version, r.latest_version, r.trained_at, r.code_version, r.params_hash,
           r.latest_target_count
    FROM entity_index i
    LEFT JOIN (SELECT entity_code, any_value(queue_type) AS queue_type
               FROM dim_entity GROUP BY entity_code) q USING (entity_code)
    LEFT JOIN (
        SELECT entity_code,
               max(version) FILTER (WHERE is_current) AS current_version,
               max(version) AS latest_version,
               arg_max(trained_at, version) AS trained_at,
               arg_max(code_version, version) AS code_version,
               arg_max(params_hash, version) AS params_hash,
               arg_max(target_count, version) AS latest_target_count
        FROM model_registry GROUP BY entity_code
    ) r USING (entity_code)
    ORDER BY i.entity_code
"""

def entity_state(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """What the rule reads. Grain: one row per entity of `entity_index` (works read-only)."""
    state = conn.execute(_STATE_SQL).df()
    counts = target_counts(conn, as_of)[["entity_code", "target_count"]]
    state = state.merge(counts, on="entity_code", how="left")
    state["target_count"] = state["target_count"].fillna(0).astype("int64")
    return state


def evaluate(
    state: pd.DataFrame, *, now: datetime, as_of: date, code_version: str, params_hash: str,
    config: StalenessConfig | None = None,
) -> pd.DataFrame:
    """Apply the rule to `entity_state` rows.

    Grain: one row per entity, columns EVALUATION_COLUMNS (action/source empty), ordered by tier
    rank, then target count descending, then code: the training order of the due entities.
    """
    cfg = config or StalenessConfig()
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    df = state.copy().reset_index(drop=True)
    df["tier"] = df["park_code"].map(TIER_OF_PARK).fillna("other")
    df["max_age_hours"] = df["tier"].map(cfg.max_age_of).astype("float64")
    trained_at = pd.to_datetime(df["trained_at"], utc=True)
    df["trained_at"] = trained_at
    df["age_hours"] = ((pd.Timestamp(now) - trained_at).dt.total_seconds() / 3600).round(2)
    at_last = df["target_count_at_last_model"].astype("Float64").fillna(
        df["latest_target_count"].astype("Float64"))
    df["target_count_at_last_model"] = at_last.astype("Int64")
    df["new_targets"] = (df["target_count"] - at_last.fillna(0)).astype("Int64")
    df["expected_code_version"] = code_version
    df["expected_params_hash"] = params_hash

    has_targets = df["target_count"] > 0
    has_model = df["current_version"].notna()
    tried = df["latest_version"].notna()
    checks = {  # reason text where the condition holds (vectorized), None elsewhere
        "no_model": (has_targets & ~has_model, "no current model"),
        "new_targets": (has_targets & tried & (df["new_targets"] >= cfg.min_new_targets),
                        df["new_targets"].astype(str) + f" new targets (>= {cfg.min_new_targets})"),
        "age": (has_targets & tried
                & (df["age_hours"] >= df["max_age_hours"] - cfg.age_grace_hours),
                "age " + df["age_hours"].round(1).astype(str) + "h >= "
                + df["max_age_hours"].map("{:g}".format) + "h (" + df["tier"] + " tier, "
                + f"{cfg.age_grace_hours:g}h grace)"),
        "code": (has_targets & tried & (df["code_version"] != code_version),
                 "code version " + df["code_version"].astype(str) + f" -> {code_version}"),
        "params": (has_targets & tried & (df["params_hash"] != params_hash),
                   "params " + df["params_hash"].astype(str) + f" -> {params_hash}"),
    }
    texts = pd.DataFrame({
        name: pd.Series(np.where(mask.fillna(False).to_numpy(dtype=bool),
                                 text if isinstance(text, str) else text.to_numpy(), None),
                        index=df.index, dtype="object")
        for name, (mask, text) in checks.items()
    })
    # one list per entity, in the column order above (stack drops the Nones)
    stacked = texts.stack()
    lists = stacked.groupby(level=0).agg(list) if len(stacked) else pd.Series(dtype=object)
    df["reasons"] = lists.reindex(df.index)
    df["reasons"] = df["reasons"].where(df["reasons"].notna(), pd.Series([[]] * len(df)))
    df["stale"] = df["reasons"].str.len() > 0
    fresh_text = ("fresh: " + df["new_targets"].fillna(0).astype(str) + f" new targets "
                  f"(< {cfg.min_new_targets}), age " + df["age_hours"].round(1).astype(str)
                  + "h < " + df["max_age_hours"].map("{:g}".format) + "h")
    df["summary"] = np.where(df["stale"], df["reasons"].str.join("; "), fresh_text)
    df.loc[~has_targets, "summary"] = NO_TARGETS
    df["reasons"] = df["reasons"].where(has_targets, pd.Series([[NO_TARGETS]] * len(df)))
    df["as_of"] = as_of
    df["evaluated_at"] = pd.Timestamp(now)
    df["action"] = None
    df["source"] = None
    df["_rank"] = df["tier"].map(TIER_RANK).fillna(TIER_RANK["other"])
    df = df.sort_values(["_rank", "target_count", "entity_code"],
                        ascending=[True, False, True], kind="stable")
    return df.loc[:, list(EVALUATION_COLUMNS)].reset_index(drop=True)


def evaluate_warehouse(
    conn: duckdb.DuckDBPyConnection, *, now: datetime, as_of: date, code_version: str,
    params_hash: str, config: StalenessConfig | None = None,
) -> pd.DataFrame:
    """entity_state + evaluate in one call (read-only). Grain: one row per entity."""
    return evaluate(entity_state(conn, as_of), now=now, as_of=as_of, code_version=code_version,
                    params_hash=params_hash, config=config)


def due_entities(evaluation: pd.DataFrame) -> list[str]:
    """The stale entities in training order (tier, then target count descending)."""
    return evaluation.loc[evaluation["stale"], "entity_code"].tolist()


def write_evaluations(conn: duckdb.DuckDBPyConnection, evaluation: pd.DataFrame) -> int:
    """Upsert the evaluation rows into `retrain_evaluations` (latest per entity); returns rows."""
    ensure_tables(conn)
    rows = evaluation.loc[:, list(EVALUATION_COLUMNS)].copy()
    rows["reasons"] = rows["reasons"].map(list)
    with staged(conn, _bambam_evals=rows):
        conn.execute("DELETE FROM retrain_evaluations WHERE entity_code IN "
                     "(SELECT entity_code FROM _bambam_evals)")
        conn.execute("INSERT INTO retrain_evaluations BY NAME SELECT * FROM _bambam_evals")
    return len(rows)


def read_evaluations(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The recorded latest evaluations. Grain: one row per entity (empty when none recorded)."""
    return conn.execute("SELECT * FROM retrain_evaluations ORDER BY entity_code").df()

"""Materialize the pipeline once, in-process, on the local instance (what `bambam run` does).

Unpartitioned layers (ingest, dimensions, ...) run first in one run; entity codes found by the
ingest become `entity` partitions; then every partitioned asset runs over the whole key range in
one run per asset (their BackfillPolicy is single_run), so 1,700 entities cost one run, not 1,700.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from bambam_assets import settings
from bambam_assets.definitions import defs
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.models.retrain import EntityModelRun, due_run, full_retrain_run
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.models import retrain

CLI_TRIGGER = "cli"


@dataclass
class RunSummary:
    run_ids: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    new_partitions: list[str] = field(default_factory=list)
    success: bool = True


def _all_assets() -> list[dg.AssetsDefinition]:
    graph = defs.resolve_asset_graph()
    return [a for a in graph.assets_defs if a.keys and a.is_executable]


def _asset_job() -> dg.JobDefinition:
    # The implicit job over every asset, with the code location's resources bound.
    return defs.resolve_implicit_global_asset_job_def()


def sync_entity_partitions(instance: dg.DagsterInstance) -> list[str]:
    """Add every entity of the entity index as an `entity` partition; returns the codes added."""
    path = wh.warehouse_path(settings.home())
    if not path.exists():
        return []
    with wh.reader(settings.home()) as conn:
        if not wh.table_exists(conn, "entity_index"):
            return []
        codes = [c for (c,) in conn.execute("SELECT entity_code FROM entity_index ORDER BY 1").fetchall()]
    existing = set(instance.get_dynamic_partitions(entity_partitions.name))
    new = [c for c in codes if c not in existing]
    if new:
        instance.add_dynamic_partitions(entity_partitions.name, new)
    return new


def run_pipeline(
    instance: dg.DagsterInstance, selection: list[str] | None = None, log=print,
    retrain_all: bool = False,
) -> RunSummary:
    """Materialize the selected assets (all when None) once; returns what ran.

    In graph order: one run for the unpartitioned layers upstream of the entity partitions
    (ingest, dimensions, aggregates); one run per entity-partitioned asset over the whole key
    range (a worker pool inside the step); one run for the unpartitioned layers downstream (WTI).
    entity_model trains the due entities (the retrain sensor's rule and run builder,
    defs/models/retrain.py), or every entity in full with `retrain_all` (the weekly schedule's
    run).
    """
    summary = RunSummary()
    graph = defs.resolve_asset_graph()
    assets = _all_assets()
    parted = {k for a in assets if a.partitions_def is not None for k in a.keys}
    plain = {k for a in assets if a.partitions_def is None for k in a.keys}
    downstream = dg.AssetSelection.assets(*parted).downstream().resolve(graph) if parted else set()
    wanted = set(selection) if selection else None

    def chosen(keys: set[dg.AssetKey]) -> list[dg.AssetKey]:
        return sorted((k for k in keys if wanted is None or k.to_user_string() in wanted),
                      key=lambda k: k.to_user_string())

    before, after = chosen(plain - downstream), chosen(plain & downstream)
    if before and not _execute(instance, before, {}, None, summary, log):
        return summary
    summary.new_partitions = sync_entity_partitions(instance)
    if summary.new_partitions:
        log(f"added {len(summary.new_partitions)} entity partitions")
    keys = instance.get_dynamic_partitions(entity_partitions.name)
    parted_keys = chosen(parted)
    if parted_keys and keys:
        # One run per partitioned asset, in graph order: a range-run step yields per-partition
        # materializations, not an output, so a downstream step in the same run would be skipped.
        order = [k for k in graph.toposorted_asset_keys if k in set(parted_keys)]
        for key in order:
            tags, config = retrain.range_tags(keys), None
            if key.to_user_string() == "entity_model":
                run = (full_retrain_run(keys, CLI_TRIGGER) if retrain_all
                       else _due_run(keys, log))
                if run is None:
                    continue
                tags, config = run.tags, run.run_config
            log(f"over {len(keys)} entity partitions:")
            if not _execute(instance, [key], tags, config, summary, log):
                return summary
    if after:
        _execute(instance, after, {}, None, summary, log)
    return summary


def _due_run(keys: list[str], log) -> EntityModelRun | None:
    """The entity_model run training exactly the stale entities (the smart-retraining rule, built
    like the retrain sensor's request); None when nothing is due."""
    now = datetime.now(UTC)
    as_of = settings.as_of()
    with wh.reader(settings.home()) as conn:
        evaluation = retrain.evaluate(conn, now, as_of)
    plan = retrain.plan_retrain(evaluation, keys, now, as_of)
    if not plan.due:
        log("no entity is due for retraining")
        return None
    log(f"{len(plan.due)} of {len(evaluation)} entities due for retraining")
    return due_run(plan, keys, now, settings.train_mode(), CLI_TRIGGER)


def _execute(instance: dg.DagsterInstance, keys: list[dg.AssetKey], tags: dict,
             run_config: dict | None, summary: RunSummary, log) -> bool:
    log(f"materializing {len(keys)} assets: {', '.join(k.to_user_string() for k in keys)}")
    # Dagster's console logger prints every event at DEBUG; the CLI shows progress bars and a
    # summary instead, and the full event log stays in the instance (UI). BAMBAM_LOG_LEVEL=DEBUG
    # brings the stream back.
    level = os.environ.get("BAMBAM_LOG_LEVEL", "WARNING").upper()
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": level}}}}
    result = _asset_job().execute_in_process(
        instance=instance, asset_selection=keys, raise_on_error=False,
        tags={**tags, retrain.TRIGGER_TAG: CLI_TRIGGER}, run_config=config,
    )
    _collect(result, summary)
    if not result.success:
        log("the run failed: later layers not attempted (see the errors above)")
    return result.success


def _collect(result: dg.ExecuteInProcessResult, summary: RunSummary) -> None:
    summary.run_ids.append(result.run_id)
    summary.success &= result.success
    for event in result.get_asset_materialization_events():
        summary.materialized.append(event.asset_key.to_user_string())
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            summary.failed_checks.append(ev.check_name)

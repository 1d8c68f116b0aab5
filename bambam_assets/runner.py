"""Materialize the pipeline once, in-process, on the local instance (what `bambam run` does).

Unpartitioned layers (ingest, dimensions, ...) run first in one run; entity codes found by the
ingest become `entity` partitions; then every partitioned asset runs over the whole key range in
one run per asset (their BackfillPolicy is single_run), so 1,700 entities cost one run, not 1,700.

The home, the raw source and the knobs (as-of date, forecast and backfill days, train mode) are
resolved once per call and handed to each run as resource config and `bambam/*` tags, so the
Dagster UI shows what every run computed with, and a caller (the backtest) can point a call at
another home without touching the environment.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil

from bambam_assets import definitions
from bambam_assets.defs.models.assets import TrainConfig
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.models.retrain import EntityModelRun, due_run, full_retrain_run
from bambam_assets.defs.resources import RunKnobs
from bambam_assets.lib.core import settings
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
    graph = definitions.defs.resolve_asset_graph()
    return [a for a in graph.assets_defs if a.keys and a.is_executable]


def expand_selection(selection: list[str], assets: list[dg.AssetsDefinition], log=print
                     ) -> set[str]:
    """The asset names to run for a user's `--select`: each name checked, and a name written by
    a step that makes several assets at once (ingest writes fct_wait_times, fct_rejected_rows and
    entity_index in one transaction) expanded to all of that step's assets, since Dagster cannot
    run a part of such a step. Raises ValueError naming an unknown asset and the known ones."""
    owner = {k.to_user_string(): a for a in assets for k in a.keys}
    unknown = sorted(set(selection) - set(owner))
    if unknown:
        raise ValueError(f"unknown asset {', '.join(unknown)}; known assets: "
                         f"{', '.join(sorted(owner))}")
    wanted = set(selection)
    for name in selection:
        a = owner[name]
        if len(a.keys) > 1 and not a.can_subset:
            together = sorted(k.to_user_string() for k in a.keys)
            added = sorted(set(together) - wanted)
            if added:
                log(f"{name} is written together with {', '.join(added)} (one step): "
                    "running them all")
            wanted |= set(together)
    return wanted


def _asset_job() -> dg.JobDefinition:
    # The implicit job over every asset, with the code location's resources bound.
    return definitions.defs.resolve_implicit_global_asset_job_def()


def sync_entity_partitions(instance: dg.DagsterInstance, home: Path | None = None) -> list[str]:
    """Add every entity of the entity index (of `home`, default BAMBAM_HOME) as an `entity`
    partition; returns the codes added."""
    home = home or settings.home()
    if not wh.warehouse_path(home).exists():
        return []
    with wh.reader(home) as conn:
        codes = [c for (c,) in conn.execute(
            "SELECT entity_code FROM entity_index ORDER BY 1").fetchall()]
    existing = set(instance.get_dynamic_partitions(entity_partitions.name))
    new = [c for c in codes if c not in existing]
    if new:
        instance.add_dynamic_partitions(entity_partitions.name, new)
    return new


@dataclass(frozen=True)
class _Target:
    """Where the runs of one run_pipeline call read and write, and their knobs: passed to every
    run as resource config (visible in the UI) and tags, never through the environment."""

    home: Path
    raw_uri: str
    knobs: RunKnobs

    def run_config(self, extra: dict | None) -> dict:
        extra = extra or {}
        return {**extra, "resources": {
            "warehouse": {"config": {"home": str(self.home)}},
            "raw_source": {"config": {"uri": self.raw_uri}},
            "run_settings": {"config": self.knobs.run_settings_config()},
            **extra.get("resources", {}),
        }}


def run_pipeline(
    instance: dg.DagsterInstance, selection: list[str] | None = None, log=print,
    retrain_all: bool = False, *, home: Path | None = None, raw_uri: str | None = None,
    knobs: RunKnobs | None = None,
) -> RunSummary:
    """Materialize the selected assets (all when None) once; returns what ran.

    In graph order: one run for the unpartitioned layers upstream of the entity partitions
    (ingest, dimensions, aggregates); one run per entity-partitioned asset over the whole key
    range (a worker pool inside the step); one run for the unpartitioned layers downstream (WTI).
    entity_model trains the due entities (the retrain sensor's rule and run builder,
    defs/models/retrain.py), or every entity in full with `retrain_all` (the weekly schedule's
    run).

    `home`, `raw_uri` and `knobs` (as-of date, forecast and backfill days, train mode) default to
    the settings, read once here; every run gets them as resource config and as tags.
    """
    home = Path(home).resolve() if home else settings.home()
    release_dead_runs(instance, log)
    target = _Target(home, raw_uri or settings.raw_uri(), knobs or RunKnobs.from_settings())
    summary = RunSummary()
    graph = definitions.defs.resolve_asset_graph()
    assets = _all_assets()
    parted = {k for a in assets if a.partitions_def is not None for k in a.keys}
    plain = {k for a in assets if a.partitions_def is None for k in a.keys}
    downstream = dg.AssetSelection.assets(*parted).downstream().resolve(graph) if parted else set()
    wanted = expand_selection(selection, assets, log) if selection else None

    def chosen(keys: set[dg.AssetKey]) -> list[dg.AssetKey]:
        return sorted((k for k in keys if wanted is None or k.to_user_string() in wanted),
                      key=lambda k: k.to_user_string())

    before, after = chosen(plain - downstream), chosen(plain & downstream)
    if before and not _execute(instance, before, {}, None, target, summary, log):
        return summary
    summary.new_partitions = sync_entity_partitions(instance, target.home)
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
                       else _due_run(keys, log, target))
                if run is None:
                    continue
                tags, config = run.tags, run.run_config
            log(f"over {len(keys)} entity partitions:")
            if not _execute(instance, [key], tags, config, target, summary, log):
                return summary
    if after:
        _execute(instance, after, {}, None, target, summary, log)
    return summary


# Which process runs a `bambam run` run: host, pid and the process's start time (a reused pid
# has another start time).
RUNNER_TAG = "bambam/runner_process"


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.3f}"


def _process_alive(tag: str) -> bool:
    host, pid, started = tag.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # another machine's process: not ours to judge
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


def release_dead_runs(instance: dg.DagsterInstance, log) -> list[str]:
    """Mark failed the in-process runs whose `bambam run` process died (kill -9, OOM, power cut)
    and free their pool slots.

    An in-process run holds its `warehouse` pool slot in the instance's storage, not in the
    process: a killed `bambam run` left the slot claimed, and every later run waited for it
    forever (found by bench/fault_table.py, kill -9 during ingest). Only runs tagged by this
    runner on this host are judged; the daemon's runs are left to Dagster's run monitoring.
    """
    released = []
    records = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
                  dg.DagsterRunStatus.CANCELING],
    ))
    for record in records:
        run = record.dagster_run
        tag = run.tags.get(RUNNER_TAG)
        if not tag or _process_alive(tag):
            continue
        instance.report_run_failed(run, f"the `bambam run` process that ran it ({tag}) died")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
        log(f"run {run.run_id[:8]} had died with its process: marked failed, its pool slot freed")
    return released


def _due_run(keys: list[str], log, target: _Target) -> EntityModelRun | None:
    """The entity_model run training exactly the stale entities (the smart-retraining rule, built
    like the retrain sensor's request); None when nothing is due."""
    now = datetime.now(UTC)
    as_of = target.knobs.as_of
    with wh.reader(target.home) as conn:
        evaluation = retrain.evaluate(conn, now, as_of)
    plan = retrain.plan_retrain(evaluation, keys, now, as_of)
    if not plan.due:
        log("no entity is due for retraining")
        return None
    log(f"{len(plan.due)} of {len(evaluation)} entities due for retraining")
    return due_run(plan, keys, now, target.knobs.train_mode, CLI_TRIGGER)


def _train_mode_of(run_config: dict | None) -> str | None:
    """The TrainConfig.mode an entity_model run config asks for (its default "full")."""
    ops = (run_config or {}).get("ops", {})
    if "entity_model" not in ops:
        return None
    return ops["entity_model"].get("config", {}).get("mode", TrainConfig().mode)


def _execute(instance: dg.DagsterInstance, keys: list[dg.AssetKey], tags: dict,
             run_config: dict | None, target: _Target, summary: RunSummary, log) -> bool:
    log(f"materializing {len(keys)} assets: {', '.join(k.to_user_string() for k in keys)}")
    # Dagster's console logger prints every event at DEBUG; the CLI shows progress bars and a
    # summary instead, and the full event log stays in the instance (UI). BAMBAM_LOG_LEVEL=DEBUG
    # brings the stream back.
    config = {**target.run_config(run_config),
              "loggers": {"console": {"config": {"log_level": settings.log_level()}}}}
    # One planned event per asset of a range run, not one per entity partition: at 1,694
    # entities those were 5,082 event-log writes per `bambam run` (42 of a daily run's 575 s
    # on SQLite, bench/full_bench.py profiled). What it costs: Dagster derives in-progress and
    # failed partitions from per-partition planned events, so the UI shows a CLI range run's
    # partitions neither as in progress nor, when the run fails, as failed (per partition they
    # would all be failed, the unchanged ones too: the steps materialize only the entities whose
    # files changed; failures are the per-entity "error" observations and the failed run's
    # alert). Only this process's runs: the daemon's keep per-partition events, which its
    # conditions' ~in_progress() reads.
    with settings.planned_events_as_subsets():
        result = _asset_job().execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False, run_config=config,
            tags={**tags, **target.knobs.tags(_train_mode_of(run_config)),
                  retrain.TRIGGER_TAG: CLI_TRIGGER, RUNNER_TAG: _this_process()},
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

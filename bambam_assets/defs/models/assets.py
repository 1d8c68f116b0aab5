"""entity_model: one partition per entity, trained in range runs on a worker pool."""


from datetime import UTC, datetime, timedelta

import dagster as dg

from bambam_assets.defs.conditions import DATA_VERSION_TAG
from bambam_assets.defs.failures import fail_if_too_many_failed
from bambam_assets.defs.groups import group_of
from bambam_assets.defs.models.partitions import entity_partitions
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.progress import StepProgress, is_milestone
from bambam_assets.lib.models import batch as tb
from bambam_assets.lib.models import (
    incremental,
    registry,
    registry_table,
    retrain,
    staleness,
    training_lock,
)
from bambam_assets.lib.models.batch import TRAINING_CODE_VERSION, params_hash, train_batch
from bambam_assets.lib.models.features import build_posted_frame, build_training_frame

# The asset-level freshness alarm (1.13 FreshnessPolicy). It judges entity_model by its latest
# materialization of ANY partition (measured on Dagster 1.13), so it cannot hold the per-entity,
# per-tier ages (lib/models/staleness.py); it raises the alarm when the whole layer falls
# behind: the daily run and the critical tier's 1-day age keep entity_model materialized at
# least daily, so 24 h without any model materialization warns and 26 h fails.
MODEL_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=24))


DUE_SHOWN = 20  # due entities named in the step's log line (all: table retrain_evaluations)


class TrainConfig(dg.Config):
    """Which entities of the run's partition range to train (empty: all of them)."""

    only: list[str] = []
    workers: int = 0  # 0: sized from CPU count and available RAM
    # full: retrain from scratch; auto: continue boosting where allowed (lib/models/incremental.py);
    # incremental: like auto, ignoring the new-target cap
    mode: str = "full"
    # the retrain sensor's clock (ISO) and reasons: the run re-evaluates staleness at that
    # instant and records it in retrain_evaluations; empty = the run's start
    evaluated_at: str = ""
    reasons: dict[str, str] = {}


@dg.asset(
    partitions_def=entity_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,
    group_name=group_of("entity_model"),
    freshness_policy=MODEL_FRESHNESS,
    code_version=f"{TRAINING_CODE_VERSION}-{params_hash()}",
    deps=["fct_wait_times", "entity_index", "dim_entity", "dim_calendar", "dim_season",
          "dim_park_hours", "global_model"],
    description="One model version per entity: with- and without-POSTED XGBoost (or the hourly "
    "fallback under 500 targets), early-stopped, refit on all rows, promotion-guarded.",
)
def entity_model(
    context: dg.AssetExecutionContext, config: TrainConfig, warehouse: WarehouseResource,
    run_settings: RunSettingsResource,
):
    home = warehouse.home_path()

    def on_wait(holder: training_lock.Holder | None, waited_s: float) -> None:
        context.log.warning(f"waiting for the training lock ({waited_s:.0f}s so far): held by "
                            f"{holder.describe() if holder else 'another process'}")

    # One training at a time per home, whoever started it: a second run waits here, then
    # re-evaluates under the lock and skips what the first one trained
    # (lib/models/training_lock.py).
    with training_lock.training_lock(home, context.run_id, on_wait=on_wait) as waited_s:
        if waited_s > 1:
            context.log.info(f"training lock acquired after {waited_s:.0f}s")
        yield from _train(context, config, warehouse, run_settings)


def _train(context: dg.AssetExecutionContext, config: TrainConfig, warehouse: WarehouseResource,
           run_settings: RunSettingsResource):
    """The step's body, under the training lock."""
    keys = list(context.partition_keys)
    if config.only:
        wanted = set(config.only)
        keys = [k for k in keys if k in wanted]
    if config.mode not in incremental.MODES:
        raise dg.Failure(f"mode must be one of {incremental.MODES}, got {config.mode!r}")
    max_failed_share = settings.max_failed_share()  # a bad setting fails before any training
    as_of = run_settings.as_of_date()
    models_root = HomePaths(warehouse.home_path()).models
    evaluated_at = (datetime.fromisoformat(config.evaluated_at) if config.evaluated_at
                    else datetime.now(UTC))
    # Files first: versions a crashed step saved but never mirrored get their registry rows
    # before the staleness rule reads the table (else it would call them model-less).
    with warehouse.writer() as conn:
        added = registry_table.reconcile(conn, models_root)
    if len(added):
        context.log.warning(
            f"model_registry lacked {len(added)} versions on disk (a crashed training step): "
            f"added {_summary(added['entity_code'] + ' v' + added['version'].astype(str))}")
    # What the batch needs to plan, in one heavy read (a writer's memory limit); the rows are
    # read per chunk by train_batch (read_chunk). Workers get plain frames, never open DuckDB.
    with warehouse.reader(heavy=True) as conn:
        # the staleness of every entity of the range, as the sensor saw it (same rule, same clock)
        evaluation = retrain.evaluate(conn, evaluated_at, as_of)
        # A due list drawn before this step held the lock: an entity another run trained since
        # (or whose version the reconciliation found) is no longer stale at that same clock.
        no_longer_due = _no_longer_due(evaluation, keys) if config.evaluated_at else {}
        keys = [k for k in keys if k not in no_longer_due]
        counts = _target_counts(evaluation, keys)
        # entities due for an incremental update read only their update window's rows
        planned = tb.plan_modes(models_root, counts, config.mode, datetime.now(UTC))
        tails = {code for code, (m, _) in planned.items() if m == incremental.INCREMENTAL}
        queue_types = dict(conn.execute(
            "SELECT entity_code, queue_type FROM dim_entity "
            "WHERE entity_code IN (SELECT unnest(?))",
            [keys]).fetchall())
    rows_read = {"target": 0, "posted": 0}

    def read_chunk(codes: list[str]):
        # One heavy read per chunk, closed before its entities train: another process's writer
        # waits for one chunk's read at most, and the rows held stay bounded (lib.models.batch).
        with warehouse.reader(heavy=True) as conn:
            frame = build_training_frame(
                conn, codes, as_of, tail_entities=[c for c in codes if c in tails],
                tail_rows=incremental.IncrementalPolicy().min_window_rows)
            # the POSTED model's sampled rows, for the entities retrained in full only
            posted_frame = build_posted_frame(conn, [c for c in codes if c not in tails], as_of)
        rows_read["target"] += len(frame)
        rows_read["posted"] += len(posted_frame)
        return frame, posted_frame

    context.log.info(f"training {len(keys)} entities as of {as_of} ({len(tails)} read for an "
                     f"incremental update only), in chunks of at most "
                     f"{tb.CHUNK_TARGET_ROWS:,} target rows")

    progress = StepProgress(warehouse.home_path(), context.run_id, "entity_model", len(keys))

    def on_done(k: int, n: int, code: str, error: str | None) -> None:
        progress.advance(code, failed=bool(error), total=n)
        if error:
            context.log.error(f"entity {k} of {n}: {code} failed: {error}")
        elif is_milestone(k, n):  # every entity is in progress.json
            context.log.info(f"entity {k} of {n}: {code} trained")

    # every entity's reason is in retrain_evaluations too (written below)
    if config.reasons:
        context.log.info(f"due: {len(config.reasons)} entities: " + "; ".join(
            f"{code}: {reason}" for code, reason in list(config.reasons.items())[:DUE_SHOWN])
            + (f"; and {len(config.reasons) - DUE_SHOWN} more"
               if len(config.reasons) > DUE_SHOWN else ""))
    result = train_batch(None, keys, queue_types, models_root, on_done=on_done,
                         workers=config.workers or None, mode=config.mode,
                         target_counts=counts, tail_entities=sorted(tails), plan=planned,
                         read_chunk=read_chunk)
    result.skipped.update(no_longer_due)
    rows = registry_table.registry_rows(models_root, result.outcomes)
    failures = registry_table.failure_rows(result.failures, context.run_id)
    evaluation = _with_actions(evaluation, set(context.partition_keys), set(keys), result,
                               f"entity_model run {context.run_id[:8]}")
    with warehouse.writer() as conn:
        registry_table.write_registry(conn, rows, failures)
        staleness.write_evaluations(conn, evaluation)
        if result.outcomes:
            conn.execute(
                """
                UPDATE entity_index SET last_modeled_at = now(),
                    target_count_at_last_model = t.target_count
                FROM (SELECT unnest(?) AS entity_code, unnest(?) AS target_count) t
                WHERE entity_index.entity_code = t.entity_code
                """,
                [[o.entity_code for o in result.outcomes],
                 [int(result.target_counts[o.entity_code]) for o in result.outcomes]],
            )
    context.log.info(
        f"trained {len(result.outcomes)} entities, {len(result.failures)} failed, "
        f"{result.workers} workers x {result.nthread} threads, {result.seconds:.1f}s, from "
        f"{rows_read['target']:,} target rows and {rows_read['posted']:,} sampled POSTED rows "
        f"read in {result.chunks} chunks"
    )
    for outcome in result.outcomes:
        yield dg.AssetMaterialization(
            asset_key=context.asset_key, partition=outcome.entity_code,
            metadata=_metadata(result.trained[outcome.entity_code], outcome),
            tags={DATA_VERSION_TAG: _current_version_tag(outcome)},
        )
    for code, reason in result.skipped.items():
        yield dg.AssetObservation(asset_key=context.asset_key, partition=code,
                                  metadata={"skipped": reason})
    for code, exc in result.failures.items():
        # The entity's partition stays unmaterialized; its error is shown on the partition.
        yield dg.AssetObservation(
            asset_key=context.asset_key, partition=code,
            metadata={"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, str) else exc},
        )
    # Everything above is recorded; too many failures still fail the run, visibly.
    fail_if_too_many_failed(list(result.failures), len(result.outcomes) + len(result.failures),
                            max_failed_share)


def _current_version_tag(outcome: registry.SaveOutcome) -> str:
    """The data version of an entity's model: its CURRENT version after this save, so a
    challenger that was not promoted leaves it as it was and requests no forecast
    (defs/conditions.py)."""
    current = outcome.version if outcome.promoted else outcome.previous_version
    return f"v{current:04d}" if current is not None else f"none-{outcome.version:04d}"


def _no_longer_due(evaluation, keys: list[str]) -> dict[str, str]:
    """Entity -> why, for the keys the evaluation no longer calls stale."""
    ev = evaluation[evaluation["entity_code"].isin(keys) & ~evaluation["stale"]]
    return {code: f"no longer due (trained since the due list was drawn): {summary}"
            for code, summary in zip(ev["entity_code"], ev["summary"], strict=True)}


def _summary(items, limit: int = 20) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit
                                       else "")


def _target_counts(evaluation, keys: list[str]) -> dict[str, int]:
    """Each key's target count from the staleness evaluation (the count training records)."""
    ev = evaluation[evaluation["entity_code"].isin(keys)]
    return {code: int(n) for code, n in zip(ev["entity_code"], ev["target_count"].fillna(0),
                                            strict=True)}


def _with_actions(evaluation, in_range: set, selected: set, result, source: str):
    """The evaluation rows of the run's range, each with what this run did about it."""
    ev = evaluation[evaluation["entity_code"].isin(in_range)].copy()
    actions = {c: "not selected" for c in in_range - selected}
    actions |= {c: f"skipped: {why}" for c, why in result.skipped.items()}
    actions |= {c: f"failed: {exc}" for c, exc in result.failures.items()}
    actions |= {o.entity_code: f"{result.trained[o.entity_code].metrics.get('training_mode')} "
                f"retrain v{o.version}: {o.decision}" for o in result.outcomes}
    ev["action"] = ev["entity_code"].map(actions)
    ev["source"] = source
    return ev


def _metadata(trained, outcome: registry.SaveOutcome) -> dict:
    metrics = trained.metrics
    main = metrics.get("without_posted") or metrics.get("fallback") or {}
    md: dict = {
        "version": outcome.version,
        "promoted": outcome.promoted,
        "decision": outcome.decision,
        "kind": trained.kind,
        "queue_type": trained.queue_type,
        "holdout_mae": _num(trained.holdout_mae),
        "training_mode": metrics.get("training_mode"),
    }
    for key in ("mae", "rmse", "mape", "r2", "naive_mae", "best_iteration", "n_train", "n_test"):
        if key in main and main[key] is not None:
            md[key] = _num(main[key])
    wp = metrics.get("with_posted") or {}
    if wp.get("mae") is not None:
        md["with_posted_mae"] = _num(wp["mae"])
    for key in ("rows", "seconds"):
        if key in metrics:
            md[key] = _num(metrics[key])
    md["metrics"] = dg.MetadataValue.json(metrics)
    return {k: v for k, v in md.items() if v is not None}


def _num(value):
    if value is None:
        return None
    return int(value) if isinstance(value, int) else round(float(value), 4)

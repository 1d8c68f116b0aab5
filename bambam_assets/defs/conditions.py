"""Automation conditions of the asset layers: who re-materializes an asset, and when.

Every asset has an owner in automation (README "Automation"). These conditions are the
declarative owners; the raw-files sensor, the retrain sensor and the schedules own the rest.

The rule they share: an upstream counts as changed only when its DATA VERSION changed, not
when it merely materialized. The dimensions and posted_aggregates still materialize when their
inputs' fingerprint is unchanged (lineage, checks), with that fingerprint as data version, so
a daily dimensions run that rebuilt nothing requests no forecast; the ingest keeps the facts'
data version when it added and retracted nothing (defs/ingest/assets.py); entity_model's data
version is the entity's CURRENT model version, so a challenger that was not promoted requests
no forecast.

`AutomationCondition.eager()` differs in two ways that matter here: its `any_deps_updated`
fires on every upstream materialization, and its only missing-trigger, `newly_missing`, is
consumed by the sensor's first evaluation, so on a fresh home an asset that was missing from
the start (dim_calendar has no upstream to update) is never requested.
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition
# The event tag Dagster stores a materialization's data version under (the constant lives in a
# private module, dagster._core.definitions.data_version). An AssetMaterialization yielded per
# partition carries its data version in this tag; MaterializeResult takes `data_version=`.
DATA_VERSION_TAG = "dagster/data_version"


def _not_blocked(cond: dg.AutomationCondition) -> dg.AutomationCondition:
    # all_deps_blocking_checks_passed: a blocking check that failed on an upstream (the fact
    # table's) stops the layers below it across runs too, not only inside its own run
    return (cond & ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()
            & AC.all_deps_blocking_checks_passed())


def _missing_once() -> dg.AutomationCondition:
    # missing, and its last run did not fail: a failed build is retried by the next change of an
    # upstream or by the daily schedule, not on every tick
    return (AC.missing() & ~AC.execution_failed()).with_label("missing (last run not failed)")


def on_changed_inputs(*, chain: bool = True) -> dg.AutomationCondition:
    """For the cheap unpartitioned tables (dimensions, posted_aggregates): built when missing,
    rebuilt after an upstream's data version changed.

    `chain`: an upstream requested on the same tick counts too, so the dimensions and
    posted_aggregates after an ingest go in ONE run (each checks its own fingerprint and is a
    no-op when its inputs did not change)."""
    changed = AC.any_deps_match(AC.data_version_changed()).with_label(
        "any_dep_data_version_changed")
    if chain:
        changed = changed | AC.any_deps_match(AC.will_be_requested()).with_label(
            "any_dep_will_be_requested")
    return _not_blocked(_missing_once() | changed.since_last_handled()).with_label(
        "on_changed_inputs")


def on_missing_only() -> dg.AutomationCondition:
    """Built once when missing (the global model: its own rule decides when to retrain, in
    the daily run)."""
    return _not_blocked(_missing_once()).with_label("on_missing_only")


def per_entity_on_changed_inputs(ignore: tuple[str, ...] = (), *,
                                 existing_only: bool = False,
                                 first_when_added: bool = False) -> dg.AutomationCondition:
    """For entity_forecast and entity_backfill: the partitions whose inputs' data versions
    changed since they were last handled (an unpartitioned input maps to every partition: a
    new calendar or new hours request every entity, in one range run since the set is the
    whole key range). No missing-trigger: an entity's first forecast comes with its first
    model in the retrain run, and a partition that yields no materialization (no data) would
    otherwise be requested on every tick. `ignore`: upstreams whose changes another owner
    follows. `existing_only`: a change counts only for partitions already materialized (the
    forecasts: on a fresh home the first builds of the shared inputs would otherwise latch a
    request for every entity that the retrain run's own forecasts already answer).
    `first_when_added`: a partition that is missing when it first appears is requested once,
    as soon as its inputs are there (the backfill: on a fresh home the raw-files sensor adds the
    entity partitions a tick after the facts changed, so no data-version change is ever seen by
    them; measured by bench/automation_cost.py). Once, not "while missing": a partition whose
    run writes nothing (no facts) stays missing and must not be asked again on every tick."""
    # a parent updated by a run that also planned this asset (the retrain run forecasting what
    # it trained) is not a trigger: that run handles it (as in eager()'s any_deps_updated)
    changed = AC.any_deps_match(AC.data_version_changed() & ~AC.executed_with_root_target())
    if ignore:
        changed = changed.ignore(dg.AssetSelection.assets(*ignore))
    changed = changed.with_label("any_dep_data_version_changed")
    if existing_only:
        changed = changed & ~AC.missing()
    if first_when_added:
        changed = changed | AC.missing().newly_true().with_label("added, missing")
    return _not_blocked(changed.since_last_handled()).with_label("per_entity_on_changed_inputs")


def follow_curves(cron: str, cron_tz: str) -> dg.AutomationCondition:
    """For the WTI: recomputed after any forecast or backfill file changed (those assets
    materialize only entities whose file was rewritten), once no curve step is in progress; the
    daily cron stays as a backstop (it also picks up a changed dim_entity)."""
    curves = AC.any_deps_match(AC.newly_updated()).ignore(
        dg.AssetSelection.assets("dim_entity")).with_label("a curve file changed")
    # Latched from a curve write until the WTI is next REQUESTED, not until it next
    # materializes (since_last_handled): a backfill that lands while a WTI run is going (it
    # read the curves before) must still be followed. since_last_handled's reset is an OR, which
    # carries no timestamps, so when the WTI's own materialization and that curve write reach
    # the same tick the reset wins and the write is lost (the daemon test saw it on
    # PostgreSQL). newly_requested alone carries its tick's time: a write after the request
    # wins. The cost: after a CLI run that wrote curves and the WTI, the daemon runs the WTI
    # once more, a no-op (it recomputes only park days whose inputs changed).
    follow = (curves.since(AC.newly_requested()) & ~AC.any_deps_in_progress()
              & ~AC.in_progress() & AC.all_deps_blocking_checks_passed())
    return (follow | AC.on_cron(cron, cron_tz)).with_label("follow_curves")

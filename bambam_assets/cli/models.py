"""`bambam models`: an entity's model versions, rollback, and each entity's latest retrain
evaluation (stale or fresh, and why)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pandas as pd

COLUMNS = ("entity_code", "tier", "stale", "new_targets", "age_hours", "max_age_hours",
           "current_version", "code_version", "params_hash", "summary", "action", "evaluated_at")


def format_status(evaluation: pd.DataFrame) -> str:
    """A fixed-width table, one line per entity (tier order when `tier` is present)."""
    if evaluation.empty:
        return "no evaluation recorded yet"
    shown = evaluation.loc[:, [c for c in COLUMNS if c in evaluation.columns]].copy()
    shown["stale"] = shown["stale"].map({True: "STALE", False: "fresh"})
    if "evaluated_at" in shown:
        shown["evaluated_at"] = pd.to_datetime(shown["evaluated_at"], utc=True).dt.strftime(
            "%Y-%m-%d %H:%M")
    # object first: a nullable integer column (Int32, e.g. current_version of an entity never
    # trained) refuses a "-" fill
    shown = shown.astype(object)
    return shown.where(shown.notna(), "-").to_string(index=False)


def _unknown_entity(models_root, entity: str) -> str:
    """One line: the entity has no model, and which entities have one."""
    known = sorted(p.parent.name for p in models_root.glob("*/CURRENT"))
    shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
    return (f"no model versions for {entity}: entities with a model: {shown}" if known else
            f"no model versions for {entity}: no entity has a model yet (run `bambam run`)")


@click.group("models")
def models() -> None:
    """Model versions: list, roll back, staleness status."""


@models.command("list")
@click.argument("entity")
def models_list(entity: str) -> None:
    """List the kept versions of ENTITY's model (newest first; * marks the current one)."""
    from bambam_assets.lib.core import settings
    from bambam_assets.lib.models import registry

    versions = registry.list_versions(settings.home_paths().models, entity.upper())
    if not versions:
        raise click.ClickException(_unknown_entity(settings.home_paths().models, entity.upper()))
    click.echo(f"{'':1} {'version':>7}  {'trained_at':25} {'kind':15} "
               f"{'holdout_mae':>11}  decision")
    for v in sorted(versions, key=lambda v: v["version"], reverse=True):
        mae = v.get("holdout_mae")
        click.echo(
            f"{'*' if v.get('current') else ' '} {v['version']:>7}  {str(v.get('trained_at')):25} "
            f"{str(v.get('kind')):15} {mae if mae is None else f'{mae:.2f}':>11}  "
            f"{v.get('decision')}"
        )


@models.command("rollback")
@click.argument("entity")
@click.option("--version", type=int, default=None, help="Kept version to make current "
              "(default: the one before the current).")
def models_rollback(entity: str, version: int | None) -> None:
    """Make an earlier kept version of ENTITY's model current."""
    from bambam_assets.lib.core import settings
    from bambam_assets.lib.core import warehouse as wh
    from bambam_assets.lib.core.paths import HomePaths
    from bambam_assets.lib.models import registry, registry_table

    home = settings.home()
    if not registry.kept_versions(HomePaths(home).models, entity.upper()):
        # checked first: the registry's lock would create a folder for a mistyped entity
        raise click.ClickException(_unknown_entity(HomePaths(home).models, entity.upper()))
    try:
        new = registry.rollback(HomePaths(home).models, entity.upper(), version)
    except registry.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    if wh.warehouse_path(home).exists():
        with wh.writer(home) as conn:
            registry_table.sync_current_flags(conn, HomePaths(home).models, [entity.upper()])
    click.echo(f"{entity.upper()}: version {new} is now current")


@models.command("status")
@click.option("--live", is_flag=True,
              help="Evaluate the rule now (read-only) instead of showing the recorded evaluation.")
def status(live: bool) -> None:
    """Print each entity's latest retrain evaluation: stale/fresh, reasons, new targets, age,
    model and code versions (table retrain_evaluations, written by every entity_model run)."""
    from bambam_assets.lib.core import settings
    from bambam_assets.lib.core import warehouse as wh
    from bambam_assets.lib.models import batch as tb
    from bambam_assets.lib.models import staleness

    home = settings.home()
    if not wh.warehouse_path(home).exists():
        raise click.ClickException(f"no warehouse under {home}: run `bambam run` first")
    with wh.reader(home) as conn:
        if live:
            evaluation = staleness.evaluate_warehouse(
                conn, now=datetime.now(UTC), as_of=settings.as_of(),
                code_version=tb.TRAINING_CODE_VERSION, params_hash=tb.params_hash(),
                config=staleness.StalenessConfig.from_env())
        else:
            evaluation = staleness.read_evaluations(conn)
    click.echo(format_status(evaluation))
    if not evaluation.empty:
        n_stale = int(evaluation["stale"].sum())
        click.echo(f"\n{n_stale} of {len(evaluation)} entities stale"
                   + (" (live)" if live else " (as recorded by the last training run)"))

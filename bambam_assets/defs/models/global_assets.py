"""global_model: the shared model over every entity's target rows (cold start, issue 14)."""

import os

import dagster as dg

from bambam_assets.defs.conditions import on_missing_only
from bambam_assets.defs.groups import group_of
from bambam_assets.defs.resources import RunSettingsResource, WarehouseResource
from bambam_assets.lib.models import global_model, worker_pool


class GlobalModelConfig(dg.Config):
    """force: train a new version even when the retraining rule says it is not due."""

    force: bool = False


@dg.asset(
    name="global_model",
    group_name=group_of("global_model"),
    code_version=f"{global_model.GLOBAL_CODE_VERSION}-{global_model.params_hash()}",
    deps=["fct_wait_times", "entity_index", "dim_entity", "dim_calendar", "dim_season",
          "dim_park_hours"],
    # built once by automation (a fresh home); its own rule retrains it in the daily run
    automation_condition=on_missing_only(),
    description="One shared XGBoost over a bounded, recency-weighted sample of every entity's "
    "target rows (features plus park and ride attributes), versioned and promotion-guarded; "
    "retrained weekly or when target rows grew 10 %. Young entities' forecasts blend toward it.",
)
def global_model_asset(context: dg.AssetExecutionContext, config: GlobalModelConfig,
                       warehouse: WarehouseResource,
                       run_settings: RunSettingsResource) -> dg.MaterializeResult:
    as_of = run_settings.as_of_date()
    home = warehouse.home_path()
    with warehouse.reader(heavy=True) as conn:  # closed before training
        read = global_model.read_if_due(conn, home, as_of, force=config.force)
    context.log.info(f"global model as of {as_of}: {read.reason}")
    nthread = worker_pool.nthread_per_worker(os.cpu_count() or 1, 1)  # one step, every core
    summary = global_model.train_and_save(read, home, nthread=nthread)
    return dg.MaterializeResult(metadata={
        k: v for k, v in summary.items() if v is not None and not isinstance(v, dict)})

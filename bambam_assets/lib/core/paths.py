"""The layout of a Bambam home (BAMBAM_HOME), spelled once.

Everything a run writes lives under the home folder::

    warehouse.duckdb            the DuckDB warehouse
    warehouse.write.lock        the cross-process writer lock beside it
    training.lock               one entity_model training at a time (lib/models/training_lock.py),
    training.lock.holder        with the run id and pid of the step holding it
    models/{ENTITY}/v{NNNN}/    model versions (lib/models/registry.py)
    forecasts/entity_code={ENTITY}/forecast.parquet
    backfill/entity_code={ENTITY}/backfill.parquet
    status/progress.json        progress of long steps (lib/core/progress.py)
    status/fetch/{PARK}.json    queue-times fetch status, with its .lock and park-hours cache
    status/alerts.jsonl         alerts (failed runs, freshness failures), one JSON line each
    dagster/                    the Dagster instance (dagster.yaml, run storage)
    cache/raw/                  parsed copies of raw files (ingest)
    raw/                        the default raw source (when BAMBAM_RAW is unset)
    backtests/                  `bambam backtest` output (default)
    published/{PARK}/curves/{YYYY-MM}.parquet   the forecast API's park-month curves
    published/{PARK}/wti/{YYYY-MM}.parquet      the park's WTI per slot, per month
    published/{PARK}/days.parquet               one row per park day: daily WTI, crowd level
    published/{PARK}/crowd_scale.json           the park's frozen crowd-level scale
    published/entities.parquet                  entity names and parks (from dim_entity)

Only names live here: nothing is created and nothing is read from the environment (the home
itself comes from lib/core/settings.py or from the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WAREHOUSE_FILE = "warehouse.duckdb"
WAREHOUSE_LOCK_FILE = "warehouse.write.lock"
TRAINING_LOCK_FILE = "training.lock"
MODELS_DIR = "models"
FORECASTS_DIR, BACKFILL_DIR = "forecasts", "backfill"  # the two kinds of curve files
FORECAST_FILE, BACKFILL_FILE = "forecast.parquet", "backfill.parquet"
CURVE_FILE = {FORECASTS_DIR: FORECAST_FILE, BACKFILL_DIR: BACKFILL_FILE}
STATUS_DIR = "status"
PROGRESS_FILE = "progress.json"
ALERTS_FILE = "alerts.jsonl"
FETCH_DIR = "fetch"
LOCK_FILE = ".lock"
PARK_HOURS_CACHE_FILE = ".park_hours_cache.parquet"  # hidden: not a per-park status file
DAGSTER_DIR = "dagster"
DAGSTER_YAML = "dagster.yaml"
CACHE_DIR = "cache"
RAW_DIR = "raw"
BACKTESTS_DIR = "backtests"
PUBLISHED_DIR = "published"  # lib/forecasts/published.py: what the forecast API serves


@dataclass(frozen=True)
class HomePaths:
    """The paths of one home: `HomePaths(home).warehouse`, `.models`, `.progress`, ..."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def warehouse(self) -> Path:
        return self.root / WAREHOUSE_FILE

    @property
    def warehouse_lock(self) -> Path:
        return self.root / WAREHOUSE_LOCK_FILE

    @property
    def training_lock(self) -> Path:
        return self.root / TRAINING_LOCK_FILE

    @property
    def models(self) -> Path:
        return self.root / MODELS_DIR

    @property
    def forecasts(self) -> Path:
        return self.root / FORECASTS_DIR

    @property
    def backfill(self) -> Path:
        return self.root / BACKFILL_DIR

    def curves(self, kind: str) -> Path:
        """The folder of one kind of curve files (FORECASTS_DIR or BACKFILL_DIR)."""
        if kind not in CURVE_FILE:
            raise ValueError(f"unknown curve kind {kind!r}; expected one of {sorted(CURVE_FILE)}")
        return self.root / kind

    def curve_file(self, kind: str, entity: str) -> Path:
        """An entity's curve file (hive-partitioned by entity_code)."""
        return self.curves(kind) / f"entity_code={entity}" / CURVE_FILE[kind]

    def curve_glob(self, kind: str) -> str:
        """The glob matching every entity's curve file of one kind."""
        return str(self.curves(kind) / "entity_code=*" / CURVE_FILE[kind])

    @property
    def status(self) -> Path:
        return self.root / STATUS_DIR

    @property
    def progress(self) -> Path:
        return self.status / PROGRESS_FILE

    @property
    def alerts(self) -> Path:
        return self.status / ALERTS_FILE

    @property
    def fetch_status(self) -> Path:
        return self.status / FETCH_DIR

    @property
    def fetch_lock(self) -> Path:
        return self.fetch_status / LOCK_FILE

    @property
    def park_hours_cache(self) -> Path:
        return self.fetch_status / PARK_HOURS_CACHE_FILE

    @property
    def dagster(self) -> Path:
        return self.root / DAGSTER_DIR

    @property
    def dagster_yaml(self) -> Path:
        return self.dagster / DAGSTER_YAML

    @property
    def cache(self) -> Path:
        return self.root / CACHE_DIR

    @property
    def raw_cache(self) -> Path:
        return self.cache / RAW_DIR

    @property
    def raw(self) -> Path:
        return self.root / RAW_DIR

    @property
    def backtests(self) -> Path:
        return self.root / BACKTESTS_DIR

    @property
    def published(self) -> Path:
        return self.root / PUBLISHED_DIR

    def published_park(self, park: str) -> Path:
        """The folder of one park's published forecast files."""
        return self.published / park

"""Resources: the warehouse, the raw source and the run's settings; the run knobs as tags.

Every field defaults to None, meaning "read the setting when the run uses it" (BAMBAM_HOME,
BAMBAM_RAW, BAMBAM_AS_OF, BAMBAM_FORECAST_DAYS, BAMBAM_BACKFILL_DAYS through
lib/core/settings.py), so nothing is read at import; tests and `runner.run_pipeline` pass
explicit values (as resource config, shown with the run in the Dagster UI).
"""


from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from bambam_assets.lib.core import settings, warehouse
from bambam_assets.lib.forecasts.forecast import DEFAULT_HORIZON_DAYS
from bambam_assets.lib.ingest.raw_source import RawSource, open_raw_source

# Tags of every run the project builds (runner, sensors, schedules): the knobs that change what
# it computes, as they were when the run was requested.
AS_OF_TAG = "bambam/as_of"
FORECAST_DAYS_TAG = "bambam/forecast_days"
BACKFILL_DAYS_TAG = "bambam/backfill_days"
TRAIN_MODE_TAG = "bambam/train_mode"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse under BAMBAM_HOME; one writer at a time across processes."""

    home: str | None = None

    def home_path(self) -> Path:
        return Path(self.home).resolve() if self.home else settings.home()

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.writer(self.home_path()) as conn:
            yield conn

    @contextmanager
    def reader(self, heavy: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-only; `heavy`: a writer's DuckDB memory limit (see warehouse.reader)."""
        with warehouse.reader(self.home_path(), heavy=heavy) as conn:
            yield conn


class RawSourceResource(dg.ConfigurableResource):
    """The raw files: a local folder or s3://bucket/prefix (AWS_ENDPOINT_URL honoured)."""

    uri: str | None = None
    endpoint_url: str | None = None

    def resolved_uri(self) -> str:
        return self.uri or settings.raw_uri()

    def open(self) -> RawSource:
        return open_raw_source(self.resolved_uri(), endpoint_url=self.endpoint_url)


class RunSettingsResource(dg.ConfigurableResource):
    """The date a run treats as today (BAMBAM_AS_OF, default the real date) and the horizons of
    its forecast (BAMBAM_FORECAST_DAYS, default 730) and backfill (BAMBAM_BACKFILL_DAYS, default
    every day with facts). An asset's own config (horizon_days, window_days) wins over these."""

    as_of: str | None = None
    forecast_days: int | None = None
    backfill_days: int | None = None

    def as_of_date(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of else settings.as_of()

    def forecast_horizon_days(self) -> int:
        return self.forecast_days or settings.forecast_days() or DEFAULT_HORIZON_DAYS

    def backfill_window_days(self) -> int | None:
        """Past days to backfill; None: every day with facts."""
        return self.backfill_days or settings.backfill_days()


@dataclass(frozen=True)
class RunKnobs:
    """What changes what a run computes, fixed when the run is requested."""

    as_of: date
    forecast_days: int | None = None  # None: 730
    backfill_days: int | None = None  # None: every day with facts
    train_mode: str = settings.DEFAULT_TRAIN_MODE

    @classmethod
    def from_settings(cls, as_of: date | None = None, forecast_days: int | None = None,
                      backfill_days: int | None = None,
                      train_mode: str | None = None) -> "RunKnobs":
        """The given values, the settings (read now) for the others."""
        return cls(as_of=as_of or settings.as_of(),
                   forecast_days=forecast_days or settings.forecast_days(),
                   backfill_days=backfill_days or settings.backfill_days(),
                   train_mode=train_mode or settings.train_mode())

    def tags(self, train_mode: str | None = None) -> dict[str, str]:
        """The run tags (`train_mode`: the mode of this run's entity_model config, if any)."""
        return {AS_OF_TAG: self.as_of.isoformat(),
                FORECAST_DAYS_TAG: str(self.forecast_days or DEFAULT_HORIZON_DAYS),
                BACKFILL_DAYS_TAG: str(self.backfill_days) if self.backfill_days else "all",
                TRAIN_MODE_TAG: train_mode or self.train_mode}

    def run_settings_config(self) -> dict:
        """RunSettingsResource config pinning these values in the run."""
        config: dict = {"as_of": self.as_of.isoformat()}
        if self.forecast_days:
            config["forecast_days"] = self.forecast_days
        if self.backfill_days:
            config["backfill_days"] = self.backfill_days
        return config


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(),
        "raw_source": RawSourceResource(),
        "run_settings": RunSettingsResource(),
    }

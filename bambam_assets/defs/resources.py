"""Resources: the warehouse, the raw source and the run's settings.

Every field defaults to None, meaning "read the environment when the run uses it" (BAMBAM_HOME,
BAMBAM_RAW, BAMBAM_AS_OF), so nothing is read at import and tests pass explicit values.
"""


from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from bambam_assets import settings
from bambam_assets.lib.core import warehouse
from bambam_assets.lib.ingest.raw_source import RawSource, open_raw_source


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
    """The date a run treats as today (BAMBAM_AS_OF, default the real date)."""

    as_of: str | None = None

    def as_of_date(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of else settings.as_of()


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(),
        "raw_source": RawSourceResource(),
        "run_settings": RunSettingsResource(),
    }

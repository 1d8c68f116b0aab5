"""Every test in this folder is marked `e2e` (whole pipeline, daemon, webserver, browser: slow),
so `pytest -m "not e2e"` runs the fast suite."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


FORECAST_AS_OF = "2024-04-30"
FORECAST_DAYS = "60"  # a short horizon keeps the run fast; the layout does not depend on it


def run_demo_pipeline(home: Path, as_of: str = FORECAST_AS_OF) -> None:
    """The real pipeline over generated demo data (MK and DL, 2 entities each, 2024-01..04)
    as of `as_of`, in-process (the raw files are generated once per home)."""
    from datetime import date

    from bambam_assets.instance import local_instance
    from bambam_assets.lib.demo import generate as demo_data
    from bambam_assets.runner import run_pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAMBAM_HOME", str(home))
        mp.delenv("BAMBAM_RAW", raising=False)
        mp.setenv("BAMBAM_AS_OF", as_of)
        mp.setenv("BAMBAM_FORECAST_DAYS", FORECAST_DAYS)
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        if not (home / "raw").exists():
            demo_data.generate(home / "raw", ["MK", "DL"], 2, date(2024, 1, 1),
                               date(2024, 4, 30), seed=5)
        summary = run_pipeline(local_instance(home), log=lambda _m: None)
        assert summary.success, summary


@pytest.fixture(scope="session")
def forecast_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home the pipeline built, with its published forecast files (shared by the forecast
    API and forecast pages tests; they only read it)."""
    home = tmp_path_factory.mktemp("forecast") / "home"
    run_demo_pipeline(home)
    return home

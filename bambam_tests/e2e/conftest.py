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


@pytest.fixture(scope="session")
def forecast_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home the pipeline built, with its published forecast files (shared by the forecast
    API and forecast pages tests; they only read it)."""
    from bambam_tests.builders import run_demo_pipeline

    home = tmp_path_factory.mktemp("forecast") / "home"
    run_demo_pipeline(home)
    return home

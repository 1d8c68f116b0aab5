"""Shared fixtures: an isolated BAMBAM_HOME per test, the local S3 server and PostgreSQL
(`pg_server`, `pg_database`: bambam_tests/pg_server.py).

Fixtures only; helpers that build data live in bambam_tests/builders.py."""

from __future__ import annotations

import os
from pathlib import Path

# XGBoost's OpenMP threads spin while waiting; when the 2 cores are shared with another process
# that spinning slowed in-process training ~100x (measured). Sleep instead, in tests only.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

pytest_plugins = ["bambam_tests.s3_server", "bambam_tests.pg_server"]


@pytest.fixture
def bambam_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BAMBAM_HOME (with raw/ inside) and DAGSTER_HOME, set in the environment."""
    home = tmp_path / "home"
    (home / "raw").mkdir(parents=True)
    monkeypatch.setenv("BAMBAM_HOME", str(home))
    monkeypatch.setenv("BAMBAM_RAW", str(home / "raw"))
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-03-31")
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    # a developer's production settings must not reach a test's instance or a real webhook
    monkeypatch.delenv("BAMBAM_DAGSTER_PG_URL", raising=False)
    monkeypatch.delenv("BAMBAM_ALERT_WEBHOOK", raising=False)
    (home / "dagster").mkdir()
    return home


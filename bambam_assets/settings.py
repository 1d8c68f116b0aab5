"""Settings read from the environment at run time (never at import time)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path


def home() -> Path:
    """BAMBAM_HOME: the folder holding the warehouse, models, forecasts and Dagster instance."""
    return Path(os.environ.get("BAMBAM_HOME", "./.bambam")).resolve()


def raw_uri() -> str:
    """BAMBAM_RAW: the raw source, a local folder or s3://bucket/prefix."""
    return os.environ.get("BAMBAM_RAW") or str(home() / "raw")


def as_of() -> date:
    """BAMBAM_AS_OF: the date a run treats as today (default: the real date)."""
    value = os.environ.get("BAMBAM_AS_OF")
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"BAMBAM_AS_OF must be YYYY-MM-DD, got {value!r}") from exc


def dagster_home() -> Path:
    return home() / "dagster"

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


TRAIN_MODES = ("full", "auto", "incremental")


def train_mode() -> str:
    """BAMBAM_TRAIN_MODE: how scheduled retrains train a due entity (lib/incremental.py).

    "auto" (default): continue boosting the current model on the rows since its data end when it
    is allowed (same code and parameters, a full retrain within the last week, few new targets),
    else retrain in full; "full": always retrain from scratch; "incremental": like auto without
    the new-target cap.
    """
    value = os.environ.get("BAMBAM_TRAIN_MODE", "auto").strip().lower()
    if value not in TRAIN_MODES:
        raise ValueError(f"BAMBAM_TRAIN_MODE must be one of {TRAIN_MODES}, got {value!r}")
    return value


DASH_USER, DASH_PASSWORD = "BAMBAM_DASH_USER", "BAMBAM_DASH_PASSWORD"


def basic_auth() -> tuple[str, str] | None:
    """BAMBAM_DASH_USER and BAMBAM_DASH_PASSWORD: Basic Auth of the dashboard and the live API,
    on only when both are non-empty."""
    user = os.environ.get(DASH_USER, "")
    password = os.environ.get(DASH_PASSWORD, "")
    return (user, password) if user and password else None

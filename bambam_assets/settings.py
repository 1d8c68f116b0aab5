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


def max_failed_share() -> float:
    """BAMBAM_MAX_FAILED_SHARE: the share of a run's entities (0 to 1, default 0.2) that may fail
    while the run still succeeds; beyond it the per-entity step fails after the other entities
    landed (lib/core/failures.py). Read when called."""
    name, default = "BAMBAM_MAX_FAILED_SHARE", 0.2
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 1.0:  # also refuses nan
        raise ValueError(f"{name} must be a number from 0 to 1 (a share of the entities, "
                         f"e.g. 0.2), got {value!r}")
    return share

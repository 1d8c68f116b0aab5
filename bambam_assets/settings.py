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


# ---- DuckDB limits (lib/core/warehouse.py applies them to every connection) ---------------------

DUCKDB_MEMORY_LIMIT = "BAMBAM_DUCKDB_MEMORY_LIMIT"
DUCKDB_TEMP_LIMIT = "BAMBAM_DUCKDB_TEMP_LIMIT"
DUCKDB_THREADS = "BAMBAM_DUCKDB_THREADS"
# DuckDB's own units: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(name: str, value: str) -> int:
    """Bytes of a size such as "4GB", "512MiB", "1.5 GB" or "1073741824" (a byte count)."""
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    unit = text[len(number):]
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except (KeyError, ValueError, OverflowError):
        size = 0
    if size <= 0:
        raise ValueError(f"{name} must be a positive size such as 4GB, 512MB or 1GiB "
                         f"(or a byte count), got {value!r}")
    return size


def _size_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return parse_size(name, value) if value else None


def duckdb_memory_limit() -> int | None:
    """BAMBAM_DUCKDB_MEMORY_LIMIT: bytes a writer's DuckDB may hold in memory before it spills
    (None when unset: the warehouse default, a quarter of the machine's RAM)."""
    return _size_env(DUCKDB_MEMORY_LIMIT)


def duckdb_temp_limit() -> int | None:
    """BAMBAM_DUCKDB_TEMP_LIMIT: bytes one DuckDB may spill to BAMBAM_HOME/duckdb_tmp (None when
    unset: the warehouse default, 4 GB)."""
    return _size_env(DUCKDB_TEMP_LIMIT)


def duckdb_threads() -> int | None:
    """BAMBAM_DUCKDB_THREADS: DuckDB threads per connection (None when unset: the CPUs)."""
    value = os.environ.get(DUCKDB_THREADS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{DUCKDB_THREADS} must be a positive integer, got {value!r}")
    return int(value)

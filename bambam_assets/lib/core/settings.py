"""Every environment variable Bambam reads, in one place.

Each setting is a typed function that reads its variable when called (never at import), so a
test or a long-lived process sees the current value. A value the setting cannot take raises
`SettingError` (a ValueError) with one line naming the variable, the bad value and what is
expected. An empty variable counts as unset. Every function takes an optional `env` mapping in
place of `os.environ` (tests, or a caller holding its own environment).

No other module of bambam_assets, bench or scripts reads the environment
(bambam_tests/lib/core/test_settings.py checks that, and that README.md documents every
BAMBAM_* name read here). Pure: no Dagster import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from bambam_assets.lib.core.parks import (
    PARKS,
    QUEUE_TIMES_PARK_ID,
    TIER_RANK,
    earliest_park_date,
    park_date_in,
)
from bambam_assets.lib.core.paths import HomePaths

HOME, RAW, AS_OF = "BAMBAM_HOME", "BAMBAM_RAW", "BAMBAM_AS_OF"
FORECAST_DAYS, BACKFILL_DAYS = "BAMBAM_FORECAST_DAYS", "BAMBAM_BACKFILL_DAYS"
TRAIN_MODE = "BAMBAM_TRAIN_MODE"
RETRAIN_MIN_NEW_TARGETS = "BAMBAM_RETRAIN_MIN_NEW_TARGETS"
RETRAIN_MAX_AGE_HOURS = "BAMBAM_RETRAIN_MAX_AGE_HOURS"
DASH_USER, DASH_PASSWORD = "BAMBAM_DASH_USER", "BAMBAM_DASH_PASSWORD"
STALE_DAYS = "BAMBAM_STALE_DAYS"
INGEST_MAX_ATTEMPTS = "BAMBAM_INGEST_MAX_ATTEMPTS"
INGEST_SETTLE_S = "BAMBAM_INGEST_SETTLE_S"
LOG_LEVEL = "BAMBAM_LOG_LEVEL"
QUEUE_TIMES_URL = "BAMBAM_QUEUE_TIMES_URL"
QUEUE_TIMES_PARKS = "BAMBAM_QUEUE_TIMES_PARKS"
QUEUE_TIMES_INTERVAL_S = "BAMBAM_QUEUE_TIMES_INTERVAL_S"
SENSOR_INTERVAL_S = "BAMBAM_SENSOR_INTERVAL_S"
# boto3's own variables, read here too so that the S3 raw source can name the endpoint it uses
AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 = "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"
AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"

DEFAULT_HOME = "./.bambam"
TRAIN_MODES = ("full", "auto", "incremental")
DEFAULT_TRAIN_MODE = "auto"
DEFAULT_STALE_DAYS = 2
DEFAULT_INGEST_MAX_ATTEMPTS = 3
DEFAULT_INGEST_SETTLE_S = 3600
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "WARNING"
DEFAULT_QUEUE_TIMES_INTERVAL_S = 300


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def _get(name: str, env: Mapping[str, str] | None, strip: bool = True) -> str:
    value = (os.environ if env is None else env).get(name, "")
    return value.strip() if strip else value


def _bad(name: str, value: str, expected: str) -> SettingError:
    return SettingError(f"{name} must be {expected}, got {value!r}")


def _int(name: str, value: str, minimum: int) -> int:
    expected = f"a whole number >= {minimum}"
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, expected) from None
    if number < minimum:
        raise _bad(name, value, expected)
    return number


# ---- where: the home folder and the raw source ------------------------------------------------

def home(env: Mapping[str, str] | None = None) -> Path:
    """BAMBAM_HOME: the folder holding the warehouse, models, forecasts and Dagster instance
    (lib/core/paths.py), default ./.bambam, resolved to an absolute path."""
    return Path(_get(HOME, env) or DEFAULT_HOME).resolve()


def home_paths(env: Mapping[str, str] | None = None) -> HomePaths:
    """The paths under BAMBAM_HOME."""
    return HomePaths(home(env))


def dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """The Dagster instance folder: $BAMBAM_HOME/dagster."""
    return home_paths(env).dagster


def raw_uri(env: Mapping[str, str] | None = None) -> str:
    """BAMBAM_RAW: the raw source, a local folder or s3://bucket/prefix (default
    $BAMBAM_HOME/raw)."""
    return _get(RAW, env) or str(home_paths(env).raw)


def aws_endpoint_url(env: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint boto3 would use (None: AWS): AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL,
    unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true."""
    if _get(AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, env).lower() == "true":
        return None
    return _get(AWS_ENDPOINT_URL_S3, env) or _get(AWS_ENDPOINT_URL, env) or None


# ---- what a run computes -----------------------------------------------------------------------

def as_of(env: Mapping[str, str] | None = None, now: datetime | None = None,
          time_zone: str | None = None) -> date:
    """BAMBAM_AS_OF: the date a run treats as today (YYYY-MM-DD). Unset: the park date (local
    time, 6 AM rule) at `now` (default: the real clock) of the property whose day is furthest
    behind, so every park's running day counts as today or later, never as past, whatever the
    machine's own time zone (lib/core/parks.py earliest_park_date). With `time_zone` (a daily
    schedule of one time-zone group): the park date on that clock."""
    value = _get(AS_OF, env)
    if not value:
        now = now or datetime.now(UTC)
        return park_date_in(time_zone, now) if time_zone else earliest_park_date(now)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(AS_OF, value, "a date YYYY-MM-DD") from None


def forecast_days(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_FORECAST_DAYS: days after the as-of date to forecast (None: the default, 730)."""
    value = _get(FORECAST_DAYS, env)
    return _int(FORECAST_DAYS, value, 1) if value else None


def backfill_days(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_BACKFILL_DAYS: past days to backfill (None: every day with facts)."""
    value = _get(BACKFILL_DAYS, env)
    return _int(BACKFILL_DAYS, value, 1) if value else None


def train_mode(env: Mapping[str, str] | None = None) -> str:
    """BAMBAM_TRAIN_MODE: how scheduled retrains train a due entity (lib/models/incremental.py).

    "auto" (default): continue boosting the current model on the rows since its data end when it
    is allowed (same code and parameters, a full retrain within the last week, few new targets),
    else retrain in full; "full": always retrain from scratch; "incremental": like auto without
    the new-target cap.
    """
    value = _get(TRAIN_MODE, env).lower() or DEFAULT_TRAIN_MODE
    if value not in TRAIN_MODES:
        raise _bad(TRAIN_MODE, value, f"one of {', '.join(TRAIN_MODES)}")
    return value


def retrain_min_new_targets(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_RETRAIN_MIN_NEW_TARGETS: new target observations that make an entity stale
    (None: the rule's default, 100)."""
    value = _get(RETRAIN_MIN_NEW_TARGETS, env)
    return _int(RETRAIN_MIN_NEW_TARGETS, value, 0) if value else None


def retrain_max_age_hours(env: Mapping[str, str] | None = None) -> dict[str, float]:
    """BAMBAM_RETRAIN_MAX_AGE_HOURS: per-tier maximum model age overrides, e.g.
    "critical=24,high=72" ({}: the rule's defaults)."""
    value = _get(RETRAIN_MAX_AGE_HOURS, env)
    expected = f"comma-separated tier=hours items (tiers: {', '.join(TIER_RANK)}; hours > 0)"
    ages: dict[str, float] = {}
    for part in value.split(",") if value else []:
        tier, _, hours = (s.strip() for s in part.partition("="))
        try:
            number = float(hours)
        except ValueError:
            raise _bad(RETRAIN_MAX_AGE_HOURS, value, expected) from None
        if tier not in TIER_RANK or not number > 0:
            raise _bad(RETRAIN_MAX_AGE_HOURS, value, expected)
        ages[tier] = number
    return ages


def ingest_max_attempts(env: Mapping[str, str] | None = None) -> int:
    """BAMBAM_INGEST_MAX_ATTEMPTS: failed reads of one version of a raw file before ingest
    quarantines it (skipped until it changes or `bambam ingest release`), default 3."""
    value = _get(INGEST_MAX_ATTEMPTS, env)
    return _int(INGEST_MAX_ATTEMPTS, value, 1) if value else DEFAULT_INGEST_MAX_ATTEMPTS


def ingest_settle_seconds(env: Mapping[str, str] | None = None) -> int:
    """BAMBAM_INGEST_SETTLE_S: how long a wait-time file whose last line has no line break
    (possibly an upload still in progress) must stay as it is before that line is landed as
    it is, default 3600; until then the line is held back (lib/ingest/ingest.py)."""
    value = _get(INGEST_SETTLE_S, env)
    return _int(INGEST_SETTLE_S, value, 0) if value else DEFAULT_INGEST_SETTLE_S


# ---- servers, dashboard, logging ----------------------------------------------------------------

def basic_auth(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """BAMBAM_DASH_USER and BAMBAM_DASH_PASSWORD: Basic Auth of the dashboard and the live API,
    on only when both are non-empty (taken as they are: no stripping)."""
    user = _get(DASH_USER, env, strip=False)
    password = _get(DASH_PASSWORD, env, strip=False)
    return (user, password) if user and password else None


def stale_days(env: Mapping[str, str] | None = None) -> int:
    """BAMBAM_STALE_DAYS: days without observations before the dashboard calls an operating
    entity stale (default 2)."""
    value = _get(STALE_DAYS, env)
    return _int(STALE_DAYS, value, 0) if value else DEFAULT_STALE_DAYS


def log_level(env: Mapping[str, str] | None = None) -> str:
    """BAMBAM_LOG_LEVEL: the Dagster console log level of `bambam run` (default WARNING)."""
    value = _get(LOG_LEVEL, env).upper() or DEFAULT_LOG_LEVEL
    if value not in LOG_LEVELS:
        raise _bad(LOG_LEVEL, value, f"one of {', '.join(LOG_LEVELS)}")
    return value


# ---- the queue-times poll ------------------------------------------------------------------------

def queue_times_url(env: Mapping[str, str] | None = None) -> str | None:
    """BAMBAM_QUEUE_TIMES_URL: the queue-times API base URL (None: https://queue-times.com)."""
    value = _get(QUEUE_TIMES_URL, env)
    if value and not value.startswith(("http://", "https://")):
        raise _bad(QUEUE_TIMES_URL, value, "an http:// or https:// URL")
    return value or None


def queue_times_parks(env: Mapping[str, str] | None = None) -> list[str]:
    """BAMBAM_QUEUE_TIMES_PARKS: comma-separated park codes to poll (default: every park with a
    queue-times id). A known park without a queue-times id is kept, so that its error shows in
    fetch_status; a code that is no park is an error."""
    value = _get(QUEUE_TIMES_PARKS, env)
    parks = [p.strip().upper() for p in value.split(",") if p.strip()]
    unknown = [p for p in parks if p not in PARKS]
    if unknown:
        raise _bad(QUEUE_TIMES_PARKS, value,
                   f"comma-separated park codes ({', '.join(PARKS)}); unknown: "
                   f"{', '.join(unknown)}")
    return parks or list(QUEUE_TIMES_PARK_ID)


def queue_times_interval_s(env: Mapping[str, str] | None = None) -> int:
    """BAMBAM_QUEUE_TIMES_INTERVAL_S: seconds between two queue-times polls (default 300; the
    sensor ticks every 60 s, so shorter intervals poll every tick)."""
    value = _get(QUEUE_TIMES_INTERVAL_S, env)
    return _int(QUEUE_TIMES_INTERVAL_S, value, 1) if value else DEFAULT_QUEUE_TIMES_INTERVAL_S


# ---- the same-day re-forecast (lib/live/same_day.py) ------------------------------------------

SAME_DAY_UPDATE = "BAMBAM_SAME_DAY_UPDATE"
SWITCH_VALUES = {"on": True, "true": True, "1": True, "yes": True,
                 "off": False, "false": False, "0": False, "no": False}
# on because it helped on the report dates of bench/same_day_backtest.py (README "Same-day
# re-forecast"); the default follows that measurement
DEFAULT_SAME_DAY_UPDATE = True


def same_day_update(env: Mapping[str, str] | None = None) -> bool:
    """BAMBAM_SAME_DAY_UPDATE: whether the live API and the dashboard update today's remaining
    forecast slots from the live POSTED readings (`on`/`off`, also true/false, 1/0, yes/no)."""
    value = _get(SAME_DAY_UPDATE, env).lower()
    if not value:
        return DEFAULT_SAME_DAY_UPDATE
    if value not in SWITCH_VALUES:
        raise _bad(SAME_DAY_UPDATE, value, "on or off")
    return SWITCH_VALUES[value]


def sensor_interval_s(default: int, env: Mapping[str, str] | None = None) -> int:
    """BAMBAM_SENSOR_INTERVAL_S: minimum seconds between two ticks of the raw-files, retrain and
    automation sensors (unset: each sensor's own default, `default`). Dagster fixes a sensor's
    interval in its definition, so this one is read when the code location loads (the daemon's
    start), not per tick."""
    value = _get(SENSOR_INTERVAL_S, env)
    return _int(SENSOR_INTERVAL_S, value, 1) if value else default


# ---- how many entity failures a run tolerates -------------------------------------------------

MAX_FAILED_SHARE = "BAMBAM_MAX_FAILED_SHARE"
DEFAULT_MAX_FAILED_SHARE = 0.2


def max_failed_share(env: Mapping[str, str] | None = None) -> float:
    """BAMBAM_MAX_FAILED_SHARE: the share of a run's entities (0 to 1, default 0.2) that may fail
    while the run still succeeds; beyond it the per-entity step fails after the other entities
    landed (lib/core/failures.py)."""
    value = _get(MAX_FAILED_SHARE, env)
    if not value:
        return DEFAULT_MAX_FAILED_SHARE
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 1.0:  # also refuses nan
        raise _bad(MAX_FAILED_SHARE, value, "a number from 0 to 1 (a share of the entities)")
    return share


# ---- test hook -----------------------------------------------------------------------------------

TEST_KILL_AFTER_MODELS = "BAMBAM_TEST_KILL_AFTER_MODELS"


def kill_after_models_hook(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_TEST_KILL_AFTER_MODELS: a test hook, never set in production: the training step
    kills its own process with SIGKILL right after saving this many models (whole number >= 1),
    so a test can crash it deterministically between two entities (lib/models/batch.py)."""
    value = _get(TEST_KILL_AFTER_MODELS, env)
    return _int(TEST_KILL_AFTER_MODELS, value, 1) if value else None


# ---- DuckDB limits (lib/core/warehouse.py applies them to every connection) -------------------

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
        raise _bad(name, value, "a positive size such as 4GB, 512MB or 1GiB (or a byte count)")
    return size


def _size(name: str, env: Mapping[str, str] | None) -> int | None:
    value = _get(name, env)
    return parse_size(name, value) if value else None


def duckdb_memory_limit(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_DUCKDB_MEMORY_LIMIT: bytes a writer's DuckDB may hold in memory before it spills
    (None when unset: the warehouse default, a quarter of the machine's RAM)."""
    return _size(DUCKDB_MEMORY_LIMIT, env)


def duckdb_temp_limit(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_DUCKDB_TEMP_LIMIT: bytes one DuckDB may spill to BAMBAM_HOME/duckdb_tmp (None when
    unset: the warehouse default, 4 GB)."""
    return _size(DUCKDB_TEMP_LIMIT, env)


def duckdb_threads(env: Mapping[str, str] | None = None) -> int | None:
    """BAMBAM_DUCKDB_THREADS: DuckDB threads per connection (None when unset: the CPUs)."""
    value = _get(DUCKDB_THREADS, env)
    return _int(DUCKDB_THREADS, value, 1) if value else None


# ---- production instance and alerts ----------------------------------------------------------

DAGSTER_PG_URL = "BAMBAM_DAGSTER_PG_URL"
ALERT_WEBHOOK = "BAMBAM_ALERT_WEBHOOK"
PG_URL_SCHEME = "postgresql+psycopg2://"


def dagster_pg_url(env: Mapping[str, str] | None = None) -> str | None:
    """BAMBAM_DAGSTER_PG_URL: a PostgreSQL URL (`postgresql+psycopg2://user:password@host:5432/db`)
    for the Dagster instance's run, event-log and schedule storage (None: SQLite under
    $BAMBAM_HOME/dagster). The driver is named because dagster-postgres speaks psycopg2, while
    SQLAlchemy 2.1 takes a bare postgresql:// for psycopg 3, whose server-side parameters
    Dagster's event log NOTIFY cannot use (measured: every run fails)."""
    value = _get(DAGSTER_PG_URL, env)
    if value and not value.startswith(PG_URL_SCHEME):
        # the host part only: the password is not for logs
        raise _bad(DAGSTER_PG_URL, value.split("@")[-1],
                   f"a {PG_URL_SCHEME}user:password@host:port/database URL")
    return value or None


def alert_webhook(env: Mapping[str, str] | None = None) -> str | None:
    """BAMBAM_ALERT_WEBHOOK: a URL the alert sensor POSTs every alert to as JSON (None: alerts
    are only logged and written to $BAMBAM_HOME/status/alerts.jsonl)."""
    value = _get(ALERT_WEBHOOK, env)
    if value and not value.startswith(("http://", "https://")):
        raise _bad(ALERT_WEBHOOK, value, "an http:// or https:// URL")
    return value or None


# Dagster's own switch, read by its event log storage each time a run is created: a range run
# records one ASSET_MATERIALIZATION_PLANNED event per asset (the partition range as a subset)
# instead of one per partition.
DAGSTER_PLANNED_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


@contextmanager
def planned_events_as_subsets() -> Iterator[None]:
    """Within the block, runs created in this process record their planned partitions as one
    event per asset (DAGSTER_PLANNED_SUBSET set to "true"); the variable is restored after."""
    before = os.environ.get(DAGSTER_PLANNED_SUBSET)
    os.environ[DAGSTER_PLANNED_SUBSET] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DAGSTER_PLANNED_SUBSET, None)
        else:
            os.environ[DAGSTER_PLANNED_SUBSET] = before

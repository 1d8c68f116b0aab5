"""Hand-made homes the benchmarks build, which tests may build too (one copy for both).

The live home: a warehouse for park MK with 30 days of POSTED and ACTUAL history of two
entities (MK1, MK2) and a few facts of TODAY (MK3 has facts but no model), dimensions, one
trained with-POSTED model per modeled entity, and the forecast files the pipeline's forecast
step writes as of TODAY (posted aggregates, then lib/forecasts/forecast.run_forecast, as
entity_forecast does). Used by bench.live_bench and the live API tests.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core import schema, warehouse
from bambam_assets.lib.forecasts import forecast, posted_aggregates
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame

TZ = "America/New_York"
TODAY = date(2024, 3, 15)
NOW = datetime(2024, 3, 15, 14, 22, tzinfo=UTC)  # 10:22 EDT
MODELED = ["MK1", "MK2"]


def local(day: str, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}").tz_localize(TZ).tz_convert(UTC)


def history() -> pd.DataFrame:
    """30 days of MK1/MK2: POSTED every 15 min 09:00-21:00, ACTUAL = 0.7 POSTED every 30 min."""
    rng = np.random.default_rng(7)
    days = pd.date_range("2024-02-14", "2024-03-14", freq="D")
    frames = []
    for k, code in enumerate(MODELED):  # two entities
        minute = np.arange(0, 12 * 60, 15)
        d, m = np.meshgrid(np.arange(len(days)), minute, indexing="ij")
        naive = days.values[d.ravel()] + pd.to_timedelta(9 * 60 + m.ravel(), "min").values
        at = pd.DatetimeIndex(naive).tz_localize(TZ).tz_convert(UTC)
        posted = np.round(20 + 10 * k + 25 * np.sin(m.ravel() / 720 * np.pi)
                          + rng.normal(0, 3, m.size))
        frames.append(pd.DataFrame({"entity_code": code, "observed_at": at,
                                    "wait_time_type": "POSTED", "wait_time_minutes": posted}))
        half = (m.ravel() % 30) == 0
        frames.append(pd.DataFrame({
            "entity_code": code, "observed_at": at[half] + pd.Timedelta(minutes=2),
            "wait_time_type": "ACTUAL",
            "wait_time_minutes": np.round(0.7 * posted[half] + rng.normal(0, 2, half.sum()))}))
    return pd.concat(frames, ignore_index=True)


def today_facts() -> pd.DataFrame:
    rows = [("MK1", "10:00", "POSTED", 40), ("MK1", "10:10", "POSTED", 50),
            ("MK1", "10:20", "POSTED", 60),
            ("MK2", "10:00", "POSTED", 30), ("MK2", "10:02", "ACTUAL", 25),
            ("MK2", "10:10", "POSTED", 35), ("MK2", "10:15", "CLOSED", None),
            ("MK3", "10:00", "POSTED", 20)]
    return pd.DataFrame({"entity_code": [r[0] for r in rows],
                         "observed_at": [local("2024-03-15", r[1]) for r in rows],
                         "wait_time_type": [r[2] for r in rows],
                         "wait_time_minutes": [r[3] for r in rows]})


def insert_facts(conn, facts: pd.DataFrame) -> None:
    local_ts = facts["observed_at"].dt.tz_convert(TZ)
    df = facts.assign(park_code="MK", source_file="test",
                      park_date=(local_ts - pd.Timedelta(hours=6)).dt.date,
                      wait_time_minutes=facts["wait_time_minutes"].astype("Int64"))
    conn.register("f", df[list(schema.FACT_COLUMNS)])
    conn.execute("INSERT INTO fct_wait_times SELECT * FROM f")
    conn.unregister("f")


def build_live_home(home: Path) -> None:
    """The live home in `home` (an existing, empty folder)."""
    days = pd.date_range("2024-02-01", "2024-03-31", freq="D")
    with warehouse.writer(home) as conn:
        schema.ensure_tables(conn)
        schema.replace_dimension(conn, "dim_calendar", pd.DataFrame({
            "park_date": days.date,
            "date_group_id": np.where(days.dayofweek >= 5, "WEEKEND", "WEEKDAY")}))
        schema.replace_dimension(conn, "dim_season", pd.DataFrame({
            "park_date": days.date, "season": "SPRING", "season_year": "SPRING_2024"}))
        schema.replace_dimension(conn, "dim_park_hours", pd.DataFrame({
            "park_code": "MK", "park_date": days.date,
            "opening_time": [local(str(d.date()), "09:00") for d in days],
            "closing_time": [local(str(d.date()), "21:00") for d in days],
            "emh_morning": False, "emh_evening": False, "source": "official"}))
        schema.replace_dimension(conn, "dim_entity", pd.DataFrame({
            "entity_code": ["MK1", "MK2", "MK3"], "entity_name": ["One", "Two", "Three"],
            "park_code": "MK", "queue_type": "STANDBY"}))
        insert_facts(conn, history())
        insert_facts(conn, today_facts())
        frame = build_training_frame(conn, MODELED, date(2024, 3, 14))
    for _, rows in frame.groupby("entity_code"):
        save(home, training.train_entity(rows, "STANDBY"))
    forecast_today(home)


def forecast_today(home: Path, horizon_days: int = 1) -> list:
    """What a forecast run as of TODAY writes: posted_aggregates, then every entity's forecast
    file whose inputs changed (the code entity_forecast runs); returns the EntityResults."""
    with warehouse.writer(home) as conn:
        posted_aggregates.build_posted_aggregates(conn, forecast.inputs_as_of(TODAY))
    return forecast.run_forecast(functools.partial(warehouse.reader, home), home,
                                 ["MK1", "MK2", "MK3"], TODAY, horizon_days)


def save(home: Path, trained, incumbent_mae: float | None = None) -> registry.SaveOutcome:
    return registry.save_version(home / "models", trained, code_version="test",
                                 params_hash="test", target_count=1000,
                                 incumbent_mae=incumbent_mae)

"""The backfill held out (issue 14), for `bench.real_backtest`: what the backfill would write for
the days after the as-of date D once their facts arrive, computed with the models as of D (the
scratch home's current versions), so it can be scored against the ACTUAL observed on those days
and its WTI compared with the forecast's across D. Data credit: TouringPlans.com.

`held_out_values` runs the backfill's own matching (`backfill.backfill_slots`: nearest ACTUAL
within 5 minutes, the slot's POSTED, closures) and imputation model (the with-POSTED model,
`training.predict(..., with_posted=True)`) on park dates first..last, and imputes EVERY slot
with a POSTED, observed or not: where an ACTUAL was observed, the imputed value is a held-out
prediction of it (the model never saw that day).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.forecasts import backfill, wti
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.models import registry, training

_ENTITIES_SQL = "SELECT entity_code FROM dim_entity WHERE queue_type = 'STANDBY' ORDER BY 1"


def held_out_values(conn: duckdb.DuckDBPyConnection, home: Path, first: date,
                    last: date) -> pd.DataFrame:
    """One row per (STANDBY entity with a current model, slot) of park dates first..last with
    facts: entity_code, park_code, park_date, slot, slot_start, observed (NaN: none),
    imputed (NaN: no POSTED or closed), value (what the backfill would store: observed, else
    imputed; NaN when closed or missing)."""
    models = HomePaths(home).models
    codes = [c for (c,) in conn.execute(_ENTITIES_SQL).fetchall()
             if registry.current_version(models, c) is not None]
    if not codes:
        return pd.DataFrame()
    slots = backfill.backfill_slots(conn, codes, ["STANDBY"] * len(codes), last,
                                    window_days=(last - first).days + 1)
    if slots.empty:
        return slots
    slots = slots[pd.to_datetime(slots["park_date"]).dt.date >= first].reset_index(drop=True)
    imputed = np.full(len(slots), np.nan)
    for code, idx in slots.groupby("entity_code").indices.items():
        part = slots.iloc[idx]
        ok = (part["posted_matched"].notna() & ~part["is_closed"].astype(bool)).to_numpy()
        if ok.any():
            model = registry.load_model(models, code)
            imputed[idx[ok]] = training.predict(model, part[ok], with_posted=True)
    observed = slots["observed"].to_numpy(float)
    return pd.DataFrame({
        "entity_code": slots["entity_code"], "park_code": slots["entity_code"].map(wti.park_of),
        "park_date": pd.to_datetime(slots["park_date"]).dt.date, "slot": slots["slot"],
        "slot_start": slots["slot_start"], "observed": observed, "imputed": imputed,
        "value": np.where(np.isnan(observed), imputed, observed),
    })


def scored_rows(conn: duckdb.DuckDBPyConnection, values: pd.DataFrame, home: Path,
                scored: pd.DataFrame) -> pd.DataFrame:
    """The observed slots of `values` with the forecast at the slot (`pred`, from the forecast
    files) and the naive value of the observation they matched (`naive`: the nearest ACTUAL row
    of `scored` within 5 minutes, as the backfill matched it), one row per observation (its
    nearest slot): the rows `backtest_detail.imputation_summary` scores."""
    if values.empty or not values["observed"].notna().any():
        return pd.DataFrame(columns=["entity_code", "park_date", "slot_start", "y", "imputed",
                                     "pred", "naive"])
    obs = values[values["observed"].notna()].rename(columns={"observed": "y"})
    fc = conn.execute("SELECT entity_code, slot_start, actual_predicted AS pred "
                      "FROM read_parquet($glob, hive_partitioning = true)",
                      {"glob": curve_files.glob_of(home, curve_files.FORECASTS_DIR)}).df()
    obs = obs.merge(fc, on=["entity_code", "slot_start"], how="left")
    actual = scored[scored["kind"] == "ACTUAL"][["entity_code", "observed_at", "y", "naive"]]
    actual = actual.rename(columns={"y": "scored_y"}).sort_values("observed_at")
    obs = pd.merge_asof(obs.sort_values("slot_start"), actual, left_on="slot_start",
                        right_on="observed_at", by="entity_code", direction="nearest",
                        tolerance=pd.Timedelta(minutes=5))
    # the same observation only (two timings within 5 minutes: the backfill kept one of them)
    obs = obs[obs["scored_y"] == obs["y"]]
    # an observation between two slots fills both (each slot takes the nearest within 5
    # minutes): score it once, at its nearest slot
    obs = obs.assign(_gap=(obs["slot_start"] - obs["observed_at"]).abs())
    obs = obs.sort_values(["entity_code", "observed_at", "_gap", "slot_start"])
    return (obs.drop_duplicates(["entity_code", "observed_at"]).drop(columns="_gap")
            .sort_values(["entity_code", "slot_start"]).reset_index(drop=True))


def daily_wti(values: pd.DataFrame, hours: pd.DataFrame | None, home: Path) -> pd.DataFrame:
    """The daily WTI (park_code, park_date, wti) the held-out backfill would give, by the
    pipeline's rule (official hours only, when `hours` is given: wti.official_hours)."""
    v = values[["entity_code", "park_code", "park_date", "slot", "slot_start", "value"]]
    if hours is not None and len(v):
        h = hours.assign(park_date=pd.to_datetime(hours["park_date"]).dt.date)
        v = v.merge(h, on=["park_code", "park_date"])
        v = v[(v["slot_start"] >= v["opening_time"]) & (v["slot_start"] <= v["closing_time"])]
        v = v.drop(columns=["opening_time", "closing_time"])
    _, daily = wti.wti_from_values(v.reset_index(drop=True), home)
    return daily[["park_code", "park_date", "wti"]]


def window(as_of: date, days: int) -> tuple[date, date]:
    """The park dates after `as_of` that a held-out backfill of `days` days covers."""
    return as_of + timedelta(days=1), as_of + timedelta(days=days)

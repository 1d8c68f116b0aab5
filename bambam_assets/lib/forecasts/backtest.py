"""Backtest scoring: a forecast made as of a date against what was observed after it.

Pure scoring and reporting (the run itself lives in `bambam_assets.cli.backtest`). Every observed
ACTUAL (STANDBY entities) and POSTED of park dates as_of+1 .. as_of+days is matched to the forecast
slot nearest to it (5-minute grid: the slot within 2.5 minutes) of the same entity; observations
with no forecast slot (outside park hours, entity without forecast) are counted, not scored. The
naive baseline is scored on the same observations: the median by entity, ISO day of week and
half hour of the park-day clock over the training window (park_date <= as_of), falling back to
the entity's median; its band is the 10th-90th percentile of the same groups.

Metrics: MAE of actual_predicted vs ACTUAL, of posted_predicted vs POSTED, WTI error (per park
day: mean observed ACTUAL vs the mean prediction at the same entity-slots, as a park-day mean
ACTUAL: the observed ACTUAL is too sparse for a per-slot WTI), and p10-p90 coverage of ACTUAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.models.features import park_params

_LOCAL_HALF_HOUR = """(((hour(timezone(p.tz, o.observed_at)) - 6) * 60
    + minute(timezone(p.tz, o.observed_at)) + 1440) % 1440) // 30"""

SCORED_SQL = f"""
WITH parks AS (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                      unnest($park_tzs::VARCHAR[]) AS tz),
standby AS (SELECT entity_code FROM dim_entity WHERE queue_type = 'STANDBY'),
obs AS (
    SELECT o.entity_code, o.park_code, o.park_date, o.observed_at, o.wait_time_type AS kind,
           CAST(o.wait_time_minutes AS DOUBLE) AS y, isodow(o.park_date) AS dow,
           {_LOCAL_HALF_HOUR} AS half_hour, hour(timezone(p.tz, o.observed_at)) AS local_hour,
           to_timestamp(round(epoch(o.observed_at) / 300) * 300) AS slot_start
    FROM fct_wait_times o JOIN parks p USING (park_code)
    WHERE o.wait_time_minutes IS NOT NULL AND o.park_date <= $last
      AND (o.wait_time_type = $posted
           OR (o.wait_time_type = $actual AND o.entity_code IN (SELECT * FROM standby)))
),
naive AS (
    SELECT entity_code, kind, dow, half_hour, median(y) AS naive,
           quantile_cont(y, 0.1) AS naive_p10, quantile_cont(y, 0.9) AS naive_p90
    FROM obs WHERE park_date <= $as_of GROUP BY ALL
),
naive_entity AS (
    SELECT entity_code, kind, median(y) AS naive, quantile_cont(y, 0.1) AS naive_p10,
           quantile_cont(y, 0.9) AS naive_p90
    FROM obs WHERE park_date <= $as_of GROUP BY ALL
),
fc AS (SELECT * FROM read_parquet($forecast_glob, hive_partitioning = true)
       WHERE park_date > $as_of AND park_date <= $last)
SELECT o.entity_code, o.park_code, o.park_date, o.observed_at, o.kind, o.y,
       CASE WHEN o.kind = $actual THEN f.actual_predicted ELSE f.posted_predicted END AS pred,
       CASE WHEN o.kind = $actual THEN f.actual_p10 END AS p10,
       CASE WHEN o.kind = $actual THEN f.actual_p90 END AS p90,
       coalesce(n.naive, ne.naive) AS naive,
       coalesce(n.naive_p10, ne.naive_p10) AS naive_p10,
       coalesce(n.naive_p90, ne.naive_p90) AS naive_p90,
       f.slot_start IS NOT NULL AS has_slot, o.local_hour
FROM obs o
LEFT JOIN fc f ON f.entity_code = o.entity_code AND f.slot_start = o.slot_start
LEFT JOIN naive n ON n.entity_code = o.entity_code AND n.kind = o.kind AND n.dow = o.dow
    AND n.half_hour = o.half_hour
LEFT JOIN naive_entity ne ON ne.entity_code = o.entity_code AND ne.kind = o.kind
WHERE o.park_date > $as_of
ORDER BY o.entity_code, o.observed_at, o.kind
"""


def scored_observations(conn: duckdb.DuckDBPyConnection, home: Path, as_of: date,
                        days: int) -> pd.DataFrame:
    """Observations of the horizon with the forecast and naive values beside them.

    Grain: one row per observed ACTUAL (STANDBY entities) or POSTED with as_of < park_date <=
    as_of + days. Columns entity_code, park_code, park_date, observed_at, kind, y, pred, p10,
    p90 (ACTUAL only), naive, naive_p10, naive_p90, has_slot, local_hour (0-23 on the park's
    wall clock).
    """
    if not curve_files.has_files(home, curve_files.FORECASTS_DIR):
        raise FileNotFoundError(f"no forecast files under {home}: the forecast did not run")
    params = {**park_params(), "as_of": as_of, "last": as_of + timedelta(days=days),
              "actual": ACTUAL, "posted": POSTED,
              "forecast_glob": curve_files.glob_of(home, curve_files.FORECASTS_DIR)}
    return conn.execute(SCORED_SQL, params).df()


@dataclass
class Score:
    metric: str
    model: float | None
    naive: float | None
    n: int

    @property
    def improvement_pct(self) -> float | None:
        """How much lower the model's error is than the naive one's (positive: better)."""
        if self.model is None or not self.naive:
            return None
        return (1 - self.model / self.naive) * 100


def _mae(y: pd.Series, pred: pd.Series) -> float | None:
    return float(np.abs(y - pred).mean()) if len(y) else None


def _coverage(y: pd.Series, lo: pd.Series, hi: pd.Series) -> float | None:
    return float(((y >= lo) & (y <= hi)).mean()) if len(y) else None


def daily_wti(scored: pd.DataFrame) -> pd.DataFrame:
    """Per (park_code, park_date): mean observed ACTUAL, forecast and naive at the same scored
    entity-slots. Grain: one row per park day with scored ACTUAL."""
    act = scored[(scored["kind"] == ACTUAL) & scored["has_slot"]]
    act = act.dropna(subset=["pred", "naive"])
    return (act.groupby(["park_code", "park_date"], as_index=False)
            .agg(observed=("y", "mean"), forecast=("pred", "mean"), naive=("naive", "mean"),
                 n=("y", "size")))


def score(scored: pd.DataFrame) -> list[Score]:
    """The headline metrics, each beside its naive baseline (lower is better, except coverage)."""
    ok = scored["has_slot"] & scored["pred"].notna() & scored["naive"].notna()
    act = scored[ok & (scored["kind"] == ACTUAL)]
    post = scored[ok & (scored["kind"] == POSTED)]
    band = act.dropna(subset=["p10", "p90"])
    wti = daily_wti(scored)
    return [
        Score("ACTUAL MAE", _mae(act["y"], act["pred"]), _mae(act["y"], act["naive"]), len(act)),
        Score("POSTED MAE", _mae(post["y"], post["pred"]), _mae(post["y"], post["naive"]),
              len(post)),
        Score("WTI MAE (park-day mean ACTUAL)", _mae(wti["observed"], wti["forecast"]),
              _mae(wti["observed"], wti["naive"]), len(wti)),
        Score("p10-p90 coverage of ACTUAL (target 0.80)",
              _coverage(band["y"], band["p10"], band["p90"]),
              _coverage(band["y"], band["naive_p10"], band["naive_p90"]), len(band)),
    ]


def per_entity(scored: pd.DataFrame) -> pd.DataFrame:
    """ACTUAL MAE per entity, model and naive. Grain: one row per entity with scored ACTUAL."""
    act = scored[scored["has_slot"] & (scored["kind"] == ACTUAL)].dropna(subset=["pred", "naive"])
    act = act.assign(err=(act["y"] - act["pred"]).abs(), nerr=(act["y"] - act["naive"]).abs())
    return (act.groupby("entity_code", as_index=False)
            .agg(n=("y", "size"), mae=("err", "mean"), naive_mae=("nerr", "mean"))
            .sort_values("entity_code", ignore_index=True))

"""Detailed backtest scoring on top of `backtest.scored_observations`: what a real-data backtest
needs beyond the headline metrics (pure pandas, no warehouse, no dagster).

- **Implausible values**: observations above a cap (minutes) are dropped from scoring and
  counted per kind (`drop_above_cap`).
- **Filled vs covered MAE**: an observation is *covered* when the forecast has a value at its slot.
  The *filled* prediction is the forecast where covered, else the naive value, so an observation
  the forecast missed is scored as the naive baseline would score it instead of being dropped.
  Both MAEs are reported (`kind_summary`), on observations that have a naive value (the naive
  falls back to the entity's median, so only an entity with no history of that kind lacks one:
  those rows are counted as `n_no_naive` and left out of every MAE).
- **Where uncovered observations fall**: local hour and the park's hours of that park day
  (`hours_class`: official hours, EMH only, outside both, no hours).
- **Band coverage**: share of covered observations inside the forecast's p10-p90 band.
- **Worse than naive**: entities with enough observations whose filled MAE exceeds the naive one
  by more than a margin.
- **WTI seam** (`wti_seam`): the daily mean of observed ACTUAL over the days before and after the
  as-of date against the daily WTI (backfilled before, forecast after): a WTI that jumps at the
  seam while observed waits stay flat is a seam the curves made, not the park.
- **The backfill, held out** (`imputation_summary`): ACTUAL imputed from POSTED by the models as
  of the as-of date, on later days whose ACTUAL was observed, against those observations, beside
  the forecast and the naive at the same slots: how far the past side of the WTI can be trusted.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

OFFICIAL, EMH, OUTSIDE, NO_HOURS = "official", "emh", "outside", "no_hours"
HOURS_CLASSES: tuple[str, ...] = (OFFICIAL, EMH, OUTSIDE, NO_HOURS)
HOURS_COLUMNS: tuple[str, ...] = ("park_code", "park_date", "opening_time", "closing_time",
                                  "opening_time_with_emh", "closing_time_with_emh")


def drop_above_cap(scored: pd.DataFrame, cap: float | None) -> tuple[pd.DataFrame, dict]:
    """(rows with y <= cap, {kind: rows dropped}); cap None keeps everything."""
    if cap is None:
        return scored, {}
    over = scored["y"] > cap
    dropped = scored[over].groupby("kind").size()
    return scored[~over].reset_index(drop=True), {str(k): int(v) for k, v in dropped.items()}


def with_fill(scored: pd.DataFrame) -> pd.DataFrame:
    """`scored` plus `covered` (the forecast has a value at the slot) and `filled` (the forecast
    where covered, else the naive value)."""
    covered = scored["has_slot"].astype(bool) & scored["pred"].notna()
    return scored.assign(covered=covered,
                         filled=scored["pred"].where(covered, scored["naive"]))


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _gain(model: float | None, naive: float | None) -> float | None:
    """1 - model / naive, in percent (positive: the model's error is lower)."""
    if model is None or not naive:
        return None
    return (1 - model / naive) * 100


SUMMARY_KEYS: tuple[str, ...] = (
    "n", "n_scored", "n_no_naive", "n_covered", "coverage", "mae", "naive_mae", "gain_pct", "bias",
    "naive_bias", "n_covered_scored", "mae_covered", "naive_mae_covered", "gain_covered_pct",
    "bias_covered")


def kind_summary(rows: pd.DataFrame) -> dict:
    """Metrics of one group of observations of one kind (rows of `with_fill`).

    n: observations; n_no_naive: without a naive value (left out of the MAEs); coverage: share
    of the n with a forecast value; mae / naive_mae / gain_pct / bias / naive_bias: filled
    prediction vs naive on the observations with a naive value; the *_covered figures: the same
    on the covered ones only.
    """
    n = len(rows)
    ok = rows[rows["naive"].notna()]
    cov = ok[ok["covered"]]
    mae = _mean((ok["filled"] - ok["y"]).abs())
    naive_mae = _mean((ok["naive"] - ok["y"]).abs())
    mae_cov = _mean((cov["pred"] - cov["y"]).abs())
    naive_cov = _mean((cov["naive"] - cov["y"]).abs())
    return {
        "n": n, "n_scored": len(ok), "n_no_naive": n - len(ok),
        "n_covered": int(rows["covered"].sum()),
        "coverage": float(rows["covered"].mean()) if n else None,
        "mae": mae, "naive_mae": naive_mae, "gain_pct": _gain(mae, naive_mae),
        "bias": _mean(ok["filled"] - ok["y"]), "naive_bias": _mean(ok["naive"] - ok["y"]),
        "n_covered_scored": len(cov), "mae_covered": mae_cov, "naive_mae_covered": naive_cov,
        "gain_covered_pct": _gain(mae_cov, naive_cov),
        "bias_covered": _mean(cov["pred"] - cov["y"]),
    }


def summary_table(filled: pd.DataFrame, by_entity: bool) -> pd.DataFrame:
    """One row per kind (pooled) or per (entity, kind) with `kind_summary`'s columns.

    `filled`: rows of `with_fill`. Pooled rows have entity_code "(pooled)"."""
    keys = ["entity_code", "kind"] if by_entity else ["kind"]
    rows = []
    for key, part in filled.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ident = dict(zip(keys, key, strict=True))
        rows.append({"entity_code": ident.get("entity_code", "(pooled)"), "kind": ident["kind"],
                     **kind_summary(part)})
    return pd.DataFrame(rows, columns=["entity_code", "kind", *SUMMARY_KEYS])


def band_coverage(filled: pd.DataFrame) -> dict:
    """{kind: {"n", "coverage"}}: share of covered observations with p10 <= y <= p90, over
    those with a band (coverage None when the forecast has no band for that kind)."""
    out = {}
    for kind, part in filled.groupby("kind", sort=True):
        band = part[part["covered"] & part["p10"].notna() & part["p90"].notna()]
        inside = (band["y"] >= band["p10"]) & (band["y"] <= band["p90"])
        out[str(kind)] = {"n": len(band), "coverage": float(inside.mean()) if len(band) else None}
    return out


def hours_class(scored: pd.DataFrame, hours: pd.DataFrame) -> pd.Series:
    """Where each observation's instant falls in its park day's hours: OFFICIAL (opening_time
    <= t <= closing_time), EMH (within the hours with EMH, not the official ones), OUTSIDE
    (outside both) or NO_HOURS (no hours for that park day). `hours`: HOURS_COLUMNS, times as
    tz-aware timestamps, one row per (park_code, park_date). Index of `scored`."""
    if not len(scored):
        return pd.Series([], dtype=object, index=scored.index)
    h = hours[list(HOURS_COLUMNS)].copy()
    h["park_date"] = pd.to_datetime(h["park_date"]).dt.date
    keys = scored[["park_code", "park_date", "observed_at"]].copy()
    keys["park_date"] = pd.to_datetime(keys["park_date"]).dt.date
    m = keys.merge(h, on=["park_code", "park_date"], how="left", validate="many_to_one")
    m.index = scored.index
    t = pd.to_datetime(m["observed_at"], utc=True)

    def within(lo: str, hi: str) -> pd.Series:
        a, b = pd.to_datetime(m[lo], utc=True), pd.to_datetime(m[hi], utc=True)
        return (a.notna() & b.notna() & (t >= a) & (t <= b)).to_numpy()

    official, emh = within("opening_time", "closing_time"), within(
        "opening_time_with_emh", "closing_time_with_emh")
    no_hours = m["opening_time"].isna().to_numpy() & m["opening_time_with_emh"].isna().to_numpy()
    cls = np.select([official, emh, no_hours], [OFFICIAL, EMH, NO_HOURS], default=OUTSIDE)
    return pd.Series(cls, index=scored.index, dtype=object)


def uncovered_where(filled: pd.DataFrame, hours: pd.DataFrame) -> dict:
    """{kind: {"n", "by_hours_class": {class: n}, "by_local_hour": {hour: n},
    "by_entity": {entity: n}}} of the observations without a forecast value (`filled` needs
    local_hour)."""
    miss = filled[~filled["covered"]]
    classes = hours_class(miss, hours)
    out = {}
    for kind in sorted(filled["kind"].unique()):
        sel = (miss["kind"] == kind).to_numpy()
        part, cls = miss[sel], classes[sel]
        out[str(kind)] = {
            "n": len(part),
            "by_hours_class": {c: int((cls == c).sum()) for c in HOURS_CLASSES},
            "by_local_hour": {int(h): int(v) for h, v
                              in part.groupby("local_hour").size().sort_index().items()},
            "by_entity": {str(e): int(v) for e, v
                          in part.groupby("entity_code").size().sort_index().items()},
        }
    return out


def worse_than_naive(entities: pd.DataFrame, min_n: int = 50,
                     margin: float = 0.10) -> pd.DataFrame:
    """Rows of `summary_table(by_entity=True)` with n_scored >= min_n and filled MAE above the
    naive MAE by more than `margin` (0.10: more than 10 % worse)."""
    ok = entities["mae"].notna() & entities["naive_mae"].notna()
    worse = ok & (entities["n_scored"] >= min_n) & (
        entities["mae"] > entities["naive_mae"] * (1 + margin))
    return entities[worse].reset_index(drop=True)


def wti_seam(observed: pd.DataFrame, wti_daily: pd.DataFrame, as_of: date,
             days: int = 14) -> dict:
    """The WTI against observed ACTUAL across the as-of date, one park.

    observed: ACTUAL observations (entity_code, park_date, y) of park dates as_of-days+1 ..
    as_of+days; only the entities observed on both sides count (the same rides before and
    after). wti_daily: (park_date, wti) of the park. Returns, for "before" (the `days` park
    dates up to as_of) and "after" (the next `days`): observed = mean of the daily means of
    observed ACTUAL, observed_ride_mean = mean over the rides of each ride's mean (a mix of rides
    that changes across the seam does not move it), wti = mean daily WTI, with the day and
    observation counts, the entities, and both per-day series (ISO dates as keys)."""
    lo, hi = as_of - timedelta(days=days - 1), as_of + timedelta(days=days)
    obs = observed.assign(park_date=pd.to_datetime(observed["park_date"]).dt.date)
    obs = obs[(obs["park_date"] >= lo) & (obs["park_date"] <= hi)]
    side = np.where(obs["park_date"] <= as_of, "before", "after")
    per_side = obs.assign(side=side).groupby("side")["entity_code"].agg(set)
    rides = sorted(per_side.get("before", set()) & per_side.get("after", set()))
    obs = obs[obs["entity_code"].isin(rides)]
    obs_daily = obs.groupby("park_date")["y"].mean()
    wti = wti_daily.assign(park_date=pd.to_datetime(wti_daily["park_date"]).dt.date)
    wti = wti[(wti["park_date"] >= lo) & (wti["park_date"] <= hi)].dropna(subset=["wti"])
    wti_by_day = wti.groupby("park_date")["wti"].mean()
    out: dict = {"entities": rides, "days": days}
    for name, before in (("before", True), ("after", False)):
        o = obs_daily[(obs_daily.index <= as_of) == before]
        w = wti_by_day[(wti_by_day.index <= as_of) == before]
        rows = obs[(obs["park_date"] <= as_of) == before]
        out[name] = {"observed": _mean(o), "observed_days": len(o), "observed_n": len(rows),
                     "observed_ride_mean": _mean(rows.groupby("entity_code")["y"].mean()),
                     "wti": _mean(w), "wti_days": len(w)}
    out["observed_daily"] = {d.isoformat(): float(v) for d, v in obs_daily.items()}
    out["wti_daily"] = {d.isoformat(): float(v) for d, v in wti_by_day.items()}
    return out


IMPUTATION_KEYS: tuple[str, ...] = (
    "n", "imputed_mae", "imputed_bias", "forecast_mae", "forecast_bias", "naive_mae",
    "imputed_gain_pct", "forecast_gain_pct", "observed_mean", "imputed_mean", "forecast_mean")


def imputation_summary(rows: pd.DataFrame, by_entity: bool) -> pd.DataFrame:
    """Held-out backfill against observed ACTUAL, pooled or per entity.

    rows: one per observed slot with entity_code, y (the observation), imputed (ACTUAL imputed
    from the slot's POSTED), pred (the forecast at the slot) and naive; only rows with all of
    them are scored, so the three MAEs are on the same observations. Columns: entity_code
    ("(pooled)" when not by entity) and IMPUTATION_KEYS; gains are against the naive."""
    ok = rows.dropna(subset=["y", "imputed", "pred", "naive"])
    groups = ok.groupby("entity_code", sort=True) if by_entity else [("(pooled)", ok)]
    out = []
    for code, part in groups:
        imputed = _mean((part["imputed"] - part["y"]).abs())
        fc = _mean((part["pred"] - part["y"]).abs())
        naive = _mean((part["naive"] - part["y"]).abs())
        out.append({
            "entity_code": code, "n": len(part), "imputed_mae": imputed,
            "imputed_bias": _mean(part["imputed"] - part["y"]), "forecast_mae": fc,
            "forecast_bias": _mean(part["pred"] - part["y"]), "naive_mae": naive,
            "imputed_gain_pct": _gain(imputed, naive), "forecast_gain_pct": _gain(fc, naive),
            "observed_mean": _mean(part["y"]), "imputed_mean": _mean(part["imputed"]),
            "forecast_mean": _mean(part["pred"])})
    return pd.DataFrame(out, columns=["entity_code", *IMPUTATION_KEYS])

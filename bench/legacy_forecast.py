"""The legacy forecast of ONE entity, as a fresh process (`scripts/generate_forecast.py`, spec
§9.1), timed on a bounded number of slots and extrapolated to its whole horizon.

    python -m bench.legacy_forecast --base DIR --entity MK101 --as-of 2025-12-31 [--max-slots 400]

DIR is the legacy's output_base (bench.legacy_base; models from bench.legacy_train). What the
legacy did, per entity, one slot after the other, no parallelism:
- dates: tomorrow (as_of + 1) to 730 days later, inclusive: 731 park dates;
- hours of each date from the park-hours table (here the flat `dimparkhours.csv`, which holds
  official and donor hours), else the default 09:00-22:00; slots every 5 minutes from opening to
  closing, inclusive (157 for 09:00-22:00; open across midnight: open -> 23:55, 00:00 -> close);
- per slot:
  - `posted_predicted`: the posted-aggregates lookup (exact (entity, dgid, hour), then the
    medians over the entity's dgid rows, its hour rows, all its rows, its park's rows at that
    hour), `dimdategroupid.csv` re-read on every call, rounded to the nearest 5;
  - `actual_predicted`: the without-POSTED model RELOADED (booster JSON, or the mean model's
    metadata); a mean model returns its mean; an XGBoost model gets a one-row synthetic fact at
    the slot, `add_features` with every dimension table re-read (dimdategroupid, dimseason,
    dimparkhours), the global encoding mapping re-read and rewritten (strategy `error`), the
    columns in the model's feature order, NaN -> 0, predict, clip at 0, round;
- one file `curves/forecast/{entity}_{date}.csv` per date (entity_code, park_date, time_slot,
  actual_predicted, posted_predicted).

Faithful consequences, reported as such:
- a date whose date_group_id or season_year is not in the global mapping (any season_year after
  the training data's last one: most of the horizon) RAISES at its first slot under strategy
  `error`, and that entity-date fails after one slot's work (spec §6).
  `seconds_work_estimated` is the cost of the run as it happened (failing dates cost one slot
  each); `seconds_work_estimated_full_horizon` what the 731 dates would cost if none failed
  (what the forecast was meant to produce, and what Bambam produces);
- an entity without a model (the batch never trains one under 500 targets) gets
  `posted_predicted` only (assumed: the spec does not say what the loader does when both files
  are missing; here a missing model costs two file checks per slot and yields no actual).

Bounded: a faithful slot costs ~0.1 s (three CSVs, a JSON mapping and the booster reloaded), and
an entity has ~115,000 slots (hours of work). Only `--max-slots` slots are run: whole dates
spread over the horizon (each written out), plus up to `--max-failed-dates` failing dates; the
rest is extrapolated from the measured seconds per slot and per failing date. When no date of an
XGBoost entity can succeed, the per-slot cost is measured on failing dates with the mapping's
`ignore` strategy (same reads and writes, unseen values -> null). Everything is in the JSON line
it prints: slots run and total, dates run, failing dates, the measured and estimated seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.core.parks import park_of_entity, tz_of_park
from bambam_assets.lib.forecasts.posted_aggregates import ROUND_TO
from bench import legacy_features as lf
from bench.legacy_base import AGGREGATES
from bench.legacy_train import MODELS

HORIZON_DAYS = 730  # --end-date default: start + 730 days, inclusive (731 dates)
DEFAULT_OPEN, DEFAULT_CLOSE = "09:00", "22:00"
SLOT_MINUTES = 5
MAX_SLOTS = 400  # slots run per entity by default (two or three whole dates)
MAX_FAILED_DATES = 10
CURVES = Path("curves") / "forecast"


def slot_times(open_hm: str, close_hm: str) -> list[str]:
    """Local HH:MM slots from opening to closing, inclusive; across midnight: open -> 23:55,
    then 00:00 -> close."""
    def minutes(hm: str) -> int:
        h, m = hm.split(":")
        return int(h) * 60 + int(m)

    lo, hi = minutes(open_hm), minutes(close_hm)
    lo += -lo % SLOT_MINUTES
    if hi >= lo:
        marks = range(lo, hi + 1, SLOT_MINUTES)
    else:
        marks = [*range(lo, 1440, SLOT_MINUTES), *range(0, hi + 1, SLOT_MINUTES)]
    return [f"{m // 60:02d}:{m % 60:02d}" for m in marks]


def hours_by_date(base: Path, park: str) -> dict[str, tuple[str, str]]:
    """{park_date: (open HH:MM, close HH:MM)} from the flat table (HH:MM taken from the ISO
    string, as the legacy did)."""
    ph = pd.read_csv(base / lf.DIMS / "dimparkhours.csv", dtype=str)
    ph = ph[(ph["park_code"] == park) & ph["opening_time"].notna() & ph["closing_time"].notna()]
    return dict(zip(ph["park_date"], zip(ph["opening_time"].str[11:16],
                                         ph["closing_time"].str[11:16], strict=True), strict=True))


class Entity:
    """One entity's forecast inputs that the legacy held for the whole run: the posted
    aggregates (read once) and where its model files are."""

    def __init__(self, base: Path, entity: str) -> None:
        self.base, self.entity = base, entity
        self.park = park_of_entity(entity)
        self.tz = tz_of_park(self.park)
        agg = pd.read_parquet(base / AGGREGATES)
        self.agg_entity = agg[agg["entity_code"] == entity]
        self.agg_park = agg[agg["entity_code"].str.match(rf"^{self.park}\d")]
        folder = base / MODELS / entity
        self.model_path = folder / "model_without_posted.json"
        self.meta_path = folder / "metadata_without_posted.json"
        self.kind = ("xgboost" if self.model_path.exists()
                     else "mean" if self.meta_path.exists() else "none")

    def posted(self, day: str, hour: int) -> float | None:
        """The lookup chain; dimdategroupid.csv re-read on every call (spec §8)."""
        cal = pd.read_csv(self.base / lf.DIMS / "dimdategroupid.csv")
        dgid = cal.loc[cal["park_date"] == day, "date_group_id"]
        dgid = dgid.iloc[0] if len(dgid) else None
        a, p = self.agg_entity, self.agg_park
        for rows in (a[(a["dategroupid"] == dgid) & (a["hour"] == hour)],
                     a[a["dategroupid"] == dgid], a[a["hour"] == hour], a,
                     p[p["hour"] == hour]):
            values = rows["posted_median"].dropna()
            if len(values):
                return float(ROUND_TO * round(values.median() / ROUND_TO))
        return None

    def actual(self, instant: pd.Timestamp, strategy: str) -> float | None:
        """The without-POSTED model reloaded, then (XGBoost) the one-row features and predict."""
        if not self.model_path.exists():
            if not self.meta_path.exists():
                return None
            return float(json.loads(self.meta_path.read_text())["mean_wait_time"])
        booster = xgb.Booster()
        booster.load_model(str(self.model_path))
        features = json.loads(self.meta_path.read_text())["feature_names"]
        row = pd.DataFrame({"entity_code": [self.entity], "observed_at": [instant],
                            "wait_time_type": ["ACTUAL"], "wait_time_minutes": [np.nan]})
        row["park_date"] = lf.park_date(row["observed_at"], self.tz)
        row = lf.add_features(row, lf.read_calendar(self.base), lf.read_season(self.base),
                              lf.read_park_hours(self.base, self.park), self.tz)
        row["park_code"] = self.park
        codes = lf.encode(row, self.base, strategy)
        x = lf.design(row, codes, features).fillna(0)
        return float(max(0, round(float(booster.predict(xgb.DMatrix(x))[0]))))

    def forecast_date(self, day: date, slots: list[str], strategy: str = "error") -> int:
        """Every slot of one date, then its file; raises UnseenCategory as the legacy did."""
        out = []
        for slot in slots:
            wall = pd.Timestamp(f"{day.isoformat()} {slot}")
            if slot < slots[0]:  # after midnight: the next calendar day
                wall += pd.Timedelta(days=1)
            instant = wall.tz_localize(self.tz, ambiguous=True, nonexistent="shift_forward")
            posted = self.posted(day.isoformat(), instant.hour)
            actual = self.actual(instant.tz_convert("UTC"), strategy)
            if posted is not None or actual is not None:
                out.append((self.entity, day.isoformat(), slot, actual, posted))
        path = self.base / CURVES / f"{self.entity}_{day.isoformat()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(out, columns=["entity_code", "park_date", "time_slot", "actual_predicted",
                                   "posted_predicted"]).to_csv(path, index=False)
        return len(out)


def failing_dates(ent: Entity, days: list[date]) -> set[date]:
    """Dates whose categories are missing from the global mapping: under strategy `error` they
    raise at their first slot (XGBoost entities only: the others never encode)."""
    path = ent.base / lf.MAPPINGS
    if ent.kind != "xgboost":
        return set()
    columns = json.loads(path.read_text())["columns"] if path.exists() else {}
    cal = lf.read_calendar(ent.base).merge(lf.read_season(ent.base), on="park_date")
    cal = cal.set_index(cal["park_date"].dt.date)
    bad = set()
    for d in days:  # a loop over the 731 dates, bookkeeping of the emulation (not timed)
        if d not in cal.index:
            continue
        row = cal.loc[d]
        if any(str(row[c]) not in columns.get(c, {}) for c in ("date_group_id", "season",
                                                                "season_year")):
            bad.add(d)
    return bad


def spread(items: list, n: int) -> list:
    """`n` items spread evenly over the list (all when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def run_entity(base: Path, entity: str, as_of: date, max_slots: int, max_failed: int) -> dict:
    """The emulation of one entity's forecast; returns the JSON record."""
    t0 = time.perf_counter()
    ent = Entity(base, entity)
    hours = hours_by_date(base, ent.park)
    t_setup = time.perf_counter() - t0
    days = [as_of + timedelta(days=k) for k in range(1, HORIZON_DAYS + 2)]
    slots = {d: slot_times(*hours.get(d.isoformat(), (DEFAULT_OPEN, DEFAULT_CLOSE))) for d in days}
    bad = failing_dates(ent, days)
    ok = [d for d in days if d not in bad]
    total_slots = sum(len(s) for s in slots.values())
    ok_slots = sum(len(slots[d]) for d in ok)
    # the per-slot cost: whole ok dates spread over the horizon, up to the slot budget (when
    # no date can succeed, failing dates with the mapping's `ignore` strategy: the same work)
    pool, strategy = (ok, "error") if ok else (sorted(bad), "ignore")
    per_date = max(1, round(np.mean([len(slots[d]) for d in pool])))
    chosen = spread(pool, max(1, max_slots // per_date) if max_slots else len(pool))
    t1 = time.perf_counter()
    rows = sum(ent.forecast_date(d, slots[d], strategy) for d in chosen)
    t_slots = time.perf_counter() - t1
    slots_run = sum(len(slots[d]) for d in chosen)
    # failing dates as they happened: the first slot raises
    timed_bad = spread(sorted(bad), max_failed)
    t2 = time.perf_counter()
    for d in timed_bad:
        try:
            ent.forecast_date(d, slots[d])
        except lf.UnseenCategory:
            continue
    t_bad = time.perf_counter() - t2
    per_slot = t_slots / slots_run if slots_run else 0.0
    per_bad = t_bad / len(timed_bad) if timed_bad else 0.0
    return {
        "entity": entity, "kind": ent.kind, "dates": len(days), "dates_failing_unseen": len(bad),
        "slots_total": total_slots, "slots_of_ok_dates": ok_slots,
        "dates_run": len(chosen), "slots_run": slots_run, "rows_written": rows,
        "slot_cost_measured_on": "ok dates" if strategy == "error" else
        "failing dates with encoding 'ignore'",
        "failing_dates_run": len(timed_bad),
        "seconds_setup": round(t_setup, 3), "seconds_per_slot": round(per_slot, 5),
        "seconds_per_failing_date": round(per_bad, 5),
        "seconds_work_run": round(t_slots + t_bad, 3),
        # the run as it happened: ok dates slot by slot, failing dates one slot each
        "seconds_work_estimated": round(per_slot * ok_slots + per_bad * len(bad), 1),
        # every date computed in full (no unseen category): the intended 731-day forecast
        "seconds_work_estimated_full_horizon": round(per_slot * total_slots, 1),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--entity", required=True)
    ap.add_argument("--as-of", type=date.fromisoformat, required=True,
                    help="the run's day: the forecast starts the day after")
    ap.add_argument("--max-slots", type=int, default=MAX_SLOTS,
                    help="slots actually run (whole dates); 0 = every slot (hours per entity)")
    ap.add_argument("--max-failed-dates", type=int, default=MAX_FAILED_DATES)
    args = ap.parse_args(argv)
    rec = run_entity(args.base, args.entity.strip().upper(), args.as_of, args.max_slots,
                     args.max_failed_dates)
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()

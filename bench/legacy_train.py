"""The legacy way of training ONE entity, as a fresh process (`scripts/train_entity_model.py`).

    python -m bench.legacy_train --raw DIR --entity MK101 --as-of 2025-12-31

Like the legacy: it reads EVERY raw file of the entity's property in full with
plain pandas (standby export, the property's public per-attraction files, fastpass export) and
filters the entity's rows in memory; builds its features with plain pandas (the feature set of
Bambam's models: clock, calendar and season via Bambam's dimension functions, park hours from the
park-hours export, POSTED matched by `merge_asof` nearest with NO tolerance within the park day);
label-encodes on all rows; fills nulls per split (median / mode); trains XGBoost for 2000 rounds
with NO early stopping and no sample weights (evals on train and val, as the legacy did); a mean
model under 500 targets. It prints one JSON line with the test-split MAE and the timings.

Not copied (the issue allows it): the per-row Python loops. Changed for a fair comparison (see
bench/README.md): the chronological split is Bambam's (by the entity's target park_dates, so both
sides score the same test days), PRIORITY targets exclude 8888, and the data is scanned once
(the legacy scanned it twice), so the legacy figures here are a lower bound of its real cost.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from bambam_assets.lib.core.parks import PROPERTY_OF_PARK, park_of_entity, tz_of_park
from bambam_assets.lib.dimensions.calendar import build_calendar
from bambam_assets.lib.dimensions.season import build_season
from bambam_assets.lib.models.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITH_POSTED,
    FEATURES_WITHOUT_POSTED,
)
from bambam_assets.lib.models.metrics import TEST, TRAIN, VAL, chronological_split
from bambam_assets.lib.models.training import MAX_ROUNDS, MIN_TARGETS_FOR_XGB, XGB_PARAMS

SOLD_OUT = 8888
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
_OLD_FASTPASS = re.compile(r"_(?:201[2-8]|2019_0[12]|20190[12])")
FASTPASS_COLS = ["fattid", "fday", "fmonth", "fyear", "fhour", "fmin", "fwinhr", "fwinmin"]


def _read_csvs(paths: list[Path], **kw) -> tuple[pd.DataFrame, int]:
    """Every file read in full, as text (the legacy's full scan); returns (rows, rows read)."""
    frames = [pd.read_csv(p, dtype=str, on_bad_lines="skip", **kw) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(), 0
    out = pd.concat(frames, ignore_index=True)
    return out, len(out)


def _localize(wall: pd.Series, tz: str) -> pd.Series:
    """Naive local wall clock -> UTC (ambiguous: first occurrence; gap: shift forward)."""
    wall = wall.astype("datetime64[ns]")
    if wall.empty:
        return wall.dt.tz_localize("UTC")
    return (wall.dt.tz_localize(tz, ambiguous=np.ones(len(wall), dtype=bool),
                            nonexistent="shift_forward")
            .dt.tz_convert("UTC"))


def _instants(text: pd.Series, tz: str) -> pd.Series:
    text = text.fillna("").str.strip()
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    aware = text.str.contains(_OFFSET, regex=True)
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], utc=True, format="ISO8601", errors="coerce")
    naive = ~aware & (text.str.len() >= 16)
    if naive.any():
        out[naive] = _localize(pd.to_datetime(text[naive], format="ISO8601", errors="coerce"), tz)
    return out


def _values(observed: pd.Series, posted: pd.Series, actual: pd.Series) -> pd.DataFrame:
    """Long rows (observed_at, type, value) of standby-like columns; -999 and out of range dropped."""
    parts = []
    for kind, col in (("POSTED", posted), ("ACTUAL", actual)):
        v = pd.to_numeric(col, errors="coerce").round()
        ok = v.between(0, 1000) & observed.notna()
        parts.append(pd.DataFrame({"observed_at": observed[ok], "type": kind, "value": v[ok]}))
    return pd.concat(parts, ignore_index=True)


def _hour_minute(packed: pd.Series, minute: pd.Series) -> tuple[pd.Series, pd.Series]:
    v = np.floor(packed.fillna(0))
    m = np.floor(minute.fillna(0))
    hour = np.where(v >= 10000, v // 10000, np.where(v >= 100, v // 100, v))
    mins = np.where(v >= 10000, (v // 100) % 100, np.where(v >= 100, v % 100, m))
    return pd.Series(np.clip(hour, 0, 23), packed.index), pd.Series(np.clip(mins, 0, 59), packed.index)


def _fastpass(raw: pd.DataFrame, tz: str) -> pd.DataFrame:
    num = {c: pd.to_numeric(raw[c], errors="coerce") if c in raw else pd.Series(np.nan, raw.index)
           for c in FASTPASS_COLS[1:]}
    day = pd.to_datetime(pd.DataFrame({"year": num["fyear"], "month": num["fmonth"],
                                       "day": num["fday"]}), errors="coerce")
    hour, minute = _hour_minute(num["fhour"], num["fmin"])
    rhour, rminute = _hour_minute(num["fwinhr"], num["fwinmin"])
    obs_min = hour * 60 + minute
    diff = rhour * 60 + rminute - obs_min
    diff = diff.where(diff >= -15, diff + 1440)
    win = num["fwinhr"]
    sold_out = (win >= 8000) & ~((win >= 10000) & (win < 240000))
    value = diff.where(~sold_out, SOLD_OUT)
    ok = day.notna() & win.notna() & (sold_out | value.between(-100, 2000))
    observed = _localize(day[ok] + pd.to_timedelta(obs_min[ok], unit="m"), tz)
    return pd.DataFrame({"observed_at": observed, "type": "PRIORITY", "value": value[ok]})


def load_entity(raw: Path, entity: str, tz: str) -> tuple[pd.DataFrame, int]:
    """All observations of `entity` found by scanning every file of its property; rows read."""
    park = park_of_entity(entity)
    prop = PROPERTY_OF_PARK[park]
    parts, scanned = [], 0
    sb, n = _read_csvs(sorted((raw / "export" / "wait_times" / prop).glob("*.csv")))
    scanned += n
    if len(sb):
        sb = sb[sb["entity_code"].str.strip().str.upper() == entity]
        parts.append(_values(_instants(sb["observed_at"], tz), sb["submitted_posted_time"],
                             sb["submitted_actual_time"]))
    prop_parks = {p for p, pr in PROPERTY_OF_PARK.items() if pr == prop}
    public = [p for p in sorted((raw / "public").glob("*.csv")) if park_of_entity(p.stem) in prop_parks]
    for path in public:  # the legacy's clean tables held every attraction of the park: read all
        pub, n = _read_csvs([path])
        scanned += n
        if path.stem.upper() == entity and len(pub):
            pub.columns = [c.lower() for c in pub.columns]
            parts.append(_values(_instants(pub["datetime"], tz), pub["spostmin"], pub["sactmin"]))
    fp_paths = sorted((raw / "export" / "fastpass_times" / prop).glob("*.csv"))
    old = [p for p in fp_paths if _OLD_FASTPASS.search(p.name)]
    new = [p for p in fp_paths if p not in old]
    fp_new, n1 = _read_csvs(new)
    fp_old, n2 = _read_csvs(old, skiprows=1, header=None, usecols=range(8), names=FASTPASS_COLS)
    scanned += n1 + n2
    fp_new.columns = [c.lower() for c in fp_new.columns]
    for fp in (fp_new, fp_old):
        if len(fp):
            fp = fp[fp["fattid"].str.strip().str.upper() == entity]
            parts.append(_fastpass(fp, tz))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"observed_at": pd.Series(dtype="datetime64[ns, UTC]"), "type": [], "value": []})
    rows = rows.drop_duplicates(["observed_at", "type", "value"])
    local = rows["observed_at"].dt.tz_convert(tz).dt.tz_localize(None)
    rows["park_date"] = (local - pd.Timedelta(hours=6)).dt.normalize()
    return rows.reset_index(drop=True), scanned


def park_hours(raw: Path, park: str) -> pd.DataFrame:
    """One row per park_date of the park-hours export: open/close instants and EMH flags."""
    prop = PROPERTY_OF_PARK[park]
    ph = pd.read_csv(raw / "export" / "park_hours" / f"{prop}_park_hours.csv", dtype=str)
    ph = ph[ph["park"].str.upper() == park]
    flag = lambda s: s.fillna("").str.strip().str.lower().isin(["1", "true", "t", "yes", "y"])  # noqa: E731
    return pd.DataFrame({
        "park_date": pd.to_datetime(ph["date"], errors="coerce"),
        "open": pd.to_datetime(ph["opening_time"], utc=True, format="ISO8601", errors="coerce"),
        "close": pd.to_datetime(ph["closing_time"], utc=True, format="ISO8601", errors="coerce"),
        "emh_m": flag(ph["emh_morning"]).astype(int), "emh_e": flag(ph["emh_evening"]).astype(int),
    }).drop_duplicates("park_date", keep="last")


def add_features(t: pd.DataFrame, posted: pd.DataFrame, hours: pd.DataFrame, tz: str,
                 as_of: date) -> pd.DataFrame:
    """Target rows + FEATURES_WITH_POSTED, in plain pandas (one row per target row)."""
    t = t.sort_values("observed_at", kind="stable").reset_index(drop=True)
    local = t["observed_at"].dt.tz_convert(tz)
    t["mins_since_6am"] = ((local.dt.hour - 6) * 60 + local.dt.minute + 1440) % 1440
    t["local_hour"] = local.dt.hour
    t["day_of_week"] = t["park_date"].dt.dayofweek + 1
    t["month"] = t["park_date"].dt.month
    cal = build_calendar(as_of)  # the legacy re-read its dimension tables in every process
    season = build_season(cal)
    t = t.merge(cal[["park_date", "date_group_id"]], on="park_date", how="left")
    t = t.merge(season, on="park_date", how="left")
    t = t.merge(hours, on="park_date", how="left")
    t["mins_since_park_open"] = (t["observed_at"] - t["open"]).dt.total_seconds() / 60
    t["park_open_hour"] = t["open"].dt.tz_convert(tz).dt.hour
    t["park_close_hour"] = t["close"].dt.tz_convert(tz).dt.hour
    t["park_hours_open"] = ((t["close"] - t["open"]).dt.total_seconds() / 3600
                            + np.where(t["close"] <= t["open"], 24, 0))
    t["emh_morning"] = t["emh_m"].where(t["open"].notna())
    t["emh_evening"] = t["emh_e"].where(t["open"].notna())
    # POSTED: nearest of the same park day, at any distance (the legacy had no tolerance)
    p = posted.sort_values("observed_at", kind="stable")
    p = p[["observed_at", "park_date", "value"]].rename(columns={"value": "posted_matched"})
    t = pd.merge_asof(t, p, on="observed_at", by="park_date", direction="nearest")
    # POSTED means of the preceding 30 / 60 minutes: a time-based rolling window over both series
    both = pd.concat([p.assign(is_t=False), t[["observed_at"]].assign(posted_matched=np.nan,
                                                                      is_t=True)])
    both = both.sort_values(["observed_at", "is_t"], kind="stable").set_index("observed_at")
    for minutes in (30, 60):
        rolled = both["posted_matched"].rolling(f"{minutes}min", closed="both", min_periods=1).mean()
        t[f"posted_mean_{minutes}"] = rolled[both["is_t"].to_numpy()].to_numpy()
    return t


def _encode_fill(frame: pd.DataFrame, split: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Label encoding on all rows; nulls filled per split (median / mode), as the legacy did."""
    x = pd.DataFrame(index=frame.index)
    for col in features:
        if col in CATEGORICAL_FEATURES:
            values = frame[col].astype("string")
            mapping = {v: i for i, v in enumerate(sorted(values.dropna().unique()))}
            x[col] = values.map(mapping).astype("float64")
        else:
            x[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for label in (TRAIN, VAL, TEST):
        part = x[split == label]
        fill = {c: (part[c].mode().iloc[0] if c in CATEGORICAL_FEATURES else part[c].median())
                for c in features if part[c].isna().any() and part[c].notna().any()}
        x.loc[split == label] = part.fillna(fill)
    return x


def train_model(frame: pd.DataFrame, split: np.ndarray, features: list[str]) -> float | None:
    """2000 rounds, no early stopping, no weights; returns the test-split MAE."""
    x = _encode_fill(frame, split, features)
    y = frame["y"].to_numpy(dtype=float)
    dtrain = xgb.DMatrix(x[split == TRAIN], label=y[split == TRAIN])
    dval = xgb.DMatrix(x[split == VAL], label=y[split == VAL])
    booster = xgb.train(XGB_PARAMS, dtrain, MAX_ROUNDS, evals=[(dtrain, "train"), (dval, "val")],
                        verbose_eval=False)
    if not (split == TEST).any():
        return None
    pred = booster.predict(xgb.DMatrix(x[split == TEST]))
    return float(np.abs(pred - y[split == TEST]).mean())


def train_entity(raw: Path, entity: str, queue_type: str, as_of: date) -> dict:
    """The whole legacy job for one entity; returns the JSON record."""
    t0 = time.perf_counter()
    park = park_of_entity(entity)
    tz = tz_of_park(park)
    rows, scanned = load_entity(raw, entity, tz)
    rows = rows[rows["park_date"] <= pd.Timestamp(as_of)]
    target_type = "PRIORITY" if queue_type == "PRIORITY" else "ACTUAL"
    targets = rows[(rows["type"] == target_type) & (rows["value"] != SOLD_OUT)]
    targets = targets.rename(columns={"value": "y"})[["observed_at", "park_date", "y"]]
    t1 = time.perf_counter()
    out = {"entity": entity, "queue_type": queue_type, "rows_scanned": scanned,
           "entity_rows": len(rows), "targets": len(targets)}
    mae, mae_wp, n_test = None, None, 0
    if len(targets) < MIN_TARGETS_FOR_XGB:
        out["kind"] = "mean"
        split = chronological_split(targets.sort_values("observed_at", kind="stable"))
        y = targets.sort_values("observed_at", kind="stable")["y"].to_numpy(dtype=float)
        n_test = int((split == TEST).sum())
        if n_test and (split == TRAIN).any():
            mae = float(np.abs(y[split == TEST] - y[split == TRAIN].mean()).mean())
        t2 = t3 = time.perf_counter()
    else:
        out["kind"] = "xgboost"
        posted = rows[rows["type"] == "POSTED"]
        frame = add_features(targets, posted, park_hours(raw, park), tz, as_of)
        split = chronological_split(frame)
        n_test = int((split == TEST).sum())
        t2 = time.perf_counter()
        mae = train_model(frame, split, FEATURES_WITHOUT_POSTED)
        if queue_type != "PRIORITY" and len(posted):
            mae_wp = train_model(frame, split, FEATURES_WITH_POSTED)
        t3 = time.perf_counter()
    out.update(test_mae=mae, test_mae_with_posted=mae_wp, n_test=n_test,
               seconds_load=round(t1 - t0, 3), seconds_features=round(t2 - t1, 3),
               seconds_train=round(t3 - t2, 3), seconds=round(t3 - t0, 3))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--entity", required=True)
    ap.add_argument("--queue-type", default=None, help="STANDBY or PRIORITY (default: from the "
                    "entities export, fastpass_booth true -> PRIORITY)")
    ap.add_argument("--as-of", type=date.fromisoformat, required=True)
    args = ap.parse_args(argv)
    entity = args.entity.strip().upper()
    queue_type = args.queue_type or queue_type_of(args.raw, entity)
    print(json.dumps(train_entity(args.raw, entity, queue_type, args.as_of)), flush=True)


def queue_type_of(raw: Path, entity: str) -> str:
    """PRIORITY when the entities export marks the entity as a fastpass booth, else STANDBY."""
    prop = PROPERTY_OF_PARK[park_of_entity(entity)]
    path = raw / "export" / "entities" / f"current_{prop}_entities.csv"
    if not path.exists():
        return "STANDBY"
    ents = pd.read_csv(path, dtype=str)
    row = ents[ents["code"].str.strip().str.upper() == entity]
    booth = row["fastpass_booth"].fillna("").str.strip().str.lower().isin(["1", "true", "t", "yes"])
    return "PRIORITY" if booth.any() else "STANDBY"


if __name__ == "__main__":
    main()

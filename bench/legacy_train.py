"""The legacy way of training ONE entity, as a fresh process (`scripts/train_entity_model.py`).

    python -m bench.legacy_train --raw DIR --entity MK101 --as-of 2025-12-31

Like the legacy (spec §4, §5, §7): it reads EVERY raw file of the entity's property in full with
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

from bambam_assets.lib.calendar import build_calendar
from bambam_assets.lib.features import (
    CATEGORICAL_FEATURES,
    FEATURES_WITH_POSTED,
    FEATURES_WITHOUT_POSTED,
)
from bambam_assets.lib.parks import PROPERTY_OF_PARK, park_of_entity, tz_of_park
from bambam_assets.lib.season import build_season
from bambam_assets.lib.training import MAX_ROUNDS, MIN_TARGETS_FOR_XGB, XGB_PARAMS
from bambam_assets.lib.training_metrics import TEST, TRAIN, VAL, chronological_split

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
    if wall.empty:
        return wall.astype("datetime64[ns, UTC]")
    return (wall.astype("datetime64[ns]")
            .dt.tz_localize(tz, ambiguous=np.ones(len(wall), dtype=bool),
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

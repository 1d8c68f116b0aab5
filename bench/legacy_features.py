"""The legacy's features and encoding, in plain pandas, shared by bench.legacy_train and
bench.legacy_forecast (so the forecast predicts with exactly the features the model was trained
on).

Grain: one row per observation (training: one per target row; forecast: one synthetic row per
5-minute slot). The feature SET is Bambam's (`FEATURES_WITHOUT_POSTED` / `FEATURES_WITH_POSTED`),
so both sides of the benchmark learn from the same information and their MAEs compare; HOW they
are built is the legacy's: the dimension tables are read whole from the legacy's
`output_base/dimension_tables/` CSVs on every call (the legacy re-read them per process, and per
slot in its forecast), the park day comes from the 6 AM rule on observed_at, POSTED is matched
nearest within the park day at ANY distance (the legacy's nested loops, vectorized with
`merge_asof`). Categories are label-encoded with ONE global mapping file,
`output_base/state/encoding_mappings.json`, re-read and rewritten on every call (spec §6):
training encodes with `encode` (unseen values get max + 1), the forecast with `error` (an unseen
value, e.g. a future season_year, raises).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.models.features import CATEGORICAL_FEATURES
from bambam_assets.lib.models.metrics import TEST, TRAIN, VAL

DIMS = Path("dimension_tables")
MAPPINGS = Path("state") / "encoding_mappings.json"
# The legacy encoded these five; entity_code and park_code are constant per model (a quirk kept
# in the mapping file only: they are not in Bambam's feature set).
ENCODED = [*CATEGORICAL_FEATURES, "park_code", "entity_code"]


class UnseenCategory(ValueError):
    """A value missing from the global mapping, under strategy `error` (the forecast)."""


def read_calendar(base: Path) -> pd.DataFrame:
    """dimdategroupid.csv, whole: park_date (datetime64) and date_group_id."""
    cal = pd.read_csv(base / DIMS / "dimdategroupid.csv")
    cal["park_date"] = pd.to_datetime(cal["park_date"])
    return cal[["park_date", "date_group_id"]]


def read_season(base: Path) -> pd.DataFrame:
    """dimseason.csv, whole: park_date, season, season_year."""
    season = pd.read_csv(base / DIMS / "dimseason.csv")
    season["park_date"] = pd.to_datetime(season["park_date"])
    return season


def read_park_hours(base: Path, park: str) -> pd.DataFrame:
    """dimparkhours.csv read whole, the park's rows: park_date, open/close instants, EMH flags."""
    ph = pd.read_csv(base / DIMS / "dimparkhours.csv", dtype=str)
    ph = ph[ph["park_code"] == park]
    flag = lambda s: s.fillna("").str.strip().str.lower().isin(["1", "true", "t", "yes", "y"])  # noqa: E731
    return pd.DataFrame({
        "park_date": pd.to_datetime(ph["park_date"]),
        "open": pd.to_datetime(ph["opening_time"], utc=True, format="ISO8601", errors="coerce"),
        "close": pd.to_datetime(ph["closing_time"], utc=True, format="ISO8601", errors="coerce"),
        "emh_m": flag(ph["emh_morning"]).astype(int), "emh_e": flag(ph["emh_evening"]).astype(int),
    }).drop_duplicates("park_date", keep="last")


def park_date(observed_at: pd.Series, tz: str) -> pd.Series:
    """The 6 AM rule: local time minus 6 hours, its date (datetime64 at midnight)."""
    local = observed_at.dt.tz_convert(tz).dt.tz_localize(None)
    return (local - pd.Timedelta(hours=6)).dt.normalize()


def add_features(t: pd.DataFrame, cal: pd.DataFrame, season: pd.DataFrame,
                 hours: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Rows (observed_at UTC, park_date) + FEATURES_WITHOUT_POSTED, in plain pandas."""
    t = t.sort_values("observed_at", kind="stable").reset_index(drop=True)
    local = t["observed_at"].dt.tz_convert(tz)
    t["mins_since_6am"] = ((local.dt.hour - 6) * 60 + local.dt.minute + 1440) % 1440
    t["local_hour"] = local.dt.hour
    t["day_of_week"] = t["park_date"].dt.dayofweek + 1
    t["month"] = t["park_date"].dt.month
    t = t.merge(cal, on="park_date", how="left")
    t = t.merge(season, on="park_date", how="left")
    t = t.merge(hours, on="park_date", how="left")
    t["mins_since_park_open"] = (t["observed_at"] - t["open"]).dt.total_seconds() / 60
    t["park_open_hour"] = t["open"].dt.tz_convert(tz).dt.hour
    t["park_close_hour"] = t["close"].dt.tz_convert(tz).dt.hour
    t["park_hours_open"] = ((t["close"] - t["open"]).dt.total_seconds() / 3600
                            + np.where(t["close"] <= t["open"], 24, 0))
    t["emh_morning"] = t["emh_m"].where(t["open"].notna())
    t["emh_evening"] = t["emh_e"].where(t["open"].notna())
    return t


def add_posted(t: pd.DataFrame, posted: pd.DataFrame) -> pd.DataFrame:
    """POSTED features of the with-POSTED model: the nearest POSTED of the same park day at any
    distance (the legacy had no tolerance), and the means of the preceding 30 / 60 minutes."""
    p = posted.sort_values("observed_at", kind="stable")
    p = p[["observed_at", "park_date", "value"]].rename(columns={"value": "posted_matched"})
    t = pd.merge_asof(t, p, on="observed_at", by="park_date", direction="nearest")
    both = pd.concat([p.assign(is_t=False), t[["observed_at"]].assign(posted_matched=np.nan,
                                                                      is_t=True)])
    both = both.sort_values(["observed_at", "is_t"], kind="stable").set_index("observed_at")
    for minutes in (30, 60):
        rolled = both["posted_matched"].rolling(f"{minutes}min", closed="both",
                                                min_periods=1).mean()
        t[f"posted_mean_{minutes}"] = rolled[both["is_t"].to_numpy()].to_numpy()
    return t


def encode(frame: pd.DataFrame, base: Path, strategy: str) -> pd.DataFrame:
    """Codes (float) of the ENCODED columns of `frame` from the global mapping file, re-read and
    rewritten on every call. `encode`: unseen values get max + 1 (and join the file); `ignore`:
    unseen -> null; `error`: raise UnseenCategory."""
    path = base / MAPPINGS
    doc = json.loads(path.read_text()) if path.exists() else {"strategy": strategy, "columns": {}}
    out = pd.DataFrame(index=frame.index)
    for col in ENCODED:
        values = frame[col].astype("string").replace({"nan": pd.NA, "None": pd.NA})
        mapping = doc["columns"].setdefault(col, {})
        unseen = sorted(set(values.dropna().unique()) - set(mapping))
        if unseen and strategy == "error":
            raise UnseenCategory(f"{col}: unseen {unseen[:3]}")
        if strategy == "encode":
            start = max(mapping.values(), default=-1) + 1
            mapping.update({v: start + i for i, v in enumerate(unseen)})
        out[col] = values.map(mapping).astype("float64")
    doc["created_at"] = datetime.now(UTC).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return out


def design(frame: pd.DataFrame, codes: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's columns in `features` order: codes for categories, numbers otherwise."""
    return pd.DataFrame({c: codes[c] if c in CATEGORICAL_FEATURES
                         else pd.to_numeric(frame[c], errors="coerce").astype("float64")
                         for c in features}, index=frame.index)


def fill_per_split(x: pd.DataFrame, split: np.ndarray) -> pd.DataFrame:
    """Nulls filled in each split separately: median for numbers, mode for categories (a legacy
    quirk kept: it is what the legacy trained on)."""
    x = x.copy()
    for label in (TRAIN, VAL, TEST):
        part = x[split == label]
        fill = {c: (part[c].mode().iloc[0] if c in CATEGORICAL_FEATURES else part[c].median())
                for c in x.columns if part[c].isna().any() and part[c].notna().any()}
        x.loc[split == label] = part.fillna(fill)
    return x

"""The entity dimension (the legacy dimentity): one clean row per attraction code.

Input: the outer union of the `current_{prop}_entities.csv` exports, read as strings. Entities
seen only in the facts are added so every fact row joins to a dim_entity row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import (
    DEFAULT_EXTINCT_ON,
    DEFAULT_OPENED_ON,
    PARK_OPENED_ON,
    PROPERTY_OF_PARK,
)
from bambam_assets.lib.core.schema import PRIORITY
from bambam_assets.lib.dimensions.parsing import blank_to_na, parse_dates, to_bool

STANDBY = "STANDBY"

FLAG_COLUMNS: tuple[str, ...] = (
    "fastpass_booth", "single_rider", "open_emh_morning", "open_emh_evening", "open_very_merry",
    "open_not_so_scary", "seasonal", "has_posted", "intense",
)
TEXT_COLUMNS: tuple[str, ...] = ("entity_name", "short_name", "land")
ENTITY_COLUMNS: tuple[str, ...] = (
    "entity_code", "entity_name", "short_name", "park_code", "land", *FLAG_COLUMNS,
    "height_restriction", "duration", "opened_on", "extinct_on", "queue_type", "in_export",
)


def park_codes(entity_codes: pd.Series) -> pd.Series:
    """Vectorized `parks.park_of_entity`: the letters before the first digit, NA if no known park.

    Whole prefixes, so TDL1 -> TDL, TDS36 -> TDS and USH5 -> USH (the legacy cut two letters).
    """
    prefix = entity_codes.astype("string").str.strip().str.upper().str.extract(
        r"^([A-Z]+)\d+$", expand=False
    )
    return prefix.where(prefix.isin(list(PROPERTY_OF_PARK)))


def _default_opened_on(parks: pd.Series) -> pd.Series:
    opened = parks.map({p: pd.Timestamp(d) for p, d in PARK_OPENED_ON.items()})
    return opened.fillna(pd.Timestamp(DEFAULT_OPENED_ON)).astype("datetime64[ns]")


def _positive_or_null(values: pd.Series, allow_zero: bool) -> pd.Series:
    number = pd.to_numeric(blank_to_na(values), errors="coerce").astype(float)
    bad = number < 0 if allow_zero else number <= 0
    return number.mask(bad)


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    # The union of exports may lack a column (e.g. `land`): it then counts as blank.
    return raw[name] if name in raw.columns else pd.Series("", index=raw.index, dtype=object)


def clean_entities(raw: pd.DataFrame, fact_entity_codes: Sequence[str] = ()) -> pd.DataFrame:
    """dim_entity: one row per entity code (export rows, then fact-only codes with in_export False).

    A code listed twice keeps its last row; rows without a code are dropped. An entity whose
    code names no known park keeps park_code NULL.
    """
    code = blank_to_na(_column(raw, "code")).str.upper()
    out = pd.DataFrame({"entity_code": code})
    out["entity_name"] = blank_to_na(_column(raw, "name"))
    for name in ("short_name", "land"):
        out[name] = blank_to_na(_column(raw, name))
    out["park_code"] = park_codes(code)
    for flag in FLAG_COLUMNS:
        out[flag] = to_bool(_column(raw, flag))
    out["height_restriction"] = _positive_or_null(_column(raw, "height_restriction"), True)
    out["duration"] = _positive_or_null(_column(raw, "duration"), False)
    out["opened_on"] = parse_dates(_column(raw, "opened_on")).fillna(
        _default_opened_on(out["park_code"])
    )
    out["extinct_on"] = parse_dates(_column(raw, "extinct_on")).fillna(
        pd.Timestamp(DEFAULT_EXTINCT_ON)
    )
    out["queue_type"] = np.where(out["fastpass_booth"], PRIORITY, STANDBY)
    out["in_export"] = True
    out = out[out["entity_code"].notna()].drop_duplicates("entity_code", keep="last")

    facts = pd.Series(pd.unique(pd.Series(list(fact_entity_codes), dtype="string")
                                .str.strip().str.upper().dropna()), dtype="string")
    missing = facts[~facts.isin(out["entity_code"]) & (facts != "")]
    if len(missing):
        parks = park_codes(missing)
        added = pd.DataFrame({
            "entity_code": missing.to_numpy(),
            "park_code": parks.to_numpy(),
            **{flag: False for flag in FLAG_COLUMNS},
            "height_restriction": np.nan,
            "duration": np.nan,
            "opened_on": _default_opened_on(parks).to_numpy(),
            "extinct_on": pd.Timestamp(DEFAULT_EXTINCT_ON),
            "queue_type": STANDBY,
            "in_export": False,
        })
        out = pd.concat([out, added], ignore_index=True)

    out = out.reindex(columns=list(ENTITY_COLUMNS))
    for name in ("entity_code", "park_code", *TEXT_COLUMNS):
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    for name in (*FLAG_COLUMNS, "in_export"):
        out[name] = out[name].astype(bool)
    out["opened_on"] = out["opened_on"].astype("datetime64[ns]")
    out["extinct_on"] = out["extinct_on"].astype("datetime64[ns]")
    return out.sort_values("entity_code", ignore_index=True)

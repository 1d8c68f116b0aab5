"""training.encode (vectorized) against the obvious per-value reference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bambam_assets.lib.models.features import CATEGORICAL_FEATURES, FEATURES_WITH_POSTED
from bambam_assets.lib.models.training import UNKNOWN, encode, fit_encodings


def reference_encode(frame: pd.DataFrame, encodings: dict) -> pd.DataFrame:
    """The per-value map, column by column (the implementation before vectorizing)."""
    out = pd.DataFrame(index=frame.index)
    for col in [c for c in FEATURES_WITH_POSTED if c in frame.columns]:
        if col in CATEGORICAL_FEATURES:
            mapping = {k: v for k, v in encodings.get(col, {}).items() if k != UNKNOWN}
            unknown = encodings.get(col, {}).get(UNKNOWN, len(mapping))
            values = frame[col].astype("string")
            codes = values.map(mapping).astype("float64")
            out[col] = codes.where(values.isna() | codes.notna(), float(unknown))
        else:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return out


def _frame(rng: np.random.Generator, n: int, pool: list) -> pd.DataFrame:
    frame = pd.DataFrame({
        "mins_since_6am": rng.integers(0, 1440, n).astype(float),
        "local_hour": pd.array(rng.integers(0, 24, n), dtype="Int64"),
        "month": rng.integers(1, 13, n),
        "date_group_id": pd.array(rng.choice(pool, n), dtype="string[pyarrow]"),
        # a category holding numbers too: coded as their text (season_year, a category that
        # held years, is no longer a feature)
        "season": rng.choice(np.array(["SUMMER", "WINTER", 2025, None], dtype=object), n),
        "posted_matched": rng.choice([np.nan, 10.0, 45.0], n),
    })
    frame.loc[frame.index[::7], "date_group_id"] = pd.NA
    frame.loc[frame.index[::11], "local_hour"] = pd.NA
    return frame


def test_encode_matches_the_reference_with_unseen_and_missing_values() -> None:
    rng = np.random.default_rng(3)
    train = _frame(rng, 400, ["WEEKDAY", "WEEKEND", "HOLIDAY"])
    encodings = fit_encodings(train)
    # new values never seen in training, missing values, other dtypes
    other = _frame(rng, 500, ["WEEKDAY", "NEW_GROUP", "HOLIDAY", "ODD"])
    for frame in (train, other, other.iloc[0:0]):
        got, want = encode(frame, encodings), reference_encode(frame, encodings)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(got, want, check_dtype=True)
    unseen = encode(other, encodings)["date_group_id"][other["date_group_id"] == "NEW_GROUP"]
    assert (unseen == encodings["date_group_id"][UNKNOWN]).all() and len(unseen)


def test_encode_without_any_category_mapping_codes_everything_unknown() -> None:
    frame = pd.DataFrame({"season": ["SUMMER", None], "month": [1, 2]})
    got = encode(frame, {})
    pd.testing.assert_frame_equal(got, reference_encode(frame, {}))
    assert got["season"].iloc[0] == 0.0 and np.isnan(got["season"].iloc[1])

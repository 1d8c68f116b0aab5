"""bench.level_ceiling: the hindsight factors are the best of their grid, and finer groups can
only do better (a ride's factor is at least as good as the pooled one, a ride and week's as a
ride's or its park's week's, a park and week's as the pooled one, and the pooled one as no
factor: 1 is on the grid)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from bench import level_ceiling as lc


def _scored(rng: np.random.Generator) -> pd.DataFrame:
    n = 400
    ride = rng.choice(["A", "B", "C"], n)
    day = rng.integers(1, 61, n)
    pred = rng.uniform(5, 60, n)
    # each ride's level off by its own factor, and its weeks by more
    level = (pd.Series(ride).map({"A": 1.3, "B": 0.8, "C": 1.0}).to_numpy()
             * (1 + 0.1 * (day // 7 % 3)))
    y = np.maximum(0, pred * level + rng.normal(0, 3, n))
    naive = y.mean() + rng.normal(0, 8, n)
    pred = np.where(rng.random(n) < 0.05, np.nan, pred)  # a few slots without a forecast
    park = pd.Series(ride).map({"A": "P1", "B": "P1", "C": "P2"}).to_numpy()
    return pd.DataFrame({"entity_code": ride, "park_code": park, "y": y, "pred": pred,
                         "naive": naive, "has_slot": ~np.isnan(pred),
                         "park_date": [date(2019, 6, 30) + timedelta(days=int(d)) for d in day]})


def test_the_factor_is_the_best_of_the_grid() -> None:
    rng = np.random.default_rng(5)
    y, base = rng.uniform(0, 80, 50), rng.uniform(1, 60, 50)
    brute = min(np.abs(y - f * base).sum() for f in lc.FACTORS)
    assert np.isclose(lc.best_factor_error(y, base), brute, rtol=1e-12)
    assert 1.0 in lc.FACTORS


def test_finer_groups_never_do_worse() -> None:
    scored = _scored(np.random.default_rng(11))
    out = lc.ceilings(scored, date(2019, 6, 30))
    filled = scored["pred"].fillna(scored["naive"])
    naive_err = np.abs(scored["y"] - scored["naive"]).sum()
    assert np.isclose(out["forecast"], 100 * (1 - np.abs(scored["y"] - filled).sum() / naive_err))
    assert out["forecast"] <= out["forecast x pooled"] <= out["forecast x ride"] \
        <= out["forecast x ride x week"]
    assert out["naive x ride"] <= out["naive x ride x week"]
    # a park's week is coarser than its rides' weeks and finer than the pooled factor
    for base in ("forecast", "naive"):
        assert out[f"{base} x park x week"] <= out[f"{base} x ride x week"]
    assert out["forecast x pooled"] <= out["forecast x park x week"]
    # the rides' levels were off by 0.8-1.3: a factor a ride recovers most of that
    assert out["forecast x ride"] - out["forecast x pooled"] > 5

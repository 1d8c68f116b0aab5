"""A sparse ride's POSTED ratio is shrunk toward the cross-ride ratio of the mature rides, which
a batch pools from the frames it trains and keeps for later batches."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.models import batch as train_batch
from bambam_assets.lib.models import registry, training
from bambam_tests.builders import synthetic_frame


def _sparse(frame, code: str, rows: int, scale: float):
    """The first `rows` targets of `frame` as entity `code`, actual waits x `scale`."""
    out = frame.head(rows).copy()
    out["entity_code"], out["y"] = code, (out["y"] * scale).round()
    return out


def test_a_batch_pools_the_mature_ratio_and_sparse_rides_shrink_toward_it(
        tmp_path: Path) -> None:
    mature = synthetic_frame(60, shift_from=60, shift=0.0)  # MK1: 1,800 targets, posted y + 5
    sparse = _sparse(mature, "MK2", 40, scale=0.5)  # 40 targets, half the mature ratio
    frame = pd.concat([mature, sparse], ignore_index=True)
    root = tmp_path / "models"
    result = train_batch.train_batch(frame, ["MK1", "MK2"], {"MK1": "STANDBY", "MK2": "STANDBY"},
                                     root, workers=1, mode="full")
    assert not result.failures
    pooled = mature["y"].sum() / mature["posted_matched"].sum()
    stored = json.loads((root / train_batch.RATIO_PRIOR_FILE).read_text())
    assert stored["ratio"] == pytest.approx(pooled) and stored["rows"] == len(mature)
    fallback = registry.load_model(root, "MK2").fallback
    assert fallback["posted_ratio_prior"] == pytest.approx(pooled, abs=1e-4)
    assert fallback["posted_ratio"] == pytest.approx(
        training.posted_ratio(sparse, pooled), abs=1e-4)
    # 40 own rows at half the ratio vs 50 pseudo-rows at the pooled one: in between
    own = sparse["y"].sum() / sparse["posted_matched"].sum()
    assert own < fallback["posted_ratio"] < pooled
    # a later batch of the sparse ride alone reads the stored prior
    again = train_batch.train_batch(sparse, ["MK2"], {"MK2": "STANDBY"}, root, workers=1,
                                    mode="full")
    v = again.outcomes[0].version
    assert registry.read_meta(root, "MK2", v)["fallback"]["posted_ratio_prior"] == \
        pytest.approx(pooled, abs=1e-4)

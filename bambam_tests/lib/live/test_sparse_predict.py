"""POSTED -> ACTUAL for a sparse ride (issue 14): an entity under 500 targets has an hourly
fallback model, and `/predict` used to answer its hourly mean whatever the sign said. Its model
now stores a POSTED ratio (its own, shrunk toward the documented 0.7) and the live engine answers
ratio x the reading."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.live.engine import LiveEngine
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame
from bambam_tests.builders import FORECAST_AS_OF, build_forecast_home

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return build_forecast_home(tmp_path_factory.mktemp("sparse") / "home")


def test_a_sparse_entity_predicts_with_its_posted_reading(home: Path) -> None:
    model = registry.load_model(home / "models", "MK3")  # 150 targets: trained by the builder
    assert model.kind == "hourly_fallback"
    with wh.reader(home) as conn:
        frame = build_training_frame(conn, ["MK3"], FORECAST_AS_OF)
    # the stored ratio is the entity's own ratio of sums, pulled toward the prior
    matched = frame.dropna(subset=["posted_matched"])
    own = matched["y"].sum() / matched["posted_matched"].sum()
    ratio = model.fallback["posted_ratio"]
    assert ratio == pytest.approx(training.posted_ratio(frame), abs=1e-4)
    assert min(own, training.POSTED_RATIO_PRIOR) <= ratio <= max(own, training.POSTED_RATIO_PRIOR)
    day = FORECAST_AS_OF + timedelta(days=1)
    at = datetime(day.year, day.month, day.day, 14, 0, tzinfo=NY)
    engine = LiveEngine(home, now=lambda: at)
    low, high = (engine.predict("MK3", at, posted) for posted in (5.0, 90.0))
    assert (low.model, high.model) == ("hourly_fallback", "hourly_fallback")
    assert low.actual_predicted == pytest.approx(ratio * 5.0, rel=1e-6)
    assert high.actual_predicted == pytest.approx(ratio * 90.0, rel=1e-6)
    # the forecast path (no reading) still answers the hourly mean
    no_reading = training.predict(model, frame.head(3).assign(posted_matched=np.nan), True)
    assert np.allclose(no_reading, training.predict(model, frame.head(3), False))

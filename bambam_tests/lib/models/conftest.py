"""Fixtures of the model tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.models import batch as train_batch
from bambam_assets.lib.models import registry, training
from bambam_tests.builders import INCR_NOW as NOW
from bambam_tests.builders import INCR_START as START
from bambam_tests.builders import synthetic_frame


@pytest.fixture(scope="module")
def base_version(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A full model on days 0..69, stored as v1; the frame runs to day 79 (+12 min from day 70)."""
    root = tmp_path_factory.mktemp("models")
    frame = synthetic_frame(80, shift_from=70, shift=12.0)
    first = frame[frame["park_date"] < (START + pd.Timedelta(days=70)).date()]
    trained = training.train_entity(first, "STANDBY")
    trained.entity_code = "MK1"
    trained.metrics.update(training_mode="full", last_full_retrain_at=NOW.isoformat(),
                           data_end=first["observed_at"].max().isoformat())
    registry.save_version(root, trained, code_version=train_batch.TRAINING_CODE_VERSION,
                          params_hash=train_batch.params_hash(), target_count=len(first), now=NOW)
    return root, frame

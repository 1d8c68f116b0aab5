"""A batch read per chunk (`train_batch(read_chunk=...)`, what the entity_model step does) trains
every entity as one read of the whole batch does, reads the chunks in training order, and never
reads more than one chunk ahead of the pool: the rows it holds stay bounded by two chunks however
long the history (three years of 1,694 entities held 10.5 GB read at once)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bambam_assets.lib.models import batch, registry
from bambam_tests.builders import synthetic_frame

DAYS = {"MK1": 40, "MK2": 30, "MK3": 20, "MK4": 10, "MK5": 25}  # 30 targets a day each


def _frame() -> pd.DataFrame:
    parts = []
    for i, (code, days) in enumerate(DAYS.items()):
        part = synthetic_frame(days, shift_from=days, shift=0.0, seed=i)
        part["entity_code"] = code
        parts.append(part)
    # ordered by entity_code, observed_at: as the feature reads return the rows
    return pd.concat(parts, ignore_index=True).sort_values(
        ["entity_code", "observed_at"], kind="stable", ignore_index=True)


def _train(root: Path, **kw) -> batch.BatchResult:
    codes = list(DAYS) + ["MK9"]  # MK9: no target row at all
    counts = {c: 30 * DAYS.get(c, 0) for c in codes}
    return batch.train_batch(kw.pop("frame", None), codes, dict.fromkeys(codes, "STANDBY"), root,
                             workers=1, mode="full", target_counts=counts, **kw)


def test_chunked_reads_train_every_entity_as_one_read_does(tmp_path: Path) -> None:
    frame = _frame()
    done: list[str] = []
    reads: list[tuple[list[str], int]] = []  # (codes, entities done when the read started)

    def read_chunk(codes: list[str]):
        reads.append((list(codes), len(done)))
        part = frame[frame["entity_code"].isin(codes)].reset_index(drop=True)
        return part, None

    chunked = _train(tmp_path / "chunked", read_chunk=read_chunk, chunk_rows=30 * 30,
                     on_done=lambda _k, _n, code, _e: done.append(code))
    whole = _train(tmp_path / "whole", frame=frame)

    # chunks in training order (target count descending), each within its rows but for an
    # entity bigger than a chunk alone
    assert [codes for codes, _ in reads] == [["MK1"], ["MK2"], ["MK5"], ["MK3", "MK4", "MK9"]]
    assert chunked.chunks == 4 and whole.chunks == 1
    # the next chunk is read while this one trains, never two ahead: when chunk k is read, every
    # entity of the chunks before k - 1 is done
    for k, (_codes, done_then) in enumerate(reads):
        assert done_then >= sum(len(c) for c, _ in reads[:max(0, k - 1)]), reads
    assert done == ["MK1", "MK2", "MK5", "MK3", "MK4"]
    assert chunked.skipped.keys() == whole.skipped.keys() == {"MK9"}
    assert not chunked.failures and not whole.failures
    for code in DAYS:  # the same rows: the same model, the same scores
        a = registry.read_meta(tmp_path / "chunked", code, 1)["metrics"]["without_posted"]
        b = registry.read_meta(tmp_path / "whole", code, 1)["metrics"]["without_posted"]
        assert a["n_test"] == b["n_test"]
        assert a["mae"] == pytest.approx(b["mae"], rel=1e-6), code


def test_rows_not_grouped_by_entity_are_refused(tmp_path: Path) -> None:
    frame = _frame()
    shuffled = pd.concat([frame.iloc[::2], frame.iloc[1::2]], ignore_index=True)
    with pytest.raises(ValueError, match="not grouped by entity_code"):
        _train(tmp_path / "m", frame=shuffled)

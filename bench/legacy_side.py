"""The legacy side of the benchmarks: its batch, one fresh process per entity, one after the other,
timed from the outside.

- `run_legacy`: training (`python -m bench.legacy_train` per entity), as the legacy's
  `train_batch_entities.py` ran `train_entity_model.py`;
- `run_legacy_forecast`: the forecast (`python -m bench.legacy_forecast` per entity), each
  bounded to a few hundred slots and extrapolated to its 731 dates by the child.

Both read the legacy output_base written from a Bambam home by `prepare_legacy`
(bench.legacy_base), which also reads the legacy's entity index (bench.legacy_index): the
training batch selects only entities with >= 500 targets; the forecast takes every entity of
the index.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from bench.bambam_side import REPO
from bench.legacy_base import write_legacy_base
from bench.legacy_forecast import MAX_FAILED_DATES, MAX_SLOTS
from bench.legacy_index import MIN_TARGET_COUNT, entity_index, selected_for_training

LEGACY_TIMEOUT = 3600  # seconds per entity, as the legacy batch


@dataclass
class LegacyResult:
    wall: float  # seconds for the entities actually run
    records: dict[str, dict] = field(default_factory=dict)  # entity -> child JSON + wall
    failures: dict[str, str] = field(default_factory=dict)
    entities_total: int = 0  # entities of the workload (the sample may be smaller)

    @property
    def wall_estimated(self) -> float:
        """Wall time for every entity of the workload (extrapolated when a sample ran)."""
        n = len(self.records) + len(self.failures)
        return self.wall * self.entities_total / n if n else 0.0


def _child(module: str, args: list[str]) -> tuple[dict | None, float, str | None]:
    """Run `python -m module args` from the repository; (its last JSON line, wall, failure)."""
    cmd = [sys.executable, "-m", module, *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=LEGACY_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, f"timeout after {LEGACY_TIMEOUT}s"
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None, wall, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(lines[-1]) | {"wall": round(wall, 3)}, wall, None


def run_legacy(base: Path, entities: list[str], as_of: date, entities_total: int | None = None,
               log=print) -> LegacyResult:
    """The legacy training batch: one fresh process per entity, one after the other."""
    result = LegacyResult(wall=0.0, entities_total=entities_total or len(entities))
    started = time.perf_counter()
    for k, code in enumerate(entities, 1):
        rec, wall, failure = _child("bench.legacy_train", [
            "--base", str(base), "--entity", code, "--as-of", as_of.isoformat()])
        if rec is None:
            result.failures[code] = failure
            log(f"legacy train {k}/{len(entities)} {code}: FAILED {failure}")
            continue
        result.records[code] = rec
        log(f"legacy train {k}/{len(entities)} {code}: {rec['kind']} {rec['targets']} targets, "
            f"{rec['files_read']} files / {rec['rows_scanned']:,} rows read, {wall:.1f}s "
            f"(load {rec['seconds_load']}s, train {rec['seconds_train']}s, rounds "
            f"{rec['rounds'] or '-'})")
    result.wall = time.perf_counter() - started
    return result


def run_legacy_forecast(base: Path, entities: list[str], as_of: date,
                        max_slots: int = MAX_SLOTS, max_failed_dates: int = MAX_FAILED_DATES,
                        log=print) -> LegacyResult:
    """The legacy forecast: one fresh process per entity. Each record gets `wall_estimated`
    (the process wall with the slots it skipped added back: as the run happened) and
    `wall_estimated_full_horizon` (no date failing on an unseen category)."""
    result = LegacyResult(wall=0.0, entities_total=len(entities))
    started = time.perf_counter()
    for k, code in enumerate(entities, 1):
        rec, wall, failure = _child("bench.legacy_forecast", [
            "--base", str(base), "--entity", code, "--as-of", as_of.isoformat(),
            "--max-slots", str(max_slots), "--max-failed-dates", str(max_failed_dates)])
        if rec is None:
            result.failures[code] = failure
            log(f"legacy forecast {k}/{len(entities)} {code}: FAILED {failure}")
            continue
        fixed = wall - rec["seconds_work_run"]  # start, imports, inputs read once
        rec["wall_estimated"] = round(fixed + rec["seconds_work_estimated"], 1)
        rec["wall_estimated_full_horizon"] = round(
            fixed + rec["seconds_work_estimated_full_horizon"], 1)
        result.records[code] = rec
        log(f"legacy forecast {k}/{len(entities)} {code}: {rec['kind']}, {rec['slots_run']} of "
            f"{rec['slots_total']:,} slots run ({rec['seconds_per_slot'] * 1000:.0f} ms each), "
            f"{rec['dates_failing_unseen']} of {rec['dates']} dates fail on an unseen category; "
            f"{wall:.1f}s run, estimated {rec['wall_estimated']:.0f}s as it ran, "
            f"{rec['wall_estimated_full_horizon']:.0f}s for the full horizon")
    result.wall = time.perf_counter() - started
    return result


@dataclass
class LegacySetup:
    """The legacy's state before its run (not timed): its output_base and its entity index."""

    base: Path
    written: dict  # what bench.legacy_base wrote (rows, files, seconds)
    index: pd.DataFrame  # bench.legacy_index.entity_index
    selected: list[str]  # the training batch's index query (>= 500 targets), in its order

    def summary(self) -> dict:
        return {"base": str(self.base), "written": self.written, "entities_in_index":
                len(self.index), "selected_for_training": len(self.selected),
                "min_target_count": MIN_TARGET_COUNT}


def prepare_legacy(home: Path, base: Path, as_of: date, log=print) -> LegacySetup:
    """Write the legacy's output_base from the Bambam home `home` and read its entity index."""
    written = write_legacy_base(home, base, as_of, log=log)
    index = entity_index(home, as_of)
    selected = selected_for_training(index)
    log(f"legacy index: {len(index)} entities, {len(selected)} with >= {MIN_TARGET_COUNT} "
        f"targets (the training batch's selection)")
    return LegacySetup(base, written, index, selected)

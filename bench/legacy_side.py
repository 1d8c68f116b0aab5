"""The legacy side of the benchmarks: the legacy batch, one `python -m bench.legacy_train`
process per entity, one after the other, timed from the outside."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bench.bambam_side import REPO

LEGACY_TIMEOUT = 3600  # seconds per entity, as the legacy batch


@dataclass
class LegacyResult:
    wall: float  # seconds for the entities actually run
    records: dict[str, dict] = field(default_factory=dict)  # entity -> legacy_train JSON + wall
    failures: dict[str, str] = field(default_factory=dict)
    entities_total: int = 0  # entities of the workload (the sample may be smaller)

    @property
    def wall_estimated(self) -> float:
        """Wall time for every entity of the workload (extrapolated when a sample ran)."""
        n = len(self.records) + len(self.failures)
        return self.wall * self.entities_total / n if n else 0.0


def run_legacy(raw: Path, entities: list[str], as_of: date, entities_total: int | None = None,
               log=print) -> LegacyResult:
    """The legacy batch: one fresh process per entity, one after the other."""
    result = LegacyResult(wall=0.0, entities_total=entities_total or len(entities))
    started = time.perf_counter()
    for k, code in enumerate(entities, 1):
        cmd = [sys.executable, "-m", "bench.legacy_train", "--raw", str(raw), "--entity", code,
               "--as-of", as_of.isoformat()]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                  timeout=LEGACY_TIMEOUT)
        except subprocess.TimeoutExpired:
            result.failures[code] = f"timeout after {LEGACY_TIMEOUT}s"
            continue
        wall = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            result.failures[code] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"legacy {k}/{len(entities)} {code}: FAILED {result.failures[code]}")
            continue
        rec = json.loads(lines[-1]) | {"wall": round(wall, 3)}
        result.records[code] = rec
        log(f"legacy {k}/{len(entities)} {code}: {rec['kind']} {rec['targets']} targets, "
            f"{wall:.1f}s (load {rec['seconds_load']}s, train {rec['seconds_train']}s)")
    result.wall = time.perf_counter() - started
    return result

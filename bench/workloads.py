"""The benchmarks' workloads: what is generated (parks, entities per park, dates, seed), the
presets of the training and daily benchmarks, and the generation itself.

Shared by bench.train_bench, bench.daily_bench and bench.incremental_quality.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class Workload:
    parks: tuple[str, ...]
    entities_per_park: int
    start: date
    end: date
    seed: int = 42


ALL_PARKS = ("MK", "EP", "HS", "AK", "BB", "TL", "DL", "CA", "UF", "IA", "EU", "USH", "TDL", "TDS")
PRESETS: dict[str, tuple[Workload, int | None]] = {
    # (workload, legacy sample size; None = every entity)
    # 48 entities over two years (4 WDW parks, so each legacy process rescans the whole wdw
    # property). Bambam's fixed cost (imports, fresh instance, dimensions: ~10-15 s) is amortized
    # only with enough entities: with 16 entities the speedup was 9.3x (see README).
    "default": (Workload(("MK", "EP", "HS", "AK"), 12, date(2024, 1, 1), date(2025, 12, 31)), None),
    # 14 parks x 121 = 1,694 entities over 14 years: the legacy's scale. Never run in full.
    "legacy-full": (Workload(ALL_PARKS, 121, date(2012, 1, 1), date(2025, 12, 31)), 20),
}

# Daily-mode presets: (workload, legacy sample size; None = every entity with new rows).
# "default" spreads the parks over the tiers as the real estate is: critical MK EP HS AK (max
# model age 1 day: retrained every day), high DL CA (3 days), medium UF IA and low TDL TDS
# (7 days); 6 entities per park, two years of history. With critical parks only (preset
# "critical", the training benchmark's default workload) every entity is due by age every day.
DAILY_PRESETS: dict[str, tuple[Workload, int | None]] = {
    "default": (Workload(("MK", "EP", "HS", "AK", "DL", "CA", "UF", "IA", "TDL", "TDS"), 6,
                         date(2024, 1, 1), date(2025, 12, 31)), None),
    "critical": (Workload(("MK", "EP", "HS", "AK"), 12, date(2024, 1, 1), date(2025, 12, 31)),
                 None),
    # Every park of the real estate (14) at a fifth of its density (24 entities a park, 336 in
    # all) over four years: the legacy's per-entity rescans of a whole property grow with the
    # property's size, Bambam's fixed cost does not. Legacy sampled (20 entities), extrapolated.
    "estate": (Workload(ALL_PARKS, 24, date(2022, 1, 1), date(2025, 12, 31)), 20),
    "legacy-full": (Workload(ALL_PARKS, 121, date(2012, 1, 1), date(2025, 12, 31)), 20),
}


def generate_workload(raw: Path, w: Workload, log=print) -> dict:
    """Write the workload's raw files under `raw`; returns the generator's summary + seconds."""
    from bambam_assets.lib.demo import generate as demo_data

    log(f"generating {len(w.parks)} parks x {w.entities_per_park} entities, {w.start}..{w.end} "
        f"into {raw}")
    t0 = time.perf_counter()
    # qt_days=0: no queue-times snapshots, so both sides read exactly the same TouringPlans files
    summary = demo_data.generate(raw, list(w.parks), w.entities_per_park, w.start, w.end,
                                 seed=w.seed, qt_days=0)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def workload_entities(raw: Path) -> list[str]:
    """Entity codes of the entities exports, in file order (park, then ordinal)."""
    import pandas as pd

    codes: list[str] = []
    for path in sorted((raw / "export" / "entities").glob("current_*_entities.csv")):
        codes += pd.read_csv(path, dtype=str)["code"].str.strip().str.upper().tolist()
    return codes


def sample_entities(entities: list[str], n: int | None) -> list[str]:
    """`n` entities spread evenly over the list (every entity when n is None or too large)."""
    if n is None or n >= len(entities):
        return list(entities)
    step = len(entities) / n
    return [entities[int(i * step)] for i in range(n)]
